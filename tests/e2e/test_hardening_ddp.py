"""A diverged training run on two processes (issue 19, case 4): both stop at the same step with exit status 2
(none is left waiting in a collective), and every checkpoint written is finite."""

import glob
import os
import subprocess
import sys

import torch
from test_ddp_train import ROOT, train_args


def test_two_processes_stop_together_at_the_first_non_finite_loss(tmp_path):
    root = str(tmp_path)
    ddp = ["--trainer.devices", "2", "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp"]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), *train_args(root, 40, *ddp, "--model.lr", "1e16")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"),
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert errors and all("training diverged" in e for e in errors) and len(set(errors)) == 1, errors
    ckpts = glob.glob(os.path.join(root, "ckpt", "*.ckpt"))
    assert ckpts
    for path in ckpts:
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()), path
