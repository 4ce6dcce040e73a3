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

from repaint_pl.flow import FlowProcess


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

    @property
    def components(self) -> int:
        return len(self.fields)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def mean_vector(self, k: int) -> Tensor:
        """The mean ``[n²]`` of component ``k`` (float64): constant."""
        return torch.full((self.dim,), float(self.means[k]), dtype=torch.float64)

    def eps_given_xt(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        """E[ε | x_t] for ``x_t`` ``[B, 1, n, n]`` at DDPM levels ``alpha_bar`` ``[B]`` (a = √ᾱ, s = √(1-ᾱ))."""
        return denoise(self, x_t, alpha_bar.sqrt(), (1 - alpha_bar).sqrt(), want_x0=False)[0]

    def moments_at_level(
        self, x_t: Tensor, a: float, s: float, want_x0: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        """(E[ε | x_t], E[x0 | x_t]) for ``x_t`` ``[B, 1, n, n]`` (float32) with x_t = a·x0 + s·ε at one level.

        Per component k: x_t ~ N(a μ_k, a²Σ_k + s²I), diagonal in the Fourier basis with variances
        v_k = a² S_k + s²; a constant mean only moves the zero frequency (by a μ_k n).
        E[ε | x_t] = s Σ_k p(k | x_t) F^H[(X - a μ_k n δ) / v_k] and
        E[x0 | x_t] = Σ_k p(k | x_t) (μ_k + a F^H[S_k (X - a μ_k n δ) / v_k]), with real FFTs (half spectrum).
        """
        x_t = x_t[:, 0]
        B, n, K = x_t.shape[0], self.size, len(self.fields)
        var = a * a * self.spectra + s * s  # [K, n, n], float64
        log_det = var.log().sum((-2, -1)).float()
        inv_var = (1 / var[..., : n // 2 + 1]).float()  # the half spectrum rfft2 keeps
        gain = (self.spectra[..., : n // 2 + 1] / var[..., : n // 2 + 1]).float()  # S_k / v_k
        X = torch.fft.rfft2(x_t, norm="ortho")  # [B, n, n//2 + 1]
        dc = (a * self.means * n).float()  # [K]: the zero frequency of a μ_k
        centred_dc = X[:, 0, 0, None].real - dc  # [B, K]
        X_ri = torch.view_as_real(X)  # real arithmetic: much faster than complex on CPU
        power = (X_ri**2).sum(-1) * self.half_weights
        power[:, 0, 0] = 0
        flat_inv, flat_gain = inv_var.reshape(K, -1), gain.reshape(K, -1)
        quad = power.reshape(B, -1) @ flat_inv.T + centred_dc**2 * inv_var[:, 0, 0]
        w = torch.softmax(-0.5 * (quad + log_det) + self.log_weights.float(), dim=1)  # [B, K]: p(k | x_t)
        E = torch.view_as_complex(X_ri * (w @ flat_inv).view(*X.shape, 1))
        E[:, 0, 0] = (w * centred_dc * inv_var[:, 0, 0]).sum(1)
        eps = s * torch.fft.irfft2(E, s=(n, n), norm="ortho")
        if not want_x0:
            return eps[:, None], None
        X0 = torch.view_as_complex(X_ri * (a * (w @ flat_gain)).view(*X.shape, 1))
        X0[:, 0, 0] = (w * (self.means.float() * n + a * centred_dc * gain[:, 0, 0])).sum(1)
        x0 = torch.fft.irfft2(X0, s=(n, n), norm="ortho")
        return eps[:, None], x0[:, None]


def denoise(prior, x_t: Tensor, a: Tensor, s: Tensor, want_x0: bool = True) -> tuple[Tensor, Optional[Tensor]]:
    """(E[ε | x_t], E[x0 | x_t] or None) ``[B, C, H, W]`` for x_t = a·x0 + s·ε with per-row levels ``a``, ``s``
    (one or B values), one call of ``prior.moments_at_level`` per distinct level."""
    a, s = a.reshape(-1).double(), s.reshape(-1).double()
    if len(a) == 1:
        a, s = a.expand(len(x_t)), s.expand(len(x_t))
    levels = torch.stack([a, s], 1).unique(dim=0)
    if len(levels) == 1:  # the usual case: one level for the whole batch
        e, x = prior.moments_at_level(x_t.float(), *levels[0].tolist(), want_x0)
        return e.to(x_t.dtype), (x.to(x_t.dtype) if want_x0 else None)
    eps, x0 = torch.empty_like(x_t), torch.empty_like(x_t)
    for a_k, s_k in levels.tolist():
        rows = (a == a_k) & (s == s_k)
        e, x = prior.moments_at_level(x_t[rows].float(), a_k, s_k, want_x0)
        eps[rows] = e.to(x_t.dtype)
        if want_x0:
            x0[rows] = x.to(x_t.dtype)
    return eps, (x0 if want_x0 else None)


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


class DensePrior:
    """A mixture of Gaussians with dense means and covariances on ``[C, H, W]`` tensors (float64 tables).

    Each covariance is kept as its eigendecomposition Σ_k = U_k diag(λ_k) U_kᵀ, in which x_t's covariance
    a²Σ_k + s²I is diagonal: the ideal denoiser costs two ``[B, d] × [d, d]`` products per component
    (none for isotropic components, ``vecs`` None).  Same interface as ``Prior``.
    """

    def __init__(self, means: Tensor, covs: Optional[Tensor], weights: Sequence[float], shape: Sequence[int]):
        self.shape = tuple(int(v) for v in shape)
        self.dim = math.prod(self.shape)
        self.size = self.shape[-1]
        self.mean_vectors = means.double().reshape(len(weights), self.dim)
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.log_weights = torch.log(w / w.sum())
        if covs is None:  # unit covariance
            self.vals, self.vecs = torch.ones(len(w), self.dim, dtype=torch.float64), None
        else:
            covs = covs.double()
            self.vals, self.vecs = torch.linalg.eigh((covs + covs.transpose(1, 2)) / 2)
            if float(self.vals.min()) <= 0:
                raise ValueError("DensePrior: every covariance must be positive definite")
        self._vecs32 = None if self.vecs is None else self.vecs.float()

    @property
    def components(self) -> int:
        return len(self.log_weights)

    def mean_vector(self, k: int) -> Tensor:
        return self.mean_vectors[k]

    def covariance(self, k: int) -> Tensor:
        if self.vecs is None:
            return torch.diag(self.vals[k])
        return (self.vecs[k] * self.vals[k]) @ self.vecs[k].T

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws ``[n, *shape]`` (float64)."""
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64) * self.vals[comp].sqrt()
        if self.vecs is not None:
            z = torch.einsum("nij,nj->ni", self.vecs[comp], z)
        return (self.mean_vectors[comp] + z).view(n, *self.shape)

    def moments_at_level(
        self, x_t: Tensor, a: float, s: float, want_x0: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        """(E[ε | x_t], E[x0 | x_t]) for ``x_t`` ``[B, *shape]`` with x_t = a·x0 + s·ε (float32 arithmetic).

        In component k's eigenbasis z = U_kᵀ(x_t - a μ_k) has variances v = a²λ + s²:
        E[ε | x_t, k] = s U_k z/v and E[x0 | x_t, k] = μ_k + a U_k λ z/v, weighted by p(k | x_t).
        """
        B = x_t.shape[0]
        x = x_t.reshape(B, self.dim).float()
        var = (a * a * self.vals + s * s).float()  # [K, d]
        logs, zs = [], []
        for k in range(self.components):
            z = x - a * self.mean_vectors[k].float()
            if self._vecs32 is not None:
                z = z @ self._vecs32[k]
            zs.append(z)
            logs.append(-0.5 * ((z * z / var[k]).sum(1) + var[k].log().sum()) + float(self.log_weights[k]))
        w = torch.softmax(torch.stack(logs, 1), dim=1)  # [B, K]
        eps = torch.zeros_like(x)
        x0 = torch.zeros_like(x) if want_x0 else None
        lam = self.vals.float()
        for k, z in enumerate(zs):
            e_k, g_k = w[:, k : k + 1] * z / var[k], None
            if want_x0:
                g_k = a * e_k * lam[k]
            if self._vecs32 is not None:
                e_k = e_k @ self._vecs32[k].T
                g_k = None if g_k is None else g_k @ self._vecs32[k].T
            eps += s * e_k
            if want_x0:
                x0 += g_k + w[:, k : k + 1] * self.mean_vectors[k].float()
        shape = (B, *self.shape)
        return eps.view(shape), (x0.view(shape) if want_x0 else None)


def _grid(size: int) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (rows, columns) ``[n²]`` in [0, 1] (float64)."""
    r = torch.linspace(0, 1, size, dtype=torch.float64)
    ys, xs = torch.meshgrid(r, r, indexing="ij")
    return ys.flatten(), xs.flatten()


def gibbs_covariance(size: int, length: Tensor, std: Tensor, floor: float = 0.05) -> Tensor:
    """Gibbs' non-stationary squared-exponential kernel on the ``size²`` grid (positive definite for any
    per-pixel length scale ``length`` and std ``std``, both ``[n²]``, in image widths), plus a white floor."""
    ys, xs = _grid(size)
    d2 = (ys[:, None] - ys[None]) ** 2 + (xs[:, None] - xs[None]) ** 2
    l2 = length[:, None] ** 2 + length[None] ** 2
    corr = (2 * length[:, None] * length[None] / l2) * torch.exp(-d2 / l2)
    return std[:, None] * std[None] * corr + floor**2 * torch.eye(size * size, dtype=torch.float64)


def nonstationary_prior(size: int) -> DensePrior:
    """A fresh Gaussian (no sampler was tuned on it): correlation length 0.04 → 0.3 image widths from left to
    right, pixel std 0.15 → 0.45 from top to bottom, mean 0."""
    ys, xs = _grid(size)
    cov = gibbs_covariance(size, 0.04 + 0.26 * xs, 0.15 + 0.3 * ys)
    return DensePrior(torch.zeros(1, size * size), cov[None], [1.0], (1, size, size))


def oriented_covariance(size: int, angle: float, long: float, short: float, std: float, floor: float = 0.05) -> Tensor:
    """A stationary anisotropic squared-exponential kernel: length ``long`` along ``angle`` (radians) and
    ``short`` across it (image widths), pixel std ``std``, plus a white floor."""
    ys, xs = _grid(size)
    dy, dx = ys[:, None] - ys[None], xs[:, None] - xs[None]
    along = dx * math.cos(angle) + dy * math.sin(angle)
    across = -dx * math.sin(angle) + dy * math.cos(angle)
    corr = torch.exp(-0.5 * ((along / long) ** 2 + (across / short) ** 2))
    return std**2 * corr + floor**2 * torch.eye(size * size, dtype=torch.float64)


def stripes_prior(size: int) -> DensePrior:
    """A fresh mixture (no sampler was tuned on it): six components, each oriented texture (stripes along
    0°, 30°, ..., 150°, lengths 0.5 and 0.06 image widths) with its own ramp mean along its orientation."""
    ys, xs = _grid(size)
    means, covs = [], []
    for k in range(6):
        angle = k * math.pi / 6
        ramp = (xs - 0.5) * math.cos(angle + 1.0) + (ys - 0.5) * math.sin(angle + 1.0)
        means.append(0.1 * (k - 2.5) / 2.5 + 0.4 * ramp)
        covs.append(oriented_covariance(size, angle, 0.5, 0.06, 0.3))
    return DensePrior(torch.stack(means), torch.stack(covs), [0.25, 0.2, 0.15, 0.15, 0.15, 0.1], (1, size, size))


def colour_prior(size: int) -> DensePrior:
    """A fresh colour Gaussian (no sampler was tuned on it) on ``[3, n, n]``: Σ = C ⊗ S with the channels'
    covariance C (std 0.3, correlations 0.8 between neighbouring channels and 0.6 between red and blue) and
    a squared-exponential spatial correlation S (length 0.15 image widths), plus a white floor; channel means
    0.1, 0, -0.1."""
    ys, xs = _grid(size)
    d2 = (ys[:, None] - ys[None]) ** 2 + (xs[:, None] - xs[None]) ** 2
    spatial = torch.exp(-0.5 * d2 / 0.15**2)
    channels = 0.09 * torch.tensor([[1.0, 0.8, 0.6], [0.8, 1.0, 0.8], [0.6, 0.8, 1.0]], dtype=torch.float64)
    cov = torch.kron(channels, spatial) + 0.05**2 * torch.eye(3 * size * size, dtype=torch.float64)
    mean = torch.tensor([0.1, 0.0, -0.1], dtype=torch.float64).repeat_interleave(size * size)
    return DensePrior(mean[None], cov[None], [1.0], (3, size, size))


def grid_gmm(dim: int, seed: int = 0) -> DensePrior:
    """MCGdiff's mixture (Cardoso et al., ICLR 2024): 25 unit-covariance Gaussians in ``dim`` (even)
    dimensions with means (8i, 8j, 8i, 8j, ...) for i, j ∈ {-2, ..., 2} and weights z²/Σz², z ~ N(0, 1)
    from ``seed``; laid out as ``[1, 1, dim]`` so that the image samplers run on it."""
    if dim % 2:
        raise ValueError(f"grid_gmm: dim={dim} must be even (means repeat (8i, 8j))")
    pairs = [(8.0 * i, 8.0 * j) for i in range(-2, 3) for j in range(-2, 3)]
    means = torch.tensor([list(p) * (dim // 2) for p in pairs], dtype=torch.float64)
    weights = torch.randn(25, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) ** 2
    return DensePrior(means, None, weights.tolist(), (1, 1, dim))


PRIORS = {"gaussian": gaussian_prior, "mixture": mixture_prior}  # the priors the samplers were tuned on
FRESH_PRIORS = {  # never used for tuning
    "nonstationary": nonstationary_prior,
    "stripes": stripes_prior,
    "colour": colour_prior,
}
ALL_PRIORS = {**PRIORS, **FRESH_PRIORS}


class ExactDenoiser:
    """The ideal denoiser of a prior as a denoiser: ``bind(cond, noise) -> (model_fn, None)``.

    ``process`` is the respaced sampling process: a DDPM (``Diffusion``: ε output, fixed variance) or the
    rectified flow (``FlowProcess``: velocity output E[ε - x0 | x_t], x_t = (1-σ)x0 + σε); ``clip_x0`` is
    None (the priors are not bounded, so x0 predictions are never clipped).
    """

    clip_x0: Optional[float] = None

    def __init__(self, prior, process):
        config = process.config
        if getattr(config, "predict_xstart", False) or getattr(config, "learns_variance", False):
            raise ValueError(
                "ExactDenoiser predicts ε with a fixed variance: use predict_xstart=False, variance=fixed_*"
            )
        self.prior, self.process = prior, process
        self.velocity = isinstance(process, FlowProcess)

    def bind(self, cond=None, noise=None):
        def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
            a, s = self.process.to(x_t.device).scales(t)
            eps, x0 = denoise(self.prior, x_t, a, s, want_x0=self.velocity)
            return eps - x0 if self.velocity else eps

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
