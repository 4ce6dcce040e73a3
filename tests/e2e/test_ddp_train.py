"""Training randomness: every process and every step draws its own crops, t and ε; a resumed run draws
what an uninterrupted one draws at the same step; ``noise: global`` refuses several processes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from repaint_pl.datamodules.textures import CropStream, RandomCrops

from repaint_pl.module import RePaintModule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def recorder():
    """Wrappers of the training step and of the draw of (t, ε) that record, per step, the global step, the crops'
    sums, t and ε's first values; returns (records, {attribute: wrapper}) to set on RePaintModule."""
    records = []
    step, draw = RePaintModule.training_step, RePaintModule.draw_training_noise

    def recording_step(self, batch, batch_idx):
        records.append({"step": self.trainer.global_step, "crops": batch["image"].flatten(1).sum(1).tolist()})
        return step(self, batch, batch_idx)

    def recording_draw(x0, num_timesteps, generator=None):
        t, noise = draw(x0, num_timesteps, generator)
        records[-1].update(t=t.tolist(), eps=noise.flatten(1)[:, :4].tolist())
        return t, noise

    return records, {"training_step": recording_step, "draw_training_noise": staticmethod(recording_draw)}


# train.py's entry point with the recorder; each process writes what it saw to <out>/records_<rank>.json
RECORDING_SCRIPT = """
import json, os, sys
from repaint_pl.cli import train_main
from repaint_pl.module import RePaintModule
from test_ddp_train import recorder

records, wrappers = recorder()
for name, wrapper in wrappers.items():
    setattr(RePaintModule, name, wrapper)
cli = train_main(sys.argv[2:])
with open(os.path.join(sys.argv[1], f"records_{cli.trainer.global_rank}.json"), "w") as f:
    json.dump(records, f)
"""


def train_args(root, steps, *extra):
    return [
        "--config",
        os.path.join(ROOT, "configs", "train", "texture.yaml"),
        "--model.net.preset",
        "tiny",
        "--model.net.in_channels",
        "1",
        "--model.net.num_channels",
        "32",
        "--model.diffusion.timestep_respacing",
        "10",
        "--model.channels_last",
        "false",
        "--data.init_args.crop_size",
        "16",
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.epoch_length",
        "8",
        "--trainer.max_steps",
        str(steps),
        "--trainer.default_root_dir",
        root,
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.callbacks",
        "[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, "
        f"init_args: {{dirpath: {os.path.join(root, 'ckpt')}, save_last: true, every_n_train_steps: 2}}}}]",
        *extra,
    ]


def record_processes(root, steps, devices):
    """Train in ``devices`` CPU processes (DDP) with the recorder; returns {rank: [record per step]}."""
    os.makedirs(root, exist_ok=True)
    script = os.path.join(root, "record.py")
    with open(script, "w") as f:
        f.write(RECORDING_SCRIPT)
    ddp = ["--trainer.devices", str(devices), "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp"]
    proc = subprocess.run(
        [sys.executable, script, root, *train_args(root, steps, *ddp)],
        capture_output=True,
        text=True,
        cwd=root,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(os.path.abspath(__file__))])),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r: json.load(open(os.path.join(root, f"records_{r}.json"))) for r in range(devices)}


def record_here(monkeypatch, root, steps, *extra):
    """Train in this process with the recorder; returns the records."""
    from repaint_pl.cli import train_main

    records, wrappers = recorder()
    with monkeypatch.context() as m:
        m.setenv("PL_GLOBAL_SEED", "0")  # seed_everything sets it; keep it from other tests
        for name, wrapper in wrappers.items():
            m.setattr(RePaintModule, name, wrapper)
        train_main(train_args(root, steps, "--trainer.accelerator", "cpu", *extra))
    return records


@pytest.mark.slow
def test_two_processes_train_on_different_crops_and_timesteps(tmp_path):
    ranks = record_processes(str(tmp_path), 1, devices=2)
    (a,), (b,) = ranks[0], ranks[1]
    assert a["step"] == b["step"] == 0
    assert a["t"] != b["t"] and a["eps"] != b["eps"]
    assert set(a["crops"]).isdisjoint(b["crops"])  # no crop of one process is a crop of the other


@pytest.mark.slow
def test_a_resumed_run_draws_what_an_uninterrupted_one_draws(tmp_path, monkeypatch):
    whole = record_here(monkeypatch, str(tmp_path / "whole"), 4)
    part = str(tmp_path / "part")
    first = record_here(monkeypatch, part, 2)
    resumed = record_here(monkeypatch, part, 4, "--ckpt_path", os.path.join(part, "ckpt", "last.ckpt"))
    assert [r["step"] for r in whole] == [0, 1, 2, 3] and [r["step"] for r in resumed] == [2, 3]
    assert first + resumed == whole  # the same t, ε and crops at every step
    assert whole[0]["t"] != whole[1]["t"] and whole[0]["crops"] != whole[2]["crops"]  # new draws every step, epoch


def test_crops_are_a_function_of_seed_and_index():
    textures = [torch.arange(40 * 40, dtype=torch.float32).reshape(1, 40, 40)]
    crops = RandomCrops(textures, 8, 16, seed=3)
    assert torch.equal(crops[5]["image"], RandomCrops(textures, 8, 16, seed=3)[5]["image"])
    assert not torch.equal(crops[5]["image"], crops[6]["image"])
    assert not torch.equal(crops[5]["image"], RandomCrops(textures, 8, 16, seed=4)[5]["image"])


def test_crop_stream_gives_every_process_and_epoch_its_own_indices():
    crops = RandomCrops([torch.zeros(1, 8, 8)], 4, 6)
    seen = []
    for epoch in range(3):
        for rank in range(2):
            stream = CropStream(crops, num_replicas=2, rank=rank)
            stream.set_epoch(epoch)
            indices = list(stream)
            assert len(indices) == len(stream) == 3
            seen += indices
    assert len(set(seen)) == len(seen)


def test_global_noise_refuses_several_processes(monkeypatch):
    module = RePaintModule(net=dict(preset="tiny"), noise="global")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="noise=global .* 2 processes"):
        module._noise(torch.arange(2), torch.device("cpu"))


def test_eval_with_global_noise_on_two_processes_is_one_line(tmp_path, tiny_ckpt, image_folders):
    from repaint_pl.cli import eval_main

    args = ["--ckpt", tiny_ckpt, "--model.net.preset", "tiny", "--model.noise", "global"]
    args += ["--data", "repaint_pl.datamodules.ImageFolderDataModule", "--data.image_path", image_folders[0]]
    args += ["--writer.out_dir", str(tmp_path), "--accelerator", "cpu", "--devices", "2", "--trainer.strategy", "ddp"]
    with pytest.raises(ValueError, match="noise=global .* cannot run on 2 processes"):
        eval_main(args)
    assert not os.listdir(tmp_path)  # refused before anything was written
