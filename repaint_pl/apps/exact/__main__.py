"""``python -m repaint_pl.apps.exact --out DIR``: the exact benchmark; ``... texture --out DIR``: the texture model."""

from __future__ import annotations

import time
from typing import Optional, Sequence

from repaint_pl.masks import PAPER_MASK_TYPES

from .. import cli
from .benchmark import benchmark
from .priors import PRIORS
from .report import write_report

PROG = "repaint_pl.apps.exact"


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    """The benchmark's rows (``texture`` first: the texture model's, ``texture.main``)."""
    argv = list(argv or [])
    if argv[:1] == ["texture"]:
        from .texture import main as texture_main

        return texture_main(argv[1:])
    p = cli.parser(PROG, "The exact benchmark: every sampler against the true posterior of known priors.")
    cli.add_out(p, "folder for exact.csv, summary.md and exact.png")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    p.add_argument("--priors", nargs="+", default=list(PRIORS), choices=list(PRIORS))
    p.add_argument("--masks", nargs="+", default=list(PAPER_MASK_TYPES))
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
    cli.add_threads(p, default=1, help="torch CPU threads (1 is fastest for these small FFTs)")
    args = p.parse_args(argv)
    cli.set_threads(args.threads)
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
    heading = (
        f"Exact benchmark ({args.samples} samples per sampler and mask"
        + (f", Gaussian prior at least {args.w2_factor:g} per unknown pixel" if args.w2_factor else "")
        + f"; seed {args.seed}, {args.jobs} process(es), {time.perf_counter() - start:.0f} s)"
    )
    print(write_report(rows, args.out, heading))
    print(f"written: {args.out}/exact.csv, summary.md, exact.png")
    return rows


if __name__ == "__main__":
    cli.run(main)
