"""Callbacks (installed as ``repaint_pl.callbacks``): prediction writer, progress bar, training previews."""
from .preview import SamplePreview
from .progress import InpaintProgressBar
from .writer import RePaintWriter

__all__ = ["InpaintProgressBar", "RePaintWriter", "SamplePreview"]
