"""RePaintModule: the LightningModule that composes a denoiser, a space and a sampler.

Thin by design: encode → bind → sample → decode → paste, and training through the denoiser.  The
math lives in ``diffusion`` (the process and its one decoder), the loop in ``sampling``, the networks
in ``denoisers`` / ``nets``.

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
from .diffusion import Diffusion, DiffusionConfig, q_sample, training_losses
from .nets import ClassifierConfig, UNetConfig
from .nets.adm import Attention
from .noise import GlobalNoise, NoiseSource, PerSampleNoise, check_global_noise, sample_seed
from .sampling import RePaintSampler, Sampler, SamplerState, StepHook, StepState
from .schedules import JumpSchedule, TimeTable
from .spaces import PixelSpace, Space

log = logging.getLogger(__name__)


def _as(cls: type, value: Any) -> Any:
    """Accept a config object or its dict (as stored in a checkpoint's hyper-parameters)."""
    return cls(**value) if isinstance(value, dict) else value


class RePaintModule(L.LightningModule):
    """A denoiser in a space, inpainting with RePaint (or another sampler); a denoiser that trains trains here.

    Args:
        denoiser: the model family (``repaint_pl.denoisers.DiffusersDenoiser``, ``StableDiffusionDenoiser``,
            …); None: guided-diffusion's ADM UNet built from the ADM arguments below (``ADMDenoiser``).
        space: ``PixelSpace`` (default) or ``LatentSpace`` (Stable Diffusion's VAE).
        sampler: ``RePaintSampler`` (default) or another sampler of ``repaint_pl.sampling``.
        schedule: RePaint time table (default: the paper's jumps, 10 steps × 10, from t_T = all respaced steps).
        paste_known: paste the known pixels into the result (None: the space's default: off in pixels,
            as the original writes the raw sample; on in latent spaces).
        noise: ``per_sample`` (one generator per sample id) or ``global`` (the original's stream).
        seed: seeds the per-sample generators (``global``: seeds the device's generator at predict start).
        lr, weight_decay: AdamW settings for training.
        net, diffusion, classifier, classifier_scale, class_label, clip_denoised, attention, channels_last,
            compile: the ADM denoiser's arguments (see ``ADMDenoiser``), kept at the top of the model's
            config under guided-diffusion's names; unused with ``denoiser``.
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
        self.save_hyperparameters(
            {"net": asdict(net), "diffusion": asdict(diffusion), "lr": lr, "weight_decay": weight_decay}
        )
        if denoiser is None:
            denoiser = ADMDenoiser(
                net, diffusion, _as(ClassifierConfig, classifier), classifier_scale, class_label, clip_denoised,
                attention, channels_last, compile,
            )  # fmt: skip
        self.denoiser, self.space, self.sampler, self.schedule = denoiser, space, sampler, schedule
        for name, part in denoiser.parts().items():  # held by the names the checkpoints use (net.*, …)
            self.add_module(name, part)
        self.net, self.classifier = getattr(denoiser, "net", None), getattr(denoiser, "classifier", None)
        self.noise_mode, self.seed, self.lr, self.weight_decay = noise, seed, lr, weight_decay
        self.paste_known = space.paste_by_default if paste_known is None else paste_known
        self.step_hooks: list[StepHook] = []
        self._global_noise_seeded = False
        self._reported: set[str] = set()  # errors of bad inputs already logged in this run

    # ------------------------------------------------------------------ the denoiser's process

    @property
    def sampling(self) -> Diffusion:
        """The respaced sampling process (the denoiser's)."""
        return self.denoiser.diffusion

    @sampling.setter
    def sampling(self, process: Diffusion) -> None:
        self.denoiser.diffusion = process

    @property
    def times(self) -> list[int]:
        """The configured time table over the sampling process."""
        return self.schedule.times(self.sampling.num_timesteps)

    @property
    def diffusion_config(self) -> DiffusionConfig:
        """The ADM denoiser's diffusion config (AttributeError for other denoisers)."""
        return self.denoiser.diffusion_config

    def load_net_weights(self, state: dict[str, Tensor], source: str) -> None:
        self.denoiser.load_net_weights(state, source)

    def load_classifier_weights(self, state: dict[str, Tensor], source: str) -> None:
        self.denoiser.load_classifier_weights(state, source)

    # ------------------------------------------------------------------ sampling

    @property
    def picture_size(self) -> Optional[int]:
        """The picture side the model was made for: an ADM net's ``image_size``, a diffusers UNet's or
        transformer's ``sample_size`` (× the VAE's factor in a latent space); None when it does not say."""
        if self.net is not None and getattr(self.net, "image_size", None):
            return int(self.net.image_size)
        network = getattr(self.denoiser, "unet", None) or getattr(self.denoiser, "transformer", None)
        sample = getattr(getattr(network, "config", None), "sample_size", None)
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * int(getattr(self.space, "factor", 1)) if sample else None

    @property
    def network_calls_per_image(self) -> int:
        return self.sampler.network_calls(self.times)

    def _noise(self, ids: Tensor, device: torch.device) -> NoiseSource:
        if self.noise_mode == "global":
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                check_global_noise(torch.distributed.get_world_size())
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
        cond = Conditioning(
            image.shape[0], image.device, y, prompts, negative_prompts, image.float(), keep_mask.float(), self.space
        )
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
        # RePaint with nothing known and no jumps
        size = image_size or self.net.image_size
        blank = torch.zeros(len(ids), self.net.in_channels, size, size, device=self.device)
        plain = list(range(self.sampling.num_timesteps - 1, -2, -1))
        return self.inpaint(blank, torch.zeros_like(blank[:, :1]), ids, y, times=plain)

    def on_predict_start(self) -> None:
        self._reported = set()

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """RePaint on the items of a batch that are neither ``done`` (outputs exist) nor bad (``error``).

        Returns the batch with ``inpainted`` (NaN for skipped items), ``sampled`` (per item),
        ``seconds`` (the batch's sampling time divided by the images sampled in it: one value for the batch,
        since timing each image would mean sampling them one by one) and ``network_calls`` (per image).
        """
        size = len(batch["id"])
        done, errors = batch.get("done", [False] * size), batch.get("error", [""] * size)
        for name, error in zip(batch.get("name", [""] * size), errors):
            if error and error not in self._reported:  # a bad input under several mask types: one line
                self._reported.add(error)
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
        if self.denoiser.training_process is None:
            raise self.denoiser.not_trained()
        d = self.denoiser.training_process.to(x0.device)
        t, noise = self.draw_training_noise(x0, d.num_timesteps, generator)
        x_t = q_sample(d, x0, t, noise)
        return training_losses(d, self.denoiser.train_output(x_t, t, batch.get("y")), x0, x_t, t, noise)

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
        return torch.optim.AdamW(self.denoiser.trainable_parameters(), lr=self.lr, weight_decay=self.weight_decay)


__all__ = ["RePaintModule", "StepState", "SamplerState"]
