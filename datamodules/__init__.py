"""Datamodules (installed as ``repaint_pl.datamodules``)."""
from .folders import InpaintFolderDataModule, PairedFolderDataset
from .images import ImageFileError, center_crop_resize, list_images, load_image, load_mask

__all__ = ["InpaintFolderDataModule", "PairedFolderDataset", "ImageFileError", "center_crop_resize", "list_images",
           "load_image", "load_mask"]
