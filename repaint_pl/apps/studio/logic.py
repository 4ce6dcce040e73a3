"""The studio's logic as plain functions: masks from the editor, schedules from the controls, the branch tree,
live previews and the eval.py config that reproduces a result.  Nothing here imports Gradio.

Pictures cross the page as ``uint8`` arrays ``[H, W]`` (grey) or ``[H, W, C]``; the model sees ``[C, S, S]``
tensors in ``[-1, 1]`` and keep masks ``[1, S, S]`` (1 = known).  The editor's paint is the hole.

A picture larger than the model's size is either fitted (centre square, resized) or, with "crop around the
hole", cropped around its hole (``repaint_pl.crops``: one box around every painted pixel, with context) and
the model's fill stitched back into the full-resolution picture (``CropContext``), every known pixel kept.
"""

from __future__ import annotations

import io
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch
import yaml
from PIL import Image
from torch import Tensor

from repaint_pl.callbacks.writer import to_uint8 as writer_uint8
from repaint_pl.crops import Box, crop, enclosing_box, stitch
from repaint_pl.datamodules.images import ImageFileError, read_image
from repaint_pl.masks import MASK_TYPES, keep_mask
from repaint_pl.sampling import SamplerState, StepState
from repaint_pl.schedules import ExplicitTimes, JumpSchedule, ProfileSchedule, check_times, count_network_calls

MAX_UPLOAD_SIDE = 8000  # a bigger upload is refused from its header, before decoding: 8000² is the decoder's
# pixel limit (datamodules.images.DEFAULT_MAX_PIXELS); big photos are inpainted crop by crop around the hole
# a schedule the page accepts (the queue runs one job at a time: a run must end, and its states fit in memory)
MAX_TRANSITIONS = 40_000  # the paper's 1000 steps with jumps 10×10 are 18 820
MAX_NETWORK_CALLS = 20_000
MAX_JUMP_N_SAMPLE = 100
MAX_TIME_LIST_CHARS = 8 * (MAX_TRANSITIONS + 1)
MAX_VARIANTS = 4
MAX_KEPT_BYTES = 4 << 30  # kept states of one run (every variant), float32
STUDIO_MASK_TYPES = ("thick", "thin", "nn2", "ev2li", "genhalf", "ex64", "box", "outpaint")


class StudioInputError(ValueError):
    """Bad input from the page (upload, mask, time list): the message is shown in the page."""


# --------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------


def as_uint8(picture: Any, what: str = "image") -> np.ndarray:
    """An uploaded picture as a uint8 array ``[H, W]`` or ``[H, W, C]``; a clear error for anything else."""
    if isinstance(picture, Image.Image):
        picture = np.asarray(picture)
    if isinstance(picture, (str, os.PathLike)):
        picture = read_upload(picture, what)
    if not isinstance(picture, np.ndarray) or picture.ndim not in (2, 3) or picture.size == 0:
        raise StudioInputError(f"{what}: not an image")
    h, w = picture.shape[:2]
    if max(h, w) > MAX_UPLOAD_SIDE:
        raise StudioInputError(f"{what}: {w}x{h} is too large (at most {MAX_UPLOAD_SIDE} pixels a side)")
    if picture.dtype != np.uint8:
        picture = np.clip(picture, 0, 255).astype(np.uint8)
    return picture


def read_upload(path: Any, what: str = "image") -> np.ndarray:
    """An uploaded file through the project's guarded decoder: its pixel count is checked from the header
    before decoding, and every failure is one line naming the file by its own name (never the server's temp
    path, never the decoder's own text)."""
    name = os.path.basename(os.fspath(path))
    too_large = f"too large (at most {MAX_UPLOAD_SIDE} pixels a side)"
    try:
        picture = np.asarray(read_image(os.fspath(path), "RGB", name=name, max_pixels=MAX_UPLOAD_SIDE**2))
    except ImageFileError as e:
        reason = str(e)[len(name) + 2 :] if str(e).startswith(f"{name}: ") else str(e)
        if "over the limit" in reason:  # refused from the header
            size = re.match(r"(\d+x\d+) is", reason)
            raise StudioInputError(f"{what}: {name} is {size.group(1) + ', ' if size else ''}{too_large}") from None
        raise StudioInputError(f"{what}: {name} is not an image the studio can use: {reason}") from None
    h, w = picture.shape[:2]
    if max(h, w) > MAX_UPLOAD_SIDE:
        raise StudioInputError(f"{what}: {name} is {w}x{h}, {too_large}")
    return picture


def square_crop_box(h: int, w: int) -> tuple[int, int, int, int]:
    """The centred square (left, top, right, bottom) of an ``h × w`` picture."""
    side = min(h, w)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


def fit_picture(picture: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` (area averaging): uint8 ``[S, S]`` or ``[S, S, 3]``."""
    im = Image.fromarray(picture[..., :3] if picture.ndim == 3 else picture)
    im = im.convert("L" if channels == 1 else "RGB").crop(square_crop_box(picture.shape[0], picture.shape[1]))
    return np.asarray(im.resize((size, size), Image.BOX) if im.size != (size, size) else im)


def to_tensor(picture: np.ndarray) -> Tensor:
    """uint8 ``[S, S]`` / ``[S, S, C]`` -> float ``[C, S, S]`` in [-1, 1]."""
    arr = torch.from_numpy(picture.astype(np.float32) / 127.5 - 1)
    return arr[None] if arr.ndim == 2 else arr.permute(2, 0, 1).contiguous()


def to_uint8(x: Tensor) -> np.ndarray:
    """``[C, S, S]`` in [-1, 1] -> uint8 ``[S, S]`` (grey) or ``[S, S, C]``, exactly as eval.py writes PNGs."""
    arr = writer_uint8(x.detach())
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def enlarge(picture: np.ndarray, side: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement of a small picture so that it is visible in the page (exact pixels)."""
    factor = max(1, side // max(picture.shape[:2]))
    return picture.repeat(factor, 0).repeat(factor, 1) if factor > 1 else picture


# --------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------


def painted_alpha(editor: dict[str, Any]) -> np.ndarray:
    """Where the editor's layers are painted: bool ``[H, W]`` (any layer with alpha > 0)."""
    background = editor.get("background")
    layers = [layer for layer in editor.get("layers") or [] if layer is not None]
    if background is None:
        raise StudioInputError("image: upload a picture or pick an example first")
    h, w = np.asarray(background).shape[:2]
    painted = np.zeros((h, w), bool)
    for layer in layers:
        layer = np.asarray(layer)
        if layer.shape[:2] != (h, w):
            raise StudioInputError(f"mask: a layer is {layer.shape[1]}x{layer.shape[0]}, its picture {w}x{h}")
        painted |= (layer[..., 3] if layer.ndim == 3 and layer.shape[2] == 4 else layer.reshape(h, w, -1)[..., 0]) > 0
    return painted


def hole_to_keep(hole: np.ndarray, size: int, invert: bool = False) -> Tensor:
    """Keep mask ``[1, S, S]`` (1 = known) from a hole map at any size: centre-cropped like the picture,
    and a model pixel is a hole when any painted pixel falls in it (thin strokes stay holes)."""
    h, w = hole.shape
    im = Image.fromarray(hole.astype(np.uint8) * 255).crop(square_crop_box(h, w))
    hole_s = np.asarray(im.resize((size, size), Image.BOX) if im.size != (size, size) else im) > 0
    keep = ~hole_s if not invert else hole_s
    return torch.from_numpy(keep.astype(np.float32))[None]


def mask_from_layers(editor: dict[str, Any], size: int, invert: bool = False) -> Tensor:
    """The painted strokes are the hole (``invert``: the painted part is what is known)."""
    return hole_to_keep(painted_alpha(editor), size, invert)


def mask_from_upload(mask: Any, picture_shape: Sequence[int], size: int, invert: bool = False) -> Tensor:
    """An uploaded mask file (255 = known, as the original RePaint; ``invert`` for LaMa's 255 = hole).

    It must have its picture's size (``picture_shape``) or the model's (``size``); it is binarised at 128
    and cropped and resized like the picture.
    """
    arr = as_uint8(mask, "mask")
    grey = np.asarray(Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("L"))
    if grey.shape[:2] not in (tuple(picture_shape[:2]), (size, size)):
        h, w = picture_shape[:2]
        raise StudioInputError(
            f"mask: it is {grey.shape[1]}x{grey.shape[0]} but the picture is {w}x{h} (or use the model's {size}x{size})"
        )
    hole = grey < 128
    return hole_to_keep(~hole if invert else hole, size)


def upload_hole(mask: Any, picture_shape: Sequence[int], invert: bool = False) -> Optional[np.ndarray]:
    """The hole (bool ``[H, W]``) of an uploaded mask file of its picture's size (255 = known, binarised at
    128; ``invert``: 255 = hole), or None for a mask of another size (the model's: no full-resolution hole)."""
    arr = as_uint8(mask, "mask")
    grey = np.asarray(Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("L"))
    if grey.shape[:2] != tuple(picture_shape[:2]):
        return None
    return grey >= 128 if invert else grey < 128


@dataclass
class CropContext:
    """A big picture inpainted in one crop around its hole: the full-resolution ``picture`` (uint8), its
    ``keep`` mask (bool ``[H, W]``, True = known) and the crop's ``box``."""

    picture: np.ndarray
    keep: np.ndarray
    box: Box

    def stitch(self, result: np.ndarray) -> np.ndarray:
        """The model's fill of the crop (uint8 ``[S, S]`` / ``[S, S, C]``) in the full picture, known bytes kept."""
        fill = to_tensor(result)[None]
        return stitch(self.picture, self.keep, fill, [self.box])

    def describe(self) -> str:
        h, w = self.picture.shape[:2]
        return f"a {self.box.width}x{self.box.height} crop around the hole of the {w}x{h} picture"


def crop_around_hole(
    picture: np.ndarray, hole: np.ndarray, size: int, channels: int, pad: int, factor: int = 1
) -> tuple[np.ndarray, Tensor, CropContext]:
    """The model's input for a big picture: (crop uint8 at ``size``, its keep mask ``[1, S, S]``, the context
    to stitch the fill back).  One box holds every hole pixel plus ``pad`` pixels of context."""
    full = np.asarray(Image.fromarray(picture[..., :3] if picture.ndim == 3 else picture)
                      .convert("L" if channels == 1 else "RGB"))  # fmt: skip
    keep = ~hole
    box = enclosing_box(keep, max(0, int(pad)), size, factor)
    if box is None:
        raise StudioInputError("mask: nothing to fill; paint the hole (or upload a mask) first")
    images, keeps = crop(full, keep, [box], size)
    levels = ((images[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # exact bytes
    return (levels[..., 0] if levels.shape[-1] == 1 else levels), keeps[0], CropContext(full, keep, box)


def generated_mask(kind: str, size: int, seed: int) -> Tensor:
    """One of the paper's (or this project's) mask types, ``[1, S, S]`` (1 = known), as eval.py draws it."""
    if kind not in MASK_TYPES:
        raise StudioInputError(f"mask type {kind!r} is unknown; known: {', '.join(MASK_TYPES)}")
    return keep_mask(kind, size, int(seed), 0)


def masked_view(picture: np.ndarray, keep: Tensor) -> np.ndarray:
    """The picture with its hole greyed out (what the model is given), uint8 RGB ``[S, S, 3]``."""
    rgb = np.asarray(Image.fromarray(picture).convert("RGB")).copy()
    hole = keep[0].numpy() < 0.5
    rgb[hole] = (rgb[hole] * 0.3 + np.array([255, 64, 160]) * 0.7).astype(np.uint8)
    return rgb


# --------------------------------------------------------------------------
# schedules
# --------------------------------------------------------------------------


@dataclass
class ScheduleControls:
    """The schedule controls of the page (``profile``: uniform, early, late; ``explicit``: a time list)."""

    t_T: Optional[int] = None
    jump_length: int = 10
    jump_n_sample: int = 10
    start_resampling: Optional[int] = None
    profile: str = "uniform"
    strength: float = 1.0
    explicit: str = ""


def parse_times(text: str, num_timesteps: int) -> list[int]:
    """An explicit time table from ``"9 8 7 8 7 … -1"`` (spaces or commas); checked like eval.py checks it."""
    if len(text) > MAX_TIME_LIST_CHARS:
        raise StudioInputError(f"time list: too long (at most {MAX_TRANSITIONS} transitions)")
    try:
        times = [int(tok) for tok in text.replace(",", " ").split()]
    except ValueError:
        raise StudioInputError("time list: only integers separated by spaces or commas") from None
    if not times:
        raise StudioInputError("time list: empty")
    if times[0] + 1 > num_timesteps:
        raise StudioInputError(f"time list: starts at t={times[0]}, the model has {num_timesteps} respaced steps")
    check_schedule_size(times, "time list")
    try:
        check_times(times, times[0] + 1)
    except ValueError as e:
        raise StudioInputError(str(e)) from None
    return times


def check_schedule_size(times: Sequence[int], what: str = "schedule") -> None:
    """Refuse (one line) a table longer than ``MAX_TRANSITIONS`` or costing more than ``MAX_NETWORK_CALLS``."""
    if len(times) - 1 > MAX_TRANSITIONS:
        raise StudioInputError(f"{what}: {len(times) - 1} transitions, at most {MAX_TRANSITIONS} in the studio")
    calls = count_network_calls(times)
    if calls > MAX_NETWORK_CALLS:
        raise StudioInputError(f"{what}: {calls} network calls, at most {MAX_NETWORK_CALLS} in the studio")


def check_run_size(variants: int, kept: int, state_numel: int) -> None:
    """Refuse (one line) more variants than ``MAX_VARIANTS`` or kept states beyond ``MAX_KEPT_BYTES``."""
    if not 1 <= int(variants) <= MAX_VARIANTS:
        raise StudioInputError(f"variants: {variants}, expected 1 … {MAX_VARIANTS}")
    size = int(variants) * int(kept) * int(state_numel) * 4
    if size > MAX_KEPT_BYTES:
        raise StudioInputError(
            f"kept states: {kept} per variant would take {size / 2**30:.1f} GiB (at most {MAX_KEPT_BYTES >> 30}); "
            f"keep fewer (a larger k)"
        )


def schedule_table(c: ScheduleControls, num_timesteps: int):
    """The ``TimeTable`` object the controls stand for (what a config would hold)."""
    if c.explicit.strip():
        return ExplicitTimes(parse_times(c.explicit, num_timesteps))
    start = c.start_resampling if c.start_resampling is not None else 100_000_000
    if c.profile == "uniform" and start >= 100_000_000:
        return JumpSchedule(t_T=c.t_T, jump_length=int(c.jump_length), jump_n_sample=int(c.jump_n_sample))
    if c.profile == "uniform":
        return JumpSchedule(
            c.t_T, jump_length=int(c.jump_length), jump_n_sample=int(c.jump_n_sample), start_resampling=int(start)
        )
    return ProfileSchedule(c.t_T, int(c.jump_length), int(c.jump_n_sample), c.profile, float(c.strength))


def schedule_times(c: ScheduleControls, num_timesteps: int) -> list[int]:
    """The time table of the controls for a process of ``num_timesteps`` respaced steps."""
    if int(c.jump_length) < 1 or int(c.jump_n_sample) < 1:
        raise StudioInputError("schedule: jump length and resamplings must be at least 1")
    if not c.explicit.strip():  # before the table is built: its length grows with steps × resamplings
        if int(c.jump_n_sample) > MAX_JUMP_N_SAMPLE:
            raise StudioInputError(
                f"schedule: {c.jump_n_sample} resamplings, at most {MAX_JUMP_N_SAMPLE} in the studio"
            )
        steps = int(c.t_T) if c.t_T is not None else int(num_timesteps)
        estimate = steps * (2 * int(c.jump_n_sample) - 1)
        if estimate > 2 * MAX_TRANSITIONS:
            raise StudioInputError(
                f"schedule: {steps} steps with {c.jump_n_sample} resamplings is about {estimate} transitions, "
                f"at most {MAX_TRANSITIONS} in the studio"
            )
    try:
        times = schedule_table(c, num_timesteps).times(num_timesteps)
    except StudioInputError:
        raise
    except ValueError as e:
        raise StudioInputError(f"schedule: {e}") from None
    check_schedule_size(times)
    return times


def branch_tail(c: ScheduleControls, t: int, num_timesteps: int) -> list[int]:
    """A new rest of the schedule from level ``t`` (a table for ``t_T = t + 1``), from the controls."""
    if c.explicit.strip():
        tail = parse_times(c.explicit, num_timesteps)
        if tail[0] != t:
            raise StudioInputError(f"time list: a branch from t={t} must start at {t}, not {tail[0]}")
        return tail
    return schedule_times(ScheduleControls(**{**vars(c), "t_T": t + 1}), num_timesteps)


def parse_indices(text: str, last: int) -> set[int]:
    """Transition indices from ``"10 25, 40"``, each in ``[0, last]``."""
    try:
        indices = {int(tok) for tok in (text or "").replace(",", " ").split()}
    except ValueError:
        raise StudioInputError("kept transitions: only integers separated by spaces or commas") from None
    wrong = sorted(i for i in indices if not 0 <= i <= last)
    if wrong:
        raise StudioInputError(f"kept transitions: {wrong[0]} is outside 0 … {last}")
    return indices


def remaining_calls(times: Sequence[int], index: int) -> int:
    """Network calls still to make after transition ``index`` of ``times``."""
    return count_network_calls(times[index + 1 :])


def schedule_plot(
    times: Sequence[int],
    position: Optional[int] = None,
    kept: Sequence[int] = (),
    start: Optional[int] = None,
    title: str = "",
) -> np.ndarray:
    """The time table as an RGB picture: t against transition, the kept states as dots, the current
    transition ``position`` as a red marker (``start``: a branch's first transition, the part before it dimmed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=80)
    xs = np.arange(len(times))
    lo = 0 if start is None else start
    if lo > 0:
        ax.plot(xs[: lo + 1], times[: lo + 1], color="0.75", linewidth=0.9)
    ax.plot(xs[lo:], times[lo:], color="tab:blue", linewidth=0.9)
    kept = [k + 1 for k in kept if 0 <= k + 1 < len(times)]
    if kept:
        ax.plot(kept, [times[k] for k in kept], "o", color="tab:green", markersize=3)
    if position is not None and 0 <= position < len(times):
        ax.axvline(position, color="tab:red", linewidth=0.8)
        ax.plot([position], [times[position]], "o", color="tab:red", markersize=6)
    ax.set_xlabel("transition")
    ax.set_ylabel("t")
    ax.set_title(title or f"{count_network_calls(times)} network calls, {len(times) - 1} transitions", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))


# --------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------


@dataclass
class Progress:
    """Calls done out of ``total`` since ``started`` (perf_counter seconds)."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def line(self, now: Optional[float] = None) -> str:
        """``calls 12 / 40 · 0.150 s/call · 4.2 s left``."""
        elapsed = (now if now is not None else time.perf_counter()) - self.started
        if self.done == 0:
            return f"calls 0 / {self.total}"
        per_call = elapsed / self.done
        left = per_call * (self.total - self.done)
        return f"calls {self.done} / {self.total} · {per_call:.3f} s/call · {left:.1f} s left"


def keep_indices(times: Sequence[int], every: int) -> set[int]:
    """Transitions after which a state is kept: every ``every``-th reverse step (never the last transition;
    ``every`` 0 or empty: none)."""
    every = int(every or 0)
    if every < 1:  # none by count (only the chosen transitions)
        return set()
    reverse = [i for i, (a, b) in enumerate(zip(times[:-1], times[1:])) if b < a]
    return {i for n, i in enumerate(reverse, 1) if n % every == 0 and i < len(times) - 2}


# --------------------------------------------------------------------------
# the branch tree
# --------------------------------------------------------------------------


@dataclass
class Result:
    """One inpainted picture: a root run's variant or a branch of a kept state of another result.

    ``times`` is the full table that led to it (prefix of the parent + the branch's tail), ``calls`` what
    this result cost by itself (a branch: only the calls after its branch point), ``states`` the kept
    states by transition index (``[1, C, h, w]`` each, on the CPU).
    """

    key: int
    picture: np.ndarray  # uint8, the model's size
    times: list[int]
    calls: int
    seed: int
    sample_id: int
    parent: Optional[int] = None
    branch_index: Optional[int] = None  # transition of the parent's table it continues after
    exact_noise: bool = True  # the noise stream continues the parent's (reproducible with eval.py)
    stopped: bool = False
    states: dict[int, SamplerState] = field(default_factory=dict)
    image: Optional[np.ndarray] = None  # the input picture (uint8, the model's size)
    keep: Optional[Tensor] = None  # its keep mask [1, S, S]
    settings: dict[str, Any] = field(default_factory=dict)  # steps, sampler, prompt, class of the run
    crop: Optional[CropContext] = None  # a big picture's crop: ``picture`` is the crop's fill

    def full_picture(self) -> np.ndarray:
        """The result at the input's resolution (stitched into the big picture for a crop)."""
        return self.picture if self.crop is None else self.crop.stitch(self.picture)

    def caption(self) -> str:
        origin = "root" if self.parent is None else f"from #{self.parent} at transition {self.branch_index}"
        stop = " · stopped" if self.stopped else ""
        return f"#{self.key} {origin} · {self.calls} calls · seed {self.seed} · sample {self.sample_id}{stop}"


class ResultTree:
    """Results of one session: roots (runs) and branches (parent -> children), in creation order."""

    def __init__(self) -> None:
        self.results: dict[int, Result] = {}
        self.job: Any = None  # the running job (to stop it)

    def add(self, result: Result) -> Result:
        if result.parent is not None and result.parent not in self.results:
            raise KeyError(f"result #{result.parent} does not exist")
        self.results[result.key] = result
        return result

    def next_key(self) -> int:
        return max(self.results, default=0) + 1

    def children(self, key: int) -> list[Result]:
        return [r for r in self.results.values() if r.parent == key]

    def lineage(self, key: int) -> list[int]:
        """The keys from the root down to ``key``."""
        keys = [key]
        while self.results[keys[-1]].parent is not None:
            keys.append(self.results[keys[-1]].parent)
        return keys[::-1]

    def ordered(self) -> list[Result]:
        """Depth-first: every result followed by its branches (the gallery's order)."""
        out: list[Result] = []

        def visit(r: Result) -> None:
            out.append(r)
            for c in self.children(r.key):
                visit(c)

        for root in [r for r in self.results.values() if r.parent is None]:
            visit(root)
        return out

    def state_choices(self, key: int) -> list[tuple[str, int]]:
        """(label, transition index) of the kept states of a result, with the cost of continuing each."""
        r = self.results[key]
        return [
            (f"transition {i} · t={s.t} · {remaining_calls(r.times, i)} calls left", i)
            for i, s in sorted(r.states.items())
        ]


def branch_state(result: Result, index: int, new_seed: Optional[int] = None) -> SamplerState:
    """The kept state of ``result`` after transition ``index``, to continue from (a new seed: fresh noise)."""
    if index not in result.states:
        raise StudioInputError(f"result #{result.key} kept no state at transition {index}")
    s = result.states[index]
    keep_noise = new_seed is None and s.noise_state is not None
    return SamplerState(s.index, list(s.times), s.x.clone(), s.x0_pred, s.noise_state if keep_noise else None)


def split_state(step: StepState, times: Sequence[int], v: int) -> SamplerState:
    """Variant ``v``'s part of a batch step state, moved to the CPU (to branch from later)."""
    noise = None
    if step.noise is not None and hasattr(step.noise, "get_state"):
        try:
            noise = step.noise.get_state()[v]
        except ValueError:  # one global stream (model.noise=global): branches need a new seed
            noise = None
    x0 = step.x0_pred[v : v + 1].detach().cpu().clone() if step.x0_pred is not None else None
    return SamplerState(
        step.index, list(times), step.x[v : v + 1].detach().cpu().clone(), x0, [noise] if noise is not None else None
    )


# --------------------------------------------------------------------------
# reproducing a result with eval.py
# --------------------------------------------------------------------------


def reproduce_config(result: Result, model_config: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A config for ``eval.py --config config.yaml`` that inpaints ``image.png`` under ``keep_mask.png``
    (255 = known) into the same pixels as ``result``: the model's section as loaded, the full time table
    that led to the result, the seed and the sample id (the per-sample generator's key)."""
    model = dict(model_config)
    model["schedule"] = {"class_path": "repaint_pl.schedules.ExplicitTimes", "init_args": {"times": result.times}}
    model["seed"] = int(result.seed)
    model.update(extra.get("model", {}))
    data_args = {"image": "image.png", "keep_mask": "keep_mask.png", "sample_id": int(result.sample_id)}
    data_args.update(extra.get("data", {}))
    config: dict[str, Any] = {
        "model": model,
        "data": {"class_path": "repaint_pl.apps.studio.data.StudioDataModule", "init_args": data_args},
        "writer": {"out_dir": "reproduced"},
    }
    if extra.get("ckpt"):
        config["ckpt"] = extra["ckpt"]
    if not result.exact_noise:
        config["note"] = "a branch with a new seed: eval.py draws one noise stream, so this is only approximate"
    return config


def config_yaml(config: dict[str, Any]) -> str:
    note = config.pop("note", None)
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=120)
    return (f"# {note}\n" if note else "") + "# reproduce: python eval.py --config config.yaml\n" + text
