"""The exact benchmark's question on a learned network: the fast and the exact samplers against RePaint on the
texture model, the new ones at the fast sampler's budget.

    python -m repaint_pl.apps.exact texture --out results/texture_samplers [--device cuda]

Fills held-out crops of the shipped texture model (``weights/texture32_ema.pt``, preset texture32)
under the paper's mask types, several seeds per crop, with RePaint at the paper's schedule and (``--samplers``)
``CoarseTravelSampler`` (481 calls), LanPaint (80 levels × (1 + 5): 480) and SMC, plain and twisted (8 particles × 60
levels: 480),
and writes under ``--out``:

* ``texture.csv``: one row per (sampler, crop, mask, seed): fill PSNR/SSIM, seam PSNR (the unknown
  pixels within ``--seam`` px of a known one), seconds;
* ``texture.md``: means per sampler and mask type, diversity (RMS difference between the fills of
  two seeds, over the unknown pixels), and each sampler's per-crop win count against RePaint (mean fill /
  seam PSNR over seeds);
* ``texture.png``: per crop and mask, original | masked | one column per sampler (first seed).

Images are scored in [0, 1] like ``repaint_pl.scoring``.  Defaults are the paper's schedule (250
steps, jumps 10×10: 2410 calls) against the fast sampler's defaults (481 calls): about 11 ms per
image and call on one CPU core, so ``--crops 3 --seeds 2`` (108 fills per sampler) takes about an
hour on a CPU and a minute or two on a GPU.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from repaint_pl.denoisers import adm_model_fn
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.files import atomic_write, write_csv
from repaint_pl.masks import PAPER_MASK_TYPES, keep_mask
from repaint_pl.noise import PerSampleNoise
from repaint_pl.paths import weights_path
from repaint_pl.sampling import CoarseTravelSampler, LanPaintSampler, RePaintSampler, Sampler, SMCSampler
from repaint_pl.schedules import JumpSchedule

from .. import cli
from ..measure import pairwise_fill_distance, seam_band

TEXTURE_WEIGHTS = weights_path("texture32_ema.pt")
SAMPLERS = ("RePaint", "CoarseTravel", "LanPaint", "SMC", "SMC twisted")  # the reference first


def load_texture_net(ckpt: str) -> torch.nn.Module:
    from repaint_pl.nets import UNetConfig
    from repaint_pl.nets.checkpoint import load_weights, read_checkpoint

    if not os.path.isfile(ckpt):
        raise FileNotFoundError(f"{ckpt}: texture model weights not found (--ckpt)")
    net = UNetConfig(preset="texture32").build().eval()
    load_weights(net, read_checkpoint(ckpt), ckpt)
    return net


def held_out_crops(crops_per_texture: int, size: int) -> list[tuple[str, Tensor]]:
    """Held-out crops ``[1, size, size]`` in [-1, 1] of scikit-image's textures (as configs/demo/texture.yaml)."""
    from repaint_pl.datamodules import TextureDataModule

    dm = TextureDataModule(
        scale=0.25, crop_size=32, eval_size=size, held_out=0.5, eval_crops=crops_per_texture, channels=1
    )
    dm.setup("predict")
    return dm.eval_images()


def fill_metrics(gt: Tensor, result: Tensor, keep: Tensor, seam: int) -> list[dict[str, float]]:
    """Per image: PSNR and SSIM of the filled region (eval.py's ``psnr_fill``, ``ssim_fill``) and PSNR of its
    seam band (the unknown pixels within ``seam`` px of a known one); images in [0, 1]."""
    from repaint_pl.scoring import Scorer, masked_mean, psnr  # (Lightning and the metrics: not for --help)

    rows = Scorer(lpips=(), device=gt.device).score(gt, result, keep)
    seam_psnr = psnr(masked_mean((gt - result) ** 2, seam_band(keep, seam)))
    return [
        {"psnr_fill": r["psnr_fill"], "ssim_fill": r["ssim_fill"], "psnr_seam": float(s)}
        for r, s in zip(rows, seam_psnr)
    ]


def run_sampler(
    sampler: Sampler, net, steps: int, times: list[int], x0: Tensor, keep: Tensor, ids: list[int], seed: int, batch: int
) -> tuple[Tensor, float]:
    """Fills ``[N, 1, H, W]`` in [-1, 1] (in batches; per-sample generators) and the seconds per image."""
    d = DiffusionConfig(steps=1000, timestep_respacing=str(steps), variance="learned_range").build().to(x0.device)
    model_fn = adm_model_fn(net, d)
    outs, start = [], time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x0), batch):
            sl = slice(i, i + batch)
            noise = PerSampleNoise(seed, ids[sl], x0.device)
            outs.append(sampler(model_fn, x0[sl], keep[sl], times, d, noise, clip_x0=True))
    return torch.cat(outs), (time.perf_counter() - start) / len(x0)


def diversity(fills: Tensor, keep: Tensor, seeds: int) -> Tensor:
    """Per (crop, mask): the mean over seed pairs of the RMS difference of their fills in the filled region
    (in [0, 1], as the sweep's ``pixel_rms_fill``): ``[N / seeds]``; NaN with one seed."""
    f = ((fills + 1) / 2).view(-1, seeds, *fills.shape[1:])
    k = keep.view(-1, seeds, *keep.shape[1:])[:, 0]
    if seeds < 2:
        return torch.full((f.shape[0],), float("nan"))
    return torch.tensor([pairwise_fill_distance(f[i], k[i]) for i in range(len(f))])


def report(
    rows: list[dict],
    names: Sequence[str],
    masks: Sequence[str],
    div: dict[str, Tensor],
    wins: dict[str, tuple[int, int]],
    header: str,
) -> str:
    lines = [
        header,
        "",
        "| sampler | mask | calls | s / image | PSNR fill (dB) | SSIM fill | PSNR seam (dB) | diversity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for mask in [*masks, "all"]:
            rs = [r for r in rows if r["sampler"] == name and (mask == "all" or r["mask"] == mask)]
            stat = {k: np.array([r[k] for r in rs]) for k in ("psnr_fill", "ssim_fill", "psnr_seam")}
            dv = div[name] if mask == "all" else div[name][[i for i, m in enumerate(div["mask"]) if m == mask]]
            lines.append(
                f"| {name} | {mask} | {rs[0]['calls']} | {rs[0]['seconds']:.2f} | "
                f"{stat['psnr_fill'].mean():.2f} ± {stat['psnr_fill'].std():.2f} | "
                f"{stat['ssim_fill'].mean():.3f} ± {stat['ssim_fill'].std():.3f} | "
                f"{stat['psnr_seam'].mean():.2f} ± {stat['psnr_seam'].std():.2f} | {float(dv.mean()):.3f} |"
            )
    lines += ["", "Per (crop, mask), mean over seeds: each sampler's wins / comparisons against RePaint.", ""]
    for name, counts in wins.items():
        lines.append(f"* {name}: " + ", ".join(f"{metric}: {w} / {n}" for metric, (w, n) in counts.items()))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict]:
    p = cli.parser("repaint_pl.apps.exact texture", __doc__.splitlines()[0])
    cli.add_out(p, "folder for texture.csv, texture.md and texture.png")
    p.add_argument("--ckpt", default=TEXTURE_WEIGHTS, help="the texture model's weights")
    p.add_argument("--size", type=int, default=32, help="crop side in pixels")
    p.add_argument("--crops", type=int, default=2, help="held-out crops per texture (3 textures)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--masks", nargs="+", default=list(PAPER_MASK_TYPES))
    p.add_argument("--steps", type=int, default=250, help="respaced steps (both samplers)")
    p.add_argument("--jump_length", type=int, default=10)
    p.add_argument("--jump_n_sample", type=int, default=10)
    p.add_argument("--fast_steps", type=int, default=13, help="CoarseTravel levels (its default)")
    p.add_argument("--fast_jump_n_sample", type=int, default=40, help="CoarseTravel passes per level (its default)")
    p.add_argument(
        "--samplers",
        nargs="+",
        default=list(SAMPLERS),
        choices=list(SAMPLERS),
        help="RePaint and the samplers against it",
    )
    p.add_argument("--lanpaint_steps", type=int, default=80, help="LanPaint levels (80 × (1 + 5) = 480 calls)")
    p.add_argument("--lanpaint_thinking", type=int, default=5)
    p.add_argument("--smc_particles", type=int, default=8, help="SMC particles (8 × 60 levels = 480 calls)")
    p.add_argument("--smc_steps", type=int, default=60)
    p.add_argument("--seam", type=int, default=2)
    p.add_argument("--batch", type=int, default=36)
    cli.add_seed(p)
    cli.add_device(p)
    cli.add_threads(p, default=0)
    args = p.parse_args(argv)
    cli.set_threads(args.threads)
    net = load_texture_net(args.ckpt).to(args.device)
    crops = held_out_crops(args.crops, args.size)
    # one image per (crop, mask, seed), seeds innermost
    items = [(c, m, s) for c in range(len(crops)) for m in args.masks for s in range(args.seeds)]
    x0 = torch.stack([crops[c][1] for c, _, _ in items]).to(args.device)
    keep = torch.stack([keep_mask(m, args.size, seed=0, image_id=c) for c, m, _ in items]).to(args.device)
    ids = list(range(len(items)))
    times = JumpSchedule(jump_length=args.jump_length, jump_n_sample=args.jump_n_sample).times(args.steps)
    every = {
        "RePaint": RePaintSampler(),
        "CoarseTravel": CoarseTravelSampler(steps=args.fast_steps, jump_n_sample=args.fast_jump_n_sample),
        "LanPaint": LanPaintSampler(steps=args.lanpaint_steps, thinking=args.lanpaint_thinking),
        "SMC": SMCSampler(particles=args.smc_particles, steps=args.smc_steps),
        "SMC twisted": SMCSampler(particles=args.smc_particles, steps=args.smc_steps, twist=True),
    }
    samplers = {name: every[name] for name in SAMPLERS if name == "RePaint" or name in args.samplers}
    rows, fills, div = [], {}, {"mask": [m for _, m, s in items if s == 0]}
    for name, sampler in samplers.items():
        calls = sampler.network_calls(times)
        fills[name], seconds = run_sampler(sampler, net, args.steps, times, x0, keep, ids, args.seed, args.batch)
        print(f"{name}: {calls} calls, {seconds:.2f} s / image", flush=True)
        metrics = fill_metrics((x0 + 1) / 2, ((fills[name] + 1) / 2).clamp(0, 1), keep, args.seam)
        div[name] = diversity(fills[name].clamp(-1, 1), keep, args.seeds)
        for (c, m, s), image_metrics in zip(items, metrics):
            row = dict(sampler=name, crop=crops[c][0], mask=m, seed=s, calls=calls, seconds=seconds)
            rows.append({**row, **image_metrics})
    wins = count_wins(rows, list(samplers))
    calls = {n: s.network_calls(times) for n, s in samplers.items()}
    others = ", ".join(f"{n} ({c} calls)" for n, c in calls.items() if n != "RePaint")
    header = (
        f"# Texture model: RePaint ({calls['RePaint']} calls) against {others}\n\n{len(crops)} held-out "
        f"{args.size}² crops × {len(args.masks)} mask types × {args.seeds} seeds, {args.steps} respaced steps, "
        f"RePaint jumps {args.jump_length}×{args.jump_n_sample}, CoarseTravel {args.fast_steps} levels × "
        f"{args.fast_jump_n_sample} passes, LanPaint {args.lanpaint_steps} levels × (1 + {args.lanpaint_thinking}), "
        f"SMC (plain and twisted) {args.smc_particles} particles × {args.smc_steps} levels."
    )
    text = report(rows, list(samplers), args.masks, div, wins, header)
    write_outputs(args.out, rows, text, x0.cpu(), keep.cpu(), {n: f.cpu() for n, f in fills.items()}, args.seeds)
    print(text)
    return rows


def count_wins(rows: list[dict], names: list[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per sampler after the first (the reference, RePaint): (wins, comparisons) per metric over (crop, mask),
    each side averaged over seeds."""
    ref, out = names[0], {}
    for name in names[1:]:
        out[name] = {}
        for metric in ("psnr_fill", "ssim_fill", "psnr_seam"):
            means: dict[tuple, dict[str, list[float]]] = {}
            for r in rows:
                means.setdefault((r["crop"], r["mask"]), {}).setdefault(r["sampler"], []).append(r[metric])
            pairs = [(np.mean(v[name]), np.mean(v[ref])) for v in means.values()]
            out[name][metric] = (sum(a > b for a, b in pairs), len(pairs))
    return out


def write_outputs(
    out: str, rows: list[dict], text: str, x0: Tensor, keep: Tensor, fills: dict[str, Tensor], seeds: int
) -> None:
    from torchvision.utils import make_grid

    from repaint_pl.callbacks.writer import save_png

    write_csv(rows, os.path.join(out, "texture.csv"))
    atomic_write(os.path.join(out, "texture.md"), text)
    first = slice(0, len(x0), seeds)
    tiles = [x0[first], x0[first] * keep[first], *[f[first] for f in fills.values()]]
    grid = torch.stack(tiles, 1).flatten(0, 1)
    grid = make_grid(((grid + 1) / 2).clamp(0, 1), nrow=len(tiles), padding=1, pad_value=1.0)
    save_png((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), os.path.join(out, "texture.png"))
