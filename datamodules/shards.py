"""Inputs from webdataset tar shards, split by node and by DataLoader worker (each sample seen once).

A sample is an image (``jpg``, ``jpeg``, ``png``, ``webp``) with, optionally, a mask file (``mask.png``,
255 = known), a mask type (``mask.txt``: e.g. ``thick``) and a class (``cls``).  Samples without a
mask are inpainted under each of the module's ``mask_types``.  Sample ids (which seed the per-sample
generators) are derived from the sample keys, so results do not depend on sharding or device count.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Optional, Sequence

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from repaint_pl.masks import keep_mask

from .folders import resolve_channels, sample_id
from .images import ImageFileError, center_crop_resize, read_image, to_chw

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


def key_index(key: str) -> int:
    """A stable 48-bit number for a sample key."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:12], 16)


def decode(data: bytes, source: str, size: int, mode: str) -> torch.Tensor:
    """Image bytes as float ``[C, size, size]`` in [0, 255] after guided-diffusion's resize and crop
    (decoded by the guarded ``read_image``: size limit, bit depth, EXIF orientation)."""
    return to_chw(center_crop_resize(read_image(data, mode, name=source), size).astype("float32"))


class ShardItems(IterableDataset):
    """Items like ``InpaintItems``' from the samples of ``urls``."""

    def __init__(
        self,
        urls: str | Sequence[str],
        image_size: int,
        mask_types: Sequence[str],
        mask_seed: int = 0,
        invert_masks: bool = False,
        mask_threshold: Optional[float] = 0.5,
        channels: int = 3,
    ):
        self.urls = urls if isinstance(urls, str) else list(urls)
        self.image_size, self.mask_types, self.mask_seed = image_size, list(mask_types), mask_seed
        self.invert_masks, self.mask_threshold, self.channels = invert_masks, mask_threshold, channels

    def _samples(self) -> Iterator[dict[str, Any]]:
        return iter(
            wds.WebDataset(
                self.urls,
                nodesplitter=wds.split_by_node,
                workersplitter=wds.split_by_worker,
                shardshuffle=False,
                empty_check=False,
            )
        )

    def _image(self, sample: dict[str, Any], source: str) -> torch.Tensor:
        key = next((k for k in IMAGE_KEYS if k in sample), None)
        if key is None:
            raise ImageFileError(f"{source}: no image ({'/'.join(IMAGE_KEYS)}) in this sample")
        return decode(sample[key], source, self.image_size, "RGB" if self.channels == 3 else "L") / 127.5 - 1

    def _file_mask(self, data: bytes, source: str) -> torch.Tensor:
        mask = decode(data, source + ".mask.png", self.image_size, "L") / 255.0
        mask = 1 - mask if self.invert_masks else mask
        return (mask >= self.mask_threshold).float() if self.mask_threshold is not None else mask

    def _items(self, sample: dict[str, Any]) -> Iterator[dict[str, Any]]:
        key, source = sample["__key__"], f"{sample.get('__url__', '?')}:{sample['__key__']}"
        index = key_index(key)
        kinds = [sample["mask.txt"].decode().strip()] if "mask.txt" in sample else self.mask_types
        if "mask.png" in sample:
            kinds = ["mask"]
        for kind in kinds:
            item = {
                "id": sample_id(index, None if kind == "mask" else kind),
                "mask_type": kind,
                "error": "",
                "name": f"{key}.png" if "mask.png" in sample else f"{kind}/{key}.png",
            }
            if "cls" in sample:
                item["y"] = int(sample["cls"].decode().strip())
            text = sample.get("prompt", sample.get("txt"))
            if text is not None:  # a per-image prompt for text-conditioned models
                item["prompt"] = text.decode("utf-8").strip() if isinstance(text, bytes) else str(text)
            try:
                item["image"] = self._image(sample, source)
                item["keep_mask"] = (
                    self._file_mask(sample["mask.png"], source)
                    if "mask.png" in sample
                    else keep_mask(kind, self.image_size, self.mask_seed, index)
                )
            except (ImageFileError, ValueError) as e:
                item["error"] = str(e) if isinstance(e, ImageFileError) else f"{source}: {e}"
                item["image"] = torch.zeros(self.channels, self.image_size, self.image_size)
                item["keep_mask"] = torch.ones(1, self.image_size, self.image_size)
            yield item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for sample in self._samples():
            yield from self._items(sample)


class ShardDataModule(L.LightningDataModule):
    """Inputs from webdataset shards (e.g. ``data/val-{000000..000063}.tar``), split by node and worker.

    Args:
        urls: shard paths or URLs (brace patterns allowed), or a list of them.
        image_size: the model's size (guided-diffusion resize and centre crop).
        mask_types: mask types for samples without ``mask.png`` / ``mask.txt``.
        mask_seed, invert_masks, mask_threshold, channels: as for folders (channels None: the model's).
        batch_size, num_workers: DataLoader settings (use at least as many shards as nodes × workers).
    """

    def __init__(
        self,
        urls: str | list[str],
        image_size: int = 256,
        mask_types: Sequence[str] = ("thick",),
        mask_seed: int = 0,
        invert_masks: bool = False,
        mask_threshold: Optional[float] = 0.5,
        channels: Optional[int] = None,
        batch_size: int = 1,
        num_workers: int = 0,
    ):
        super().__init__()
        self.items = ShardItems(urls, image_size, mask_types, mask_seed, invert_masks, mask_threshold, channels or 3)
        self.batch_size, self.num_workers, self.channels = batch_size, num_workers, channels

    def setup(self, stage: str = "predict") -> None:
        self.items.channels = resolve_channels(self.channels, self.trainer)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=self.batch_size, num_workers=self.num_workers)
