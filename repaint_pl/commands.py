"""The console entry points (``eval.py``, ``train.py``, ``repaint-eval``, ``repaint-train``).

``eval.py --help`` is the short help of ``repaint_pl.argv`` and answers before torch or Lightning is
imported; ``--help-all`` is LightningCLI's list of every option; anything else runs ``repaint_pl.cli``
with its one-line errors (``repaint_pl.cli.command``).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .argv import EVAL_DESCRIPTION, help_request, short_help


def eval_command(argv: Optional[Sequence[str]] = None) -> None:
    """``eval.py``: RePaint every input of a dataset (see ``repaint_pl.cli.eval_main``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    wanted = help_request(args)
    if wanted == "short":
        print(short_help(EVAL_DESCRIPTION))
        raise SystemExit(0)
    if wanted == "all":
        args = ["--help" if a == "--help-all" else a for a in args]
    from .cli import command, eval_main

    command(lambda: eval_main(args))


def train_command(argv: Optional[Sequence[str]] = None) -> None:
    """``train.py``: fit a DDPM (see ``repaint_pl.cli.train_main``; ``--help`` lists every option)."""
    from .cli import command, train_main

    args = list(sys.argv[1:] if argv is None else argv)
    command(lambda: train_main(args))


__all__ = ["eval_command", "train_command"]
