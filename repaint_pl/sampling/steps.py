"""The step maths every sampler shares, over any ``NoiseProcess`` (x_t = a_t·x0 + s_t·ε).

One time convention: ``t`` is a respaced level, a Python int (``-1`` = the clean data, a = 1, s = 0);
``t_prev < t`` is the level a reverse step lands on, ``s > t`` the level a forward jump reaches.
Images are ``[B, C, H, W]``; ``keep_mask`` is 1 where the pixel is known (soft values blend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from ..diffusion import Decoded, NoiseProcess, p_mean_variance, q_sample
from ..noise import NoiseSource

ModelFn = Callable[[Tensor, Tensor], Tensor]
GradFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Problem:
    """One inpainting run: the bound network, the known image and mask (in the sampler's space), the
    process, the samples' noise, classifier guidance and the x0 clip range (True = 1, False = none)."""

    model_fn: ModelFn
    x0: Tensor
    keep_mask: Tensor
    process: NoiseProcess
    noise: NoiseSource
    grad_fn: Optional[GradFn] = None
    clip_x0: bool | float = True

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x0.shape[1:])

    def randn(self) -> Tensor:
        """Standard normal noise shaped like x (one generator per sample)."""
        return self.noise.randn(self.shape)


def levels(t: int | Tensor, x: Tensor) -> Tensor:
    """The level ``t`` for every sample of ``x``: long ``[B]`` on x's device (the network's time input).

    An int becomes a fill on the device (no host-to-device copy inside the sampling loop)."""
    if isinstance(t, Tensor):
        return t.to(x.device).expand(x.shape[0])
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


# --------------------------------------------------------------------------
# Known region and forward jumps
# --------------------------------------------------------------------------


def inject_known(d: NoiseProcess, x_t: Tensor, x0: Tensor, keep_mask: Tensor, t: int, z: Tensor) -> Tensor:
    """RePaint: replace the known region of x_t by the known image noised to level t (with noise ``z``)."""
    return keep_mask * q_sample(d, x0, t, z) + (1 - keep_mask) * x_t


def renoise(d: NoiseProcess, x_t: Tensor, t: int, s: int, z: Tensor) -> Tensor:
    """Forward jump from level t up to s > t: x_s ~ q(x_s | x_t) (RePaint's resampling, DDNM's time travel)."""
    r, sigma = d.transition(t, s)
    return r * x_t + sigma * z


# --------------------------------------------------------------------------
# Reading the network
# --------------------------------------------------------------------------


def with_eps(d: NoiseProcess, x_t: Tensor, t: int, eps: Tensor, log_var: Optional[Tensor] = None) -> Decoded:
    """The prediction pair implied by ε at (x_t, t): x0 = (x_t − s·ε)/a."""
    a, s = d.scales(t)
    return Decoded((x_t - s * eps) / a, eps, log_var)


def with_x0(d: NoiseProcess, x_t: Tensor, t: int, x0: Tensor, log_var: Optional[Tensor] = None) -> Decoded:
    """The prediction pair implied by x0 at (x_t, t): ε = (x_t − a·x0)/s."""
    a, s = d.scales(t)
    return Decoded(x0, (x_t - a * x0) / s, log_var)


def predict(p: Problem, x_t: Tensor, t: int) -> Decoded:
    """One network call at level t, read by the process' decoder; classifier guidance shifts ε by
    −s_t·∇log p(y|x_t) (Dhariwal & Nichol's score form); with ``clip_x0`` x0 is clamped and ε follows it."""
    d, x_t = p.process, x_t.float()
    t_batch = levels(t, x_t)
    out = d.decode(p.model_fn(x_t, t_batch), x_t, t)
    if p.grad_fn is not None:
        _, s = d.scales(t)
        out = with_eps(d, x_t, t, out.eps - s * p.grad_fn(x_t, t_batch).float(), out.log_var)
    if p.clip_x0:  # True: [-1, 1]; a number c: [-c, c] (e.g. a latent space's range)
        limit = 1.0 if p.clip_x0 is True else float(p.clip_x0)
        out = with_x0(d, x_t, t, out.x0.clamp(-limit, limit), out.log_var)
    return out


def known_in_x0(out: Decoded, d: NoiseProcess, x_t: Tensor, t: int, x0: Tensor, keep_mask: Tensor) -> Decoded:
    """DDNM's range-null-space step for inpainting: the known pixels written into the x0 prediction."""
    return with_x0(d, x_t, t, keep_mask * x0 + (1 - keep_mask) * out.x0, out.log_var)


# --------------------------------------------------------------------------
# Reverse steps
# --------------------------------------------------------------------------


def reverse_step(
    d: NoiseProcess,
    model_fn: ModelFn,
    x_t: Tensor,
    t: int | Tensor,
    noise: Tensor,
    *,
    grad_fn: Optional[GradFn] = None,
    clip_x0: bool | float = True,
    add_noise: bool = True,
) -> tuple[Tensor, Tensor]:
    """RePaint's (and DDPM's) ancestral step x_{t-1} ~ p(x_{t-1} | x_t) with the model's variance;
    classifier guidance shifts the mean by σ²·grad.  Returns (x_{t-1}, x0 prediction)."""
    t_batch = levels(t, x_t)
    mean, log_var, x0_pred = p_mean_variance(d, model_fn(x_t, t_batch), x_t, t, clip_x0)
    if grad_fn is not None:
        mean = mean.float() + torch.exp(log_var) * grad_fn(x_t, t_batch).float()
    if not add_noise:  # t = 0: the mean is the sample
        return mean, x0_pred
    return mean + torch.exp(0.5 * log_var) * noise, x0_pred


def posterior_std(d: NoiseProcess, t: int, t_prev: int) -> Tensor:
    """σ̃ of q(x_{t_prev} | x_t, x0) = s' · √(1 − r²·s'²/s²) with r = a_t/a_{t_prev} (DDIM's σ at η = 1)."""
    (a, s), (a_prev, s_prev) = d.scales(t), d.scales(t_prev)
    r = a / a_prev
    return s_prev * (1 - (r * s_prev / s) ** 2).clamp(min=0).sqrt()


def ddim_step(d: NoiseProcess, out: Decoded, t: int, t_prev: int, eta: float, z: Tensor) -> Tensor:
    """x_{t_prev} = a'·x̂0 + √(s'² − σ²)·ε̂ + σ·z with σ = η·σ̃ (Song et al.): η = 1 samples the DDPM
    posterior q(x_{t_prev} | x_t, x̂0), η = 0 is deterministic."""
    a_prev, s_prev = d.scales(t_prev)
    sigma = eta * posterior_std(d, t, t_prev)
    return a_prev * out.x0 + (s_prev**2 - sigma**2).clamp(min=0).sqrt() * out.eps + sigma * z


def x0_variance(d: NoiseProcess, eps: Tensor, t: int) -> Tensor:
    """Per-sample estimate of the mean posterior variance of x0 per pixel, ``[B, 1, 1, 1]``.

    Tweedie: E|ε − ε̂|² = d − E|ε̂|² for ε̂ = E[ε | x_t], and x0 − x̂0 = −(s/a)(ε − ε̂), so
    Var[x0 | x_t] ≈ (s/a)²·(1 − mean(ε̂²)) (Analytic-DPM's identity, here per sample).
    """
    a, s = d.scales(t)
    return ((s / a) ** 2 * (1 - eps.pow(2).mean(dim=(1, 2, 3), keepdim=True))).clamp(min=0)


def analytic_step(d: NoiseProcess, out: Decoded, x0_var: Tensor, t: int, t_prev: int, z: Tensor) -> Tensor:
    """x_{t_prev} ~ N(μ̃(x_t, x̂0), σ̃² + c²·Var[x0 | x_t]) with c the x0 coefficient of μ̃ at fixed x_t.

    The DDPM posterior treats x̂0 as exact; over a long step (a coarse grid) its variance σ̃² is too
    small by the x0 uncertainty carried through μ̃ (Bao et al., 2022).
    """
    (a, s), (a_prev, s_prev) = d.scales(t), d.scales(t_prev)
    small = posterior_std(d, t, t_prev) ** 2
    mean = ddim_step(d, out, t, t_prev, 1.0, torch.zeros_like(z))
    c = a_prev - (s_prev**2 - small).clamp(min=0).sqrt() * a / s
    return mean + (small + c**2 * x0_var).sqrt() * z


def prox_known(
    out: Decoded, d: NoiseProcess, x_t: Tensor, t: int, x0: Tensor, keep_mask: Tensor, rho: Tensor
) -> Decoded:
    """DiffPIR's data step: on known pixels (x0 + ρ·x̂0)/(1 + ρ), unknown pixels keep x̂0."""
    known = (x0 + rho * out.x0) / (1 + rho)
    return with_x0(d, x_t, t, keep_mask * known + (1 - keep_mask) * out.x0, out.log_var)


__all__ = [
    "ModelFn",
    "GradFn",
    "Problem",
    "levels",
    "inject_known",
    "renoise",
    "with_eps",
    "with_x0",
    "predict",
    "known_in_x0",
    "reverse_step",
    "posterior_std",
    "ddim_step",
    "x0_variance",
    "analytic_step",
    "prox_known",
]
