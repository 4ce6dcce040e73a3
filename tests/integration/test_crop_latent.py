"""Crop-and-stitch in a VAE's latent space (issue 22): eval.py --crop_to_mask with a tiny Stable Diffusion (VAE
factor 8) cuts boxes whose sides are multiples of 8 and keeps every known byte of the full picture."""

import json
import os

import numpy as np
from PIL import Image

from repaint_pl.cli import eval_main


def test_latent_crops_snap_to_the_vae_factor_and_keep_the_known_bytes(tmp_path, tiny_sd):  # noqa: F811
    os.makedirs(tmp_path / "images")
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (203, 301, 3), dtype=np.uint8)
    keep = np.full((203, 301), 255, np.uint8)
    keep[37:111, 51:70] = 0  # 74×19: padded by 5 -> 84×29, a square of 84 rounded up to the factor: 88
    keep[150:160, 250:290] = 0
    Image.fromarray(picture).save(tmp_path / "images" / "noise.png")
    Image.fromarray(keep).save(tmp_path / "mask.png")
    out = str(tmp_path / "out")
    eval_main(["--pretrained", tiny_sd, "--images", str(tmp_path / "images"), "--mask", str(tmp_path / "mask.png"),
               "--prompt", "noise", "--image_size", "64", "--crop_to_mask", "5", "--steps", "3", "--jump_length", "1",
               "--jump_n_sample", "1", "--model.denoiser.init_args.guidance_scale", "1", "--metrics.lpips", "[]",
               "--accelerator", "cpu", "--out", out])  # fmt: skip
    result = np.asarray(Image.open(os.path.join(out, "inpainted", "noise.png")))
    known = keep == 255
    assert result.shape == picture.shape and np.array_equal(result[known], picture[known])
    crops = json.load(open(os.path.join(out, "meta", "noise.json")))["crops"]
    assert len(crops) == 2 and all(side % 8 == 0 and side >= 64 for c in crops for side in c["box"][2:])
    assert sorted(c["box"][2] for c in crops) == [64, 88]
