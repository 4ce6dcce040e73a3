"""``python -m repaint_pl.apps.studio``: start the studio (the shipped texture model without model flags)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

MAX_UPLOAD = "64mb"  # larger uploads are refused by the server with a message in the page


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


def main(argv: Optional[list[str]] = None) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args, model_args = parse_args(sys.argv[1:] if argv is None else argv)
    from .app import build_app, load_studio

    studio = load_studio(model_args)
    demo = build_app(studio)
    demo.queue(default_concurrency_limit=1)
    print(f"RePaint Studio on http://{args.host}:{args.port}", flush=True)
    demo.launch(
        server_name=args.host, server_port=args.port, show_error=True, footer_links=[], max_file_size=MAX_UPLOAD
    )


if __name__ == "__main__":
    from repaint_pl.cli import command

    command(main)
