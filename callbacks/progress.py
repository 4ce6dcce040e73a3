"""A prediction progress bar that counts network calls and images (RePaint takes minutes per image)."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from repaint_pl.sampling import StepState


class InpaintProgressBar(TQDMProgressBar):
    """The predict bar advances per network call; its postfix counts finished images."""

    def __init__(self, refresh_rate: int = 10, leave: bool = True):
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._calls = self._images = self._total_images = 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_predict_start(trainer, pl_module)
        self._calls = self._images = 0
        self._calls_per_batch = pl_module.network_calls_per_image
        loaders = trainer.predict_dataloaders
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        try:  # this process's share; unknown for streamed (webdataset) inputs
            self._total_images = sum(len(dl.batch_sampler.sampler) for dl in loaders)
        except TypeError:
            self._total_images = "?"
        pl_module.step_hooks.append(self._on_step)

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            bar = self.predict_progress_bar
            batches = self.total_predict_batches_current_dataloader
            bar.reset(total=batches * self._calls_per_batch if batches != float("inf") else None)
            bar.unit = "call"
            bar.set_description("RePaint")

    def _on_step(self, state: StepState) -> None:
        if state.t_to < state.t_from:
            self._calls += 1
            if self.is_enabled and self._calls % self.refresh_rate == 0:
                self.predict_progress_bar.n = self._calls
                self.predict_progress_bar.refresh()

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._images += len(batch["id"])
        if self.is_enabled:
            self.predict_progress_bar.n = self._calls
            self.predict_progress_bar.set_postfix(images=f"{self._images}/{self._total_images}")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._on_step in pl_module.step_hooks:
            pl_module.step_hooks.remove(self._on_step)
        super().on_predict_end(trainer, pl_module)
