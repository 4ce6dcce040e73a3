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
from typing import Any, Literal, Optional

import lightning as L
import torch
from jsonargparse import lazy_instance
from torch import Tensor

from .denoisers import adm_model_fn, classifier_grad_fn
from .diffusion import DiffusionConfig, q_sample, training_losses
from .nets import ClassifierConfig, UNetConfig, load_weights
from .nets.adm import Attention
from .nets.presets import NUM_CLASSES
from .noise import GlobalNoise, NoiseSource, PerSampleNoise
from .sampler import StepHook, StepState, repaint
from .schedules import JumpSchedule, TimeTable, count_network_calls

log = logging.getLogger(__name__)


def _as(cls: type, value: Any) -> Any:
    """Accept a config object or its dict (as stored in a checkpoint's hyper-parameters)."""
    return cls(**value) if isinstance(value, dict) else value


class RePaintModule(L.LightningModule):
    """A DDPM (guided-diffusion UNet) that inpaints with RePaint and trains with L_simple (+ λ·L_vlb).

    Args:
        net: the UNet (preset name and/or guided-diffusion flags).
        diffusion: the diffusion process the net was trained for, and its respacing for sampling.
        schedule: RePaint time table (default: the paper's jumps, 10 steps × 10, from t_T = all respaced steps).
        classifier: noisy-image classifier for guidance (None: no guidance).
        classifier_scale: guidance scale s (0: no guidance).
        class_label: one class for every image of a class-conditional net (the original's ``cond_y``);
            else the batch's ``y``, else a random class per image from the sample's generator.
        clip_denoised: clip the x0 prediction to [-1, 1].
        paste_known: paste the known pixels into the result (the original writes the raw sample).
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
        paste_known: bool = False,
        noise: Literal["per_sample", "global"] = "per_sample",
        seed: int = 0,
        attention: Attention = "einsum",
        channels_last: bool = False,
        compile: Optional[str] = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
    ):
        super().__init__()
        net, diffusion = _as(UNetConfig, net), _as(DiffusionConfig, diffusion)
        classifier = _as(ClassifierConfig, classifier)
        self.save_hyperparameters(
            {"net": asdict(net), "diffusion": asdict(diffusion), "lr": lr, "weight_decay": weight_decay}
        )
        self.net_config, self.diffusion_config = net, diffusion
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
        self.clip_denoised, self.paste_known = clip_denoised, paste_known
        self.noise_mode, self.seed = noise, seed
        self.lr, self.weight_decay = lr, weight_decay
        self.sampling = diffusion.build(respaced=True)
        self.training_diffusion = diffusion.build(respaced=False)
        self.schedule = schedule
        self.times = schedule.times(self.sampling.num_timesteps)
        self.step_hooks: list[StepHook] = []
        self._global_noise_seeded = False

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
        return count_network_calls(self.times)

    def _noise(self, ids: Tensor, device: torch.device) -> NoiseSource:
        if self.noise_mode == "global":
            if not self._global_noise_seeded:
                torch.manual_seed(self.seed)
                self._global_noise_seeded = True
            return GlobalNoise(len(ids), device)
        return PerSampleNoise(self.seed, ids.tolist(), device)

    def _labels(self, y: Optional[Tensor], noise: NoiseSource, batch_size: int, device: torch.device) -> Tensor:
        """Class per image: ``class_label``, else the batch's ``y``, else random.

        The random draw happens even for unconditional nets, as in the original code, so
        that the noise stream (class, x_T, step noises…) is the same for every model.
        """
        if self.class_label is not None:
            return torch.full((batch_size,), self.class_label, dtype=torch.long, device=device)
        if y is not None:
            return y.to(device=device, dtype=torch.long)
        return noise.randint(NUM_CLASSES)

    def inpaint(
        self,
        image: Tensor,
        keep_mask: Tensor,
        ids: Tensor,
        y: Optional[Tensor] = None,
        times: Optional[list[int]] = None,
        on_step: Optional[StepHook] = None,
    ) -> Tensor:
        """RePaint on a batch; returns the final x_0 in [-1, 1] (float32)."""
        noise = self._noise(ids, image.device)
        labels = self._labels(y, noise, image.shape[0], image.device)
        d = self.sampling.to(image.device)
        model_fn = adm_model_fn(self.forward_net, d, labels if self.net.num_classes is not None else None)
        grad_fn = None
        if self.classifier is not None and self.classifier_scale > 0:
            grad_fn = classifier_grad_fn(self.classifier, d, labels, self.classifier_scale)
        hooks = [h for h in (*self.step_hooks, on_step) if h is not None]
        return repaint(
            model_fn,
            image.float(),
            keep_mask.float(),
            times or self.times,
            d,
            noise,
            grad_fn=grad_fn,
            clip_x0=self.clip_denoised,
            paste_known=self.paste_known,
            on_step=(lambda s: [h(s) for h in hooks]) if hooks else None,
        )

    def sample(self, ids: Tensor, image_size: Optional[int] = None, y: Optional[Tensor] = None) -> Tensor:
        """Unconditional ancestral samples (RePaint with nothing known and no jumps)."""
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
            result = self.inpaint(
                batch["image"][idx], batch["keep_mask"][idx], batch["id"][idx], y[idx] if y is not None else None
            )
            if result.is_cuda:
                torch.cuda.synchronize(result.device)
            seconds = (time.perf_counter() - start) / len(idx)
            inpainted[idx] = result
        return dict(
            batch, inpainted=inpainted, sampled=todo, seconds=seconds, network_calls=self.network_calls_per_image
        )

    # ------------------------------------------------------------------ training

    def diffusion_losses(self, batch: dict[str, Any], generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
        """Per-sample losses at random timesteps t ~ U{0..T-1} with random ε (from ``generator`` if given)."""
        x0 = batch["image"]
        d = self.training_diffusion.to(x0.device)
        t = torch.randint(0, d.num_timesteps, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        x_t = q_sample(d, x0, t, noise)
        y = batch.get("y") if self.net.num_classes is not None else None
        out = self.forward_net(x_t, d.model_time(t), y)
        return training_losses(d, out, x0, x_t, t, noise)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.diffusion_losses(batch)
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


__all__ = ["RePaintModule", "StepState"]
