"""Typed network configs with guided-diffusion's flag names, and one named preset per released model.

A config starts from guided-diffusion's defaults, then its ``preset``, then every field
set explicitly: ``UNetConfig(preset="imagenet256", use_fp16=False)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from .adm import EncoderUNetModel, UNetModel

NUM_CLASSES = 1000

# guided-diffusion's model_and_diffusion_defaults() (network part)
UNET_DEFAULTS: dict[str, Any] = dict(
    image_size=64,
    in_channels=3,
    num_channels=128,
    num_res_blocks=2,
    num_heads=4,
    num_heads_upsample=-1,
    num_head_channels=-1,
    attention_resolutions="16,8",
    channel_mult="",
    dropout=0.0,
    class_cond=False,
    learn_sigma=False,
    use_scale_shift_norm=True,
    resblock_updown=False,
    use_fp16=False,
    use_new_attention_order=False,
)

_ADM256 = dict(
    image_size=256,
    num_channels=256,
    num_res_blocks=2,
    attention_resolutions="32,16,8",
    num_heads=4,
    num_head_channels=64,
    resblock_updown=True,
    use_scale_shift_norm=True,
    learn_sigma=True,
)

UNET_PRESETS: dict[str, dict[str, Any]] = {
    # celeba256_250000.pt (RePaint's CelebA-HQ model) and places256_300000.pt (Places2)
    "celeba256": dict(_ADM256, class_cond=False, use_fp16=False),
    "places256": dict(_ADM256, class_cond=False, use_fp16=False),
    # 256x256_diffusion.pt (ImageNet, class-conditional) and 256x256_diffusion_uncond.pt
    "imagenet256": dict(_ADM256, class_cond=True, use_fp16=True),
    "imagenet256_uncond": dict(_ADM256, class_cond=False, use_fp16=True),
    # 64x64_diffusion.pt (ImageNet 64, cosine schedule)
    "imagenet64": dict(
        image_size=64,
        num_channels=192,
        num_res_blocks=3,
        attention_resolutions="32,16,8",
        num_head_channels=64,
        resblock_updown=True,
        use_new_attention_order=True,
        use_scale_shift_norm=True,
        learn_sigma=True,
        class_cond=True,
        use_fp16=True,
        dropout=0.1,
    ),
    # Small nets for this project's own training (texture models) and tests
    # The shipped texture model was trained with this preset: keep it unchanged.
    "texture32": dict(
        image_size=32,
        in_channels=1,
        num_channels=32,
        num_res_blocks=2,
        attention_resolutions="",
        channel_mult="1,2,2",
        num_head_channels=32,
        learn_sigma=True,
        use_scale_shift_norm=True,
    ),
    "tiny": dict(
        image_size=32,
        num_channels=32,
        num_res_blocks=1,
        attention_resolutions="8",
        channel_mult="1,2",
        num_head_channels=32,
        learn_sigma=True,
    ),
}

# The released checkpoint files and the preset of each
RELEASED_FILES: dict[str, str] = {
    "celeba256_250000.pt": "celeba256",
    "places256_300000.pt": "places256",
    "256x256_diffusion.pt": "imagenet256",
    "256x256_diffusion_uncond.pt": "imagenet256_uncond",
    "64x64_diffusion.pt": "imagenet64",
    "256x256_classifier.pt": "imagenet256",
    "64x64_classifier.pt": "imagenet64",
}

CLASSIFIER_DEFAULTS: dict[str, Any] = dict(
    image_size=64,
    width=128,
    depth=2,
    attention_resolutions="32,16,8",
    use_scale_shift_norm=True,
    resblock_updown=True,
    pool="attention",
    use_fp16=False,
    num_classes=NUM_CLASSES,
)

CLASSIFIER_PRESETS: dict[str, dict[str, Any]] = {
    "imagenet256": dict(image_size=256),  # 256x256_classifier.pt
    "imagenet64": dict(image_size=64, depth=4),  # 64x64_classifier.pt
}


def default_channel_mult(image_size: int) -> tuple[float, ...]:
    table = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
    if image_size not in table:
        raise ValueError(f"channel_mult: no default for image_size={image_size}; set it, e.g. '1,2,2,2'")
    return table[image_size]


def _channel_mult(spec: str, image_size: int) -> tuple[float, ...]:
    if not spec:
        return default_channel_mult(image_size)
    return tuple(float(m) if "." in m else int(m) for m in spec.split(","))


def _attention_ds(resolutions: str, image_size: int) -> tuple[int, ...]:
    return tuple(image_size // int(r) for r in resolutions.split(",") if r.strip())


def _resolve(cfg: Any, defaults: dict[str, Any], presets: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    if cfg.preset is not None and cfg.preset not in presets:
        raise ValueError(f"{kind}.preset: unknown preset {cfg.preset!r}; known: {', '.join(sorted(presets))}")
    flags = dict(defaults, **presets.get(cfg.preset, {}))
    flags.update({k: v for k, v in asdict(cfg).items() if k != "preset" and v is not None})
    return flags


@dataclass(frozen=True)
class UNetConfig:
    """The diffusion UNet, by guided-diffusion's flags (``None`` = from the preset, else the default).

    attention_resolutions: feature-map sizes with attention, e.g. "32,16,8";
    channel_mult: "" for the default of the image size, else e.g. "1,1,2,2,4,4".
    """

    preset: Optional[str] = None
    image_size: Optional[int] = None
    in_channels: Optional[int] = None
    num_channels: Optional[int] = None
    num_res_blocks: Optional[int] = None
    attention_resolutions: Optional[str] = None
    channel_mult: Optional[str] = None
    num_heads: Optional[int] = None
    num_head_channels: Optional[int] = None
    num_heads_upsample: Optional[int] = None
    dropout: Optional[float] = None
    class_cond: Optional[bool] = None
    learn_sigma: Optional[bool] = None
    use_scale_shift_norm: Optional[bool] = None
    resblock_updown: Optional[bool] = None
    use_new_attention_order: Optional[bool] = None
    use_fp16: Optional[bool] = None

    def flags(self) -> dict[str, Any]:
        """Every flag, resolved."""
        return _resolve(self, UNET_DEFAULTS, UNET_PRESETS, "net")

    def build(self) -> UNetModel:
        f = self.flags()
        return UNetModel(
            image_size=f["image_size"],
            in_channels=f["in_channels"],
            model_channels=f["num_channels"],
            out_channels=f["in_channels"] * (2 if f["learn_sigma"] else 1),
            num_res_blocks=f["num_res_blocks"],
            attention_ds=_attention_ds(f["attention_resolutions"], f["image_size"]),
            dropout=f["dropout"],
            channel_mult=_channel_mult(f["channel_mult"], f["image_size"]),
            num_classes=NUM_CLASSES if f["class_cond"] else None,
            use_fp16=f["use_fp16"],
            num_heads=f["num_heads"],
            num_head_channels=f["num_head_channels"],
            num_heads_upsample=f["num_heads_upsample"],
            use_scale_shift_norm=f["use_scale_shift_norm"],
            resblock_updown=f["resblock_updown"],
            use_new_attention_order=f["use_new_attention_order"],
        )


@dataclass(frozen=True)
class ClassifierConfig:
    """The noisy-image classifier, by guided-diffusion's ``classifier_*`` flags (prefix dropped)."""

    preset: Optional[str] = None
    image_size: Optional[int] = None
    width: Optional[int] = None
    depth: Optional[int] = None
    attention_resolutions: Optional[str] = None
    use_scale_shift_norm: Optional[bool] = None
    resblock_updown: Optional[bool] = None
    pool: Optional[str] = None
    use_fp16: Optional[bool] = None
    num_classes: Optional[int] = None

    def flags(self) -> dict[str, Any]:
        return _resolve(self, CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, "classifier")

    def build(self) -> EncoderUNetModel:
        f = self.flags()
        return EncoderUNetModel(
            image_size=f["image_size"],
            in_channels=3,
            model_channels=f["width"],
            out_channels=f["num_classes"],
            num_res_blocks=f["depth"],
            attention_ds=_attention_ds(f["attention_resolutions"], f["image_size"]),
            channel_mult=default_channel_mult(f["image_size"]),
            use_fp16=f["use_fp16"],
            num_head_channels=64,
            use_scale_shift_norm=f["use_scale_shift_norm"],
            resblock_updown=f["resblock_updown"],
            pool=f["pool"],
        )


def config_fields(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}
