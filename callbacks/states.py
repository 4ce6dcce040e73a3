"""Branching from a saved state (the seed's §3.5): save every sample's state after transition K, or
continue every sample from such a state with any schedule for the rest and any seed.

    eval.py … --save_state_at 120 --state_dir states/          # the whole run, plus one state per sample
    eval.py … --resume_state states/ --jump_length 5 --seed 3  # a branch: only the rest is sampled

A state file ``<state_dir>/<input name>.pt`` holds, for one sample: ``x`` (x_t after transition
``index`` in the sampler's space, ``[C, h, w]``), ``x0_pred`` (the latest x0 prediction or None),
``index``, ``times`` (the whole time table of the run that saved it), ``generator`` (the sample's
generator state), and what a continuation must match: the sample ``id``, ``seed``, the respaced
``num_timesteps``, the ``space`` class and the input ``image_shape``.  Files are read with
``weights_only`` (tensors, numbers, strings and lists only).

A branch continues from ``x`` with ``resume_times``: ``schedule`` (default) = the configured schedule
started at the saved level (its ``t_T`` set to t + 1; a schedule that already starts at t, such as an
``ExplicitTimes`` list, is used as it is), ``saved`` = the rest of the saved table.  With the seed the
state was saved with, the sample's generator continues where it stopped (so the saved rest of the
table gives the pixels of the uninterrupted run); with another seed the rest is drawn from fresh
generators of that seed.  Its ``network_calls`` count only the transitions after the saved one.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Literal, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from repaint_pl.files import atomic_write
from repaint_pl.sampling import SamplerState, StepState

from .writer import RePaintWriter

STATE_VERSION = 1


class StateError(ValueError):
    """A saved state that cannot be used (missing, for another input, or made with other settings)."""


def state_path(state_dir: str, name: str) -> str:
    """Where the state of input ``name`` (e.g. ``thick/brick_0.png``) lives."""
    return os.path.join(state_dir, os.path.splitext(name)[0] + ".pt")


def save_state(path: str, state: dict[str, Any]) -> None:
    """Write one sample's state atomically (one ``OutputError`` naming ``path`` on failure)."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_state(path: str) -> dict[str, Any]:
    """One sample's state (see the module docstring); one-line errors for missing or foreign files."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no saved state (make one with --save_state_at K --state_dir DIR)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
        raise StateError(f"{path}: not a saved state ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise StateError(f"{path}: not a saved state of this version (expected version {STATE_VERSION})")
    return state


def branch_tail(pl_module: Any, t: int) -> list[int]:
    """The configured schedule as a table from level ``t`` (its t_T set to t + 1) down to -1."""
    if pl_module.times[0] == t:
        return list(pl_module.times)
    if not hasattr(pl_module.schedule, "t_T"):
        raise StateError(
            f"model.schedule ({type(pl_module.schedule).__name__}) starts at t={pl_module.times[0]}, "
            f"not at the saved level t={t}; give a table that starts there or --resume_times saved"
        )
    schedule = copy.copy(pl_module.schedule)
    schedule.t_T = t + 1
    return schedule.times(pl_module.sampling.num_timesteps)


def check_state(state: dict[str, Any], path: str, expected: dict[str, Any]) -> None:
    """Raise StateError naming ``path`` if the state was made for another input or other settings."""
    for key, value in expected.items():
        if state.get(key) != value:
            raise StateError(f"{path}: saved with {key}={state.get(key)}, this run has {key}={value}")


class BranchStates(Callback):
    """Saves each sample's state after transition ``save_state_at`` into ``state_dir``, and/or continues
    each sample from the states in ``resume_state`` (see the module docstring).

    Args:
        save_state_at: transition index K of the time table (0 = the first reverse step) after which
            each sample's state is saved; None: save nothing.
        state_dir: folder for the saved states (one ``<input name>.pt`` per sample).
        resume_state: folder of saved states to continue from; None: sample from x_T as usual.
        resume_times: the rest of a branch: ``schedule`` (the configured schedule from the saved level)
            or ``saved`` (the rest of the saved table).
    """

    def __init__(
        self,
        save_state_at: Optional[int] = None,
        state_dir: Optional[str] = None,
        resume_state: Optional[str] = None,
        resume_times: Literal["schedule", "saved"] = "schedule",
    ):
        if save_state_at is not None and not state_dir:
            raise ValueError("--save_state_at needs --state_dir (where to write the states)")
        if save_state_at is not None and save_state_at < 0:
            raise ValueError(f"--save_state_at {save_state_at}: a transition index must be >= 0")
        self.save_state_at, self.state_dir = save_state_at, state_dir
        self.resume_state, self.resume_times = resume_state, resume_times
        self._captured: Optional[dict[str, Any]] = None
        self._times: list[int] = []

    @staticmethod
    def add_to_parser(parser: Any) -> None:
        """Register the callback as ``states`` and the top-level flags ``--save_state_at`` etc. that set it."""
        parser.add_lightning_class_args(BranchStates, "states")
        for name, kind, text in (
            ("save_state_at", Optional[int], "save each sample's state after this transition (§3.5 branching)"),
            ("state_dir", Optional[str], "folder for the states of --save_state_at"),
            ("resume_state", Optional[str], "continue each sample from the states in this folder"),
            ("resume_times", Literal["schedule", "saved"], "a branch's rest: the configured schedule or the saved"),
        ):
            default = "schedule" if name == "resume_times" else None
            parser.add_argument(f"--{name}", type=kind, default=default, help=text)
            parser.link_arguments(name, f"states.{name}")

    # ------------------------------------------------------------------ hooks

    @property
    def active(self) -> bool:
        return self.save_state_at is not None or self.resume_state is not None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_state_at is not None:
            pl_module.step_hooks.append(self._on_step)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._on_step in pl_module.step_hooks:
            pl_module.step_hooks.remove(self._on_step)

    def _on_step(self, state: StepState) -> None:
        if state.index != self.save_state_at:
            return
        if state.noise is None or not hasattr(state.noise, "get_state"):
            raise StateError("this sampler's noise source has no state to save; use model.noise=per_sample")
        self._captured = {
            "index": state.index,
            "x": state.x.detach().float().cpu(),
            "x0_pred": None if state.x0_pred is None else state.x0_pred.detach().float().cpu(),
            "generator": [s.clone() for s in state.noise.get_state()],
        }

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self.active:
            return
        self._captured, self._times = None, list(pl_module.times)
        todo = [i for i, t in enumerate(self._todo(trainer, batch)) if t]
        if self.resume_state is not None and todo:
            start = self._start_state(pl_module, batch, todo)
            batch["start"] = start
            batch["network_calls"] = pl_module.sampler.network_calls(start.times[start.index + 1 :])
            self._times = list(start.times)
        if self.save_state_at is not None and self.save_state_at >= len(self._times) - 1:
            raise StateError(
                f"--save_state_at {self.save_state_at}: the time table has only {len(self._times) - 1} transitions"
            )

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.save_state_at is None or not any(outputs["sampled"]):
            return
        if self._captured is None:
            raise StateError(f"--save_state_at {self.save_state_at}: the run never reached that transition")
        rows = [i for i, s in enumerate(outputs["sampled"]) if s]
        for row, i in enumerate(rows):
            save_state(state_path(self.state_dir, outputs["name"][i]), self._sample_state(pl_module, batch, i, row))
        self._captured = None

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _todo(trainer: L.Trainer, batch: dict[str, Any]) -> list[bool]:
        """Which items predict_step will sample (the rule of RePaintModule.predict_step and the writer)."""
        writer = next((c for c in trainer.callbacks if isinstance(c, RePaintWriter)), None)
        names, errors = batch["name"], batch.get("error", [""] * len(batch["name"]))
        done = [writer is not None and not writer.overwrite and writer.finished(n) for n in names]
        return [not d and not e for d, e in zip(done, errors)]

    def _expected(self, pl_module: Any, batch: dict[str, Any], i: int) -> dict[str, Any]:
        """What a state of item ``i`` must record to be continued by this run."""
        return {
            "id": int(batch["id"][i]),
            "num_timesteps": int(pl_module.sampling.num_timesteps),
            "space": type(pl_module.space).__name__,
            "image_shape": list(batch["image"][i].shape),
        }

    def _sample_state(self, pl_module: Any, batch: dict[str, Any], i: int, row: int) -> dict[str, Any]:
        c = self._captured
        return {
            "version": STATE_VERSION,
            "name": batch["name"][i],
            "seed": int(pl_module.seed),
            "index": c["index"],
            "times": list(self._times),
            "x": c["x"][row].clone(),
            "x0_pred": None if c["x0_pred"] is None else c["x0_pred"][row].clone(),
            "generator": c["generator"][row],
            **self._expected(pl_module, batch, i),
        }

    def _start_state(self, pl_module: Any, batch: dict[str, Any], todo: list[int]) -> SamplerState:
        """The saved states of the items ``todo``, stacked, with the time table of this branch."""
        paths = [state_path(self.resume_state, batch["name"][i]) for i in todo]
        states = [load_state(p) for p in paths]
        for p, s, i in zip(paths, states, todo):
            check_state(s, p, self._expected(pl_module, batch, i))
            if (s["index"], s["times"]) != (states[0]["index"], states[0]["times"]):
                raise StateError(f"{p}: saved at another transition or time table than {paths[0]}")
        first = states[0]
        same_stream = int(first["seed"]) == int(pl_module.seed) and pl_module.noise_mode == "per_sample"
        saved = SamplerState(
            index=first["index"],
            times=list(first["times"]),
            x=torch.stack([s["x"] for s in states]),
            x0_pred=None if first["x0_pred"] is None else torch.stack([s["x0_pred"] for s in states]),
            noise_state=[s["generator"] for s in states] if same_stream else None,
        )
        tail = None if self.resume_times == "saved" else branch_tail(pl_module, saved.t)
        saved.times = saved.continue_times(tail)
        return saved
