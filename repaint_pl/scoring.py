"""Metrics of written results: LPIPS (AlexNet, VGG), SSIM and PSNR on the whole image and on the filled
region, FID/KID on request; per-image rows, summaries per mask type, and result grids.

Everything is computed from the PNG files (``gt/``, ``inpainted/``, ``gt_keep_mask/``), so the numbers
agree with the pictures on disk, a resumed run scores like an uninterrupted one, and an existing output
folder can be scored again without sampling (``python -m repaint_pl.scoring --results DIR``).

Backbone weights are fetched the usual way on first use (torchvision / torch.hub download them into
``$TORCH_HOME/hub/checkpoints``).  Only when that fails (offline, proxy, ``REPAINT_NO_DOWNLOAD=1``)
is the metric skipped, with one line saying which file to put where; the other metrics are still computed.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from repaint_pl.files import atomic_write, csv_text

BACKBONE_FILES = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "inception": "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
}
KINDS = ("inpainted", "gt", "gt_masked", "gt_keep_mask")
SSIM_BORDER = 5  # half the 11-px Gaussian window: the whole-image SSIM ignores this margin
CSV_FIELDS = ("name", "mask_type", "id", "seconds", "network_calls")


def backbone_path(kind: str) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(BACKBONE_FILES[kind]))


NO_DOWNLOAD_ENV = "REPAINT_NO_DOWNLOAD"  # set (e.g. by the tests): backbones only from disk
DOWNLOAD_TIMEOUT_S = 60  # per network read, so that a silent firewall cannot hang a run
Metric = TypeVar("Metric")


def missing_backbone(kind: str, reason: str = "not on disk") -> str:
    """The one-line message for backbone weights that could not be had: which file to put where."""
    path = backbone_path(kind)
    name, url, folder = os.path.basename(path), BACKBONE_FILES[kind], os.path.dirname(path)
    return f"{kind} weights unavailable ({reason}): put {name} (from {url}) into {folder}"


def load_backbone(kind: str, build: Callable[[], Metric], notes: list[str], label: str) -> Optional[Metric]:
    """``build()`` (which lets torchvision / torch.hub fetch the ``kind`` weights on first use), or None
    with one line in ``notes`` when the weights cannot be had."""
    if os.environ.get(NO_DOWNLOAD_ENV) and not os.path.isfile(backbone_path(kind)):
        notes.append(f"{label} skipped: {missing_backbone(kind, f'downloads disabled by {NO_DOWNLOAD_ENV}')}")
        return None
    timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return build()
    except ImportError as e:  # an optional package of the metric is not installed
        notes.append(f"{label} skipped: {(str(e).strip().splitlines() or [type(e).__name__])[0]}")
        return None
    except (OSError, RuntimeError, ValueError) as e:  # offline, refused, truncated or corrupt download
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        notes.append(f"{label} skipped: {missing_backbone(kind, reason)}")
        return None
    finally:
        socket.setdefaulttimeout(timeout)


# --------------------------------------------------------------------------
# Per-image metrics
# --------------------------------------------------------------------------


def masked_mean(values: Tensor, region: Tensor) -> Tensor:
    """Mean of ``values`` ``[N, C|1, H, W]`` over ``region`` ``[N, 1, H, W]`` (NaN where the region is empty)."""
    region = region.expand_as(values).float()
    return (values * region).flatten(1).sum(1) / region.flatten(1).sum(1)


def psnr(mse: Tensor) -> Tensor:
    """PSNR in dB of images in [0, 1] from their mean squared error (inf when identical)."""
    return 10 * torch.log10(1 / mse)


class LpipsMetric:
    """LPIPS distance maps with one backbone (the lpips package; ``random=True``: random backbone, for tests)."""

    def __init__(self, net: str, random: bool = False, device: str | torch.device = "cpu"):
        import warnings

        import lpips

        with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained`
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net=net, pnet_rand=random, spatial=True, verbose=False).to(device).eval()

    @torch.no_grad()
    def maps(self, a: Tensor, b: Tensor) -> Tensor:
        """``[N, 1, H, W]`` distance maps of images in [0, 1] (grey images are repeated to RGB)."""
        a, b = (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in (a, b))
        return self.model(a * 2 - 1, b * 2 - 1)


@dataclass
class Scorer:
    """Computes the per-image metrics of batches of (ground truth, result, keep mask).

    lpips: LPIPS backbones (``alex``, ``vgg``); lpips_random: random backbones (tests only).
    """

    lpips: Sequence[str] = ("alex", "vgg")
    lpips_random: bool = False
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lpips_models: dict[str, LpipsMetric] = {}
        for net in self.lpips:
            build = functools.partial(LpipsMetric, net, self.lpips_random, self.device)
            model = build() if self.lpips_random else load_backbone(net, build, self.notes, f"LPIPS-{net}")
            if model is not None:
                self.lpips_models[net] = model

    @torch.no_grad()
    def score(self, gt: Tensor, result: Tensor, keep: Tensor) -> list[dict[str, float]]:
        """Metrics of ``[N, C, H, W]`` images in [0, 1]; ``keep`` ``[N, 1, H, W]`` is 1 where known."""
        gt, result, keep = gt.to(self.device), result.to(self.device), keep.to(self.device)
        fill, whole = keep < 0.5, torch.ones_like(keep, dtype=torch.bool)
        sq = (gt - result) ** 2
        # SSIM: Gaussian window (σ 1.5, 11 px); the whole-image value averages the map away from the
        # borders (the usual definition), the filled-region value averages it over the filled pixels
        _, ssim_map = structural_similarity_index_measure(
            result, gt, data_range=1.0, return_full_image=True, reduction="none"
        )
        metrics = {
            "psnr": psnr(masked_mean(sq, whole)),
            "psnr_fill": psnr(masked_mean(sq, fill)),
            "ssim": ssim_map[..., SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER].flatten(1).mean(1),
            "ssim_fill": masked_mean(ssim_map, fill),
        }
        for net, model in self.lpips_models.items():
            maps = model.maps(result, gt)
            metrics[f"lpips_{net}"], metrics[f"lpips_{net}_fill"] = masked_mean(maps, whole), masked_mean(maps, fill)
        return [{k: float(v[i]) for k, v in metrics.items()} for i in range(len(gt))]


# --------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------


def read_png(path: str, channels: Optional[int] = None) -> Tensor:
    """A PNG as float ``[C, H, W]`` in [0, 1]."""
    arr = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
    return t[:channels] if channels else t


def result_names(dirs: dict[str, str]) -> list[str]:
    """Names (relative paths) of every inpainted picture with its ground truth and mask."""
    root = dirs["inpainted"]
    names = sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs if f.endswith(".png")
    )
    return [n for n in names if all(os.path.isfile(os.path.join(dirs[k], n)) for k in ("gt", "gt_keep_mask"))]


def load_triplets(dirs: dict[str, str], names: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    gt = torch.stack([read_png(os.path.join(dirs["gt"], n)) for n in names])
    result = torch.stack([read_png(os.path.join(dirs["inpainted"], n)) for n in names])
    keep = torch.stack([read_png(os.path.join(dirs["gt_keep_mask"], n))[:1] for n in names])
    return gt, result, keep


def mask_type_of(name: str) -> str:
    """The mask type of an output name (``thick/x.png`` -> ``thick``; flat names -> ``mask``)."""
    parts = name.replace(os.sep, "/").split("/")
    return parts[0] if len(parts) > 1 else "mask"


def read_meta(meta_dir: str, name: str) -> dict[str, Any]:
    path = os.path.join(meta_dir, os.path.splitext(name)[0] + ".json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def score_names(
    scorer: Scorer, dirs: dict[str, str], meta_dir: str, names: Sequence[str], batch_size: int = 16
) -> list[dict[str, Any]]:
    """One row per name: name, mask type, id, seconds, network calls, metrics."""
    rows = []
    for start in range(0, len(names), batch_size):
        chunk = list(names[start : start + batch_size])
        shapes = {read_png(os.path.join(dirs["gt"], n)).shape for n in chunk}
        groups = [chunk] if len(shapes) == 1 else [[n] for n in chunk]  # mixed sizes: one at a time
        for group in groups:
            for name, metrics in zip(group, scorer.score(*load_triplets(dirs, group))):
                meta = read_meta(meta_dir, name)
                rows.append(
                    {
                        "name": name,
                        "mask_type": meta.get("mask_type", mask_type_of(name)),
                        "id": meta.get("id", ""),
                        "seconds": meta.get("seconds", ""),
                        "network_calls": meta.get("network_calls", ""),
                        **metrics,
                    }
                )
    return rows


# --------------------------------------------------------------------------
# FID / KID per mask type
# --------------------------------------------------------------------------


def fid_kid(dirs: dict[str, str], names: Sequence[str], feature: Any = 2048) -> dict[str, float]:
    """FID and KID between the inpainted pictures and their ground truths (torchmetrics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=feature, normalize=True)
    kid = KernelInceptionDistance(feature=feature, normalize=True, subset_size=max(2, min(len(names), 1000)) // 2)
    for start in range(0, len(names), 32):
        gt, result, _ = load_triplets(dirs, names[start : start + 32])
        gt, result = (x.expand(-1, 3, -1, -1) for x in (gt, result))
        for metric in (fid, kid):
            metric.update(gt, real=True)
            metric.update(result, real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


# --------------------------------------------------------------------------
# Summaries and files
# --------------------------------------------------------------------------


def metric_names(rows: Iterable[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in CSV_FIELDS and k not in names]
    return names


def unique_errors(errors: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Each error once (a bad input file fails under every mask type with the same one-line message)."""
    seen: dict[str, dict[str, str]] = {}
    for e in errors:
        seen.setdefault(e["error"], e)
    return list(seen.values())


def summarize(
    rows: Sequence[dict[str, Any]], errors: Sequence[dict[str, str]] = (), extra: Optional[dict] = None
) -> dict[str, Any]:
    """Mean and standard deviation of every metric per mask type (and over all), counts, errors (each once).

    Values that are not finite are left out of a metric's mean and standard deviation (a filled-region
    metric of an all-known mask is undefined; the PSNR of an exact reproduction is infinite): ``n``
    says how many values count when some were left out, and a metric with none is absent.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["mask_type"], []).append(row)
    if len(groups) > 1:
        groups["all"] = list(rows)
    summary: dict[str, Any] = {"mask_types": {}, "errors": unique_errors(errors), "notes": []}
    for kind, group in groups.items():
        stats: dict[str, Any] = {"images": len(group)}
        for key in metric_names(group) + ["seconds", "network_calls"]:
            values = np.array([float(r[key]) for r in group if r.get(key) not in ("", None)], dtype=np.float64)
            finite = values[np.isfinite(values)]
            if len(finite):
                stats[key] = {"mean": float(finite.mean()), "std": float(finite.std())}
                if len(finite) < len(values):
                    stats[key]["n"] = int(len(finite))
        stats.update((extra or {}).get(kind, {}))
        summary["mask_types"][kind] = stats
    return summary


SECONDS_NOTE = (
    "seconds: the sampling time of each image's batch divided by the images sampled in it "
    "(the images of one batch share one value)"
)


def markdown_table(summary: dict[str, Any]) -> str:
    """summary.md: mean ± std per mask type, the skipped inputs, the notes and what ``seconds`` measures."""
    kinds = summary["mask_types"]
    keys = []
    for stats in kinds.values():
        keys += [k for k in stats if k != "images" and k not in keys]
    if not kinds:  # nothing was inpainted (every input failed): no table
        lines = ["No input was inpainted."]
    else:
        lines = ["| mask type | images | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for kind, stats in kinds.items():
        cells = []
        for k in keys:
            v = stats.get(k)
            cells.append(
                "" if v is None else f"{v['mean']:.4g} ± {v['std']:.2g}" if isinstance(v, dict) else f"{v:.4g}"
            )
        lines.append(f"| {kind} | {stats['images']} | " + " | ".join(cells) + " |")
    if summary["errors"]:
        lines += ["", f"{len(summary['errors'])} input(s) skipped:"] + [f"- {e['error']}" for e in summary["errors"]]
    for note in summary["notes"]:
        lines += ["", f"Note: {note}"]
    if "seconds" in keys:
        lines += ["", SECONDS_NOTE + "."]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> Any:
    """A CSV cell: an undefined (NaN) metric is left empty."""
    return "" if isinstance(value, float) and np.isnan(value) else value


def metrics_csv(rows: Sequence[dict[str, Any]]) -> str:
    """metrics.csv: one row per image sorted by name, the fixed columns then the metrics."""
    ordered = [{k: _cell(v) for k, v in r.items()} for r in sorted(rows, key=lambda r: r["name"])]
    return csv_text(ordered, list(CSV_FIELDS) + metric_names(rows))


def write_reports(out_dir: str, rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> None:
    """metrics.csv (per image), summary.json and summary.md (per mask type) in ``out_dir`` (each atomically)."""
    atomic_write(os.path.join(out_dir, "metrics.csv"), metrics_csv(rows))
    atomic_write(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2, allow_nan=True))
    atomic_write(os.path.join(out_dir, "summary.md"), markdown_table(summary))


GRID_COLUMNS = (("gt", "original"), ("gt_masked", "masked"), ("inpainted", "result"))  # output folder, label
GRID_PADDING = 2


def column_labels(labels: Sequence[str], tile: int, padding: int = GRID_PADDING) -> np.ndarray:
    """A white header ``[H, W, 3]`` uint8 for a grid of ``len(labels)`` columns of ``tile`` pixels between
    ``padding`` borders, each label in black, centred over its column (PIL's default font)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(11, min(24, tile // 12)))
    height = round(font.size * 1.8)
    header = Image.new("RGB", (len(labels) * (tile + padding) + padding, height), "white")
    draw = ImageDraw.Draw(header)
    for i, text in enumerate(labels):
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x = padding + i * (tile + padding) + (tile - (right - left)) / 2 - left
        draw.text((x, (height - (bottom - top)) / 2 - top), text, fill="black", font=font)
    return np.asarray(header)


def write_grids(dirs: dict[str, str], names: Sequence[str], out_dir: str, max_rows: int = 8) -> dict[str, str]:
    """One PNG per mask type: a header naming the columns, then rows of (original | masked | result) for up to
    ``max_rows`` images."""
    from torchvision.utils import make_grid

    from repaint_pl.callbacks.writer import enlarge, save_png

    by_type: dict[str, list[str]] = {}
    for n in names:
        by_type.setdefault(mask_type_of(n), []).append(n)
    written = {}
    for kind, group in by_type.items():
        group = group[:max_rows]
        tiles = [read_png(os.path.join(dirs[k], n)).expand(3, -1, -1) for n in group for k, _ in GRID_COLUMNS]
        if len({t.shape for t in tiles}) != 1:
            continue
        tiles = [enlarge(t) for t in tiles]  # small pictures are enlarged to be seen
        grid = make_grid(torch.stack(tiles), nrow=len(GRID_COLUMNS), padding=GRID_PADDING, pad_value=1.0)
        pixels = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        header = column_labels([label for _, label in GRID_COLUMNS], tiles[0].shape[-1])
        path = os.path.join(out_dir, "grids", f"{kind}.png")
        save_png(np.concatenate([header, pixels]), path)
        written[kind] = path
    return written


def output_dirs(results: str) -> dict[str, str]:
    return {k: os.path.join(results, k) for k in KINDS}


def score_folder(
    results: str,
    lpips: Sequence[str] = ("alex", "vgg"),
    fid: bool = False,
    lpips_random: bool = False,
    device: str = "cpu",
    grid_rows: int = 8,
) -> dict[str, Any]:
    """Score an output folder again (no sampling): writes metrics.csv, summary.json/.md and grids/."""
    dirs = output_dirs(results)
    if not os.path.isdir(dirs["inpainted"]):
        raise ValueError(f"{results}: no inpainted/ folder here; point --results at an eval.py output folder")
    names = result_names(dirs)
    scorer = Scorer(lpips, lpips_random, device)
    rows = score_names(scorer, dirs, os.path.join(results, "meta"), names)
    extra = fid_per_type(dirs, names, rows, scorer.notes) if fid else None
    summary = summarize(rows, read_errors(results), extra)
    summary["notes"] = scorer.notes
    write_reports(results, rows, summary)
    write_grids(dirs, names, results, grid_rows)
    return summary


FID_EXTRA = "torch-fidelity is not installed (pip install 'repaint_pl[fid]')"


def _inception(feature: int) -> Any:
    """torchmetrics' Inception feature extractor (fetches its weights on first use; needs the ``fid`` extra)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    try:
        return FrechetInceptionDistance(feature=feature, normalize=True)
    except ModuleNotFoundError:  # torchmetrics' own message names only its packages, not this one's extra
        raise ImportError(FID_EXTRA) from None


def fid_per_type(
    dirs: dict[str, str], names: Sequence[str], rows: Sequence[dict[str, Any]], notes: list[str], feature: Any = 2048
) -> dict[str, dict[str, float]]:
    if isinstance(feature, int) and not load_backbone("inception", lambda: _inception(feature), notes, "FID/KID"):
        return {}
    kinds = {r["name"]: r["mask_type"] for r in rows}
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(kinds.get(n, mask_type_of(n)), []).append(n)
    return {kind: fid_kid(dirs, group, feature) for kind, group in groups.items() if len(group) >= 2}


def read_errors(results: str) -> list[dict[str, str]]:
    """The inputs that failed (``errors.json`` beside the outputs: ``file``, ``error`` …), or []."""
    path = os.path.join(results, "errors.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)


def main(args: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """``python -m repaint_pl.scoring --results DIR``: score an eval.py output folder again, without sampling."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--results", type=str, required=True, help="an eval.py output folder (writer.out_dir)")
    parser.add_argument("--lpips", type=list[str], default=["alex", "vgg"])
    parser.add_argument("--fid", type=bool, default=False, help="also FID/KID per mask type (Inception weights)")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    cfg = parser.parse_args(args)
    summary = score_folder(cfg.results, cfg.lpips, cfg.fid, device=cfg.device)
    print(markdown_table(summary), end="")
    return summary


if __name__ == "__main__":
    main()
