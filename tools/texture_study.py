"""Texture model study: unconditional samples, RePaint against no resampling, texture extension.

    python tools/texture_study.py --ckpt weights/texture32_ema.pt --out docs/texture_study

Runs eval.py several times on the held-out crops of the default textures (same crops, masks and
seeds in every run) and writes, under ``--out``:

* ``samples.png``: unconditional samples of the model on 64² canvases;
* ``study.md``: PSNR and SSIM of the filled region, and PSNR of the seam (the filled pixels at most
  ``--seam`` pixels from a known one, where a fill that continues the known texture agrees with the
  original), per mask type for RePaint (jumps) and for RePaint without resampling, at the same number
  of diffusion steps and at the same number of network calls, with the seconds and calls per image;
* ``compare_<mask>.png``: per texture crop, original | masked | no resampling | RePaint;
* ``extension.png``: outpainting (only the centre half known) and filling a large hole.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from torchvision.utils import make_grid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from repaint_pl.callbacks.writer import save_png  # noqa: E402

from repaint_pl.cli import eval_main  # noqa: E402
from repaint_pl.scoring import load_triplets, masked_mean, output_dirs, psnr, read_png  # noqa: E402

DEMO = os.path.join(ROOT, "configs", "demo", "texture.yaml")


def seam_psnr(out: str, mask: str, width: int) -> list[float]:
    """PSNR (dB) per image over the unknown pixels within ``width`` pixels (chessboard) of a known one."""
    names = [os.path.join(mask, n) for n in sorted(os.listdir(os.path.join(out, "inpainted", mask)))]
    gt, result, keep = load_triplets(output_dirs(out), names)
    known = keep > 0.5
    band = (torch.nn.functional.max_pool2d(known.float(), 2 * width + 1, 1, width) > 0) & ~known
    return psnr(masked_mean((gt - result) ** 2, band)).tolist()


def run(ckpt: str, out: str, steps: int, jump_length: int, jump_n_sample: int, masks: list[str], crops: int) -> dict:
    eval_main(
        [
            "--config",
            DEMO,
            "--ckpt",
            ckpt,
            "--model.diffusion.timestep_respacing",
            str(steps),
            "--model.schedule.jump_length",
            str(jump_length),
            "--model.schedule.jump_n_sample",
            str(jump_n_sample),
            "--data.init_args.mask_types",
            json.dumps(masks),
            "--data.init_args.eval_crops",
            str(crops),
            "--writer.out_dir",
            out,
            "--metrics.lpips",
            "[]",
            "--progress.refresh_rate",
            "0",
        ]
    )
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["mask_types"]


def grid(rows: list[list[torch.Tensor]], zoom: int = 2) -> torch.Tensor:
    tiles = [t.expand(3, -1, -1).repeat_interleave(zoom, -1).repeat_interleave(zoom, -2) for row in rows for t in row]
    return make_grid(torch.stack(tiles), nrow=len(rows[0]), padding=2, pad_value=1.0)


def write(image: torch.Tensor, path: str) -> None:
    save_png((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8"), path)


def comparison(out: str, runs: dict[str, str], mask: str) -> None:
    first = next(iter(runs.values()))
    names = sorted(os.listdir(os.path.join(first, "inpainted", mask)))
    rows = [
        [read_png(os.path.join(first, k, mask, n)) for k in ("gt", "gt_masked")]
        + [read_png(os.path.join(d, "inpainted", mask, n)) for d in runs.values()]
        for n in names
    ]
    write(grid(rows), os.path.join(out, f"compare_{mask}.png"))


def samples(ckpt: str, out: str, n: int = 8, size: int = 64) -> None:
    import yaml

    from repaint_pl.cli import cached_checkpoint
    from repaint_pl.diffusion import DiffusionConfig
    from repaint_pl.module import RePaintModule
    from repaint_pl.nets import UNetConfig

    with open(DEMO) as f:
        model = yaml.safe_load(f)["model"]
    module = RePaintModule(net=UNetConfig(**model["net"]), diffusion=DiffusionConfig(**model["diffusion"]))
    module.load_net_weights(cached_checkpoint(ckpt), ckpt)
    with torch.no_grad():
        x = module.eval().sample(torch.arange(n), size)
    write(grid([[((t + 1) / 2).clamp(0, 1) for t in x]], zoom=2), os.path.join(out, "samples.png"))


def table(results: dict[str, dict], seams: dict[str, dict[str, list[float]]], masks: list[str], width: int) -> str:
    lines = [
        f"| mask | variant | network calls | s / image | PSNR fill (dB) | SSIM fill | PSNR seam ≤{width} px (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for mask in masks:
        for variant, summary in results.items():
            s, seam = summary[mask], torch.tensor(seams[variant][mask])
            lines.append(
                f"| {mask} | {variant} | {s['network_calls']['mean']:.0f} | {s['seconds']['mean']:.2f} | "
                f"{s['psnr_fill']['mean']:.2f} ± {s['psnr_fill']['std']:.2f} | "
                f"{s['ssim_fill']['mean']:.3f} ± {s['ssim_fill']['std']:.3f} | "
                f"{seam.mean():.2f} ± {seam.std(correction=0):.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=os.path.join(ROOT, "weights", "texture32_ema.pt"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "texture_study"))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--jump_length", type=int, default=10)
    p.add_argument("--jump_n_sample", type=int, default=3)
    p.add_argument("--seam", type=int, default=2, help="width in pixels of the seam band")
    p.add_argument("--crops", type=int, default=2)
    p.add_argument("--masks", nargs="+", default=["thick", "thin", "nn2", "ev2li", "genhalf", "ex64"])
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    samples(args.ckpt, args.out)
    work = os.path.join(args.out, "runs")
    calls = args.steps + (args.steps // args.jump_length - 1) * (args.jump_n_sample - 1) * args.jump_length
    variants = {
        f"RePaint, jumps {args.jump_length}×{args.jump_n_sample}": (args.steps, args.jump_length, args.jump_n_sample),
        "no resampling, same steps": (args.steps, 1, 1),
        "no resampling, same calls": (calls, 1, 1),
    }
    dirs = {
        name: os.path.join(work, name.split(",")[0].replace(" ", "_") + f"_{s}_{j}x{n}")
        for name, (s, j, n) in variants.items()
    }
    results = {name: run(args.ckpt, dirs[name], *v, args.masks, args.crops) for name, v in variants.items()}
    seams = {name: {m: seam_psnr(dirs[name], m, args.seam) for m in args.masks} for name in variants}
    report = table(results, seams, args.masks, args.seam)
    with open(os.path.join(args.out, "study.md"), "w") as f:
        f.write(report)
    for mask in args.masks:
        comparison(args.out, {k: dirs[k] for k in (list(variants)[2], list(variants)[0])}, mask)
    extension = os.path.join(work, "extension")
    run(args.ckpt, extension, args.steps, args.jump_length, args.jump_n_sample, ["outpaint", "hole"], args.crops)
    rows = [
        [read_png(os.path.join(extension, k, m, n)) for m in ("outpaint", "hole") for k in ("gt_masked", "inpainted")]
        for n in sorted(os.listdir(os.path.join(extension, "inpainted", "outpaint")))
    ]
    write(grid(rows), os.path.join(args.out, "extension.png"))
    print(report)


if __name__ == "__main__":
    main()
