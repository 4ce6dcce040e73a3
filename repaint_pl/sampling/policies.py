"""The samplers: step policies over the one table walk (``loop.walk``), selectable by config.

* ``RePaintSampler``: RePaint (Lugmayr et al., CVPR 2022), numerically the original code: the known
  region is replaced in x_t before every reverse step but the very first, the reverse step is the
  model's ancestral step, forward jumps resample.
* ``DDIMRePaintSampler``: the same walk with DDIM reverse steps (``eta`` scales the step noise).
* ``DDNMSampler``: DDNM's range-null-space replacement for inpainting (Wang et al., 2023): the known
  pixels are written into the x0 prediction, then x_{t-1} ~ q(x_{t-1} | x_t, x̂0); the table's
  forward jumps are DDNM's "time travel".
* ``DiffPIRSampler``: DiffPIR's data step (Zhu et al., 2023): x̂0 = prox of the data term around the
  x0 prediction (ρ_t = λ σ_n² / σ_t²), then x_{t-1} = a_{t-1} x̂0 + s_{t-1} (√(1-ζ) ε̂ + √ζ z).
* ``CoarseTravelSampler``: this project's fast sampler, see its docstring.

Every policy reads the network through ``steps.predict`` / ``steps.reverse_step``, i.e. through the
process' one decoder, so ε-, x0- and v-prediction models (fixed or learned variance) mean the same
thing to all of them.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence

import numpy as np
from torch import Tensor

from ..diffusion import NoiseProcess
from ..schedules import jump_times
from .loop import Sampler
from .steps import (
    Problem,
    analytic_step,
    ddim_step,
    inject_known,
    known_in_x0,
    predict,
    prox_known,
    reverse_step,
    x0_variance,
)


class RePaintSampler(Sampler):
    """RePaint: inject the known region in x_t at every reverse step but the first, jump back by the table.

    Random numbers in the original's order: x_T; per reverse step the posterior noise, then the
    known-region noise; per forward jump its noise.
    """

    inject = True  # False: ``NoInjectionSampler``

    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        step_noise = p.randn()
        if index > 0:  # every reverse step but the very first sees the known region at level t
            known_noise = p.randn()
            if self.inject:
                x = inject_known(p.process, x, p.x0, p.keep_mask, t, known_noise)
        return reverse_step(
            p.process, p.model_fn, x, t, step_noise, grad_fn=p.grad_fn, clip_x0=p.clip_x0, add_noise=t != 0
        )


class NoInjectionSampler(RePaintSampler):
    """RePaint's walk with the known region never injected: the model's own ancestral steps (with
    ``jump_n_sample=1``, an inpainting model's plain sampling, the "no RePaint" baseline).

    Draws the same numbers as ``RePaintSampler`` (the known-region noise too, unused), so its pictures
    are RePaint's with an all-unknown keep mask.
    """

    inject = False


class DDIMRePaintSampler(Sampler):
    """RePaint's walk with DDIM reverse steps: inject the noised known region into x_t, then a DDIM
    step with noise scale ``eta`` (1: the DDPM posterior variance σ̃², 0: deterministic)."""

    def __init__(self, eta: float = 0.0):
        self.eta = eta

    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        x = inject_known(p.process, x, p.x0, p.keep_mask, t, p.randn())
        out = predict(p, x, t)
        return ddim_step(p.process, out, t, t_prev, self.eta, p.randn()), out.x0


class DDNMSampler(Sampler):
    """DDNM for inpainting: x̂0 = keep·x0 + (1-keep)·x0_pred (the range-null-space decomposition with
    A = the mask), then x_{t-1} ~ q(x_{t-1} | x_t, x̂0) (``eta`` = 1) or a DDIM step (``eta`` < 1).
    Time travel is the time table's forward jumps (e.g. ``JumpSchedule(jump_length=s, jump_n_sample=r+1)``)."""

    def __init__(self, eta: float = 1.0):
        self.eta = eta

    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        out = predict(p, x, t)
        hat = known_in_x0(out, p.process, x, t, p.x0, p.keep_mask)
        return ddim_step(p.process, hat, t, t_prev, self.eta, p.randn()), out.x0


class DiffPIRSampler(Sampler):
    """DiffPIR's plug-and-play step for inpainting.

    Data step: x̂0 = argmin_x |keep·(x - x0)|² + ρ_t |x - x0_pred|² with ρ_t = λ σ_n² / σ_t² and
    σ_t = s_t/a_t: on known pixels (x0 + ρ_t x0_pred)/(1 + ρ_t), unknown pixels keep x0_pred
    (σ_n = 0, noise-free known pixels: hard replacement).  Then x_{t-1} = a_{t-1} x̂0 + s_{t-1}(√(1-ζ) ε̂ + √ζ z).
    """

    def __init__(self, zeta: float = 0.3, lambda_: float = 7.0, sigma_n: float = 0.0):
        if not 0 <= zeta <= 1:
            raise ValueError(f"sampler.zeta={zeta} must lie in [0, 1]")
        self.zeta, self.lambda_, self.sigma_n = zeta, lambda_, sigma_n

    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        d = p.process
        out = predict(p, x, t)
        a, s = d.scales(t)
        rho = self.lambda_ * self.sigma_n**2 * (a / s) ** 2
        hat = prox_known(out, d, x, t, p.x0, p.keep_mask, rho)
        a_prev, s_prev = d.scales(t_prev)
        mix = (1 - self.zeta) ** 0.5 * hat.eps + self.zeta**0.5 * p.randn()
        return a_prev * hat.x0 + s_prev * mix, out.x0


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


class CoarseTravelSampler(Sampler):
    """This project's fast sampler: RePaint's resampling on a coarse, low-t-dense grid of noise levels,
    many passes per level, and reverse steps whose variance carries the x0 uncertainty only where
    the noise is low.

    The paper's schedule spends 2410 calls walking 250 levels with 10 resamplings of every 10-level
    window.  What lets the unknown region agree with the known one is how far each jump reaches in
    noise level and how often it is repeated, not how many levels lie inside a jump, so this sampler
    walks only ``steps`` of the respaced levels, at (k / (steps-1))^``spacing`` of the range (denser
    at low t, where ᾱ changes most in relative terms), jumps back ``jump_length`` coarse levels
    ``jump_n_sample - 1`` times from each jump point, and steps between non-adjacent levels exactly
    (forward jumps q(x_s | x_t)).

    Variance of the long reverse steps: the DDPM posterior variance σ̃² treats x̂0 as exact and
    under-disperses over a long step; ``variance="analytic"`` adds the x0 uncertainty carried by the
    step, estimated per sample from the ε prediction's norm (``x0_variance``, no extra network call),
    on steps from levels with ᾱ_t = a_t² ≥ ``analytic_min_alpha_bar``.  Above that noise level the model's x0
    uncertainty is mostly global structure (overall brightness, which mode of the data), which the
    known pixels pin down: adding it there makes the chain forget their evidence (on the exact
    benchmark's mixture at 16² with only the centre known, 26% of the samples of these defaults with the
    analytic variance at every level end in a mode the known pixels rule out, 4% with the threshold),
    so high-noise steps use σ̃² (``analytic_min_alpha_bar=0``: analytic everywhere).  The known region enters as in
    RePaint (``replace="x_t"``) or in the x0 prediction as in DDNM (``replace="x0"``).  ``eta`` scales
    the noise of σ̃² steps (DDIM's η).

    The defaults (13 levels, quadratic, jumps of 1 level × 40 passes, analytic variance where
    ᾱ_t ≥ 0.9) cost 481 calls, a fifth of the paper's 2410; ``python -m repaint_pl.apps.exact`` measures
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
        if not 0 <= analytic_min_alpha_bar <= 1:
            raise ValueError(f"sampler.analytic_min_alpha_bar={analytic_min_alpha_bar} must lie in [0, 1]")
        self.steps, self.jump_length, self.jump_n_sample = steps, jump_length, jump_n_sample
        self.spacing, self.variance, self.replace, self.eta = spacing, variance, replace, eta
        self.analytic_min_alpha_bar = analytic_min_alpha_bar

    def grid(self, times: Sequence[int], process: Optional[NoiseProcess]) -> tuple[list[int], Optional[list[int]]]:
        table = jump_times(self.steps, 1, self.jump_length, self.jump_n_sample)
        if process is None:
            return table, None
        return table, coarse_grid(process.num_timesteps, self.steps, self.spacing)

    def uses_analytic(self, p: Problem, t: int) -> bool:
        """Whether the step from level t takes the analytic variance: ᾱ_t ≥ the threshold, with ᾱ the signal's
        share (``NoiseProcess.signal_share``: a DDPM's ᾱ, a flow's (1−σ)²/((1−σ)² + σ²)); never at pure noise."""
        share = p.process.signal_share(t)
        return self.variance == "analytic" and share > 0 and share >= self.analytic_min_alpha_bar

    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        d = p.process
        if self.replace == "x_t":
            x = inject_known(d, x, p.x0, p.keep_mask, t, p.randn())
        out = predict(p, x, t)
        x0_var = x0_variance(d, out.eps, t) if self.uses_analytic(p, t) else None
        if self.replace == "x0":
            out = known_in_x0(out, d, x, t, p.x0, p.keep_mask)
        if x0_var is not None:
            return analytic_step(d, out, x0_var, t, t_prev, p.randn()), out.x0
        return ddim_step(d, out, t, t_prev, self.eta, p.randn()), out.x0


__all__ = [
    "RePaintSampler", "NoInjectionSampler", "DDIMRePaintSampler", "DDNMSampler", "DiffPIRSampler",
    "CoarseTravelSampler", "coarse_grid",
]  # fmt: skip
