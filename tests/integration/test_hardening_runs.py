"""Hostile and careless runs (issue 19): a diverged training run, a config file that asks for unpickling,
a failed run's empty folder, and outputs that cannot be written (read-only, a path that is a file, disk full)."""

import errno
import glob
import os
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, TINY_ARGS, randomize, run
from PIL import Image

from repaint_pl import cli, files
from repaint_pl.nets import CheckpointError, UNetConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_command(capsys, main, *args):
    """``cli.command(main)`` as eval.py/train.py run it: (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        cli.command(lambda: main(list(args)))
    return exit_.value.code, capsys.readouterr().err


def tiny_state() -> dict:
    return randomize(UNetConfig(**TINY).build()).state_dict()


# ---------------------------------------------------------------- 4: diverged training


def train_args(tmp, steps, *extra):
    """train.py on the texture config with a tiny net, checkpoints every 2 steps (EMA as shipped)."""
    callbacks = (
        "[{class_path: lightning.pytorch.callbacks.EMAWeightAveraging, init_args: {decay: 0.9, use_buffers: false}},"
        " {class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {dirpath: "
        + os.path.join(tmp, "checkpoints")
        + ", save_last: true, every_n_train_steps: 2, save_top_k: -1, save_on_exception: true}}]"
    )
    return [
        "--config", os.path.join(ROOT, "configs", "train", "texture.yaml"),
        "--model.net.preset", "tiny", "--model.net.in_channels", "1", "--model.net.num_channels", "32",
        "--model.diffusion.timestep_respacing", "10", "--model.channels_last", "false",
        "--data.init_args.crop_size", "16", "--data.init_args.batch_size", "4", "--data.init_args.epoch_length", "32",
        "--trainer.max_steps", str(steps), "--trainer.default_root_dir", tmp, "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.check_val_every_n_epoch", "100", "--trainer.callbacks", callbacks,
        *extra,
    ]  # fmt: skip


def finite(path: str) -> bool:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    tensors = [*ckpt["state_dict"].values(), *(ckpt.get("current_model_state") or {}).values()]
    return all(bool(torch.isfinite(v).all()) for v in tensors if v.is_floating_point())


def test_a_diverged_training_run_stops_in_one_line_and_keeps_only_finite_checkpoints(tmp_path, capsys):
    """lr 1e16 overflows the network within a few steps (after the checkpoints of steps 2 and 4): train.py
    stops (exit 2) at the first non-finite loss, naming the step, and every checkpoint on disk is finite
    (last.ckpt included; the config's save_on_exception writes nothing)."""
    from repaint_pl.cli import train_main

    tmp = str(tmp_path)
    status, err = run_command(capsys, train_main, *train_args(tmp, 40, "--model.lr", "1e16"))
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "training diverged" in lines[0] and "at step" in lines[0], err
    step = int(lines[0].split("at step ")[1].split()[0])
    assert 2 < step < 40
    ckpts = sorted(glob.glob(os.path.join(tmp, "checkpoints", "*.ckpt")))
    assert ckpts and all(finite(p) for p in ckpts), ckpts
    assert os.path.join(tmp, "checkpoints", "last.ckpt") in ckpts
    assert not glob.glob(os.path.join(tmp, "checkpoints", f"*step={step + 1}*"))  # nothing after the loss went bad


def test_a_checkpoint_with_non_finite_weights_is_never_assembled():
    from repaint_pl.callbacks import FiniteTraining, NonFiniteTrainingError

    guard = FiniteTraining()

    class Trainer:
        global_step, callbacks = 7, []

    good = {"state_dict": {"w": torch.ones(2)}, "current_model_state": {"w": torch.ones(2)}}
    guard.on_save_checkpoint(Trainer(), None, good)
    bad = {"state_dict": {"w": torch.ones(2)}, "current_model_state": {"a": torch.ones(2)}}
    bad["current_model_state"]["b"] = torch.tensor([1, float("inf")])
    with pytest.raises(NonFiniteTrainingError, match=r"current_model_state\.b holds NaN or inf at step 7"):
        guard.on_save_checkpoint(Trainer(), None, bad)


def test_eval_refuses_weights_with_nan_naming_the_file_and_tensor(tmp_path, image_folders, capsys):
    state = tiny_state()
    name = sorted(k for k, v in state.items() if v.is_floating_point())[3]
    state[name].view(-1)[0] = float("nan")
    path = str(tmp_path / "diverged.pt")
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        run(str(tmp_path), path, image_folders)
    message = str(err.value)
    assert message.startswith(path) and name in message and "non-finite" in message and "\n" not in message
    assert not glob.glob(str(tmp_path / "out" / "inpainted" / "*"))  # no black pictures


# ---------------------------------------------------------------- 7: trust only from the command line

MARKER_CODE = "open({!r}, 'w').write('code from the checkpoint ran')"


class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (MARKER_CODE.format(self.marker),))


def tampered_bundle(folder, marker: str) -> str:
    """A studio download (``config.yaml`` beside ``image.png`` and ``keep_mask.png``, run with ``eval.py
    --config config.yaml``) with a ``weights.pt`` that runs code, and ``trust_checkpoint: true`` added."""
    from repaint_pl.apps.studio.logic import config_yaml

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(os.path.join(folder, "image.png"))
    keep = np.full((32, 32), 255, np.uint8)
    keep[8:24, 8:24] = 0
    Image.fromarray(keep).save(os.path.join(folder, "keep_mask.png"))
    torch.save({**tiny_state(), "extra": Payload(marker)}, os.path.join(folder, "weights.pt"))
    config = {
        "model": {
            "net": {"preset": "tiny"},
            "diffusion": {"timestep_respacing": "10"},
            "schedule": {"class_path": "repaint_pl.schedules.ExplicitTimes", "init_args": {"times": [*range(9, -2, -1)]}},
            "seed": 0,
        },
        "data": {
            "class_path": "repaint_pl.apps.studio.data.StudioDataModule",
            "init_args": {"image": "image.png", "keep_mask": "keep_mask.png", "sample_id": 0, "image_size": 32},
        },
        "writer": {"out_dir": "reproduced"},
        "ckpt": "weights.pt",
    }
    text = config_yaml(config) + "trust_checkpoint: true\n"
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(text)
    return os.path.join(folder, "config.yaml")


def test_trust_checkpoint_in_a_config_file_never_unpickles(tmp_path, monkeypatch, capsys):
    marker = str(tmp_path / "marker")
    bundle = str(tmp_path / "bundle")
    tampered_bundle(bundle, marker)
    monkeypatch.chdir(bundle)
    status, err = run_command(capsys, cli.eval_main, "--config", "config.yaml", "--accelerator", "cpu")
    assert not os.path.exists(marker), "the checkpoint's code ran"
    assert status == 2
    assert "trust_checkpoint in a config file is ignored" in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "weights.pt" in errors[0] and "--trust_checkpoint true" in errors[0], err


def test_trust_comes_from_the_command_line_only(capsys):
    assert cli.trust_from_command_line(["--config", "c.yaml"], True) is False
    assert "ignored" in capsys.readouterr().err
    assert cli.trust_from_command_line(["--trust_checkpoint", "true"], False) is True
    assert cli.trust_from_command_line(["--trust_checkpoint=true", "--trust_checkpoint", "false"], True) is False
    assert capsys.readouterr().err.count("ignored") == 1


def test_train_py_refuses_to_resume_from_a_pickle_in_one_line(tmp_path, capsys):
    """``--ckpt_path`` (on the command line or in a config file) never unpickles: a checkpoint with code in it
    is one line (exit 2) before anything runs."""
    from repaint_pl.cli import train_main

    marker = str(tmp_path / "marker")
    evil = str(tmp_path / "last.ckpt")
    state = {f"net.{k}": v for k, v in tiny_state().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.6.0", "loops": Payload(marker)}, evil)
    status, err = run_command(capsys, train_main, *train_args(str(tmp_path), 4, "--ckpt_path", evil))
    assert not os.path.exists(marker)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and evil in errors[0] and "pickled Python object" in errors[0], err


# ---------------------------------------------------------------- 9: failed runs, unwritable outputs


def test_a_failed_run_into_an_empty_folder_does_not_block_the_corrected_rerun(tmp_path, tiny_ckpt, image_folders):
    """The first run fails before any picture (a missing --resume_state folder) after recording its
    fingerprint; the corrected command into the same folder runs; a folder with pictures still refuses."""
    from repaint_pl.fingerprint import FingerprintMismatch

    with pytest.raises(FileNotFoundError):
        run(str(tmp_path), tiny_ckpt, image_folders, "--resume_state", str(tmp_path / "no_states"))
    out = run(str(tmp_path), tiny_ckpt, image_folders)
    assert len(os.listdir(os.path.join(out, "inpainted"))) == 3
    with pytest.raises(FingerprintMismatch, match="another configuration"):
        run(str(tmp_path), tiny_ckpt, image_folders, "--seed", "5")


def eval_args(out, ckpt, folders):
    return [
        "--ckpt", ckpt, "--data", "repaint_pl.datamodules.InpaintFolderDataModule", "--data.gt_path", folders[0],
        "--data.mask_path", folders[1], "--data.image_size", "32", "--writer.out_dir", out, *TINY_ARGS,
    ]  # fmt: skip


def leftovers(folder: str) -> list[str]:
    """Temporary or empty files under ``folder``."""
    found = []
    for root, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            if n.endswith(".tmp") or os.path.getsize(p) == 0:
                found.append(p)
    return found


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, tiny_ckpt, image_folders, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for out in (str(a_file), str(a_file / "out")):  # the folder itself, or a folder under a file
        status, err = run_command(capsys, cli.eval_main, *eval_args(out, tiny_ckpt, image_folders))
        assert status == 2 and err.count("\n") == 1 and err.startswith("error: ") and str(a_file) in err, err
    assert a_file.read_text() == "not a folder"


def test_a_read_only_output_folder_is_one_line(tmp_path, tiny_ckpt, image_folders, capsys, monkeypatch):
    """Files under the output folder cannot be created (EACCES, as a read-only folder or mount gives even
    to root, for whom chmod alone does not stop writes)."""
    out = tmp_path / "out"
    out.mkdir()
    real_open = open

    def read_only_open(path, mode="r", *args, **kwargs):
        if str(path).startswith(str(out)) and any(c in mode for c in "wax+"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only_open)
    status, err = run_command(capsys, cli.eval_main, *eval_args(str(out), tiny_ckpt, image_folders))
    assert status == 2 and err.count("\n") == 1 and str(out) in err and "Permission denied" in err, err
    assert leftovers(str(out)) == []


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(
    tmp_path, tiny_ckpt, image_folders, capsys, monkeypatch
):
    """The PNG encoder writes part of the file, then the disk is full (ENOSPC)."""
    out = str(tmp_path / "out")

    def full_disk_save(self, fp, format=None, **params):
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "wb") as f:
                f.write(b"\x89PNG partial")
        else:
            fp.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk_save)
    status, err = run_command(capsys, cli.eval_main, *eval_args(out, tiny_ckpt, image_folders))
    assert status == 2 and err.count("\n") == 1 and "No space left on device" in err, err
    assert os.path.join(out, "inpainted") in err  # the path of the picture that could not be written
    assert leftovers(out) == [] and not glob.glob(os.path.join(out, "*", "*.png"))


def test_writers_share_the_atomic_writer(tmp_path, monkeypatch):
    """save_png, save_json, save_state and the fingerprint files all go through repaint_pl.files.atomic_write."""
    from repaint_pl.callbacks import states, writer

    from repaint_pl import fingerprint

    calls = []
    real = files.atomic_write
    for module in (writer, states):
        monkeypatch.setattr(module, "atomic_write", lambda p, c: calls.append(p) or real(p, c))
    monkeypatch.setattr(files, "atomic_write", lambda p, c: calls.append(p) or real(p, c))
    writer.save_png(np.zeros((4, 4, 3), np.uint8), str(tmp_path / "a.png"))
    writer.save_json({"a": 1}, str(tmp_path / "a.json"))
    states.save_state(str(tmp_path / "s.pt"), {"x": torch.ones(1)})
    fingerprint.save_json({"b": 2}, str(tmp_path / "f.json"))
    assert [os.path.basename(p) for p in calls] == ["a.png", "a.json", "s.pt", "f.json"]
    assert yaml.safe_load(open(tmp_path / "f.json")) == {"b": 2}
    assert torch.equal(torch.load(tmp_path / "s.pt")["x"], torch.ones(1))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
