"""Shared fixtures: tiny random networks and small image folders made from scikit-image's photos."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from repaint_pl.nets import UNetConfig
from repaint_pl.tiny import randomize  # noqa: F401  (tests import it from here)

# tests never download: LPIPS/FID backbones come from $TORCH_HOME only (repaint_pl.scoring.load_backbone)
os.environ.setdefault("REPAINT_NO_DOWNLOAD", "1")

TINY = dict(preset="tiny")  # 32x32, 32 channels, learned variance




def photos(n: int = 3) -> list[tuple[str, np.ndarray]]:
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket"][:n]
    return [(name, getattr(data, name)()) for name in names]


def write_folder_pair(root: str, size: int = 32, n: int = 3) -> tuple[str, str]:
    """``root/gts`` with n photos and ``root/masks`` with n masks (255 = known, a hole in the middle)."""
    gts, masks = os.path.join(root, "gts"), os.path.join(root, "masks")
    os.makedirs(gts, exist_ok=True)
    os.makedirs(masks, exist_ok=True)
    for i, (name, img) in enumerate(photos(n)):
        Image.fromarray(img).save(os.path.join(gts, f"{name}.png"))
        h, w = img.shape[:2]  # masks have their image's size; after resizing, a hole in the middle
        m = np.full((h, w), 255, np.uint8)
        m[h // 4 : 3 * h // 4, w // 8 + i * w // size : w // 2 + i * w // size] = 0
        Image.fromarray(m).save(os.path.join(masks, f"{name}_mask.png"))
    return gts, masks


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    torch.save(randomize(UNetConfig(**TINY).build()).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory) -> tuple[str, str]:
    return write_folder_pair(str(tmp_path_factory.mktemp("data")))
