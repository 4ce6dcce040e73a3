"""The RePaint loop: invariants that hold for any model, and batch independence with a real tiny UNet."""

import numpy as np
import pytest
import torch
from conftest import TINY, randomize

from repaint_pl.denoisers import adm_model_fn
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.nets import UNetConfig
from repaint_pl.noise import GlobalNoise, PerSampleNoise, sample_seed
from repaint_pl.sampler import repaint, reverse_step
from repaint_pl.schedules import jump_times, linear_betas, respace_betas, space_timesteps

K = 20
PLAIN = list(range(K - 1, -2, -1))


@pytest.fixture(scope="module")
def d():
    return DiffusionConfig(timestep_respacing=str(K), variance="fixed_small").build()


def images(n=2, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def oracle(d, x0):
    """A perfect ε-predictor for known clean images x0."""

    def model_fn(x_t, t):
        ab = d.alpha_bar[t].view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    return model_fn


def test_known_everywhere_returns_the_image(d):
    x0 = images()
    out = repaint(oracle(d, x0), x0, torch.ones(2, 1, 8, 8), jump_times(K, 1, 3, 3), d, PerSampleNoise(0, [0, 1]))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_paste_known_copies_known_pixels(d):
    x0, mask = images(), (torch.rand(2, 1, 8, 8) > 0.5).float()
    out = repaint(lambda x, t: 0.1 * x, x0, mask, PLAIN, d, PerSampleNoise(0, [0, 1]), paste_known=True)
    assert torch.equal(out * mask, (x0 * mask.expand_as(x0)))


def test_nothing_known_without_jumps_is_ancestral_sampling(d):
    """Reference: plain DDPM ancestral sampling in float64, with the same per-sample draws
    (posterior noise, then the known-region noise, which has no effect when nothing is known)."""
    model = lambda x, t: 0.3 * torch.tanh(x)  # noqa: E731
    x0 = images()
    out = repaint(model, x0, torch.zeros(2, 1, 8, 8), PLAIN, d, PerSampleNoise(7, [3, 4]))
    betas, _ = respace_betas(linear_betas(1000), space_timesteps(1000, str(K)))
    ab = np.cumprod(1 - betas)
    ab_prev = np.append(1.0, ab[:-1])
    for i, sid in enumerate([3, 4]):
        g = torch.Generator().manual_seed(sample_seed(7, sid))
        x = torch.randn(3, 8, 8, generator=g).double()
        for t in range(K - 1, -1, -1):
            z = torch.randn(3, 8, 8, generator=g).double()
            if t < K - 1:
                torch.randn(3, 8, 8, generator=g)  # the known-region draw
            eps = 0.3 * torch.tanh(x)
            x0_pred = ((x - np.sqrt(1 - ab[t]) * eps) / np.sqrt(ab[t])).clamp(-1, 1)
            mean = (betas[t] * np.sqrt(ab_prev[t]) * x0_pred + (1 - ab_prev[t]) * np.sqrt(1 - betas[t]) * x) / (
                1 - ab[t]
            )
            var = betas[t] * (1 - ab_prev[t]) / (1 - ab[t])
            log_var = np.log(var if t > 0 else betas[1] * (1 - ab[0]) / (1 - ab[1]))
            x = mean + (np.exp(0.5 * log_var) * z if t > 0 else 0)
        torch.testing.assert_close(out[i].double(), x, atol=2e-4, rtol=0)


def test_guidance_shifts_the_mean_by_variance_times_gradient(d):
    x, t, noise = images(), torch.tensor(10), torch.randn(2, 3, 8, 8)
    g = torch.full_like(x, 0.25)
    base, _ = reverse_step(d, lambda x, t: 0.1 * x, x, t, noise)
    guided, _ = reverse_step(d, lambda x, t: 0.1 * x, x, t, noise, grad_fn=lambda x, t: g)
    torch.testing.assert_close(guided - base, torch.exp(d.posterior_log_var[10]) * g, atol=1e-6, rtol=1e-5)


def test_hook_sees_every_transition_and_resume_reproduces_the_run(d):
    x0, mask = images(), torch.zeros(2, 1, 8, 8)
    mask[..., :4] = 1
    times, model = jump_times(K, 1, 3, 3), (lambda x, t: 0.2 * x)
    states, saved = [], {}
    k = len(times) // 2

    def hook(s):
        states.append((s.t_from, s.t_to))
        if s.index == k - 1:
            saved["x"], saved["gen"] = s.x.clone(), [g.get_state() for g in noise.generators]

    noise = PerSampleNoise(1, [0, 1])
    full = repaint(model, x0, mask, times, d, noise, on_step=hook)
    assert states == list(zip(times[:-1], times[1:]))
    resumed_noise = PerSampleNoise(1, [0, 1])
    for g, state in zip(resumed_noise.generators, saved["gen"]):
        g.set_state(state)
    resumed = repaint(model, x0, mask, times, d, resumed_noise, x_start=saved["x"], start_index=k)
    assert torch.equal(full, resumed)


@pytest.fixture(scope="module")
def tiny_net():
    return randomize(UNetConfig(**TINY).build()).eval()


def test_result_independent_of_batch_composition(tiny_net):
    d = DiffusionConfig(timestep_respacing="10").build()
    x0 = images(3, 32)
    mask = torch.ones(3, 1, 32, 32)
    mask[..., 8:24, 8:24] = 0
    times = jump_times(10, 1, 2, 2)
    fn = adm_model_fn(tiny_net, d)
    with torch.no_grad():
        batch = repaint(fn, x0, mask, times, d, PerSampleNoise(5, [10, 11, 12]))
        for i in range(3):
            single = repaint(fn, x0[i : i + 1], mask[i : i + 1], times, d, PerSampleNoise(5, [10 + i]))
            torch.testing.assert_close(single[0], batch[i], atol=1e-5, rtol=0)
        order = [2, 0, 1]
        permuted = repaint(fn, x0[order], mask[order], times, d, PerSampleNoise(5, [12, 10, 11]))
    torch.testing.assert_close(permuted, batch[order], atol=1e-5, rtol=0)


def test_sample_generator_matches_global_seed():
    """Sample i under seed S draws what torch.manual_seed(sample_seed(S, i)) draws (runs line up with the original)."""
    torch.manual_seed(sample_seed(123, 4))
    expected = torch.randn(1, 3, 4, 4)
    assert torch.equal(PerSampleNoise(123, [4]).randn((3, 4, 4)), expected)
    torch.manual_seed(sample_seed(123, 4))
    assert torch.equal(GlobalNoise(1).randn((3, 4, 4)), expected)


def test_sample_seeds_differ_in_the_bits_the_cpu_generator_uses():
    seeds = {sample_seed(s, i) for s in range(20) for i in range(500)}
    assert len(seeds) == 20 * 500 and max(seeds) < 2**32
