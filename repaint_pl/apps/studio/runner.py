"""Running the model for the studio: settings applied to the model, a sampling job in a thread that
reports previews, keeps states to branch from, and stops on request.  No Gradio here."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor

from repaint_pl import sampling
from repaint_pl.sampling import RePaintSampler, SamplerState, StepState
from repaint_pl.sampling import Sampler as BaseSampler
from repaint_pl.schedules import count_network_calls

from .logic import Progress, StudioInputError, keep_indices, parse_indices, split_state, to_uint8


def _samplers() -> dict[str, type]:
    """The samplers a user can pick: those the model's config accepts (subclasses of ``sampler.Sampler``)
    that walk the model's time table (so that kept states and branches mean the same thing)."""
    found = {"RePaint": RePaintSampler}
    for label, name in (("DDIM-RePaint", "DDIMRePaintSampler"), ("DDNM", "DDNMSampler"), ("DiffPIR", "DiffPIRSampler")):
        cls = getattr(sampling, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseSampler):
            found[label] = cls
    return found


SAMPLERS = _samplers()


class Stopped(Exception):
    """Raised from the step hook when the user pressed stop."""


def can_respace(model) -> bool:
    """Whether the number of respaced steps can change at run time (guided-diffusion nets)."""
    return hasattr(model.denoiser, "respace")


def apply_settings(model, settings: dict[str, Any]) -> None:
    """Put a run's settings into the model: respaced steps, sampler, seed, guidance."""
    steps = settings.get("steps")
    if steps and can_respace(model) and steps != model.sampling.num_timesteps:
        try:
            model.denoiser.respace(int(steps))
        except ValueError as e:
            raise StudioInputError(f"steps: {e}") from None
    if settings.get("sampler") in SAMPLERS and type(model.sampler) is not SAMPLERS[settings["sampler"]]:
        model.sampler = SAMPLERS[settings["sampler"]]()
    model.seed = int(settings.get("seed", 0))
    if settings.get("guidance") is not None and hasattr(model.denoiser, "guidance_scale"):
        model.denoiser.guidance_scale = float(settings["guidance"])


@dataclass
class Snapshot:
    """What the page shows during a run: per-variant x_t and x0 prediction (uint8), position, progress."""

    index: int
    x_t: list
    x0: list
    progress: str


@dataclass
class JobResult:
    pictures: list  # uint8 per variant (the final picture, or the last x0 prediction when stopped)
    states: list[dict[int, SamplerState]]  # per variant: kept states by transition index
    stopped: bool
    calls: int  # network calls made
    seconds: float
    error: str = ""


@dataclass
class Job:
    """One sampling run of a batch (variants) in a background thread.

    ``model.inpaint`` runs with a step hook that keeps states at ``keep`` (transition indices), sends a
    snapshot every ``preview_every`` transitions, and raises ``Stopped`` when ``stop`` is set.
    """

    model: Any
    image: Tensor  # [B, C, S, S] in [-1, 1]
    keep_mask: Tensor  # [B, 1, S, S]
    ids: Tensor  # [B]
    times: list[int]  # the whole table (for a branch: the parent's part up to ``start``, then the new rest)
    start: Optional[SamplerState] = None
    y: Optional[Tensor] = None
    prompts: Optional[Sequence[str]] = None
    negative_prompts: Optional[Sequence[str]] = None
    keep: set[int] = field(default_factory=set)
    preview_every: int = 5
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        first = 0 if self.start is None else self.start.index + 1
        self.total = count_network_calls(self.times[first:])
        self.events: queue.Queue = queue.Queue()
        self.states: list[dict[int, SamplerState]] = [{} for _ in range(len(self.ids))]
        self.last: Optional[StepState] = None
        self.progress = Progress(self.total)

    def _hook(self, s: StepState) -> None:
        if self.stop.is_set():
            raise Stopped()
        self.last = s
        if s.t_to < s.t_from:
            self.progress.done += 1
        if s.index in self.keep:
            for v in range(len(self.ids)):
                self.states[v][s.index] = split_state(s, self.times, v)
        if s.index % max(1, self.preview_every) == 0:
            self.events.put(self.snapshot(s))

    def snapshot(self, s: StepState) -> Snapshot:
        decode = self.model.space.decode
        x_t = [to_uint8(p) for p in decode(s.x)]
        x0 = [to_uint8(p) for p in decode(s.x0_pred)] if s.x0_pred is not None else []
        return Snapshot(s.index, x_t, x0, self.progress.line())

    def _run(self) -> None:
        start = time.perf_counter()
        stopped, error, pictures = False, "", []
        try:
            with torch.no_grad():
                tail = self.times if self.start is None else self.times[self.start.index + 1 :]
                out = self.model.inpaint(
                    self.image,
                    self.keep_mask,
                    self.ids,
                    self.y,
                    times=tail,
                    on_step=self._hook,
                    prompts=self.prompts,
                    negative_prompts=self.negative_prompts,
                    start=self.start,
                )
            pictures = [to_uint8(p) for p in out]
        except Stopped:
            stopped = True
            if self.last is not None and self.last.x0_pred is not None:
                pictures = [to_uint8(p) for p in self.model.space.decode(self.last.x0_pred)]
        except (ValueError, RuntimeError) as e:  # shown in the page
            error = str(e).splitlines()[0]
        seconds = time.perf_counter() - start
        self.events.put(JobResult(pictures, self.states, stopped, self.progress.done, seconds, error))

    def start_thread(self) -> "Job":
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def follow(self, min_interval: float = 0.25) -> Iterator[Snapshot | JobResult]:
        """Snapshots (at most one per ``min_interval`` seconds, the newest) and finally the JobResult."""
        last_yield, pending = 0.0, None
        while True:
            try:
                event = self.events.get(timeout=min_interval)
            except queue.Empty:
                event = None
            if isinstance(event, JobResult):
                yield event
                return
            pending = event or pending
            if pending is not None and time.perf_counter() - last_yield >= min_interval:
                yield pending
                pending, last_yield = None, time.perf_counter()


def run_to_end(job: Job) -> JobResult:
    """Run a job in this thread's view: start it and wait for its result (tests, scripts)."""
    for event in job.start_thread().follow(min_interval=0.0):
        if isinstance(event, JobResult):
            return event
    raise RuntimeError("job ended without a result")


def kept_transitions(
    times: Sequence[int], keep_every: int, start: Optional[SamplerState] = None, extra: str = ""
) -> set[int]:
    """The transitions of ``times`` after which states are kept: every ``keep_every``-th call and the
    transitions listed in ``extra`` (``"10 25"``), after the branch point only."""
    first = -1 if start is None else start.index
    chosen = keep_indices(times, keep_every) | parse_indices(extra, len(times) - 2)
    return {i for i in chosen if i > first}
