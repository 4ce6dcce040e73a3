"""Diffusion constants and formulas against independent float64 computations."""

import numpy as np
import pytest
import torch

from repaint_pl.diffusion import (
    DiffusionConfig,
    model_log_variance,
    normal_kl,
    p_mean_variance,
    q_sample,
    training_losses,
)
from repaint_pl.sampling.steps import renoise
from repaint_pl.schedules import linear_betas, respace_betas, space_timesteps


@pytest.fixture(scope="module")
def d():
    return DiffusionConfig(timestep_respacing="50").build()


def reference(t):
    """ᾱ, β, ᾱ_prev of the 50-step respaced linear process at index t, in float64."""
    betas, _ = respace_betas(linear_betas(1000), space_timesteps(1000, "50"))
    ab = np.cumprod(1 - betas)
    return ab[t], betas[t], (ab[t - 1] if t else 1.0)


def test_timestep_map_and_tables(d):
    assert d.num_timesteps == 50 and d.timestep_map[0] == 0 and d.timestep_map[-1] == 999
    ab, beta, ab_prev = reference(20)
    assert d.alpha_bar[20].item() == pytest.approx(ab, rel=1e-6)
    assert d.posterior_var[20].item() == pytest.approx(beta * (1 - ab_prev) / (1 - ab), rel=1e-5)


def test_rescaled_model_time():
    d = DiffusionConfig(timestep_respacing="50", rescale_timesteps=True).build()
    assert d.model_time(torch.tensor([49])).item() == pytest.approx(999.0)
    d4 = DiffusionConfig(steps=4000, timestep_respacing="", rescale_timesteps=True).build()
    assert d4.model_time(torch.tensor([2000])).item() == pytest.approx(500.0)


def test_x0_from_eps_inverts_q_sample(d):
    g = torch.Generator().manual_seed(0)
    x0, eps, t = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1, torch.randn(2, 3, 8, 8, generator=g), torch.tensor(30)
    torch.testing.assert_close(d.decode(eps, q_sample(d, x0, t, eps), t).x0, x0, atol=1e-5, rtol=0)


def test_posterior_mean_formula(d):
    x0, x_t, t = torch.full((1, 1, 1, 1), 0.3), torch.full((1, 1, 1, 1), -0.7), 20
    ab, beta, ab_prev = reference(t)
    expected = beta * np.sqrt(ab_prev) / (1 - ab) * 0.3 + (1 - ab_prev) * np.sqrt(1 - beta) / (1 - ab) * -0.7
    assert d.posterior(x0, x_t, torch.tensor(t)).item() == pytest.approx(expected, rel=1e-5)


def test_learned_range_interpolates_between_fixed_variances(d):
    t = torch.tensor(25)
    lo = model_log_variance(d, -torch.ones(1, 3, 2, 2), t)
    hi = model_log_variance(d, torch.ones(1, 3, 2, 2), t)
    torch.testing.assert_close(lo, torch.full_like(lo, d.posterior_log_var[25].item()))
    torch.testing.assert_close(hi, torch.full_like(hi, np.log(reference(25)[1])))


def test_fixed_variances():
    small = DiffusionConfig(timestep_respacing="50", variance="fixed_small").build()
    large = DiffusionConfig(timestep_respacing="50", variance="fixed_large").build()
    t = torch.tensor(10)
    assert model_log_variance(small, None, t).item() == pytest.approx(small.posterior_log_var[10].item())
    assert model_log_variance(large, None, t).item() == pytest.approx(np.log(reference(10)[1]), rel=1e-6)
    with pytest.raises(ValueError, match="2C output"):
        model_log_variance(DiffusionConfig().build(), None, t)


def test_x0_prediction_mode_and_clipping():
    d = DiffusionConfig(timestep_respacing="50", prediction="sample", variance="fixed_large").build()
    x_t = torch.zeros(1, 3, 2, 2)
    _, _, x0 = p_mean_variance(d, torch.full((1, 3, 2, 2), 5.0), x_t, torch.tensor(3), clip_x0=True)
    assert torch.all(x0 == 1.0)


def test_one_level_jump_moments(d):
    g = torch.Generator().manual_seed(1)
    x = torch.full((20000,), 0.5).view(-1, 1, 1, 1)
    out = renoise(d, x, 39, 40, torch.randn(x.shape, generator=g))
    beta = reference(40)[1]
    assert out.mean().item() == pytest.approx(np.sqrt(1 - beta) * 0.5, abs=0.01)
    assert out.var().item() == pytest.approx(beta, rel=0.05)


def test_losses(d):
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 5, 20, 49])
    x_t = q_sample(d, x0, t, noise)
    perfect = torch.cat([noise, torch.zeros_like(noise)], dim=1)
    losses = training_losses(d, perfect, x0, x_t, t, noise)
    assert torch.all(losses["mse"] == 0) and torch.all(losses["vb"][1:] >= 0)
    torch.testing.assert_close(losses["loss"], losses["mse"] + losses["vb"])
    eps_only = DiffusionConfig(timestep_respacing="50", variance="fixed_small").build()
    assert set(training_losses(eps_only, noise + 1, x0, x_t, t, noise)) == {"mse", "loss"}


def test_normal_kl_zero_for_equal():
    m, lv = torch.randn(10), torch.randn(10)
    assert torch.allclose(normal_kl(m, lv, m, lv), torch.zeros(10), atol=1e-6)
