"""RePaintModule: the LightningModule that holds a diffusion network and runs RePaint or training.

Thin by design: the math lives in ``diffusion``, the loop in ``sampler``, the network in ``nets``.

Batches are dicts: ``image`` ``[B, C, H, W]`` in ``[-1, 1]``; ``keep_mask`` ``[B, 1|C, H, W]``
(1 = known); ``id`` ``[B]`` (the sample id that seeds the sample's generator); optional
``y`` ``[B]`` class labels and ``name`` (list of str).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any, Literal, Optional, Sequence

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor

from .denoisers import ADMDenoiser, Conditioning, Denoiser
from .diffusion import DiffusionConfig, q_sample, training_losses
from .nets import ClassifierConfig, UNetConfig, load_weights
from .nets.adm import Attention
from .nets.presets import NUM_CLASSES
from .noise import GlobalNoise, NoiseSource, PerSampleNoise, sample_seed
from .sampler import RePaintSampler, Sampler, SamplerState, StepHook, StepState
from .schedules import JumpSchedule, TimeTable
from .spaces import PixelSpace, Space

log = logging.getLogger(__name__)


def _as(cls: type, value: Any) -> Any:
    """Accept a config object or its dict (as stored in a checkpoint's hyper-parameters)."""
    return cls(**value) if isinstance(value, dict) else value


class RePaintModule(L.LightningModule):
    """A denoiser in a space, inpainting with RePaint (or another sampler); an ADM UNet also trains here.

    It composes encode → bind → sample → decode → paste: the *denoiser* (network + noise process)
    binds a batch's conditioning into the sampler's ``model_fn``; the *space* (pixels, or a VAE's
    latents) encodes the known image and mask and decodes the result.

    Args:
        net: the guided-diffusion UNet (preset name and/or flags) of the default ADM denoiser.
        diffusion: the diffusion process the net was trained for, and its respacing for sampling.
        denoiser: another model family instead of the ADM net (``repaint_pl.denoisers.DiffusersDenoiser``,
            ``StableDiffusionDenoiser``, …); then ``net``, ``diffusion`` and the classifier are unused.
        space: ``PixelSpace`` (default) or ``LatentSpace`` (Stable Diffusion's VAE).
        sampler: ``RePaintSampler`` (default) or another sampler over the same protocol.
        schedule: RePaint time table (default: the paper's jumps, 10 steps × 10, from t_T = all respaced steps).
        classifier: noisy-image classifier for guidance (None: no guidance).
        classifier_scale: guidance scale s (0: no guidance).
        class_label: one class for every image of a class-conditional net (the original's ``cond_y``);
            else the batch's ``y``, else a random class per image from the sample's generator.
        clip_denoised: clip the x0 prediction to [-1, 1].
        paste_known: paste the known pixels into the result (None: the space's default: off in pixels,
            as the original writes the raw sample; on in latent spaces).
        noise: ``per_sample`` (one generator per sample id) or ``global`` (the original's stream).
        seed: seeds the per-sample generators (``global``: seeds the device's generator at predict start).
        attention: ``einsum`` (the released numerics) or ``sdpa`` (fused attention).
        channels_last: NHWC memory layout for the network (faster convolutions on CPUs and tensor cores).
        compile: ``torch.compile`` mode for the network's forward (``default``, ``reduce-overhead``
            = with CUDA graphs, ``max-autotune``…); None runs it eagerly.
        lr, weight_decay: AdamW settings for training.
    """

    def __init__(
        self,
        net: UNetConfig = UNetConfig(preset="celeba256"),
        diffusion: DiffusionConfig = DiffusionConfig(),
        schedule: TimeTable = lazy_instance(JumpSchedule),
        classifier: Optional[ClassifierConfig] = None,
        classifier_scale: float = 0.0,
        class_label: Optional[int] = None,
        clip_denoised: bool = True,
        paste_known: Optional[bool] = None,
        noise: Literal["per_sample", "global"] = "per_sample",
        seed: int = 0,
        attention: Attention = "einsum",
        channels_last: bool = False,
        compile: Optional[str] = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        denoiser: Optional[Denoiser] = None,
        space: Space = lazy_instance(PixelSpace),
        sampler: Sampler = lazy_instance(RePaintSampler),
    ):
        super().__init__()
        net, diffusion = _as(UNetConfig, net), _as(DiffusionConfig, diffusion)
        classifier = _as(ClassifierConfig, classifier)
        self.save_hyperparameters(
            {"net": asdict(net), "diffusion": asdict(diffusion), "lr": lr, "weight_decay": weight_decay}
        )
        self.net_config, self.diffusion_config = net, diffusion
        self.space, self.sampler = space, sampler
        self.noise_mode, self.seed = noise, seed
        self.paste_known = space.paste_by_default if paste_known is None else paste_known
        self.schedule = schedule
        self.step_hooks: list[StepHook] = []
        self._global_noise_seeded = False
        self.lr, self.weight_decay = lr, weight_decay
        if denoiser is not None:  # another model family: no ADM net
            self.denoiser, self.net, self.classifier = denoiser, None, None
            self.sampling = denoiser.diffusion
            self.times = schedule.times(self.sampling.num_timesteps)
            return
        self.net = net.build()
        self.net.set_attention_backend(attention)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        # kept out of the module tree so that checkpoints hold plain parameter names
        self._compiled = {"net": torch.compile(self.net, mode=compile)} if compile else {}
        self._check_variance(net, diffusion)
        self.classifier = classifier.build() if classifier is not None else None
        if self.classifier is not None:
            self.classifier.set_attention_backend(attention)
            self.classifier.requires_grad_(False)
        self.classifier_scale, self.class_label = classifier_scale, class_label
        self.clip_denoised = clip_denoised
        self.sampling = diffusion.build(respaced=True)
        self.training_diffusion = diffusion.build(respaced=False)
        self.times = schedule.times(self.sampling.num_timesteps)
        self.denoiser = ADMDenoiser(
            lambda *args: self.forward_net(*args),  # late-bound: a benchmark's clock may wrap forward_net
            self.sampling,
            self.net.num_classes,
            self.classifier,
            classifier_scale,
            class_label,
            clip_denoised,
            label_range=NUM_CLASSES,
        )

    @staticmethod
    def _check_variance(net: UNetConfig, diffusion: DiffusionConfig) -> None:
        if net.flags()["learn_sigma"] != diffusion.learns_variance:
            raise ValueError(
                f"net.learn_sigma={net.flags()['learn_sigma']} does not match diffusion.variance="
                f"{diffusion.variance!r} (learned variances need learn_sigma, fixed ones must not have it)"
            )

    # ------------------------------------------------------------------ weights

    def load_net_weights(self, state: dict[str, Tensor], source: str) -> None:
        load_weights(self.net, state, source, f"net {self.net_config.preset or 'UNet'}")

    def load_classifier_weights(self, state: dict[str, Tensor], source: str) -> None:
        if self.classifier is None:
            raise ValueError(f"{source}: a classifier checkpoint was given but model.classifier is not configured")
        load_weights(self.classifier, state, source, "the classifier")

    # ------------------------------------------------------------------ sampling

    def forward_net(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """The network (compiled if asked) on x in the configured memory layout."""
        net = self._compiled.get("net", self.net)
        return net(x.contiguous(memory_format=self.memory_format), timesteps, y)

    @property
    def network_calls_per_image(self) -> int:
        return self.sampler.network_calls(self.times)

    def _noise(self, ids: Tensor, device: torch.device) -> NoiseSource:
        if self.noise_mode == "global":
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                if torch.distributed.get_world_size() > 1:  # every process would draw the same stream
                    raise ValueError(
                        f"model.noise='global' draws one stream per process: it cannot run on "
                        f"{torch.distributed.get_world_size()} processes; use one device or model.noise=per_sample"
                    )
            if not self._global_noise_seeded:
                torch.manual_seed(self.seed)
                self._global_noise_seeded = True
            return GlobalNoise(len(ids), device)
        return PerSampleNoise(self.seed, ids.tolist(), device)

    def inpaint(
        self,
        image: Tensor,
        keep_mask: Tensor,
        ids: Tensor,
        y: Optional[Tensor] = None,
        times: Optional[list[int]] = None,
        on_step: Optional[StepHook] = None,
        *,
        prompts: Optional[Sequence[str]] = None,
        negative_prompts: Optional[Sequence[str]] = None,
        start: Optional[SamplerState] = None,
    ) -> Tensor:
        """Inpaint a batch; returns the final picture in [-1, 1] (float32), pasted if ``paste_known``.

        ``image`` ``[B, C, H, W]`` in [-1, 1]; ``keep_mask`` ``[B, 1|C, H, W]`` (1 = known); ``ids`` seed
        the samples' generators; ``y`` class labels and ``prompts`` one text per image (optional).
        ``start`` continues from a saved state (``times``: the rest of the table from the saved level,
        None: the saved table's rest); the step hooks see states in the sampler's space.
        """
        noise = self._noise(ids, image.device)
        cond = Conditioning(image.shape[0], image.device, y, prompts, negative_prompts)
        model_fn, grad_fn = self.denoiser.bind(cond, noise)
        x0, mask = self.space.encode(image.float()), self.space.mask(keep_mask.float())
        x_start, start_index = None, 0
        if start is not None:
            times, x_start, start_index = start.continue_times(times), start.x.to(x0), start.index + 1
            if start.noise_state is not None:
                noise.set_state(start.noise_state)
        hooks = [h for h in (*self.step_hooks, on_step) if h is not None]
        z = self.sampler(
            model_fn,
            x0,
            mask,
            times or self.times,
            self.sampling.to(image.device),
            noise,
            grad_fn=grad_fn,
            clip_x0=self.denoiser.clip_x0 or False,
            x_start=x_start,
            start_index=start_index,
            on_step=(lambda s: [h(s) for h in hooks]) if hooks else None,
        )
        result = self.space.decode(z)
        return self.space.paste(result, image.float(), keep_mask.float()) if self.paste_known else result

    def sample(self, ids: Tensor, image_size: Optional[int] = None, y: Optional[Tensor] = None) -> Tensor:
        """Unconditional ancestral samples (RePaint with nothing known and no jumps)."""
        if self.net is None:
            raise ValueError("sample(): unconditional previews need the ADM net (model.net)")
        size = image_size or self.net.image_size
        blank = torch.zeros(len(ids), self.net.in_channels, size, size, device=self.device)
        plain = list(range(self.sampling.num_timesteps - 1, -2, -1))
        return self.inpaint(blank, torch.zeros_like(blank[:, :1]), ids, y, times=plain)

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """RePaint on the items of a batch that are neither ``done`` (outputs exist) nor bad (``error``).

        Returns the batch with ``inpainted`` (NaN for skipped items), ``sampled`` (per item),
        ``seconds`` (per sampled image) and ``network_calls`` (per image).
        """
        size = len(batch["id"])
        done, errors = batch.get("done", [False] * size), batch.get("error", [""] * size)
        for name, error in zip(batch.get("name", [""] * size), errors):
            if error:
                log.warning("skipped %s: %s", name, error)
        todo = [not d and not e for d, e in zip(done, errors)]
        inpainted = torch.full_like(batch["image"], float("nan"), dtype=torch.float32)
        seconds = 0.0
        if any(todo):
            idx = torch.tensor([i for i, t in enumerate(todo) if t], device=batch["image"].device)
            y = batch.get("y")
            start = time.perf_counter()
            prompts = [batch["prompt"][i] for i in idx.tolist()] if batch.get("prompt") is not None else None
            result = self.inpaint(
                batch["image"][idx],
                batch["keep_mask"][idx],
                batch["id"][idx],
                y[idx] if y is not None else None,
                prompts=prompts,
                start=batch.get("start"),  # callbacks.states: the todo items' saved states, to branch from
            )
            if result.is_cuda:
                torch.cuda.synchronize(result.device)
            seconds = (time.perf_counter() - start) / len(idx)
            inpainted[idx] = result
        return dict(
            batch,
            inpainted=inpainted,
            sampled=todo,
            seconds=seconds,
            network_calls=batch.get("network_calls", self.network_calls_per_image),  # a branch: its own calls
        )

    # ------------------------------------------------------------------ training

    def diffusion_losses(self, batch: dict[str, Any], generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
        """Per-sample losses at random timesteps t ~ U{0..T-1} with random ε (from ``generator`` if given).

        The loss math runs in float32 whatever the trainer's precision (the network in its own).
        """
        x0 = batch["image"].float()
        d = self.training_diffusion.to(x0.device)
        t, noise = self.draw_training_noise(x0, d.num_timesteps, generator)
        x_t = q_sample(d, x0, t, noise)
        y = batch.get("y") if self.net.num_classes is not None else None
        out = self.forward_net(x_t, d.model_time(t), y).float()
        return training_losses(d, out, x0, x_t, t, noise)

    @staticmethod
    def draw_training_noise(
        x0: Tensor, num_timesteps: int, generator: Optional[torch.Generator] = None
    ) -> tuple[Tensor, Tensor]:
        """(t ``[B]`` uniform in {0..T-1}, ε ``[B, C, H, W]`` float32 standard normal) for a batch x0."""
        t = torch.randint(0, num_timesteps, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=torch.float32)
        return t, noise

    def training_generator(self, batch_idx: int) -> torch.Generator:
        """The generator of t and ε for this process and optimizer step: seeded from (seed, rank, global step,
        micro-batch within gradient accumulation), so that every process draws its own numbers and a resumed
        run draws what an uninterrupted one would at the same step."""
        trainer = self._trainer
        rank, step = (trainer.global_rank, trainer.global_step) if trainer is not None else (0, 0)
        micro = batch_idx % trainer.accumulate_grad_batches if trainer is not None else 0
        seed = sample_seed(sample_seed(sample_seed(self.seed, rank), step), micro)
        return torch.Generator(self.device).manual_seed(seed)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.diffusion_losses(batch, self.training_generator(batch_idx))
        self.log_dict(
            {f"train/{k}": v.mean() for k, v in losses.items()}, prog_bar=True, batch_size=len(batch["image"])
        )
        return losses["loss"].mean()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss on held-out data with the same t and ε at every validation (comparable over training)."""
        generator = torch.Generator(self.device).manual_seed(batch_idx)
        losses = self.diffusion_losses(batch, generator)
        self.log_dict({f"val/{k}": v.mean() for k, v in losses.items()}, batch_size=len(batch["image"]), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)


__all__ = ["RePaintModule", "StepState", "SamplerState"]
