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
    """All image files below ``root``, sorted by path (the original's order); a single image file is itself."""
    if os.path.isfile(root) and root.lower().endswith(IMAGE_EXTENSIONS):
        return [root]
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
    return open_decoded(path).convert(mode)


def open_decoded(path: str) -> Image.Image:
    """Open and fully decode an image file as stored (any mode: L, RGB, I;16, F, …)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
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
    """A mask file as float32 ``[3, size, size]`` in [0, 1], 1 = known (255 in the file, or 0 with ``invert``).

    The stored values are checked first (``mask_levels``): a mask file must be grey, with
    8-bit levels in [0, 255] (float files may hold [0, 1]).
    """
    image = Image.fromarray(mask_levels(open_decoded(path), path)).convert("RGB")
    arr = center_crop_resize(image, size).astype(np.float32) / 255.0
    return to_chw(1.0 - arr if invert else arr)


MASK_CHANNEL_TOLERANCE = 32  # largest difference between colour channels of a grey mask (JPEG noise)


def mask_levels(image: Image.Image, path: str) -> np.ndarray:
    """The grey levels of a decoded mask file as uint8 ``[H, W]`` (or ``[H, W, 3]``), checked.

    Raises ImageFileError (one line naming the file) for values outside [0, 255] (16-bit
    or float files; floats up to 1 are read as fractions of 255), for an 8-bit file that
    holds only 0 and 1 (a 0/1 mask would read as "fill everything"), and for colour
    channels that differ (a picture given as a mask).
    """
    image = image.convert("RGB") if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV") else image
    arr = np.asarray(image.convert("L") if image.mode == "1" else image)
    arr = arr[..., :-1] if image.mode in ("RGBA", "LA", "RGBa", "La") else arr  # alpha is not the mask
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 255:
        raise ImageFileError(f"{path}: mask values span [{lo:g}, {hi:g}], outside [0, 255] (255 = known)")
    if arr.dtype.kind == "f" and hi <= 1:
        arr = arr * 255.0
    elif arr.dtype.kind in "iub" and hi == 1:
        raise ImageFileError(f"{path}: mask holds only 0 and 1; save masks with 0 and 255 (255 = known)")
    if arr.ndim == 3 and arr.shape[2] > 1:
        spread = int((arr.max(axis=2).astype(np.float64) - arr.min(axis=2)).max())
        if spread > MASK_CHANNEL_TOLERANCE:
            raise ImageFileError(f"{path}: not a grey mask (its colour channels differ by up to {spread} levels)")
    return np.round(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[2] == 1 else arr).astype(np.uint8)


def is_binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())
