"""Spaces: where the sampler runs.  Pixels (identity), or the latent space of a VAE.

A space encodes the known image into the sampler's ``x0``, brings the keep mask to the sampler's
resolution, decodes the final sample, and pastes the known pixels back at full resolution.

Latent RePaint (Stable Diffusion): the known image is encoded with the VAE's posterior *mean*
(shifted by the VAE's ``shift_factor``, if any, and scaled by its ``scaling_factor``: SD3 and FLUX
have both); a latent cell counts as known only if every pixel it
covers is known (min-pooling of the keep mask over the VAE's downsampling factor, optionally
widening the hole by ``dilate`` cells), so no unknown pixel leaks into the injected latents.  The
decoded picture is then pasted under the full-resolution mask: the VAE does not reproduce the
known pixels exactly, the paste does (optionally ``feather``-ed over a few known pixels at the seam).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .denoisers import DType, torch_dtype


def paste(result: Tensor, image: Tensor, keep_mask: Tensor, feather: int = 0) -> Tensor:
    """Known pixels from ``image``, the rest from ``result`` (``keep_mask`` 1 = known, ``[B, 1|C, H, W]``).

    ``feather`` > 0 blends the ``feather`` known pixels nearest the hole towards ``result`` (the
    known side only: the hole never sees the original).
    """
    weight = keep_mask
    if feather > 0:
        k = 2 * feather + 1
        blurred = F.avg_pool2d(keep_mask, k, stride=1, padding=feather, count_include_pad=False)
        weight = torch.minimum(keep_mask, blurred)
    return weight * image + (1 - weight) * result


def latent_keep_mask(keep_mask: Tensor, factor: int, dilate: int = 0) -> Tensor:
    """``[B, 1, H/f, W/f]``: 1 where every pixel of the cell is known in every channel (min-pooling)."""
    keep = keep_mask.amin(dim=1, keepdim=True)
    latent = -F.max_pool2d(-keep, factor)
    if dilate > 0:  # widen the hole by ``dilate`` cells
        latent = -F.max_pool2d(-latent, 2 * dilate + 1, stride=1, padding=dilate)
    return (latent >= 1.0).to(keep_mask.dtype)


class Space(ABC):
    """Where the sampler runs: base of the spaces (see the module docstring)."""

    paste_by_default = False
    factor = 1

    @abstractmethod
    def encode(self, image: Tensor) -> Tensor:
        """Picture ``[B, C, H, W]`` in [-1, 1] -> the sampler's x0."""
        ...

    @abstractmethod
    def mask(self, keep_mask: Tensor) -> Tensor:
        """Keep mask at picture resolution -> at the sampler's resolution."""
        ...

    @abstractmethod
    def decode(self, x: Tensor) -> Tensor:
        """The sampler's x -> picture in [-1, 1]."""
        ...

    @abstractmethod
    def paste(self, result: Tensor, image: Tensor, keep_mask: Tensor) -> Tensor: ...


class PixelSpace(Space):
    """The sampler runs on the pixels themselves."""

    paste_by_default = False  # the original RePaint writes the raw sample
    factor = 1

    def __init__(self, feather: int = 0):
        self.feather = feather

    def encode(self, image: Tensor) -> Tensor:
        return image

    def mask(self, keep_mask: Tensor) -> Tensor:
        return keep_mask

    def decode(self, x: Tensor) -> Tensor:
        return x

    def paste(self, result: Tensor, image: Tensor, keep_mask: Tensor) -> Tensor:
        return paste(result, image, keep_mask, self.feather)


class LatentSpace(nn.Module, Space):
    """The latent space of a diffusers ``AutoencoderKL`` (Stable Diffusion's VAE).

    Args:
        pretrained: a pipeline folder (its ``vae/``), a VAE folder, or a single-file checkpoint with ``config``.
        dtype: the VAE's weights (its outputs are cast to float32).
        dilate: widen the hole by this many latent cells.
        feather: blend this many known pixels at the seam when pasting (0: the known pixels are exact).
        config: the config folder for a single-file checkpoint.
    """

    paste_by_default = True

    def __init__(
        self, pretrained: str, dtype: DType = "float32", dilate: int = 0, feather: int = 0, config: Optional[str] = None
    ):
        super().__init__()
        from .pretrained import load_vae

        self._use(load_vae(pretrained, torch_dtype(dtype), config), dtype, dilate, feather, pretrained)

    @classmethod
    def of(cls, vae: nn.Module, dtype: DType = "float32", dilate: int = 0, feather: int = 0) -> "LatentSpace":
        """The latent space of a built VAE (anything with ``encode``/``decode``/``config`` like AutoencoderKL)."""
        space = cls.__new__(cls)
        nn.Module.__init__(space)
        space._use(vae, dtype, dilate, feather, type(vae).__name__)
        return space

    def _use(self, vae: nn.Module, dtype: DType, dilate: int, feather: int, source: str) -> None:
        self.vae = vae
        self.vae.requires_grad_(False)
        cfg = self.vae.config
        self.factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)  # SD3, FLUX: latents are shifted too
        self.dilate, self.feather, self.dtype_name, self.source = dilate, feather, dtype, source

    def _check_size(self, image: Tensor) -> None:
        h, w = image.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of the VAE's factor {self.factor} ({self.source}); "
                f"use --image_size {max(self.factor, (h // self.factor) * self.factor)}"
            )

    @torch.no_grad()
    def encode(self, image: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in [-1, 1] -> (mean − shift)·scaling of the latents ``[B, C, H/f, W/f]`` (C: 4, or 16
        for SD3 and FLUX)."""
        self._check_size(image)
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        latent = self.vae.encode(image.to(torch_dtype(self.dtype_name))).latent_dist.mean
        return (latent.float() - self.shift_factor) * self.scaling_factor

    def mask(self, keep_mask: Tensor) -> Tensor:
        return latent_keep_mask(keep_mask, self.factor, self.dilate)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents -> pictures (nominally in [-1, 1]; the writer clips): the VAE decodes z/scaling + shift."""
        latent = z / self.scaling_factor + self.shift_factor
        out = self.vae.decode(latent.to(torch_dtype(self.dtype_name))).sample
        return out.float()

    def paste(self, result: Tensor, image: Tensor, keep_mask: Tensor) -> Tensor:
        if image.shape[1] != result.shape[1]:
            image = image.expand(-1, result.shape[1], -1, -1)
        return paste(result, image, keep_mask, self.feather)
