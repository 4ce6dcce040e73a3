"""The rectified-flow process against independent formulas and diffusers' FlowMatchEulerDiscreteScheduler.

Independent formulas (float64, written from x_t = (1 − σ)·x0 + σ·ε, v = ε − x0): the marginal of a chain of
forward jumps, the Gaussian conditional q(x_{t−1} | x_t, x0) from the joint covariance, the velocity
conversions, and diffusers' own σ grids and Euler steps.
"""

import numpy as np
import pytest
import torch

from repaint_pl.flow import FlowConfig, FlowConfigError, calculate_shift, flow_config
from repaint_pl.sampling.steps import Problem, ddim_step, predict, renoise

diffusers = pytest.importorskip("diffusers")

CONFIGS = [  # (scheduler kwargs, spacing, steps, image tokens): SD3's, FLUX's and other shifts
    (dict(shift=3.0), "scheduler", 10, 4096),
    (dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15), "flux", 7, 1024),
    (dict(shift=1.0), "scheduler", 28, 4096),
    (dict(use_dynamic_shifting=True, time_shift_type="linear"), "scheduler", 5, 300),
    (dict(shift=2.0, shift_terminal=0.1), "scheduler", 12, 4096),
]


def diffusers_grid(kwargs, spacing, steps, tokens):
    sch = diffusers.FlowMatchEulerDiscreteScheduler(**kwargs)
    mu = calculate_shift(tokens, 256, 4096, sch.config.base_shift, sch.config.max_shift)
    sigmas = np.linspace(1.0, 1 / steps, steps) if spacing == "flux" else None
    sch.set_timesteps(steps, sigmas=sigmas, mu=mu if kwargs.get("use_dynamic_shifting") else None)
    return sch


@pytest.mark.parametrize("case", range(len(CONFIGS)))
def test_sigma_grid_and_timesteps_equal_diffusers(case):
    kwargs, spacing, steps, tokens = CONFIGS[case]
    sch = diffusers_grid(kwargs, spacing, steps, tokens)
    process = flow_config(dict(sch.config), steps, spacing, tokens).build()
    levels = torch.arange(steps - 1, -1, -1)  # level K−1 is diffusers' first step
    assert torch.allclose(process.sigma[levels], sch.sigmas[:-1], atol=1e-6)
    assert torch.allclose(process.model_time(levels), sch.timesteps, atol=1e-3)


def test_mu_is_linear_in_the_tokens_between_the_configured_ends():
    assert calculate_shift(256, 256, 4096, 0.5, 1.15) == pytest.approx(0.5)
    assert calculate_shift(4096, 256, 4096, 0.5, 1.15) == pytest.approx(1.15)
    assert calculate_shift(2176, 256, 4096, 0.5, 1.15) == pytest.approx(0.825)


def test_unsupported_scheduler_options_are_refused_in_one_line():
    for key in ("use_karras_sigmas", "invert_sigmas"):
        with pytest.raises(FlowConfigError, match=key):
            flow_config({key: True}, 10, source="sched.json")
    with pytest.raises(FlowConfigError, match="DDPMScheduler"):
        flow_config({"_class_name": "DDPMScheduler"}, 10)
    with pytest.raises(FlowConfigError, match="steps=0"):
        FlowConfig(steps=0)


PROCESS = FlowConfig(shift=3.0, steps=12).build()


def test_scales_are_one_minus_sigma_and_sigma():
    for t in range(PROCESS.num_timesteps):
        a, s = PROCESS.scales(t)
        assert float(a) == pytest.approx(1 - float(PROCESS.sigma[t])) and float(s) == float(PROCESS.sigma[t])
    a, s = PROCESS.scales(-1)
    assert float(a) == 1 and float(s) == 0


@pytest.mark.parametrize("path", [[-1, 3], [-1, 0, 1, 2, 5], [2, 7, 11], [4, 5, 6, 10]])
def test_forward_jumps_compose_to_the_marginal(path):
    """x0 -> x_{t0} (marginal) -> jumps: the result is N(a_s·x0, s_s²) at the last level, by the moments."""
    a0, s0 = PROCESS.scales(path[0])
    mean, var = float(a0), float(s0) ** 2  # of x at path[0] given x0 = 1 (level −1: the data itself)
    for t, s in zip(path, path[1:]):
        r, std = PROCESS.transition(t, s)
        mean, var = float(r) * mean, float(r) ** 2 * var + float(std) ** 2
    sigma = float(PROCESS.sigma[path[-1]])
    assert mean == pytest.approx(1 - sigma, abs=1e-6) and var == pytest.approx(sigma**2, abs=1e-6)


def test_renoise_draws_the_marginal_by_monte_carlo():
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 1, 1), 0.7)
    x_2 = 0.7 * PROCESS.scales(2)[0] + PROCESS.scales(2)[1] * torch.randn(x0.shape, generator=g)
    x_9 = renoise(PROCESS, x_2, 2, 9, torch.randn(x0.shape, generator=g))
    a, s = (float(v) for v in PROCESS.scales(9))
    assert float(x_9.mean()) == pytest.approx(0.7 * a, abs=4 * s / 20000**0.5)
    assert float(x_9.std()) == pytest.approx(s, rel=0.03)


@pytest.mark.parametrize("t", [0, 1, 6, 11])
def test_bridge_posterior_is_the_gaussian_conditional(t):
    """q(x_{t−1} | x_t, x0) from the joint covariance of (x_{t−1}, x_t) given x0, in float64."""
    sig = PROCESS.sigma.double().numpy()
    s_prev, s = (sig[t - 1] if t > 0 else 0.0), sig[t]
    a_prev, a = 1 - s_prev, 1 - s
    # x_{t−1} = a'·x0 + s'·ε1, x_t = a·x0 + ... with x_t | x_{t−1} the forward kernel: cov(x_{t−1}, x_t) = (a/a')·s'²
    cov = (a / a_prev) * s_prev**2
    x0, x_t = 0.3, -0.4
    mean = a_prev * x0 + cov / s**2 * (x_t - a * x0)
    var = s_prev**2 - cov**2 / s**2
    got = PROCESS.posterior(torch.tensor(x0), torch.tensor(x_t), t)
    assert float(got) == pytest.approx(mean, abs=1e-6)
    log_var = float(PROCESS.decode(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), t).log_var)
    if t > 0:  # level 0 lands on the data: no noise is added there
        assert np.exp(log_var) == pytest.approx(var, rel=1e-5)


def test_velocity_conversions_and_training_target():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    for t in (0, 5, 11):
        sigma = float(PROCESS.sigma[t])
        x_t = (1 - sigma) * x0 + sigma * eps
        v = PROCESS.target(x0, eps, t)
        assert torch.allclose(v, eps - x0)
        out = PROCESS.decode(v, x_t, t)
        assert torch.allclose(out.x0, x0, atol=1e-5) and torch.allclose(out.eps, eps, atol=1e-5)
    with pytest.raises(ValueError, match="velocity channels"):
        PROCESS.decode(torch.zeros(1, 8, 2, 2), torch.zeros(1, 4, 2, 2), 3)


def test_deterministic_ddim_step_is_the_euler_step_of_diffusers():
    """DDIM at η = 0 over the flow's levels = FlowMatchEulerDiscreteScheduler.step with the same velocities."""
    kwargs, spacing, steps, tokens = CONFIGS[1]
    sch = diffusers_grid(kwargs, spacing, steps, tokens)
    process = flow_config(dict(sch.config), steps, spacing, tokens).build()
    g = torch.Generator().manual_seed(2)
    x = theirs = torch.randn(1, 4, 2, 2, generator=g)
    problem = Problem(lambda x_t, t: torch.sin(3 * x_t) + t.float().view(-1, 1, 1, 1) / 1000, x, x, process, None)
    problem.clip_x0 = False
    for i, timestep in enumerate(sch.timesteps):
        level = steps - 1 - i
        theirs = sch.step(problem.model_fn(theirs, torch.tensor([level])), timestep, theirs).prev_sample
        x = ddim_step(process, predict(problem, x, level), level, level - 1, 0.0, torch.zeros_like(x))
        assert torch.allclose(x, theirs, atol=1e-5)


def test_explicit_sigmas_are_shifted_as_diffusers_shifts_them():
    sigmas = [1.0, 0.8, 0.45, 0.2, 0.05]
    sch = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    sch.set_timesteps(sigmas=sigmas)
    process = FlowConfig(shift=3.0, sigmas=sigmas).build()
    assert process.num_timesteps == 5
    assert torch.allclose(process.sigma.flip(0), sch.sigmas[:-1], atol=1e-6)
    with pytest.raises(FlowConfigError, match="decrease strictly"):
        FlowConfig(sigmas=[0.5, 0.7]).build()
