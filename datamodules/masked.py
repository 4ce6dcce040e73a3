"""Images crossed with generated mask types: every image is inpainted under every mask type."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset

from repaint_pl.masks import keep_mask

ImageSource = Callable[[], torch.Tensor]  # returns [C, S, S] in [-1, 1]


class GeneratedMaskDataset(Dataset):
    """Item ``i`` is image ``i // len(mask_types)`` under mask type ``i % len(mask_types)``.

    Items: ``image``, ``keep_mask`` ``[1, S, S]`` (deterministic per (mask_seed, image index)),
    ``id`` (unique per image and mask type: seeds the sample's generator), ``name``
    (``<mask type>/<stem>.png``: every mask type gets its own sub-folder), ``mask_type``, and
    ``y`` when labels are given.  ``first_index`` numbers the images when this dataset is a
    slice of a larger one, so ids and masks do not depend on the slicing.
    """

    def __init__(
        self, images: Sequence[tuple[str, ImageSource]], image_size: int, mask_types: Sequence[str],
        mask_seed: int = 0, first_index: int = 0, labels: Optional[Sequence[int]] = None,
    ):  # fmt: skip
        if not mask_types:
            raise ValueError("mask_types: give at least one mask type")
        for kind in mask_types:
            keep_mask(kind, 8)  # an unknown type fails here, naming itself
        self.images, self.image_size, self.mask_types = list(images), image_size, list(mask_types)
        self.mask_seed, self.first_index, self.labels = mask_seed, first_index, labels

    def __len__(self) -> int:
        return len(self.images) * len(self.mask_types)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, kind = divmod(i, len(self.mask_types))
        stem, load = self.images[index]
        mask_type, image_index = self.mask_types[kind], self.first_index + index
        item = {
            "image": load(),
            "keep_mask": keep_mask(mask_type, self.image_size, self.mask_seed, image_index),
            "id": image_index * len(self.mask_types) + kind,
            "name": f"{mask_type}/{stem}.png",
            "mask_type": mask_type,
        }
        if self.labels is not None:
            item["y"] = int(self.labels[index])
        return item
