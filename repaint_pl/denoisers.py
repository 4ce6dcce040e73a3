"""Small wrappers that turn networks into the sampler's ``model_fn`` / ``grad_fn`` protocol.

Each maps the respaced index to what the network expects (``Diffusion.model_time``)
and binds the conditioning (class labels) for one batch.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diffusion import Diffusion
from .sampler import GradFn, ModelFn


def adm_model_fn(net: Callable[..., Tensor], diffusion: Diffusion, y: Optional[Tensor] = None) -> ModelFn:
    """guided-diffusion UNet ``net(x, base_timestep, y)``; ``y`` only for class-conditional nets."""
    d = diffusion

    def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
        return net(x_t, d.model_time(t), y)

    return model_fn


def classifier_grad_fn(classifier: nn.Module, diffusion: Diffusion, y: Tensor, scale: float) -> GradFn:
    """s·∇_x log p(y | x_t) from a noisy-image classifier ``classifier(x, base_timestep) -> logits``."""
    d = diffusion

    def grad_fn(x_t: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            log_probs = F.log_softmax(classifier(x_in, d.model_time(t)), dim=-1)
            selected = log_probs[torch.arange(len(y), device=y.device), y]
            return torch.autograd.grad(selected.sum(), x_in)[0] * scale

    return grad_fn
