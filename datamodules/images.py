"""Reading images and masks: the one guarded entry point for image files, and the original's resizing.

Every image file the project reads (eval and train datamodules, the studio's uploads) is decoded by
``open_image`` / ``read_image``, which

* refuse a picture whose header announces more than ``max_pixels`` pixels *before* decoding it (a
  400 KB PNG can hold 20000×20000 pixels: a decompression bomb); the default is
  ``DEFAULT_MAX_PIXELS``, ``$REPAINT_MAX_PIXELS`` changes it;
* apply the EXIF orientation (a phone photo stored sideways is read upright);
* handle bit depths and modes: 16-bit levels are scaled to 8 bits (x/257), floating-point pixels in
  [0, 1] are fractions of 255, palette, CMYK, grey+alpha … are converted (alpha dropped); anything
  else (floats outside [0, 1], 32-bit integers beyond 16 bits, modes without an RGB conversion) is
  refused;
* take a path, bytes or an open binary file, and raise ``ImageFileError`` with one line that starts
  with the file's name (``name``, when given, instead of the path: no server temp path in messages).

Images become float32 ``[C, H, W]`` in ``[-1, 1]`` (x/127.5 - 1); masks become float32 in
``[0, 1]`` (x/255, 1 = known).  Resizing is guided-diffusion's: halve with a BOX filter
while the short side is at least twice the target, resize the short side to the target
with BICUBIC, then crop the centre.  8-bit RGB and grey files read exactly as the original reads
them (``Image.open(path).convert("RGB")``).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import BinaryIO, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 64_000_000  # a 48-megapixel phone photo and 8K frames pass; 8000² does not
MAX_PIXELS_ENV = "REPAINT_MAX_PIXELS"
EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]


class ImageFileError(ValueError):
    """An image or mask file that cannot be used; the message is one line naming the file."""


def max_pixels_limit(given: Optional[int] = None) -> int:
    """The pixel-count limit: ``given``, else ``$REPAINT_MAX_PIXELS``, else ``DEFAULT_MAX_PIXELS``."""
    if given is not None:
        return int(given)
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        return int(float(value))
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV}={value!r}: expected a number of pixels") from None


def _display_name(source: Source, name: Optional[str]) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) if isinstance(getattr(source, "name", None), str) else "<image>"


def _is_empty(source: Source) -> bool:
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.path.getsize(source) == 0
        except OSError:
            return False
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source) == 0
    return False


def _open_file(source: Source, name: str, max_pixels: Optional[int] = None) -> Image.Image:
    """``Image.open`` (header only), its errors as one line naming the file."""
    fp = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: our limit (below PIL's) decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except FileNotFoundError:
        raise ImageFileError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ImageFileError(f"{name}: a folder, not an image file") from None
    except PermissionError:
        raise ImageFileError(f"{name}: cannot read (permission denied)") from None
    except Image.DecompressionBombError as e:  # over PIL's hard limit: refused from the header too
        found = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        limit = max_pixels_limit(max_pixels)
        raise ImageFileError(f"{name}: {count}, over the limit of {limit:,} ({MAX_PIXELS_ENV})") from None
    except UnidentifiedImageError:
        if _is_empty(source):
            raise ImageFileError(f"{name}: empty file (0 bytes)") from None
        raise ImageFileError(f"{name}: unreadable or corrupt image (UnidentifiedImageError)") from None
    except Exception as e:  # PIL raises many types for broken headers
        raise ImageFileError(f"{name}: unreadable or corrupt image ({e.__class__.__name__})") from None


def _check_pixels(size: tuple[int, int], name: str, max_pixels: Optional[int]) -> None:
    limit = max_pixels_limit(max_pixels)
    w, h = size
    if w * h > limit:
        raise ImageFileError(f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {limit:,} ({MAX_PIXELS_ENV})")
    if w < 1 or h < 1:
        raise ImageFileError(f"{name}: {w}x{h}, no pixels")


def open_image(source: Source, name: Optional[str] = None, max_pixels: Optional[int] = None) -> Image.Image:
    """The guarded decoder: an image file (path, bytes or binary file) decoded as stored (any mode: L, RGB,
    I;16, F, …; the first frame of an animation), EXIF orientation applied.

    The pixel count is checked from the header before anything is decoded.  Raises ``ImageFileError``
    (one line starting with ``name``, default: the path) for a missing, empty, corrupt, truncated or
    too large file.
    """
    name = _display_name(source, name)
    im = _open_file(source, name, max_pixels)
    try:
        _check_pixels(im.size, name, max_pixels)
        try:
            im.load()
        except Exception as e:  # truncated data, bad chunks, …: PIL raises many types
            raise ImageFileError(f"{name}: unreadable or corrupt image ({e.__class__.__name__})") from None
        try:
            oriented = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block: the pixels as stored
            oriented = None
        return oriented if oriented is not None and oriented is not im else im.copy()
    finally:
        im.close()


def to_8bit(image: Image.Image, mode: str = "RGB", name: str = "<image>") -> Image.Image:
    """A decoded image as 8-bit ``mode`` (``RGB`` or ``L``): 16-bit levels scaled (x/257), float pixels in
    [0, 1] read as fractions of 255, other modes converted (alpha dropped); else ImageFileError."""
    if image.mode in SIXTEEN_BIT_MODES:
        arr = np.asarray(image)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageFileError(f"{name}: 32-bit integer pixels span [{lo}, {hi}]; save it with 8 or 16 bits")
        image = Image.fromarray(np.round(arr.astype(np.float64) / 257.0).astype(np.uint8), "L")
    elif image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ImageFileError(f"{name}: floating-point pixels include NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise ImageFileError(f"{name}: floating-point pixels span [{lo:g}, {hi:g}]; expected fractions in [0, 1]")
        image = Image.fromarray(np.round(arr * 255.0).astype(np.uint8), "L")
    if image.mode == mode:
        return image
    try:
        return image.convert(mode)
    except (ValueError, OSError) as e:
        raise ImageFileError(f"{name}: colour mode {image.mode} cannot be read as {mode} ({e})") from None


def read_image(
    source: Source, mode: str = "RGB", name: Optional[str] = None, max_pixels: Optional[int] = None
) -> Image.Image:
    """An image file as an 8-bit ``mode`` (``RGB`` or ``L``) picture, through ``open_image`` and ``to_8bit``."""
    name = _display_name(source, name)
    return to_8bit(open_image(source, name, max_pixels), mode, name)


def open_rgb(path: str, mode: str = "RGB") -> Image.Image:
    """An image file as 8-bit ``mode`` (``read_image``)."""
    return read_image(path, mode)


def open_decoded(path: str) -> Image.Image:
    """An image file decoded as stored (``open_image``)."""
    return open_image(path)


def image_size_of(path: str, name: Optional[str] = None) -> tuple[int, int]:
    """(width, height) of an image file as it will be read (EXIF orientation applied), from its header."""
    name = name or path
    im = _open_file(path, name)
    try:
        w, h = im.size
        _check_pixels((w, h), name, None)  # before getexif(), which may decode the whole image
        try:
            turned = im.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
        except Exception:
            turned = False
        return (h, w) if turned else (w, h)
    finally:
        im.close()


def list_images(root: str) -> list[str]:
    """All image files below ``root``, sorted by path (the original's order); a single image file is itself.

    Linked folders and files are followed, but every real folder is searched once and every real file
    listed once (under its own path when it lies below ``root``), so a link loop neither hangs nor
    multiplies the inputs.
    """
    if os.path.isfile(root):
        if root.lower().endswith(IMAGE_EXTENSIONS):
            return [root]
        raise ImageFileError(f"{root}: not an image file ({', '.join(IMAGE_EXTENSIONS)}) nor a folder of them")
    if not os.path.isdir(root):
        what = "broken link" if os.path.islink(root) else "no such file or folder"
        raise ImageFileError(f"{root}: {what}")
    found = _walk_once(root)
    if not found:
        raise ImageFileError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return found


def _walk_once(root: str) -> list[str]:
    """Image files below ``root``: real folders first (not following links), then linked folders not seen yet."""
    seen: set[str] = set()
    files: dict[str, tuple[bool, str]] = {}  # real path -> (reached through a link, path)
    pending = [(root, False)]
    while pending:
        top, linked = pending.pop(0)
        real_top = os.path.realpath(top)
        if real_top in seen:
            continue
        links = []
        for d, dirs, names in os.walk(top, followlinks=False):
            real = os.path.realpath(d)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            links += [os.path.join(d, x) for x in dirs if os.path.islink(os.path.join(d, x))]
            for f in names:
                if not f.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                path = os.path.join(d, f)
                key = (linked or os.path.islink(path), path)
                real_file = os.path.realpath(path)
                if real_file not in files or key < files[real_file]:
                    files[real_file] = key
        pending += [(link, True) for link in sorted(links)]
    return sorted(path for _, path in files.values())


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
    arr = center_crop_resize(read_image(path, "RGB" if channels == 3 else "L"), size)
    return to_chw(arr.astype(np.float32) / 127.5 - 1)


def load_mask(path: str, size: int, invert: bool = False, channels: int = 3) -> torch.Tensor:
    """A mask file as float32 ``[channels, size, size]`` in [0, 1], 1 = known (255 in the file, or 0 with
    ``invert``); ``channels`` follows the images (3 as the original reads masks, 1 for a grey model).

    The stored values are checked first (``mask_levels``): a mask file must be grey, with
    8-bit levels in [0, 255] (float files may hold [0, 1]).
    """
    return mask_tensor(read_mask_levels(path), size, invert, channels)


def read_mask_levels(path: str) -> np.ndarray:
    """A mask file's checked grey levels, uint8 ``[H, W]`` or ``[H, W, 3]`` (``mask_levels``)."""
    return mask_levels(open_image(path), path)


def mask_tensor(levels: np.ndarray, size: int, invert: bool = False, channels: int = 3) -> torch.Tensor:
    """Mask levels (``read_mask_levels``) resized and centre-cropped like the images: ``load_mask``'s result."""
    image = Image.fromarray(levels).convert("RGB" if channels == 3 else "L")
    arr = center_crop_resize(image, size).astype(np.float32) / 255.0
    return to_chw(1.0 - arr if invert else arr)


def keep_from_levels(levels: np.ndarray, invert: bool = False, threshold: float = 0.5) -> np.ndarray:
    """Full-resolution keep mask, bool ``[H, W]`` (True = known): a pixel is known when its level/255 (or
    1 - level/255 with ``invert``) is at least ``threshold`` in every channel."""
    known = levels.astype(np.float32) / 255.0
    known = 1.0 - known if invert else known
    known = known.min(axis=2) if known.ndim == 3 else known
    return known >= threshold


def center_square(height: int, width: int) -> tuple[slice, slice]:
    """The centred square of an ``height × width`` picture: the part ``center_crop_resize`` keeps."""
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return slice(top, top + side), slice(left, left + side)


def hole_lost_fraction(keep: np.ndarray) -> float:
    """The fraction of the hole (False pixels of a full-resolution keep mask ``[H, W]``) outside the centred
    square that resizing and centre-cropping keeps (0 for a mask without a hole)."""
    hole = int((~keep).sum())
    if hole == 0:
        return 0.0
    inside = int((~keep[center_square(*keep.shape)]).sum())
    return 1.0 - inside / hole


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
