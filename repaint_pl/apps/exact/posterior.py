"""The exact conditional of the unknown pixels given the known ones, and the errors of samples against it.

Per component of a ``Prior`` the conditional is Gaussian (dense linear algebra); the component weights
come from the known pixels' likelihoods (``posterior``).  ``score`` measures a set of samples against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .priors import Prior


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
