"""Where the sampler's random numbers come from.

``PerSampleNoise`` (the default) gives every sample its own generator, seeded from
``(seed, sample id)``: a sample's result does not depend on batch size, on which
other samples share its batch, or on the number of devices.  Sample ``i`` under
seed ``S`` draws from ``torch.Generator(device).manual_seed(sample_seed(S, i))``, i.e.
exactly what the global generator gives after ``torch.manual_seed(sample_seed(S, i))``.

``GlobalNoise`` draws batch-shaped noise from the device's global generator, in
the order the original RePaint code does; with the global generator seeded the
same way, both programs draw the same Gaussian numbers for any batch size.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
from torch import Tensor


def sample_seed(seed: int, sample_id: int) -> int:
    """Seed of sample ``sample_id``'s generator under global seed ``seed``.

    A 32-bit SplitMix64 hash of (seed, sample id): PyTorch's CPU generator only uses the
    low 32 bits of a seed, so every bit of both numbers has to reach those.
    """
    z = (int(seed) * 2**32 + int(sample_id) + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return (z ^ (z >> 31)) >> 32


class NoiseSource(Protocol):
    batch_size: int

    def randn(self, shape: Sequence[int]) -> Tensor:
        """Standard normal noise of shape ``[B, *shape]``."""

    def randint(self, high: int) -> Tensor:
        """Integers in ``[0, high)``, shape ``[B]`` (random class labels)."""


class PerSampleNoise:
    """One generator per sample; draws are stacked along the batch dimension."""

    def __init__(self, seed: int, sample_ids: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(sample_seed(seed, i)) for i in sample_ids]
        self.batch_size = len(self.generators)

    def randn(self, shape: Sequence[int]) -> Tensor:
        draws = [
            torch.randn(tuple(shape), generator=g, device=self.device, dtype=torch.float32)
            for g in self.generators
        ]
        return torch.stack(draws)

    def randint(self, high: int) -> Tensor:
        draws = [torch.randint(0, high, (1,), generator=g, device=self.device) for g in self.generators]
        return torch.cat(draws)

    def get_state(self) -> list[Tensor]:
        """Each sample's generator state (to continue its stream later)."""
        return [g.get_state() for g in self.generators]

    def set_state(self, states: Sequence[Tensor]) -> None:
        if len(states) != len(self.generators):
            raise ValueError(f"{len(states)} saved generator states for {len(self.generators)} samples")
        for g, s in zip(self.generators, states):
            g.set_state(s)


class GlobalNoise:
    """The global generator of ``device``, batch-shaped draws (the original RePaint's stream)."""

    def __init__(self, batch_size: int, device: torch.device | str = "cpu"):
        self.batch_size, self.device = batch_size, torch.device(device)

    def randn(self, shape: Sequence[int]) -> Tensor:
        return torch.randn((self.batch_size, *shape), device=self.device, dtype=torch.float32)

    def randint(self, high: int) -> Tensor:
        return torch.randint(0, high, (self.batch_size,), device=self.device)

    def get_state(self) -> list[Tensor]:
        raise ValueError("noise: global has no per-sample state to save; use noise: per_sample to branch")

    def set_state(self, states: Sequence[Tensor]) -> None:
        raise ValueError("noise: global cannot continue a saved state; use noise: per_sample")


def check_global_noise(world_size: int) -> None:
    """``noise: global`` draws one stream per process: refuse it on several processes (they would all draw it)."""
    if world_size > 1:
        raise ValueError(
            f"model.noise=global draws the original's single stream: it cannot run on {world_size} processes; "
            f"use --devices 1 or model.noise=per_sample"
        )
