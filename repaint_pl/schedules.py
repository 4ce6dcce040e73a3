"""Schedule numbers: beta schedules, timestep respacing and RePaint time tables.

Pure functions on numbers; nothing here knows about networks or Lightning.

Time convention (guided-diffusion): the base process has ``steps`` timesteps
``0 .. steps-1``; a respaced process keeps a subset of them and renumbers them
``0 .. K-1``.  A RePaint *time table* is a list of respaced indices that starts
at ``t_T - 1``, moves by exactly ±1 per transition and ends at ``-1`` (= x_0).
A transition ``t -> t-1`` is a reverse (denoising) step and costs one network
call; ``t -> t+1`` is a forward jump (re-noising) and costs nothing.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal, Optional, Sequence

import numpy as np

# --------------------------------------------------------------------------
# Beta schedules (float64, like guided-diffusion)
# --------------------------------------------------------------------------


def linear_betas(num_steps: int, start: Optional[float] = None, end: Optional[float] = None) -> np.ndarray:
    """Ho et al.'s linear schedule, scaled so that any ``num_steps`` spans the same range (or from start to end)."""
    scale = 1000 / num_steps
    start, end = scale * 0.0001 if start is None else start, scale * 0.02 if end is None else end
    return np.linspace(start, end, num_steps, dtype=np.float64)


def scaled_linear_betas(num_steps: int, start: Optional[float] = None, end: Optional[float] = None) -> np.ndarray:
    """Stable Diffusion's schedule: √β linear from √start to √end (default 0.00085 … 0.012)."""
    start, end = 0.00085 if start is None else start, 0.012 if end is None else end
    return np.linspace(start**0.5, end**0.5, num_steps, dtype=np.float64) ** 2


def cosine_betas(num_steps: int, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: betas that discretise ᾱ(s) = cos²((s+0.008)/1.008·π/2)."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    steps = range(num_steps)
    return np.array([min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in steps])


def named_betas(name: str, num_steps: int, start: Optional[float] = None, end: Optional[float] = None) -> np.ndarray:
    """Betas by name: ``linear`` / ``cosine`` (guided-diffusion), ``scaled_linear`` / ``squaredcos_cap_v2``
    (diffusers)."""
    if name == "linear":
        return linear_betas(num_steps, start, end)
    if name == "scaled_linear":
        return scaled_linear_betas(num_steps, start, end)
    if name in ("cosine", "squaredcos_cap_v2"):
        return cosine_betas(num_steps)
    raise ValueError(
        f"noise_schedule: unknown beta schedule {name!r} (use linear, cosine, scaled_linear or squaredcos_cap_v2)"
    )


def diffusers_timesteps(num_steps: int, count: int, spacing: str, offset: int = 0) -> list[int]:
    """The base steps a diffusers scheduler visits for ``count`` inference steps, descending.

    ``leading``: 0, r, 2r, … (+ offset), r = num_steps // count; ``trailing``: num_steps·(1 − k/count) − 1
    rounded; ``linspace``: count points from 0 to num_steps − 1, rounded.
    """
    if not 1 <= count <= num_steps:
        raise ValueError(f"timestep_respacing: {count} steps out of {num_steps} is not possible")
    if spacing == "leading":
        steps = np.arange(count) * (num_steps // count) + offset
    elif spacing == "trailing":
        steps = np.round(np.arange(num_steps, 0, -num_steps / count)).astype(np.int64) - 1
    elif spacing == "linspace":
        steps = np.linspace(0, num_steps - 1, count).round()
    else:
        raise ValueError(f"timestep_spacing: unknown spacing {spacing!r} (use guided, leading, trailing or linspace)")
    steps = sorted({int(s) for s in steps}, reverse=True)
    if steps[0] >= num_steps or steps[-1] < 0:
        raise ValueError(f"steps_offset={offset} moves timesteps outside 0..{num_steps - 1}")
    return steps


# --------------------------------------------------------------------------
# Respacing (guided-diffusion's even striding per section, or DDIM's)
# --------------------------------------------------------------------------


def space_timesteps(num_steps: int, respacing: str | int | Sequence[int]) -> list[int]:
    """Base timesteps kept by a respacing spec, ascending (guided-diffusion's ``space_timesteps``).

    ``respacing``: ``""`` (all steps), ``"250"``, ``"10,15,20"`` (per equal
    section of the base process; the first ``num_steps % sections`` sections are
    one step longer), or ``"ddimN"`` (the smallest constant stride giving N steps).
    """
    if respacing in ("", None):
        return list(range(num_steps))
    if isinstance(respacing, str) and respacing.startswith("ddim"):
        return _ddim_timesteps(num_steps, int(respacing[len("ddim") :]))
    counts = [int(c) for c in respacing.split(",")] if isinstance(respacing, str) else respacing
    counts = [counts] if isinstance(counts, int) else list(counts)
    kept: list[int] = []
    start, base, extra = 0, num_steps // len(counts), num_steps % len(counts)
    for i, count in enumerate(counts):
        size = base + (1 if i < extra else 0)
        kept += [start + k for k in _even_section(size, count)]
        start += size
    return sorted(set(kept))


def _even_section(size: int, count: int) -> list[int]:
    """``count`` offsets spread evenly over a section of ``size`` steps, first and last included.

    The position advances by the fractional stride ``(size-1)/(count-1)`` one float
    addition at a time and each position is rounded half to even, as guided-diffusion
    does: the accumulated float (not ``k * stride``) decides ties such as 20.5.
    """
    if count > size:
        raise ValueError(f"timestep_respacing: cannot divide a section of {size} steps into {count}")
    stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
    positions = itertools.accumulate(itertools.repeat(stride), initial=0.0)  # 0, s, s+s, …
    return [round(p) for p in itertools.islice(positions, count)]


def _ddim_timesteps(num_steps: int, count: int) -> list[int]:
    for stride in range(1, num_steps):
        if len(range(0, num_steps, stride)) == count:
            return list(range(0, num_steps, stride))
    raise ValueError(f"timestep_respacing: cannot make {count} evenly strided steps out of {num_steps}")


def respace_betas(betas: np.ndarray, kept: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """Betas of the process that visits only ``kept`` base steps, and the map respaced index -> base step.

    The kept steps keep their ᾱ: β'_k = 1 - ᾱ_{s_k} / ᾱ_{s_{k-1}}.
    """
    alpha_bar = np.cumprod(1.0 - betas, axis=0)
    kept_set, new_betas, timestep_map, last = set(kept), [], [], 1.0
    for step, ab in enumerate(alpha_bar):
        if step in kept_set:
            new_betas.append(1 - ab / last)
            timestep_map.append(step)
            last = ab
    return np.array(new_betas), timestep_map


# --------------------------------------------------------------------------
# RePaint time tables
# --------------------------------------------------------------------------


def _jump_counts(t_T: int, length: int, n_sample: int) -> dict[int, int]:
    """Jump points every ``length`` steps (below t_T - length), each allowing ``n_sample - 1`` jumps."""
    return {j: n_sample - 1 for j in range(0, t_T - length, length)}


def jump_times(
    t_T: int = 250,
    n_sample: int = 1,
    jump_length: int = 10,
    jump_n_sample: int = 10,
    jump2_length: int = 1,
    jump2_n_sample: int = 1,
    jump3_length: int = 1,
    jump3_n_sample: int = 1,
    start_resampling: int = 100_000_000,
) -> list[int]:
    """RePaint's jump schedule (the original ``schedule_jump_params``), as a time table.

    Walking down from ``t_T``: after each reverse step, ``n_sample - 1`` one-step
    back-and-forth resamplings; then, at up to three nested levels (innermost
    first), a jump of ``jumpK_length`` steps back up while the jump point still
    has jumps left.  A jump at one level refills the levels nested inside it.
    Nothing is resampled above ``start_resampling``.
    """
    lengths = (jump_length, jump2_length, jump3_length)
    n_samples = (jump_n_sample, jump2_n_sample, jump3_n_sample)
    counts = [_jump_counts(t_T, L, n) for L, n in zip(lengths, n_samples)]
    t, times = t_T, []
    while t >= 1:
        t -= 1
        times.append(t)
        if t + 1 < t_T - 1 and t <= start_resampling:
            for _ in range(n_sample - 1):
                times += [t + 1, t]
        for level in (2, 1, 0):
            if counts[level].get(t, 0) > 0 and t <= start_resampling - lengths[level]:
                counts[level][t] -= 1
                times += range(t + 1, t + lengths[level] + 1)
                t += lengths[level]
                for inner in range(level + 1, 3):
                    counts[inner] = _jump_counts(t_T, lengths[inner], n_samples[inner])
    times.append(-1)
    check_times(times, t_T)
    return times


def jumps_per_point_times(t_T: int, jump_length: int, jumps: dict[int, int]) -> list[int]:
    """Time table with a single jump level and ``jumps[j]`` jumps back up from each point ``j``.

    ``jump_times(t_T, 1, L, n)`` is the special case ``jumps = {j: n - 1 for j in 0, L, 2L, … < t_T - L}``.
    """
    left = dict(jumps)
    t, times = t_T, []
    while t >= 1:
        t -= 1
        times.append(t)
        if left.get(t, 0) > 0:
            left[t] -= 1
            times += range(t + 1, t + jump_length + 1)
            t += jump_length
    times.append(-1)
    check_times(times, t_T)
    return times


def profile_jump_counts(
    t_T: int, jump_length: int, jump_n_sample: int, profile: Literal["uniform", "early", "late"], strength: float = 1.0
) -> dict[int, int]:
    """Jumps per jump point that put resampling early (high t) or late (low t) at the same total cost.

    The uniform schedule gives every point ``jump_n_sample - 1`` jumps.  ``early``
    and ``late`` weight point ``j`` linearly in ``j/t_T`` (``strength`` 0 = uniform,
    1 = a ramp that reaches zero at one end) and round so the total number of
    jumps, hence of network calls, equals the uniform schedule's.
    """
    _check_strength(strength)
    points = sorted(_jump_counts(t_T, jump_length, jump_n_sample))
    total = (jump_n_sample - 1) * len(points)
    if profile == "uniform" or not points:
        return {j: jump_n_sample - 1 for j in points}
    if profile not in ("early", "late"):
        raise ValueError(f"profile: expected 'uniform', 'early' or 'late', got {profile!r}")
    pos = np.array([(j + jump_length / 2) / t_T for j in points])
    ramp = pos if profile == "early" else 1 - pos
    weights = (1 - strength) + strength * ramp / ramp.mean()
    return dict(zip(points, _round_to_total(weights * total / weights.sum(), total)))


def _check_strength(strength: float) -> None:
    """Outside [0, 1] the ramp's weights turn negative and the schedule costs more than promised."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"schedule.strength={strength} must lie in [0, 1] (0 = uniform, 1 = full ramp)")


def _round_to_total(values: np.ndarray, total: int) -> list[int]:
    """Largest-remainder rounding: non-negative integers near ``values`` that sum to ``total``."""
    floors = np.floor(values).astype(int)
    order = np.argsort(-(values - floors), kind="stable")
    floors[order[: total - floors.sum()]] += 1
    return floors.tolist()


def check_times(times: Sequence[int], t_T: int) -> None:
    """Raise ValueError unless ``times`` is a valid time table for ``t_T`` respaced steps."""
    if len(times) < 2 or times[0] != t_T - 1 or times[-1] != -1:
        raise ValueError(
            f"time table must start at t_T-1={t_T - 1} and end at -1, got {list(times[:3])}…{list(times[-3:])}"
        )
    for i, (a, b) in enumerate(zip(times[:-1], times[1:])):
        if abs(a - b) != 1:
            raise ValueError(f"time table: step {i} goes {a} -> {b}; every step must move by ±1")
        if not -1 <= b <= t_T - 1:
            raise ValueError(f"time table: step {i} reaches t={b}, outside [-1, {t_T - 1}]")
    if times[1] > times[0]:
        raise ValueError("time table: the first transition must be a reverse step")


def count_transitions(times: Sequence[int]) -> tuple[int, int]:
    """(reverse steps = network calls, forward jumps) of a time table."""
    reverse = sum(1 for a, b in zip(times[:-1], times[1:]) if b < a)
    return reverse, len(times) - 1 - reverse


def count_network_calls(times: Sequence[int]) -> int:
    return count_transitions(times)[0]


def plot_times(times: Sequence[int], path: str, title: str | None = None) -> None:
    """Write a PNG of a time table: diffusion time t against transition index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls, jumps = count_transitions(times)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(range(len(times)), times, linewidth=0.8)
    ax.set_xlabel("transition")
    ax.set_ylabel("diffusion time t (respaced)")
    ax.set_title(title or f"{calls} network calls, {jumps} forward jumps, {len(times) - 1} transitions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------
# Time tables as configurable objects (what configs and the CLI select)
# --------------------------------------------------------------------------


class TimeTable:
    """A RePaint time table; subclasses hold the parameters, ``times(K)`` builds the list for a process
    of ``K`` respaced steps (``t_T`` defaults to ``K``: start from pure noise)."""

    def times(self, num_timesteps: int) -> list[int]:
        raise NotImplementedError

    def network_calls(self, num_timesteps: int) -> int:
        return count_network_calls(self.times(num_timesteps))


def _start(t_T: Optional[int], num_timesteps: int) -> int:
    t_T = num_timesteps if t_T is None else t_T
    if not 1 <= t_T <= num_timesteps:
        raise ValueError(f"schedule.t_T={t_T} must lie in [1, {num_timesteps}] (the respaced steps)")
    return t_T


class JumpSchedule(TimeTable):
    """The original RePaint schedule (``schedule_jump_params``); defaults are the paper's (t_T=250 with 250 steps)."""

    def __init__(
        self,
        t_T: Optional[int] = None,
        n_sample: int = 1,
        jump_length: int = 10,
        jump_n_sample: int = 10,
        jump2_length: int = 1,
        jump2_n_sample: int = 1,
        jump3_length: int = 1,
        jump3_n_sample: int = 1,
        start_resampling: int = 100_000_000,
    ):
        self.t_T = t_T
        self.params = dict(
            n_sample=n_sample,
            jump_length=jump_length,
            jump_n_sample=jump_n_sample,
            jump2_length=jump2_length,
            jump2_n_sample=jump2_n_sample,
            jump3_length=jump3_length,
            jump3_n_sample=jump3_n_sample,
            start_resampling=start_resampling,
        )

    def times(self, num_timesteps: int) -> list[int]:
        return jump_times(_start(self.t_T, num_timesteps), **self.params)


class ProfileSchedule(TimeTable):
    """Resampling concentrated early (high t) or late (low t), same network calls as the uniform schedule."""

    def __init__(
        self,
        t_T: Optional[int] = None,
        jump_length: int = 10,
        jump_n_sample: int = 10,
        profile: Literal["uniform", "early", "late"] = "early",
        strength: float = 1.0,
    ):
        _check_strength(strength)
        self.t_T, self.jump_length, self.jump_n_sample = t_T, jump_length, jump_n_sample
        self.profile, self.strength = profile, strength

    def times(self, num_timesteps: int) -> list[int]:
        t_T = _start(self.t_T, num_timesteps)
        jumps = profile_jump_counts(t_T, self.jump_length, self.jump_n_sample, self.profile, self.strength)
        return jumps_per_point_times(t_T, self.jump_length, jumps)


class ExplicitTimes(TimeTable):
    """A time table given as a list (e.g. in a YAML file)."""

    def __init__(self, times: list[int]):
        self._times = [int(t) for t in times]
        check_times(self._times, self._times[0] + 1 if self._times else 0)

    def times(self, num_timesteps: int) -> list[int]:
        _start(self._times[0] + 1, num_timesteps)
        return list(self._times)


def main(args: Sequence[str] | None = None) -> list[int]:
    """``python -m repaint_pl.schedules``: print a time table's cost and optionally plot it.

    Takes the same ``model.schedule`` section as eval.py, e.g.
    ``--config configs/schedule/early.yaml --plot early.png`` or
    ``--model.schedule JumpSchedule --model.schedule.jump_length 5 --steps 100``.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    from repaint_pl import schedules as S  # the importable module, also when run with -m

    parser = ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(S.TimeTable, "model.schedule", required=False)
    parser.add_argument("--steps", type=int, default=250, help="respaced steps of the diffusion (timestep_respacing)")
    parser.add_argument("--plot", type=Optional[str], default=None, help="write a PNG of the table here")
    parser.add_argument("--print_times", type=bool, default=False)
    cfg = parser.instantiate(parser.parse_args(args))
    table = cfg.model.schedule if cfg.model.schedule is not None else S.JumpSchedule()
    times = table.times(cfg.steps)
    calls, jumps = count_transitions(times)
    print(f"{type(table).__name__}: {len(times) - 1} transitions, {calls} network calls, {jumps} forward jumps")
    if cfg.print_times:
        print(" ".join(map(str, times)))
    if cfg.plot:
        plot_times(times, cfg.plot)
        print(f"plot written to {cfg.plot}")
    return times


if __name__ == "__main__":
    main()
