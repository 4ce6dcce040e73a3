"""Flow-matching text-to-image models as denoisers: Stable Diffusion 3 / 3.5 and FLUX.1.

Both run on the rectified flow of ``repaint_pl.flow`` (velocity output) in the 16-channel latent space of
their VAE (``repaint_pl.spaces.LatentSpace`` with its scaling and shift factors), so latent RePaint, every
sampler, the masks and the paste are those of Stable Diffusion 1.x.  What differs lives here:

- ``SD3Denoiser``: ``SD3Transformer2DModel``; prompts through two CLIP encoders and T5 (diffusers'
  ``StableDiffusion3Pipeline.encode_prompt``), classifier-free guidance with a negative prompt.
- ``FluxDenoiser``: ``FluxTransformer2DModel``; CLIP (pooled) + T5 prompts, FLUX.1-dev's distilled guidance
  (the guidance embedding, ``guidance_scale``) and optionally true CFG (``true_cfg_scale`` > 1 with a
  negative prompt).  The sampler works on latent images ``[B, 16, h, w]``; the denoiser packs them into
  FLUX's 2×2 patches (``[B, h/2·w/2, 64]`` tokens with their position ids) for the network and unpacks
  the velocity, so masks and spaces never see the packing.

The σ grid: ``steps`` levels of the scheduler config, SD3's spacing or FLUX's; with dynamic shifting its
μ depends on the image's token count, computed for ``image_size`` (pixels; None: the model's default
resolution).  ``respace(steps)`` re-derives the grid.  Single-file checkpoints hold the transformer; the
rest comes from ``config`` (a pipeline folder).
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from dataclasses import replace
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .denoisers import Conditioning, Denoiser, DType, torch_dtype
from .flow import FlowProcess, Spacing, flow_config
from .noise import NoiseSource
from .sampling import GradFn, ModelFn

log = logging.getLogger(__name__)
Encoded = tuple[dict, Optional[dict], float]  # (positive conditioning, negative or None: no CFG, CFG scale)


def texts(given: Optional[Sequence[Optional[str]]], default: str, batch_size: int) -> list[str]:
    """One text per image: the batch's own (None entries and a missing list: ``default``)."""
    return [default] * batch_size if given is None else [p if p is not None else default for p in given]


def load_flow_pipeline(path: str, pipeline: str, transformer: str, dtype: torch.dtype, config: Optional[str]) -> Any:
    """The diffusers pipeline ``pipeline`` of a folder (or hub id) without its VAE (the space loads it); a
    single-file checkpoint is the ``transformer``'s weights, everything else comes from ``config``."""
    import diffusers

    from .pretrained import SINGLE_FILE, PretrainedError, _hub_error, check_source, is_local

    check_source(path)
    root, kwargs = os.path.expanduser(path), dict(vae=None, dtype=dtype)
    try:
        if path.endswith(SINGLE_FILE):
            if not config:
                raise PretrainedError(f"{path}: a single-file checkpoint needs --config_dir (a pipeline folder)")
            kwargs["transformer"] = getattr(diffusers, transformer).from_single_file(
                root, config=os.path.expanduser(config), subfolder="transformer", local_files_only=True, dtype=dtype,
            )  # fmt: skip
            root = os.path.expanduser(config)
        if is_local(root) and not os.path.isdir(os.path.join(root, "transformer")) and "transformer" not in kwargs:
            raise PretrainedError(f"{path}: no transformer/ folder (an {pipeline} folder has one)")
        return getattr(diffusers, pipeline).from_pretrained(root, **kwargs)
    except PretrainedError:
        raise
    except Exception as e:
        raise _hub_error(path, e) from None


def vae_factor(path: str, config: Optional[str]) -> int:
    """The VAE's downsampling factor from its config (8 when the folder has none, as diffusers assumes)."""
    from .pretrained import SINGLE_FILE, read_json

    root = os.path.expanduser(config if path.endswith(SINGLE_FILE) and config else path)
    file = os.path.join(root, "vae", "config.json")
    return 2 ** (len(read_json(file)["block_out_channels"]) - 1) if os.path.isfile(file) else 8


class FlowDenoiser(nn.Module, Denoiser):
    """Base of the flow-model denoisers: loading, the σ grid (``steps``, ``respace``) and the prompts.

    Subclasses name their diffusers classes and implement ``encode`` (texts -> the transformer's
    conditioning) and ``network`` (one transformer call on latent images -> velocity).
    """

    pipeline_class: str
    transformer_class: str
    spacing: Spacing
    default_sequence_length: int

    def __init__(
        self,
        pretrained: str,
        prompt: str,
        negative_prompt: str,
        guidance_scale: float,
        steps: int,
        dtype: DType,
        config: Optional[str],
        image_size: Optional[int],
        max_sequence_length: Optional[int],
    ):
        super().__init__()
        classes = (self.pipeline_class, self.transformer_class)
        self.pipe = load_flow_pipeline(pretrained, *classes, torch_dtype(dtype), config)
        self.transformer = self.pipe.transformer.eval().requires_grad_(False)
        self.text_encoders = nn.ModuleList(
            m.eval().requires_grad_(False) for m in self.pipe.components.values() if isinstance(m, nn.Module)
            and m is not self.transformer
        )  # fmt: skip
        self.prompt, self.negative_prompt, self.guidance_scale = prompt, negative_prompt, guidance_scale
        self.dtype_name, self.clip_x0 = dtype, None
        self.factor = vae_factor(pretrained, config)
        self.image_size, self.size_given = image_size or self.default_image_size(), image_size is not None
        tokens = self.tokens_of(self.image_size // self.factor, self.image_size // self.factor)
        self.scheduler_config = dict(self.pipe.scheduler.config)
        self.flow = flow_config(self.scheduler_config, steps, self.spacing, tokens, f"{pretrained} scheduler")
        self.diffusion: FlowProcess = self.flow.build()
        limit = getattr(self.t5_tokenizer(), "model_max_length", None) or self.default_sequence_length
        self.max_sequence_length = max_sequence_length or min(self.default_sequence_length, int(limit))
        self._warned: set[int] = set()

    def t5_tokenizer(self) -> Any:
        """The T5 tokenizer (SD3's third, FLUX's second)."""
        return getattr(self.pipe, "tokenizer_3", None) or self.pipe.tokenizer_2

    @property
    def tokens_per_cell(self) -> int:
        """Latent cells per image token side (SD3: the patch size; FLUX: its 2×2 packing)."""
        return int(self.transformer.config.patch_size)

    def default_image_size(self) -> int:
        """The pictures the model was made for: its latent sample size × the VAE factor (1024 for 128)."""
        return int(getattr(self.transformer.config, "sample_size", None) or 128) * self.factor

    def tokens_of(self, h: int, w: int) -> int:
        """Image tokens of an ``h × w`` latent (what dynamic shifting's μ is computed from)."""
        return (h // self.tokens_per_cell) * (w // self.tokens_per_cell)

    def respace(self, steps: int) -> None:
        """Sample on ``steps`` levels of the σ grid from now on."""
        self.flow = replace(self.flow, steps=int(steps))
        self.diffusion = self.flow.build()

    def check_resolution(self, x_t: Tensor) -> None:
        """Once per size: a warning when dynamic shifting was computed for another resolution."""
        tokens = self.tokens_of(*x_t.shape[-2:])
        if self.flow.use_dynamic_shifting and tokens != self.flow.image_seq_len and tokens not in self._warned:
            self._warned.add(tokens)
            log.warning(
                "the σ grid was shifted for %d² pictures (%d tokens), these have %d tokens: pass "
                "--model.denoiser.init_args.image_size %d", self.image_size, self.flow.image_seq_len, tokens,
                x_t.shape[-1] * self.factor,
            )  # fmt: skip

    def follow_picture_size(self, cond: Conditioning) -> None:
        """Dynamic shifting for the batch's pictures: without an explicit ``image_size``, the σ grid is shifted
        for the token count of the pictures being inpainted (as diffusers' pipelines do for their height/width)."""
        if self.size_given or cond.image is None or not self.flow.use_dynamic_shifting:
            return
        h, w = cond.image.shape[-2:]
        tokens = self.tokens_of(h // self.factor, w // self.factor)
        if tokens != self.flow.image_seq_len:
            self.image_size = int(h)
            self.flow = replace(self.flow, image_seq_len=tokens)
            self.diffusion = self.flow.build()

    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]:
        """The velocity of the guided model: ``guided(x_t, t)`` on latent images ``[B, 16, h, w]``."""
        self.follow_picture_size(cond)
        d, dtype = self.diffusion.to(cond.device), torch_dtype(self.dtype_name)
        positive = texts(cond.prompts, self.prompt, cond.batch_size)
        negative = texts(cond.negative_prompts, self.negative_prompt, cond.batch_size)
        cond_pos, cond_neg, scale = self.encode(positive, negative, cond.device)

        def guided(x_t: Tensor, t: Tensor) -> Tensor:
            self.check_resolution(x_t)
            x_in, time = x_t.to(dtype).contiguous(), d.model_time(t)  # the mask's broadcast may leave NHWC strides
            if cond_neg is None:
                return self.network(x_in, time, cond_pos).float()
            # classifier-free guidance: one call on [negative; positive]
            both = {k: torch.cat([cond_neg[k], cond_pos[k]]) for k in cond_pos}
            out_neg, out_pos = self.network(torch.cat([x_in, x_in]), torch.cat([time, time]), both).float().chunk(2)
            return out_neg + scale * (out_pos - out_neg)

        return guided, None

    @abstractmethod
    def encode(self, positive: list[str], negative: list[str], device: torch.device) -> Encoded:
        """(positive conditioning, negative conditioning or None without CFG, CFG scale) of one batch's texts."""

    @abstractmethod
    def network(self, x: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """One transformer call: latent images ``[B, 16, h, w]`` (network dtype), timesteps ``[B]`` -> velocity."""


class SD3Denoiser(FlowDenoiser):
    """Stable Diffusion 3 / 3.5 (``SD3Transformer2DModel``): v̂ = v(∅⁻) + g·(v(c) − v(∅⁻)).

    Args:
        pretrained: a local ``StableDiffusion3Pipeline`` folder (``transformer/ text_encoder{,_2,_3}/
            tokenizer{,_2,_3}/ scheduler/``), or a single-file transformer checkpoint with ``config``.
        prompt, negative_prompt: the text for every image unless the data gives one per image.
        guidance_scale: g (1: the conditional model alone; SD3's default 7).
        steps: levels of the σ grid (the scheduler's ``set_timesteps(steps)``).
        dtype: the transformer's and text encoders' weights (outputs are cast to float32).
        config: the pipeline folder for a single-file checkpoint.
        image_size: the pictures' side in pixels, for dynamic shifting (None: the model's default).
        max_sequence_length: T5 tokens (None: 256, or less if the tokenizer is shorter).
    """

    pipeline_class, transformer_class = "StableDiffusion3Pipeline", "SD3Transformer2DModel"
    spacing: Spacing = "scheduler"
    default_sequence_length = 256

    def __init__(
        self,
        pretrained: str,
        prompt: str = "",
        negative_prompt: str = "",
        guidance_scale: float = 7.0,
        steps: int = 28,
        dtype: DType = "float32",
        config: Optional[str] = None,
        image_size: Optional[int] = None,
        max_sequence_length: Optional[int] = None,
    ):
        super().__init__(
            pretrained, prompt, negative_prompt, guidance_scale, steps, dtype, config, image_size, max_sequence_length
        )

    @torch.no_grad()
    def encode(self, positive: list[str], negative: list[str], device: torch.device) -> Encoded:
        cfg = self.guidance_scale != 1.0
        emb, neg_emb, pooled, neg_pooled = self.pipe.encode_prompt(
            prompt=positive, prompt_2=None, prompt_3=None, device=device, do_classifier_free_guidance=cfg,
            negative_prompt=negative, max_sequence_length=self.max_sequence_length,
        )  # fmt: skip
        pos = {"encoder_hidden_states": emb, "pooled_projections": pooled}
        neg = {"encoder_hidden_states": neg_emb, "pooled_projections": neg_pooled} if cfg else None
        return pos, neg, self.guidance_scale

    def network(self, x: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        return self.transformer(hidden_states=x, timestep=time, return_dict=False, **cond)[0]


def pack(latents: Tensor) -> Tensor:
    """FLUX's packing: ``[B, C, h, w]`` -> ``[B, h/2·w/2, 4C]`` (each token one 2×2 patch, channels first)."""
    b, c, h, w = latents.shape
    if h % 2 or w % 2:
        raise ValueError(f"FLUX packs 2×2 latent cells: latents {h}x{w} must be even (pictures a multiple of 16)")
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), 4 * c)


def unpack(tokens: Tensor, h: int, w: int) -> Tensor:
    """The inverse of ``pack``: ``[B, h/2·w/2, 4C]`` -> ``[B, C, h, w]``."""
    b, _, c4 = tokens.shape
    return tokens.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)


def patch_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """FLUX's position ids of the packed tokens ``[h/2·w/2, 3]``: (0, row, column)."""
    rows = torch.arange(h // 2, device=device).view(-1, 1).expand(h // 2, w // 2)
    cols = torch.arange(w // 2, device=device).view(1, -1).expand(h // 2, w // 2)
    return torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(-1, 3).to(dtype)


class FluxDenoiser(FlowDenoiser):
    """FLUX.1 (``FluxTransformer2DModel``) with its distilled guidance, on packed latents.

    Args:
        pretrained: a local ``FluxPipeline`` folder (``transformer/ text_encoder{,_2}/ tokenizer{,_2}/
            scheduler/``), or a single-file transformer checkpoint with ``config``.
        prompt: the text for every image unless the data gives one per image.
        guidance_scale: the distilled guidance fed to the guidance embedding (FLUX.1-dev: 3.5; unused by a
            transformer without one, e.g. FLUX.1-schnell).
        negative_prompt, true_cfg_scale: true classifier-free guidance when ``true_cfg_scale`` > 1 and a
            negative prompt is given (one call on the doubled batch [negative; positive]; diffusers' FluxPipeline
            makes two calls).
        steps: levels of the σ grid (FLUX's spacing: σ from 1 to 1/steps, then shifted by μ).
        dtype, config, image_size, max_sequence_length: as ``SD3Denoiser`` (T5 tokens: 512 by default).
    """

    pipeline_class, transformer_class = "FluxPipeline", "FluxTransformer2DModel"
    spacing: Spacing = "flux"
    default_sequence_length = 512

    def __init__(
        self,
        pretrained: str,
        prompt: str = "",
        negative_prompt: str = "",
        guidance_scale: float = 3.5,
        steps: int = 28,
        dtype: DType = "float32",
        config: Optional[str] = None,
        image_size: Optional[int] = None,
        max_sequence_length: Optional[int] = None,
        true_cfg_scale: float = 1.0,
    ):
        super().__init__(
            pretrained, prompt, negative_prompt, guidance_scale, steps, dtype, config, image_size, max_sequence_length
        )
        self.true_cfg_scale = true_cfg_scale

    @torch.no_grad()
    def _embed(self, prompts: list[str], device: torch.device) -> dict[str, Tensor]:
        emb, pooled, _ = self.pipe.encode_prompt(
            prompt=prompts, prompt_2=None, device=device, max_sequence_length=self.max_sequence_length
        )
        return {"encoder_hidden_states": emb, "pooled_projections": pooled}

    def encode(self, positive: list[str], negative: list[str], device: torch.device) -> Encoded:
        cfg = self.true_cfg_scale > 1 and any(negative)
        pos = self._embed(positive, device)
        return pos, self._embed(negative, device) if cfg else None, self.true_cfg_scale

    @property
    def tokens_per_cell(self) -> int:
        return 2  # the 2×2 packing (the transformer's own patch size is 1)

    def network(self, x: Tensor, time: Tensor, cond: dict[str, Tensor]) -> Tensor:
        h, w = x.shape[-2:]
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((x.shape[0],), float(self.guidance_scale), device=x.device, dtype=torch.float32)
        txt_ids = torch.zeros(cond["encoder_hidden_states"].shape[1], 3, device=x.device, dtype=x.dtype)
        out = self.transformer(
            hidden_states=pack(x), timestep=time.to(x.dtype) / 1000, guidance=guidance,
            txt_ids=txt_ids, img_ids=patch_ids(h, w, x.device, x.dtype), return_dict=False, **cond,
        )[0]  # fmt: skip  (FLUX's transformer takes t/1000 and scales it back)
        return unpack(out, h, w)


__all__ = ["FlowDenoiser", "SD3Denoiser", "FluxDenoiser", "pack", "unpack", "patch_ids", "load_flow_pipeline"]
