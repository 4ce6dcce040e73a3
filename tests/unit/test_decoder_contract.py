"""Contract of the one decoder: every sampler reads ε-, x0- and v-prediction networks (fixed or learned
variance, pixel or latent shapes) as the independent formulas say.

The formulas here are written from the paper definitions in float64 (ᾱ from the linear betas, not
from the project's tables): ε: x0 = (x_t − √(1−ᾱ)·ε)/√ᾱ; x0: x0 = out; v = √ᾱ·ε − √(1−ᾱ)·x0:
x0 = √ᾱ·x_t − √(1−ᾱ)·v.
"""

import numpy as np
import pytest
import torch

from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.noise import PerSampleNoise
from repaint_pl.sampling import (
    CoarseTravelSampler,
    DDIMRePaintSampler,
    DDNMSampler,
    DiffPIRSampler,
    RePaintSampler,
)
from repaint_pl.schedules import jump_times

STEPS = 20  # respaced levels (of 1000, guided-diffusion's even spacing)
SAMPLERS = {
    "repaint": RePaintSampler(),
    "ddim_repaint": DDIMRePaintSampler(eta=0.0),
    "ddnm": DDNMSampler(),
    "diffpir": DiffPIRSampler(sigma_n=0.05),
    "coarse_travel": CoarseTravelSampler(steps=6, jump_length=1, jump_n_sample=2),
    "coarse_travel_x0": CoarseTravelSampler(steps=6, jump_length=1, jump_n_sample=2, replace="x0"),
}
SPACES = {"pixel": (3, 8, True), "latent": (4, 4, 4.0)}  # channels, side, x0 clip range (latents: ±4)


def alpha_bar_of(base_t: int) -> float:
    """ᾱ at base step ``base_t`` of the linear schedule over 1000 steps (1e-4 … 0.02), in float64."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    return float(np.prod(1.0 - betas[: base_t + 1]))


def independent_x0(kind: str, x_t: torch.Tensor, out: torch.Tensor, ab: float) -> torch.Tensor:
    x_t, out = x_t.double(), out.double()
    if kind == "epsilon":
        return (x_t - np.sqrt(1 - ab) * out) / np.sqrt(ab)
    if kind == "sample":
        return out
    return np.sqrt(ab) * x_t - np.sqrt(1 - ab) * out


class FixedOutput:
    """A 'network' that returns a fixed random output (C or 2C channels) and records what it was fed."""

    def __init__(self, shape: tuple[int, ...], channels_out: int, scale: float):
        g = torch.Generator().manual_seed(11)
        self.out = torch.randn((shape[0], channels_out, *shape[2:]), generator=g) * scale
        self.fed: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.fed.append((x_t.clone(), t.clone()))
        return self.out.clone()


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("variance", ["fixed_small", "learned_range"])
@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_reads_the_output_as_the_formula_says(name, kind, variance, space):
    channels, side, clip = SPACES[space]
    d = DiffusionConfig(timestep_respacing=str(STEPS), prediction=kind, variance=variance).build()
    shape = (2, channels, side, side)
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(shape, generator=g) * 2 - 1
    keep = torch.zeros(2, 1, side, side)
    keep[..., : side // 2] = 1  # the left half known
    net = FixedOutput(shape, channels * (2 if variance == "learned_range" else 1), scale=0.5)
    seen = []
    SAMPLERS[name](
        net, x0, keep, jump_times(STEPS, 1, 3, 2), d, PerSampleNoise(0, [5, 6]),
        clip_x0=clip, on_step=lambda s: seen.append(s),
    )  # fmt: skip
    # the first reverse transition's x0 prediction against the formula on what the network was fed
    first = next(s for s in seen if s.x0_pred is not None)
    x_fed, t_fed = net.fed[0]
    assert torch.all(t_fed == first.t_from)
    ab = alpha_bar_of(int(d.timestep_map[first.t_from]))
    limit = 1.0 if clip is True else float(clip)
    expected = independent_x0(kind, x_fed, net.out[:, :channels], ab).clamp(-limit, limit)
    hole = (1 - keep).bool().expand_as(x0)  # replace="x0" writes the known pixels into x0 on purpose
    torch.testing.assert_close(first.x0_pred.double()[hole], expected[hole], atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction"])
def test_repaint_first_step_is_the_ddpm_posterior_draw(kind, variance):
    """x_{T-2} = μ̃(x_{T-1}, clip(x̂0)) + σ·z with σ² fixed (σ̃², β) or learned (log-interpolated), z the
    sample's second draw (the first is x_T), all from float64 formulas."""
    d = DiffusionConfig(timestep_respacing=str(STEPS), prediction=kind, variance=variance).build()
    shape = (1, 3, 4, 4)
    net = FixedOutput(shape, 6 if variance == "learned_range" else 3, scale=0.5)
    seen = []
    times = list(range(STEPS - 1, -2, -1))
    RePaintSampler()(net, torch.zeros(shape), torch.zeros(1, 1, 4, 4), times, d, PerSampleNoise(1, [0]),
                     on_step=seen.append)  # fmt: skip
    replay = PerSampleNoise(1, [0])
    x_T, z = replay.randn(shape[1:]).double(), replay.randn(shape[1:]).double()
    kept = [int(k) for k in d.timestep_map]
    t, t_prev = kept[-1], kept[-2]
    ab, ab_prev = alpha_bar_of(t), alpha_bar_of(t_prev)
    beta = 1 - ab / ab_prev  # the respaced step's β
    x0_hat = independent_x0(kind, x_T, net.out[:, :3], ab).clamp(-1, 1)
    mean = (np.sqrt(ab_prev) * beta * x0_hat + np.sqrt(1 - beta) * (1 - ab_prev) * x_T) / (1 - ab)
    small = beta * (1 - ab_prev) / (1 - ab)
    if variance == "fixed_small":
        log_var = torch.full_like(mean, np.log(small))
    elif variance == "fixed_large":
        log_var = torch.full_like(mean, np.log(beta))
    else:
        frac = (net.out[:, 3:].double() + 1) / 2
        log_var = frac * np.log(beta) + (1 - frac) * np.log(small)
    expected = mean + torch.exp(0.5 * log_var) * z
    torch.testing.assert_close(seen[0].x.double(), expected, atol=3e-5, rtol=3e-5)


@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction"])
def test_training_target_inverts_the_decoder(kind):
    """The loss's target is the output that decodes to the true x0 and ε (one parameterisation, two directions)."""
    d = DiffusionConfig(timestep_respacing="", prediction=kind, variance="fixed_small").build(respaced=False)
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.rand(3, 3, 4, 4, generator=g) * 2 - 1, torch.randn(3, 3, 4, 4, generator=g)
    t = torch.tensor([5, 400, 990])
    a = torch.tensor([np.sqrt(alpha_bar_of(int(k))) for k in t]).view(-1, 1, 1, 1).float()
    x_t = a * x0 + (1 - a**2).sqrt() * eps
    out = d.decode(d.target(x0, eps, t), x_t, t)
    torch.testing.assert_close(out.x0, x0, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.eps, eps, atol=2e-4, rtol=0)


def test_aliases_fold_into_prediction():
    assert DiffusionConfig(predict_xstart=True).prediction == "sample"
    assert DiffusionConfig(prediction_type="v_prediction").prediction == "v_prediction"
    with pytest.raises(ValueError, match="diffusion.prediction"):
        DiffusionConfig(prediction="velocity")
