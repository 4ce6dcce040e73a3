"""The thin RePaintModule: it composes a denoiser, a space and a sampler; ADM specifics live in ADMDenoiser."""

import pytest
import torch

from repaint_pl.denoisers import ADMDenoiser, Denoiser
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.module import RePaintModule
from repaint_pl.nets import UNetConfig


class Zero(Denoiser):
    """A denoiser that predicts ε = 0 and has no network to train."""

    def __init__(self):
        self.diffusion = DiffusionConfig(timestep_respacing="5", variance="fixed_small").build()

    def bind(self, cond, noise):
        return (lambda x, t: torch.zeros_like(x)), None


def test_a_denoiser_that_does_not_train_says_so_in_one_line():
    m = RePaintModule(denoiser=Zero())
    batch = {"image": torch.zeros(1, 3, 4, 4)}
    for call in (m.configure_optimizers, lambda: m.diffusion_losses(batch)):
        with pytest.raises(ValueError, match="Zero is not trained here"):
            call()
    out = m.inpaint(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4), torch.tensor([0]))
    assert out.shape == (1, 3, 4, 4) and m.net is None


def test_the_adm_denoiser_parts_keep_the_checkpoint_names():
    m = RePaintModule(net=UNetConfig(preset="tiny"), diffusion=DiffusionConfig(timestep_respacing="5"))
    assert isinstance(m.denoiser, ADMDenoiser) and m.net is m.denoiser.net
    keys = list(m.state_dict())
    assert keys and all(k.startswith("net.") for k in keys)
    assert m.sampling is m.denoiser.diffusion and m.times[0] == 4
    losses = m.diffusion_losses({"image": torch.zeros(2, 3, 32, 32)}, torch.Generator().manual_seed(0))
    assert set(losses) == {"mse", "vb", "loss"} and torch.isfinite(losses["loss"]).all()
