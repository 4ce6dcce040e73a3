"""Crop-and-stitch: inpaint the holes of a large photo at the model's size, paste the fills back.

A model works at one size ``S`` (64, 256, 512 …); a photo is 3000×2000.  Instead of shrinking the
whole photo (and losing its detail) or cropping its centre (and perhaps losing the hole), each hole
is inpainted in a crop around it:

1. ``hole_boxes``: the connected components of the hole (8-connected), each bounding box widened by
   ``pad`` pixels of context on every side; components whose padded boxes overlap (or touch) are merged
   into one region (until no two regions' boxes do).  Each region's box is then grown to the model's aspect and to at
   least the model's size, its sides rounded up to a multiple of ``factor`` (the space's downsampling
   factor, 8 for Stable Diffusion's VAE), and shifted (clipped) into the image.
2. ``crop``: each box cut out and resized to the model's size (bicubic with antialiasing, like PIL);
   the crop's keep mask marks a model pixel known only if no hole pixel can reach it through the
   resize (the hole is widened by the filter's reach), so nothing of the hole leaks into the context.
3. the model fills all crops in one batch (``inpaint_fn``: one call, one model-size crop per region).
4. ``stitch``: each fill resized back to its box (bicubic) and written into the full photo at the hole
   pixels of its own region only.  Every other pixel keeps the input's bytes exactly; with
   ``feather`` > 0 the known pixels within ``feather`` of the hole are blended towards the fill.

``inpaint_crops`` runs the four steps.  Pictures are uint8 arrays ``[H, W, C]`` (or ``[H, W]`` grey), the
form in which "the known pixels are the input's bytes" is exact; keep masks are ``[H, W]`` or
``[1, H, W]`` arrays or tensors, 1 (or True, or 255 in uint8) = known.  The model sees float tensors
``[K, C, S, S]`` in [-1, 1] and keep masks ``[K, 1, S, S]`` (1 = known).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

Size = Union[int, tuple[int, int]]  # the model's size: S (square) or (height, width)
InpaintFn = Callable[[Tensor, Tensor], Tensor]  # ([K, C, S, S] in [-1, 1], [K, 1, S, S] keep) -> [K, C, S, S]
FILTER_REACH = 2  # bicubic reaches 2 pixels of the smaller grid on each side


class CropError(ValueError):
    """Bad arguments of crop-and-stitch (one line naming the argument)."""


@dataclass(frozen=True)
class Box:
    """A crop of the full picture: ``top``, ``left``, ``height``, ``width`` in pixels; ``hole`` the
    (top, left, bottom, right) bounds, bottom/right exclusive, of the hole pixels this crop fills (the
    ``hole`` bounds of two boxes never overlap, so every hole pixel is filled by exactly one crop)."""

    top: int
    left: int
    height: int
    width: int
    hole: tuple[int, int, int, int]

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def as_list(self) -> list[int]:
        """``[top, left, height, width, hole top, hole left, hole bottom, hole right]`` (JSON, batches)."""
        return [self.top, self.left, self.height, self.width, *self.hole]

    @classmethod
    def from_list(cls, values: Sequence[int]) -> "Box":
        v = [int(x) for x in values]
        return cls(v[0], v[1], v[2], v[3], (v[4], v[5], v[6], v[7]))


def model_size(size: Size) -> tuple[int, int]:
    """``S`` or ``(H, W)`` -> ``(H, W)``, each a positive integer."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise CropError(f"size: expected positive sides, got {size}")
    return int(h), int(w)


def as_keep(keep: Any) -> np.ndarray:
    """A keep mask as bool ``[H, W]`` (True = known) from ``[H, W]``, ``[1, H, W]`` or ``[H, W, 1]``
    (numpy or torch): bool as it is, uint8 at 128 (0/255 masks), other numbers at 0.5 (1 = known)."""
    arr = keep.detach().cpu().numpy() if isinstance(keep, Tensor) else np.asarray(keep)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
    if arr.ndim != 2:
        raise CropError(f"keep mask: expected [H, W] or [1, H, W], got shape {list(arr.shape)}")
    if arr.dtype == bool:
        return arr
    return arr >= 128 if arr.dtype == np.uint8 else arr >= 0.5


def _snap(length: float, factor: int) -> int:
    return int(math.ceil(length / factor - 1e-9)) * factor


def _bounds(found: tuple[slice, slice]) -> list[int]:
    rows, cols = found
    return [rows.start, cols.start, rows.stop, cols.stop]


def _merge_boxes(shape: tuple[int, int], boxes: list[list[int]]) -> np.ndarray:
    """Labels ``[H, W]`` of groups of ``boxes`` ([top, left, bottom, right)) that overlap or touch, until the
    groups' bounding boxes do neither (each round paints the boxes and labels the painted areas)."""
    count = len(boxes)
    while True:
        canvas = np.zeros(shape, bool)
        for t, l, b, r in boxes:
            canvas[t:b, l:r] = True
        groups, n = ndimage.label(canvas)
        if n == count:
            return groups
        boxes, count = [_bounds(f) for f in ndimage.find_objects(groups)], n


def hole_regions(keep: np.ndarray, pad: int) -> list[tuple[list[int], list[int]]]:
    """Regions of the hole: (padded bounds, hole bounds) per group of 8-connected hole components whose
    ``pad``-widened bounds (clipped to the picture) overlap or touch, merged until no two regions' padded
    bounds do; bounds are [top, left, bottom, right), sorted by the hole's top-left corner."""
    h, w = keep.shape
    hole = ~keep
    labels, count = ndimage.label(hole, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    padded = [[max(0, t - pad), max(0, l - pad), min(h, b + pad), min(w, r + pad)]
              for t, l, b, r in map(_bounds, ndimage.find_objects(labels))]  # fmt: skip
    groups = _merge_boxes(keep.shape, padded)
    outer = ndimage.find_objects(groups)
    holes = ndimage.find_objects(np.where(hole, groups, 0), max_label=len(outer))
    regions = [(_bounds(o), _bounds(i)) for o, i in zip(outer, holes)]
    return sorted(regions, key=lambda r: (r[1][0], r[1][1]))


def _side(needed: float, hole: int, limit: int, factor: int) -> int:
    """A box side: ``needed`` rounded up to ``factor``, at most the picture's ``limit`` (rounded down to
    ``factor`` while that still holds the hole's extent, else the whole side)."""
    side = _snap(needed, factor)
    fit = (limit // factor) * factor
    return min(side, fit if fit >= hole else limit)


def _place(centre: float, side: int, hole_lo: int, hole_hi: int, limit: int) -> int:
    """The box's start: centred on ``centre``, holding [hole_lo, hole_hi), inside [0, limit)."""
    start = int(round(centre - side / 2))
    start = min(max(start, hole_hi - side), hole_lo)
    return min(max(start, 0), limit - side)


def grow_box(padded: Sequence[int], hole: Sequence[int], shape: tuple[int, int], size: Size, factor: int) -> Box:
    """The crop box of one region: ``padded`` grown to the model's aspect and at least its size, sides
    rounded up to ``factor`` and clipped into the picture ``shape`` (H, W); it always holds ``hole``."""
    (H, W), (sh, sw) = shape, model_size(size)
    scale = max((padded[2] - padded[0]) / sh, (padded[3] - padded[1]) / sw, 1.0)
    height = _side(scale * sh, hole[2] - hole[0], H, factor)
    width = _side(scale * sw, hole[3] - hole[1], W, factor)
    top = _place((padded[0] + padded[2]) / 2, height, hole[0], hole[2], H)
    left = _place((padded[1] + padded[3]) / 2, width, hole[1], hole[3], W)
    return Box(top, left, height, width, tuple(int(v) for v in hole))


def hole_boxes(keep_mask_full: Any, pad: int, size: Size, factor: int = 1) -> list[Box]:
    """One crop box per hole region of a full-resolution keep mask (1 = known; see ``as_keep``).

    Each box holds its region's hole plus up to ``pad`` pixels of context on every side, has the
    model's aspect (square for an int ``size``) and at least its size, sides a multiple of ``factor``,
    and lies inside the picture (a picture narrower than that gives a narrower box).  No hole: [].
    """
    if int(pad) < 0:
        raise CropError(f"crop_to_mask: the padding must be >= 0 pixels, got {pad}")
    if int(factor) < 1:
        raise CropError(f"factor: expected a positive integer, got {factor}")
    keep = as_keep(keep_mask_full)
    return [grow_box(p, h, keep.shape, size, int(factor)) for p, h in hole_regions(keep, int(pad))]


def enclosing_box(keep_mask_full: Any, pad: int, size: Size, factor: int = 1) -> Optional[Box]:
    """One crop box around every hole pixel (as ``hole_boxes`` would make for a single region), or None
    without a hole: for callers that inpaint one crop per picture (the studio)."""
    boxes = hole_boxes(keep_mask_full, pad, size, factor)
    if len(boxes) <= 1:
        return boxes[0] if boxes else None
    keep = as_keep(keep_mask_full)
    H, W = keep.shape
    hole = [min(b.hole[0] for b in boxes), min(b.hole[1] for b in boxes)]
    hole += [max(b.hole[2] for b in boxes), max(b.hole[3] for b in boxes)]
    padded = [max(0, hole[0] - pad), max(0, hole[1] - pad), min(H, hole[2] + pad), min(W, hole[3] + pad)]
    return grow_box(padded, hole, keep.shape, size, int(factor))


def _float_image(picture: np.ndarray) -> Tensor:
    """uint8 ``[H, W, C]`` / ``[H, W]`` -> float32 ``[C, H, W]`` in [-1, 1]."""
    arr = torch.from_numpy(np.ascontiguousarray(picture)).float()
    arr = arr[..., None] if arr.ndim == 2 else arr
    return arr.permute(2, 0, 1) / 127.5 - 1


def resize(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """``[..., C, h, w]`` float -> ``[..., C, H, W]``: bicubic with antialiasing (as PIL), unchanged if same size."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=shape, mode="bicubic", antialias=True, align_corners=False)
    return y.reshape(*lead, *y.shape[-3:])


def crop_keep(hole: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """The keep mask ``[1, H, W]`` at model size of a crop's hole (bool ``[h, w]``): exact at the same size,
    else a model pixel is known only if no hole pixel falls in it or within the resize filter's reach."""
    x = torch.from_numpy(hole).float()[None, None]
    if tuple(hole.shape) == tuple(shape):
        return 1 - x[0]
    touched = F.adaptive_max_pool2d(x, shape)
    k = 2 * FILTER_REACH + 1
    touched = F.max_pool2d(touched, k, stride=1, padding=FILTER_REACH)
    return 1 - touched[0]


def crop(picture: np.ndarray, keep_full: Any, boxes: Sequence[Box], size: Size) -> tuple[Tensor, Tensor]:
    """The model's inputs for ``boxes`` of ``picture`` (uint8): crops ``[K, C, H, W]`` in [-1, 1] and their keep
    masks ``[K, 1, H, W]`` (1 = known), ``(H, W)`` the model's ``size``."""
    shape, keep = model_size(size), as_keep(keep_full)
    check_picture(picture, keep)
    images = [resize(_float_image(picture[b.slices]), shape).clamp(-1, 1) for b in boxes]
    keeps = [crop_keep(~keep[b.slices], shape) for b in boxes]
    if not boxes:
        c = 1 if picture.ndim == 2 else picture.shape[2]
        return torch.zeros(0, c, *shape), torch.zeros(0, 1, *shape)
    return torch.stack(images), torch.stack(keeps)


def check_picture(picture: np.ndarray, keep: np.ndarray) -> None:
    if not isinstance(picture, np.ndarray) or picture.dtype != np.uint8 or picture.ndim not in (2, 3):
        what = f"{picture.dtype} {list(picture.shape)}" if isinstance(picture, np.ndarray) else type(picture).__name__
        raise CropError(f"picture: expected a uint8 array [H, W, C] or [H, W], got {what}")
    if picture.shape[:2] != keep.shape:
        raise CropError(f"keep mask: {list(keep.shape)} but the picture is {list(picture.shape[:2])}")


def owned_hole(keep: np.ndarray, box: Box) -> np.ndarray:
    """bool ``[height, width]``: the hole pixels inside ``box`` that it fills (those of its own region)."""
    hole = ~keep[box.slices]
    owned = np.zeros_like(hole)
    t, l, b, r = box.hole
    owned[t - box.top : b - box.top, l - box.left : r - box.left] = True
    return hole & owned


def seam_weight(hole: np.ndarray, feather: int) -> np.ndarray:
    """float ``[h, w]``: how much of the fill a pixel takes (1 in the hole, fading to 0 over the ``feather``
    known pixels nearest it, 0 beyond): spaces.paste's known-side feather."""
    known = torch.from_numpy(~hole).float()[None, None]
    if feather <= 0:
        return 1 - known[0, 0].numpy()
    blurred = F.avg_pool2d(known, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False)
    return (1 - torch.minimum(known, blurred))[0, 0].numpy()


def to_levels(x: Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> float64 ``[H, W, C]`` levels in [0, 255], computed in float32 as eval.py's
    writer does (``(x + 1)·127.5``), not yet cut to integers."""
    return ((x.float() + 1) * 127.5).clamp(0, 255).permute(1, 2, 0).double().numpy()


def stitch(
    full_image_uint8: np.ndarray, keep_full: Any, crops_results: Tensor, boxes: Sequence[Box], feather: int = 0
) -> np.ndarray:
    """The full picture with each crop's fill (``crops_results`` ``[K, C, h, w]`` in [-1, 1], any model size)
    resized back to its box and written at the hole pixels it owns.

    Returns a new uint8 array like ``full_image_uint8``.  With ``feather`` 0 only hole pixels change and
    every known pixel is the input's byte; with ``feather`` > 0 the known pixels within ``feather`` of a
    hole are blended towards the fill too.  Levels are cut like eval.py's writer (``(x + 1)·127.5``, truncated).
    """
    keep = as_keep(keep_full)
    check_picture(full_image_uint8, keep)
    if len(crops_results) != len(boxes):
        raise CropError(f"stitch: {len(crops_results)} crop results for {len(boxes)} boxes")
    out = full_image_uint8.copy()
    view = out[..., None] if out.ndim == 2 else out
    for result, box in zip(crops_results, boxes):
        fill = to_levels(resize(result.detach().float().cpu(), (box.height, box.width)))
        if fill.shape[2] != view.shape[2]:
            raise CropError(f"stitch: {fill.shape[2]}-channel results for a {view.shape[2]}-channel picture")
        weight = seam_weight(owned_hole(keep, box), feather)
        region = view[box.slices]
        change = weight > 0
        blend = weight[..., None] * fill + (1 - weight[..., None]) * region.astype(np.float64)
        region[change] = np.floor(blend[change]).astype(np.uint8)  # weight 1: the fill's level, truncated
    return out


def inpaint_crops(
    image_full: np.ndarray,
    keep_full: Any,
    size: Size,
    pad: int,
    factor: int,
    inpaint_fn: InpaintFn,
    feather: int = 0,
) -> np.ndarray:
    """Inpaint a full-resolution picture crop by crop (see the module docstring); returns the stitched picture.

    ``image_full`` uint8 ``[H, W, C]`` or ``[H, W]``; ``keep_full`` ``[H, W]`` or ``[1, H, W]`` (1 = known);
    ``size`` the model's size (``S`` or ``(H, W)``, a multiple of ``factor``); ``pad`` pixels of context
    around each hole; ``factor`` the space's downsampling factor (1 for pixels).  ``inpaint_fn`` is called
    once with all crops, ``[K, C, S, S]`` in [-1, 1] and their keep masks ``[K, 1, S, S]``, and returns
    ``[K, C, S, S]`` in [-1, 1].  Returns a uint8 array like ``image_full`` whose known pixels are its bytes
    (with ``feather`` 0).  A mask without a hole returns a copy, and ``inpaint_fn`` is not called.
    """
    shape = model_size(size)
    if shape[0] % int(factor) or shape[1] % int(factor):
        raise CropError(f"size: {shape[0]}x{shape[1]} is not a multiple of the space's factor {factor}")
    boxes = hole_boxes(keep_full, pad, shape, factor)
    if not boxes:
        return np.array(image_full, copy=True)
    images, keeps = crop(image_full, keep_full, boxes, shape)
    results = inpaint_fn(images, keeps)
    if tuple(results.shape) != tuple(images.shape):
        raise CropError(f"inpaint_fn: returned {list(results.shape)}, expected {list(images.shape)}")
    return stitch(image_full, keep_full, results, boxes, feather)


__all__ = [
    "Box",
    "CropError",
    "as_keep",
    "crop",
    "enclosing_box",
    "hole_boxes",
    "hole_regions",
    "inpaint_crops",
    "resize",
    "stitch",
]
