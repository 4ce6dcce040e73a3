"""The fingerprint of an evaluation run: everything that determines its pictures, stored with the outputs.

A run into an output folder that already holds another fingerprint's pictures is refused in one line
naming the keys that differ (``--writer.overwrite true`` samples everything again); every meta file
carries the fingerprint's digest, so an item counts as done only under the fingerprint that made it.

The fingerprint is the resolved configuration, flattened to dotted keys, *minus* the keys listed in
``EXCLUDE`` (devices, batch size, workers, outputs, progress, metrics, speed options that change at
most float rounding), *plus* content hashes of the weights (``ckpt``, ``classifier_ckpt``,
``pretrained``, ``config_dir``) instead of their paths and the device type the noise is drawn on.
A new configuration key is therefore part of the fingerprint unless it is excluded on purpose.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import os
from typing import Any, Iterable, Mapping, Optional

from . import files

FINGERPRINT_FILE = "fingerprint.json"
HASH_CACHE_FILE = ".weights_hashes.json"
WEIGHT_KEYS = ("ckpt", "classifier_ckpt", "pretrained", "config_dir")

# keys that do not change the pictures (fnmatch patterns over dotted keys)
EXCLUDE = (
    "trainer.*",  # devices, nodes, strategy, logger, callbacks … (trainer.precision is put back: it does)
    "writer.*",
    "progress.*",
    "metrics.*",
    "config",
    "repaint_conf",  # its content is in the resolved configuration
    "trust_checkpoint",
    "random_weights",  # allows a run without weights; what the weights are is hashed (or absent)
    "save_state_at",  # saving branch states (resuming from them, resume_state, does change pictures)
    "state_dir",
    "states.save_state_at",
    "states.state_dir",
    "model.lr",  # training only
    "model.weight_decay",
    "data.init_args.num_workers",
    "data.init_args.batch_size",  # per-sample generators: results do not depend on the batch
    "data.init_args.max_images",  # slices: a sample's id (and picture) is that of the full list
    "data.init_args.max_len",
    "data.init_args.offset",
    "model.channels_last",  # speed options: float rounding only
    "model.compile",
    "model.attention",
    *WEIGHT_KEYS,  # hashed instead
)
KEEP = ("trainer.precision",)
# options added after output folders were already made: at these values they change nothing and are left out,
# so that those folders still resume (any other value is part of the fingerprint)
NEUTRAL = {
    "steps": None,  # moved into the denoiser's steps or the ADM respacing before the fingerprint is taken
    "data.init_args.crop_to_mask": None,
    "data.init_args.mask_convention": "keep",
}
# with the original's global noise stream, batches and slices change the pictures
GLOBAL_NOISE_KEEP = ("data.init_args.batch_size", "data.init_args.max_images", "data.init_args.max_len",
                     "data.init_args.offset", "trainer.devices", "trainer.num_nodes")  # fmt: skip


class FingerprintMismatch(ValueError):
    """An output folder holds the pictures of another configuration (one line naming what differs)."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": value}``; lists and scalars are values."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def excluded(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def canonical_class_path(path: Any) -> Any:
    """The one public path of the class that ``path`` names (``repaint_pl.samplers.RePaintSampler`` and
    ``repaint_pl.sampling.RePaintSampler`` are one class, so one fingerprint); unknown paths stay as given."""
    if not isinstance(path, str) or "." not in path:
        return path
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return path
    return f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else path


def picture_keys(config: Mapping[str, Any], exclude: Iterable[str] = EXCLUDE) -> dict[str, Any]:
    """The configuration's dotted keys that determine the pictures (``config``: the resolved config as a dict)."""
    flat = {k: canonical_class_path(v) if k.endswith("class_path") else v for k, v in flatten(config).items()}
    keep = set(KEEP) | (set(GLOBAL_NOISE_KEEP) if flat.get("model.noise") == "global" else set())
    flat = {k: v for k, v in flat.items() if k not in NEUTRAL or v != NEUTRAL[k]}
    return {k: v for k, v in sorted(flat.items()) if k in keep or not excluded(k, exclude)}


def file_digest(path: str, cache: Optional[dict[str, str]] = None, chunk: int = 1 << 24) -> str:
    """SHA-256 of a file, read in chunks; ``cache`` maps (path, size, mtime) to known digests."""
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"
    if cache is not None and key in cache:
        return cache[key]
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            sha.update(block)
    digest = sha.hexdigest()
    if cache is not None:
        cache[key] = digest
    return digest


def weights_digest(path: str, cache: Optional[dict[str, str]] = None) -> str:
    """SHA-256 of a weights file, or of a folder (diffusers): over its files' relative paths and digests."""
    if not os.path.isdir(path):
        return file_digest(path, cache)
    entries = []
    seen: set[str] = set()  # real folders already read: a link loop is read once, not forever
    for root, dirs, names in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(f for f in names if not f.startswith(".")):
            full = os.path.join(root, f)
            entries.append(f"{os.path.relpath(full, path)}:{file_digest(full, cache)}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def fingerprint(config: Mapping[str, Any], device_type: str, cache: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The fingerprint of a run: picture keys, weight digests (``sha256:<hex>``) and ``device_type``
    (the device whose generators draw the noise: CPU and CUDA streams differ)."""
    fp = picture_keys(config)
    for key in WEIGHT_KEYS:
        path = config.get(key)
        if path:
            fp[key] = "sha256:" + weights_digest(os.path.expanduser(path), cache)
    fp["device_type"] = device_type
    return fp


def digest(fp: Mapping[str, Any]) -> str:
    """A short hash of a fingerprint (stored in every meta file)."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:16]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ (or that only one side has), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))


def _short(value: Any, width: int = 24) -> str:
    text = "<unset>" if value is None else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> str:
    """``key: old -> new`` for the first ``limit`` differing keys (one line)."""
    keys = differences(old, new)
    parts = [f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more


def read_json(path: str) -> Optional[dict[str, Any]]:
    """The JSON at ``path`` (``repaint_pl.files.read_json``), None if absent; unreadable: one line naming it."""
    try:
        return files.read_json(path)
    except (OSError, ValueError) as e:
        raise FingerprintMismatch(
            f"{path}: unreadable ({e.__class__.__name__}); remove it or pass --writer.overwrite true"
        ) from None


PICTURE_DIRS = ("meta", "inpainted")  # the writer's meta files (written last per input) and its results


def holds_pictures(out_dir: str) -> bool:
    """Whether ``out_dir`` holds any picture or meta file (not only a fingerprint, config or report)."""
    for sub in PICTURE_DIRS:
        for _, _, names in os.walk(os.path.join(out_dir, sub)):
            if any(not n.endswith(".tmp") for n in names):
                return True
    return False


def check_out_dir(out_dir: str, fp: Mapping[str, Any], overwrite: bool) -> None:
    """Refuse (one line) to add pictures of fingerprint ``fp`` to a folder holding another run's pictures."""
    if overwrite:
        return
    old = read_json(os.path.join(out_dir, FINGERPRINT_FILE))
    if old is None:
        if holds_pictures(out_dir):
            raise FingerprintMismatch(
                f"{out_dir}: holds outputs without a {FINGERPRINT_FILE} (an older run); use another "
                f"--writer.out_dir, or --writer.overwrite true to sample everything again"
            )
        return
    if differences(old, fp) and holds_pictures(out_dir):  # a failed run's empty folder takes a new config
        raise FingerprintMismatch(
            f"{out_dir}: holds the pictures of another configuration ({describe(old, fp)}); use another "
            f"--writer.out_dir, or --writer.overwrite true to sample everything again"
        )


def save_json(obj: Any, path: str) -> None:
    """Write JSON atomically (``repaint_pl.files``: one ``OutputError`` naming ``path`` on failure)."""
    files.write_json(obj, path, indent=1, sort_keys=True, default=str)


def load_cache(out_dir: str) -> dict[str, str]:
    try:
        return read_json(os.path.join(out_dir, HASH_CACHE_FILE)) or {}
    except FingerprintMismatch:
        return {}


def guard_run(
    config: Mapping[str, Any], out_dir: str, overwrite: bool, device_type: str, write: bool
) -> dict[str, Any]:
    """Check ``out_dir`` against this run's fingerprint (refusing another configuration's folder) and, if
    ``write`` (the main process), record it.  Returns the fingerprint."""
    cache = load_cache(out_dir)
    fp = fingerprint(config, device_type, cache)
    check_out_dir(out_dir, fp, overwrite)
    if write:
        save_json(cache, os.path.join(out_dir, HASH_CACHE_FILE))
        save_json(fp, os.path.join(out_dir, FINGERPRINT_FILE))
    return fp
