"""Branching from a saved state through eval.py: --save_state_at K --state_dir DIR, then --resume_state DIR."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from repaint_pl.callbacks.states import StateError, load_state, state_path

from repaint_pl.cli import eval_main
from repaint_pl.schedules import count_network_calls, jump_times

# 10 respaced steps, jumps 2 x 2: a table of 26 transitions, 18 of them network calls
TINY = [
    "--model.net.preset=tiny",
    "--steps=10",
    "--model.schedule=JumpSchedule",
    "--jump_length=2",
    "--jump_n_sample=2",
    "--accelerator=cpu",
    "--progress.refresh_rate=0",
    "--metrics.enabled=false",
]
K = 10  # saved after the 11th transition (at t = 6; the next one is a reverse step)


def run(out, ckpt, folders, *extra):
    data = ["--data=repaint_pl.datamodules.InpaintFolderDataModule", f"--data.gt_path={folders[0]}"]
    data += [f"--data.mask_path={folders[1]}", "--data.image_size=32", "--data.batch_size=2"]
    eval_main(["--ckpt", ckpt, *data, *TINY, "--out", str(out), *extra])
    return str(out)


def pixels(out, name="coffee.png"):
    return np.array(Image.open(os.path.join(out, "inpainted", name)), dtype=np.int16)


def calls(out, name="coffee"):
    with open(os.path.join(out, "meta", f"{name}.json")) as f:
        return json.load(f)["network_calls"]


@pytest.fixture(scope="module")
def trunk(tmp_path_factory, tiny_ckpt, image_folders):
    """An uninterrupted run that also saves every sample's state after transition K."""
    root = tmp_path_factory.mktemp("branch")
    out = run(root / "trunk", tiny_ckpt, image_folders, f"--save_state_at={K}", f"--state_dir={root / 'states'}")
    return out, str(root / "states")


def test_saved_state_records_the_run(trunk):
    _, states = trunk
    times = jump_times(10, 1, 2, 2)
    state = load_state(state_path(states, "coffee.png"))
    assert state["index"] == K and state["times"] == times and state["num_timesteps"] == 10
    assert state["x"].shape == (3, 32, 32) and state["x0_pred"].shape == (3, 32, 32)
    assert sorted(os.listdir(states)) == ["astronaut.pt", "chelsea.pt", "coffee.pt"]


def test_continuing_with_the_saved_rest_gives_the_uninterrupted_pixels(tmp_path, trunk, tiny_ckpt, image_folders):
    out, states = trunk
    branch = run(tmp_path / "b", tiny_ckpt, image_folders, f"--resume_state={states}", "--resume_times=saved")
    times = jump_times(10, 1, 2, 2)
    for name in ("astronaut", "chelsea", "coffee"):
        assert np.array_equal(pixels(branch, f"{name}.png"), pixels(out, f"{name}.png"))
        assert calls(out, name) == count_network_calls(times)
        assert calls(branch, name) == count_network_calls(times[K + 1 :])  # only the branch's own calls


@pytest.mark.slow
def test_an_explicit_rest_equal_to_the_saved_one_gives_the_same_pixels(tmp_path, trunk, tiny_ckpt, image_folders):
    out, states = trunk
    rest = jump_times(10, 1, 2, 2)[K + 1 :]
    explicit = ["--model.schedule=ExplicitTimes", f"--model.schedule.times={json.dumps(rest)}"]
    branch = run(tmp_path / "b", tiny_ckpt, image_folders, f"--resume_state={states}", *explicit)
    assert np.array_equal(pixels(branch), pixels(out))


@pytest.mark.slow
def test_a_branch_with_another_schedule_and_seed_keeps_its_own_cost(tmp_path, trunk, tiny_ckpt, image_folders):
    out, states = trunk
    t = load_state(state_path(states, "coffee.png"))["times"][K + 1]
    branch = run(tmp_path / "b", tiny_ckpt, image_folders, f"--resume_state={states}", "--jump_n_sample=1", "--seed=7")
    assert calls(branch) == t + 1  # no jumps from level t: t + 1 reverse steps
    assert not np.array_equal(pixels(branch), pixels(out))
    known = np.array(Image.open(os.path.join(out, "gt_keep_mask", "coffee.png"))) > 127
    assert np.array_equal(known, np.array(Image.open(os.path.join(branch, "gt_keep_mask", "coffee.png"))) > 127)


def test_missing_or_foreign_states_are_one_line_errors(tmp_path, trunk, tiny_ckpt, image_folders):
    with pytest.raises(FileNotFoundError, match="astronaut.pt: no saved state"):
        os.makedirs(tmp_path / "empty")
        run(tmp_path / "a", tiny_ckpt, image_folders, f"--resume_state={tmp_path / 'empty'}")
    _, states = trunk
    with pytest.raises(StateError, match="num_timesteps=10, this run has num_timesteps=20"):
        run(tmp_path / "b", tiny_ckpt, image_folders, f"--resume_state={states}", "--steps=20")
    torch.save({"version": 1}, tmp_path / "x.pt")
    with pytest.raises(StateError, match="saved with id=None"):
        from repaint_pl.callbacks.states import check_state

        check_state(torch.load(tmp_path / "x.pt"), "x.pt", {"id": 3})
