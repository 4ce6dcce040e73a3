"""Per-image text prompts for text-conditioned models, from a sidecar file beside the images.

``prompts.txt``: one prompt per line, in the sorted order of the images (or ``name<TAB>prompt``
lines); ``prompts.json``: ``{"name or stem": "prompt", ...}`` or a list in sorted order.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from .images import ImageFileError

SIDECARS = ("prompts.json", "prompts.txt")


def find_sidecar(image_path: str) -> Optional[str]:
    """``prompts.json`` / ``prompts.txt`` in the image folder, if there is one (not for a single picture)."""
    for name in SIDECARS if os.path.isdir(image_path) else ():
        if os.path.isfile(os.path.join(image_path, name)):
            return os.path.join(image_path, name)
    return None


def _read(path: str) -> list[str] | dict[str, str]:
    if not os.path.isfile(path):
        raise ImageFileError(f"{path}: prompt file not found")
    with open(path, encoding="utf-8") as f:
        if path.endswith(".json"):
            try:
                table = json.load(f)
            except json.JSONDecodeError as e:
                raise ImageFileError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
            if not isinstance(table, (list, dict)):
                raise ImageFileError(f"{path}: expected a list of prompts or an object name -> prompt")
            return table
        lines = [line.rstrip("\n") for line in f if line.strip()]
    if lines and all("\t" in line for line in lines):
        return dict(line.split("\t", 1) for line in lines)
    return lines


def read_prompts(path: str, images: Sequence[str], stems: Sequence[str]) -> list[str]:
    """One prompt per image (``images`` sorted, ``stems`` their output stems) from ``path``."""
    table = _read(path)
    if isinstance(table, list):
        if len(table) != len(images):
            raise ImageFileError(f"{path}: {len(table)} prompts for {len(images)} images; give one per image")
        return [str(p) for p in table]
    prompts = []
    for image, stem in zip(images, stems):
        keys = (os.path.basename(image), stem, os.path.splitext(os.path.basename(image))[0])
        found = next((table[k] for k in keys if k in table), None)
        if found is None:
            raise ImageFileError(f"{path}: no prompt for {stem} ({len(table)} prompts for {len(images)} images)")
        prompts.append(str(found))
    return prompts
