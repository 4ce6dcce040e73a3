"""Gaussian diffusion math: the constants of a (respaced) process and the formulas that use them.

Constants are computed in float64 with NumPy exactly as guided-diffusion does, then
stored once as float32 tensors (the precision the original samples with), so that
sampling does the same float32 arithmetic as the original code.  ``Diffusion.to``
puts every table on the sampling device; the sampling loop then only indexes them.

The one decoder of the network output is ``NoiseProcess.decode``: it turns any raw output (ε, x0 or v,
with or without C channels of learned variance) into ``Decoded(x0, eps, log_var)``; every sampler and
the training loss read the network through it (``NoiseProcess.target`` is its inverse, the training
target).  ``Diffusion`` (discrete DDPM, x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε) is one implementation; a
continuous-time process (e.g. rectified flow, x_t = (1−σ)·x0 + σ·ε with a velocity output) is another
implementation of the same small interface.

Shapes: ``x_t``, ``x0`` are ``[B, C, H, W]`` in ``[-1, 1]``.  Time convention: ``t`` is a respaced index,
an int (one step for the whole batch, ``-1`` = clean data), or a long tensor (0-d, or ``[B]`` for training).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Literal, Optional, Union

import numpy as np
import torch
from torch import Tensor

from .schedules import diffusers_timesteps, named_betas, respace_betas, space_timesteps

Variance = Literal["learned_range", "learned", "fixed_small", "fixed_large"]
Prediction = Literal["epsilon", "sample", "v_prediction"]
BetaSchedule = Literal["linear", "cosine", "scaled_linear", "squaredcos_cap_v2"]
Spacing = Literal["guided", "leading", "trailing", "linspace"]


@dataclass(frozen=True)
class DiffusionConfig:
    """The diffusion process, with guided-diffusion's flag names and meanings.

    steps: base timesteps (``diffusion_steps`` / diffusers' ``num_train_timesteps``);
    noise_schedule: ``linear`` or ``cosine`` (guided-diffusion), ``scaled_linear`` or
    ``squaredcos_cap_v2`` (diffusers' names); beta_start/beta_end: the linear schedules' ends
    (None: guided-diffusion's 1e-4·1000/steps … 0.02·1000/steps); trained_betas: explicit betas;
    timestep_respacing: ``""`` (all), ``"250"``, ``"10,15,20"`` or ``"ddim50"``;
    timestep_spacing: ``guided`` (guided-diffusion's even spacing) or diffusers' ``leading`` /
    ``trailing`` / ``linspace`` (then ``timestep_respacing`` is a step count), with ``steps_offset``;
    prediction: what the network outputs: ``epsilon`` (ε), ``sample`` (x0) or ``v_prediction``
    (v = √ᾱ·ε − √(1−ᾱ)·x0); ``predict_xstart`` (guided-diffusion's flag) and ``prediction_type``
    (diffusers' name) are accepted as aliases and folded into ``prediction``;
    variance: ``learned_range`` (learn_sigma, 2C outputs), ``learned`` (log σ² outputs),
    ``fixed_small`` (posterior σ̃²) or ``fixed_large`` (β);
    rescale_timesteps: feed the network t·1000/steps instead of the integer step;
    use_kl / rescale_learned_sigmas: training loss variants (see ``training_losses``).
    """

    steps: int = 1000
    noise_schedule: BetaSchedule = "linear"
    timestep_respacing: str = "250"
    prediction: Prediction = "epsilon"
    variance: Variance = "learned_range"
    rescale_timesteps: bool = False
    use_kl: bool = False
    rescale_learned_sigmas: bool = False
    beta_start: Optional[float] = None
    beta_end: Optional[float] = None
    trained_betas: Optional[list[float]] = None
    timestep_spacing: Spacing = "guided"
    steps_offset: int = 0
    predict_xstart: Optional[bool] = None  # alias: True -> prediction="sample"
    prediction_type: Optional[Prediction] = None  # alias of prediction (diffusers' name)

    def __post_init__(self) -> None:
        # fold the aliases into ``prediction`` so that one field says what the output means
        prediction = self.prediction_type or ("sample" if self.predict_xstart else self.prediction)
        if prediction not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"diffusion.prediction={prediction!r}: expected epsilon, sample or v_prediction")
        object.__setattr__(self, "prediction", prediction)
        object.__setattr__(self, "predict_xstart", None)
        object.__setattr__(self, "prediction_type", None)

    @property
    def learns_variance(self) -> bool:
        return self.variance in ("learned", "learned_range")

    def base_betas(self) -> np.ndarray:
        if self.trained_betas is not None:
            if len(self.trained_betas) != self.steps:
                raise ValueError(f"trained_betas: {len(self.trained_betas)} values for {self.steps} steps")
            return np.asarray(self.trained_betas, dtype=np.float64)
        return named_betas(self.noise_schedule, self.steps, self.beta_start, self.beta_end)

    def kept_steps(self) -> list[int]:
        """The base steps the respaced process visits, ascending."""
        if self.timestep_spacing == "guided":
            return space_timesteps(self.steps, self.timestep_respacing)
        count = int(self.timestep_respacing) if self.timestep_respacing else self.steps
        return sorted(diffusers_timesteps(self.steps, count, self.timestep_spacing, self.steps_offset))

    def build(self, respaced: bool = True) -> "Diffusion":
        """The constants of the respaced process (``respaced=False``: of the full base process, for training).

        The respaced process keeps the ᾱ of its kept steps (guided-diffusion's respacing).
        """
        kept = self.kept_steps() if respaced else list(range(self.steps))
        betas, timestep_map = respace_betas(self.base_betas(), kept)
        return Diffusion.from_betas(betas, timestep_map, self)


def _f32(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).float()


Time = Union[int, Tensor]


@dataclass(frozen=True)
class Decoded:
    """What one network output at (x_t, t) says, all ``[B, C, H, W]`` float32.

    ``x0``/``eps``: the predictions of the clean image and of the noise, consistent with each other
    (x_t = a_t·x0 + s_t·eps); ``log_var``: log σ² of the reverse step p(x_{t-1} | x_t) where the process
    has one (DDPM: learned from the extra channels, or fixed), else None.
    """

    x0: Tensor
    eps: Tensor
    log_var: Optional[Tensor] = None


class NoiseProcess(ABC):
    """A Gaussian noise process x_t = a_t·x0 + s_t·ε over levels t = 0..K-1 (t = -1: the clean data).

    The small interface every sampler speaks: ``scales`` (a_t, s_t), ``transition`` (the forward
    marginal between two levels, for jumps back in time), ``decode`` (the one reading of a raw network
    output), ``target`` (its inverse, for training), ``posterior`` (the reverse step's mean given x0),
    ``model_time`` (what the network is fed for level t) and ``to`` (the tables on a device).
    """

    num_timesteps: int

    @abstractmethod
    def scales(self, t: Time) -> tuple[Tensor, Tensor]:
        """(a_t, s_t), shaped to broadcast against ``[B, C, H, W]``; t = -1 gives (1, 0)."""

    @abstractmethod
    def transition(self, t: int, s: int) -> tuple[Tensor, Tensor]:
        """(r, σ) of the forward marginal q(x_s | x_t) = N(r·x_t, σ²·I) for levels s > t."""

    @abstractmethod
    def decode(self, output: Tensor, x_t: Tensor, t: Time) -> Decoded:
        """The raw network output at (x_t, t) read as (x0, ε, log σ²)."""

    @abstractmethod
    def target(self, x0: Tensor, noise: Tensor, t: Time) -> Tensor:
        """What the network should output at x_t = a_t·x0 + s_t·noise (the training target)."""

    @abstractmethod
    def posterior(self, x0: Tensor, x_t: Tensor, t: Time) -> Tensor:
        """The mean of q(x_{t-1} | x_t, x0), with t-1 the level below t."""

    @abstractmethod
    def model_time(self, t: Tensor) -> Tensor:
        """What the network is fed for the levels ``t`` (long ``[B]``)."""

    @abstractmethod
    def to(self, device: torch.device | str) -> "NoiseProcess": ...

    def signal_share(self, t: int) -> float:
        """a_t² / (a_t² + s_t²): the signal's share of x_t's variance at level t (a DDPM's ᾱ_t; for a flow
        (1−σ)² / ((1−σ)² + σ²)), the one noise-level scale that means the same for every process."""
        a, s = (float(v) for v in self.scales(t))
        return a * a / (a * a + s * s)


@dataclass(frozen=True)
class Diffusion(NoiseProcess):
    """Per-timestep constants of one diffusion process (all 1-D float32 tensors except ``timestep_map``)."""

    config: DiffusionConfig
    timestep_map: Tensor  # long [K]: respaced index -> base timestep fed to the network
    betas: Tensor
    alpha_bar: Tensor  # ᾱ_t
    sqrt_alpha_bar: Tensor  # √ᾱ_t, computed in float32 (RePaint's known-region weight)
    sqrt_one_minus_alpha_bar: Tensor  # √(1-ᾱ_t), likewise (RePaint's noise weight)
    sqrt_recip_alpha_bar: Tensor  # 1/√ᾱ_t
    sqrt_recipm1_alpha_bar: Tensor  # √(1/ᾱ_t - 1)
    posterior_var: Tensor  # σ̃²_t = β_t (1-ᾱ_{t-1}) / (1-ᾱ_t)
    posterior_log_var: Tensor  # log σ̃²_t with t=0 clipped to t=1
    posterior_coef_x0: Tensor  # μ̃ = coef_x0·x0 + coef_xt·x_t
    posterior_coef_xt: Tensor
    log_betas: Tensor
    fixed_large_log_var: Tensor  # log (σ̃²_1, β_1, …, β_{K-1})
    sqrt_one_minus_beta: Tensor  # forward jump x_t = √(1-β_t)·x_{t-1} + √β_t·ε, float32 like the original
    sqrt_beta: Tensor

    @staticmethod
    def from_betas(betas: np.ndarray, timestep_map: list[int], config: DiffusionConfig) -> "Diffusion":
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise ValueError("betas must be a 1-D array in (0, 1]")
        alpha_bar = np.cumprod(1.0 - betas)
        alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
        posterior_var = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        ab32, b32 = _f32(alpha_bar), _f32(betas)
        return Diffusion(
            config=config,
            timestep_map=torch.tensor(timestep_map, dtype=torch.long),
            betas=b32,
            alpha_bar=ab32,
            sqrt_alpha_bar=torch.sqrt(ab32),
            sqrt_one_minus_alpha_bar=torch.sqrt(1 - ab32),
            sqrt_recip_alpha_bar=_f32(np.sqrt(1.0 / alpha_bar)),
            sqrt_recipm1_alpha_bar=_f32(np.sqrt(1.0 / alpha_bar - 1)),
            posterior_var=_f32(posterior_var),
            posterior_log_var=_f32(np.log(np.append(posterior_var[1], posterior_var[1:]))),
            posterior_coef_x0=_f32(betas * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar)),
            posterior_coef_xt=_f32((1.0 - alpha_bar_prev) * np.sqrt(1.0 - betas) / (1.0 - alpha_bar)),
            log_betas=_f32(np.log(betas)),
            fixed_large_log_var=_f32(np.log(np.append(posterior_var[1], betas[1:]))),
            sqrt_one_minus_beta=torch.sqrt(1 - b32),
            sqrt_beta=torch.sqrt(b32),
        )

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    def to(self, device: torch.device | str) -> "Diffusion":
        """The same constants on ``device`` (a no-op when already there)."""
        if self.betas.device == torch.device(device):
            return self
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "config"}
        return replace(self, **moved)

    def model_time(self, t: Tensor) -> Tensor:
        """What the network is fed for respaced index ``t``: the base timestep (optionally rescaled to 0..1000)."""
        base_t = self.timestep_map[t]
        if self.config.rescale_timesteps:
            return base_t.float() * (1000.0 / self.config.steps)
        return base_t

    # ---------------------------------------------------------------- the NoiseProcess interface

    def scales(self, t: Time) -> tuple[Tensor, Tensor]:
        """(√ᾱ_t, √(1−ᾱ_t)), float32 square roots of the float32 ᾱ (the original's known-region weights)."""
        if isinstance(t, int) and t < 0:
            one = torch.ones((), device=self.betas.device)
            return one, torch.zeros_like(one)
        return _at(self.sqrt_alpha_bar, t), _at(self.sqrt_one_minus_alpha_bar, t)

    def signal_share(self, t: int) -> float:
        """ᾱ_t itself (the table's float32 value, not a square of its square root)."""
        return float(self.alpha_bar[t]) if t >= 0 else 1.0

    def transition(self, t: int, s: int) -> tuple[Tensor, Tensor]:
        """q(x_s | x_t): one level up is RePaint's N(√(1−β_s)·x_t, β_s) from the β tables (as the
        original computes it); further up N(√(ᾱ_s/ᾱ_t)·x_t, (1 − ᾱ_s/ᾱ_t))."""
        if s == t + 1:
            return self.sqrt_one_minus_beta[s], self.sqrt_beta[s]
        ratio = self.alpha_bar[s] / (self.alpha_bar[t] if t >= 0 else 1.0)
        return ratio.sqrt(), (1 - ratio).clamp(min=0).sqrt()

    def decode(self, output: Tensor, x_t: Tensor, t: Time) -> Decoded:
        """ε, x0 or v (``config.prediction``) plus optional variance channels -> (x0, ε, log σ²), in float32.

        ε: x0 = x_t/√ᾱ − √(1/ᾱ − 1)·ε;  x0: ε = (x_t − √ᾱ·x0)/√(1−ᾱ);  v = √ᾱ·ε − √(1−ᾱ)·x0:
        x0 = √ᾱ·x_t − √(1−ᾱ)·v, ε = √(1−ᾱ)·x_t + √ᾱ·v.
        """
        output, x_t = output.float(), x_t.float()  # the posterior in float32 whatever the network's dtype
        pred, var_values = split_output(output, x_t.shape[1])
        a, s = self.scales(t)
        kind = self.config.prediction
        if kind == "epsilon":
            eps = pred
            x0 = _at(self.sqrt_recip_alpha_bar, t) * x_t - _at(self.sqrt_recipm1_alpha_bar, t) * eps
        elif kind == "sample":
            x0, eps = pred, (x_t - a * pred) / s
        else:
            x0, eps = a * x_t - s * pred, s * x_t + a * pred
        # a learned variance needs the extra channels; samplers that don't use log σ² work without them
        missing = var_values is None and self.config.learns_variance
        return Decoded(x0, eps, None if missing else model_log_variance(self, var_values, t))

    def target(self, x0: Tensor, noise: Tensor, t: Time) -> Tensor:
        kind = self.config.prediction
        if kind == "epsilon":
            return noise
        if kind == "sample":
            return x0
        a, s = self.scales(t)
        return a * noise - s * x0

    def posterior(self, x0: Tensor, x_t: Tensor, t: Time) -> Tensor:
        """μ̃_t(x_t, x0) = coef_x0·x0 + coef_xt·x_t."""
        return _at(self.posterior_coef_x0, t) * x0 + _at(self.posterior_coef_xt, t) * x_t


def _at(table: Tensor, t: Tensor) -> Tensor:
    """Table value(s) at ``t``, shaped to broadcast against ``[B, C, H, W]``."""
    v = table[t]
    return v.view(-1, 1, 1, 1) if v.dim() else v


# --------------------------------------------------------------------------
# Forward process and the reverse step p(x_{t-1} | x_t)
# --------------------------------------------------------------------------


def q_sample(d: NoiseProcess, x0: Tensor, t: Time, noise: Tensor) -> Tensor:
    """x_t ~ q(x_t | x0) = N(a_t·x0, s_t²·I), with the given ε."""
    a, s = d.scales(t)
    return a * x0 + s * noise


def split_output(model_output: Tensor, channels: int) -> tuple[Tensor, Tensor | None]:
    """Split a network output into (ε, x0 or v prediction, variance values or None)."""
    if model_output.shape[1] == channels:
        return model_output, None
    if model_output.shape[1] == 2 * channels:
        return model_output[:, :channels], model_output[:, channels:]
    raise ValueError(f"network output has {model_output.shape[1]} channels; expected {channels} or {2 * channels}")


def model_log_variance(d: Diffusion, var_values: Tensor | None, t: Time) -> Tensor:
    """log σ²_t of p(x_{t-1} | x_t): learned (range) from the network's extra channels, or fixed."""
    kind = d.config.variance
    if kind in ("learned", "learned_range") and var_values is None:
        raise ValueError(f"variance={kind!r} needs a network with 2C output channels (learn_sigma)")
    if kind == "learned":
        return var_values
    if kind == "learned_range":
        # Interpolate in log space between σ̃²_t (v=-1) and β_t (v=+1).
        frac = (var_values + 1) / 2
        return frac * _at(d.log_betas, t) + (1 - frac) * _at(d.posterior_log_var, t)
    return _at(d.posterior_log_var if kind == "fixed_small" else d.fixed_large_log_var, t)


def p_mean_variance(
    d: NoiseProcess, model_output: Tensor, x_t: Tensor, t: Time, clip_x0: bool | float = True
) -> tuple[Tensor, Tensor, Tensor]:
    """(mean, log variance, x0 prediction) of p(x_{t-1} | x_t) from the raw network output."""
    out = d.decode(model_output, x_t, t)
    if out.log_var is None:
        raise ValueError(
            f"the reverse step needs log σ²: a network with 2C output channels (learn_sigma) for {d.config.variance!r}"
        )
    x0_pred = out.x0
    if clip_x0:  # True: [-1, 1]; a number: [-clip_x0, clip_x0]
        x0_pred = x0_pred.clamp(-float(clip_x0), float(clip_x0))
    return d.posterior(x0_pred, x_t.float(), t), out.log_var, x0_pred


# --------------------------------------------------------------------------
# Training losses (Ho et al.'s L_simple and Nichol & Dhariwal's hybrid loss)
# --------------------------------------------------------------------------


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log p of 8-bit pixel bins of ``x`` (in [-1, 1]) under N(mean, e^{2·log_scale}), elementwise, in nats."""
    inv_std = torch.exp(-log_scale)
    cdf_plus = _approx_std_normal_cdf(inv_std * (x - mean + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_std * (x - mean - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def _mean_flat(x: Tensor) -> Tensor:
    return x.mean(dim=list(range(1, x.dim())))


def vlb_terms(d: Diffusion, model_output: Tensor, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """L_{t-1} of the variational bound per sample, in bits: KL to the true posterior, or the decoder NLL at t=0."""
    mean, log_var, _ = p_mean_variance(d, model_output, x_t, t, clip_x0=False)
    true_mean = d.posterior(x0, x_t, t)
    kl = _mean_flat(normal_kl(true_mean, _at(d.posterior_log_var, t), mean, log_var)) / np.log(2.0)
    nll = -_mean_flat(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)) / np.log(2.0)
    return torch.where(t == 0, nll, kl)


def training_losses(
    d: Diffusion, model_output: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, noise: Tensor
) -> dict[str, Tensor]:
    """Per-sample losses for a network output at (x_t, t), x_t = q_sample(x0, t, noise).

    ``mse`` is L_simple on the network's own output (ε, x0 or v: ``NoiseProcess.target``).  A network that learns its
    variance adds ``vb``, the bound term L_t with the mean's gradient stopped: the hybrid
    loss L_simple + λ·L_vlb with λ = 1/num_timesteps, or λ = 0.001 for any number of
    steps with ``rescale_learned_sigmas`` (vb scaled by num_timesteps/1000), as in
    guided-diffusion.  ``use_kl`` trains on the rescaled bound alone.
    """
    cfg, channels = d.config, x0.shape[1]
    if cfg.use_kl:
        return {"loss": vlb_terms(d, model_output, x0, x_t, t) * d.num_timesteps}
    pred, var_values = split_output(model_output, channels)
    losses = {"mse": _mean_flat((d.target(x0, noise, t) - pred) ** 2)}
    if var_values is not None:
        frozen = torch.cat([pred.detach(), var_values], dim=1)
        vb = vlb_terms(d, frozen, x0, x_t, t)
        losses["vb"] = vb * (d.num_timesteps / 1000.0) if cfg.rescale_learned_sigmas else vb
    losses["loss"] = losses["mse"] + losses.get("vb", 0.0)
    return losses
