"""Metrics of an eval run: per-image CSV, summary per mask type (JSON, markdown), grids, logger.

Each process scores the inputs it handled from the written PNGs (``repaint_pl.scoring``); the rows
are gathered and process 0 writes ``metrics.csv``, ``summary.json``, ``summary.md``
and ``grids/<mask type>.png`` beside the outputs, and sends the means and grids to the loggers.

With crop-and-stitch (``data.crop_to_mask``) the metrics are those of the stitched full-resolution
picture against the full-resolution input (one row per picture, scored by the process that had its
first crop, after the writer has stitched every picture): the "fill" metrics cover exactly the hole;
the whole-picture ones are dominated by the known pixels, which are the input's bytes.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from repaint_pl import scoring

from .writer import RePaintWriter

log = logging.getLogger(__name__)


def gather(obj: Any) -> list[Any]:
    """``obj`` of every process (a one-element list without distributed training)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def log_summary(trainer: L.Trainer, summary: dict[str, Any], grids: dict[str, str]) -> None:
    from .preview import log_image

    means = {
        f"{kind}/{k}": v["mean"]
        for kind, stats in summary["mask_types"].items()
        for k, v in stats.items()
        if isinstance(v, dict)
    }
    for logger in trainer.loggers:
        logger.log_metrics(means, step=0)
        logger.save()
    for kind, path in grids.items():
        log_image(trainer, f"grid/{kind}", scoring.read_png(path) * 2 - 1)


class InpaintMetrics(Callback):
    """LPIPS (``lpips`` backbones), SSIM, PSNR (whole image and filled region) and optionally FID/KID.

    lpips_random: random LPIPS backbones (for tests without weight files); grid_rows: images per grid.
    """

    def __init__(
        self,
        lpips: Sequence[str] = ("alex", "vgg"),
        fid: bool = False,
        lpips_random: bool = False,
        grid_rows: int = 8,
        enabled: bool = True,
    ):
        self.lpips, self.fid, self.lpips_random = list(lpips), fid, lpips_random
        self.grid_rows, self.enabled = grid_rows, enabled
        self.names: list[str] = []
        self.errors: list[dict[str, str]] = []

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.names, self.errors = [], []

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        errors = outputs.get("error", [""] * len(outputs["name"]))
        for i, (name, error) in enumerate(zip(outputs["name"], errors)):
            if "picture" in outputs:  # crop-and-stitch: one entry per picture, from its first crop
                if int(outputs["crop_index"][i]) != 0:
                    continue
                name = outputs["picture"][i]
            if error:
                self.errors.append({"name": name, "error": error})
            else:
                self.names.append(name)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = next((c for c in trainer.callbacks if isinstance(c, RePaintWriter)), None)
        if writer is not None:
            writer.finish_crops(trainer)  # every stitched picture is written before anything is scored
            self.names = [n for n in self.names if os.path.isfile(writer.path("inpainted", n))]
        if not self.enabled or writer is None:
            return
        scorer = scoring.Scorer(self.lpips, self.lpips_random, str(pl_module.device))
        rows = scoring.score_names(scorer, writer.dirs, writer.meta_dir, self.names)
        parts = gather((rows, self.errors, self.names))
        if not trainer.is_global_zero:
            return
        rows = [r for part, _, _ in parts for r in part]
        errors = [e for _, part, _ in parts for e in part]
        names = sorted(n for _, _, part in parts for n in part)
        extra = scoring.fid_per_type(writer.dirs, names, rows, scorer.notes) if self.fid else None
        summary = scoring.summarize(rows, errors, extra)
        summary["notes"] = scorer.notes
        for note in scorer.notes:
            log.warning(note)
        scoring.write_reports(writer.out_dir, rows, summary)
        grids = scoring.write_grids(writer.dirs, names, writer.out_dir, self.grid_rows)
        log_summary(trainer, summary, grids)
        print(scoring.markdown_table(summary), end="")
