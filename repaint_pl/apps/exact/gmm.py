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
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
import torch

from repaint_pl.files import atomic_write, write_csv

from .. import cli
from .benchmark import Contender, Setting, contenders, core_contenders, setting_rows
from .priors import grid_gmm

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


def gmm_table(rows: list[dict]) -> str:
    """Markdown: per d, d_y and sampler, the sliced W₂ (mean ± std over seeds) next to the exact draws' floor,
    and the mode-weight TV."""
    floors = {(r["size"], r["mask"]): [] for r in rows}
    for r in rows:
        if r["sampler"] == "exact posterior":
            floors[(r["size"], r["mask"])].append(r["sw"])
    lines = [
        "| d | d_y | sampler | calls | sliced W₂ (mean ± std over seeds) | floor (exact draws) | mode TV |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, mask, name in dict.fromkeys((r["size"], r["mask"], r["sampler"]) for r in rows):
        rs = [r for r in rows if (r["size"], r["mask"], r["sampler"]) == (size, mask, name)]
        sw = np.array([r["sw"] for r in rs])
        tv = np.mean([r["mode_tv"] for r in rs])
        lines.append(
            f"| {size[2:]} | {mask[4:]} | {name} | {rs[0]['calls']} | {sw.mean():.3f} ± {sw.std():.3f} "
            f"| {np.mean(floors[(size, mask)]):.3f} | {tv:.3f} |"
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
    cli.add_threads(p, default=1, help="torch CPU threads")
    args = p.parse_args(list(argv or []))
    if any(c >= min(args.dims) for c in args.observed):
        p.error(f"--observed {args.observed}: each d_y must be below every d in --dims {args.dims}")
    cli.set_threads(args.threads)
    start = time.perf_counter()
    pool = contenders() if args.all else core_contenders()
    chosen = [c for c in pool if not args.families or c.family in args.families]
    if not chosen:
        p.error(f"--families {args.families}: no such sampler family")
    rows = gmm_rows(args.dims, range(args.seeds), args.samples, chosen, args.observed)
    heading = (
        f"MCGdiff's Gaussian mixture, inpainting case ({args.samples} draws per sampler, {args.seeds} problem(s) "
        f"per d; {time.perf_counter() - start:.0f} s)"
    )
    text = f"# {heading}\n\n{gmm_table(rows)}"
    write_csv(rows, f"{args.out}/gmm.csv")
    atomic_write(f"{args.out}/gmm.md", text)
    print(text)
    print(f"written: {args.out}/gmm.csv, gmm.md")
    return rows
