"""Sampling: one table walk (``loop``), shared step maths (``steps``) and the samplers as step policies
(``policies``), over any ``repaint_pl.diffusion.NoiseProcess``.  Imports no Lightning.

Canonical class paths for configs: ``repaint_pl.sampling.RePaintSampler`` (the default),
``…DDIMRePaintSampler``, ``…DDNMSampler``, ``…DiffPIRSampler``, ``…CoarseTravelSampler``, ``…LanPaintSampler``,
``…SMCSampler`` (``exact_samplers``: samplers that converge to the exact conditional).  The old
paths ``repaint_pl.sampler.*`` / ``repaint_pl.samplers.*`` name the same classes.
"""

from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from ..diffusion import NoiseProcess
from ..noise import NoiseSource
from .exact_samplers import LanPaintSampler, SMCSampler
from .loop import Sampler, SamplerState, StepHook, StepState, walk
from .policies import (
    CoarseTravelSampler,
    DDIMRePaintSampler,
    DDNMSampler,
    DiffPIRSampler,
    RePaintSampler,
    coarse_grid,
)
from .steps import GradFn, ModelFn, Problem, inject_known, renoise, reverse_step

SAMPLERS = (
    RePaintSampler, DDIMRePaintSampler, DDNMSampler, DiffPIRSampler, CoarseTravelSampler, LanPaintSampler, SMCSampler
)  # fmt: skip
for _cls in (Sampler, SamplerState, StepState, *SAMPLERS):
    _cls.__module__ = __name__  # one public path per class (configs and fingerprints name it)


def repaint(
    model_fn: ModelFn,
    x0: Tensor,
    keep_mask: Tensor,
    times: Sequence[int],
    diffusion: NoiseProcess,
    noise: NoiseSource,
    *,
    grad_fn: Optional[GradFn] = None,
    clip_x0: bool | float = True,
    paste_known: bool = False,
    x_start: Optional[Tensor] = None,
    start_index: int = 0,
    on_step: Optional[StepHook] = None,
) -> Tensor:
    """RePaint on ``x0`` where ``keep_mask`` is 0, walking the time table ``times``; the raw sample
    (as the original writes it), or with ``paste_known`` the known pixels copied back from ``x0``."""
    x = RePaintSampler()(
        model_fn, x0, keep_mask, times, diffusion, noise,
        grad_fn=grad_fn, clip_x0=clip_x0, x_start=x_start, start_index=start_index, on_step=on_step,
    )  # fmt: skip
    return keep_mask * x0 + (1 - keep_mask) * x if paste_known else x


__all__ = [
    "Sampler",
    "SamplerState",
    "StepState",
    "StepHook",
    "Problem",
    "walk",
    "repaint",
    "RePaintSampler",
    "DDIMRePaintSampler",
    "DDNMSampler",
    "DiffPIRSampler",
    "CoarseTravelSampler",
    "LanPaintSampler",
    "SMCSampler",
    "coarse_grid",
    "SAMPLERS",
    "ModelFn",
    "GradFn",
    "inject_known",
    "renoise",
    "reverse_step",
]
