"""docs/crop_stitch.png: eval.py --crop_to_mask on a 3000×2000 photo with the shipped texture model.

    .venv/bin/python tools/crop_stitch_figure.py --out results/crop_stitch --figure docs/crop_stitch.png

A brick wall (scikit-image's brick, at the scale the texture model sees after the crop is resized to
64²) with a 100×80 hole far from the centre goes through eval.py with the demo's schedule and
``--crop_to_mask 32``; the figure shows the whole 3000×2000 result with the crop's box, then the box
before (hole black) and after, and checks that every known pixel is the input's byte.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from repaint_pl import cli
from repaint_pl.paths import CONFIGS

HOLE = (1500, 2600, 1580, 2700)  # top, left, bottom, right: 100×80 pixels near the right edge
SCALE = 0.64  # the texture model was trained on 0.25× textures; a 164-px box shrinks 2.56× to 64²


def brick_wall(height: int = 2000, width: int = 3000) -> np.ndarray:
    """A grey uint8 brick wall of ``height × width`` (scikit-image's brick, tiled)."""
    from skimage import data

    tile = Image.fromarray(data.brick()).resize((round(512 * SCALE),) * 2, Image.BICUBIC)
    reps = (height // tile.height + 1, width // tile.width + 1)
    return np.tile(np.asarray(tile), reps)[:height, :width]


def write_inputs(folder: str) -> tuple[str, str, np.ndarray, np.ndarray]:
    """``folder/images/brick_wall.png`` and ``folder/mask.png`` (255 = known); returns paths, picture, keep."""
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    picture, keep = brick_wall(), np.full((2000, 3000), 255, np.uint8)
    top, left, bottom, right = HOLE
    keep[top:bottom, left:right] = 0
    Image.fromarray(picture).save(os.path.join(folder, "images", "brick_wall.png"))
    Image.fromarray(keep).save(os.path.join(folder, "mask.png"))
    return os.path.join(folder, "images"), os.path.join(folder, "mask.png"), picture, keep == 255


def panel(picture: np.ndarray, side: int, title: str, box=None, scale: float = 1.0) -> Image.Image:
    """A labelled panel: ``picture`` resized to ``side`` pixels high, ``box`` (t, l, h, w) outlined in red."""
    im = Image.fromarray(picture).convert("RGB")
    im = im.resize((round(im.width * side / im.height), side), Image.LANCZOS)
    draw = ImageDraw.Draw(im)
    if box is not None:
        t, l, h, w = (v * scale for v in box)
        draw.rectangle([l, t, l + w, t + h], outline=(255, 40, 40), width=3)
    draw.rectangle([0, 0, im.width, 18], fill=(0, 0, 0))
    draw.text((6, 3), title, fill=(255, 255, 255))
    return im


def figure(out: str, picture: np.ndarray) -> Image.Image:
    result = np.asarray(Image.open(os.path.join(out, "inpainted", "brick_wall.png")))
    masked = np.asarray(Image.open(os.path.join(out, "gt_masked", "brick_wall.png")))
    meta = json.load(open(os.path.join(out, "meta", "brick_wall.json")))
    t, l, h, w = meta["crops"][0]["box"]
    side = 400
    panels = [
        panel(result, side, f"result, {result.shape[1]}x{result.shape[0]} (box: the crop)", (t, l, h, w),
              side / result.shape[0]),
        panel(masked[t : t + h, l : l + w], side, f"the {w}x{h} crop, hole black"),
        panel(result[t : t + h, l : l + w], side, f"filled ({meta['network_calls']} network calls at 64x64)"),
    ]  # fmt: skip
    canvas = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), side), (255, 255, 255))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width + 8
    return canvas


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/crop_stitch", help="inputs and eval.py outputs go here")
    parser.add_argument("--figure", default="docs/crop_stitch.png")
    args = parser.parse_args(argv)
    images, mask, picture, keep = write_inputs(os.path.join(args.out, "inputs"))
    results = os.path.join(args.out, "results")
    cli.eval_main(["--config", os.path.join(CONFIGS, "demo", "texture.yaml"), "--images", images, "--mask", mask,
                   "--image_size", "64", "--crop_to_mask", "32", "--metrics.lpips", "[]", "--out", results])  # fmt: skip
    result = np.asarray(Image.open(os.path.join(results, "inpainted", "brick_wall.png")))
    assert result.shape == picture.shape and np.array_equal(result[keep], picture[keep]), "known pixels changed"
    figure(results, picture).save(args.figure)
    print(f"{args.figure}: every one of the {int(keep.sum()):,} known pixels is the input's byte")


if __name__ == "__main__":
    main()
