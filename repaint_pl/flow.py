"""Rectified flow: the noise process of SD3/SD3.5 and FLUX as a ``NoiseProcess``.

x_t = (1 − σ_t)·x0 + σ_t·ε, the network outputs the velocity v = ε − x0 (diffusers'
``FlowMatchEulerDiscreteScheduler``).  The levels t = 0..K−1 are the scheduler's discrete σ grid in
ascending order (level K−1 is the first σ the pipeline samples at, usually 1; t = −1 is the clean
data, σ = 0), so RePaint's time tables, ``JumpSchedule``, profiles and explicit times walk it unchanged.

Every sampler reads the flow through the same small interface as the DDPM:

- ``scales``: (a_t, s_t) = (1 − σ_t, σ_t);
- ``transition``: the exact forward marginal q(x_s | x_t) = N((a_s/a_t)·x_t, s_s² − (a_s/a_t)²·s_t²) of a
  jump back in time (not an Euler step);
- ``decode``: v -> x0 = x_t − σ·v, ε = x_t + (1 − σ)·v, and the log variance of the Gaussian bridge
  q(x_{t−1} | x_t, x0) (RePaint's ancestral step draws from it);
- ``posterior``: that bridge's mean; ``model_time``: diffusers' timestep σ_t·N.

With these, DDIM's deterministic step (η = 0) is exactly the flow's Euler step x_{t−1} = x_t + (σ_{t−1} − σ_t)·v.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch import Tensor

from .diffusion import Decoded, NoiseProcess, Time, _at

Spacing = Literal["scheduler", "flux"]
UNSUPPORTED = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas")


class FlowConfigError(ValueError):
    """A flow-matching scheduler config or option this project cannot use (one line)."""


def calculate_shift(
    image_seq_len: int, base_seq_len: int, max_seq_len: int, base_shift: float, max_shift: float
) -> float:
    """μ of resolution-dependent shifting: linear in the number of image tokens (diffusers' pipelines' rule)."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + base_shift - slope * base_seq_len


@dataclass(frozen=True)
class FlowConfig:
    """A ``FlowMatchEulerDiscreteScheduler`` config and the sampling grid drawn from it.

    num_train_timesteps: N (the network's timestep is σ·N); shift: the static shift
    σ -> shift·σ / (1 + (shift − 1)·σ); use_dynamic_shifting: shift by μ instead, with μ linear in
    ``image_seq_len`` between (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift)
    (``time_shift_type`` exponential: e^μ / (e^μ + 1/σ − 1); linear: μ / (μ + 1/σ − 1));
    shift_terminal: stretch the grid so that its last σ is this value;
    steps: levels of the sampling grid (K); spacing: where the unshifted σ of the K levels sit:
    ``scheduler`` (``set_timesteps(K)``: evenly from σ_max to σ_min of the training grid, SD3's
    pipeline) or ``flux`` (evenly from 1 to 1/K, FLUX's pipeline); sigmas: explicit unshifted σ,
    descending (overrides ``steps``/``spacing``); image_seq_len: the image's tokens (for μ).
    """

    num_train_timesteps: int = 1000
    shift: float = 1.0
    use_dynamic_shifting: bool = False
    base_shift: float = 0.5
    max_shift: float = 1.15
    base_image_seq_len: int = 256
    max_image_seq_len: int = 4096
    time_shift_type: Literal["exponential", "linear"] = "exponential"
    shift_terminal: Optional[float] = None
    steps: int = 28
    spacing: Spacing = "scheduler"
    sigmas: Optional[list[float]] = None
    image_seq_len: int = 4096

    def __post_init__(self) -> None:
        if self.time_shift_type not in ("exponential", "linear"):
            raise FlowConfigError(f"time_shift_type={self.time_shift_type!r}: expected exponential or linear")
        if self.spacing not in ("scheduler", "flux"):
            raise FlowConfigError(f"flow spacing={self.spacing!r}: expected scheduler or flux")
        if self.sigmas is None and not 1 <= int(self.steps) <= self.num_train_timesteps:
            raise FlowConfigError(f"steps={self.steps} must lie in [1, {self.num_train_timesteps}]")

    @property
    def mu(self) -> float:
        """μ of dynamic shifting for ``image_seq_len`` tokens."""
        return calculate_shift(
            self.image_seq_len, self.base_image_seq_len, self.max_image_seq_len, self.base_shift, self.max_shift
        )

    def shifted(self, sigma: np.ndarray) -> np.ndarray:
        """The static or dynamic (μ) shift of unshifted σ in (0, 1]."""
        if self.use_dynamic_shifting:
            odds = 1.0 / sigma - 1.0
            if self.time_shift_type == "exponential":
                return np.exp(self.mu) / (np.exp(self.mu) + odds)
            return self.mu / (self.mu + odds)
        return self.shift * sigma / (1 + (self.shift - 1) * sigma)

    def unshifted_grid(self) -> np.ndarray:
        """The K unshifted σ the scheduler's ``set_timesteps`` starts from, descending."""
        if self.sigmas is not None:
            return np.asarray(self.sigmas, dtype=np.float64)
        n, k = self.num_train_timesteps, int(self.steps)
        if self.spacing == "flux":
            return np.linspace(1.0, 1.0 / k, k)
        train = np.float32(np.arange(n, 0, -1, dtype=np.float32) / np.float32(n))  # the training grid, as built
        ends = train[[0, -1]] if self.use_dynamic_shifting else self.shifted(train[[0, -1]].astype(np.float64))
        ends = np.float32(ends)  # diffusers keeps σ_max / σ_min as float32 numbers
        return np.linspace(float(ends[0]) * n, float(ends[1]) * n, k) / n

    def grid(self) -> np.ndarray:
        """The K σ of the sampling grid, descending, in (0, 1] (diffusers' ``scheduler.sigmas[:-1]``)."""
        sigma = self.shifted(self.unshifted_grid())
        if self.shift_terminal:
            one_minus = 1 - sigma
            sigma = 1 - one_minus / (one_minus[-1] / (1 - self.shift_terminal))
        if sigma.ndim != 1 or not len(sigma) or not ((sigma > 0) & (sigma <= 1)).all() or (np.diff(sigma) >= 0).any():
            raise FlowConfigError(f"the flow's σ grid must decrease strictly within (0, 1]; got {np.round(sigma, 4)}")
        return sigma

    def build(self) -> "FlowProcess":
        return FlowProcess.from_sigmas(self.grid()[::-1], self)


def flow_config(
    cfg: dict[str, Any],
    steps: int,
    spacing: Spacing = "scheduler",
    image_seq_len: int = 4096,
    source: str = "scheduler",
) -> FlowConfig:
    """A ``FlowConfig`` from a diffusers scheduler config dict (its ``scheduler_config.json``).

    Options that change the σ grid in ways this project does not implement (Karras, exponential or
    beta σ, inverted σ) are refused in one line; ``use_flow_sigmas`` selects the scheduler's own spacing.
    """
    name = cfg.get("_class_name", "FlowMatchEulerDiscreteScheduler")
    if name != "FlowMatchEulerDiscreteScheduler":
        raise FlowConfigError(f"{source}: a {name} config is not a FlowMatchEulerDiscreteScheduler config")
    for key in UNSUPPORTED:
        if cfg.get(key):
            raise FlowConfigError(f"{source}: {key} is not implemented for the flow process")
    keys = {f.name for f in fields(FlowConfig)} - {"steps", "spacing", "sigmas", "image_seq_len"}
    given = {k: cfg[k] for k in keys if cfg.get(k) is not None}
    return FlowConfig(
        **given,
        steps=int(steps),
        spacing="scheduler" if cfg.get("use_flow_sigmas") else spacing,
        image_seq_len=int(image_seq_len),
    )


def _f32(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).float()


@dataclass(frozen=True)
class FlowProcess(NoiseProcess):
    """The constants of a flow over K levels (1-D float32 tensors, level 0 = the smallest σ)."""

    config: FlowConfig
    sigma: Tensor  # σ_t, ascending
    alpha: Tensor  # a_t = 1 − σ_t
    timesteps: Tensor  # σ_t·N, what the network is fed
    posterior_coef_x0: Tensor  # mean of q(x_{t−1} | x_t, x0) = coef_x0·x0 + coef_xt·x_t
    posterior_coef_xt: Tensor
    posterior_log_var: Tensor  # its log variance (level 0: that of level 1, the last step adds no noise)

    @staticmethod
    def from_sigmas(sigma: np.ndarray, config: FlowConfig) -> "FlowProcess":
        """The tables of the ascending σ grid ``sigma`` ``[K]`` in (0, 1], in float64 then stored as float32."""
        sigma = np.asarray(sigma, dtype=np.float64)
        prev = np.append(0.0, sigma[:-1])  # σ of the level below (level −1: the data)
        a, s, a_prev, s_prev = 1 - sigma, sigma, 1 - prev, prev
        r = a / a_prev  # x_t = r·x_{t−1} + β·z
        beta2 = s**2 - (r * s_prev) ** 2
        var = s_prev**2 * beta2 / s**2
        log_var = np.log(np.maximum(np.append(var[1] if len(var) > 1 else var[0], var[1:]), 1e-20))
        return FlowProcess(
            config=config,
            sigma=_f32(sigma),
            alpha=_f32(a),
            timesteps=_f32(sigma * config.num_train_timesteps),
            posterior_coef_x0=_f32(a_prev * beta2 / s**2),
            posterior_coef_xt=_f32(r * s_prev**2 / s**2),
            posterior_log_var=_f32(log_var),
        )

    @property
    def num_timesteps(self) -> int:
        return len(self.sigma)

    def to(self, device: torch.device | str) -> "FlowProcess":
        """The same tables on ``device`` (a no-op when already there)."""
        if self.sigma.device == torch.device(device):
            return self
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "config"})

    def model_time(self, t: Tensor) -> Tensor:
        """diffusers' timestep σ_t·N (float) for the levels ``t``."""
        return self.timesteps[t]

    def scales(self, t: Time) -> tuple[Tensor, Tensor]:
        """(1 − σ_t, σ_t); t = −1 gives (1, 0)."""
        if isinstance(t, int) and t < 0:
            one = torch.ones((), device=self.sigma.device)
            return one, torch.zeros_like(one)
        return _at(self.alpha, t), _at(self.sigma, t)

    def transition(self, t: int, s: int) -> tuple[Tensor, Tensor]:
        """q(x_s | x_t) = N(r·x_t, std²) with r = a_s/a_t and std² = s_s² − r²·s_t², for s > t (t = −1: the data)."""
        (a_t, s_t), (a_s, s_s) = self.scales(t), self.scales(s)
        r = a_s / a_t
        return r, (s_s**2 - (r * s_t) ** 2).clamp(min=0).sqrt()

    def decode(self, output: Tensor, x_t: Tensor, t: Time) -> Decoded:
        """Velocity v = ε − x0 -> x0 = x_t − σ·v, ε = x_t + (1 − σ)·v, and the bridge's log variance (float32)."""
        v, x_t = output.float(), x_t.float()
        if v.shape[1] != x_t.shape[1]:
            raise ValueError(f"a flow network outputs {x_t.shape[1]} velocity channels, not {v.shape[1]}")
        a, s = self.scales(t)
        return Decoded(x_t - s * v, x_t + a * v, _at(self.posterior_log_var, t))

    def target(self, x0: Tensor, noise: Tensor, t: Time) -> Tensor:
        """The velocity ε − x0 (the same at every level)."""
        return noise - x0

    def posterior(self, x0: Tensor, x_t: Tensor, t: Time) -> Tensor:
        """The mean of the Gaussian bridge q(x_{t−1} | x_t, x0)."""
        return _at(self.posterior_coef_x0, t) * x0 + _at(self.posterior_coef_xt, t) * x_t


__all__ = ["FlowConfig", "FlowConfigError", "FlowProcess", "calculate_shift", "flow_config"]
