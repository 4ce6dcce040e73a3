"""The RePaint sampling loop (Lugmayr et al., CVPR 2022), model-agnostic.

One model protocol: ``model_fn(x_t, t) -> output`` where ``t`` is the respaced index
(long ``[B]``) and ``output`` is ``[B, C, H, W]`` (ε, or x0 with predict_xstart) or
``[B, 2C, H, W]`` (plus the learned variance values).  Conditioning, time mapping and
network specifics live in the wrapper that builds ``model_fn`` (see ``denoisers``).

Classifier guidance: ``grad_fn(x_t, t) -> s·∇ log p(y | x_t)``; the reverse mean is
shifted by σ²·grad (Dhariwal & Nichol).

Images and ``x0`` are in ``[-1, 1]``; ``keep_mask`` is 1 where the pixel is known
(broadcastable to the image, soft values blend).  Random numbers come from a
``NoiseSource``, drawn in the original code's order: x_T; then per reverse step the
posterior noise followed by the known-region noise; per forward jump its noise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import torch
from torch import Tensor

from .diffusion import Diffusion, forward_jump, p_mean_variance, q_sample
from .noise import NoiseSource
from .schedules import count_network_calls

ModelFn = Callable[[Tensor, Tensor], Tensor]
GradFn = Callable[[Tensor, Tensor], Tensor]


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


def inject_known(d: Diffusion, x_t: Tensor, x0: Tensor, keep_mask: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """RePaint: replace the known region of x_t by the known image noised to level t."""
    known_t = q_sample(d, x0, t, noise)
    return keep_mask * known_t + (1 - keep_mask) * x_t


def reverse_step(
    d: Diffusion,
    model_fn: ModelFn,
    x_t: Tensor,
    t: Tensor,
    noise: Tensor,
    *,
    grad_fn: Optional[GradFn] = None,
    clip_x0: bool = True,
    add_noise: bool = True,
) -> tuple[Tensor, Tensor]:
    """x_{t-1} ~ p(x_{t-1} | x_t) with the model's variance; returns (x_{t-1}, x0 prediction)."""
    t_batch = t.expand(x_t.shape[0])
    mean, log_var, x0_pred = p_mean_variance(d, model_fn(x_t, t_batch), x_t, t, clip_x0)
    if grad_fn is not None:
        mean = mean.float() + torch.exp(log_var) * grad_fn(x_t, t_batch).float()
    if not add_noise:  # t = 0: the mean is the sample
        return mean, x0_pred
    return mean + torch.exp(0.5 * log_var) * noise, x0_pred


def repaint(
    model_fn: ModelFn,
    x0: Tensor,
    keep_mask: Tensor,
    times: Sequence[int],
    diffusion: Diffusion,
    noise: NoiseSource,
    *,
    grad_fn: Optional[GradFn] = None,
    clip_x0: bool = True,
    paste_known: bool = False,
    x_start: Optional[Tensor] = None,
    start_index: int = 0,
    on_step: Optional[StepHook] = None,
) -> Tensor:
    """Inpaint ``x0`` where ``keep_mask`` is 0 by walking the time table ``times``.

    Returns the final x_0 ``[B, C, H, W]`` (the raw sample, as the original writes it;
    with ``paste_known`` the known pixels are copied back from ``x0``).
    ``x_start``/``start_index`` resume from the state after transition ``start_index - 1``
    (e.g. one saved by ``on_step``) to branch several fills from one intermediate state.
    """
    d = diffusion.to(x0.device)
    t_table = torch.tensor(list(times), device=x0.device)
    shape = x0.shape[1:]
    x = noise.randn(shape) if x_start is None else x_start
    x0_pred = None
    for i in range(start_index, len(times) - 1):
        t_from, t_to, t = times[i], times[i + 1], t_table[i]
        if t_to < t_from:
            step_noise = noise.randn(shape)
            if i > 0:  # every reverse step but the very first sees the known region at level t
                x = inject_known(d, x, x0, keep_mask, t, noise.randn(shape))
            x, x0_pred = reverse_step(
                d, model_fn, x, t, step_noise, grad_fn=grad_fn, clip_x0=clip_x0, add_noise=t_from != 0
            )
        else:
            x = forward_jump(d, x, t_table[i + 1], noise.randn(shape))
        if on_step is not None:
            on_step(StepState(i, t_from, t_to, x, x0_pred, noise))
    return keep_mask * x0 + (1 - keep_mask) * x if paste_known else x


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
    """Base of the samplers: called with ``repaint``'s signature; ``network_calls(times)`` is its cost."""

    @abstractmethod
    def __call__(
        self,
        model_fn: ModelFn,
        x0: Tensor,
        keep_mask: Tensor,
        times: Sequence[int],
        diffusion: Diffusion,
        noise: NoiseSource,
        **kwargs,
    ) -> Tensor: ...

    def network_calls(self, times: Sequence[int]) -> int:
        return count_network_calls(times)


class RePaintSampler(Sampler):
    """RePaint (Lugmayr et al.): inject the known region in x_t at every reverse step, jump back by the table."""

    def __call__(
        self,
        model_fn: ModelFn,
        x0: Tensor,
        keep_mask: Tensor,
        times: Sequence[int],
        diffusion: Diffusion,
        noise: NoiseSource,
        **kwargs,
    ) -> Tensor:
        return repaint(model_fn, x0, keep_mask, times, diffusion, noise, **kwargs)
