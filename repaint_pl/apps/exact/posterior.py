"""The exact conditional of the unknown pixels given the known ones, and the errors of samples against it.

Per component of a ``Prior`` the conditional is Gaussian (dense linear algebra); the component weights
come from the known pixels' likelihoods (``posterior``).  ``score`` measures a set of samples against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from . import metrics


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


def posterior(prior, x0: Tensor, keep: Tensor) -> Posterior:
    """Exact p(x_u | x_k) for an image ``x0`` ``[C, H, W]`` of a prior (``Prior`` or ``DensePrior``) and a keep
    mask (1 = known) of the same number of values; no known value: the prior itself."""
    known = keep.flatten() > 0.5
    x_k = x0.flatten().double()[known]
    log_w, means, covs = [], [], []
    for k in range(prior.components):
        cov, mu = prior.covariance(k), prior.mean_vector(k)
        S_kk, S_uk, S_uu = cov[known][:, known], cov[~known][:, known], cov[~known][:, ~known]
        if known.any():
            chol = torch.linalg.cholesky(S_kk)
            gain = torch.cholesky_solve(S_uk.T, chol).T  # Σ_uk Σ_kk^{-1}
            white = torch.linalg.solve_triangular(chol, (x_k - mu[known])[:, None], upper=False)
            loglik = -0.5 * ((white**2).sum() + 2 * torch.diagonal(chol).log().sum())
            means.append(mu[~known] + gain @ (x_k - mu[known]))
            covs.append(S_uu - gain @ S_uk.T)
        else:
            loglik = torch.zeros((), dtype=torch.float64)
            means.append(mu.clone())
            covs.append(S_uu)
        log_w.append(prior.log_weights[k] + loglik)
    log_w = torch.stack(log_w)
    return Posterior(log_w - torch.logsumexp(log_w, 0), torch.stack(means), torch.stack(covs))


def gaussian_w2(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """Wasserstein-2 distance between N(mean_a, cov_a) and N(mean_b, cov_b)."""

    def sqrtm(c: Tensor) -> Tensor:
        vals, vecs = torch.linalg.eigh((c + c.T) / 2)
        return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T

    root_b = sqrtm(cov_b)
    cross = sqrtm(root_b @ cov_a @ root_b)
    w2sq = ((mean_a - mean_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace()
    return float(w2sq.clamp(min=0).sqrt())


def score(samples: Tensor, post: Posterior, entropy: float, reference: Optional[Tensor] = None) -> dict[str, float]:
    """Errors of ``samples`` ``[N, m]`` (the unknown pixels) against the exact posterior.

    Proper divergences (0 only for the right law): kl: KL(Gaussian fitted to the samples ‖ posterior) per
    unknown pixel (one component; inf when N ≤ m); sw: sliced W₂ to ``reference`` (exact draws, independent
    of any others scored); energy: the energy distance to ``reference``; mode_tv: total variation between the
    samples' mean mode responsibilities and the exact mode weights (mixtures).
    Secondary: spread (tr Ĉ / tr Σ, 1 for the right spread; spread_se its standard error); mean_err: RMS
    error of the sample mean over the RMS posterior std; w2_rel: Gaussian W2 over √tr Σ (one component);
    excess_nll: E[-log p(x_u | x_k)] minus the entropy per pixel (rewards a too-narrow sampler: not a divergence).
    """
    x, m = samples.double(), samples.shape[1]
    nan = float("nan")
    one = len(post.log_weights) == 1
    spread_val, spread_se = metrics.spread(x, post.cov)
    out = {
        "kl": metrics.fitted_kl(x, post.means[0], post.covs[0]) if one else nan,
        "sw": metrics.sliced_wasserstein(x, reference) if reference is not None else nan,
        "energy": metrics.energy_distance(x, reference) if reference is not None else nan,
        "mode_tv": nan if one else metrics.mode_tv(post.responsibilities(x), post.log_weights),
        "spread": spread_val,
        "spread_se": spread_se,
        "mean_err": float(((x.mean(0) - post.mean) ** 2).mean().sqrt() / post.cov.diagonal().mean().sqrt()),
        "w2_rel": nan,
        "excess_nll": nan if math.isnan(entropy) else float((-post.log_prob(x).mean() - entropy) / m),
    }
    if one and x.shape[0] > 1:
        w2 = gaussian_w2(x.mean(0), torch.cov(x.T), post.means[0], post.covs[0])
        out["w2_rel"] = w2 / float(post.covs[0].trace().sqrt())
    return out
