"""Datamodules (installed as ``repaint_pl.datamodules``)."""
from .folders import InpaintFolderDataModule, PairedFolderDataset
from .images import ImageFileError, center_crop_resize, list_images, load_image, load_mask
from .masked import GeneratedMaskDataset
from .textures import TextureDataModule

__all__ = ["InpaintFolderDataModule", "PairedFolderDataset", "GeneratedMaskDataset", "TextureDataModule",
           "ImageFileError", "center_crop_resize", "list_images", "load_image", "load_mask"]
