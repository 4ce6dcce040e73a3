"""``python -m repaint_pl.apps.studio``: start the studio (the shipped texture model without model flags)."""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from typing import Optional

MAX_UPLOAD = "64mb"  # larger uploads are refused by the server with a message in the page


class MissingExtraError(ValueError):
    """A package of an optional extra is not installed (one line saying how to install it)."""


def require_gradio() -> None:
    """The page needs Gradio, the ``studio`` extra (the library installs without it)."""
    if importlib.util.find_spec("gradio") is None:
        raise MissingExtraError("the studio needs Gradio, which is not installed: pip install 'repaint_pl[studio]'")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The studio's own flags; everything else goes to the model loader (eval.py's model flags)."""
    parser = argparse.ArgumentParser(
        prog="python -m repaint_pl.apps.studio",
        description="RePaint Studio: paint a mask, watch the trajectory live, branch from any kept step.",
        epilog="Any other argument is one of eval.py's model flags (--ckpt, --pretrained, --config, --accelerator, "
        "--model.*); without them the shipped texture model opens, with its held-out crops as examples.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    return parser.parse_known_args(argv)


def own_cache_folder() -> None:
    """Gradio's cache (every picture and file the page shows or uploads) in a folder of this server's own,
    removed when it exits (``$GRADIO_TEMP_DIR`` if set is left as it is); the app bounds its age meanwhile."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        folder = tempfile.mkdtemp(prefix="repaint_studio_cache_")
        os.environ["GRADIO_TEMP_DIR"] = folder
        atexit.register(shutil.rmtree, folder, True)


def main(argv: Optional[list[str]] = None) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args, model_args = parse_args(sys.argv[1:] if argv is None else argv)
    require_gradio()
    own_cache_folder()
    from PIL import Image

    from .app import build_app, load_studio
    from .logic import MAX_UPLOAD_SIDE

    # the editor's uploads are decoded by Gradio before any handler: PIL's own bomb limit, from the header,
    # refuses those over twice the studio's largest picture (the handlers check the exact size)
    Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_SIDE**2

    studio = load_studio(model_args)
    demo = build_app(studio)
    demo.queue(default_concurrency_limit=1)
    print(f"RePaint Studio on http://{args.host}:{args.port}", flush=True)
    demo.launch(
        server_name=args.host, server_port=args.port, show_error=True, footer_links=[], max_file_size=MAX_UPLOAD
    )


def command() -> None:
    """``repaint-studio`` (and ``python -m repaint_pl.apps.studio``): ``main`` on the command line, one-line
    errors; ``--help`` answers before torch, Lightning or Gradio load."""
    from ..cli import run

    run(main)


if __name__ == "__main__":
    command()
