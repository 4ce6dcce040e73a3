"""An SD 2.x-style v-prediction model through the fast sampler: its first step gives the pictures the
formula predicts (x0 = √ᾱ·x_t − √(1−ᾱ)·v, ε = √(1−ᾱ)·x_t + √ᾱ·v, ᾱ from diffusers' own scheduler).

Before the one decoder, the fast sampler read a v output as ε (x0 off by ~30 on a random output)."""

import numpy as np
import pytest
import torch

from repaint_pl.apps.tiny import tiny_sd_pipeline
from repaint_pl.denoisers import StableDiffusionDenoiser
from repaint_pl.module import RePaintModule
from repaint_pl.noise import PerSampleNoise
from repaint_pl.sampling import CoarseTravelSampler
from repaint_pl.spaces import LatentSpace


@pytest.fixture(scope="module")
def sd_v(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("sd_v") / "tiny_sd_v")
    tiny_sd_pipeline("v_prediction").save_pretrained(path)
    return path


def test_fast_sampler_first_step_matches_the_v_formula(sd_v):
    from diffusers import DDPMScheduler

    den = StableDiffusionDenoiser(sd_v, prompt="a photo", guidance_scale=1.0, steps=20)
    sampler = CoarseTravelSampler(steps=4, jump_length=1, jump_n_sample=1)
    module = RePaintModule(denoiser=den, space=LatentSpace(sd_v), sampler=sampler).eval()
    fed = []
    den.unet.register_forward_hook(
        lambda m, args, kwargs, out: fed.append((kwargs.get("sample", args[0] if args else None), out.sample)),
        with_kwargs=True,
    )
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    keep = torch.ones(1, 1, 64, 64)
    keep[..., 16:48, 8:40] = 0
    seen = []
    with torch.no_grad():
        module.inpaint(image, keep, torch.tensor([7]), on_step=seen.append)
        first = seen[0]
        x_t, v = fed[0][0].double(), fed[0][1].double()
        base_t = int(den.diffusion.timestep_map[first.t_from])
        alphas = DDPMScheduler.from_pretrained(sd_v, subfolder="scheduler").alphas_cumprod.double()
        ab = alphas[base_t]
        x0 = ab.sqrt() * x_t - (1 - ab).sqrt() * v
        eps = (1 - ab).sqrt() * x_t + ab.sqrt() * v
        torch.testing.assert_close(first.x0_pred.double(), x0, atol=1e-4, rtol=1e-4)
        # the same pictures: the VAE decodes the sampler's x0 and the formula's alike
        space = module.space
        torch.testing.assert_close(space.decode(first.x0_pred), space.decode(x0.float()), atol=1e-4, rtol=1e-4)
        # and the step lands where the DDPM posterior (η = 1) says, with the sample's own third draw
        ab_prev = alphas[int(den.diffusion.timestep_map[first.t_to])]
        replay = PerSampleNoise(0, [7])
        for _ in range(2):  # x_T, the known region's noise
            replay.randn(first.x.shape[1:])
        z = replay.randn(first.x.shape[1:]).double()
        sigma2 = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        expected = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma2).sqrt() * eps + sigma2.sqrt() * z
        torch.testing.assert_close(first.x.double(), expected, atol=1e-4, rtol=1e-4)
    # read as ε, the same output would have given an x0 far from the formula's
    wrong = (x_t - (1 - ab).sqrt() * v) / ab.sqrt()
    assert float((wrong - x0).abs().max()) > 1.0
    assert np.isfinite(first.x.numpy()).all()
