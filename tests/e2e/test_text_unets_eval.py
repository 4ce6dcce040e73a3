"""eval.py --pretrained on tiny SDXL, SDXL-inpainting and SD-inpainting folders: recognised from their files,
RePaint (and the inpainting model alone) writes one picture per image and mask type, known pixels exact."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import check_known_pixels
from PIL import Image

from repaint_pl.apps.tiny import tiny_sd_inpaint_pipeline, tiny_sdxl_pipeline
from repaint_pl.cli import eval_main
from repaint_pl.schedules import JumpSchedule

pytest.importorskip("diffusers")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDERS = {
    "sdxl": tiny_sdxl_pipeline,
    "sdxl_inpaint": lambda: tiny_sdxl_pipeline(inpainting=True),
    "sd_inpaint": tiny_sd_inpaint_pipeline,
}
NAMES, KINDS = ["astronaut", "coffee"], ["thick", "genhalf"]


def folder(tmp_path, name: str) -> str:
    path = str(tmp_path / name)
    BUILDERS[name]().save_pretrained(path)
    return path


def run_eval(model: str, pictures: str, out: str, *extra: str) -> None:
    args = ["--pretrained", model, "--prompt", "a cat", "--images", pictures, "--masks", ",".join(KINDS)]
    args += ["--image_size", "64", "--steps", "10", "--out", out, "--accelerator", "cpu"]
    eval_main([*args, "--data.init_args.batch_size", "2", *extra])


def calls(out: str) -> int:
    with open(os.path.join(out, "meta", "thick", "astronaut.json")) as f:
        return json.load(f)["network_calls"]


@pytest.mark.parametrize("name", ["sdxl", "sd_inpaint"])
def test_eval_repaints_with_sdxl_and_sd_inpainting_folders(tmp_path, pictures, name):
    out = str(tmp_path / "out")
    run_eval(folder(tmp_path, name), pictures, out, "--jump_length", "2", "--jump_n_sample", "2")
    check_known_pixels(out, KINDS, NAMES)
    assert calls(out) == JumpSchedule(jump_length=2, jump_n_sample=2).network_calls(10)
    with open(os.path.join(out, "fingerprint.json")) as f:
        denoiser = json.load(f)["model.denoiser.class_path"]
    assert denoiser.endswith("StableDiffusionXLDenoiser" if name == "sdxl" else "StableDiffusionDenoiser")


def test_eval_sdxl_inpainting_alone_and_with_repaint(tmp_path, pictures):
    """The "no RePaint" baseline (no injection, no jumps: the inpainting model alone) and RePaint on one
    SDXL-inpainting folder: both keep the known pixels, they fill differently, the baseline costs 10 calls."""
    model = folder(tmp_path, "sdxl_inpaint")
    alone, repaint = str(tmp_path / "alone"), str(tmp_path / "repaint")
    no_injection = os.path.join(ROOT, "configs", "sampler", "no_injection.yaml")
    run_eval(model, pictures, alone, "--config", no_injection, "--jump_length", "1", "--jump_n_sample", "1")
    run_eval(model, pictures, repaint, "--jump_length", "2", "--jump_n_sample", "2", "--negative_prompt", "blurry")
    check_known_pixels(alone, KINDS, NAMES)
    check_known_pixels(repaint, KINDS, NAMES)
    assert calls(alone) == 10
    a = np.asarray(Image.open(os.path.join(alone, "inpainted", "thick", "coffee.png")))
    b = np.asarray(Image.open(os.path.join(repaint, "inpainted", "thick", "coffee.png")))
    assert not np.array_equal(a, b)
