"""Measurements the apps share: wall-clock time of a block on a device, and errors of fills.

Per-image errors come from ``repaint_pl.scoring`` (the metrics eval.py writes); here are only what the
apps add on top of them: the seam band of a hole and the distance between several fills of one input.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Union

import torch
from torch import Tensor


def timed(fn: Callable[[], Any], device: Union[str, torch.device]) -> float:
    """Seconds that ``fn()`` takes on ``device`` (CUDA: synchronised before and after, so queued work counts)."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def seam_band(keep: Tensor, width: int) -> Tensor:
    """The unknown pixels at most ``width`` pixels (chessboard distance) from a known one: ``keep`` ``[N, 1, H, W]``
    (1 = known) -> a boolean ``[N, 1, H, W]``."""
    known = keep > 0.5
    near = torch.nn.functional.max_pool2d(known.float(), 2 * width + 1, 1, width) > 0
    return near & ~known


def pairwise_fill_distance(samples: Tensor, keep: Tensor) -> float:
    """Mean over pairs of samples of the RMS pixel difference in the filled region.

    ``samples`` ``[S, C, H, W]`` (S ≥ 2 fills of one input, one value range), ``keep`` ``[1, H, W]`` (1 = known).
    """
    pairs = list(itertools.combinations(range(len(samples)), 2))
    a, b = samples[[i for i, _ in pairs]], samples[[j for _, j in pairs]]
    fill = (keep < 0.5)[None].expand(len(pairs), 1, *keep.shape[-2:])
    from repaint_pl.scoring import masked_mean  # (the metrics' imports load when a distance is measured)

    return float(masked_mean((a - b) ** 2, fill).sqrt().mean())
