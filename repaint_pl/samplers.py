"""Inpainting samplers on one footing: RePaint and faster relatives, selectable by config.

Every sampler is called like ``repaint()`` (``sampler.py``)::

    sampler(model_fn, x0, keep_mask, times, diffusion, noise, *, grad_fn=None, clip_x0=True,
            x_start=None, start_index=0, on_step=None) -> x_0  [B, C, H, W]

``model_fn(x_t, t)`` is the denoiser protocol (``t`` = respaced index, long ``[B]``; output ε, or x0
with ``predict_xstart``, optionally with 2C channels of variance values); ``times`` is a RePaint time
table (a ±1 walk over the respaced indices, from ``t_T - 1`` to ``-1``); ``noise`` a ``NoiseSource``
(one generator per sample).  Images are in ``[-1, 1]``; ``keep_mask`` is 1 where the pixel is known
and has the sampler's resolution (pixels, or a latent grid: samplers only see tensors).  The raw
sample is returned (known pixels are not pasted back).  ``sampler.network_calls(times)`` is the number
of network evaluations per image.

* ``RePaintSampler`` (defined in ``sampler.py``, re-exported here): the original ``repaint()``
  unchanged: the known region is replaced in x_t, forward jumps resample.
* ``DDIMRePaintSampler``: the same walk with DDIM reverse steps (``eta`` scales the step noise).
* ``DDNMSampler``: DDNM's range-null-space replacement for inpainting (Wang et al., 2023): the known
  pixels are written into the x0 prediction, then x_{t-1} ~ q(x_{t-1} | x_t, x̂0); the table's
  forward jumps are DDNM's "time travel".
* ``DiffPIRSampler``: DiffPIR's data step (Zhu et al., 2023): x̂0 = prox of the data term around the
  x0 prediction (ρ_t = λ σ_n² / σ_t²), then x_{t-1} = √ᾱ_{t-1} x̂0 + √(1-ᾱ_{t-1}) (√(1-ζ) ε̂ + √ζ z).
* ``CoarseTravelSampler``: this project's fast sampler, see its docstring.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .diffusion import Diffusion, split_output
from .noise import NoiseSource
from .sampler import GradFn, ModelFn, RePaintSampler, Sampler, StepHook, StepState
from .schedules import count_network_calls, jump_times

__all__ = ["Sampler", "RePaintSampler", "DDIMRePaintSampler", "DDNMSampler", "DiffPIRSampler", "CoarseTravelSampler"]

# --------------------------------------------------------------------------
# Step math between any two respaced indices s > t (ᾱ of index -1 is 1)
# --------------------------------------------------------------------------


def _alpha_bar(d: Diffusion, t: int) -> Tensor:
    """ᾱ at respaced index ``t`` (a 0-d float32 tensor; ᾱ_{-1} = 1)."""
    return d.alpha_bar[t] if t >= 0 else torch.ones((), device=d.alpha_bar.device)


def denoise(
    d: Diffusion,
    model_fn: ModelFn,
    x_t: Tensor,
    t: int,
    *,
    grad_fn: Optional[GradFn] = None,
    clip_x0: bool | float = True,
) -> tuple[Tensor, Tensor]:
    """One network call at respaced index ``t``: (x0 prediction, ε prediction), both ``[B, C, H, W]``.

    Classifier guidance shifts ε by -√(1-ᾱ_t)·∇log p(y|x_t) (Dhariwal & Nichol's score form);
    with ``clip_x0`` the x0 prediction is clamped to [-1, 1] and ε recomputed from it.
    """
    ab = _alpha_bar(d, t)
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
    pred, _ = split_output(model_fn(x_t, t_batch), x_t.shape[1])
    pred = pred.float()
    eps = (x_t - ab.sqrt() * pred) / (1 - ab).sqrt() if d.config.predict_xstart else pred
    if grad_fn is not None:
        eps = eps - (1 - ab).sqrt() * grad_fn(x_t, t_batch).float()
    x0_pred = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
    if clip_x0:  # True: [-1, 1]; a number c: [-c, c] (e.g. a latent space's range)
        limit = 1.0 if clip_x0 is True else float(clip_x0)
        x0_pred = x0_pred.clamp(-limit, limit)
        eps = (x_t - ab.sqrt() * x0_pred) / (1 - ab).sqrt()
    return x0_pred, eps


def ddim_step(d: Diffusion, x0_hat: Tensor, eps: Tensor, t: int, t_prev: int, eta: float, z: Tensor) -> Tensor:
    """x_{t_prev} = √ᾱ' x̂0 + √(1-ᾱ'-σ²) ε + σ z with σ = η √((1-ᾱ')/(1-ᾱ)) √(1-ᾱ/ᾱ') (Song et al.).

    η = 1 samples the DDPM posterior q(x_{t_prev} | x_t, x̂0) (variance σ̃²), η = 0 is deterministic.
    """
    ab, ab_prev = _alpha_bar(d, t), _alpha_bar(d, t_prev)
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
    return ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps + sigma * z


def x0_variance(d: Diffusion, eps: Tensor, t: int) -> Tensor:
    """Per-sample estimate of the mean posterior variance of x0 per pixel, ``[B, 1, 1, 1]``.

    Tweedie: E|ε - ε̂|² = d - E|ε̂|² for ε̂ = E[ε | x_t], and x0 - x̂0 = -√((1-ᾱ)/ᾱ)(ε - ε̂), so
    Var[x0 | x_t] ≈ (1-ᾱ)/ᾱ · (1 - mean(ε̂²)) (Analytic-DPM's identity, here per sample).
    """
    ab = _alpha_bar(d, t)
    return ((1 - ab) / ab * (1 - eps.pow(2).mean(dim=(1, 2, 3), keepdim=True))).clamp(min=0)


def analytic_step(d: Diffusion, x0_hat: Tensor, eps: Tensor, x0_var: Tensor, t: int, t_prev: int, z: Tensor) -> Tensor:
    """x_{t_prev} ~ N(μ̃(x_t, x̂0), σ̃² + c²·Var[x0 | x_t]) with c the x0 coefficient of μ̃.

    The DDPM posterior q(x_{t_prev} | x_t, x0) treats x̂0 as exact; over a long step (a coarse grid)
    its variance σ̃² is too small by the x0 uncertainty carried through μ̃ (Bao et al., 2022).
    """
    ab, ab_prev = _alpha_bar(d, t), _alpha_bar(d, t_prev)
    mean = ddim_step(d, x0_hat, eps, t, t_prev, 1.0, torch.zeros_like(z))
    small = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
    c = ab_prev.sqrt() * (1 - ab / ab_prev) / (1 - ab)
    return mean + (small + c**2 * x0_var).sqrt() * z


def renoise(d: Diffusion, x_t: Tensor, t: int, s: int, z: Tensor) -> Tensor:
    """Forward jump from index t up to s > t: x_s ~ q(x_s | x_t) = N(√(ᾱ_s/ᾱ_t) x_t, (1-ᾱ_s/ᾱ_t) I)."""
    ratio = _alpha_bar(d, s) / _alpha_bar(d, t)
    return ratio.sqrt() * x_t + (1 - ratio).sqrt() * z


def noised_known(d: Diffusion, x0: Tensor, x_t: Tensor, keep_mask: Tensor, t: int, z: Tensor) -> Tensor:
    """RePaint's replacement in x_t: the known region noised to level t, the rest of x_t kept."""
    ab = _alpha_bar(d, t)
    return keep_mask * (ab.sqrt() * x0 + (1 - ab).sqrt() * z) + (1 - keep_mask) * x_t


def eps_of(d: Diffusion, x_t: Tensor, x0_hat: Tensor, t: int) -> Tensor:
    """The noise that takes x̂0 to x_t at level t: ε̂ = (x_t - √ᾱ_t x̂0) / √(1-ᾱ_t)."""
    ab = _alpha_bar(d, t)
    return (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()


# --------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------


class TableWalkSampler(Sampler):
    """Walks a time table of ±1 steps (or, in subclasses, a coarse table mapped to respaced indices):
    a reverse transition is ``self.reverse``, a forward one re-noises x (the table's jumps).

    Subclasses implement ``reverse(d, model_fn, x, x0, keep_mask, t, t_prev, noise, ...)`` -> (x, x0_pred).
    """

    def _grid(self, times: Sequence[int], d: Diffusion) -> tuple[list[int], Optional[list[int]]]:
        """(the table walked, map table index -> respaced index or None for the identity)."""
        return list(times), None

    def network_calls(self, times: Sequence[int]) -> int:
        return count_network_calls(self._grid(times, None)[0])

    def __call__(
        self,
        model_fn: ModelFn,
        x0: Tensor,
        keep_mask: Tensor,
        times: Sequence[int],
        diffusion: Diffusion,
        noise: NoiseSource,
        *,
        grad_fn: Optional[GradFn] = None,
        clip_x0: bool = True,
        x_start: Optional[Tensor] = None,
        start_index: int = 0,
        on_step: Optional[StepHook] = None,
    ) -> Tensor:
        d = diffusion.to(x0.device)
        table, grid = self._grid(times, d)
        at = (lambda k: k) if grid is None else (lambda k: grid[k] if k >= 0 else -1)
        shape = x0.shape[1:]
        x = noise.randn(shape) if x_start is None else x_start
        x0_pred = None
        for i in range(start_index, len(table) - 1):
            t, t_next = at(table[i]), at(table[i + 1])
            if t_next < t:
                x, x0_pred = self.reverse(
                    d, model_fn, x, x0, keep_mask, t, t_next, noise, grad_fn=grad_fn, clip_x0=clip_x0
                )
            else:  # time travel: back up the chain
                x = renoise(d, x, t, t_next, noise.randn(shape))
            if on_step is not None:
                on_step(StepState(i, t, t_next, x, x0_pred, noise))
        return x

    def reverse(self, d, model_fn, x, x0, keep_mask, t, t_prev, noise, *, grad_fn, clip_x0):
        raise NotImplementedError


class DDIMRePaintSampler(TableWalkSampler):
    """RePaint's walk with DDIM reverse steps: inject the noised known region into x_t, then a DDIM
    step with noise scale ``eta`` (1: the DDPM posterior variance σ̃², 0: deterministic)."""

    def __init__(self, eta: float = 0.0):
        self.eta = eta

    def reverse(self, d, model_fn, x, x0, keep_mask, t, t_prev, noise, *, grad_fn, clip_x0):
        shape = x.shape[1:]
        x = noised_known(d, x0, x, keep_mask, t, noise.randn(shape))
        x0_pred, eps = denoise(d, model_fn, x, t, grad_fn=grad_fn, clip_x0=clip_x0)
        return ddim_step(d, x0_pred, eps, t, t_prev, self.eta, noise.randn(shape)), x0_pred


class DDNMSampler(TableWalkSampler):
    """DDNM for inpainting: x̂0 = keep·x0 + (1-keep)·x0_pred (the range-null-space decomposition with
    A = the mask), then x_{t-1} ~ q(x_{t-1} | x_t, x̂0) (``eta`` = 1) or a DDIM step (``eta`` < 1).
    Time travel is the time table's forward jumps (e.g. ``JumpSchedule(jump_length=s, jump_n_sample=r+1)``)."""

    def __init__(self, eta: float = 1.0):
        self.eta = eta

    def reverse(self, d, model_fn, x, x0, keep_mask, t, t_prev, noise, *, grad_fn, clip_x0):
        x0_pred, _ = denoise(d, model_fn, x, t, grad_fn=grad_fn, clip_x0=clip_x0)
        x0_hat = keep_mask * x0 + (1 - keep_mask) * x0_pred
        z = noise.randn(x.shape[1:])
        return ddim_step(d, x0_hat, eps_of(d, x, x0_hat, t), t, t_prev, self.eta, z), x0_pred


class DiffPIRSampler(TableWalkSampler):
    """DiffPIR's plug-and-play step for inpainting.

    Data step: x̂0 = argmin_x |keep·(x - x0)|² + ρ_t |x - x0_pred|² with ρ_t = λ σ_n² / σ_t² and
    σ_t² = (1-ᾱ_t)/ᾱ_t: on known pixels (x0 + ρ_t x0_pred)/(1 + ρ_t), unknown pixels keep x0_pred
    (σ_n = 0, noise-free known pixels: hard replacement).  Then x_{t-1} = √ᾱ_{t-1} x̂0 + √(1-ᾱ_{t-1})(√(1-ζ) ε̂ + √ζ z).
    """

    def __init__(self, zeta: float = 0.3, lambda_: float = 7.0, sigma_n: float = 0.0):
        if not 0 <= zeta <= 1:
            raise ValueError(f"sampler.zeta={zeta} must lie in [0, 1]")
        self.zeta, self.lambda_, self.sigma_n = zeta, lambda_, sigma_n

    def reverse(self, d, model_fn, x, x0, keep_mask, t, t_prev, noise, *, grad_fn, clip_x0):
        x0_pred, _ = denoise(d, model_fn, x, t, grad_fn=grad_fn, clip_x0=clip_x0)
        ab, ab_prev = _alpha_bar(d, t), _alpha_bar(d, t_prev)
        rho = self.lambda_ * self.sigma_n**2 * ab / (1 - ab)
        known = (x0 + rho * x0_pred) / (1 + rho)
        x0_hat = keep_mask * known + (1 - keep_mask) * x0_pred
        eps_hat = eps_of(d, x, x0_hat, t)
        z = noise.randn(x.shape[1:])
        mix = (1 - self.zeta) ** 0.5 * eps_hat + self.zeta**0.5 * z
        return ab_prev.sqrt() * x0_hat + (1 - ab_prev).sqrt() * mix, x0_pred


def coarse_grid(num_timesteps: int, steps: int, power: float = 1.0) -> list[int]:
    """``steps`` distinct respaced indices in ``[0, num_timesteps - 1]``, increasing, both ends kept.

    Index k sits at (k / (steps-1))^power of the range (power 1: even; 2: quadratic, denser at low t,
    where ᾱ changes most in relative terms), pushed up where rounding would repeat an index.
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"sampler.steps={steps} must lie in [1, {num_timesteps}] (the respaced steps)")
    grid = np.round(np.linspace(0, 1, steps) ** power * (num_timesteps - 1)).astype(int).tolist()
    for k in range(1, steps):
        grid[k] = max(grid[k], grid[k - 1] + 1)
    for k in range(steps - 2, -1, -1):  # keep the top index at num_timesteps - 1
        grid[k] = min(grid[k], grid[k + 1] - 1)
    return grid


class CoarseTravelSampler(TableWalkSampler):
    """This project's fast sampler: RePaint's resampling on a coarse, low-t-dense grid of noise levels,
    many passes per level, and reverse steps whose variance carries the x0 uncertainty only where
    the noise is low.

    The paper's schedule spends 2410 calls walking 250 levels with 10 resamplings of every 10-level
    window.  What lets the unknown region agree with the known one is how far each jump reaches in
    noise level and how often it is repeated, not how many levels lie inside a jump, so this sampler
    walks only ``steps`` of the respaced levels, at (k / (steps-1))^``spacing`` of the range (denser
    at low t, where ᾱ changes most in relative terms), jumps back ``jump_length`` coarse levels
    ``jump_n_sample - 1`` times from each jump point, and steps between non-adjacent levels exactly
    (ᾱ ratios; forward jumps q(x_s | x_t)).

    Variance of the long reverse steps: the DDPM posterior variance σ̃² treats x̂0 as exact and
    under-disperses over a long step; ``variance="analytic"`` adds the x0 uncertainty carried by the
    step, estimated per sample from the ε prediction's norm (``x0_variance``, no extra network call),
    on steps from levels with ᾱ_t ≥ ``analytic_min_alpha_bar``.  Above that noise level the model's x0
    uncertainty is mostly global structure (overall brightness, which mode of the data), which the
    known pixels pin down: adding it there makes the chain forget their evidence (on the exact
    benchmark's mixture at 16² with only the centre known, 26% of the samples of these defaults with the
    analytic variance at every level end in a mode the known pixels rule out, 4% with the threshold),
    so high-noise steps use σ̃² (``analytic_min_alpha_bar=0``: analytic everywhere).  The known region enters as in
    RePaint (``replace="x_t"``) or in the x0 prediction as in DDNM (``replace="x0"``).  ``eta`` scales
    the noise of σ̃² steps (DDIM's η).

    The defaults (13 levels, quadratic, jumps of 1 level × 40 passes, analytic variance where
    ᾱ_t ≥ 0.9) cost 481 calls, a fifth of the paper's 2410; ``python -m repaint_pl.exact`` measures
    them against the paper's schedule.  The sampler walks its own coarse table and ignores the
    model's time table (``network_calls`` likewise).
    """

    def __init__(
        self,
        steps: int = 13,
        jump_length: int = 1,
        jump_n_sample: int = 40,
        spacing: float = 2.0,
        variance: Literal["posterior", "analytic"] = "analytic",
        replace: Literal["x_t", "x0"] = "x_t",
        eta: float = 1.0,
        analytic_min_alpha_bar: float = 0.9,
    ):
        if replace not in ("x_t", "x0"):
            raise ValueError(f"sampler.replace={replace!r}: expected 'x_t' or 'x0'")
        if variance not in ("posterior", "analytic"):
            raise ValueError(f"sampler.variance={variance!r}: expected 'posterior' or 'analytic'")
        if spacing <= 0:
            raise ValueError(f"sampler.spacing={spacing} must be positive")
        self.steps, self.jump_length, self.jump_n_sample = steps, jump_length, jump_n_sample
        if not 0 <= analytic_min_alpha_bar <= 1:
            raise ValueError(f"sampler.analytic_min_alpha_bar={analytic_min_alpha_bar} must lie in [0, 1]")
        self.spacing, self.variance, self.replace, self.eta = spacing, variance, replace, eta
        self.analytic_min_alpha_bar = analytic_min_alpha_bar

    def _grid(self, times: Sequence[int], d: Optional[Diffusion]) -> tuple[list[int], Optional[list[int]]]:
        table = jump_times(self.steps, 1, self.jump_length, self.jump_n_sample)
        if d is None:
            return table, None
        return table, coarse_grid(d.num_timesteps, self.steps, self.spacing)

    def reverse(self, d, model_fn, x, x0, keep_mask, t, t_prev, noise, *, grad_fn, clip_x0):
        shape = x.shape[1:]
        if self.replace == "x_t":
            x = noised_known(d, x0, x, keep_mask, t, noise.randn(shape))
        x0_pred, eps = denoise(d, model_fn, x, t, grad_fn=grad_fn, clip_x0=clip_x0)
        analytic = self.variance == "analytic" and float(_alpha_bar(d, t)) >= self.analytic_min_alpha_bar
        x0_var = x0_variance(d, eps, t) if analytic else None
        if self.replace == "x0":
            x0_hat = keep_mask * x0 + (1 - keep_mask) * x0_pred
            eps, x0_pred = eps_of(d, x, x0_hat, t), x0_hat
        if x0_var is not None:
            return analytic_step(d, x0_pred, eps, x0_var, t, t_prev, noise.randn(shape)), x0_pred
        return ddim_step(d, x0_pred, eps, t, t_prev, self.eta, noise.randn(shape)), x0_pred
