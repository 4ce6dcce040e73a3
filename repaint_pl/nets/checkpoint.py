"""Reading weight files: guided-diffusion ``.pt`` state dicts and this project's Lightning ``.ckpt``.

Every failure is one line naming the file: missing file, unreadable file, or weights
that do not fit the architecture (listing the first missing, unexpected and
wrongly-shaped keys).
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from typing import Any, Mapping

import torch
from torch import nn


class CheckpointError(ValueError):
    """A weight file that cannot be used; the message is one line and names the file."""


class UntrustedCheckpointError(CheckpointError):
    """A file that holds pickled Python objects: loading it would run code from the file."""


TRUST_OPTION = "--trust_checkpoint true"


def read_checkpoint(path: str, trust: bool = False) -> dict[str, Any]:
    """The dict stored in ``path``, its tensors memory-mapped from the file when it is a zip archive.

    Always read with ``weights_only=True`` (tensors, numbers, strings and containers)
    unless ``trust``: a file that needs other Python objects is refused in one line.
    Memory-mapped tensors cost no host memory until read, and the pages go back to
    the OS once the returned dict is dropped.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise _unpickling_error(path, str(e)) from None
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict or a Lightning checkpoint, found {type(obj).__name__}")
    return obj


def _unpickling_error(path: str, message: str) -> CheckpointError:
    """One line for a file that ``weights_only`` refused: a Python object it would build, or garbage."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if not found:
        return CheckpointError(f"{path}: not a readable PyTorch checkpoint (not a weights file)")
    return UntrustedCheckpointError(
        f"{path}: holds a pickled Python object ({found.group(1)}); unpickling it can run code from the file, "
        f"so it is refused: pass {TRUST_OPTION} only if you trust where the file comes from"
    )


def is_lightning_checkpoint(obj: Mapping[str, Any]) -> bool:
    return "state_dict" in obj and "pytorch-lightning_version" in obj


def sub_state_dict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries under ``prefix.`` with the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}


def _preview(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_fits(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str = "the network") -> None:
    """Raise CheckpointError unless ``state`` loads into ``module`` with ``strict=True``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"missing keys {_preview(missing)}" if missing else "",
        f"unexpected keys {_preview(unexpected)}" if unexpected else "",
        f"shape mismatch {_preview(shapes, 2)}" if shapes else "",
    ]
    if any(problems):
        detail = "; ".join(p for p in problems if p)
        raise CheckpointError(f"{source}: weights do not fit {what} (wrong file or preset?): {detail}")


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming ``source`` and the first floating-point tensor holding NaN or inf."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source}: weights hold non-finite values (NaN or inf), first in {key} ({bad} of {value.numel()}); "
                f"the training run that made them diverged: use an earlier checkpoint"
            )


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str = "the network") -> None:
    """Strict load of ``state`` into ``module`` (dtypes follow the module, e.g. fp16 torso); weights that
    hold NaN or inf (a diverged training run) are refused."""
    check_fits(module, state, source, what)
    check_finite(state, source)
    module.load_state_dict(state, strict=True)
