"""Proper divergences between a sampler's draws and the exact answer (each is 0 only for the right law, so no
metric rewards a sampler that is too narrow), and the Monte Carlo floor they are read against.

* ``gaussian_kl``: KL(N_a ‖ N_b) in closed form; ``fitted_kl``: KL(Gaussian fitted to samples ‖ exact Gaussian);
* ``sliced_wasserstein``: SW₂ between two sets of draws (random directions, 1-D W₂ of the sorted projections);
* ``energy_distance``: the energy distance D² = 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistics);
* ``mode_tv``: total variation between mean mode responsibilities and the exact mode weights;
* ``spread``: total variance of the draws over the exact total variance, with its Monte Carlo standard error.

The floor of a sample-based metric is the same metric computed for as many exact draws, independent of
the reference draws it is compared with: what a perfect sampler scores with this number of samples
(the benchmark's "exact posterior" rows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_kl(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """KL(N(mean_a, cov_a) ‖ N(mean_b, cov_b)) in nats (float64); +inf when ``cov_a`` is singular."""
    m = mean_a.shape[0]
    chol_b = torch.linalg.cholesky(cov_b.double())
    chol_a, info = torch.linalg.cholesky_ex(cov_a.double())
    if int(info) != 0:
        return math.inf
    logdet_a = 2 * torch.diagonal(chol_a).log().sum()
    logdet_b = 2 * torch.diagonal(chol_b).log().sum()
    white = torch.linalg.solve_triangular(chol_b, chol_a, upper=False)  # L_b⁻¹ L_a: tr(Σ_b⁻¹Σ_a) = |.|²
    diff = torch.linalg.solve_triangular(chol_b, (mean_b - mean_a).double()[:, None], upper=False)
    return float(0.5 * ((white**2).sum() + (diff**2).sum() - m + logdet_b - logdet_a))


def fitted_kl(samples: Tensor, mean: Tensor, cov: Tensor) -> float:
    """KL(N(sample mean, sample covariance) ‖ N(mean, cov)) per dimension for ``samples`` ``[N, m]``;
    +inf when N ≤ m (a rank-deficient sample covariance has no density)."""
    x = samples.double()
    if x.shape[0] <= x.shape[1]:
        return math.inf
    return gaussian_kl(x.mean(0), torch.cov(x.T), mean, cov) / x.shape[1]


def directions(dim: int, count: int, generator: torch.Generator) -> Tensor:
    """``count`` uniform random unit vectors ``[count, dim]`` (float64)."""
    v = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return v / v.norm(dim=1, keepdim=True)


def _quantiles(x: Tensor, n: int) -> Tensor:
    """The empirical quantile functions of the rows of ``x`` ``[P, N]`` at (i + ½)/n, i < n: ``[P, n]``."""
    x = x.sort(dim=1).values
    if x.shape[1] == n:
        return x
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.quantile(x, levels, dim=1).T


def sliced_wasserstein(x: Tensor, y: Tensor, projections: int = 256, seed: int = 0) -> float:
    """SW₂(x, y) = (E_θ W₂²(θᵀx, θᵀy))^½ over uniform directions θ, for draws ``x`` ``[N, m]``, ``y`` ``[M, m]``
    (the 1-D W₂ between sorted projections, quantile functions when N ≠ M); ``seed`` fixes the directions."""
    theta = directions(x.shape[1], projections, torch.Generator().manual_seed(seed))
    n = max(x.shape[0], y.shape[0])
    px, py = _quantiles(theta @ x.double().T, n), _quantiles(theta @ y.double().T, n)
    return float(((px - py) ** 2).mean().sqrt())


def _mean_distance(x: Tensor, y: Tensor, block: int = 1024) -> Tensor:
    """E|X − Y| over all pairs of rows of ``x`` and ``y`` (blocks of rows, float64)."""
    total = torch.zeros((), dtype=torch.float64)
    for i in range(0, x.shape[0], block):
        total += torch.cdist(x[i : i + block], y).sum()
    return total / (x.shape[0] * y.shape[0])


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance D² = 2E|X−Y| − E|X−X'| − E|Y−Y'| between draws ``x`` ``[N, m]`` and ``y`` ``[M, m]``
    (V-statistics: 0 for identical sets, ≥ 0 always)."""
    x, y = x.double(), y.double()
    return float(2 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y))


def mode_tv(responsibilities: Tensor, log_weights: Tensor) -> float:
    """TV between the mean of ``responsibilities`` ``[N, K]`` and the mode weights ``exp(log_weights)``."""
    return float(0.5 * (responsibilities.mean(0) - log_weights.exp()).abs().sum())


def mode_tv_bound(log_weights: Tensor, n: int, z: float = 3.0) -> float:
    """A ``z``-σ bound on ``mode_tv`` for ``n`` exact draws: ½ Σ_k z √(w_k(1−w_k)/n) (hard assignments; soft
    responsibilities vary less)."""
    w = log_weights.exp()
    return float(0.5 * z * (w * (1 - w) / n).sqrt().sum())


def spread(samples: Tensor, cov: Tensor) -> tuple[float, float]:
    """(tr Ĉ / tr Σ, its standard error) for ``samples`` ``[N, m]`` and the exact covariance ``cov``: the
    standard error from the spread of the squared distances to the sample mean (delta method)."""
    x = samples.double()
    sq = ((x - x.mean(0)) ** 2).sum(1)
    total = float(cov.trace())
    return float(sq.sum() / (len(x) - 1)) / total, float(sq.std() / math.sqrt(len(x))) / total
