"""Denoisers: a network plus its noise process, turned into the sampler's ``model_fn`` / ``grad_fn``.

The sampler speaks one protocol, ``model_fn(x_t, t) -> output`` (``t`` = respaced index, long ``[B]``;
``output`` as ``diffusion.p_mean_variance`` reads it: ε, x0 or v by ``diffusion.config.prediction``,
plus C variance channels for learned variances).  A *denoiser* holds what varies between model
families and, for one batch, binds the conditioning (class labels, prompts with classifier-free
guidance, a classifier's gradient):

- ``ADMDenoiser``: guided-diffusion's UNet (+ noisy-image classifier), the released checkpoints;
- ``DiffusersDenoiser``: a diffusers ``UNet2DModel`` (optionally class-conditional) with its scheduler config;
- ``StableDiffusionDenoiser``: a text-conditioned ``UNet2DConditionModel`` with CLIP prompts and CFG
  (runs in the VAE latent space of ``repaint_pl.spaces.LatentSpace``).

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
    """The respaced process and x0 clip range of a diffusers scheduler config, checked against the UNet."""
    from .pretrained import diffusion_from_scheduler

    config, clip = diffusion_from_scheduler(scheduler_config, steps, source)
    expected = 2 * in_channels if config.learns_variance else in_channels
    if output_channels != expected:
        raise ValueError(
            f"{source}: the UNet has {output_channels} output channels but variance_type "
            f"{config.variance!r} needs {expected}"
        )
    return config.build(respaced=True), clip


class DiffusersDenoiser(nn.Module, Denoiser):
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

        self.unet, scheduler_config = load_pixel_unet(pretrained, torch_dtype(dtype))
        self.unet.requires_grad_(False)
        cfg = self.unet.config
        self.diffusion, self.clip_x0 = unet_diffusion(
            scheduler_config, steps, cfg.out_channels, cfg.in_channels, pretrained
        )
        self.num_classes = cfg.num_class_embeds
        self.class_label, self.dtype_name = class_label, dtype
        self.in_channels, self.image_size = cfg.in_channels, cfg.sample_size

    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]:
        labels = class_labels(cond, noise, self.num_classes) if self.num_classes else None
        d, unet, dtype = self.diffusion.to(cond.device), self.unet, torch_dtype(self.dtype_name)

        def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return unet(x_t.to(dtype), d.model_time(t), class_labels=labels).sample.float()

        return model_fn, None


class StableDiffusionDenoiser(nn.Module, Denoiser):
    """Stable Diffusion 1.x / 2.x (ε or v-prediction): a text-conditioned UNet with classifier-free guidance.

    ε̂ = ε(x_t, ∅⁻) + g·(ε(x_t, c) − ε(x_t, ∅⁻)), with ∅⁻ the negative prompt (empty by default); g = 1
    runs the conditional model alone.  The prompt can be one for the run or one per image (the batch's
    ``prompt``); the output's meaning (ε, v) and the noise process come from the scheduler config.

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
        self.unet, self.text_encoder, self.tokenizer = parts["unet"], parts["text_encoder"], parts["tokenizer"]
        self.unet.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        cfg = self.unet.config
        self.diffusion, self.clip_x0 = unet_diffusion(
            parts["scheduler"], steps, cfg.out_channels, cfg.in_channels, pretrained
        )
        self.scheduler_config = parts["scheduler"]
        self.prompt, self.negative_prompt, self.guidance_scale = prompt, negative_prompt, guidance_scale
        self.dtype_name = dtype

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str], device: torch.device) -> Tensor:
        """CLIP text embeddings ``[B, L, D]`` (padded to the tokenizer's maximum length)."""
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(device))[0]

    def _texts(self, given: Optional[Sequence[str]], default: str, batch_size: int) -> list[str]:
        return [default] * batch_size if given is None else [p if p is not None else default for p in given]

    def bind(self, cond: Conditioning, noise: NoiseSource) -> tuple[ModelFn, Optional[GradFn]]:
        d, unet, g = self.diffusion.to(cond.device), self.unet, self.guidance_scale
        dtype = torch_dtype(self.dtype_name)
        positive = self.encode_prompts(self._texts(cond.prompts, self.prompt, cond.batch_size), cond.device)
        if g == 1.0:  # the conditional model alone

            def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
                return unet(x_t.to(dtype), d.model_time(t), encoder_hidden_states=positive).sample.float()

            return model_fn, None
        texts = self._texts(cond.negative_prompts, self.negative_prompt, cond.batch_size)
        both = torch.cat([self.encode_prompts(texts, cond.device), positive])

        def guided_fn(x_t: Tensor, t: Tensor) -> Tensor:
            # Classifier-free guidance: one network call on [unconditional; conditional].
            x_in, t_in = torch.cat([x_t, x_t]).to(dtype), d.model_time(torch.cat([t, t]))
            out_uncond, out_cond = unet(x_in, t_in, encoder_hidden_states=both).sample.float().chunk(2)
            return out_uncond + g * (out_cond - out_uncond)

        return guided_fn, None


__all__ = [
    "Conditioning",
    "Denoiser",
    "ADMDenoiser",
    "DiffusersDenoiser",
    "StableDiffusionDenoiser",
    "adm_model_fn",
    "classifier_grad_fn",
    "class_labels",
    "DiffusionConfig",
]
