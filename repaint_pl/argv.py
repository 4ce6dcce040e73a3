"""The command line before LightningCLI sees it: aliases, short flags, the short ``--help`` and did-you-mean.

Nothing here imports torch or Lightning, so ``eval.py --help`` answers at once; ``repaint_pl.cli``
(which does import them) applies these tables before parsing.

Short flags for the knobs everyone turns expand *where they stand* into the LightningCLI arguments
they stand for (``SOURCE_ORDER``), so they compose with ``--config`` files and dotted options in the
command line's order, a later one winning.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

Expansion = Union[str, Callable[[str, list[str]], list[str]]]

IMAGE_FOLDER = "repaint_pl.datamodules.ImageFolderDataModule"


def _option(argv: Sequence[str], name: str) -> Optional[str]:
    """The value of ``name VALUE`` / ``name=VALUE`` in argv (the last one given), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


@dataclass(frozen=True)
class Flag:
    """A flag of the short help: ``target`` (the long argument, or a function of the value and argv), its
    value's ``metavar``, a one-line ``help`` and the help's ``group``."""

    target: Optional[Expansion]
    metavar: str
    help: str
    group: str


ALIASES = {
    "--devices": "--trainer.devices",
    "--accelerator": "--trainer.accelerator",
    "--num_nodes": "--trainer.num_nodes",
    "--seed": "--model.seed",
}


def expand_aliases(argv: list[str]) -> list[str]:
    """``--devices 2`` -> ``--trainer.devices=2`` etc.; ``--seed S`` sets the model's and Lightning's seed."""
    out, i = [], 0
    while i < len(argv):
        key, eq, value = argv[i].partition("=")
        if key not in ALIASES:
            out.append(argv[i])
            i += 1
            continue
        value, i = (value, i + 1) if eq else ((argv[i + 1] if i + 1 < len(argv) else ""), i + 2)
        out.append(f"{ALIASES[key]}={value}")
        if key == "--seed":
            out.append(f"--seed_everything={value}")
    return out


def _short_images(value: str, argv: list[str]) -> list[str]:
    return [f"--data={IMAGE_FOLDER}", f"--data.image_path={value}"]


def _short_masks(value: str, argv: list[str]) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    return [f"--data.mask_types=[{','.join(kinds)}]"]


# name -> Flag; target None: a real argument of eval.py's parser (listed here for the short help only)
FLAGS: dict[str, Flag] = {
    "--config": Flag(None, "FILE", "a config file (configs/…); several compose, a later one winning", "model"),
    "--ckpt": Flag(None, "FILE", "guided-diffusion .pt (released names pick their preset) or train.py .ckpt", "model"),
    "--pretrained": Flag(None, "DIR", "a diffusers folder (DDPM, Stable Diffusion …), known by its files", "model"),
    "--config_dir": Flag(None, "DIR", "the pipeline config folder of a single-file --pretrained checkpoint", "model"),
    "--classifier_ckpt": Flag(None, "FILE", "classifier weights for guidance (ImageNet)", "model"),
    "--repaint_conf": Flag(None, "FILE", "an original RePaint YAML, run as it is", "model"),
    "--random_weights": Flag(None, "true", "allow an untrained (random) network: smoke tests only", "model"),
    "--images": Flag(_short_images, "DIR|FILE", "a folder of pictures (any layout) or one picture", "data"),
    "--mask": Flag("--data.mask_path", "DIR|FILE", "mask files (paired by name) or one mask for all", "data"),
    "--masks": Flag(_short_masks, "T1,T2", "generated mask types: thick,thin,nn2,ev2li,genhalf,ex64,…", "data"),
    "--image_size": Flag("--data.image_size", "N", "the model's picture size", "data"),
    "--mask_convention": Flag("--data.mask_convention", "keep|fill", "keep: 255 = known (default); fill: white = hole",
                              "data"),  # fmt: skip
    "--crop_to_mask": Flag("--data.crop_to_mask", "PAD", "big photos: a crop per hole (PAD px of context), stitched",
                           "data"),  # fmt: skip
    "--steps": Flag(None, "N", "sampling steps of the model (respacing), whichever model the config has", "sampling"),
    "--jump_length": Flag("--model.schedule.init_args.jump_length", "N", "RePaint's jump length", "sampling"),
    "--jump_n_sample": Flag("--model.schedule.init_args.jump_n_sample", "N", "RePaint's resamplings", "sampling"),
    "--seed": Flag(None, "N", "seeds every sample's generator (and Lightning's)", "sampling"),
    "--prompt": Flag("--model.denoiser.init_args.prompt", "TEXT", "text models: the prompt", "sampling"),
    "--negative_prompt": Flag("--model.denoiser.init_args.negative_prompt", "TEXT", "text models", "sampling"),
    "--guidance_scale": Flag("--model.denoiser.init_args.guidance_scale", "G", "text models: CFG scale", "sampling"),
    "--out": Flag("--writer.out_dir", "DIR", "where pictures, metrics.csv and summary.md go", "run"),
    "--devices": Flag(None, "N", "devices per node (DDP when more than one)", "run"),
    "--accelerator": Flag(None, "cpu|gpu", "Lightning's accelerator", "run"),
    "--num_nodes": Flag(None, "N", "nodes (DDP)", "run"),
}
SHORT_FLAGS: dict[str, Expansion] = {name: f.target for name, f in FLAGS.items() if f.target is not None}
DATA_SHORT_FLAGS = ("--mask", "--masks", "--image_size", "--mask_convention", "--crop_to_mask")  # of --images' class

SOURCE_ORDER = (
    "Sources compose in this order, a later one winning over an earlier one: the configs implied by "
    "--pretrained, --repaint_conf and --ckpt; then the command line from left to right, each --config file, "
    "dotted option (--data.image_size 64) and short flag (--images, --mask, --masks, --image_size, "
    "--jump_length, --jump_n_sample, --out, --prompt, --negative_prompt, --guidance_scale, --seed, --devices, "
    "--accelerator, --num_nodes) where it stands. --images DIR selects the image-folder data class there, so "
    "'--config demo.yaml --images DIR' runs on DIR (a --config after --images replaces it); --mask, --masks and "
    "--image_size given before --images apply right after it. A command-line --ckpt wins over a config's ckpt. "
    "--steps applies to whichever model the composed config has."
)


def expand_short_flags(argv: list[str]) -> list[str]:
    """``--images DIR --masks thick,nn2 --out OUT`` -> the LightningCLI arguments they stand for.

    Each short flag expands where it stands (``SOURCE_ORDER``).  ``--images`` (a folder or one picture)
    selects the data class: the data flags (``DATA_SHORT_FLAGS``) given before it apply right after it.
    """
    keys = [a.partition("=")[0] for a in argv]
    out, held, i = [], [], 0
    while i < len(argv):
        key, eq, value = argv[i].partition("=")
        if key not in SHORT_FLAGS:
            out.append(argv[i])
            i += 1
            continue
        if not eq and i + 1 >= len(argv):
            raise ValueError(f"{key}: missing value")
        at = i
        value, i = (value, i + 1) if eq else (argv[i + 1], i + 2)
        target = SHORT_FLAGS[key]
        expanded = target(value, argv) if callable(target) else [f"{target}={value}"]
        if key in DATA_SHORT_FLAGS and "--images" in keys[at + 1 :]:
            held.extend(expanded)  # for the data class that a later --images selects
            continue
        out.extend(expanded)
        if key == "--images":
            out.extend(held)
            held = []
    return out


EVAL_DESCRIPTION = "RePaint every input of a dataset and write the pictures, metrics and summary."
GROUPS = {"model": "the model", "data": "the pictures", "sampling": "sampling", "run": "the run"}
EVAL_USAGE = (
    "usage: eval.py [--config FILE]... [--ckpt FILE | --pretrained DIR] [--images DIR] [--masks T1,T2 | --mask M]\n"
    "               [--steps N] [--out DIR] [options]"
)
EVAL_EXAMPLES = (
    "examples:\n"
    "  eval.py --config configs/demo/texture.yaml                      # the shipped texture model\n"
    "  eval.py --ckpt celeba256_250000.pt --images faces/ --masks thick,nn2 --out results/celeba\n"
    "  eval.py --pretrained sd15/ --images photo.png --mask hole.png --prompt \"a red door\" --out door/"
)


def short_help(description: str) -> str:
    """eval.py's ``--help``: usage, the short flags by group, the order of sources, where the rest is."""
    lines = [EVAL_USAGE, "", description, ""]
    for group, title in GROUPS.items():
        lines.append(f"{title}:")
        for name, flag in FLAGS.items():
            if flag.group == group:
                lines.append(f"  {name + ' ' + flag.metavar:<28} {flag.help}")
        lines.append("")
    every = "eval.py --help-all lists every option (--model.*, --data.*, --trainer.*, --writer.* …)."
    lines += [textwrap.fill(SOURCE_ORDER, 110), "", EVAL_EXAMPLES, "", every]
    return "\n".join(lines)


def help_request(argv: Sequence[str]) -> Optional[str]:
    """``"short"`` for ``-h``/``--help``, ``"all"`` for ``--help-all``, else None."""
    if "--help-all" in argv:
        return "all"
    return "short" if any(a in ("-h", "--help") for a in argv) else None


def did_you_mean(unknown: str, known: Sequence[str]) -> str:
    """`` (did you mean --images?)`` for the closest known option to ``unknown``, or ``""``."""
    key = unknown.partition("=")[0]
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


__all__ = [
    "EVAL_DESCRIPTION",
    "ALIASES",
    "DATA_SHORT_FLAGS",
    "FLAGS",
    "IMAGE_FOLDER",
    "SHORT_FLAGS",
    "SOURCE_ORDER",
    "did_you_mean",
    "expand_aliases",
    "expand_short_flags",
    "help_request",
    "short_help",
]
