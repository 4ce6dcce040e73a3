"""Where the shipped files are: the config groups (``configs/``) and the texture model (``weights/``).

In a checkout (run from it, or installed editable) they are the repository's top-level folders; installed
from a wheel they are package data inside ``repaint_pl`` (setup.cfg maps ``configs/`` to
``repaint_pl/configs`` and ``weights/`` to ``repaint_pl/weights``).  ``ROOT`` is the folder that holds both:
the repository root, or the installed package.  The library and the apps find these files through this
module (never from their own ``__file__``).

``python -m repaint_pl.paths configs/demo/texture.yaml`` prints where a shipped file is (no argument: ROOT),
e.g. ``repaint-eval --config "$(python -m repaint_pl.paths configs/demo/texture.yaml)"`` from any folder.

``ConfigRelativePath`` types eval.py's ``--ckpt`` and ``--classifier_ckpt``: a relative path in a config file
is relative to that file's folder (the demo config's ``../../weights/texture32_ema.pt`` holds in the checkout
and installed alike), on the command line relative to the working directory.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def find_root(package: str = PACKAGE) -> str:
    """The folder holding ``configs/`` and ``weights/``: the package folder itself where they were installed
    into it (a wheel), else the checkout that holds the package (``<repo>/repaint_pl`` -> ``<repo>``)."""
    return package if os.path.isdir(os.path.join(package, "configs")) else os.path.dirname(package)


ROOT = find_root()
CONFIGS = os.path.join(ROOT, "configs")
WEIGHTS = os.path.join(ROOT, "weights")


def repo_path(*parts: str) -> str:
    """A path under ``ROOT`` (``repo_path("docs", "texture_study")``); files that are not shipped with the
    package (``docs/``, ``tools/``, ``tests/``) exist in a checkout only."""
    return os.path.join(ROOT, *parts)


def config_path(*parts: str) -> str:
    """A file under ``configs/`` (``config_path("model", "celeba256.yaml")``)."""
    return os.path.join(CONFIGS, *parts)


def weights_path(name: str) -> str:
    """A shipped weights file under ``weights/`` (``weights_path("texture32_ema.pt")``)."""
    return os.path.join(WEIGHTS, name)


class ConfigRelativePath(str):
    """The type of a file option (``ckpt``) whose relative values are relative to the config file that sets them
    (on the command line: to the working directory), as jsonargparse does for its ``Path`` types; the parsed
    value is a plain absolute ``str``.  ``config_relative_path()`` registers it with jsonargparse."""


def absolute(path: str) -> str:
    """``path`` absolute, ``~`` expanded, normalised; jsonargparse reads a config file from inside its folder,
    so a relative path in it lands there.  An empty path stays empty (no file)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(path))) if path else path


def _is_absolute(value: object, _: type) -> bool:
    return isinstance(value, str) and (not value or os.path.isabs(value))


def config_relative_path() -> type:
    """``ConfigRelativePath``, registered with jsonargparse (a parser option typed with it gets absolute paths)."""
    from jsonargparse.typing import register_type

    register_type(ConfigRelativePath, serializer=str, deserializer=absolute, type_check=_is_absolute)
    return ConfigRelativePath


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Print ``ROOT``, or the absolute path of each shipped file named relative to it; a missing one is an error."""
    names = list(sys.argv[1:] if argv is None else argv)
    for name in names:
        path = repo_path(name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: not shipped under {ROOT}")
        print(path)
    if not names:
        print(ROOT)


__all__ = [
    "ROOT",
    "CONFIGS",
    "WEIGHTS",
    "ConfigRelativePath",
    "absolute",
    "config_path",
    "config_relative_path",
    "find_root",
    "repo_path",
    "weights_path",
]

if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
