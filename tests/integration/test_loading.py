"""Checkpoint loading: weights_only always (pickles need --trust_checkpoint), memory-mapped, dropped after use."""

import gc
import os

import pytest
import torch
from conftest import TINY, randomize, run

from repaint_pl import cli
from repaint_pl.nets import CheckpointError, UNetConfig, read_checkpoint
from repaint_pl.nets.checkpoint import UntrustedCheckpointError


class Payload:
    """A Python object that only a full unpickler can rebuild (a stand-in for code in a file)."""

    def __init__(self, note: str = "hello"):
        self.note = note


def tiny_state() -> dict:
    return randomize(UNetConfig(**TINY).build()).state_dict()


def lightning_file(path, extra) -> str:
    """A train.py-style checkpoint of the tiny net, with ``extra`` stored beside the weights."""
    state = {f"net.{k}": v for k, v in tiny_state().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.6.0", "callbacks": {"x": extra}}, path)
    return str(path)


def mapped(path: str) -> bool:
    """Whether this process has ``path`` memory-mapped (Linux /proc)."""
    with open("/proc/self/maps") as f:
        return any(line.rstrip().endswith(os.path.realpath(path)) for line in f)


def test_pickled_object_is_refused_in_one_line(tmp_path):
    path = str(tmp_path / "evil.pt")
    torch.save({"w": torch.ones(3), "obj": Payload()}, path)
    with pytest.raises(UntrustedCheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(path) and "--trust_checkpoint true" in message
    assert "Payload" in message
    trusted = read_checkpoint(path, trust=True)
    assert trusted["obj"].note == "hello" and torch.equal(trusted["w"], torch.ones(3))


def test_plain_state_dicts_load_memory_mapped_and_are_released(tmp_path):
    path = str(tmp_path / "plain.pt")
    state = tiny_state()
    torch.save(state, path)
    loaded = read_checkpoint(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
    assert mapped(path)  # tensors come from the file's pages, not from a copy read into memory
    del loaded
    gc.collect()
    assert not mapped(path)


def test_legacy_and_garbage_files(tmp_path):
    legacy = str(tmp_path / "legacy.pt")
    torch.save({"w": torch.arange(4.0)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(legacy)["w"], torch.arange(4.0))  # not a zip: read without mmap
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=f"^{junk}: not a readable PyTorch checkpoint") as err:
        read_checkpoint(str(junk))
    assert not isinstance(err.value, UntrustedCheckpointError)


def test_eval_refuses_a_pickled_checkpoint_unless_trusted(tmp_path, image_folders, monkeypatch):
    path = lightning_file(tmp_path / "net.ckpt", Payload())
    with pytest.raises(UntrustedCheckpointError, match="--trust_checkpoint true"):
        run(str(tmp_path / "a"), path, image_folders)
    reads = []
    monkeypatch.setattr(cli, "read_checkpoint", lambda p, trust=False: reads.append(p) or read_checkpoint(p, trust))
    out = run(str(tmp_path / "b"), path, image_folders, "--trust_checkpoint", "true")
    assert len(os.listdir(os.path.join(out, "inpainted"))) > 0
    # read once (the config step's copy went to the load step) and not kept for the run
    assert reads == [path] and cli._KEPT_CHECKPOINTS == {}
    gc.collect()
    assert not mapped(path)
