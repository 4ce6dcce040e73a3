"""Networks: guided-diffusion's ADM UNet and classifier, their typed configs and presets."""

from .adm import EncoderUNetModel, UNetModel
from .checkpoint import CheckpointError, check_fits, load_weights, read_checkpoint
from .presets import CLASSIFIER_PRESETS, RELEASED_FILES, UNET_PRESETS, ClassifierConfig, UNetConfig

__all__ = [
    "UNetModel",
    "EncoderUNetModel",
    "UNetConfig",
    "ClassifierConfig",
    "UNET_PRESETS",
    "CLASSIFIER_PRESETS",
    "RELEASED_FILES",
    "CheckpointError",
    "check_fits",
    "load_weights",
    "read_checkpoint",
]
