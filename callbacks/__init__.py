"""Callbacks (installed as ``repaint_pl.callbacks``): prediction writer, metrics, progress bar, previews."""

from .finite import FiniteTraining, NonFiniteTrainingError
from .metrics import InpaintMetrics
from .preview import SamplePreview
from .progress import InpaintProgressBar
from .states import BranchStates
from .writer import RePaintWriter

__all__ = [
    "BranchStates",
    "FiniteTraining",
    "InpaintMetrics",
    "InpaintProgressBar",
    "NonFiniteTrainingError",
    "RePaintWriter",
    "SamplePreview",
]
