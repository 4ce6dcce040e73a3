"""RePaint on the rectified flow with the ideal velocity of a Gaussian prior.

Data x0 ~ N(μ, diag(v)) in 4 dimensions; at level t with (a, s) = (1 − σ, σ) every dimension is
x_t ~ N(a·μ, a²·v + s²), so the ideal velocity E[ε − x0 | x_t] is closed form:
E[x0 | x_t] = μ + a·v·(x_t − a·μ)/(a²·v + s²), E[ε | x_t] = s·(x_t − a·μ)/(a²·v + s²).
"""

import pytest
import torch

from repaint_pl.flow import FlowConfig, FlowProcess
from repaint_pl.noise import GlobalNoise
from repaint_pl.sampling import SAMPLERS, DDIMRePaintSampler, RePaintSampler
from repaint_pl.schedules import JumpSchedule

MU = torch.tensor([0.5, -0.3, 0.0, 0.8]).view(1, 1, 2, 2)
VAR = torch.tensor([0.25, 0.5, 1.0, 0.36]).view(1, 1, 2, 2)
N = 10000  # samples: the standard error of a mean is √(v/N), of a variance v·√(2/N)


def oracle(process: FlowProcess):
    """The ideal velocity network ``model_fn(x_t, t)`` of the Gaussian prior."""

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = process.scales(t)
        spread = a**2 * VAR + s**2
        x0_mean = MU + a * VAR * (x_t - a * MU) / spread
        eps_mean = s * (x_t - a * MU) / spread
        return eps_mean - x0_mean

    return model_fn


def run(sampler, process: FlowProcess, keep: torch.Tensor, times, x0: torch.Tensor, on_step=None) -> torch.Tensor:
    torch.manual_seed(0)
    return sampler(oracle(process), x0, keep, times, process, GlobalNoise(N), clip_x0=False, on_step=on_step)


def assert_prior(samples: torch.Tensor, where: torch.Tensor, var_range: tuple[float, float] = (0.95, 1.0)) -> None:
    """Mean and variance per dimension of ``samples`` (at ``where``) against N(μ, v): the mean within 4 standard
    errors, the variance within 4 standard errors of ``var_range``·v (the ancestral step plugs in x̂0 = E[x0 | x_t]
    and so under-disperses by a few percent even on the full 1000-level grid, more on coarse grids)."""
    mean, var = samples.mean(0, keepdim=True), samples.var(0, keepdim=True)
    mean_err, var_err = 4 * (VAR / N).sqrt(), 4 * VAR * (2 / N) ** 0.5
    assert ((mean - MU).abs() <= mean_err)[where].all(), (mean - MU, mean_err)
    low, high = var_range[0] * VAR - var_err, var_range[1] * VAR + var_err
    assert ((var >= low) & (var <= high))[where].all(), (var, VAR)


PROCESS = FlowConfig(shift=3.0, steps=1000).build()  # SD3's shift on the full training grid
TIMES = JumpSchedule(jump_length=10, jump_n_sample=3).times(PROCESS.num_timesteps)


def test_repaint_on_the_flow_reproduces_the_prior_without_a_mask():
    x0 = torch.zeros(N, 1, 2, 2)  # unused: nothing is known
    samples = run(RePaintSampler(), PROCESS, torch.zeros(N, 1, 2, 2), TIMES, x0)
    assert_prior(samples, torch.ones_like(MU, dtype=torch.bool))


def test_known_pixels_enter_at_their_noised_values_and_the_rest_follows_the_prior():
    """With independent dimensions the unknown ones keep the prior; the network sees the known ones as
    a_t·x0 + s_t·z with z standard normal at every level."""
    keep = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2).expand(N, 1, 2, 2)
    x0 = torch.tensor([0.3, 9.0, 9.0, 1.0]).view(1, 1, 2, 2).expand(N, 1, 2, 2)  # 9: must never leak
    fed: list[tuple[int, torch.Tensor]] = []
    model_fn = oracle(PROCESS)

    def spy(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        fed.append((int(t[0]), x_t.clone()))
        return model_fn(x_t, t)

    torch.manual_seed(0)
    samples = RePaintSampler()(spy, x0, keep, TIMES, PROCESS, GlobalNoise(N), clip_x0=False)
    assert_prior(samples, keep[:1] == 0)
    known = keep[0, 0].bool()
    for level, x_t in fed[1:]:  # every call but the very first (RePaint does not inject there)
        a, s = PROCESS.scales(level)
        z = (x_t[:, 0][:, known] - a * x0[:, 0][:, known]) / s
        assert z.mean().abs() < 4 / (2 * N) ** 0.5 and (z.var() - 1).abs() < 4 * (2 / (2 * N)) ** 0.5


def test_ddim_repaint_with_the_bridge_noise_reproduces_the_prior():
    """DDIM-RePaint at η = 1 draws from the same bridge q(x_{t−1} | x_t, x̂0) as RePaint."""
    samples = run(DDIMRePaintSampler(eta=1.0), PROCESS, torch.zeros(N, 1, 2, 2), TIMES, torch.zeros(N, 1, 2, 2))
    assert_prior(samples, torch.ones_like(MU, dtype=torch.bool))


@pytest.mark.parametrize("cls", SAMPLERS)
def test_every_sampler_fills_from_the_prior_on_the_flow(cls):
    """Each sampler's defaults on a coarse 30-level flow with half the dimensions known: the unknown ones keep
    the prior's mean; their spread is the prior's, less the coarse steps' under-dispersion (at most 50%)."""
    process = FlowConfig(shift=3.0, steps=30).build()
    keep = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2).expand(N, 1, 2, 2)
    times = JumpSchedule(jump_length=3, jump_n_sample=2).times(30)
    samples = run(cls(), process, keep, times, MU.expand(N, 1, 2, 2))
    assert_prior(samples, keep[:1] == 0, var_range=(0.5, 1.0))
