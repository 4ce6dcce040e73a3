"""Stopping a diverged training run before it writes a checkpoint of NaN weights.

``FiniteTraining`` (train.py installs it always) checks the training loss after every batch: a NaN or
infinite loss ends the run with one line naming the step, before any checkpoint callback of that batch
runs (Lightning calls ``ModelCheckpoint`` last), so the newest checkpoint on disk is the last finite
one; with several processes all stop at that step.  As a second guard every checkpoint is checked as it is assembled (``on_save_checkpoint``, which
runs before the file is written, also for ``save_last`` and ``save_on_exception`` saves): one holding
a non-finite tensor is never written.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class NonFiniteTrainingError(ValueError):
    """Training diverged (a NaN or infinite loss or weight); the message is one line and names the step."""


def first_non_finite(state: Mapping[str, Any], prefix: str = "") -> Optional[str]:
    """The name of the first floating-point tensor of ``state`` (nested dicts included) that holds NaN or inf."""
    for name, value in _tensors(state, prefix):
        if value.is_floating_point() or value.is_complex():
            if not bool(torch.isfinite(value).all()):
                return name
    return None


def _tensors(tree: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))


def _loss_value(outputs: Any) -> Optional[torch.Tensor]:
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    return loss if isinstance(loss, torch.Tensor) else None


class FiniteTraining(Callback):
    """Ends training (``NonFiniteTrainingError``) at the first non-finite training loss, and refuses to
    write a checkpoint that holds a non-finite tensor (weights, EMA weights).

    Args:
        check_checkpoints: also check each checkpoint's tensors before it is written.
    """

    def __init__(self, check_checkpoints: bool = True):
        self.check_checkpoints = check_checkpoints
        self._step = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step  # optimizer steps done before this batch

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = _loss_value(outputs)
        finite = loss is None or bool(torch.isfinite(loss.detach()).all())
        # every process stops at the same step (one leaving alone would leave the others waiting in a collective)
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        value = loss.detach().float().mean().item() if loss is not None else 0.0
        what = "nan" if math.isnan(value) else str(value) if math.isinf(value) else "not finite on another process"
        raise NonFiniteTrainingError(
            f"training diverged: the loss is {what} at step {self._step} "
            f"(epoch {trainer.current_epoch}, batch {batch_idx}); stopped without saving it, {self._kept(trainer)}; "
            f"try a lower --model.lr or --trainer.gradient_clip_val"
        )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.check_checkpoints:
            return
        for key in ("state_dict", "current_model_state"):
            bad = first_non_finite(checkpoint.get(key) or {}, key)
            if bad:
                raise NonFiniteTrainingError(
                    f"training diverged: {bad} holds NaN or inf at step {trainer.global_step}; the checkpoint is "
                    f"not written, {self._kept(trainer)}; try a lower --model.lr or --trainer.gradient_clip_val"
                )

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """A diverged run's weights are not worth saving: ``save_on_exception`` checkpoints are skipped (this
        runs before the checkpoint callbacks' own ``on_exception``)."""
        if isinstance(exception, NonFiniteTrainingError):
            for c in trainer.callbacks:
                if isinstance(c, ModelCheckpoint):
                    c.save_on_exception = False

    @staticmethod
    def _kept(trainer: L.Trainer) -> str:
        paths = [c.last_model_path or c.best_model_path for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
        paths = [p for p in paths if p]
        return f"the last finite checkpoint is {paths[0]}" if paths else "no checkpoint was written"


__all__ = ["FiniteTraining", "NonFiniteTrainingError", "first_non_finite"]
