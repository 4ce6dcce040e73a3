"""Denoisers: a network plus its noise process, turned into the sampler's ``model_fn`` / ``grad_fn``.

The sampler speaks one protocol, ``model_fn(x_t, t) -> output`` (``t`` = respaced index, long ``[B]``;
``output`` as ``diffusion.p_mean_variance`` reads it: ε, x0 or v by ``diffusion.config.prediction``,
plus C variance channels for learned variances).  A *denoiser* holds what varies between model
families and, for one batch, binds the conditioning (class labels, prompts with classifier-free
guidance, a classifier's gradient):

- ``ADMDenoiser``: guided-diffusion's UNet (+ noisy-image classifier), the released checkpoints;
- ``DiffusersDenoiser``: a diffusers ``UNet2DModel`` (optionally class-conditional) with its scheduler config;
- ``StableDiffusionDenoiser``: a text-conditioned ``UNet2DConditionModel`` with CLIP prompts and CFG
  (runs in the VAE latent space of ``repaint_pl.spaces.LatentSpace``);
- ``StableDiffusionXLDenoiser``: SDXL's UNet with two CLIP encoders, pooled embeddings and size
  conditioning.  Both take inpainting UNets too (9 channels: x_t, the hole, the masked picture's latents).

The diffusers denoisers share ``SchedulerDenoiser`` (the process from a scheduler config, ``respace``) and
the text-conditioned ones ``TextUNetDenoiser`` (prompts, guidance, the inpainting channels).

Every denoiser has ``diffusion`` (the respaced sampling process, a ``NoiseProcess`` whose ``decode``
reads the output), ``clip_x0`` (the range x0 predictions are clipped to, or None),
``bind(cond, noise) -> (model_fn, grad_fn)`` and ``parts()`` (the modules the LightningModule holds,
by the names its checkpoints use).  A denoiser that trains (ADM) also has ``training_process``,
``train_output(x_t, t, y)`` and ``trainable_parameters()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diffusion import Diffusion, DiffusionConfig
from .nets import ClassifierConfig, UNetConfig, load_weights
from .nets.adm import Attention
from .nets.presets import NUM_CLASSES
from .noise import NoiseSource
from .sampling import GradFn, ModelFn

DType = Literal["float32", "float16", "bfloat16"]


@dataclass
class Conditioning:
    """What one batch is conditioned on (any field may be unused by a denoiser)."""

    batch_size: int
    device: torch.device
    y: Optional[Tensor] = None  # class labels [B]
    prompts: Optional[Sequence[str]] = None  # one per image (None: the denoiser's own prompt)
    negative_prompts: Optional[Sequence[str]] = None
    # the known picture [B, C, H, W] in [-1, 1], its keep mask [B, 1|C, H, W] (1 = known) and the space the
    # sampler runs in (a ``repaint_pl.spaces.Space``): for inpainting UNets and SDXL's size conditioning
    image: Optional[Tensor] = None
    keep_mask: Optional[Tensor] = None
    space: Optional[Any] = None


class Denoiser(ABC):
    """Base of the denoisers: ``diffusion`` (the respaced sampling process), ``clip_x0`` (x0 clip range or
    None) and ``bind``, which turns one batch's conditioning into the sampler's ``model_fn`` / ``grad_fn``."""

    diffusion: Diffusion
    clip_x0: Optional[float] = None
    training_process: Optional[Diffusion] = None  # the full process it trains on (None: not trained here)

    @abstractmethod
    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]: ...

    def parts(self) -> dict[str, nn.Module]:
        """The modules to hold (and checkpoint) under these names: the denoiser itself if it is a module."""
        return {"denoiser": self} if isinstance(self, nn.Module) else {}

    def not_trained(self) -> ValueError:
        return ValueError(f"{type(self).__name__} is not trained here: train.py trains guided-diffusion (ADM) nets")

    def train_output(self, x_t: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        raise self.not_trained()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        raise self.not_trained()


def adm_model_fn(net: Callable[..., Tensor], diffusion: Diffusion, y: Optional[Tensor] = None) -> ModelFn:
    """guided-diffusion UNet ``net(x, base_timestep, y)``; ``y`` only for class-conditional nets."""
    d = diffusion

    def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
        return net(x_t, d.model_time(t), y)

    return model_fn


def classifier_grad_fn(classifier: nn.Module, diffusion: Diffusion, y: Tensor, scale: float) -> GradFn:
    """s·∇_x log p(y | x_t) from a noisy-image classifier ``classifier(x, base_timestep) -> logits``."""
    d = diffusion

    def grad_fn(x_t: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            log_probs = F.log_softmax(classifier(x_in, d.model_time(t)), dim=-1)
            selected = log_probs[torch.arange(len(y), device=y.device), y]
            return torch.autograd.grad(selected.sum(), x_in)[0] * scale

    return grad_fn


def class_labels(cond: Conditioning, noise: NoiseSource, num_classes: int, class_label: Optional[int] = None) -> Tensor:
    """Class per image: ``class_label``, else the batch's ``y``, else random from the sample's generator."""
    if class_label is not None:
        return torch.full((cond.batch_size,), class_label, dtype=torch.long, device=cond.device)
    if cond.y is not None:
        return cond.y.to(device=cond.device, dtype=torch.long)
    return noise.randint(num_classes)


class ADMDenoiser(Denoiser):
    """guided-diffusion's UNet (+ optional noisy-image classifier): the released checkpoints and train.py's nets.

    Args:
        net: the UNet (preset name and/or flags); diffusion: the process it was trained for and its
            respacing for sampling; classifier / classifier_scale: guidance (None / 0: none);
        class_label: one class for every image of a class-conditional net (the original's ``cond_y``),
            else the batch's ``y``, else a random class per image;
        clip_denoised: clip x0 predictions to [-1, 1]; attention: ``einsum`` (the released numerics) or
            ``sdpa``; channels_last: NHWC layout for the net; compile: ``torch.compile`` mode (None: eager).

    The random class draw happens even for unconditional nets, as in the original code, so that the
    noise stream (class, x_T, step noises…) is the same for every model.  ``forward_net(x, base_t, y)``
    is an attribute: a benchmark may wrap it to count or time the network calls.
    """

    def __init__(
        self,
        net: UNetConfig,
        diffusion: DiffusionConfig,
        classifier: Optional[ClassifierConfig] = None,
        classifier_scale: float = 0.0,
        class_label: Optional[int] = None,
        clip_denoised: bool = True,
        attention: Attention = "einsum",
        channels_last: bool = False,
        compile: Optional[str] = None,
    ):
        if net.flags()["learn_sigma"] != diffusion.learns_variance:
            raise ValueError(
                f"net.learn_sigma={net.flags()['learn_sigma']} does not match diffusion.variance="
                f"{diffusion.variance!r} (learned variances need learn_sigma, fixed ones must not have it)"
            )
        self.net_config, self.diffusion_config = net, diffusion
        self.net = net.build()
        self.net.set_attention_backend(attention)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self._compiled = torch.compile(self.net, mode=compile) if compile else self.net
        self.classifier = classifier.build() if classifier is not None else None
        if self.classifier is not None:
            self.classifier.set_attention_backend(attention)
            self.classifier.requires_grad_(False)
        self.classifier_scale, self.class_label = classifier_scale, class_label
        self.clip_x0 = 1.0 if clip_denoised else None
        self.num_classes = self.net.num_classes
        self.diffusion = diffusion.build(respaced=True)
        self.training_process = diffusion.build(respaced=False)
        self.forward_net = self.run_net

    def run_net(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """The network (compiled if asked) on x in the configured memory layout."""
        return self._compiled(x.contiguous(memory_format=self.memory_format), timesteps, y)

    def respace(self, steps: int) -> None:
        """Sample with ``steps`` respaced steps from now on."""
        self.diffusion_config = replace(self.diffusion_config, timestep_respacing=str(int(steps)))
        self.diffusion = self.diffusion_config.build(respaced=True)

    def parts(self) -> dict[str, nn.Module]:
        return {"net": self.net} | ({"classifier": self.classifier} if self.classifier is not None else {})

    def load_net_weights(self, state: dict[str, Tensor], source: str) -> None:
        load_weights(self.net, state, source, f"net {self.net_config.preset or 'UNet'}")

    def load_classifier_weights(self, state: dict[str, Tensor], source: str) -> None:
        if self.classifier is None:
            raise ValueError(f"{source}: a classifier checkpoint was given but model.classifier is not configured")
        load_weights(self.classifier, state, source, "the classifier")

    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]:
        labels = class_labels(cond, noise, self.num_classes or NUM_CLASSES, self.class_label)
        d = self.diffusion.to(cond.device)
        model_fn = adm_model_fn(lambda *a: self.forward_net(*a), d, labels if self.num_classes is not None else None)
        grad_fn = None
        if self.classifier is not None and self.classifier_scale > 0:
            grad_fn = classifier_grad_fn(self.classifier, d, labels, self.classifier_scale)
        return model_fn, grad_fn

    def train_output(self, x_t: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """The raw output at training levels ``t`` (base timesteps) of the full process."""
        d = self.training_process.to(x_t.device)
        return self.forward_net(x_t, d.model_time(t), y if self.num_classes is not None else None).float()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return self.net.parameters()


# --------------------------------------------------------------------------
# diffusers models
# --------------------------------------------------------------------------


def torch_dtype(name: DType) -> torch.dtype:
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def unet_diffusion(
    scheduler_config: dict[str, Any], steps: Optional[int], output_channels: int, in_channels: int, source: str
) -> tuple[Diffusion, Optional[float]]:
    """The respaced process and x0 clip range of a diffusers scheduler config, checked against the UNet
    (``in_channels``: the channels of x_t, without an inpainting UNet's mask and masked-image channels)."""
    from .pretrained import diffusion_from_scheduler

    config, clip = diffusion_from_scheduler(scheduler_config, steps, source)
    expected = 2 * in_channels if config.learns_variance else in_channels
    if output_channels != expected:
        raise ValueError(
            f"{source}: the UNet has {output_channels} output channels but variance_type "
            f"{config.variance!r} needs {expected}"
        )
    return config.build(respaced=True), clip


class SchedulerDenoiser(nn.Module, Denoiser):
    """Base of the diffusers denoisers: a UNet whose noise process comes from a scheduler config.

    Subclasses set ``unet``, ``scheduler_config``, ``source`` and call ``respace(steps)``.
    """

    unet: nn.Module
    scheduler_config: dict[str, Any]
    source: str

    @property
    def sample_channels(self) -> int:
        """The channels of x_t (the UNet's input channels)."""
        return self.unet.config.in_channels

    def respace(self, steps: Optional[int]) -> None:
        """Sample with ``steps`` respaced steps from now on (None: all training steps): rebuilds ``diffusion``."""
        steps = int(steps) if steps else None
        cfg = self.unet.config
        self.diffusion, self.clip_x0 = unet_diffusion(
            self.scheduler_config, steps, cfg.out_channels, self.sample_channels, self.source
        )
        self.steps = steps


class DiffusersDenoiser(SchedulerDenoiser):
    """A diffusers ``UNet2DModel`` (e.g. google/ddpm-ema-celebahq-256) and its scheduler config.

    Args:
        pretrained: a local folder as ``save_pretrained`` writes it (``config.json`` + weights and a
            ``scheduler_config.json`` beside it or in ``../scheduler``), or a pipeline folder with
            ``unet/`` and ``scheduler/``; a hub id works when online.
        steps: respaced steps for sampling (None: all training steps).
        class_label: one class for every image of a class-conditional UNet (else the batch's ``y``,
            else a random class per image).
        dtype: the UNet's weights and activations (outputs are cast to float32 for the posterior).
    """

    def __init__(
        self,
        pretrained: str,
        steps: Optional[int] = None,
        class_label: Optional[int] = None,
        dtype: DType = "float32",
    ):
        super().__init__()
        from .pretrained import load_pixel_unet

        self.unet, self.scheduler_config = load_pixel_unet(pretrained, torch_dtype(dtype))
        self.unet.requires_grad_(False)
        self.source = pretrained
        self.respace(steps)
        cfg = self.unet.config
        self.num_classes = cfg.num_class_embeds
        self.class_label, self.dtype_name = class_label, dtype
        self.in_channels, self.image_size = cfg.in_channels, cfg.sample_size

    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]:
        labels = class_labels(cond, noise, self.num_classes) if self.num_classes else None
        d, unet, dtype = self.diffusion.to(cond.device), self.unet, torch_dtype(self.dtype_name)

        def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return unet(x_t.to(dtype), d.model_time(t), class_labels=labels).sample.float()

        return model_fn, None


@dataclass
class TextEmbeddings:
    """A text-conditioned UNet's inputs for a batch of texts: ``hidden`` ``[B, L, D]`` (cross-attention) and,
    for SDXL, ``pooled`` ``[B, P]`` (the second encoder's projected pooled output)."""

    hidden: Tensor
    pooled: Optional[Tensor] = None


def map_tensors(fn: Callable[..., Tensor], *trees: Any) -> Any:
    """``fn`` over the tensors of equally nested dicts (other values are taken from the first)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: map_tensors(fn, *(tree[k] for tree in trees)) for k in first}
    return fn(*trees) if isinstance(first, Tensor) else first


def is_inpainting_unet(config: Any) -> bool:
    """A UNet that also takes the hole mask and the masked picture's latents: in = 2·out + 1 (SD: 9 = 2·4 + 1)."""
    return config.in_channels == 2 * config.out_channels + 1


def texts_for(given: Optional[Sequence[Optional[str]]], default: Optional[str], batch_size: int) -> list[Optional[str]]:
    """One text per image: the batch's own where it has one, else ``default``."""
    return [default] * batch_size if given is None else [p if p is not None else default for p in given]


class TextUNetDenoiser(SchedulerDenoiser):
    """Base of the text-conditioned ``UNet2DConditionModel`` denoisers (Stable Diffusion 1.x/2.x, SDXL),
    with classifier-free guidance and, for inpainting UNets, the hole mask and masked picture as input.

    ε̂ = ε(x_t, ∅⁻) + g·(ε(x_t, c) − ε(x_t, ∅⁻)), with ∅⁻ the negative prompt; g = 1 runs the conditional
    model alone.  The prompt can be one for the run or one per image (the batch's ``prompt``).

    An inpainting UNet (9 input channels: x_t, the hole, the masked picture's latents) gets
    ``[x_t, 1 − keep, E(image · keep)]``: the hole at latent resolution as the space defines it (a cell
    is a hole if any of its pixels is, ``LatentSpace.mask``; diffusers resizes the pixel mask to the
    nearest cell instead: the same for holes on the latent grid) and the space's encoding (the VAE
    mean) of the picture with the hole set to 0 (grey).  It needs the batch's picture, keep mask and
    space in ``Conditioning`` (``RePaintModule.inpaint`` passes them).  RePaint's injection and
    resampling run on top; ``repaint_pl.sampling.policies.NoInjectionSampler`` with ``jump_n_sample=1``
    is the model alone.

    Subclasses implement ``encode`` (texts → ``TextEmbeddings``) and may add UNet arguments
    (``unet_kwargs``).
    """

    prompt: str
    negative_prompt: Optional[str]
    guidance_scale: float
    dtype_name: DType

    def _setup(self, parts: dict[str, Any], source: str, steps: Optional[int], dtype: DType) -> None:
        self.unet = parts["unet"]
        self.unet.requires_grad_(False)
        for name in ("text_encoder", "text_encoder_2"):
            if parts.get(name) is not None:
                parts[name].requires_grad_(False)
        self.scheduler_config, self.source, self.dtype_name = parts["scheduler"], source, dtype
        self.inpainting = is_inpainting_unet(self.unet.config)
        self.respace(steps)

    @property
    def sample_channels(self) -> int:
        cfg = self.unet.config
        return cfg.out_channels if self.inpainting else cfg.in_channels

    @abstractmethod
    def encode(self, texts: Sequence[Optional[str]], device: torch.device) -> TextEmbeddings:
        """The UNet's text inputs for one text per image (None: no text, e.g. no negative prompt)."""

    def unet_kwargs(self, emb: TextEmbeddings, cond: Conditioning, negative: bool) -> dict[str, Any]:
        """The UNet's keyword arguments besides x and t for these embeddings (``negative``: the ∅⁻ half)."""
        return {"encoder_hidden_states": emb.hidden}

    def inpaint_channels(self, cond: Conditioning) -> Tensor:
        """``[B, 1 + C, h, w]``: the hole at latent resolution (1 = to fill) and the masked picture's latents."""
        if cond.image is None or cond.keep_mask is None or cond.space is None:
            raise ValueError(
                f"{self.source}: an inpainting UNet needs the batch's image, keep mask and space in its "
                f"Conditioning (RePaintModule.inpaint passes them)"
            )
        keep = (cond.keep_mask >= 0.5).to(cond.image.dtype).amin(dim=1, keepdim=True)
        hole = 1 - cond.space.mask(keep)
        return torch.cat([hole, cond.space.encode(cond.image * keep)], dim=1)

    def _kwargs(self, emb: TextEmbeddings, cond: Conditioning, negative: bool) -> dict[str, Any]:
        dtype = torch_dtype(self.dtype_name)
        return map_tensors(lambda v: v.to(dtype), self.unet_kwargs(emb, cond, negative))

    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]:
        d, unet, g = self.diffusion.to(cond.device), self.unet, self.guidance_scale
        dtype = torch_dtype(self.dtype_name)
        positive = self.encode(texts_for(cond.prompts, self.prompt, cond.batch_size), cond.device)
        extra = self.inpaint_channels(cond).to(dtype) if self.inpainting else None

        def net(x_t: Tensor, base_t: Tensor, kwargs: dict[str, Any], extra: Optional[Tensor]) -> Tensor:
            x_in = x_t.to(dtype) if extra is None else torch.cat([x_t.to(dtype), extra], dim=1)
            return unet(x_in, base_t, **kwargs).sample.float()

        if g == 1.0:  # the conditional model alone
            kwargs = self._kwargs(positive, cond, negative=False)
            return (lambda x_t, t: net(x_t, d.model_time(t), kwargs, extra)), None
        texts = texts_for(cond.negative_prompts, self.negative_prompt, cond.batch_size)
        negative = self.encode(texts, cond.device)
        both = map_tensors(
            lambda u, c: torch.cat([u, c]),
            self._kwargs(negative, cond, negative=True),
            self._kwargs(positive, cond, negative=False),
        )
        extra2 = None if extra is None else torch.cat([extra, extra])

        def guided_fn(x_t: Tensor, t: Tensor) -> Tensor:
            # Classifier-free guidance: one network call on [unconditional; conditional].
            out = net(torch.cat([x_t, x_t]), d.model_time(torch.cat([t, t])), both, extra2)
            out_uncond, out_cond = out.chunk(2)
            return out_uncond + g * (out_cond - out_uncond)

        return guided_fn, None


def clip_tokens(tokenizer: Any, texts: Sequence[str], device: torch.device) -> Tensor:
    """Token ids ``[B, L]`` padded (and truncated) to the tokenizer's maximum length."""
    tokens = tokenizer(
        list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    return tokens.input_ids.to(device)


class StableDiffusionDenoiser(TextUNetDenoiser):
    """Stable Diffusion 1.x / 2.x (ε or v-prediction), and their inpainting models (9-channel UNet): a
    UNet conditioned on CLIP's last hidden states, with classifier-free guidance (see ``TextUNetDenoiser``).

    Args:
        pretrained: a local pipeline folder (``unet/ text_encoder/ tokenizer/ scheduler/``), or a single
            ``.safetensors``/``.ckpt`` file together with ``config`` (a pipeline folder without weights).
        prompt, negative_prompt: the text for every image unless the data gives one per image.
        guidance_scale: g (1: no guidance; the SD default is 7.5).
        steps: respaced steps for sampling (None: all training steps).
        dtype: the UNet's and text encoder's weights (outputs are cast to float32).
        config: the config folder for a single-file checkpoint.
    """

    def __init__(
        self,
        pretrained: str,
        prompt: str = "",
        negative_prompt: str = "",
        guidance_scale: float = 7.5,
        steps: Optional[int] = 50,
        dtype: DType = "float32",
        config: Optional[str] = None,
    ):
        super().__init__()
        from .pretrained import load_text_unet

        parts = load_text_unet(pretrained, torch_dtype(dtype), config)
        self.text_encoder, self.tokenizer = parts["text_encoder"], parts["tokenizer"]
        self._setup(parts, pretrained, steps, dtype)
        self.prompt, self.negative_prompt, self.guidance_scale = prompt, negative_prompt, guidance_scale

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str], device: torch.device) -> Tensor:
        """CLIP text embeddings ``[B, L, D]`` (padded to the tokenizer's maximum length)."""
        return self.text_encoder(clip_tokens(self.tokenizer, prompts, device))[0]

    def encode(self, texts: Sequence[Optional[str]], device: torch.device) -> TextEmbeddings:
        return TextEmbeddings(self.encode_prompts([t or "" for t in texts], device))


class StableDiffusionXLDenoiser(TextUNetDenoiser):
    """SDXL and SDXL inpainting: two CLIP encoders, pooled text embeddings and micro-conditioning.

    The UNet sees both encoders' penultimate hidden states side by side (``[B, L, D1 + D2]``), and through
    ``added_cond_kwargs`` the second encoder's projected pooled output (``text_embeds``) and six time ids
    (``time_ids``: original size, crop top-left, target size, as (height, width) pairs in pixels; a
    UNet made for five ids, the refiner, takes the aesthetic score in place of the target size).  With no
    negative prompt (None) the unconditional half gets zero embeddings, as diffusers does when the
    pipeline's ``force_zeros_for_empty_prompt`` is set; ``""`` is encoded like any text.

    Args:
        pretrained: a local SDXL pipeline folder (``unet/ text_encoder/ text_encoder_2/ tokenizer/
            tokenizer_2/ scheduler/``; ``text_encoder/`` may be absent as in the refiner), or a hub id online.
        prompt, negative_prompt, guidance_scale, steps, dtype: as for ``StableDiffusionDenoiser`` (the SDXL
            default guidance is 5).
        original_size, target_size: (height, width) of the micro-conditioning (None: the picture's size).
        crops_coords_top_left: the crop's top-left corner (0, 0: uncropped).
        aesthetic_score, negative_aesthetic_score: for UNets conditioned on it (the refiner).
    """

    def __init__(
        self,
        pretrained: str,
        prompt: str = "",
        negative_prompt: Optional[str] = None,
        guidance_scale: float = 5.0,
        steps: Optional[int] = 50,
        dtype: DType = "float32",
        original_size: Optional[tuple[int, int]] = None,
        crops_coords_top_left: tuple[int, int] = (0, 0),
        target_size: Optional[tuple[int, int]] = None,
        aesthetic_score: float = 6.0,
        negative_aesthetic_score: float = 2.5,
    ):
        super().__init__()
        from .pretrained import load_sdxl

        parts = load_sdxl(pretrained, torch_dtype(dtype))
        self.text_encoder, self.text_encoder_2 = parts["text_encoder"], parts["text_encoder_2"]
        self.tokenizer, self.tokenizer_2 = parts["tokenizer"], parts["tokenizer_2"]
        self.force_zeros_for_empty_prompt = bool(parts["force_zeros_for_empty_prompt"])
        self._setup(parts, pretrained, steps, dtype)
        self.prompt, self.negative_prompt, self.guidance_scale = prompt, negative_prompt, guidance_scale
        self.original_size, self.target_size = original_size, target_size
        self.crops_coords_top_left = tuple(crops_coords_top_left)
        self.aesthetic_score, self.negative_aesthetic_score = aesthetic_score, negative_aesthetic_score
        self.num_time_ids = self._num_time_ids()

    def _num_time_ids(self) -> int:
        """How many time ids the UNet's added embedding takes (6, or 5 with an aesthetic score)."""
        cfg = self.unet.config
        pooled = self.text_encoder_2.config.projection_dim
        count, rest = divmod(cfg.projection_class_embeddings_input_dim - pooled, cfg.addition_time_embed_dim)
        if rest or count not in (5, 6):
            raise ValueError(
                f"{self.source}: the UNet's added embedding takes {cfg.projection_class_embeddings_input_dim} "
                f"inputs, not 5 or 6 time ids of width {cfg.addition_time_embed_dim} plus {pooled} pooled"
            )
        return count

    @torch.no_grad()
    def encode(self, texts: Sequence[Optional[str]], device: torch.device) -> TextEmbeddings:
        """Penultimate hidden states of both encoders side by side ``[B, L, D1+D2]``, pooled ``[B, P]``;
        a None text gets zeros when ``force_zeros_for_empty_prompt`` (else it is encoded as "")."""
        strings = [t or "" for t in texts]
        hidden, pooled = [], None
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            if encoder is None:
                continue
            out = encoder(clip_tokens(tokenizer, strings, device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if out[0].ndim == 2:  # CLIPTextModelWithProjection: the projected pooled output
                pooled = out[0]
        emb = TextEmbeddings(torch.cat(hidden, dim=-1), pooled)
        if self.force_zeros_for_empty_prompt:
            keep = torch.tensor([t is not None for t in texts], device=device, dtype=emb.hidden.dtype)
            emb = TextEmbeddings(emb.hidden * keep[:, None, None], emb.pooled * keep[:, None])
        return emb

    def time_ids(self, cond: Conditioning, negative: bool) -> Tensor:
        """``[B, 6]`` (or ``[B, 5]``): original size, crop top-left, target size (or aesthetic score)."""
        if cond.image is not None:
            size = tuple(cond.image.shape[-2:])
        elif self.original_size is None or self.target_size is None:
            raise ValueError(
                f"{self.source}: SDXL's micro-conditioning needs the picture size: pass the batch's image in "
                f"Conditioning or set original_size and target_size"
            )
        original = tuple(self.original_size or size)
        last = tuple(self.target_size or size)
        if self.num_time_ids == 5:
            last = (self.negative_aesthetic_score if negative else self.aesthetic_score,)
        ids = torch.tensor([[*original, *self.crops_coords_top_left, *last]], dtype=torch.float32, device=cond.device)
        return ids.expand(cond.batch_size, -1)

    def unet_kwargs(self, emb: TextEmbeddings, cond: Conditioning, negative: bool) -> dict[str, Any]:
        added = {"text_embeds": emb.pooled, "time_ids": self.time_ids(cond, negative)}
        return {"encoder_hidden_states": emb.hidden, "added_cond_kwargs": added}


__all__ = [
    "Conditioning",
    "Denoiser",
    "ADMDenoiser",
    "DiffusersDenoiser",
    "TextUNetDenoiser",
    "StableDiffusionDenoiser",
    "StableDiffusionXLDenoiser",
    "TextEmbeddings",
    "adm_model_fn",
    "classifier_grad_fn",
    "class_labels",
    "DiffusionConfig",
]
