"""LanPaint and SMC in a latent space on the rectified flow: eval.py --pretrained on a tiny SD3 folder
(text prompts, classifier-free guidance, a VAE) with configs/sampler/lanpaint.yaml and smc.yaml."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from repaint_pl.cli import eval_main

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> str:
    from skimage import data

    root = tmp_path_factory.mktemp("pictures")
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(root / f"{name}.png")
    return str(root)


@pytest.mark.parametrize(
    "name, extra, calls",
    [("lanpaint", ["--model.sampler.init_args.thinking", "2"], 4 * (1 + 2)),
     ("smc", ["--model.sampler.init_args.particles", "3"], 4 * 3)],
)  # fmt: skip
def test_latent_flow_model_with_the_sampler(tmp_path, tiny_sd3, pictures, name, extra, calls):
    """Two pictures in one batch (the prompt's embeddings and CFG have 2 rows): every known pixel is the input's,
    the holes are filled, and each picture's network calls are the sampler's own count."""
    out = str(tmp_path / name)
    eval_main([
        "--pretrained", tiny_sd3, "--prompt", "a cat", "--images", pictures, "--image_size", "64", "--masks", "thick",
        "--steps", "10", "--config", f"configs/sampler/{name}.yaml", "--model.sampler.init_args.steps", "4", *extra,
        "--accelerator", "cpu", "--out", out, "--data.init_args.batch_size", "2", "--progress.refresh_rate", "0",
    ])  # fmt: skip
    for picture in ("astronaut", "coffee"):
        result = np.asarray(Image.open(os.path.join(out, "inpainted", "thick", picture + ".png")))
        gt = np.asarray(Image.open(os.path.join(out, "gt", "thick", picture + ".png")))
        keep = np.asarray(Image.open(os.path.join(out, "gt_keep_mask", "thick", picture + ".png"))) > 127
        assert np.array_equal(result[keep], gt[keep]) and not np.array_equal(result[~keep], gt[~keep])
        meta = json.load(open(os.path.join(out, "meta", "thick", picture + ".json")))
        assert meta["network_calls"] == calls
