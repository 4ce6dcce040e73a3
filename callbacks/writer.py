"""Writing predictions as the original RePaint does: one PNG per input and kind, named after the input.

Every file is written atomically (a temporary file renamed into place), so a killed run never leaves
a half-written PNG.  Inputs whose outputs all exist are marked ``done`` before their batch is sampled:
a run started again with the same command skips them (results are per-sample, so nothing else changes).
With ``fingerprint`` set (eval.py sets the run's, see ``repaint_pl.fingerprint``), an input is done only
if its meta file carries that fingerprint: pictures of two configurations never mix.

Crop-and-stitch items (``data.crop_to_mask``, ``repaint_pl.datamodules.folders.CropItems``: one item per
hole region, with ``picture``, ``crop_index``, ``crop_count``, ``crop_box`` …) are written as files in
``staging/`` (``<stem>.crop<k>.npz``: the model-size fill in float32, its box, id, seconds, network calls,
fingerprint); when every crop of a picture is there, whichever process wrote the last one stitches them
into the full-resolution picture (``repaint_pl.crops.stitch``) and writes ``inpainted/``, ``gt/``,
``gt_masked/``, ``gt_keep_mask/`` at full resolution and ``meta/<stem>.json`` (network calls and seconds
summed over the crops).  A crop already staged under this fingerprint is done, so a killed run resumes
crop by crop; at the end of a run every process stitches what is complete among its pictures, and the
staged files of finished pictures are removed.  Crops of one picture may be sampled on different processes.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from repaint_pl.datamodules.folders import crop_name
from repaint_pl.datamodules.images import keep_from_levels, read_image, read_mask_levels
from torch import Tensor

from repaint_pl.crops import Box, stitch
from repaint_pl.files import atomic_write

KINDS = ("inpainted", "gt", "gt_masked", "gt_keep_mask")
STAGING = "staging"  # crop-and-stitch: the crops' fills until their picture is stitched
CROP_FIELDS = ("picture", "crop_index", "crop_count", "crop_box", "source", "mask_source", "mask_invert",
               "mask_threshold", "id", "mask_type")  # fmt: skip


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


def full_outputs(image: np.ndarray, keep: np.ndarray, inpainted: np.ndarray) -> dict[str, np.ndarray]:
    """The four full-resolution pictures of a stitched input (uint8 ``[H, W, C]``; ``keep`` bool ``[H, W]``):
    ``gt`` the input's bytes, ``gt_masked`` with the hole black, ``gt_keep_mask`` 255 = known."""
    image, inpainted = (a[..., None] if a.ndim == 2 else a for a in (image, inpainted))
    known = keep[..., None]
    mask = np.broadcast_to(np.where(known, 255, 0).astype(np.uint8), image.shape)
    return {"inpainted": inpainted, "gt": image, "gt_masked": np.where(known, image, 0).astype(np.uint8),
            "gt_keep_mask": np.ascontiguousarray(mask)}  # fmt: skip


def crop_info(batch: dict[str, Any], i: int) -> dict[str, Any]:
    """Item ``i`` of a batch of crop items: its ``CROP_FIELDS`` as plain Python values."""
    value = {k: batch[k][i] for k in CROP_FIELDS}
    return {k: v.tolist() if isinstance(v, Tensor) else v for k, v in value.items()}


def read_npz(path: str) -> Optional[dict[str, Any]]:
    """A staged crop (``np.load`` of an ``.npz``) as a dict, or None if missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None


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
        self._pictures: dict[str, dict[str, Any]] = {}  # crop-and-stitch pictures whose crop 0 this process saw
        self._crops_finished = False

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

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pictures, self._crops_finished = {}, False

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        batch["done"] = [not self.overwrite and self._done(batch, i) for i in range(len(batch["name"]))]

    def _done(self, batch: dict[str, Any], i: int) -> bool:
        if "picture" not in batch or int(batch["crop_count"][i]) == 0:
            return self.finished(batch["name"][i])
        info = crop_info(batch, i)
        staged = self.staged(info["picture"], info["crop_index"], info["crop_box"])
        return self.finished(info["picture"]) or staged is not None

    # ------------------------------------------------------------------ crop-and-stitch

    def staging_path(self, picture: str, index: int) -> str:
        return os.path.join(self.out_dir, STAGING, os.path.splitext(crop_name(picture, index))[0] + ".npz")

    def staged(self, picture: str, index: int, box: Sequence[int]) -> Optional[dict[str, Any]]:
        """Crop ``index`` of ``picture`` as staged (its ``read_npz`` dict) if it is there with this box and
        this run's fingerprint, else None."""
        crop = read_npz(self.staging_path(picture, index))
        if crop is None or crop["box"].tolist() != list(box):
            return None
        return crop if self.fingerprint is None or str(crop["fingerprint"]) == self.fingerprint else None

    def _stage(self, prediction: dict[str, Any], i: int, info: dict[str, Any]) -> None:
        arrays = {
            "inpainted": prediction["inpainted"][i].float().cpu().numpy(),
            "box": np.array(info["crop_box"]),
            "id": np.int64(info["id"]),
            "seconds": np.float64(prediction["seconds"]),
            "network_calls": np.int64(prediction["network_calls"]),
            "fingerprint": np.str_(self.fingerprint or ""),
        }
        atomic_write(self.staging_path(info["picture"], info["crop_index"]), lambda f: np.savez(f, **arrays))

    def _write_crop(self, prediction: dict[str, Any], i: int) -> None:
        info = crop_info(prediction, i)
        if info["crop_count"] == 0 or prediction.get("error", [""] * (i + 1))[i]:
            return
        if info["crop_index"] == 0:
            self._pictures[info["picture"]] = info
        if prediction["sampled"][i]:
            self._stage(prediction, i, info)
        if prediction["sampled"][i] or not self.finished(info["picture"]):
            self.stitch_if_complete(info)

    def stitch_if_complete(self, info: dict[str, Any]) -> bool:
        """Stitch ``info``'s picture (a ``crop_info``) if all its crops are staged; returns whether it did."""
        crops = [read_npz(self.staging_path(info["picture"], k)) for k in range(info["crop_count"])]
        if any(c is None for c in crops):
            return False
        if self.fingerprint is not None and any(str(c["fingerprint"]) != self.fingerprint for c in crops):
            return False
        self._stitch(info, crops)
        return True

    def _stitch(self, info: dict[str, Any], crops: list[dict[str, Any]]) -> None:
        results = torch.stack([torch.from_numpy(c["inpainted"]) for c in crops])
        image = np.asarray(read_image(info["source"], "RGB" if results.shape[1] == 3 else "L"))
        keep = keep_from_levels(read_mask_levels(info["mask_source"]), info["mask_invert"], info["mask_threshold"])
        boxes = [Box.from_list(c["box"].tolist()) for c in crops]
        full = stitch(image, keep, results, boxes)
        for kind, picture in full_outputs(image, keep, full).items():
            save_png(picture, self.path(kind, info["picture"]))
        meta = {
            "id": int(crops[0]["id"]),
            "mask_type": info["mask_type"],
            "seconds": float(sum(float(c["seconds"]) for c in crops)),
            "network_calls": int(sum(int(c["network_calls"]) for c in crops)),
            "crops": [{"id": int(c["id"]), "box": b.as_list()[:4]} for c, b in zip(crops, boxes)],
            "size": list(image.shape[:2]),
        }
        if self.fingerprint is not None:
            meta["fingerprint"] = self.fingerprint
        save_json(meta, self.meta_path(info["picture"]))

    def finish_crops(self, trainer: L.Trainer) -> None:
        """End of a crop-and-stitch run (once; every process calls it): after all processes have written,
        stitch what is complete among this process's pictures, then remove the finished pictures' staged crops."""
        if self._crops_finished or getattr(trainer.datamodule, "crop_to_mask", None) is None:
            return
        self._crops_finished = True
        trainer.strategy.barrier()
        for info in self._pictures.values():
            if not self.finished(info["picture"]):
                self.stitch_if_complete(info)
        trainer.strategy.barrier()
        for info in self._pictures.values():
            if self.finished(info["picture"]):
                self._unstage(info)

    def _unstage(self, info: dict[str, Any]) -> None:
        """Remove a stitched picture's staged crops, then the folders they leave empty. Every process unstages
        its own pictures at the same time, so a file or folder another process already removed is not an error,
        and a folder that still holds another picture's crops stays (its last process removes it)."""
        staging = os.path.join(self.out_dir, STAGING)
        for k in range(info["crop_count"]):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.staging_path(info["picture"], k))
        folder = os.path.dirname(self.staging_path(info["picture"], 0))
        while os.path.commonpath([folder, staging]) == staging:
            try:
                os.rmdir(folder)
            except OSError:  # not empty yet, or removed by another process
                break
            folder = os.path.dirname(folder)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish_crops(trainer)

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
            if "picture" in prediction:
                self._write_crop(prediction, i)
                continue
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
