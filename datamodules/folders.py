"""Images and masks from folders (the original RePaint layout: ``gt_path`` + ``mask_path``)."""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from .images import ImageFileError, is_binary, list_images, load_image, load_mask


def output_name(path: str) -> str:
    """File name of every output written for input ``path``: its stem with ``.png``."""
    return os.path.splitext(os.path.basename(path))[0] + ".png"


def check_unique_names(paths: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for p in paths:
        other = seen.setdefault(output_name(p), p)
        if other != p:
            raise ImageFileError(f"{p}: same output name {output_name(p)!r} as {other}; rename one of them")


class PairedFolderDataset(Dataset):
    """Image ``i`` of the sorted images with mask ``i`` of the sorted masks (the original's pairing).

    Items: ``image`` [3, S, S] in [-1, 1], ``keep_mask`` [3, S, S] in [0, 1] (1 = known), ``id``
    (offset + index: seeds the sample's generator), ``name`` (output file name).
    """

    def __init__(
        self, image_paths: Sequence[str], mask_paths: Sequence[str], image_size: int, ids: Sequence[int],
        mask_threshold: Optional[float] = 0.5, invert_masks: bool = False,
    ):  # fmt: skip
        self.image_paths, self.mask_paths, self.ids = list(image_paths), list(mask_paths), list(ids)
        self.image_size, self.mask_threshold, self.invert_masks = image_size, mask_threshold, invert_masks
        self._warned = False

    def __len__(self) -> int:
        return len(self.image_paths)

    def _mask(self, path: str) -> torch.Tensor:
        mask = load_mask(path, self.image_size, self.invert_masks)
        if self.mask_threshold is None or is_binary(mask):
            return mask
        if not self._warned:
            rank_zero_warn(f"{path}: mask is not binary; binarising masks at {self.mask_threshold} (data.mask_threshold)")
            self._warned = True
        return (mask >= self.mask_threshold).float()

    def __getitem__(self, i: int) -> dict[str, Any]:
        image_path = self.image_paths[i]
        return {
            "image": load_image(image_path, self.image_size),
            "keep_mask": self._mask(self.mask_paths[i]),
            "id": self.ids[i],
            "name": output_name(image_path),
        }


class InpaintFolderDataModule(L.LightningDataModule):
    """Inputs as the original RePaint reads them: every image below ``gt_path`` paired, in sorted
    order, with every mask below ``mask_path`` (255 = known).

    Args:
        gt_path, mask_path: folders (searched recursively).
        image_size: the model's size; images are resized and centre-cropped like guided-diffusion.
        batch_size, num_workers: DataLoader settings.
        max_len: use at most this many pairs (after ``offset``).
        offset: skip the first ``offset`` pairs (ids still count from the first file).
        mask_threshold: binarise non-binary masks at this value (None: keep soft masks, as the original).
        invert_masks: masks use LaMa's convention (255 = fill).
    """

    def __init__(
        self, gt_path: str, mask_path: str, image_size: int = 256, batch_size: int = 1, num_workers: int = 0,
        max_len: Optional[int] = None, offset: int = 0, mask_threshold: Optional[float] = 0.5,
        invert_masks: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.gt_path, self.mask_path, self.image_size = gt_path, mask_path, image_size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.max_len, self.offset = max_len, offset
        self.mask_threshold, self.invert_masks = mask_threshold, invert_masks
        self.dataset: Optional[PairedFolderDataset] = None

    def setup(self, stage: str = "predict") -> None:
        images, masks = list_images(self.gt_path), list_images(self.mask_path)
        if len(images) != len(masks):
            raise ImageFileError(
                f"{self.gt_path}: {len(images)} images but {self.mask_path} has {len(masks)} masks; "
                "the original layout pairs them one to one in sorted order"
            )
        end = None if self.max_len is None else self.offset + self.max_len
        images, masks = images[self.offset : end], masks[self.offset : end]
        check_unique_names(images)
        ids = range(self.offset, self.offset + len(images))
        self.dataset = PairedFolderDataset(images, masks, self.image_size, ids, self.mask_threshold, self.invert_masks)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
