"""An exact yardstick for inpainting samplers: priors whose ideal denoiser and true posterior are known.

    python -m repaint_pl.exact --out results/exact             # the benchmark: CSV, summary, plot
    python -m repaint_pl.exact texture --out results/texture   # the same samplers on the texture model

Priors on grey ``n × n`` images (values around [-1, 1]):

* ``gaussian``: a stationary Gaussian field, covariance diagonal in the Fourier basis with a
  power-law spectrum s(k) = A (|k|² + k0²)^(-α/2) plus a small white floor;
* ``mixture``: a few such fields with different means and spectra.

For x_t = √ᾱ x0 + √(1-ᾱ) ε and a component N(μ, Σ), x_t ~ N(√ᾱ μ, ᾱΣ + (1-ᾱ)I), so
E[ε | x_t] = √(1-ᾱ) (ᾱΣ + (1-ᾱ)I)^{-1} (x_t - √ᾱ μ), one FFT each way; for the mixture the
component answers are weighted by p(k | x_t) from the component likelihoods.  The ideal denoiser
(``ExactDenoiser``) plugs into every sampler through the ordinary denoiser protocol, with the
noise processes (``DiffusionConfig.build``) and time tables (``repaint_pl.schedules``) of real models.

The true conditional of the unknown pixels given the known ones is Gaussian per component
(dense linear algebra), with component weights from the known pixels' likelihoods
(``posterior``).  Samples of each sampler are scored against it (``score``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .diffusion import Diffusion, DiffusionConfig
from .masks import PAPER_MASK_TYPES, keep_mask
from .samplers import (
    CoarseTravelSampler,
    DDIMRePaintSampler,
    DDNMSampler,
    DiffPIRSampler,
    RePaintSampler,
    Sampler,
)
from .schedules import JumpSchedule

# --------------------------------------------------------------------------
# Priors: mixtures of stationary Gaussian fields, diagonal in the Fourier basis
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# The exact conditional of the unknown pixels given the known ones
# --------------------------------------------------------------------------


@dataclass
class Posterior:
    """p(x_u | x_k) = Σ_k w_k N(mean_k, cov_k) over the ``m`` unknown pixels (float64)."""

    log_weights: Tensor  # [K]
    means: Tensor  # [K, m]
    covs: Tensor  # [K, m, m]

    def __post_init__(self):
        m = self.means.shape[1]
        jitter = 1e-10 * torch.eye(m, dtype=torch.float64)
        self.chols = torch.linalg.cholesky(self.covs + jitter)

    @property
    def mean(self) -> Tensor:
        return (self.log_weights.exp()[:, None] * self.means).sum(0)

    @property
    def cov(self) -> Tensor:
        w = self.log_weights.exp()[:, None, None]
        centred = self.means - self.mean
        return (w * (self.covs + centred[:, :, None] * centred[:, None, :])).sum(0)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; mean_k, cov_k) for ``x`` ``[N, m]``: ``[N, K]``."""
        diff = (x[None] - self.means[:, None]).transpose(1, 2)  # [K, m, N]
        white = torch.linalg.solve_triangular(self.chols, diff, upper=False)
        logdet = 2 * torch.diagonal(self.chols, dim1=-2, dim2=-1).log().sum(-1)
        m = x.shape[1]
        quad = (white**2).sum(1)  # [K, N]
        return (self.log_weights[:, None] - 0.5 * (quad + logdet[:, None] + m * math.log(2 * math.pi))).T

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_prob(x), dim=1)

    def responsibilities(self, x: Tensor) -> Tensor:
        return torch.softmax(self.component_log_prob(x), dim=1)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` exact draws ``[n, m]``: a component by weight, then its mean + chol · z."""
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        out = torch.empty_like(z)
        for k in range(len(self.log_weights)):
            rows = comp == k
            out[rows] = self.means[k] + z[rows] @ self.chols[k].T
        return out

    def entropy(self, generator: torch.Generator, draws: int = 8000) -> float:
        """Differential entropy (nats): closed form for one component, else Monte Carlo."""
        if len(self.log_weights) == 1:
            m = self.means.shape[1]
            logdet = 2 * torch.diagonal(self.chols[0]).log().sum()
            return float(0.5 * (logdet + m * (1 + math.log(2 * math.pi))))
        return float(-self.log_prob(self.sample(draws, generator)).mean())


def posterior(prior: Prior, x0: Tensor, keep: Tensor) -> Posterior:
    """Exact p(x_u | x_k) for an image ``x0`` ``[1, n, n]`` and keep mask ``[1, n, n]`` (1 = known)."""
    known = keep.flatten() > 0.5
    x_k = x0.flatten().double()[known]
    log_w, means, covs = [], [], []
    for k in range(len(prior.fields)):
        cov, mu = prior.covariance(k), prior.means[k]
        S_kk, S_uk, S_uu = cov[known][:, known], cov[~known][:, known], cov[~known][:, ~known]
        if known.any():
            chol = torch.linalg.cholesky(S_kk)
            gain = torch.cholesky_solve(S_uk.T, chol).T  # Σ_uk Σ_kk^{-1}
            white = torch.linalg.solve_triangular(chol, (x_k - mu)[:, None], upper=False)
            loglik = -0.5 * ((white**2).sum() + 2 * torch.diagonal(chol).log().sum())
            means.append(mu + gain @ (x_k - mu))
            covs.append(S_uu - gain @ S_uk.T)
        else:
            loglik = torch.zeros((), dtype=torch.float64)
            means.append(torch.full((int((~known).sum()),), float(mu), dtype=torch.float64))
            covs.append(S_uu)
        log_w.append(prior.log_weights[k] + loglik)
    log_w = torch.stack(log_w)
    return Posterior(log_w - torch.logsumexp(log_w, 0), torch.stack(means), torch.stack(covs))


# --------------------------------------------------------------------------
# Metrics of a set of samples against the exact posterior
# --------------------------------------------------------------------------


def gaussian_w2(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """Wasserstein-2 distance between N(mean_a, cov_a) and N(mean_b, cov_b)."""

    def sqrtm(c: Tensor) -> Tensor:
        vals, vecs = torch.linalg.eigh((c + c.T) / 2)
        return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T

    root_b = sqrtm(cov_b)
    cross = sqrtm(root_b @ cov_a @ root_b)
    w2sq = ((mean_a - mean_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace()
    return float(w2sq.clamp(min=0).sqrt())


def score(samples: Tensor, post: Posterior, entropy: float) -> dict[str, float]:
    """Errors of ``samples`` ``[N, m]`` (the unknown pixels) against the exact posterior.

    mean_err: RMS error of the sample mean over the RMS posterior std (≈ 1/√N for exact samples);
    w2_rel: Gaussian W2 of the samples' mean and covariance to the posterior's, over √tr Σ (one component);
    excess_nll: E[-log p(x_u | x_k)] over the samples minus the posterior's entropy, per unknown pixel;
    mode_tv: total variation between the mean posterior mode responsibilities of the samples and the
    exact mode weights (mixtures; 0 in expectation for exact samples).
    """
    x, m = samples.double(), samples.shape[1]
    spread = post.cov.diagonal().mean().sqrt()
    out = {"mean_err": float(((x.mean(0) - post.mean) ** 2).mean().sqrt() / spread)}
    if len(post.log_weights) == 1:
        out["w2_rel"] = gaussian_w2(x.mean(0), torch.cov(x.T), post.means[0], post.covs[0]) / float(
            post.covs[0].trace().sqrt()
        )
    else:
        out["w2_rel"] = float("nan")
    out["excess_nll"] = float((-post.log_prob(x).mean() - entropy) / m)
    if len(post.log_weights) > 1:
        out["mode_tv"] = float(0.5 * (post.responsibilities(x).mean(0) - post.log_weights.exp()).abs().sum())
    else:
        out["mode_tv"] = float("nan")
    return out


# --------------------------------------------------------------------------
# The benchmark: every sampler on every prior, size and mask type
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One point of the benchmark: a sampler, the respaced steps it runs on and its RePaint time table."""

    family: str
    sampler: Sampler
    steps: int = 250
    jump_length: int = 1
    jump_n_sample: int = 1
    name: str = ""  # a label that replaces the generated one
    variance: str = "fixed_small"  # of p(x_{t-1} | x_t): σ̃² (fixed_small) or β (fixed_large)

    def diffusion(self) -> Diffusion:
        """The noise process of the released models (linear β over 1000 steps) respaced to ``steps``."""
        return DiffusionConfig(
            steps=1000, noise_schedule="linear", timestep_respacing=str(self.steps), variance=self.variance
        ).build()

    def times(self) -> list[int]:
        return JumpSchedule(jump_length=self.jump_length, jump_n_sample=self.jump_n_sample).times(self.steps)

    @property
    def calls(self) -> int:
        return self.sampler.network_calls(self.times())

    @property
    def label(self) -> str:
        if self.name:
            return f"{self.family} ({self.name})"
        travel = f", jumps {self.jump_length}×{self.jump_n_sample}" if self.jump_n_sample > 1 else ""
        return f"{self.family} ({self.steps} steps{travel})"


PAPER = Contender("RePaint", RePaintSampler(), 250, 10, 10)
FAST = Contender("CoarseTravel (ours)", CoarseTravelSampler(), name="13 levels q², jumps 1×40")


def contenders() -> list[Contender]:
    """The samplers compared, from cheap to the paper's 2410 calls."""
    coarse_only = CoarseTravelSampler(50, 2, 10, spacing=1.0, variance="posterior")
    return [
        PAPER,
        Contender("RePaint σ²=β", RePaintSampler(), 250, 10, 10, variance="fixed_large"),
        Contender("RePaint", RePaintSampler(), 250, 10, 5),
        Contender("RePaint", RePaintSampler(), 250, 10, 2),
        Contender("no resampling", RePaintSampler(), 50),
        Contender("no resampling", RePaintSampler(), 250),
        Contender("DDIM-RePaint η=0", DDIMRePaintSampler(eta=0.0), 100, 5, 5),
        Contender("DDNM", DDNMSampler(), 250),
        Contender("DDNM", DDNMSampler(), 100, 5, 5),
        Contender("DiffPIR", DiffPIRSampler(), 100),
        Contender("DiffPIR", DiffPIRSampler(), 480),
        Contender("coarse grid only", coarse_only, name="50 even levels, jumps 2×10, σ̃²"),
        Contender("CoarseTravel (ours)", CoarseTravelSampler(jump_n_sample=20), name="13 levels q², jumps 1×20"),
        FAST,
        Contender(
            "CoarseTravel, analytic var. at every level",
            CoarseTravelSampler(25, 1, 20, analytic_min_alpha_bar=0.0),
            name="25 levels q², jumps 1×20",
        ),
    ]


@dataclass
class Setting:
    """A prior at one size, one known image (a prior draw) and the paper's mask types scaled to the size."""

    prior_name: str
    size: int
    masks: Sequence[str]
    seed: int = 0

    def __post_init__(self):
        self.prior = PRIORS[self.prior_name](self.size)
        self.image = self.prior.sample(1, torch.Generator().manual_seed(self.seed))[0].float()  # [1, n, n]
        self.keeps = [keep_mask(kind, self.size, seed=self.seed, image_id=0) for kind in self.masks]
        self.posteriors = [posterior(self.prior, self.image, keep) for keep in self.keeps]
        g = torch.Generator().manual_seed(self.seed + 1)
        self.entropies = [post.entropy(g) for post in self.posteriors]

    def unknown(self, samples: Tensor, j: int) -> Tensor:
        """The unknown pixels ``[N, m]`` of samples ``[N, 1, n, n]`` under mask ``j``."""
        return samples.flatten(1)[:, self.keeps[j].flatten() < 0.5]

    def run(self, contender: Contender, n: int, seed: int) -> tuple[list[Tensor], float]:
        """``n`` samples per mask type from one sampler (all masks in one batch); and the seconds taken."""
        d = contender.diffusion()
        model_fn, _ = ExactDenoiser(self.prior, d).bind()
        x0 = self.image.expand(len(self.masks) * n, -1, -1, -1).contiguous()
        keep = torch.stack(self.keeps).repeat_interleave(n, dim=0)
        start = time.perf_counter()
        with torch.no_grad():
            out = contender.sampler(model_fn, x0, keep, contender.times(), d, BatchNoise(seed, len(x0)), clip_x0=False)
        return list(out.split(n)), time.perf_counter() - start

    def exact_samples(self, j: int, n: int, seed: int) -> Tensor:
        return self.posteriors[j].sample(n, torch.Generator().manual_seed(seed))

    def row(self, j: int, name: str, family: str, calls: int, samples_u: Tensor, seconds: float) -> dict:
        metrics = score(samples_u, self.posteriors[j], self.entropies[j])
        return dict(
            prior=self.prior_name,
            size=self.size,
            mask=self.masks[j],
            sampler=name,
            family=family,
            calls=calls,
            seconds=round(seconds, 2),
            samples=samples_u.shape[0],
            unknown=samples_u.shape[1],
            mode_weights=" ".join(f"{w:.3f}" for w in self.posteriors[j].log_weights.exp().tolist()),
            **metrics,
        )


def core_contenders() -> list[Contender]:
    """The paper's schedule, the fast sampler and one point of each other family (for large sizes)."""
    keep = (
        "RePaint (250 steps, jumps 10×10)",
        "no resampling (250 steps)",
        "DDNM (100 steps, jumps 5×5)",
        "DiffPIR (100 steps)",
        FAST.label,
    )
    return [c for c in contenders() if c.label in keep]


def sample_count(setting: "Setting", n: int, w2_factor: float) -> int:
    """Samples per mask for ``setting``: ``n``, raised for the Gaussian prior to ``w2_factor`` × the largest
    number d of unknown pixels (and at least d + 1), so the sample covariance behind the W2 estimate has
    full rank.  The estimate's upward bias grows like d/N; below N = d it swamps the differences between
    samplers, above it shrinks (it never vanishes: the "exact posterior" rows show it)."""
    if len(setting.prior.fields) > 1 or not w2_factor:
        return n
    unknown = max(int((keep.flatten() < 0.5).sum()) for keep in setting.keeps)
    return max(n, math.ceil(w2_factor * unknown), unknown + 1)


def benchmark_setting(
    size: int,
    prior_name: str,
    masks: Sequence[str],
    n: int,
    seed: int = 0,
    chosen: Optional[Sequence[Contender]] = None,
    log=print,
    core_from: int = 0,
    w2_factor: float = 1.5,
) -> list[dict]:
    """The rows of one (prior, size): the exact posterior's own samples (the Monte Carlo floor) and each sampler."""
    rows = []
    setting = Setting(prior_name, size, masks, seed)
    n = sample_count(setting, n, w2_factor)
    for j in range(len(masks)):
        exact = setting.exact_samples(j, n, seed + 2 + j)
        rows.append(setting.row(j, "exact posterior", "exact", 0, exact, 0.0))
    default = core_contenders() if core_from and size >= core_from else contenders()
    for c in chosen or default:
        samples, seconds = setting.run(c, n, seed + 3)
        for j in range(len(masks)):
            rows.append(setting.row(j, c.label, c.family, c.calls, setting.unknown(samples[j], j), seconds))
        log(f"{prior_name} {size}²  {c.label}: {c.calls} calls, {n} samples per mask, {seconds:.1f} s")
    return rows


def _setting_job(job: tuple[tuple, dict, int]) -> list[dict]:
    """One (prior, size) in a worker process (the rows are the same as in sequence with as many threads)."""
    args, extra, threads = job
    torch.set_num_threads(threads)
    return benchmark_setting(*args, log=lambda line: print(line, flush=True), **extra)


def benchmark(
    sizes: Sequence[int],
    priors: Sequence[str],
    masks: Sequence[str],
    n: int,
    seed: int = 0,
    chosen: Optional[Sequence[Contender]] = None,
    log=print,
    core_from: int = 0,
    w2_factor: float = 1.5,
    jobs: int = 1,
) -> list[dict]:
    """All rows, per (prior, size) in the order of ``sizes`` then ``priors``; ``jobs`` > 1 runs the
    (prior, size) settings in that many processes, each with this process's number of torch threads
    (each setting's samples come from its own seeds, so the rows do not depend on ``jobs``; the workers
    print their progress instead of calling ``log``)."""
    work = [(size, p, masks, n, seed, chosen) for size in sizes for p in priors]
    extra = dict(core_from=core_from, w2_factor=w2_factor)
    if jobs <= 1:
        return [row for args in work for row in benchmark_setting(*args, log=log, **extra)]
    import multiprocessing

    # the longest settings first, so the pool does not end with one process working alone
    order = sorted(range(len(work)), key=lambda k: -work[k][0])
    threads = torch.get_num_threads()
    with multiprocessing.get_context("spawn").Pool(min(jobs, len(work))) as pool:
        results = pool.map(_setting_job, [(work[k], extra, threads) for k in order], chunksize=1)
    by_index = dict(zip(order, results))
    return [row for k in range(len(work)) for row in by_index[k]]


# --------------------------------------------------------------------------
# Reports: CSV, the fast sampler against the paper's schedule, the plot
# --------------------------------------------------------------------------

METRICS = ("mean_err", "w2_rel", "abs_excess_nll", "mode_tv")
METRIC_TITLES = {
    "mean_err": "error of the mean / posterior std",
    "w2_rel": "Gaussian W2 / √tr Σ",
    "abs_excess_nll": "|excess NLL| per unknown pixel (nats)",
    "mode_tv": "mode-weight distance (TV)",
}


def write_csv(rows: list[dict], path: str) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _metric(row: dict, name: str) -> float:
    return abs(row["excess_nll"]) if name == "abs_excess_nll" else row[name]


TIE = 1e-6  # metric values closer than this are equal (e.g. mode TVs of 1e-32 when both find the one mode)


def verdict(rows: list[dict], fast: str, paper: str) -> tuple[str, int, int]:
    """Markdown table: per setting and metric, the fast sampler's error against the paper schedule's
    (✓ when at or below it, ties within ``TIE`` included), with the exact posterior's own Monte Carlo floor; and (wins, comparisons)."""
    by = {(r["prior"], r["size"], r["mask"], r["sampler"]): r for r in rows}
    lines = [
        "| prior | size | mask | " + " | ".join(f"{METRIC_TITLES[m]}: ours / paper (floor)" for m in METRICS) + " |",
        "|---" * (3 + len(METRICS)) + "|",
    ]
    wins = total = 0
    for prior, size, mask, name in by:
        if name != paper:
            continue
        f, p, e = (by[(prior, size, mask, s)] for s in (fast, paper, "exact posterior"))
        cells = []
        for m in METRICS:
            a, b, floor = _metric(f, m), _metric(p, m), _metric(e, m)
            if math.isnan(b):
                cells.append("–")
                continue
            ok = a <= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=TIE)  # equal up to rounding: a tie
            wins, total = wins + ok, total + 1
            cells.append(f"{'✓' if ok else '✗'} {a:.3f} / {b:.3f} ({floor:.3f})")
        lines.append(f"| {prior} | {size}² | {mask} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", wins, total


def plot(rows: list[dict], path: str) -> None:
    """Error (mean over mask types) against network calls, one line per sampler family, per prior and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["prior"], r["size"]) for r in rows})
    families = list(dict.fromkeys(r["family"] for r in rows if r["family"] != "exact"))
    shown = ("mean_err", "abs_excess_nll", "w2_or_mode")
    fig, axes = plt.subplots(len(shown), len(panels), figsize=(4.2 * len(panels), 3.3 * len(shown)), squeeze=False)
    for col, (prior, size) in enumerate(panels):
        mine = [r for r in rows if r["prior"] == prior and r["size"] == size]
        for row_i, metric in enumerate(shown):
            m = ("w2_rel" if prior == "gaussian" else "mode_tv") if metric == "w2_or_mode" else metric
            ax = axes[row_i][col]
            for fam_i, family in enumerate(families):
                pts = _family_points(mine, family, m)
                style = "-o" if "ours" not in family else "-*"
                ax.plot(
                    [c for c, _ in pts],
                    [v for _, v in pts],
                    style,
                    label=family,
                    color=f"C{fam_i}",
                    markersize=9 if "ours" in family else 5,
                )
            floor = np.mean([_metric(r, m) for r in mine if r["family"] == "exact"])
            ax.axhline(floor, color="grey", linestyle=":", label="exact posterior (MC floor)")
            ax.set_xscale("log")
            ax.set_title(f"{prior} {size}²: {METRIC_TITLES[m]}", fontsize=9)
            ax.set_xlabel("network calls per image")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _family_points(rows: list[dict], family: str, metric: str) -> list[tuple[int, float]]:
    """(calls, mean over mask types) per sampler of ``family``, sorted by calls."""
    by_sampler: dict[str, list[dict]] = {}
    for r in rows:
        if r["family"] == family:
            by_sampler.setdefault(r["sampler"], []).append(r)
    pts = [(rs[0]["calls"], float(np.mean([_metric(r, metric) for r in rs]))) for rs in by_sampler.values()]
    return sorted(pts)


def summary_table(rows: list[dict]) -> str:
    """Markdown: per prior, size and sampler, calls and each metric averaged over the mask types."""
    keys = list(dict.fromkeys((r["prior"], r["size"], r["sampler"]) for r in rows))
    lines = [
        "| prior | size | sampler | calls | samples | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
        "|---" * (5 + len(METRICS)) + "|",
    ]
    for prior, size, name in keys:
        rs = [r for r in rows if (r["prior"], r["size"], r["sampler"]) == (prior, size, name)]
        vals = [np.mean([_metric(r, m) for r in rs]) for m in METRICS]
        cells = " | ".join("–" if math.isnan(v) else f"{v:.3f}" for v in vals)
        lines.append(f"| {prior} | {size}² | {name} | {rs[0]['calls']} | {rs[0]['samples']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    """``python -m repaint_pl.exact --out DIR``: the exact benchmark (``texture`` first: the texture study)."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["texture"]:
        from .exact_texture import main as texture_main

        return texture_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m repaint_pl.exact", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for exact.csv, summary.md and exact.png")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    p.add_argument("--priors", nargs="+", default=list(PRIORS), choices=list(PRIORS))
    p.add_argument("--masks", nargs="+", default=list(PAPER_MASK_TYPES))
    p.add_argument(
        "--samples", type=int, default=400, help="samples per sampler, setting and mask type (Gaussian prior: at least)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--core_from",
        type=int,
        default=0,
        help="from this size up, only the paper's schedule, the fast sampler and one point per family",
    )
    p.add_argument(
        "--w2_factor",
        type=float,
        default=1.5,
        help="Gaussian prior: at least this many samples per unknown pixel of the largest hole (and one more "
        "than it), so W2 comes from a full-rank sample covariance (0: --samples everywhere)",
    )
    p.add_argument("--jobs", type=int, default=1, help="(prior, size) settings run in parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these small FFTs)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    rows = benchmark(
        args.sizes,
        args.priors,
        args.masks,
        args.samples,
        args.seed,
        core_from=args.core_from,
        w2_factor=args.w2_factor,
        jobs=args.jobs,
    )
    write_csv(rows, os.path.join(args.out, "exact.csv"))
    table, wins, total = verdict(rows, FAST.label, PAPER.label)
    report = (
        f"# Exact benchmark ({args.samples} samples per sampler and mask"
        + (f", Gaussian prior at least {args.w2_factor:g} per unknown pixel" if args.w2_factor else "")
        + f"; seed {args.seed}, {args.jobs} process(es), "
        f"{time.perf_counter() - start:.0f} s)\n\n## Mean over mask types\n\n{summary_table(rows)}\n"
        f"## {FAST.label}, {FAST.calls} calls, against {PAPER.label}, {PAPER.calls} calls\n\n"
        f"At or below the paper schedule's error in {wins} of {total} comparisons.\n\n{table}"
    )
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(report)
    plot(rows, os.path.join(args.out, "exact.png"))
    print(report)
    print(f"written: {args.out}/exact.csv, summary.md, exact.png")
    return rows


if __name__ == "__main__":
    main()
