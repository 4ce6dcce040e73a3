"""Running an original RePaint YAML (``confs/*.yml`` of the RePaint repository) as it is.

``translate(conf)`` maps its flags onto this project's config (model, data, writer) and
returns the checkpoint paths it names; anything that would change the result and that
this project does not implement is refused with a one-line error naming the key.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from .nets.presets import UNetConfig, config_fields

_NET_FLAGS = config_fields(UNetConfig) - {"preset", "in_channels"}
_CLASSIFIER_FLAGS = (
    "image_size",
    "classifier_width",
    "classifier_depth",
    "classifier_attention_resolutions",
    "classifier_use_scale_shift_norm",
    "classifier_resblock_updown",
    "classifier_pool",
    "classifier_use_fp16",
)
_DIFFUSION_FLAGS = {
    "diffusion_steps": "steps",
    "noise_schedule": "noise_schedule",
    "rescale_timesteps": "rescale_timesteps",
    "use_kl": "use_kl",
    "rescale_learned_sigmas": "rescale_learned_sigmas",
}
# (key, value the original must have for this project to reproduce it)
_REQUIRED = [
    ("use_ddim", False),
    ("inpa_inj_sched_prev", True),
    ("inpa_inj_sched_prev_cumnoise", False),
    ("respace_interpolate", False),
    ("inpa_inj_time_shift", 1),
]


# data.eval entry keys that change the pictures when true, with the original's default when absent
_ENTRY_REFUSED = [("random_crop", False), ("random_flip", True), ("class_cond", False)]


class RepaintConfError(ValueError):
    """An original conf this project cannot run as it is; one line naming the file and key."""


def read_conf(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise RepaintConfError(f"{path}: RePaint conf not found")
    try:
        with open(path) as f:
            conf = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise RepaintConfError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(conf, dict):
        raise RepaintConfError(f"{path}: expected a mapping of RePaint flags")
    return conf


def _eval_entry(conf: dict[str, Any], path: str) -> dict[str, Any]:
    entries = (conf.get("data") or {}).get("eval") or {}
    if len(entries) != 1:
        raise RepaintConfError(f"{path}: data.eval must hold exactly one entry, found {len(entries)}")
    entry = next(iter(entries.values()))
    for key in ("gt_path", "mask_path", "paths"):
        if key not in entry:
            raise RepaintConfError(f"{path}: data.eval.{next(iter(entries))}.{key} is missing")
    _check_entry(entry, f"{path}: data.eval.{next(iter(entries))}")
    return entry


def _check_entry(entry: dict[str, Any], where: str) -> None:
    """Refuse loader settings of the original (``load_data_inpa``) that change which pictures come out.

    Its defaults differ from the released confs: ``random_flip`` is True and ``drop_last``
    is True when the keys are absent, so they count as set when missing.
    """
    for key, default in _ENTRY_REFUSED:
        if entry.get(key, default):
            shown = "" if key in entry else " (the original's default when the key is absent)"
            raise RepaintConfError(f"{where}.{key} is true{shown}, which this project does not reproduce")
    if not entry.get("mask_loader"):
        raise RepaintConfError(f"{where}.mask_loader must be true (the original runs nothing else)")
    batch, max_len = int(entry.get("batch_size") or 1), entry.get("max_len")
    partial = batch > 1 and (max_len is None or int(max_len) % batch != 0)
    if entry.get("drop_last", True) and partial:
        raise RepaintConfError(
            f"{where}.drop_last is true (the original's default when absent): the original skips a last "
            f"incomplete batch of {batch}, which this project does not reproduce; set drop_last: false"
        )


def _check_supported(conf: dict[str, Any], path: str) -> None:
    for key, value in _REQUIRED:
        if key in conf and conf[key] is not None and conf[key] != value:
            raise RepaintConfError(f"{path}: {key}: {conf[key]!r} is not supported (only {value!r})")
    if not conf.get("schedule_jump_params"):
        raise RepaintConfError(f"{path}: schedule_jump_params is missing")


def _net(conf: dict[str, Any]) -> dict[str, Any]:
    net = {k: conf[k] for k in _NET_FLAGS if conf.get(k) is not None}
    if "channel_mult" in net:
        net["channel_mult"] = str(net["channel_mult"])
    return net


def _diffusion(conf: dict[str, Any]) -> dict[str, Any]:
    d = {ours: conf[theirs] for theirs, ours in _DIFFUSION_FLAGS.items() if conf.get(theirs) is not None}
    d["prediction"] = "sample" if conf.get("predict_xstart") else "epsilon"
    d["timestep_respacing"] = str(conf.get("timestep_respacing") or "")
    # the original's create_model_and_diffusion never passes sigma_small on: fixed_large whatever it says
    d["variance"] = "learned_range" if conf.get("learn_sigma") else "fixed_large"
    return d


def _classifier(conf: dict[str, Any]) -> dict[str, Any] | None:
    if not (conf.get("classifier_scale") and conf.get("classifier_path")):
        return None
    return {k.removeprefix("classifier_"): conf[k] for k in _CLASSIFIER_FLAGS if conf.get(k) is not None}


def translate(conf: dict[str, Any], path: str) -> tuple[dict[str, Any], str | None, str | None]:
    """(this project's config, model checkpoint path, classifier checkpoint path) for an original conf."""
    _check_supported(conf, path)
    entry = _eval_entry(conf, path)
    classifier = _classifier(conf)
    out_paths = entry["paths"]
    model = {
        "net": _net(conf),
        "diffusion": _diffusion(conf),
        "schedule": {
            "class_path": "repaint_pl.schedules.JumpSchedule",
            "init_args": dict(conf["schedule_jump_params"]),
        },
        "classifier": classifier,
        "classifier_scale": float(conf.get("classifier_scale") or 0.0) if classifier else 0.0,
        "class_label": conf.get("cond_y"),
        "clip_denoised": bool(conf.get("clip_denoised", True)),
    }
    data = {
        "class_path": "repaint_pl.datamodules.InpaintFolderDataModule",
        "init_args": {
            "gt_path": os.path.expanduser(entry["gt_path"]),
            "mask_path": os.path.expanduser(entry["mask_path"]),
            "image_size": int(entry.get("image_size") or conf.get("image_size") or 256),
            "batch_size": int(entry.get("batch_size") or 1),
            "max_len": entry.get("max_len"),
            "offset": int(entry.get("offset") or 0),
            "mask_threshold": None,
        },
    }
    writer = {
        "inpainted": out_paths.get("srs"),
        "gt": out_paths.get("gts"),
        "gt_masked": out_paths.get("lrs"),
        "gt_keep_mask": out_paths.get("gt_keep_masks"),
    }
    given = [os.path.dirname(os.path.abspath(os.path.expanduser(p))) for p in writer.values() if p]
    if given:  # config and metrics go to the folder that holds the output folders
        writer["out_dir"] = os.path.commonpath(given)
    config = {"model": model, "data": data, "writer": writer}
    return config, conf.get("model_path"), classifier and conf.get("classifier_path")


def translate_file(path: str) -> tuple[str, str | None, str | None]:
    """Like ``translate`` for a file, with the config as a YAML string (for ``--config``)."""
    config, ckpt, classifier_ckpt = translate(read_conf(path), path)
    return yaml.safe_dump(config, sort_keys=False), ckpt, classifier_ckpt
