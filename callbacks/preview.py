"""Training previews: unconditional samples and an inpainting of held-out images, as PNG and to the logger.

They are drawn on the first validation batch, while Lightning's weight-averaging callback has the
EMA weights in the model, so the previews show the weights that eval.py will use.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torchvision.utils import make_grid

from repaint_pl.masks import keep_mask
from repaint_pl.schedules import jump_times

from .writer import enlarge, save_png, to_uint8


def log_image(trainer: L.Trainer, tag: str, grid: torch.Tensor) -> None:
    """Send a ``[C, H, W]`` image in [-1, 1] to every logger that takes images (TensorBoard, W&B…)."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(tag, (grid + 1) / 2, trainer.global_step)
        elif hasattr(logger, "log_image"):
            logger.log_image(key=tag, images=[to_uint8(grid)], step=trainer.global_step)


class SamplePreview(Callback):
    """Every validation: ``num_samples`` unconditional samples and RePaint fills of the first
    validation images under ``mask_type``, written to ``<out_dir or log_dir>/previews/``.

    ``jump_length``/``jump_n_sample``: resampling of the inpainting preview (1, 1 = none, fastest).
    """

    def __init__(
        self,
        num_samples: int = 8,
        mask_type: str = "box",
        jump_length: int = 1,
        jump_n_sample: int = 1,
        out_dir: Optional[str] = None,
        seed: int = 0,
    ):
        self.num_samples, self.mask_type, self.seed = num_samples, mask_type, seed
        self.jump_length, self.jump_n_sample, self.out_dir = jump_length, jump_n_sample, out_dir

    def _dir(self, trainer: L.Trainer) -> str:
        return os.path.join(self.out_dir or trainer.log_dir or trainer.default_root_dir, "previews")

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        ids = torch.arange(self.num_samples, device=pl_module.device) + self.seed * 1000
        samples = pl_module.sample(ids, batch["image"].shape[-1])
        images = batch["image"][: self.num_samples]
        masks = torch.stack([keep_mask(self.mask_type, images.shape[-1], self.seed, i) for i in range(len(images))])
        masks = masks.to(images.device)
        times = jump_times(pl_module.sampling.num_timesteps, 1, self.jump_length, self.jump_n_sample)
        filled = pl_module.inpaint(images, masks, ids[: len(images)], times=times)
        masked = images * masks - (1 - masks)
        step = trainer.global_step
        for tag, rows in (("samples", [samples]), ("inpainting", [images, masked, filled])):
            tiles = enlarge(torch.cat([r.float().clamp(-1, 1) for r in rows]))
            grid = make_grid(tiles, nrow=len(rows[0]), pad_value=1.0)
            save_png(to_uint8(grid), os.path.join(self._dir(trainer), f"{tag}_{step:07d}.png"))
            log_image(trainer, f"preview/{tag}", grid)
