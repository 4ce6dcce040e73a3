"""Datamodules (installed as ``repaint_pl.datamodules``)."""

from .folders import ImageFolderDataModule, InpaintFolderDataModule, InpaintItems
from .images import ImageFileError, center_crop_resize, list_images, load_image, load_mask, open_image, read_image
from .shards import ShardDataModule
from .textures import TextureDataModule

__all__ = [
    "ImageFolderDataModule",
    "InpaintFolderDataModule",
    "InpaintItems",
    "ShardDataModule",
    "TextureDataModule",
    "ImageFileError",
    "center_crop_resize",
    "list_images",
    "load_image",
    "load_mask",
    "open_image",
    "read_image",
]
