"""The exact benchmark's question on a learned network: the fast sampler against RePaint on the texture model.

    python -m repaint_pl.exact texture --out results/texture_samplers

Fills held-out crops of the shipped texture model (``weights/texture32_ema.pt``, preset texture32)
under the paper's mask types, several seeds per crop, with RePaint at the paper's schedule and with
``CoarseTravelSampler`` at a fifth of its calls or less, and writes under ``--out``:

* ``texture.csv``: one row per (sampler, crop, mask, seed): fill PSNR/SSIM, seam PSNR (the unknown
  pixels within ``--seam`` px of a known one), seconds;
* ``texture.md``: means per sampler and mask type, diversity (RMS difference between the fills of
  two seeds, over the unknown pixels), and the per-crop win count (mean fill / seam PSNR over seeds);
* ``texture.png``: per crop and mask, original | masked | RePaint | fast (first seed).

Images are scored in [0, 1] like ``repaint_pl.scoring``.  Defaults are the paper's schedule (250
steps, jumps 10×10: 2410 calls) against the fast sampler's defaults (481 calls): about 11 ms per
image and call on one CPU core, so ``--crops 3 --seeds 2`` (108 fills per sampler) takes about an
hour on a CPU and a minute or two on a GPU.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.utils import make_grid, save_image

from .denoisers import adm_model_fn
from .diffusion import DiffusionConfig
from .masks import PAPER_MASK_TYPES, keep_mask
from .noise import PerSampleNoise
from .samplers import CoarseTravelSampler, RePaintSampler, Sampler
from .schedules import JumpSchedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_texture_net(ckpt: str) -> torch.nn.Module:
    from .nets import UNetConfig
    from .nets.checkpoint import load_weights, read_checkpoint

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


def fill_metrics(gt: Tensor, result: Tensor, keep: Tensor, seam: int) -> dict[str, Tensor]:
    """Per image: PSNR and SSIM over the unknown pixels, PSNR over the seam band; images in [0, 1]."""
    fill = keep < 0.5
    band = (torch.nn.functional.max_pool2d(keep, 2 * seam + 1, 1, seam) > 0.5) & fill
    sq = (gt - result) ** 2

    def masked(v: Tensor, region: Tensor) -> Tensor:
        return (v * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp(min=1)

    _, ssim_map = structural_similarity_index_measure(
        result, gt, data_range=1.0, return_full_image=True, reduction="none"
    )
    return {
        "psnr_fill": 10 * torch.log10(1 / masked(sq, fill)),
        "ssim_fill": masked(ssim_map, fill),
        "psnr_seam": 10 * torch.log10(1 / masked(sq, band)),
    }


def run_sampler(
    sampler: Sampler, net, steps: int, times: list[int], x0: Tensor, keep: Tensor, ids: list[int], seed: int, batch: int
) -> tuple[Tensor, float]:
    """Fills ``[N, 1, H, W]`` in [-1, 1] (in batches; per-sample generators) and the seconds per image."""
    d = DiffusionConfig(steps=1000, timestep_respacing=str(steps), variance="learned_range").build()
    model_fn = adm_model_fn(net, d)
    outs, start = [], time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x0), batch):
            sl = slice(i, i + batch)
            noise = PerSampleNoise(seed, ids[sl])
            outs.append(sampler(model_fn, x0[sl], keep[sl], times, d, noise, clip_x0=True))
    return torch.cat(outs), (time.perf_counter() - start) / len(x0)


def diversity(fills: Tensor, keep: Tensor, seeds: int) -> Tensor:
    """RMS difference over the unknown pixels between the fills of seed pairs, per (crop, mask): ``[N / seeds]``."""
    f = ((fills + 1) / 2).view(-1, seeds, *fills.shape[1:])
    k = keep.view(-1, seeds, *keep.shape[1:])[:, 0]
    pairs = [(a, b) for a in range(seeds) for b in range(a + 1, seeds)]
    if not pairs:
        return torch.full((f.shape[0],), float("nan"))
    rms = [((f[:, a] - f[:, b]) ** 2 * (k < 0.5)).flatten(1).sum(1) / (k < 0.5).flatten(1).sum(1) for a, b in pairs]
    return torch.stack(rms).mean(0).sqrt()


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
    lines += ["", "Per (crop, mask), mean over seeds: the fast sampler's wins / comparisons against RePaint.", ""]
    lines += [f"* {metric}: {w} / {n}" for metric, (w, n) in wins.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m repaint_pl.exact texture", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--ckpt", default=os.path.join(ROOT, "weights", "texture32_ema.pt"))
    p.add_argument("--size", type=int, default=32, help="crop side in pixels")
    p.add_argument("--crops", type=int, default=2, help="held-out crops per texture (3 textures)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--masks", nargs="+", default=list(PAPER_MASK_TYPES))
    p.add_argument("--steps", type=int, default=250, help="respaced steps (both samplers)")
    p.add_argument("--jump_length", type=int, default=10)
    p.add_argument("--jump_n_sample", type=int, default=10)
    p.add_argument("--fast_steps", type=int, default=13, help="CoarseTravel levels (its default)")
    p.add_argument("--fast_jump_n_sample", type=int, default=40, help="CoarseTravel passes per level (its default)")
    p.add_argument("--seam", type=int, default=2)
    p.add_argument("--batch", type=int, default=36)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    net = load_texture_net(args.ckpt)
    crops = held_out_crops(args.crops, args.size)
    # one image per (crop, mask, seed), seeds innermost
    items = [(c, m, s) for c in range(len(crops)) for m in args.masks for s in range(args.seeds)]
    x0 = torch.stack([crops[c][1] for c, _, _ in items])
    keep = torch.stack([keep_mask(m, args.size, seed=0, image_id=c) for c, m, _ in items])
    ids = list(range(len(items)))
    times = JumpSchedule(jump_length=args.jump_length, jump_n_sample=args.jump_n_sample).times(args.steps)
    samplers = {
        "RePaint": RePaintSampler(),
        "CoarseTravel": CoarseTravelSampler(steps=args.fast_steps, jump_n_sample=args.fast_jump_n_sample),
    }
    rows, fills, div = [], {}, {"mask": [m for _, m, s in items if s == 0]}
    for name, sampler in samplers.items():
        calls = sampler.network_calls(times)
        fills[name], seconds = run_sampler(sampler, net, args.steps, times, x0, keep, ids, args.seed, args.batch)
        print(f"{name}: {calls} calls, {seconds:.2f} s / image", flush=True)
        metrics = fill_metrics((x0 + 1) / 2, ((fills[name] + 1) / 2).clamp(0, 1), keep, args.seam)
        div[name] = diversity(fills[name].clamp(-1, 1), keep, args.seeds)
        for i, (c, m, s) in enumerate(items):
            rows.append(
                dict(
                    sampler=name,
                    crop=crops[c][0],
                    mask=m,
                    seed=s,
                    calls=calls,
                    seconds=seconds,
                    **{k: float(v[i]) for k, v in metrics.items()},
                )
            )
    wins = count_wins(rows, list(samplers))
    calls = {n: s.network_calls(times) for n, s in samplers.items()}
    header = (
        f"# Texture model: RePaint ({calls['RePaint']} calls) against CoarseTravel ({calls['CoarseTravel']} "
        f"calls)\n\n{len(crops)} held-out {args.size}² crops × {len(args.masks)} mask types × {args.seeds} "
        f"seeds, {args.steps} respaced steps, RePaint jumps {args.jump_length}×{args.jump_n_sample}, "
        f"CoarseTravel {args.fast_steps} levels × {args.fast_jump_n_sample} passes."
    )
    text = report(rows, list(samplers), args.masks, div, wins, header)
    write_outputs(args.out, rows, text, x0, keep, fills, args.seeds)
    print(text)
    return rows


def count_wins(rows: list[dict], names: list[str]) -> dict[str, tuple[int, int]]:
    """(fast wins, comparisons) per metric over (crop, mask), each side averaged over seeds."""
    fast, ref = names[1], names[0]
    out = {}
    for metric in ("psnr_fill", "ssim_fill", "psnr_seam"):
        means: dict[tuple, dict[str, list[float]]] = {}
        for r in rows:
            means.setdefault((r["crop"], r["mask"]), {}).setdefault(r["sampler"], []).append(r[metric])
        pairs = [(np.mean(v[fast]), np.mean(v[ref])) for v in means.values()]
        out[metric] = (sum(a > b for a, b in pairs), len(pairs))
    return out


def write_outputs(
    out: str, rows: list[dict], text: str, x0: Tensor, keep: Tensor, fills: dict[str, Tensor], seeds: int
) -> None:
    from .exact import write_csv

    write_csv(rows, os.path.join(out, "texture.csv"))
    with open(os.path.join(out, "texture.md"), "w") as f:
        f.write(text)
    first = slice(0, len(x0), seeds)
    tiles = [x0[first], x0[first] * keep[first], *[f[first] for f in fills.values()]]
    grid = torch.stack(tiles, 1).flatten(0, 1)
    save_image(
        make_grid(((grid + 1) / 2).clamp(0, 1), nrow=len(tiles), padding=1, pad_value=1.0),
        os.path.join(out, "texture.png"),
    )
