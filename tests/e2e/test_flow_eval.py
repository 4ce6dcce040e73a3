"""eval.py --pretrained on tiny SD3 and FLUX folders: latent RePaint on the rectified flow end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import check_known_pixels
from PIL import Image

from repaint_pl.cli import eval_main
from repaint_pl.sampling import CoarseTravelSampler
from repaint_pl.schedules import JumpSchedule, count_network_calls

pytest.importorskip("diffusers")


def picture(out: str, kind: str, name: str) -> np.ndarray:
    return np.asarray(Image.open(os.path.join(out, "inpainted", kind, name + ".png")))


def run(out: str, folder: str, pictures: str, *extra: str) -> None:
    eval_main([
        "--pretrained", folder, "--prompt", "a cat", "--images", pictures, "--image_size", "64",
        "--masks", "thick,genhalf", "--steps", "10", "--jump_length", "2", "--jump_n_sample", "2", *extra,
        "--accelerator", "cpu", "--out", out, "--data.init_args.batch_size", "2",
    ])  # fmt: skip


@pytest.mark.parametrize("model", ["sd3", "flux"])
def test_eval_pretrained_flow_model(tmp_path, tiny_sd3, tiny_flux, pictures, model):
    folders = {"sd3": tiny_sd3, "flux": tiny_flux}
    out = str(tmp_path / model)
    run(out, folders[model], pictures)
    check_known_pixels(out, ["thick", "genhalf"], ["astronaut", "coffee"])
    meta = json.load(open(os.path.join(out, "meta", "thick", "astronaut.json")))
    assert meta["network_calls"] == JumpSchedule(jump_length=2, jump_n_sample=2).network_calls(10)


def test_fast_sampler_config_on_a_flow_model(tmp_path, tiny_sd3, pictures):
    out = str(tmp_path / "fast")
    run(out, tiny_sd3, pictures, "--config", "configs/sampler/fast.yaml", "--steps", "20",
        "--model.sampler.init_args.jump_n_sample", "2", "--masks", "thick")  # fmt: skip
    check_known_pixels(out, ["thick"], ["astronaut", "coffee"])
    meta = json.load(open(os.path.join(out, "meta", "thick", "astronaut.json")))
    assert meta["network_calls"] == CoarseTravelSampler(jump_n_sample=2).network_calls([])


def test_a_branch_from_a_saved_flow_state_continues_the_run(tmp_path, tiny_sd3, pictures):
    """Branching on the flow: the saved rest from a saved latent state gives the uninterrupted run's pixels."""
    trunk, branch, states = str(tmp_path / "trunk"), str(tmp_path / "branch"), str(tmp_path / "states")
    one = ["--masks", "thick", "--progress.refresh_rate", "0", "--metrics.enabled", "false"]
    run(trunk, tiny_sd3, pictures, *one, "--save_state_at", "10", "--state_dir", states)
    run(branch, tiny_sd3, pictures, *one, "--resume_state", states, "--resume_times", "saved")
    times = JumpSchedule(jump_length=2, jump_n_sample=2).times(10)
    for name in ("astronaut", "coffee"):
        whole, rest = (picture(o, "thick", name) for o in (trunk, branch))
        assert np.array_equal(whole, rest)
        meta = json.load(open(os.path.join(branch, "meta", "thick", f"{name}.json")))
        assert meta["network_calls"] == count_network_calls(times[11:])  # the branch ran only the rest
