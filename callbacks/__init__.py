"""Callbacks (installed as ``repaint_pl.callbacks``): prediction writer, metrics, progress bar, previews."""

from .metrics import InpaintMetrics
from .preview import SamplePreview
from .progress import InpaintProgressBar
from .writer import RePaintWriter

__all__ = ["InpaintMetrics", "InpaintProgressBar", "RePaintWriter", "SamplePreview"]
