"""Paths into the checkout: the repository root, its configs and its shipped weights.

The library and the apps find the repository's files through these (never from their own ``__file__``);
they hold in an editable install and when run from the checkout.
"""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
WEIGHTS = os.path.join(ROOT, "weights")


def repo_path(*parts: str) -> str:
    """A path under the repository root (``repo_path("docs", "texture_study")``)."""
    return os.path.join(ROOT, *parts)


def config_path(*parts: str) -> str:
    """A file under ``configs/`` (``config_path("model", "celeba256.yaml")``)."""
    return os.path.join(CONFIGS, *parts)


def weights_path(name: str) -> str:
    """A shipped weights file under ``weights/`` (``weights_path("texture32_ema.pt")``)."""
    return os.path.join(WEIGHTS, name)


__all__ = ["ROOT", "CONFIGS", "WEIGHTS", "repo_path", "config_path", "weights_path"]
