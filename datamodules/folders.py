"""Images (and masks) from folders of any layout.

``ImageFolderDataModule``: every image below ``image_path`` with masks from ``mask_path`` (paired by
name, or in sorted order as the original RePaint does) or generated for each of ``mask_types``;
optional class labels from class folders (ImageNet val layout) or a label file.
``InpaintFolderDataModule``: the original RePaint layout and argument names (gts + gt_keep_masks).

A bad file never stops a run: its item carries ``error`` (one line naming the file) and is skipped
by the sampler, reported, and recorded in the summary.

Sample ids (which seed each sample's noise and generated mask) follow the input's *name* (its path
below the folder, ``name_index``) for ``ImageFolderDataModule``: adding or removing images leaves the
other pictures as they were.  In the original layout (``InpaintFolderDataModule``, or any mask folder
paired in sorted order) the id is the image's index in the full sorted list, as the original seeds
them; there ``input_list()`` gives the list the ids depend on, and eval.py refuses to add to an output
folder made from another list (``check_input_list``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from typing import Any, Literal, Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from repaint_pl.crops import Box, crop, hole_boxes
from repaint_pl.masks import keep_mask

from .images import (
    ImageFileError,
    hole_lost_fraction,
    image_size_of,
    is_binary,
    keep_from_levels,
    list_images,
    load_image,
    mask_tensor,
    read_image,
    read_mask_levels,
)
from .prompts import find_sidecar, read_prompts

log = logging.getLogger(__name__)

MASK_CODES = 1024  # sample id = image index (or name index) · MASK_CODES + code of the mask type name
INPUT_LIST_FILE = "inputs.json"  # beside the outputs of a run whose ids are list positions
MaskConvention = Literal["keep", "fill"]  # keep: 255 = known (RePaint's); fill: white = to fill (diffusers, LaMa)
INVERTED_FILL = 0.95  # a mask file that asks to fill more than this looks inverted (a one-line warning)
LOST_WARN = 0.01  # warn when the centre crop loses more than this fraction of a mask's hole


def mask_code(mask_type: str) -> int:
    """A fixed number in [1, MASK_CODES) for a mask type name (a hash of the name, not its position in a list)."""
    return 1 + int(hashlib.sha1(mask_type.encode()).hexdigest(), 16) % (MASK_CODES - 1)


def sample_id(image_index: int, mask_type: Optional[str] = None) -> int:
    """The id that seeds a sample's generator: the image's index for mask files (``mask_type`` None),
    else ``image_index · MASK_CODES + mask_code(mask_type)``, so that adding or removing a mask type
    leaves the ids (and pictures) of the other types unchanged."""
    return int(image_index) if mask_type is None else int(image_index) * MASK_CODES + mask_code(mask_type)


def name_index(relative_path: str) -> int:
    """A stable 48-bit number for an input's path below its folder (``/`` separators): its "index" when
    ids follow names, so that adding an input changes no other input's id."""
    key = relative_path.replace(os.sep, "/")
    return int(hashlib.sha1(key.encode()).hexdigest()[:12], 16)


def check_input_list(out_dir: str, inputs: Sequence[str], overwrite: bool = False, write: bool = True) -> None:
    """Refuse (one line) to add to ``out_dir`` the pictures of another input list when sample ids are
    positions in that list (the original layout): the old pictures would keep ids that a fresh run
    gives other images.  Records ``inputs`` in ``out_dir/inputs.json`` (if ``write``)."""
    path = os.path.join(out_dir, INPUT_LIST_FILE)
    inputs = list(inputs)
    if not overwrite and os.path.isfile(path):
        try:
            with open(path) as f:
                old = list(json.load(f)["inputs"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: unreadable; remove it or pass --writer.overwrite true") from None
        if old != inputs:
            added, removed = sorted(set(inputs) - set(old)), sorted(set(old) - set(inputs))
            change = "; ".join(
                f"{label} {len(names)} ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
                for label, names in (("added", added), ("removed", removed))
                if names
            ) or "same files in another order"
            raise ValueError(
                f"{out_dir}: made from another input list ({change}); sample ids here are positions in the "
                f"sorted list, so old and new pictures would not match: use another --writer.out_dir, or "
                f"--writer.overwrite true to sample everything again"
            )
    if write:
        from repaint_pl.files import write_json

        write_json({"ids": "position in this list", "inputs": inputs}, path)


def mask_inverted(mask_convention: str, invert_masks: bool = False) -> bool:
    """Whether mask files are read inverted: ``mask_convention`` ``fill`` (white = to fill), or the old
    ``invert_masks`` alias set; ``keep`` (255 = known) is RePaint's convention."""
    if mask_convention not in ("keep", "fill"):
        raise ValueError(
            f"data.mask_convention: expected keep (255 = known) or fill (white = to fill), got {mask_convention!r}"
        )
    return mask_convention == "fill" or bool(invert_masks)


def model_channels(trainer: Optional[L.Trainer]) -> Optional[int]:
    """Channels of the images the trainer's model takes (``module_channels``), or None."""
    return module_channels(getattr(trainer, "lightning_module", None) if trainer is not None else None)


def module_channels(module: Any) -> Optional[int]:
    """Channels of the images a RePaintModule takes (the VAE's for a latent model, else its UNet's), or None."""
    vae = getattr(getattr(module, "space", None), "vae", None)
    if vae is not None:
        return int(vae.config.in_channels)
    for owner in (getattr(module, "net", None), getattr(module, "denoiser", None)):
        if getattr(owner, "in_channels", None):
            return int(owner.in_channels)
    return None


DEFAULT_IMAGE_SIZE = 256  # when neither the data config nor the model says (guided-diffusion's released size)


def resolve_image_size(given: Optional[int], module: Any) -> int:
    """The pictures' side: ``given``, else the size the model was made for (``RePaintModule.picture_size``),
    else 256."""
    return int(given or getattr(module, "picture_size", None) or DEFAULT_IMAGE_SIZE)


def resolve_channels(given: Optional[int], trainer: Optional[L.Trainer], default: int = 3) -> int:
    """The data's channels: ``given`` (1 or 3, and the model's if a model is attached), else the model's, else
    ``default``.  A mismatch is a one-line error rather than a convolution's traceback."""
    expected = model_channels(trainer)
    if given is None:
        return expected or default
    if given not in (1, 3):
        raise ValueError(f"data.channels: expected 1 (grey) or 3 (RGB), got {given}")
    if expected is not None and given != expected:
        raise ValueError(
            f"data.channels={given} but the model takes {expected}-channel images; "
            f"leave data.channels unset to follow the model"
        )
    return given


def output_stem(path: str, root: Optional[str] = None) -> str:
    """Stem of the output files for input ``path``: the file name, or its path below ``root`` (nested layouts)."""
    rel = os.path.relpath(path, root) if root and os.path.isdir(root) else os.path.basename(path)
    return os.path.splitext(rel)[0]


def check_unique(stems: Sequence[str], paths: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for stem, path in zip(stems, paths):
        other = seen.setdefault(stem, path)
        if other != path:
            raise ImageFileError(f"{path}: same output name {stem!r} as {other}; rename one of them")


def read_labels(path: str) -> dict[str, int]:
    """A label file: ``name label`` / ``name,label`` lines (name = file name, relative path or stem)."""
    if not os.path.isfile(path):
        raise ImageFileError(f"{path}: label file not found")
    labels = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="," if path.endswith(".csv") else " "), 1):
            row = [c for c in row if c.strip()]
            if not row or row[0].startswith("#"):
                continue
            try:
                labels[row[0].strip()] = int(row[1])
            except (IndexError, ValueError):
                raise ImageFileError(f"{path}:{n}: expected 'name label', got {' '.join(row)!r}") from None
    return labels


def folder_labels(paths: Sequence[str], root: str) -> list[int]:
    """Class of each image from its first folder below ``root``: sorted folder names -> 0, 1, …
    (ImageNet's wnid order), or the folder name itself when every folder name is an integer."""
    folders = [os.path.relpath(p, root).split(os.sep)[0] for p in paths]
    if any(f == os.path.basename(p) for f, p in zip(folders, paths)):
        raise ImageFileError(f"{root}: class_folders needs every image inside a class folder")
    if all(f.isdigit() for f in folders):
        return [int(f) for f in folders]
    index = {name: i for i, name in enumerate(sorted(set(folders)))}
    return [index[f] for f in folders]


def lookup_labels(paths: Sequence[str], root: str, table: dict[str, int], source: str) -> list[int]:
    out = []
    for p in paths:
        rel = os.path.relpath(p, root)
        for key in (rel, os.path.basename(p), os.path.splitext(rel)[0], os.path.splitext(os.path.basename(p))[0]):
            if key in table:
                out.append(table[key])
                break
        else:
            raise ImageFileError(f"{source}: no label for {rel}")
    return out


class InpaintItems(Dataset):
    """Inputs to inpaint, each a ``(stem, image, mask)``: the image a file path or a ``[C, S, S]``
    tensor in [-1, 1], the mask a file path or (``generated``) a mask type.

    Items: ``image`` ``[C, S, S]`` in [-1, 1], ``keep_mask`` (1 = known), ``id``, ``name``
    (``<stem>.png``, under ``<mask type>/`` for generated masks), ``mask_type``, ``error`` ("" when
    fine), and ``y`` with labels.  A file that cannot be read gives an item with ``error`` set.
    """

    def __init__(
        self,
        entries: Sequence[tuple[str, str, str]],
        ids: Sequence[int],
        image_size: int,
        generated: bool,
        mask_seed: int = 0,
        mask_threshold: Optional[float] = 0.5,
        invert_masks: bool = False,
        labels: Optional[Sequence[int]] = None,
        channels: int = 3,
        mask_name: str = "mask",
        check_mask_size: bool = True,
        image_index: Optional[Sequence[int]] = None,
        prompts: Optional[Sequence[str]] = None,
    ):
        self.prompts = list(prompts) if prompts is not None else None
        self.entries, self.ids, self.image_size, self.generated = list(entries), list(ids), image_size, generated
        self.mask_seed, self.mask_threshold, self.invert_masks = mask_seed, mask_threshold, invert_masks
        self.labels, self.channels, self.mask_name, self.check_mask_size = labels, channels, mask_name, check_mask_size
        self.image_index = list(image_index) if image_index is not None else list(range(len(self.entries)))
        self._warned = self._warned_inverted = False

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def threshold(self) -> float:
        """Where full-resolution masks are binarised: ``mask_threshold``, or 0.5 for soft masks."""
        return 0.5 if self.mask_threshold is None else float(self.mask_threshold)

    def _check_size(self, mask_path: str, image_path: str) -> None:
        if image_size_of(mask_path) != image_size_of(image_path):
            w, h = image_size_of(mask_path)
            W, H = image_size_of(image_path)
            raise ImageFileError(f"{mask_path}: mask is {w}x{h} but its image {image_path} is {W}x{H}")

    def full_keep(self, mask_path: str, levels: Optional[np.ndarray] = None) -> np.ndarray:
        """A mask file (or its ``levels``, already read) at full resolution as bool ``[H, W]`` (True = known),
        binarised at ``mask_threshold`` (0.5 when None); a mask that asks to fill more than ``INVERTED_FILL``
        of the picture is warned about (once)."""
        levels = read_mask_levels(mask_path) if levels is None else levels
        keep = keep_from_levels(levels, self.invert_masks, self.threshold)
        self._warn_inverted(keep, mask_path)
        return keep

    def _warn_inverted(self, keep: np.ndarray, mask_path: str) -> None:
        fill = 1.0 - float(keep.mean())
        if fill > INVERTED_FILL and not self._warned_inverted:
            other = "keep" if self.invert_masks else "fill"
            log.warning(
                "%s: the mask asks to fill %.0f%% of the picture; if white marks the hole, pass "
                "--mask_convention %s (data.mask_convention)", mask_path, 100 * fill, other,
            )  # fmt: skip
            self._warned_inverted = True

    def _check_lost(self, keep_full: np.ndarray, mask: torch.Tensor, mask_path: str) -> None:
        """The centre crop's trap: warn when it loses part of the hole, refuse when it loses all of it."""
        lost = hole_lost_fraction(keep_full)
        if (~keep_full).any() and bool((mask >= 1).all()):
            raise ImageFileError(
                f"{mask_path}: no hole left after resizing and centre-cropping to {self.image_size}x{self.image_size} "
                f"({lost:.0%} of it lies outside the centre); use --crop_to_mask PAD to inpaint it at full resolution"
            )
        if lost > LOST_WARN:
            log.warning(
                "%s: the centre crop to %dx%d loses %.0f%% of the hole; use --crop_to_mask PAD to inpaint all of it",
                mask_path, self.image_size, self.image_size, 100 * lost,
            )  # fmt: skip

    def _file_mask(self, mask_path: str, image_path: str) -> torch.Tensor:
        if self.check_mask_size:
            self._check_size(mask_path, image_path)
        levels = read_mask_levels(mask_path)
        keep_full = self.full_keep(mask_path, levels)
        mask = mask_tensor(levels, self.image_size, self.invert_masks, channels=self.channels)
        if self.mask_threshold is not None and not is_binary(mask):
            if not self._warned:
                rank_zero_warn(
                    f"{mask_path}: mask is not binary; masks are binarised at {self.mask_threshold} "
                    f"(data.mask_threshold)"
                )
                self._warned = True
            mask = (mask >= self.mask_threshold).float()
        self._check_lost(keep_full, mask, mask_path)
        return mask

    def _image(self, source: str | torch.Tensor) -> torch.Tensor:
        return load_image(source, self.image_size, self.channels) if isinstance(source, str) else source

    def base_item(self, i: int) -> dict[str, Any]:
        """Item ``i`` without its pictures: ``id``, ``mask_type``, ``error``, ``name``, ``prompt``, ``y``."""
        stem, image, mask = self.entries[i]
        mask_type = mask if self.generated else self.mask_name
        item: dict[str, Any] = {
            "id": self.ids[i],
            "mask_type": mask_type,
            "error": "",
            "name": f"{mask_type}/{stem}.png" if self.generated else f"{stem}.png",
        }
        if self.prompts is not None:
            item["prompt"] = self.prompts[i]
        if self.labels is not None:
            item["y"] = int(self.labels[i])
        return item

    def __getitem__(self, i: int) -> dict[str, Any]:
        _, image, mask = self.entries[i]
        item = self.base_item(i)
        try:
            item["image"] = self._image(image)
            if self.generated:
                item["keep_mask"] = keep_mask(mask, self.image_size, self.mask_seed, self.image_index[i])
            else:
                item["keep_mask"] = self._file_mask(mask, image)
        except ImageFileError as e:
            item["error"] = str(e)
            item["image"] = torch.zeros(self.channels, self.image_size, self.image_size)
            item["keep_mask"] = torch.ones(1 if self.generated else self.channels, self.image_size, self.image_size)
        return item


def crop_name(picture: str, index: int) -> str:
    """The item name of crop ``index`` of output ``picture`` (``a/b.png`` -> ``a/b.crop0.png``)."""
    return f"{os.path.splitext(picture)[0]}.crop{index}.png"


class CropItems(Dataset):
    """Crop-and-stitch items (``data.crop_to_mask``): one item per hole region of each (image, mask file)
    pair of ``items``, the region's box (``repaint_pl.crops.hole_boxes`` with ``pad`` and the space's
    ``factor``) cut from the full-resolution picture and resized to the model's size.

    Besides ``InpaintItems``' fields (``image`` and ``keep_mask`` ``[1, S, S]`` being the crop's), an item has
    ``name`` (``<stem>.crop<k>.png``), ``picture`` (``<stem>.png``: the stitched output), ``crop_index``,
    ``crop_count``, ``crop_box`` (``Box.as_list()``), and what the writer needs to stitch: ``source``,
    ``mask_source``, ``mask_invert``, ``mask_threshold``.  Sample ids are ``sample_id(image key, "crop<k>")``.
    A pair that cannot be read, or whose mask has no hole, is one item with ``error`` (``crop_count`` 0).
    """

    def __init__(self, items: InpaintItems, pad: int, factor: int = 1):
        self.items, self.pad, self.factor = items, int(pad), int(factor)
        self.index: list[tuple[int, int, Optional[Box], str]] = []  # (entry, crop, box, error)
        self.counts: dict[int, int] = {}
        for i in range(len(items)):
            try:
                boxes = self._boxes(i)
            except ImageFileError as e:
                self.index.append((i, 0, None, str(e)))
                boxes = []
            self.counts[i] = len(boxes)
            self.index += [(i, k, box, "") for k, box in enumerate(boxes)]

    def _boxes(self, i: int) -> list[Box]:
        _, image_path, mask_path = self.items.entries[i]
        self.items._check_size(mask_path, image_path)
        boxes = hole_boxes(self.items.full_keep(mask_path), self.pad, self.items.image_size, self.factor)
        if not boxes:
            raise ImageFileError(f"{mask_path}: no hole to fill (every pixel is known)")
        return boxes

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int) -> dict[str, Any]:
        i, k, box, error = self.index[j]
        _, image_path, mask_path = self.items.entries[i]
        item = self.items.base_item(i)
        picture = item["name"]
        item.update(
            id=sample_id(self.items.image_index[i], f"crop{k}"),
            name=crop_name(picture, k) if box is not None else picture,
            picture=picture,
            crop_index=k,
            crop_count=self.counts[i],
            crop_box=torch.tensor(box.as_list() if box is not None else [0] * 8),
            source=image_path,
            mask_source=mask_path,
            mask_invert=bool(self.items.invert_masks),
            mask_threshold=self.items.threshold,
        )
        try:
            if error:
                raise ImageFileError(error)
            mode = "RGB" if self.items.channels == 3 else "L"
            image, keep = np.asarray(read_image(image_path, mode)), self.items.full_keep(mask_path)
            images, keeps = crop(image, keep, [box], self.items.image_size)
            item["image"], item["keep_mask"] = images[0], keeps[0]
        except ImageFileError as e:
            item["error"] = str(e)
            size = self.items.image_size
            item["image"], item["keep_mask"] = torch.zeros(self.items.channels, size, size), torch.ones(1, size, size)
        return item


def space_factor(trainer: Optional[L.Trainer]) -> int:
    """The downsampling factor of the trainer's model's space (8 for Stable Diffusion's VAE), else 1."""
    module = getattr(trainer, "lightning_module", None) if trainer is not None else None
    return int(getattr(getattr(module, "space", None), "factor", 1) or 1)


class ImageFolderDataModule(L.LightningDataModule):
    """Images from a folder (any layout, searched recursively), masks from a folder or generated.

    Args:
        image_path: folder of images (jpg, png, …), e.g. CelebA-HQ, Places2 or ImageNet val.
        image_size: the model's size (None: the size the model was made for, else 256); images are resized
            and centre-cropped like guided-diffusion.
        mask_types: generated mask types (``repaint_pl.masks``); every image is inpainted under each.
        mask_path: a folder of mask files instead (255 = known); ``mask_types`` is then ignored.
        pair_masks: ``name`` (mask with the image's relative path / stem, any extension, optionally
            with a ``_mask`` suffix) or ``sorted`` (i-th mask with i-th image, as the original).
        mask_convention: ``keep`` (255 = known, RePaint's) or ``fill`` (white = to fill, as diffusers, IOPaint
            and LaMa draw masks).
        invert_masks: the old name of ``mask_convention: fill`` (``true`` means ``fill``).
        mask_threshold: binarise non-binary masks at this value (None keeps soft masks).
        crop_to_mask: inpaint each hole of the (full-resolution) mask files in a crop around it, with this
            many pixels of context, and stitch the fills into the full picture (``repaint_pl.crops``; the
            writer writes the full-resolution picture); None: resize and centre-crop the whole picture.
        class_folders: class labels from the first folder level (ImageNet val: wnid folders).
        labels: a label file (``name label`` per line, or CSV) instead.
        max_images, offset: a slice of the sorted images (sample ids do not depend on the slice).
        mask_seed: seeds the generated masks.
        channels: 3 (RGB) or 1 (grey); None: the model's (images are converted when read).
        prompts: per-image prompts for text models (``prompts.txt``: one line per image in sorted order, or
            ``name<TAB>prompt``; ``prompts.json``: name -> prompt); default: such a file in the image folder.
        batch_size, num_workers: DataLoader settings.
    """

    def __init__(
        self,
        image_path: str,
        image_size: Optional[int] = None,
        mask_types: Sequence[str] = ("thick",),
        mask_path: Optional[str] = None,
        pair_masks: Literal["name", "sorted"] = "name",
        invert_masks: bool = False,
        mask_threshold: Optional[float] = 0.5,
        mask_convention: MaskConvention = "keep",
        crop_to_mask: Optional[int] = None,
        class_folders: bool = False,
        labels: Optional[str] = None,
        max_images: Optional[int] = None,
        offset: int = 0,
        mask_seed: int = 0,
        channels: Optional[int] = None,
        batch_size: int = 1,
        num_workers: int = 0,
        prompts: Optional[str] = None,
    ):
        super().__init__()
        self.prompts = prompts
        self.image_path, self.image_size, self.mask_types = image_path, image_size, list(mask_types)
        self.mask_path, self.pair_masks = mask_path, pair_masks
        self.invert_masks = mask_inverted(mask_convention, invert_masks)
        if crop_to_mask is not None and int(crop_to_mask) < 0:
            raise ValueError(f"data.crop_to_mask: expected a padding of 0 or more pixels, got {crop_to_mask}")
        self.crop_to_mask = crop_to_mask
        self.mask_threshold, self.class_folders, self.labels = mask_threshold, class_folders, labels
        self.max_images, self.offset, self.mask_seed, self.channels = max_images, offset, mask_seed, channels
        self.batch_size, self.num_workers = batch_size, num_workers
        self.check_mask_size = True
        self.dataset: Optional[Dataset] = None

    def _image_labels(self, images: list[str]) -> Optional[list[int]]:
        if self.labels:
            return lookup_labels(images, self.image_path, read_labels(self.labels), self.labels)
        return folder_labels(images, self.image_path) if self.class_folders else None

    def _pair(self, images: list[str], masks: list[str]) -> list[str]:
        if os.path.isfile(self.mask_path):  # one mask file for every image
            return masks * len(images)
        if self.pair_masks == "sorted":
            if len(images) != len(masks):
                raise ImageFileError(
                    f"{self.image_path}: {len(images)} images but {self.mask_path} has "
                    f"{len(masks)} masks; pair_masks='sorted' pairs them one to one"
                )
            return masks
        by_stem = {}
        for m in masks:
            stem = os.path.splitext(os.path.relpath(m, self.mask_path))[0]
            by_stem[stem.removesuffix("_mask")] = by_stem[stem] = m
        missing = [i for i in images if output_stem(i, self.image_path) not in by_stem]
        if missing:
            raise ImageFileError(
                f"{missing[0]}: no mask with this name in {self.mask_path} ({len(missing)} images lack one)"
            )
        return [by_stem[output_stem(i, self.image_path)] for i in images]

    def ids_by_position(self) -> bool:
        """Whether sample ids are positions in the sorted list (masks paired in sorted order, as the
        original) rather than derived from the images' names."""
        return bool(self.mask_path) and self.pair_masks == "sorted" and not os.path.isfile(self.mask_path)

    def id_source(self) -> Optional[str]:
        """``"name"`` when sample ids follow the images' names (recorded in eval.py's fingerprint), else None."""
        return None if self.ids_by_position() else "name"

    def _relative(self, path: str, root: str) -> str:
        return os.path.relpath(path, root) if os.path.isdir(root) else os.path.basename(path)

    def input_list(self) -> Optional[list[str]]:
        """The inputs whose positions are the sample ids (images, then masks, by path below their folders),
        or None when ids follow the names (then adding inputs changes no other picture)."""
        if not self.ids_by_position():
            return None
        images = [self._relative(p, self.image_path) for p in list_images(self.image_path)]
        return images + [self._relative(p, self.mask_path) for p in list_images(self.mask_path)]

    def setup(self, stage: str = "predict") -> None:
        self.image_size = resolve_image_size(self.image_size, getattr(self.trainer, "lightning_module", None))
        images = list_images(self.image_path)
        labels = self._image_labels(images)
        masks = self._pair(images, list_images(self.mask_path)) if self.mask_path else None
        end = None if self.max_images is None else self.offset + self.max_images
        index = list(range(len(images)))[self.offset : end]
        stems = [output_stem(images[i], self.image_path) for i in index]
        check_unique(stems, [images[i] for i in index])
        kinds = self.mask_types if masks is None else [None]
        # one entry per (image, mask type); ids and generated masks depend on the image's name (its path
        # below the folder), or in the original layout on its index in the full sorted list
        by_position = self.ids_by_position()
        keys = {i: i if by_position else name_index(self._relative(images[i], self.image_path)) for i in index}
        pairs = [(stem, i, k) for stem, i in zip(stems, index) for k in range(len(kinds))]
        # ids from (image key, mask type name): stable when the list of mask types changes
        sidecar = self.prompts or find_sidecar(self.image_path)
        prompts = read_prompts(sidecar, images, [output_stem(p, self.image_path) for p in images]) if sidecar else None
        self.dataset = InpaintItems(
            [(stem, images[i], masks[i] if masks else kinds[k]) for stem, i, k in pairs],
            [sample_id(keys[i], kinds[k]) for _, i, k in pairs],
            self.image_size,
            generated=masks is None,
            mask_seed=self.mask_seed,
            mask_threshold=self.mask_threshold,
            invert_masks=self.invert_masks,
            labels=[labels[i] for _, i, _ in pairs] if labels else None,
            channels=resolve_channels(self.channels, self.trainer),
            check_mask_size=self.check_mask_size,
            image_index=[keys[i] for _, i, _ in pairs],
            prompts=[prompts[i] for _, i, _ in pairs] if prompts else None,
        )
        if self.crop_to_mask is not None:
            if masks is None:
                raise ValueError("data.crop_to_mask needs mask files (--mask FILE or FOLDER): generated masks are "
                                 "made at the model's size")  # fmt: skip
            self.dataset = CropItems(self.dataset, self.crop_to_mask, space_factor(self.trainer))

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)


class InpaintFolderDataModule(ImageFolderDataModule):
    """The original RePaint layout and argument names: image ``i`` of ``gt_path`` with mask ``i`` of
    ``mask_path`` in sorted order (255 = known), outputs named after the image's file name.

    ``max_len``/``offset`` slice the pairs; ``mask_threshold=None`` keeps soft masks as the original
    does (``--repaint_conf`` sets it so); masks of another size than their image are resized like
    the original unless ``check_mask_size``.
    """

    def __init__(
        self,
        gt_path: str,
        mask_path: str,
        image_size: Optional[int] = None,
        batch_size: int = 1,
        num_workers: int = 0,
        max_len: Optional[int] = None,
        offset: int = 0,
        mask_threshold: Optional[float] = 0.5,
        invert_masks: bool = False,
        check_mask_size: bool = True,
        mask_convention: MaskConvention = "keep",
    ):
        super().__init__(
            image_path=gt_path,
            image_size=image_size,
            mask_path=mask_path,
            pair_masks="sorted",
            invert_masks=invert_masks,
            mask_convention=mask_convention,
            mask_threshold=mask_threshold,
            max_images=max_len,
            offset=offset,
            batch_size=batch_size,
            num_workers=num_workers,
        )
        self.check_mask_size = check_mask_size

    def setup(self, stage: str = "predict") -> None:
        super().setup(stage)
        # flat output names, as the original writes them
        self.dataset.entries = [(os.path.basename(stem), p, m) for stem, p, m in self.dataset.entries]
        check_unique([s for s, _, _ in self.dataset.entries], [p for _, p, _ in self.dataset.entries])
