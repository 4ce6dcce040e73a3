"""``python -m repaint_pl.apps.exact --out DIR``: the exact benchmark; ``... prior --out DIR``: every sampler
with nothing known against the prior; ``... gmm --out DIR``: MCGdiff's mixture; ``... texture --out DIR``: the
texture model."""

from __future__ import annotations

import time
from typing import Optional, Sequence

from repaint_pl.masks import PAPER_MASK_TYPES

from .. import cli
from .benchmark import NOTHING_KNOWN, PROCESSES, benchmark, contenders, core_contenders
from .priors import ALL_PRIORS, PRIORS
from .report import write_report

PROG = "repaint_pl.apps.exact"


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    """The benchmark's rows (``texture`` / ``gmm`` first: ``texture.main`` / ``gmm.main``; ``prior`` first: the
    benchmark with nothing known, on every prior)."""
    argv = list(argv or [])
    if argv[:1] == ["texture"]:
        from .texture import main as texture_main

        return texture_main(argv[1:])
    if argv[:1] == ["gmm"]:
        from .gmm import main as gmm_main

        return gmm_main(argv[1:])
    prior_mode = argv[:1] == ["prior"]
    argv = argv[1:] if prior_mode else argv
    p = cli.parser(PROG, "The exact benchmark: every sampler against the true posterior of known priors.")
    cli.add_out(p, "folder for exact.csv, summary.md and exact.png")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    p.add_argument(
        "--priors",
        nargs="+",
        default=list(PRIORS),
        choices=list(ALL_PRIORS),
        help="gaussian, mixture (the samplers were tuned on them); nonstationary, stripes, colour (fresh)",
    )
    p.add_argument(
        "--masks", nargs="+", default=list(PAPER_MASK_TYPES), help=f"mask types ({NOTHING_KNOWN}: nothing known)"
    )
    p.add_argument(
        "--processes",
        nargs="+",
        default=["ddpm"],
        choices=PROCESSES,
        help="model families: DDPM (ε output), rectified flow (velocity output)",
    )
    p.add_argument(
        "--samples", type=int, default=400, help="samples per sampler, setting and mask type (Gaussian prior: at least)"
    )
    cli.add_seed(p)
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
    p.add_argument("--families", nargs="+", help="only the samplers of these families (e.g. LanPaint SMC)")
    cli.add_threads(p, default=1, help="torch CPU threads (1 is fastest for these small FFTs)")
    if prior_mode:
        p.set_defaults(masks=[NOTHING_KNOWN], priors=list(ALL_PRIORS), sizes=[16])
    args = p.parse_args(argv)
    cli.set_threads(args.threads)
    start = time.perf_counter()
    rows = benchmark(
        args.sizes,
        args.priors,
        args.masks,
        args.samples,
        args.seed,
        chosen=chosen_samplers(args.families, bool(args.core_from and min(args.sizes) >= args.core_from)),
        core_from=args.core_from,
        w2_factor=args.w2_factor,
        jobs=args.jobs,
        processes=args.processes,
    )
    heading = (
        ("Prior reproduction" if prior_mode else "Exact benchmark")
        + f" ({args.samples} samples per sampler and mask"
        + (f", Gaussian prior at least {args.w2_factor:g} per unknown pixel" if args.w2_factor else "")
        + f"; seed {args.seed}, {args.jobs} process(es), {time.perf_counter() - start:.0f} s)"
    )
    print(write_report(rows, args.out, heading))
    plotted = ", exact.png" if any(r["mask"] != NOTHING_KNOWN for r in rows) else ""
    print(f"written: {args.out}/exact.csv, summary.md{plotted}")
    return rows


def chosen_samplers(families: Optional[Sequence[str]], core: bool) -> Optional[list]:
    """The contenders of ``families`` (None: no filter, the benchmark's defaults) among the core ones or all."""
    if not families:
        return None
    pool = core_contenders() if core else contenders()
    chosen = [c for c in pool if c.family in families]
    if not chosen:
        raise ValueError(f"--families {families}: none of {sorted({c.family for c in pool})}")
    return chosen


if __name__ == "__main__":
    cli.run(main)
