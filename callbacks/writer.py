"""Writing predictions as the original RePaint does: one PNG per input and kind, named after the input.

Every file is written atomically (a temporary file renamed into place), so a killed run never leaves
a half-written PNG.  Inputs whose outputs all exist are marked ``done`` before their batch is sampled:
a run started again with the same command skips them (results are per-sample, so nothing else changes).
With ``fingerprint`` set (eval.py sets the run's, see ``repaint_pl.fingerprint``), an input is done only
if its meta file carries that fingerprint: pictures of two configurations never mix.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torch import Tensor

from repaint_pl.files import atomic_write

KINDS = ("inpainted", "gt", "gt_masked", "gt_keep_mask")


def to_uint8(x: Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``[H, W, C]`` uint8, truncating like the original (``(x+1)·127.5`` cast)."""
    return ((x.float() + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def enlarge(x: Tensor, min_side: int = 128) -> Tensor:
    """``[..., H, W]`` enlarged by an integer factor (nearest) so that small pictures can be seen."""
    zoom = max(1, min_side // x.shape[-1])
    return x.repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)


def save_png(array: np.ndarray, path: str) -> None:
    """Write a PNG atomically (``repaint_pl.files.atomic_write``): a half-written file never appears under
    ``path``, and a failure is one ``OutputError`` naming it."""
    picture = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    atomic_write(path, lambda f: picture.save(f, format="PNG"))


def save_json(obj: Any, path: str) -> None:
    """Write JSON atomically (one ``OutputError`` naming ``path`` on failure)."""
    atomic_write(path, json.dumps(obj))


def output_images(image: Tensor, keep_mask: Tensor, inpainted: Tensor) -> dict[str, Tensor]:
    """The four pictures of one sample, each ``[C, H, W]`` in [-1, 1] (masks as 2m - 1)."""
    mask = keep_mask.float().expand_as(image)
    return {
        "inpainted": inpainted,
        "gt": image,
        "gt_masked": image * mask + (-1) * torch.ones_like(image) * (1 - mask),  # unknown pixels black
        "gt_keep_mask": mask * 2 - 1,
    }


class RePaintWriter(BasePredictionWriter):
    """Writes ``inpainted/``, ``gt/``, ``gt_masked/`` and ``gt_keep_mask/`` PNGs under ``out_dir``, and
    ``meta/<name>.json`` (id, mask type, seconds, network calls) for the metrics.

    Each picture folder can be placed elsewhere (the original conf's ``paths``: srs, gts, lrs, gt_keep_masks).
    ``overwrite``: sample again inputs whose outputs exist (default: skip them, which resumes a run).
    ``fingerprint`` (attribute): the run's fingerprint digest, stored in every meta file; outputs with
    another digest do not count as done.
    """

    def __init__(
        self,
        out_dir: str = "results",
        inpainted: Optional[str] = None,
        gt: Optional[str] = None,
        gt_masked: Optional[str] = None,
        gt_keep_mask: Optional[str] = None,
        overwrite: bool = False,
    ):
        super().__init__(write_interval="batch")
        self.out_dir, self.overwrite = out_dir, overwrite
        given = dict(inpainted=inpainted, gt=gt, gt_masked=gt_masked, gt_keep_mask=gt_keep_mask)
        self.dirs = {k: os.path.expanduser(v or os.path.join(out_dir, k)) for k, v in given.items()}
        self.meta_dir = os.path.join(out_dir, "meta")
        self.fingerprint: Optional[str] = None

    def path(self, kind: str, name: str) -> str:
        return os.path.join(self.dirs[kind], name)

    def meta_path(self, name: str) -> str:
        return os.path.join(self.meta_dir, os.path.splitext(name)[0] + ".json")

    def finished(self, name: str) -> bool:
        """All outputs of ``name`` exist (the meta file is written last), made under this run's fingerprint."""
        if not (os.path.isfile(self.meta_path(name)) and all(os.path.isfile(self.path(k, name)) for k in KINDS)):
            return False
        return self.fingerprint is None or self._meta_fingerprint(name) == self.fingerprint

    def _meta_fingerprint(self, name: str) -> Optional[str]:
        try:
            with open(self.meta_path(name)) as f:
                return json.load(f).get("fingerprint")
        except (OSError, ValueError):
            return None

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        batch["done"] = [not self.overwrite and self.finished(name) for name in batch["name"]]

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Optional[Sequence[int]],
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for i, name in enumerate(prediction["name"]):
            if not prediction["sampled"][i]:
                continue
            pictures = output_images(prediction["image"][i], prediction["keep_mask"][i], prediction["inpainted"][i])
            for kind, picture in pictures.items():
                save_png(to_uint8(picture), self.path(kind, name))
            meta = {
                "id": int(prediction["id"][i]),
                "mask_type": prediction["mask_type"][i],
                "seconds": prediction["seconds"],
                "network_calls": prediction["network_calls"],
            }
            if self.fingerprint is not None:
                meta["fingerprint"] = self.fingerprint
            save_json(meta, self.meta_path(name))
