"""Keep masks (1 = known, 0 = to fill) for the paper's mask types, LaMa's random masks, and boxes.

Every mask is a float32 tensor ``[1, size, size]`` and is deterministic per
``(seed, image_id)``.  Types, under the original RePaint config names:

* ``thick``, ``thin``, ``medium``: LaMa's random masks (strokes, and for thick/medium boxes) with
  the parameters of LaMa's ``random_{thick,thin,medium}_256`` generators, scaled to the image size;
  a mask that hides more than half the image is drawn again (LaMa's ``max_tamper_area``).
* ``nn2``: super-resolution 2×, every second pixel of every second row known.
* ``ev2li``: alternating lines, every second row known.
* ``genhalf``: one half known (``side``: left, right, top, bottom, or random per image).
* ``ex64``: expand, only the centre ``size/4`` square known (64×64 at 256).
* ``box``: one rectangular hole of random size (a quarter to a half of the side) and position.
* ``outpaint``: only the centre square of half the side known (extend a texture 2× each way).
* ``hole``: the centre square of half the side unknown (a large hole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

MASK_TYPES = ("thick", "thin", "medium", "nn2", "ev2li", "genhalf", "ex64", "box", "outpaint", "hole")
PAPER_MASK_TYPES = ("thick", "thin", "nn2", "ev2li", "genhalf", "ex64")
Side = Literal["random", "left", "right", "top", "bottom"]


@dataclass(frozen=True)
class StrokeParams:
    """LaMa's irregular-stroke parameters at 256×256 (lengths and widths in pixels)."""

    min_times: int
    max_times: int
    max_width: int
    max_angle: int
    max_len: int


@dataclass(frozen=True)
class BoxParams:
    """LaMa's random-rectangle parameters at 256×256."""

    margin: int
    bbox_min_size: int
    bbox_max_size: int
    min_times: int
    max_times: int


# (strokes, boxes or None, probability of boxes relative to strokes): LaMa's configs/data_gen/random_*_256.yaml
LAMA_PARAMS: dict[str, tuple[StrokeParams, Optional[BoxParams], float]] = {
    "thick": (StrokeParams(1, 5, 100, 4, 200), BoxParams(10, 30, 150, 1, 3), 0.3),
    "thin": (StrokeParams(4, 50, 10, 4, 40), None, 0.0),
    "medium": (StrokeParams(4, 5, 50, 4, 100), BoxParams(0, 10, 50, 1, 5), 0.3),
}
MAX_HOLE_FRACTION = 0.5


def mask_rng(seed: int, image_id: int, kind: str) -> np.random.Generator:
    """The generator of one image's mask: independent of every other image, seed and mask type."""
    return np.random.default_rng([int(seed), int(image_id), int.from_bytes(kind.encode(), "little") % 2**63])


def _stroke(hole: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], thickness: int) -> None:
    """Mark the pixels OpenCV's ``cv2.line(hole, p0, p1, 1, thickness)`` paints (x, y points; LaMa's brush).

    OpenCV draws a thick line as a filled quadrilateral of half-width ``ceil(thickness / 2)``
    (an odd thickness is widened by half a pixel each side) whose rows are filled between
    the rounded edge positions, plus a filled circle of that radius at each end.  Here: a
    pixel centre is painted when it lies within that radius of an end point, or beside the
    segment within the half-width plus the half pixel the row rounding adds (0.5·|dy|/length).
    """
    radius = math.ceil(thickness / 2)
    (x0, y0), (x1, y1) = p0, p1
    h, w = hole.shape
    top, left = max(0, min(y0, y1) - radius - 1), max(0, min(x0, x1) - radius - 1)
    bottom, right = min(h, max(y0, y1) + radius + 2), min(w, max(x0, x1) + radius + 2)
    if top >= bottom or left >= right:
        return
    ys, xs = np.arange(top - y0, bottom - y0)[:, None], np.arange(left - x0, right - x0)[None, :]  # from p0
    dx, dy = x1 - x0, y1 - y0
    painted = (xs**2 + ys**2 <= radius**2) | ((xs - dx) ** 2 + (ys - dy) ** 2 <= radius**2)
    if dx or dy:
        length2 = dx * dx + dy * dy
        along = xs * dx + ys * dy  # in units of length²: the segment is 0 .. length²
        across = np.abs(xs * dy - ys * dx)  # in units of length
        limit = radius * math.sqrt(length2) + 0.5 * abs(dy)
        painted |= (along >= 0) & (along <= length2) & (across <= limit)
    hole[top:bottom, left:right] |= painted


LAMA_TWO_PI = 2 * 3.1415926  # LaMa's constant for mirroring the angle of every other stroke


def lama_strokes(size: int, p: StrokeParams, rng: np.random.Generator) -> np.ndarray:
    """Hole mask of random polylines with random brush widths (LaMa's ``make_random_irregular_mask``).

    LaMa's ``RandomIrregularMaskGenerator`` hands ``max_times + 1`` on as the inclusive upper
    bound, so there are ``min_times .. max_times + 1`` strokes; each of 1..5 segments has an
    angle of 0.01 + {0..max_angle-1} radians (mirrored for every other stroke), a length
    of 10 + {0..max_len-1} and a brush of 5 + {0..max_width-1} pixels (at 256², scaled to ``size``).
    """
    s = size / 256
    hole = np.zeros((size, size), bool)
    for i in range(rng.integers(p.min_times, p.max_times + 2)):
        x, y = int(rng.integers(size)), int(rng.integers(size))
        for _ in range(1 + rng.integers(5)):
            angle = 0.01 + rng.integers(p.max_angle)
            angle = LAMA_TWO_PI - angle if i % 2 == 0 else angle
            length = (10 + rng.integers(p.max_len)) * s
            thickness = max(1, round((5 + rng.integers(p.max_width)) * s))
            x1 = int(np.clip(np.trunc(x + length * np.sin(angle)), 0, size))  # LaMa: astype(int32), then clip
            y1 = int(np.clip(np.trunc(y + length * np.cos(angle)), 0, size))
            _stroke(hole, (x, y), (x1, y1), thickness)
            x, y = x1, y1
    return hole


def lama_boxes(size: int, p: BoxParams, rng: np.random.Generator) -> np.ndarray:
    """Hole mask of random rectangles (LaMa's ``make_random_rectangle_mask``).

    LaMa's ``RandomRectangleMaskGenerator`` hands ``bbox_max_size + 1`` on as the exclusive
    bound, so sides reach ``bbox_max_size`` (150 px for thick at 256²); ``min_times .. max_times`` boxes.
    """
    s = size / 256
    margin, lo = round(p.margin * s), max(1, round(p.bbox_min_size * s))
    hi = max(lo + 1, min(round(p.bbox_max_size * s) + 1, size - 2 * margin))
    hole = np.zeros((size, size), bool)
    for _ in range(rng.integers(p.min_times, p.max_times + 1)):
        bw, bh = rng.integers(lo, hi), rng.integers(lo, hi)
        x, y = rng.integers(margin, size - margin - bw + 1), rng.integers(margin, size - margin - bh + 1)
        hole[y : y + bh, x : x + bw] = True
    return hole


def lama_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A LaMa random hole mask (strokes or boxes) hiding at most half of the image."""
    strokes, boxes, box_proba = LAMA_PARAMS[kind]
    while True:
        use_boxes = boxes is not None and rng.random() < box_proba / (1 + box_proba)
        hole = lama_boxes(size, boxes, rng) if use_boxes else lama_strokes(size, strokes, rng)
        if hole.mean() <= MAX_HOLE_FRACTION:
            return hole


def half_keep(size: int, side: str) -> np.ndarray:
    keep, half = np.zeros((size, size), bool), size // 2
    region = {"left": np.s_[:, :half], "right": np.s_[:, half:], "top": np.s_[:half, :], "bottom": np.s_[half:, :]}
    keep[region[side]] = True
    return keep


def box_hole(size: int, rng: np.random.Generator) -> np.ndarray:
    bh, bw = rng.integers(size // 4, size // 2 + 1, size=2)
    y, x = rng.integers(0, size - bh + 1), rng.integers(0, size - bw + 1)
    hole = np.zeros((size, size), bool)
    hole[y : y + bh, x : x + bw] = True
    return hole


def keep_mask(kind: str, size: int, seed: int = 0, image_id: int = 0, side: Side = "random") -> torch.Tensor:
    """The keep mask ``[1, size, size]`` (1 = known) of type ``kind`` for one image."""
    rng = mask_rng(seed, image_id, kind)
    ys, xs = np.mgrid[0:size, 0:size]
    if kind in LAMA_PARAMS:
        keep = ~lama_mask(kind, size, rng)
    elif kind == "nn2":
        keep = (ys % 2 == 0) & (xs % 2 == 0)
    elif kind == "ev2li":
        keep = ys % 2 == 0
    elif kind == "genhalf":
        keep = half_keep(size, side if side != "random" else ("left", "right", "top", "bottom")[rng.integers(4)])
    elif kind in ("ex64", "outpaint", "hole"):
        side = size // 4 if kind == "ex64" else size // 2
        lo, hi = (size - side) // 2, (size - side) // 2 + side
        centre = (ys >= lo) & (ys < hi) & (xs >= lo) & (xs < hi)
        keep = ~centre if kind == "hole" else centre
    elif kind == "box":
        keep = ~box_hole(size, rng)
    else:
        raise ValueError(f"mask type {kind!r} is unknown; known: {', '.join(MASK_TYPES)}")
    return torch.from_numpy(keep.astype(np.float32))[None]
