"""The one sampling loop: a walk over a time table, with a step policy (the sampler) and hooks.

``times`` is a RePaint time table: a ±1 walk over the respaced levels from ``t_T − 1`` down to ``-1``
(a sampler may walk its own coarser table, mapped to levels by ``Sampler.grid``).  A step down is the
sampler's ``reverse``; a step up is its ``forward`` (by default the exact forward marginal, RePaint's
resampling).  After every transition the hooks see a ``StepState``; a ``SamplerState`` saved from one
continues the walk (branching).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

from torch import Tensor

from ..diffusion import NoiseProcess
from ..noise import NoiseSource
from ..schedules import count_network_calls
from .steps import GradFn, ModelFn, Problem, renoise


@dataclass
class StepState:
    """What a step hook sees after transition ``index`` (``t_from -> t_to``) of the time table."""

    index: int
    t_from: int
    t_to: int
    x: Tensor  # x_{t_to}
    x0_pred: Optional[Tensor]  # the latest x0 prediction
    noise: Optional[NoiseSource] = None  # the run's noise source (``get_state()`` to save a branch point)


class StepHook(Protocol):
    def __call__(self, state: StepState) -> None: ...


@dataclass
class SamplerState:
    """A saved point of a run: the state after transition ``index`` of ``times`` (to branch or continue from).

    ``x`` is x_{times[index+1]} in the sampler's space; ``noise_state`` the samples' generator states
    (None: draw the rest from fresh generators, e.g. another seed).
    """

    index: int
    times: list[int]
    x: Tensor
    x0_pred: Optional[Tensor] = None
    noise_state: Optional[list[Tensor]] = None

    @property
    def t(self) -> int:
        """The noise level of ``x`` (respaced index; -1 = finished)."""
        return self.times[self.index + 1]

    def continue_times(self, tail: Optional[Sequence[int]] = None) -> list[int]:
        """The saved table up to this state, then ``tail`` (a table starting at ``self.t``; None: the saved rest)."""
        if tail is None:
            return list(self.times)
        tail = list(tail)
        if not tail or tail[0] != self.t:
            raise ValueError(f"a branch's time table must start at the saved level t={self.t}, not {tail[:1]}")
        return list(self.times[: self.index + 2]) + tail[1:]


class Sampler(ABC):
    """A step policy over the one table walk (``walk``).

    Called as ``sampler(model_fn, x0, keep_mask, times, process, noise, *, grad_fn=None, clip_x0=True,
    x_start=None, start_index=0, on_step=None) -> x_0 [B, C, H, W]`` (the raw sample: known pixels are not
    pasted back).  ``model_fn(x_t, t)`` is the denoiser protocol (``t`` long ``[B]``, the output read by
    ``process.decode``); ``network_calls(times)`` is the number of network evaluations per image.
    Subclasses implement ``reverse``; ``grid`` (the table walked) and ``forward`` have defaults.
    """

    def grid(self, times: Sequence[int], process: Optional[NoiseProcess]) -> tuple[list[int], Optional[list[int]]]:
        """(the table walked, the map table value -> respaced level, or None for the identity)."""
        return list(times), None

    def network_calls(self, times: Sequence[int]) -> int:
        return count_network_calls(self.grid(times, None)[0])

    @abstractmethod
    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        """One step down from level t to t_prev < t (transition ``index`` of the table): (x_{t_prev}, x0 prediction)."""

    def forward(self, p: Problem, x: Tensor, t: int, s: int) -> Tensor:
        """One step up from level t to s > t: the exact forward marginal q(x_s | x_t)."""
        return renoise(p.process, x, t, s, p.randn())

    def __call__(
        self,
        model_fn: ModelFn,
        x0: Tensor,
        keep_mask: Tensor,
        times: Sequence[int],
        diffusion: NoiseProcess,
        noise: NoiseSource,
        *,
        grad_fn: Optional[GradFn] = None,
        clip_x0: bool | float = True,
        x_start: Optional[Tensor] = None,
        start_index: int = 0,
        on_step: Optional[StepHook] = None,
    ) -> Tensor:
        problem = self.problem(model_fn, x0, keep_mask, diffusion.to(x0.device), noise, grad_fn, clip_x0)
        return self.run(problem, times, x_start=x_start, start_index=start_index, on_step=on_step)

    def problem(self, *fields: Any) -> Problem:
        """The problem the walk works on, from ``Problem``'s fields (a particle sampler adds its particles)."""
        return Problem(*fields)

    def run(
        self, p: Problem, times: Sequence[int], *, x_start: Optional[Tensor], start_index: int,
        on_step: Optional[StepHook],
    ) -> Tensor:  # fmt: skip
        """The walk from x_T (or ``x_start``) to the final sample (a particle sampler picks one per picture)."""
        return walk(self, p, times, x_start=x_start, start_index=start_index, on_step=on_step)


def walk(
    sampler: Sampler,
    p: Problem,
    times: Sequence[int],
    *,
    x_start: Optional[Tensor] = None,
    start_index: int = 0,
    on_step: Optional[StepHook] = None,
) -> Tensor:
    """Walk the sampler's table from x_T ~ N(0, I) (or ``x_start`` after transition ``start_index − 1``)."""
    table, grid = sampler.grid(times, p.process)
    level = (lambda k: k) if grid is None else (lambda k: grid[k] if k >= 0 else -1)
    x = p.randn() if x_start is None else x_start
    x0_pred = None
    for i in range(start_index, len(table) - 1):
        t, t_next = level(table[i]), level(table[i + 1])
        if t_next < t:
            x, x0_pred = sampler.reverse(p, x, t, t_next, i)
        else:
            x = sampler.forward(p, x, t, t_next)
        if on_step is not None:
            on_step(StepState(i, t, t_next, x, x0_pred, p.noise))
    return x


__all__ = ["Sampler", "SamplerState", "StepState", "StepHook", "walk"]
