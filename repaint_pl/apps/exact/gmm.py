"""MCGdiff's Gaussian-mixture benchmark (Cardoso et al., ICLR 2024), in its inpainting special case.

The setting of "Monte Carlo guided diffusion for Bayesian linear inverse problems" (reused by DCPS, DDSMC,
TMPD): a prior of 25 unit-covariance Gaussians in dimension d with means (8i, 8j, 8i, 8j, ...),
i, j ∈ {-2, ..., 2}, and random weights; an observation y = A x + σ_y ε of d_y values; the sliced
Wasserstein distance between a sampler's draws and exact posterior draws.  This project's samplers solve
inpainting, so here A selects d_y coordinates (random, nested: the 1 observed coordinate is among the 2,
and those among the 4) and σ_y = 0: y is d_y coordinates of one prior draw.  The ideal denoiser and the
posterior are closed form (``priors.grid_gmm``, ``posterior.posterior``); every sampler runs on the DDPM
of the released models (linear β over 1000 steps, respaced) with the oracle.  Scores: sliced W₂ over the
unknown coordinates (256 directions) to as many independent exact draws, its floor (exact draws against
the same reference), and the mode-weight TV.

    python -m repaint_pl.apps.exact gmm --out results/gmm --dims 8 80 800 --samples 200 --seeds 2

``--noisy``: the published setting itself, y = A x + σ_y ε with MCGdiff's random A and σ_y
(``linear_observation``).  The samplers that take noisy known values (SMC, ``observation_noise``) run in the
basis of A's SVD, where y observes d_y coordinates each with its own noise (``noisy_problem``); scores are in
the original coordinates, against the exact posterior (a mixture of 25 Gaussians, ``linear_posterior``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from repaint_pl.files import atomic_write, write_csv
from repaint_pl.sampling import SMCSampler

from .. import cli
from .benchmark import Contender, Setting, contenders, core_contenders, floor_tolerance, setting_rows
from .posterior import Posterior, score
from .priors import BatchNoise, DensePrior, ExactDenoiser, grid_gmm

OBSERVED = (1, 2, 4)  # d_y of the paper


def observed_masks(dim: int, counts: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Keep masks ``[1, 1, dim]`` observing the first ``count`` coordinates of one random order (nested)."""
    order = torch.randperm(dim, generator=torch.Generator().manual_seed(10_000 + seed))
    keeps = []
    for count in counts:
        keep = torch.zeros(dim)
        keep[order[:count]] = 1
        keeps.append(keep.view(1, 1, dim))
    return keeps


def gmm_setting(dim: int, seed: int, counts: Sequence[int] = OBSERVED) -> Setting:
    """One problem: the prior's weights, the observed coordinates and the observed draw from ``seed``."""
    return Setting(
        "gmm",
        f"d={dim}",
        [f"d_y={c}" for c in counts],
        seed,
        prior=grid_gmm(dim, seed),
        keeps=observed_masks(dim, counts, seed),
        nll=False,
    )


def gmm_rows(
    dims: Sequence[int], seeds: Sequence[int], n: int, chosen: Sequence[Contender], counts=OBSERVED, log=print
) -> list[dict]:
    """The rows of every (d, seed): exact draws (the floor) and each sampler, per d_y."""
    rows = []
    for dim in dims:
        for seed in seeds:
            for row in setting_rows(gmm_setting(dim, seed, counts), n, chosen, seed, log):
                rows.append({**row, "seed": seed})
    return rows


# ---------------------------------------------------------------- the noisy linear observation (the published case)


def linear_observation(dim: int, d_y: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """MCGdiff's observation operator and noise: A = U·diag(s)·V_{:d_y}ᵀ from the SVD of a Gaussian d_y × d matrix
    with its singular values s replaced by sorted U(0, 1) draws, and σ_y = U(0, 1) × max s.  Returns U
    ``[d_y, d_y]``, s ``[d_y]``, Vᵀ ``[d, d]`` (full: its first d_y rows span A's row space) and σ_y (float64)."""
    g = torch.Generator().manual_seed(30_000 + 1_000 * seed + d_y)
    U, _, Vh = torch.linalg.svd(torch.randn(d_y, dim, generator=g, dtype=torch.float64), full_matrices=True)
    s = torch.rand(d_y, generator=g, dtype=torch.float64).sort(descending=True).values
    return U, s, Vh, float(torch.rand((), generator=g, dtype=torch.float64)) * float(s.max())


def linear_posterior(prior: DensePrior, A: torch.Tensor, y: torch.Tensor, sigma: float) -> Posterior:
    """Exact p(x | y = A x + σ ε) for a mixture of unit-covariance Gaussians: per component the covariance
    (I + AᵀA/σ²)⁻¹ and mean Σ(m_k + Aᵀy/σ²), weights w_k·N(y; A m_k, σ²I + AAᵀ)."""
    dim, d_y = A.shape[1], A.shape[0]
    cov = torch.linalg.inv(torch.eye(dim, dtype=torch.float64) + A.T @ A / sigma**2)
    cov = (cov + cov.T) / 2
    means = (prior.mean_vectors + (A.T @ y / sigma**2)[None]) @ cov.T
    marginal = sigma**2 * torch.eye(d_y, dtype=torch.float64) + A @ A.T
    chol = torch.linalg.cholesky(marginal)
    white = torch.linalg.solve_triangular(chol, (y[None] - prior.mean_vectors @ A.T).T, upper=False)  # [d_y, K]
    loglik = -0.5 * (white**2).sum(0) - torch.diagonal(chol).log().sum()
    log_w = prior.log_weights + loglik
    return Posterior(log_w - torch.logsumexp(log_w, 0), means, cov.expand(len(log_w), dim, dim).contiguous())


@dataclass
class NoisyProblem:
    """One noisy linear problem and its rotated form: in x̄ = Vᵀx the prior is again a unit-covariance mixture
    (means Vᵀm_k) and y observes x̄_i = (Uᵀy)_i / s_i + (σ_y / s_i)·ε_i for i < d_y (``image``, ``keep``,
    ``noise``: the known values, where they are and their noise std, ``[1, 1, d]``)."""

    dim: int
    d_y: int
    sigma: float
    posterior: Posterior
    rotated: DensePrior
    Vh: torch.Tensor
    image: torch.Tensor
    keep: torch.Tensor
    noise: torch.Tensor


def noisy_problem(dim: int, d_y: int, seed: int) -> NoisyProblem:
    """The prior of ``seed`` (``grid_gmm``), a prior draw x*, MCGdiff's A and σ_y, and y = A x* + σ_y ε."""
    prior = grid_gmm(dim, seed)
    U, s, Vh, sigma = linear_observation(dim, d_y, seed)
    A = U @ torch.diag(s) @ Vh[:d_y]
    g = torch.Generator().manual_seed(40_000 + 1_000 * seed + d_y)
    truth = prior.sample(1, g).reshape(dim)
    y = A @ truth + sigma * torch.randn(d_y, generator=g, dtype=torch.float64)
    rotated = DensePrior(prior.mean_vectors @ Vh.T, None, prior.log_weights.exp().tolist(), (1, 1, dim))
    image, keep, noise = (torch.zeros(1, 1, dim) for _ in range(3))
    image[0, 0, :d_y] = ((U.T @ y) / s).float()
    keep[0, 0, :d_y] = 1
    noise[0, 0, :d_y] = (sigma / s).float()
    return NoisyProblem(dim, d_y, sigma, linear_posterior(prior, A, y, sigma), rotated, Vh, image, keep, noise)


# (particles, levels, twisted) of the SMC points: 400, 2400 and 2400 calls, plain (MCGdiff's targets) and twisted
NOISY_SMC = tuple((k, levels, twist) for twist in (False, True) for k, levels in ((8, 50), (16, 150), (32, 75)))


def noisy_rows(
    dims: Sequence[int], seeds: Sequence[int], n: int, counts=OBSERVED, points=NOISY_SMC, log=print
) -> list[dict]:
    """Per (d, d_y, seed): exact posterior draws (the floor) and the SMC sampler at ``points``, scored in the
    original coordinates against as many exact reference draws (sliced W₂ over all d coordinates, energy
    distance, mode TV); every row carries the floor's tolerance like the benchmark's."""
    rows = []
    for dim in dims:
        for seed in seeds:
            for d_y in counts:
                problem = noisy_problem(dim, d_y, seed)
                rows += problem_rows(problem, n, seed, points, log)
    return rows


class _NoisySetting:
    """The two methods of ``Setting`` that ``floor_tolerance`` needs, for a ``NoisyProblem``."""

    def __init__(self, problem: NoisyProblem, seed: int):
        self.problem, self.seed = problem, seed

    def exact_samples(self, j: int, n: int, seed: int) -> torch.Tensor:
        return self.problem.posterior.sample(n, torch.Generator().manual_seed(seed))

    def row(self, j: int, name: str, family: str, calls: int, samples: torch.Tensor, seconds: float) -> dict:
        ref = self.exact_samples(j, samples.shape[0], 7919 * (self.seed + 1) + self.problem.d_y)
        p = self.problem
        return dict(
            prior="gmm (noisy A)", process="ddpm", size=f"d={p.dim}", mask=f"d_y={p.d_y}", sampler=name, family=family,
            calls=calls, seconds=round(seconds, 2), samples=samples.shape[0], unknown=p.dim, sigma_y=p.sigma,
            mode_weights=" ".join(f"{w:.3f}" for w in p.posterior.log_weights.exp().tolist()),
            **score(samples.double(), p.posterior, math.nan, ref),
        )  # fmt: skip


def problem_rows(problem: NoisyProblem, n: int, seed: int, points=NOISY_SMC, log=print) -> list[dict]:
    setting = _NoisySetting(problem, seed)
    tolerance = floor_tolerance(setting, 0, n)
    exact = setting.exact_samples(0, n, seed + 2)
    rows = [dict(setting.row(0, "exact posterior", "exact", 0, exact, 0.0), **tolerance)]
    for particles, levels, twist in points:
        family = "SMC twisted" if twist else "SMC"
        contender = Contender(family, SMCSampler(particles, levels, observation_noise=problem.noise[0], twist=twist),
                              name=f"{particles} particles, {levels} levels")  # fmt: skip
        d = contender.diffusion("ddpm")
        model_fn, _ = ExactDenoiser(problem.rotated, d).bind()
        start = time.perf_counter()
        with torch.no_grad():
            out = contender.sampler(model_fn, problem.image.expand(n, -1, -1, -1).contiguous(),
                                    problem.keep.expand(n, -1, -1, -1).contiguous(), contender.times(), d,
                                    BatchNoise(seed + 3, n), clip_x0=False)  # fmt: skip
        seconds = time.perf_counter() - start
        samples = out.reshape(n, problem.dim).double() @ problem.Vh  # back to x = V x̄
        rows.append(dict(setting.row(0, contender.label, family, contender.calls, samples, seconds), **tolerance))
        log(f"gmm noisy d={problem.dim} d_y={problem.d_y} seed {seed}  {contender.label}: {seconds:.1f} s")
    return rows


def gmm_table(rows: list[dict]) -> str:
    """Markdown: per d, d_y and sampler, the sliced W₂ (mean ± std over seeds) next to the exact draws' floor,
    the mode-weight TV, and on how many problems the sampler is at the floor (``report.at_floor``)."""
    from .report import at_floor

    floors = {(r["size"], r["mask"]): [] for r in rows}
    for r in rows:
        if r["sampler"] == "exact posterior":
            floors[(r["size"], r["mask"])].append(r["sw"])
    lines = [
        "| d | d_y | sampler | calls | sliced W₂ (mean ± std over seeds) | floor (exact draws) | mode TV "
        "| at the floor (problems) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, mask, name in dict.fromkeys((r["size"], r["mask"], r["sampler"]) for r in rows):
        rs = [r for r in rows if (r["size"], r["mask"], r["sampler"]) == (size, mask, name)]
        sw = np.array([r["sw"] for r in rs])
        tv = np.mean([r["mode_tv"] for r in rs])
        ok = sum(at_floor(r)[0] for r in rs) if "sw_tol" in rs[0] else None
        lines.append(
            f"| {size[2:]} | {mask[4:]} | {name} | {rs[0]['calls']} | {sw.mean():.3f} ± {sw.std():.3f} "
            f"| {np.mean(floors[(size, mask)]):.3f} | {tv:.3f} | {'–' if ok is None else f'{ok} of {len(rs)}'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    p = cli.parser(
        "repaint_pl.apps.exact gmm", "MCGdiff's 25-component mixture, inpainting case: sliced W₂ to exact draws."
    )
    cli.add_out(p, "folder for gmm.csv and gmm.md")
    p.add_argument("--dims", type=int, nargs="+", default=[8, 80, 800], help="dimensions d (even)")
    p.add_argument("--observed", type=int, nargs="+", default=list(OBSERVED), help="observed coordinates d_y")
    p.add_argument("--samples", type=int, default=200, help="draws per sampler, problem and d_y")
    p.add_argument("--seeds", type=int, default=2, help="problems (prior weights, observed coordinates and draw)")
    p.add_argument("--all", action="store_true", help="every sampler of the benchmark (default: one point per family)")
    p.add_argument("--families", nargs="+", help="only the samplers of these families (e.g. LanPaint SMC)")
    p.add_argument(
        "--noisy",
        action="store_true",
        help="the published case: y = A x + σ_y ε with MCGdiff's random A and σ_y (the SMC sampler, which takes "
        "noisy known values, in the basis of A's SVD)",
    )
    cli.add_threads(p, default=1, help="torch CPU threads")
    args = p.parse_args(list(argv or []))
    if any(c >= min(args.dims) for c in args.observed):
        p.error(f"--observed {args.observed}: each d_y must be below every d in --dims {args.dims}")
    cli.set_threads(args.threads)
    start = time.perf_counter()
    if args.noisy:
        if args.families or args.all:
            p.error("--noisy runs the SMC sampler only (the others take exact known values): drop --families/--all")
        rows = noisy_rows(args.dims, range(args.seeds), args.samples, args.observed)
        heading = (
            f"MCGdiff's Gaussian mixture, noisy linear observation ({args.samples} draws per sampler, {args.seeds} "
            f"problem(s) per d and d_y; {time.perf_counter() - start:.0f} s)"
        )
        return _write(rows, args.out, heading)
    pool = contenders() if args.all else core_contenders()
    chosen = [c for c in pool if not args.families or c.family in args.families]
    if not chosen:
        p.error(f"--families {args.families}: no such sampler family")
    rows = gmm_rows(args.dims, range(args.seeds), args.samples, chosen, args.observed)
    heading = (
        f"MCGdiff's Gaussian mixture, inpainting case ({args.samples} draws per sampler, {args.seeds} problem(s) "
        f"per d; {time.perf_counter() - start:.0f} s)"
    )
    return _write(rows, args.out, heading)


def _write(rows: list[dict], out: str, heading: str) -> list[dict]:
    text = f"# {heading}\n\n{gmm_table(rows)}"
    write_csv(rows, f"{out}/gmm.csv")
    atomic_write(f"{out}/gmm.md", text)
    print(text)
    print(f"written: {out}/gmm.csv, gmm.md")
    return rows
