"""The command-line bits the apps share: their parsers, the options they have in common, one way to run them.

Every app's ``main(argv)`` builds its parser here and is started by ``run``: bad input (a file, a
config, a flag value) ends with one line and exit status 2, like ``eval.py`` (``repaint_pl.cli.command``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional, Sequence


def parser(module: str, description: str, **kwargs: Any) -> argparse.ArgumentParser:
    """An app's parser, named by the module that runs it (``python -m repaint_pl.apps.exact``)."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description, **kwargs)


def check_device(value: str) -> str:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``); anything else is one ValueError."""
    import torch

    try:
        device = torch.device(value)
    except RuntimeError:
        raise ValueError(f"device {value!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {value!r}: no CUDA device on this machine")
    return value


def _argparse_type(check: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = check.__name__
    return convert


def add_out(p: Any, help: str, required: bool = True, default: Optional[str] = None) -> None:
    """``--out``: where the app writes its results."""
    p.add_argument("--out", type=str, required=required, default=default, help=help)


def add_seed(p: Any, default: int = 0, help: str = "random seed of the run") -> None:
    p.add_argument("--seed", type=int, default=default, help=help)


def add_device(p: argparse.ArgumentParser, default: str = "cpu") -> None:
    """``--device``: cpu, cuda or cuda:N, checked against this machine."""
    p.add_argument("--device", type=_argparse_type(check_device), default=default, help="cpu, cuda or cuda:N")


def add_threads(p: argparse.ArgumentParser, default: int, help: str = "torch CPU threads (0: leave as is)") -> None:
    p.add_argument("--threads", type=int, default=default, help=help)


def set_threads(threads: int) -> None:
    """``--threads``: torch's CPU threads (0 leaves them as they are)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def run(main: Callable[[Sequence[str]], Any], argv: Optional[Sequence[str]] = None) -> None:
    """``main(argv)`` (default: the command line) as a command: bad input is one line and exit status 2.

    eval.py's ``repaint_pl.cli.command`` (which imports Lightning) decides how the outcome ends, and is
    imported only once ``main`` has returned or failed: ``--help`` answers without loading Lightning.
    """
    try:
        result, error = main(list(sys.argv[1:] if argv is None else argv)), None
    except (ValueError, OSError) as e:
        result, error = None, e
    from repaint_pl.cli import command

    command(lambda: _outcome(result, error))


def _outcome(result: Any, error: Optional[BaseException]) -> Any:
    if error is not None:
        raise error
    return result
