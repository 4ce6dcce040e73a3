"""Priors on grey ``n × n`` images whose ideal denoiser is known in closed form.

* ``gaussian``: a stationary Gaussian field, covariance diagonal in the Fourier basis with a
  power-law spectrum s(k) = A (|k|² + k0²)^(-α/2) plus a small white floor;
* ``mixture``: a few such fields with different means and spectra.

For x_t = √ᾱ x0 + √(1-ᾱ) ε and a component N(μ, Σ), x_t ~ N(√ᾱ μ, ᾱΣ + (1-ᾱ)I), so
E[ε | x_t] = √(1-ᾱ) (ᾱΣ + (1-ᾱ)I)^{-1} (x_t - √ᾱ μ), one FFT each way; for the mixture the
component answers are weighted by p(k | x_t) from the component likelihoods.  The ideal denoiser
(``ExactDenoiser``) plugs into every sampler through the ordinary denoiser protocol, with the
noise processes (``DiffusionConfig.build``) and time tables (``repaint_pl.schedules``) of real models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from repaint_pl.diffusion import Diffusion


@dataclass(frozen=True)
class Field:
    """One stationary Gaussian field: constant mean, pixel std, power-law exponent α and knee k0 (cycles)."""

    mean: float = 0.0
    std: float = 0.35
    alpha: float = 3.0
    k0: float = 1.0
    floor: float = 0.05  # std of the white component (keeps the covariance well conditioned)


def spectrum(field: Field, size: int) -> Tensor:
    """Power spectrum ``[size, size]`` (float64) with mean = pixel variance (orthonormal FFT)."""
    k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    shape = (k2 + field.k0**2) ** (-field.alpha / 2)
    coloured = shape / shape.mean() * (field.std**2 - field.floor**2)
    return coloured + field.floor**2


class Prior:
    """A mixture of Fourier-diagonal Gaussian fields on ``size × size`` grey images."""

    def __init__(self, fields: Sequence[Field], weights: Sequence[float], size: int):
        if len(fields) != len(weights) or not fields:
            raise ValueError("a prior needs as many weights as fields, at least one")
        self.size, self.fields = size, list(fields)
        self.log_weights = torch.log(torch.tensor(weights, dtype=torch.float64) / sum(weights))
        self.means = torch.tensor([f.mean for f in fields], dtype=torch.float64)
        self.spectra = torch.stack([spectrum(f, size) for f in fields])  # [K, n, n]
        # Parseval on the half spectrum of a real image: columns 1 .. ⌈n/2⌉-1 stand for two frequencies.
        self.half_weights = torch.full((size // 2 + 1,), 2.0)
        self.half_weights[0] = 1.0
        if size % 2 == 0:
            self.half_weights[-1] = 1.0

    @property
    def dim(self) -> int:
        return self.size * self.size

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws ``[n, 1, size, size]`` (float64)."""
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        white = torch.randn(n, self.size, self.size, generator=generator, dtype=torch.float64)
        coloured = torch.fft.ifft2(self.spectra[comp].sqrt() * torch.fft.fft2(white, norm="ortho"), norm="ortho")
        return (coloured.real + self.means[comp, None, None])[:, None]

    def covariance(self, k: int) -> Tensor:
        """Dense covariance ``[n², n²]`` of component ``k`` (float64): F^H diag(s) F applied to the identity."""
        eye = torch.eye(self.dim, dtype=torch.float64).view(self.dim, self.size, self.size)
        cols = torch.fft.ifft2(self.spectra[k] * torch.fft.fft2(eye, norm="ortho"), norm="ortho").real
        return cols.reshape(self.dim, self.dim)

    def eps_given_xt(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        """E[ε | x_t] for ``x_t`` ``[B, 1, n, n]`` at levels ``alpha_bar`` ``[B]``."""
        levels = alpha_bar.unique()
        if len(levels) == 1:  # the usual case: one level for the whole batch
            return self._eps_at_level(x_t[:, 0].float(), float(levels[0])).to(x_t.dtype)[:, None]
        out = torch.empty_like(x_t)
        for ab in levels:
            rows = alpha_bar == ab
            out[rows] = self._eps_at_level(x_t[rows, 0].float(), float(ab)).to(x_t.dtype)[:, None]
        return out

    def _eps_at_level(self, x_t: Tensor, ab: float) -> Tensor:
        """E[ε | x_t] for ``x_t`` ``[B, n, n]`` (float32) at one level ᾱ.

        Per component k: x_t ~ N(√ᾱ μ_k, ᾱΣ_k + (1-ᾱ)I), diagonal in the Fourier basis with variances
        v_k = ᾱ s_k + 1 - ᾱ; a constant mean only moves the zero frequency (by √ᾱ μ_k n).
        E[ε | x_t] = √(1-ᾱ) Σ_k p(k | x_t) F^H[(X - √ᾱ μ_k n δ) / v_k], with real FFTs (half spectrum).
        """
        B, n, K = x_t.shape[0], self.size, len(self.fields)
        var = ab * self.spectra + (1 - ab)  # [K, n, n], float64
        log_det = var.log().sum((-2, -1)).float()
        inv_var = (1 / var[..., : n // 2 + 1]).float()  # the half spectrum rfft2 keeps
        X = torch.fft.rfft2(x_t, norm="ortho")  # [B, n, n//2 + 1]
        dc = (math.sqrt(ab) * self.means * n).float()  # [K]: the zero frequency of √ᾱ μ_k
        centred_dc = X[:, 0, 0, None].real - dc  # [B, K]
        X_ri = torch.view_as_real(X)  # real arithmetic: much faster than complex on CPU
        power = (X_ri**2).sum(-1) * self.half_weights
        power[:, 0, 0] = 0
        flat_inv = inv_var.reshape(K, -1)
        quad = power.reshape(B, -1) @ flat_inv.T + centred_dc**2 * inv_var[:, 0, 0]
        w = torch.softmax(-0.5 * (quad + log_det) + self.log_weights.float(), dim=1)  # [B, K]: p(k | x_t)
        Y = torch.view_as_complex(X_ri * (w @ flat_inv).view(*X.shape, 1))
        Y[:, 0, 0] = (w * centred_dc * inv_var[:, 0, 0]).sum(1)
        return math.sqrt(1 - ab) * torch.fft.irfft2(Y, s=(n, n), norm="ortho")


def gaussian_prior(size: int) -> Prior:
    return Prior([Field(mean=0.0, std=0.35, alpha=3.0)], [1.0], size)


def mixture_prior(size: int) -> Prior:
    """Three modes: dark and smooth, mid-grey and rough, bright and very smooth."""
    fields = [
        Field(mean=-0.4, std=0.25, alpha=3.5, k0=1.0),
        Field(mean=0.0, std=0.3, alpha=1.5, k0=2.0),
        Field(mean=0.45, std=0.2, alpha=4.0, k0=0.5),
    ]
    return Prior(fields, [0.4, 0.35, 0.25], size)


PRIORS = {"gaussian": gaussian_prior, "mixture": mixture_prior}


class ExactDenoiser:
    """The ideal ε-predictor of a ``Prior`` as a denoiser: ``bind(cond, noise) -> (model_fn, None)``.

    ``diffusion`` is the respaced sampling process (ε output, fixed variance); ``clip_x0`` is None
    (the Gaussian fields are not bounded, so x0 predictions are never clipped).
    """

    clip_x0: Optional[float] = None

    def __init__(self, prior: Prior, diffusion: Diffusion):
        if diffusion.config.predict_xstart or diffusion.config.learns_variance:
            raise ValueError(
                "ExactDenoiser predicts ε with a fixed variance: use predict_xstart=False, variance=fixed_*"
            )
        self.prior, self.diffusion = prior, diffusion

    def bind(self, cond=None, noise=None):
        alpha_bar = self.diffusion.alpha_bar

        def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return self.prior.eps_given_xt(x_t, alpha_bar.to(x_t.device)[t])

        return model_fn, None


class BatchNoise:
    """One generator for the whole batch (``NoiseSource``): the benchmark's samples are exchangeable
    draws, so per-sample generators would only cost time."""

    def __init__(self, seed: int, batch_size: int):
        self.batch_size, self.generator = batch_size, torch.Generator().manual_seed(seed)

    def randn(self, shape: Sequence[int]) -> Tensor:
        return torch.randn((self.batch_size, *shape), generator=self.generator)

    def randint(self, high: int) -> Tensor:
        return torch.randint(0, high, (self.batch_size,), generator=self.generator)
