"""Textures: random crops for training a DDPM, held-out crops with masks for evaluating RePaint.

The default data are the textures shipped with scikit-image (brick, grass, gravel: 512² grey), so
nothing is downloaded.  A folder of texture images (e.g. DTD) works the same way.  The right-hand
``held_out`` fraction of every texture never appears in training; evaluation crops come from there.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Sequence

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from repaint_pl.masks import PAPER_MASK_TYPES
from repaint_pl.noise import sample_seed

from .folders import InpaintItems, resolve_channels, sample_id
from .images import ImageFileError, list_images, read_image

SKIMAGE_TEXTURES = ("brick", "grass", "gravel")


def skimage_texture(name: str) -> Image.Image:
    from skimage import data

    if name not in SKIMAGE_TEXTURES:
        raise ImageFileError(f"{name}: not a scikit-image texture (known: {', '.join(SKIMAGE_TEXTURES)})")
    return Image.fromarray(getattr(data, name)())


def texture_tensor(image: Image.Image, scale: float, channels: int) -> torch.Tensor:
    """``[channels, H, W]`` in [-1, 1] after resizing by ``scale`` (area-averaging when shrinking)."""
    image = image.convert("L" if channels == 1 else "RGB")
    if scale != 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, resample=Image.BOX if scale < 1 else Image.BICUBIC)
    arr = np.asarray(image, dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())


def split_held_out(texture: torch.Tensor, held_out: float, crop_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training part, held-out part): the held-out part is the right-hand ``held_out`` fraction."""
    width = texture.shape[-1]
    cut = width - max(crop_size, round(width * held_out)) if held_out > 0 else width
    if cut < crop_size or texture.shape[-2] < crop_size:
        raise ValueError(
            f"texture of {tuple(texture.shape[-2:])} px too small for {crop_size}-px crops with held_out={held_out}"
        )
    return texture[..., :cut], texture[..., cut:]


class RandomCrops(Dataset):
    """Random crops (with random flips / 90° rotations) from a list of textures; ``length`` per epoch.

    Item ``k`` is a function of ``(seed, k)`` only (its own generator), for any integer ``k``:
    ``CropStream`` hands every process and epoch its own range of ``k``.
    """

    def __init__(
        self,
        textures: Sequence[torch.Tensor],
        crop_size: int,
        length: int,
        hflip: bool = True,
        vflip: bool = True,
        rot90: bool = False,
        seed: int = 0,
    ):
        self.textures, self.crop_size, self.length = list(textures), crop_size, length
        self.hflip, self.vflip, self.rot90, self.seed = hflip, vflip, rot90, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(sample_seed(self.seed, int(k)))

        def draw(high: int) -> int:
            return int(torch.randint(high, (), generator=g))

        t = self.textures[draw(len(self.textures))]
        y, x = draw(t.shape[-2] - self.crop_size + 1), draw(t.shape[-1] - self.crop_size + 1)
        crop = t[..., y : y + self.crop_size, x : x + self.crop_size]
        flips = (draw(2), draw(2), draw(4))  # always drawn: the crop of k does not depend on the options
        if self.hflip and flips[0]:
            crop = crop.flip(-1)
        if self.vflip and flips[1]:
            crop = crop.flip(-2)
        if self.rot90:
            crop = torch.rot90(crop, flips[2], dims=(-2, -1))
        return {"image": crop.contiguous()}


class CropStream(DistributedSampler):
    """Indices for ``RandomCrops``: process ``rank`` of ``num_replicas`` draws, in epoch ``e``, the items
    ``(e·num_replicas + rank)·n + j`` for j < n (n = length / num_replicas): other crops on every process and in
    every epoch, the same ones again for the same (seed, rank, epoch).  A ``DistributedSampler``, so that Lightning
    keeps it under DDP and sets its epoch."""

    def __init__(self, dataset: RandomCrops, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=True)

    def __iter__(self) -> Iterator[int]:
        first = (self.epoch * self.num_replicas + self.rank) * self.num_samples
        return iter(range(first, first + self.num_samples))


def held_out_crops(part: torch.Tensor, crop_size: int, n: int) -> list[torch.Tensor]:
    """``n`` crops spread evenly from top to bottom along the held-out strip (left-aligned)."""
    tops = np.linspace(0, part.shape[-2] - crop_size, n).round().astype(int) if n > 1 else [0]
    return [part[..., y : y + crop_size, :crop_size].contiguous() for y in tops]


class TextureDataModule(L.LightningDataModule):
    """Texture crops: ``train_dataloader`` for train.py, ``predict_dataloader`` (held-out crops × mask
    types) for eval.py.

    Args:
        root: folder of texture images; None = scikit-image's textures named in ``textures``.
        textures: scikit-image texture names (used when ``root`` is None).
        scale: resize factor applied to every texture first (0.5: 512² -> 256²).
        crop_size: side of the training (and validation) crops in pixels.
        eval_size: side of the evaluation crops (default: crop_size); a convolutional texture
            model trained on small crops can fill larger ones.
        channels: 1 (grey) or 3 (colour); None: the model's (grey without a model).
        hflip, vflip, rot90: training augmentations.
        held_out: right-hand fraction of every texture kept out of training, for evaluation.
        epoch_length: random crops per training epoch (sampling is unlimited).
        eval_crops: held-out crops per texture for evaluation.
        mask_types: mask types of the evaluation (``repaint_pl.masks``).
        mask_seed: seeds the generated masks.
        seed: seeds the training crops (None: the run's ``seed_everything``); crops also differ per process
            and epoch (``CropStream``).
        batch_size, num_workers: DataLoader settings (training and prediction).
    """

    def __init__(
        self,
        root: Optional[str] = None,
        textures: Sequence[str] = SKIMAGE_TEXTURES,
        scale: float = 0.5,
        crop_size: int = 64,
        eval_size: Optional[int] = None,
        channels: Optional[int] = None,
        hflip: bool = True,
        vflip: bool = True,
        rot90: bool = False,
        held_out: float = 0.25,
        epoch_length: int = 4096,
        eval_crops: int = 2,
        mask_types: Sequence[str] = PAPER_MASK_TYPES,
        mask_seed: int = 0,
        seed: Optional[int] = None,
        batch_size: int = 16,
        num_workers: int = 0,
    ):
        super().__init__()
        if channels not in (None, 1, 3):
            raise ValueError(f"data.channels: expected 1 or 3, got {channels}")
        self.root, self.texture_names, self.scale, self.crop_size = root, list(textures), scale, crop_size
        self.eval_size = eval_size or crop_size
        self.channels, self.hflip, self.vflip, self.rot90 = channels, hflip, vflip, rot90
        self.held_out, self.epoch_length, self.eval_crops = held_out, epoch_length, eval_crops
        self.mask_types, self.mask_seed, self.seed = list(mask_types), mask_seed, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.parts: Optional[list[tuple[str, torch.Tensor, torch.Tensor]]] = None
        self.image_channels = channels or 1  # resolved against the model in setup

    def _sources(self) -> list[tuple[str, Image.Image]]:
        if self.root is None:
            return [(name, skimage_texture(name)) for name in self.texture_names]
        return [
            (os.path.splitext(os.path.relpath(p, self.root))[0].replace(os.sep, "_"), read_image(p))
            for p in list_images(self.root)
        ]

    def input_list(self) -> Optional[list[str]]:
        """The texture files whose positions are the sample ids (a ``root`` folder), or None for the
        configured scikit-image textures (their list is part of the configuration)."""
        if self.root is None:
            return None
        return [os.path.relpath(p, self.root) if os.path.isdir(self.root) else p for p in list_images(self.root)]

    def setup(self, stage: str = "fit") -> None:
        if self.parts is None:
            self.image_channels = resolve_channels(self.channels, self.trainer, default=1)
            self.parts = [
                (
                    name,
                    *split_held_out(
                        texture_tensor(img, self.scale, self.image_channels),
                        self.held_out,
                        max(self.crop_size, self.eval_size),
                    ),
                )
                for name, img in self._sources()
            ]

    def train_dataloader(self) -> DataLoader:
        crops = RandomCrops(
            [train for _, train, _ in self.parts],
            self.crop_size,
            self.epoch_length,
            self.hflip,
            self.vflip,
            self.rot90,
            seed=self.run_seed(),
        )
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return DataLoader(
            crops,
            batch_size=self.batch_size,
            sampler=CropStream(crops, world, rank),
            num_workers=self.num_workers,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )

    def run_seed(self) -> int:
        """Seed of the training crops: ``seed``, else the run's ``seed_everything`` (0 when none)."""
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def val_dataloader(self) -> DataLoader:
        """Held-out crops of the training size (for the validation loss and previews during training)."""
        crops = [{"image": crop} for _, crop in self.eval_images(self.crop_size)]
        return DataLoader(crops, batch_size=self.batch_size, shuffle=False, num_workers=0)

    def eval_images(self, size: Optional[int] = None) -> list[tuple[str, torch.Tensor]]:
        """The held-out crops (``eval_size`` unless given), named ``<texture>_<k>``."""
        size = size or self.eval_size
        return [
            (f"{name}_{k}", crop)
            for name, _, held in self.parts
            for k, crop in enumerate(held_out_crops(held, size, self.eval_crops))
        ]

    def predict_dataloader(self) -> DataLoader:
        crops, kinds = self.eval_images(), self.mask_types
        pairs = [(i, k) for i in range(len(crops)) for k in range(len(kinds))]
        dataset = InpaintItems(
            [(crops[i][0], crops[i][1], kinds[k]) for i, k in pairs],
            [sample_id(i, kinds[k]) for i, k in pairs],
            self.eval_size,
            generated=True,
            mask_seed=self.mask_seed,
            channels=self.image_channels,
            image_index=[i for i, _ in pairs],
        )
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
