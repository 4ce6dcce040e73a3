"""Callbacks (installed as ``repaint_pl.callbacks``): prediction writer, progress bar."""
from .progress import InpaintProgressBar
from .writer import RePaintWriter

__all__ = ["InpaintProgressBar", "RePaintWriter"]
