"""``StudioDataModule``: one picture and its keep mask from the studio, as eval.py's data (to reproduce a result)."""

from __future__ import annotations

import os
from typing import Any, Optional

import lightning as L
from torch.utils.data import DataLoader, Dataset

from repaint_pl.datamodules.images import load_image, load_mask


class StudioItem(Dataset):
    """One item: ``image`` ``[C, S, S]`` in [-1, 1], ``keep_mask`` ``[1, S, S]`` (1 = known), ``id``, ``name``."""

    def __init__(
        self,
        image: str,
        keep_mask: str,
        sample_id: int,
        image_size: int,
        channels: int,
        label: Optional[int] = None,
        prompt: Optional[str] = None,
    ):
        self.image, self.keep_mask, self.sample_id = image, keep_mask, sample_id
        self.image_size, self.channels, self.label, self.prompt = image_size, channels, label, prompt

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        for path in (self.image, self.keep_mask):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: no such file (run eval.py in the folder of the studio's download)")
        item: dict[str, Any] = {
            "image": load_image(self.image, self.image_size, self.channels),
            "keep_mask": load_mask(self.keep_mask, self.image_size)[:1],
            "id": self.sample_id,
            "name": os.path.splitext(os.path.basename(self.image))[0] + ".png",
            "mask_type": "studio",
            "error": "",
        }
        if self.label is not None:
            item["y"] = int(self.label)
        if self.prompt is not None:
            item["prompt"] = self.prompt
        return item


class StudioDataModule(L.LightningDataModule):
    """A studio result's input for eval.py.

    Args:
        image: the picture (PNG at the model's size).
        keep_mask: its keep mask (PNG, 255 = known).
        sample_id: the id that seeds the sample's generator (the studio's variant number).
        image_size: the model's size; channels: 1 (grey) or 3.
        label: class label for class-conditional models; prompt: text for text-conditioned ones.
    """

    def __init__(
        self,
        image: str,
        keep_mask: str,
        sample_id: int = 0,
        image_size: int = 64,
        channels: int = 3,
        label: Optional[int] = None,
        prompt: Optional[str] = None,
    ):
        super().__init__()
        self.item = StudioItem(image, keep_mask, sample_id, image_size, channels, label, prompt)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.item, batch_size=1, shuffle=False)
