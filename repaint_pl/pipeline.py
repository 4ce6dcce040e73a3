"""Inpaint pictures from Python: ``RePaintPipeline``, the same engine as eval.py behind a diffusers-style call.

    from repaint_pl.pipeline import RePaintPipeline
    pipe = RePaintPipeline.from_pretrained()                      # the shipped texture model
    out = pipe(image=picture, mask_image=mask, seed=0)            # PIL in, PIL out
    out.images[0].save("filled.png"); print(out.network_calls, out.seconds)

``from_pretrained`` takes nothing (the shipped texture model), a config file, an ADM checkpoint (a released
file name picks its preset, or ``preset="celeba256"``; a train.py ``.ckpt`` brings its architecture), or a
diffusers folder (pixel DDPM, Stable Diffusion …; a single ``.safetensors`` file with ``config_dir``).  It
builds the model exactly as eval.py does (``repaint_pl.cli.load_model``): same denoisers, spaces, samplers,
time tables and per-sample generators, so the same seed and sample id give eval.py's noise.

Pictures: PIL images, uint8 arrays ``[H, W, C]`` or float tensors ``[C, H, W]`` in [-1, 1]; masks: PIL,
arrays or tensors ``[H, W]``/``[1, H, W]``, 255 (or 1) = known with ``mask_convention="keep"`` (eval.py's),
= to fill with ``"fill"`` (diffusers', IOPaint's).  A picture of another size than the model's is either
resized and centre-cropped like eval.py (``crop_to_mask=None``; a hole that the crop loses is refused or
warned about) or, with ``crop_to_mask=PAD``, inpainted crop by crop around its holes and stitched back into
the full picture (``repaint_pl.crops``), every known pixel byte-equal to the input.
"""

from __future__ import annotations

import copy
import importlib
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Sequence, Union

import numpy as np
import torch
import yaml
from PIL import Image
from torch import Tensor

from .crops import inpaint_crops
from .paths import config_path
from .sampling import Sampler, SamplerState, StepState

Picture = Union[Image.Image, np.ndarray, Tensor]
OutputType = Literal["pil", "np", "pt"]
StepCallback = Callable[["RePaintPipeline", int, int, dict[str, Any]], Any]
CROP_IDS = 1024  # sample id of crop k of picture i: i · CROP_IDS + k


class PipelineError(ValueError):
    """An argument of the pipeline that cannot be used (one line naming it)."""


@dataclass
class RePaintOutput:
    """``images`` (PIL, uint8 arrays, or tensors in [-1, 1]: a stacked ``[B, C, H, W]`` when all have one size),
    and per image ``network_calls`` and ``seconds`` (the batch's sampling time divided by its images)."""

    images: Any
    network_calls: list[int]
    seconds: list[float]


@dataclass
class BranchPoint:
    """A saved point of a run (``RePaintPipeline.save_state``): the samplers' state after transition ``index``
    of the run's table, the prepared inputs, and the uninterrupted run's ``output``."""

    state: SamplerState
    inputs: list[tuple[np.ndarray, np.ndarray]]  # the pictures at the model's size (uint8) and keep masks (bool)
    ids: Tensor
    seed: int
    prompts: Optional[list[str]]
    negative_prompts: Optional[list[str]]
    output: RePaintOutput
    steps: int


def _sampler(spec: Union[str, Sampler]) -> Sampler:
    """A sampler instance: given, or by name (``repaint``, ``fast``, ``ddim_repaint``, ``ddnm``, ``diffpir``:
    the class and arguments of ``configs/sampler/<name>.yaml``)."""
    if isinstance(spec, Sampler):
        return spec
    path = config_path("sampler", f"{spec}.yaml")
    if not os.path.isfile(path):
        names = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.dirname(path)))
        raise PipelineError(f"sampler={spec!r}: unknown; known: {', '.join(names)}")
    with open(path) as f:
        entry = yaml.safe_load(f)["model"]["sampler"]
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**(entry.get("init_args") or {}))


def _schedule(schedule: Any, jump_length: Optional[int], jump_n_sample: Optional[int]) -> Any:
    """The module's time table with RePaint's jump length / resamplings replaced (a copy)."""
    if jump_length is None and jump_n_sample is None:
        return schedule
    from .schedules import JumpSchedule

    changed = copy.deepcopy(schedule)
    params = getattr(changed, "params", None)
    for key, value in (("jump_length", jump_length), ("jump_n_sample", jump_n_sample)):
        if value is None:
            continue
        if isinstance(params, dict) and key in params:
            params[key] = int(value)
        elif hasattr(changed, key):
            setattr(changed, key, int(value))
        else:
            return JumpSchedule(jump_length=jump_length or 10, jump_n_sample=jump_n_sample or 10)
    return changed


def _model_args(source: Optional[str], preset: Optional[str], config_dir: Optional[str]) -> list[str]:
    """eval.py's model flags for a ``from_pretrained`` source."""
    if source is None or source == "texture":
        return []
    if source.endswith((".yaml", ".yml")):
        return ["--config", source]
    if source.endswith((".pt", ".ckpt")) and not os.path.isdir(source):
        preset_file = config_path("model", f"{preset}.yaml") if preset else None
        if preset_file and os.path.isfile(preset_file):  # a released model's config (net, diffusion, classifier)
            return ["--config", preset_file, "--ckpt", source]
        return (["--model.net.preset", preset] if preset else []) + ["--ckpt", source]
    return ["--pretrained", source] + (["--config_dir", config_dir] if config_dir else [])


def picture_format(cli: Any) -> tuple[Optional[int], int]:
    """(picture side, channels) of a model loaded by ``repaint_pl.cli.load_model``: the data config's size when
    one was given (the texture model fills 64² crops with a net trained on 32²), else the model's own."""
    from repaint_pl.datamodules.folders import module_channels

    model, dm = cli.model, cli.datamodule
    given = None if getattr(cli, "data_is_fallback", False) else dm
    size = getattr(given, "eval_size", None) or getattr(given, "image_size", None) or model.picture_size
    return (int(size) if size else None), module_channels(model) or 3


class RePaintPipeline:
    """RePaint (or another sampler of the project) on pictures given in Python; see the module docstring.

    Args:
        model: a ``RePaintModule`` (weights loaded); image_size: the model's picture side;
        channels: 1 (grey) or 3; device: where it samples.
    """

    def __init__(self, model: Any, image_size: int, channels: int = 3, device: Union[str, torch.device] = "cpu"):
        self.model = model.eval().to(device)
        self.image_size, self.channels, self.device = int(image_size), int(channels), torch.device(device)

    @classmethod
    def from_pretrained(
        cls,
        source: Optional[str] = None,
        *,
        preset: Optional[str] = None,
        config_dir: Optional[str] = None,
        image_size: Optional[int] = None,
        device: Optional[str] = None,
        args: Sequence[str] = (),
    ) -> "RePaintPipeline":
        """A pipeline for ``source`` (None: the shipped texture model; a config ``.yaml``; an ADM ``.pt``/``.ckpt``
        with an optional ``preset``; a diffusers folder, or a single file with ``config_dir``), built as
        eval.py builds it; ``args``: more eval.py flags (``["--model.sampler", "…"]``); ``device``: default
        ``cuda`` when available."""
        from .cli import load_model

        cli = load_model(_model_args(source, preset, config_dir) + list(args))
        size, channels = picture_format(cli)
        size = image_size or size
        if not size:
            raise PipelineError(f"{source}: the model does not say its picture size; pass image_size=")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(cli.model, int(size), channels, device)

    # ------------------------------------------------------------------ inputs

    def _uint8(self, picture: Picture, name: str) -> np.ndarray:
        """A picture as uint8 ``[H, W, C]`` with the model's channels."""
        from repaint_pl.datamodules.images import to_8bit

        mode = "RGB" if self.channels == 3 else "L"
        if isinstance(picture, Image.Image):
            arr = np.asarray(to_8bit(picture, mode, name))
        elif isinstance(picture, Tensor):
            if picture.dim() != 3:
                raise PipelineError(f"{name}: a tensor picture is [C, H, W] in [-1, 1], got {list(picture.shape)}")
            arr = ((picture.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        elif isinstance(picture, np.ndarray) and picture.dtype == np.uint8 and picture.ndim in (2, 3):
            arr = picture
        else:
            raise PipelineError(f"{name}: expected a PIL image, a uint8 array [H, W, C] or a tensor [C, H, W]")
        arr = arr[..., None] if arr.ndim == 2 else arr
        if arr.shape[2] != self.channels:
            arr = np.asarray(Image.fromarray(arr.squeeze(-1) if arr.shape[2] == 1 else arr[..., :3]).convert(mode))
        return arr[..., None] if arr.ndim == 2 else arr

    def _keep(self, mask: Picture, shape: tuple[int, int], convention: str, name: str) -> np.ndarray:
        """A mask as bool ``[H, W]``, True = known."""
        from repaint_pl.datamodules.folders import INVERTED_FILL
        from repaint_pl.datamodules.images import mask_levels

        if isinstance(mask, Image.Image):
            known = mask_levels(mask, name).astype(np.float32) / 255.0
        else:
            arr = mask.detach().float().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
            known = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)
        known = known.squeeze(0) if known.ndim == 3 and known.shape[0] == 1 else known
        known = known.min(axis=-1) if known.ndim == 3 else known
        if known.shape != shape:
            raise PipelineError(f"{name}: mask is {known.shape[1]}x{known.shape[0]}, its picture {shape[1]}x{shape[0]}")
        keep = known >= 0.5
        keep = ~keep if convention == "fill" else keep
        if (~keep).mean() > INVERTED_FILL:
            warnings.warn(f"{name}: more than 95 % of the picture is to be filled; if white means 'fill' in this "
                          f"mask, pass mask_convention='fill'", stacklevel=3)  # fmt: skip
        return keep

    def _model_size(self, picture: np.ndarray, keep: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Picture and keep mask resized and centre-cropped like eval.py: uint8 ``[S, S, C]``, bool ``[S, S]``."""
        from repaint_pl.datamodules.folders import LOST_WARN
        from repaint_pl.datamodules.images import center_crop_resize, hole_lost_fraction

        size = self.image_size
        image = center_crop_resize(Image.fromarray(picture.squeeze(-1) if self.channels == 1 else picture), size)
        known = center_crop_resize(Image.fromarray(keep.astype(np.uint8) * 255), size) >= 128
        lost = hole_lost_fraction(keep)
        if (~keep).any() and known.all():
            raise PipelineError(f"{name}: the hole lies outside the model's centre crop; pass crop_to_mask=32")
        if lost > LOST_WARN:
            warnings.warn(f"{name}: the centre crop loses {lost:.0%} of the hole; crop_to_mask=32 keeps all of it",
                          stacklevel=3)  # fmt: skip
        return (image[..., None] if image.ndim == 2 else image), known

    @staticmethod
    def _tensors(batch: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor]:
        """uint8 pictures ``[S, S, C]`` and bool keep masks -> ``[B, C, S, S]`` in [-1, 1] and ``[B, 1, S, S]``."""
        images = torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1 for a, _ in batch])
        return images, torch.stack([torch.from_numpy(k).float()[None] for _, k in batch])

    @staticmethod
    def _pasted(result: Tensor, picture: np.ndarray, known: np.ndarray, paste_known: bool) -> np.ndarray:
        """The result as uint8 ``[S, S, C]``, its known pixels the input's bytes when ``paste_known``."""
        from repaint_pl.callbacks.writer import to_uint8

        out = to_uint8(result)
        if paste_known:
            out[known] = picture[known]
        return out

    # ------------------------------------------------------------------ the engine

    def _engine(
        self,
        image: Tensor,
        keep: Tensor,
        ids: Tensor,
        seed: int,
        prompts: Optional[list[str]],
        negative_prompts: Optional[list[str]],
        on_step: Optional[Callable[[StepState], None]],
        start: Optional[SamplerState] = None,
        times: Optional[list[int]] = None,
    ) -> Tensor:
        """``RePaintModule.inpaint`` on a batch of model-size pictures; ``[B, C, S, S]`` in [-1, 1] on the CPU
        (pasted as the module pastes: raw in pixel spaces, the known pixels in latent ones)."""
        model = self.model
        model.seed = int(seed)
        with torch.no_grad() if not self._needs_grad() else torch.enable_grad():
            result = model.inpaint(
                image.to(self.device), keep.to(self.device), ids.to(self.device), times=times, on_step=on_step,
                prompts=prompts, negative_prompts=negative_prompts, start=start,
            )  # fmt: skip
        return result.detach().float().cpu()

    def _needs_grad(self) -> bool:
        return getattr(self.model.denoiser, "classifier", None) is not None

    def _step_hook(self, callback: Optional[StepCallback]) -> Optional[Callable[[StepState], None]]:
        if callback is None:
            return None
        return lambda s: callback(self, s.index, s.t_to, {"x": s.x, "x0_pred": s.x0_pred, "t_from": s.t_from})

    def _configured(self, steps: Optional[int], jump_length: Optional[int], jump_n_sample: Optional[int],
                    sampler: Optional[Union[str, Sampler]]) -> "_Settings":  # fmt: skip
        return _Settings(self.model, steps, _schedule(self.model.schedule, jump_length, jump_n_sample),
                         _sampler(sampler) if sampler is not None else None)  # fmt: skip

    # ------------------------------------------------------------------ the call

    def __call__(
        self,
        image: Union[Picture, Sequence[Picture]],
        mask_image: Union[Picture, Sequence[Picture]],
        prompt: Union[None, str, Sequence[str]] = None,
        negative_prompt: Union[None, str, Sequence[str]] = None,
        *,
        steps: Optional[int] = None,
        jump_length: Optional[int] = None,
        jump_n_sample: Optional[int] = None,
        sampler: Optional[Union[str, Sampler]] = None,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        callback_on_step_end: Optional[StepCallback] = None,
        output_type: OutputType = "pil",
        crop_to_mask: Optional[int] = None,
        feather: int = 0,
        mask_convention: Literal["keep", "fill"] = "keep",
        paste_known: bool = True,
    ) -> RePaintOutput:
        """Inpaint ``image`` (one or a list) under ``mask_image`` (one, or one per image).

        ``steps`` (respaced steps), ``jump_length``/``jump_n_sample`` (RePaint's schedule) and ``sampler`` (a
        name of ``configs/sampler/`` or a ``Sampler``) apply to this call only.  ``seed`` seeds every
        picture's own generator (picture i has sample id i, or ``i·1024 + k`` for its crop k); ``generator``
        draws that seed instead (diffusers style).  ``callback_on_step_end(pipe, index, t, {"x", "x0_pred",
        "t_from"})`` is called after every transition of the time table (its return value is ignored).
        ``crop_to_mask=PAD``: crop-and-stitch with PAD pixels of context (``feather``: blend that many known
        pixels at the seam).  ``paste_known``: the known pixels are the input's (False: the raw sample, as
        eval.py writes it for the released models).
        """
        pictures, masks = self._lists(image, mask_image)
        seed = self._seed(seed, generator)
        prompts, negatives = self._texts(prompt, len(pictures)), self._texts(negative_prompt, len(pictures))
        hook = self._step_hook(callback_on_step_end)
        with self._configured(steps, jump_length, jump_n_sample, sampler) as settings:
            start = time.perf_counter()
            if crop_to_mask is None:
                results = self._whole(pictures, masks, mask_convention, seed, prompts, negatives, hook, paste_known)
                calls = [settings.calls] * len(results)
            else:
                results, crops = self._cropped(pictures, masks, mask_convention, seed, prompts, negatives, hook,
                                               int(crop_to_mask), feather)  # fmt: skip
                calls = [settings.calls * k for k in crops]
            seconds = (time.perf_counter() - start) / max(1, len(results))
        return RePaintOutput(self._convert(results, output_type), calls, [seconds] * len(results))

    def _lists(self, image: Any, mask_image: Any) -> tuple[list[Picture], list[Picture]]:
        pictures = list(image) if isinstance(image, (list, tuple)) else [image]
        masks = list(mask_image) if isinstance(mask_image, (list, tuple)) else [mask_image] * len(pictures)
        if len(masks) != len(pictures):
            raise PipelineError(f"mask_image: {len(masks)} masks for {len(pictures)} pictures")
        return pictures, masks

    @staticmethod
    def _seed(seed: Optional[int], generator: Optional[torch.Generator]) -> int:
        if generator is not None:
            return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return int(seed) if seed is not None else 0

    @staticmethod
    def _texts(text: Union[None, str, Sequence[str]], n: int) -> Optional[list[str]]:
        if text is None:
            return None
        texts = [text] * n if isinstance(text, str) else list(text)
        if len(texts) != n:
            raise PipelineError(f"prompt: {len(texts)} texts for {n} pictures")
        return texts

    def _prepared(self, pictures: list[Picture], masks: list[Picture], convention: str) -> list[tuple]:
        """(uint8 picture, bool keep, name) per input, checked."""
        out = []
        for i, (picture, mask) in enumerate(zip(pictures, masks)):
            arr = self._uint8(picture, f"image[{i}]")
            out.append((arr, self._keep(mask, arr.shape[:2], convention, f"mask_image[{i}]"), f"image[{i}]"))
        return out

    def _whole(self, pictures, masks, convention, seed, prompts, negatives, hook, paste_known) -> list[np.ndarray]:
        batch = [self._model_size(a, k, n) for a, k, n in self._prepared(pictures, masks, convention)]
        image, keep = self._tensors(batch)
        result = self._engine(image, keep, torch.arange(len(batch)), seed, prompts, negatives, hook)
        return [self._pasted(r, a, k, paste_known) for r, (a, k) in zip(result, batch)]

    def _cropped(self, pictures, masks, convention, seed, prompts, negatives, hook, pad, feather):
        """Crop-and-stitch each picture (all its crops in one batch); (uint8 results, crops per picture)."""
        factor = int(getattr(self.model.space, "factor", 1))
        results, crops = [], []
        for i, (arr, keep, _) in enumerate(self._prepared(pictures, masks, convention)):
            counted = []

            def fill(images: Tensor, keeps: Tensor, i: int = i, counted: list = counted) -> Tensor:
                counted.append(len(images))
                ids = torch.arange(len(images)) + i * CROP_IDS
                text = (lambda t: None if t is None else [t[i]] * len(images))
                return self._engine(images, keeps, ids, seed, text(prompts), text(negatives), hook)

            results.append(inpaint_crops(arr, keep, self.image_size, pad, factor, fill, feather))
            crops.append(sum(counted))
        return results, crops

    @staticmethod
    def _convert(arrays: list[np.ndarray], output_type: OutputType) -> Any:
        """uint8 results ``[H, W, C]`` as PIL images, the arrays, or tensors in [-1, 1] (stacked if one size)."""
        if output_type == "np":
            return arrays
        if output_type == "pil":
            return [Image.fromarray(a.squeeze(-1) if a.shape[-1] == 1 else a) for a in arrays]
        if output_type != "pt":
            raise PipelineError(f"output_type={output_type!r}: expected pil, np or pt")
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 127.5 - 1 for a in arrays]
        return torch.stack(tensors) if len({t.shape for t in tensors}) == 1 else tensors

    # ------------------------------------------------------------------ branching

    def save_state(
        self,
        image: Union[Picture, Sequence[Picture]],
        mask_image: Union[Picture, Sequence[Picture]],
        at: int,
        prompt: Union[None, str, Sequence[str]] = None,
        negative_prompt: Union[None, str, Sequence[str]] = None,
        *,
        seed: int = 0,
        steps: Optional[int] = None,
        mask_convention: Literal["keep", "fill"] = "keep",
        paste_known: bool = True,
        output_type: OutputType = "pil",
    ) -> BranchPoint:
        """Run the whole inpainting (pictures at the model's size, as ``crop_to_mask=None``) and keep the
        state after transition ``at`` of the time table; ``resume`` branches from it."""
        pictures, masks = self._lists(image, mask_image)
        batch = [self._model_size(a, k, n) for a, k, n in self._prepared(pictures, masks, mask_convention)]
        (img, keep), ids = self._tensors(batch), torch.arange(len(batch))
        prompts, negatives = self._texts(prompt, len(batch)), self._texts(negative_prompt, len(batch))
        saved: list[SamplerState] = []
        with self._configured(steps, None, None, None) as settings:
            times = self.model.times
            if not 0 <= at < len(times) - 1:
                raise PipelineError(f"at={at}: the time table has transitions 0 … {len(times) - 2}")

            def keep_state(s: StepState) -> None:
                if s.index == at:
                    state = s.noise.get_state() if s.noise is not None else None
                    saved.append(SamplerState(at, list(times), s.x.detach().clone(), s.x0_pred, state))

            start = time.perf_counter()
            result = self._engine(img, keep, ids, seed, prompts, negatives, keep_state)
            seconds = (time.perf_counter() - start) / len(batch)
            pasted = [self._pasted(r, a, k, paste_known) for r, (a, k) in zip(result, batch)]
            output = RePaintOutput(self._convert(pasted, output_type), [settings.calls] * len(batch),
                                   [seconds] * len(batch))  # fmt: skip
            steps_used = self.model.sampling.num_timesteps
        return BranchPoint(saved[0], batch, ids, seed, prompts, negatives, output, steps_used)

    def resume(
        self,
        point: BranchPoint,
        *,
        seed: Optional[int] = None,
        jump_length: Optional[int] = None,
        jump_n_sample: Optional[int] = None,
        times: Literal["schedule", "saved"] = "schedule",
        paste_known: bool = True,
        output_type: OutputType = "pil",
    ) -> RePaintOutput:
        """Continue a saved point: ``times="saved"`` walks the rest of the saved table, ``"schedule"`` the
        schedule (with ``jump_length``/``jump_n_sample``) from the saved level.  With the saved seed the
        generators continue where they stopped (the saved rest gives the uninterrupted run's pictures); another
        ``seed`` draws the rest from fresh generators.  Counts only the network calls after the saved point."""
        from repaint_pl.callbacks.states import branch_tail
        from repaint_pl.schedules import count_network_calls

        state = copy.copy(point.state)
        same_seed = seed is None or int(seed) == point.seed
        state.noise_state = point.state.noise_state if same_seed else None
        with self._configured(point.steps, jump_length, jump_n_sample, None) as settings:
            tail = None if times == "saved" else branch_tail(settings, state.t)
            full = state.continue_times(tail)
            start = time.perf_counter()
            image, keep = self._tensors(point.inputs)
            result = self._engine(image, keep, point.ids, point.seed if same_seed else int(seed), point.prompts,
                                  point.negative_prompts, None, start=state, times=tail)  # fmt: skip
            seconds = (time.perf_counter() - start) / len(point.ids)
        calls = self.model.sampler.network_calls(full) - count_network_calls(full[: state.index + 2])
        pasted = [self._pasted(r, a, k, paste_known) for r, (a, k) in zip(result, point.inputs)]
        return RePaintOutput(self._convert(pasted, output_type), [calls] * len(pasted), [seconds] * len(pasted))


class _Settings:
    """For one call: the model respaced to ``steps``, with ``schedule`` and ``sampler``; restored on exit.
    Exposes ``times``, ``schedule`` and ``sampling`` like the module (``branch_tail`` reads them) and ``calls``."""

    def __init__(self, model: Any, steps: Optional[int], schedule: Any, sampler: Optional[Sampler]):
        self.model, self.steps, self.schedule_, self.sampler = model, steps, schedule, sampler

    def __enter__(self) -> "_Settings":
        m = self.model
        self.saved = (m.schedule, m.sampler, dict(vars(m.denoiser)))
        if self.steps is not None and int(self.steps) != m.sampling.num_timesteps:
            if not hasattr(m.denoiser, "respace"):
                raise PipelineError(f"steps: {type(m.denoiser).__name__} cannot be respaced")
            m.denoiser.respace(int(self.steps))
        m.schedule = self.schedule_
        m.sampler = self.sampler or m.sampler
        return self

    def __exit__(self, *exc: Any) -> None:
        m = self.model
        m.schedule, m.sampler, denoiser = self.saved
        for key in ("diffusion", "diffusion_config"):  # what ``respace`` replaced
            if key in denoiser:
                setattr(m.denoiser, key, denoiser[key])

    @property
    def schedule(self) -> Any:
        return self.model.schedule

    @property
    def sampling(self) -> Any:
        return self.model.sampling

    @property
    def times(self) -> list[int]:
        return self.model.times

    @property
    def calls(self) -> int:
        return self.model.network_calls_per_image


__all__ = ["BranchPoint", "PipelineError", "RePaintOutput", "RePaintPipeline", "picture_format"]
