"""Reading images and masks the way the original RePaint / guided-diffusion code does.

Images become float32 ``[C, H, W]`` in ``[-1, 1]`` (x/127.5 - 1); masks become float32 in
``[0, 1]`` (x/255, 1 = known).  Resizing is guided-diffusion's: halve with a BOX filter
while the short side is at least twice the target, resize the short side to the target
with BICUBIC, then crop the centre.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class ImageFileError(ValueError):
    """An image or mask file that cannot be used; the message is one line naming the file."""


def list_images(root: str) -> list[str]:
    """All image files below ``root``, sorted by path (the original's order)."""
    if not os.path.isdir(root):
        raise ImageFileError(f"{root}: folder not found")
    found = [
        os.path.join(d, f)
        for d, _, files in os.walk(root, followlinks=True)
        for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS)
    ]
    if not found:
        raise ImageFileError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return sorted(found)


def open_rgb(path: str, mode: str = "RGB") -> Image.Image:
    """Open and fully decode an image file, converted to ``mode``."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except FileNotFoundError:
        raise ImageFileError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: unreadable or corrupt image ({e.__class__.__name__})") from None


def image_size_of(path: str) -> tuple[int, int]:
    """(width, height) of an image file, read from its header."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise ImageFileError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: unreadable or corrupt image ({e.__class__.__name__})") from None


def center_crop_resize(image: Image.Image, size: int) -> np.ndarray:
    """guided-diffusion's ``center_crop_arr``: BOX halvings, BICUBIC to the size, centre crop. Returns uint8 HWC."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(s // 2 for s in image.size), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(s * scale) for s in image.size), resample=Image.BICUBIC)
    arr = np.array(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top : top + size, left : left + size]


def to_chw(arr: np.ndarray) -> torch.Tensor:
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def load_image(path: str, size: int, channels: int = 3) -> torch.Tensor:
    """An image file as float32 ``[channels, size, size]`` in [-1, 1]."""
    arr = center_crop_resize(open_rgb(path, "RGB" if channels == 3 else "L"), size)
    return to_chw(arr.astype(np.float32) / 127.5 - 1)


def load_mask(path: str, size: int, invert: bool = False) -> torch.Tensor:
    """A mask file as float32 ``[3, size, size]`` in [0, 1], 1 = known (255 in the file, or 0 with ``invert``)."""
    arr = center_crop_resize(open_rgb(path), size).astype(np.float32) / 255.0
    return to_chw(1.0 - arr if invert else arr)


def is_binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())
