"""Texture model study: the sweeps ``configs/experiments/texture_study.yaml`` and ``extension.yaml``, plus the
seam PSNR and unconditional samples.

    python tools/texture_study.py [--out docs/texture_study] [--ckpt weights/texture32_ema.pt]
    python tools/texture_study.py --config configs/experiments/texture_study_jumps10x10.yaml --prefix jumps10x10_

The comparison itself is the sweep runner's (``python -m repaint_pl.apps.sweep``): RePaint (100 steps, jumps
10×3) against no resampling at the same 100 steps and at the same 280 network calls, on the same held-out
crops, masks and seeds.  This tool runs both sweeps under ``--out/sweeps`` (resumable) and writes:

* ``samples.png``: unconditional samples of the model on 64² canvases;
* ``study.md``: per mask type and variant, PSNR and SSIM of the filled region and PSNR of the seam (the
  filled pixels at most ``--seam`` pixels from a known one), with seconds and network calls per image;
* ``compare_<mask>.png``: the sweep's picture tables (original | masked | one column per variant);
* ``extension_<mask>.png``: the extension sweep's picture tables (outpainting, large hole).
"""

from __future__ import annotations

import argparse
import os
import shutil

import torch
from repaint_pl.callbacks.writer import save_png
from torchvision.utils import make_grid

from repaint_pl.apps import sweep
from repaint_pl.apps.measure import seam_band
from repaint_pl.files import atomic_write
from repaint_pl.paths import config_path, repo_path, weights_path
from repaint_pl.scoring import load_triplets, masked_mean, output_dirs, psnr

DEMO = config_path("demo", "texture.yaml")
STUDY = config_path("experiments", "texture_study.yaml")
EXTENSION = config_path("experiments", "extension.yaml")


def seam_psnr(out: str, mask: str, width: int) -> list[float]:
    """PSNR (dB) per image over the unknown pixels within ``width`` pixels (chessboard) of a known one."""
    names = [os.path.join(mask, n) for n in sorted(os.listdir(os.path.join(out, "inpainted", mask)))]
    gt, result, keep = load_triplets(output_dirs(out), names)
    return psnr(masked_mean((gt - result) ** 2, seam_band(keep, width))).tolist()


def samples(ckpt: str, out: str, n: int = 8, size: int = 64) -> None:
    """``samples.png``: ``n`` unconditional samples on ``size``² canvases."""
    from repaint_pl.cli import load_model

    module = load_model(["--config", DEMO, "--ckpt", ckpt]).model
    with torch.no_grad():
        x = module.sample(torch.arange(n), size)
    tiles = [((t + 1) / 2).clamp(0, 1).expand(3, -1, -1).repeat_interleave(2, -1).repeat_interleave(2, -2) for t in x]
    grid = make_grid(torch.stack(tiles), nrow=n, padding=2, pad_value=1.0)
    save_png((grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8"), os.path.join(out, "samples.png"))


def _mean_std(values: list[float]) -> str:
    m, s = sweep.stats(values)
    return f"{m:.2f} ± {s:.2f}" if abs(m) >= 1 else f"{m:.3f} ± {s:.3f}"


def table(rows: list[dict], work: str, width: int) -> str:
    """study.md: per mask type and variant, the fill metrics, the seam PSNR, seconds and network calls."""
    lines = [
        f"| mask | variant | network calls | s / image | PSNR fill (dB) | SSIM fill | PSNR seam ≤{width} px (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for mask in dict.fromkeys(r["mask_type"] for r in rows):
        for point in dict.fromkeys(r["point"] for r in rows):
            mine = [r for r in rows if r["point"] == point and r["mask_type"] == mask]
            seam = seam_psnr(os.path.join(work, "points", point), mask, width)
            lines.append(
                f"| {mask} | {mine[0]['variant']} | {sweep.stats([r['network_calls'] for r in mine])[0]:.0f} | "
                f"{sweep.stats([r['seconds'] for r in mine])[0]:.2f} | {_mean_std([r['psnr_fill'] for r in mine])} | "
                f"{_mean_std([r['ssim_fill'] for r in mine])} | {_mean_std(seam)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=weights_path("texture32_ema.pt"))
    p.add_argument("--out", default=repo_path("docs", "texture_study"))
    p.add_argument("--seam", type=int, default=2, help="width in pixels of the seam band")
    p.add_argument("--config", default=STUDY, help="the study's sweep (variants under the axis 'variant')")
    p.add_argument("--prefix", default="", help="prefix of the written file names (study.md, compare_*.png)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    samples(args.ckpt, args.out)
    name = os.path.splitext(os.path.basename(args.config))[0]
    study, extension = (os.path.join(args.out, "sweeps", n) for n in (name, "extension"))
    result = sweep.main([args.config, "--out", study, f"--ckpt={args.ckpt}"])
    report = table(result["rows"], study, args.seam)
    atomic_write(os.path.join(args.out, f"{args.prefix}study.md"), report)
    for path in result["tables"]:
        compare = f"{args.prefix}compare_" + os.path.basename(path).rsplit("_", 1)[-1]
        shutil.copy(path, os.path.join(args.out, compare))
    if args.config != STUDY:
        print(report)
        return
    for path in sweep.main([EXTENSION, "--out", extension, f"--ckpt={args.ckpt}"])["tables"]:
        shutil.copy(path, os.path.join(args.out, "extension_" + os.path.basename(path).rsplit("_", 1)[-1]))
    print(report)


if __name__ == "__main__":
    main()
