"""The samplers of repaint_pl.sampling: invariants every sampler keeps, RePaintSampler = repaint() bit
for bit, their costs, configs, and the step math against direct formulas."""

import glob
import math
import os

import pytest
import torch

from repaint_pl.apps.exact.priors import ExactDenoiser, gaussian_prior
from repaint_pl.diffusion import Decoded, DiffusionConfig
from repaint_pl.noise import PerSampleNoise
from repaint_pl.sampling import (
    CoarseTravelSampler,
    DDIMRePaintSampler,
    DDNMSampler,
    DiffPIRSampler,
    RePaintSampler,
    Sampler,
    coarse_grid,
    repaint,
)
from repaint_pl.sampling.steps import ddim_step, renoise
from repaint_pl.schedules import count_network_calls, jump_times

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K = 20
TABLE = jump_times(K, 1, 5, 3)  # jumps: every sampler that walks the table sees forward steps too

SAMPLERS = [
    RePaintSampler(),
    DDIMRePaintSampler(eta=0.0),
    DDIMRePaintSampler(eta=1.0),
    DDNMSampler(),
    DiffPIRSampler(),
    DiffPIRSampler(sigma_n=0.05),
    CoarseTravelSampler(steps=8, jump_length=2, jump_n_sample=3),
    CoarseTravelSampler(steps=8, jump_length=1, jump_n_sample=3, variance="posterior", replace="x0", eta=0.5),
]
IDS = [type(s).__name__ + str(i) for i, s in enumerate(SAMPLERS)]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small FFTs, many tiny steps


@pytest.fixture(scope="module")
def d():
    return DiffusionConfig(timestep_respacing=str(K), variance="fixed_small").build()


def images(n=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g) * 1.6 - 0.8


def oracle_of(d, size=8):
    return ExactDenoiser(gaussian_prior(size), d).bind()[0]


EXACT_DATA = [(s, i) for s, i in zip(SAMPLERS, IDS) if getattr(s, "sigma_n", 0) == 0]  # σ_n > 0: noisy data


@pytest.mark.parametrize("sampler", [s for s, _ in EXACT_DATA], ids=[i for _, i in EXACT_DATA])
def test_mask_of_ones_returns_the_known_image(sampler, d):
    """Everything known: every sampler returns the image (the last x0 prediction from the least noisy
    level, within its noise √(1-ᾱ_0) = 0.01 for those that replace in x_t)."""
    x0 = images()
    out = sampler(oracle_of(d), x0, torch.ones_like(x0), TABLE, d, PerSampleNoise(0, [0, 1, 2]), clip_x0=False)
    torch.testing.assert_close(out, x0, atol=0.05, rtol=0)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_a_sample_does_not_depend_on_its_batch(sampler, d):
    x0, keep = images(), (torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    model = oracle_of(d)
    together = sampler(model, x0, keep, TABLE, d, PerSampleNoise(5, [10, 11, 12]), clip_x0=False)
    alone = sampler(model, x0[1:2], keep[1:2], TABLE, d, PerSampleNoise(5, [11]), clip_x0=False)
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_network_calls_counts_the_calls(sampler, d):
    calls = []
    model = oracle_of(d)

    def counting(x, t):
        calls.append(int(t[0]))
        return model(x, t)

    sampler(counting, images(), torch.zeros(3, 1, 8, 8), TABLE, d, PerSampleNoise(0, [0, 1, 2]), clip_x0=False)
    assert len(calls) == sampler.network_calls(TABLE)
    assert all(0 <= t < K for t in calls)


def test_repaint_sampler_is_repaint_bit_for_bit():
    """With a learned-variance output, classifier guidance, clipping, jumps and a step hook."""
    d = DiffusionConfig(timestep_respacing=str(K), variance="learned_range").build()
    x0, keep = images(2, seed=3), (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4)) > 0.4).float()

    def model(x, t):
        return torch.cat([0.5 * torch.tanh(x) + 0.01 * t.view(-1, 1, 1, 1), torch.sin(x)], 1)

    def grad(x, t):
        return -0.1 * x

    seen = {"a": [], "b": []}
    a = repaint(
        model, x0, keep, TABLE, d, PerSampleNoise(9, [1, 2]), grad_fn=grad, on_step=lambda s: seen["a"].append(s.x)
    )
    b = RePaintSampler()(
        model, x0, keep, TABLE, d, PerSampleNoise(9, [1, 2]), grad_fn=grad, on_step=lambda s: seen["b"].append(s.x)
    )
    assert torch.equal(a, b)
    assert len(seen["a"]) == len(seen["b"]) == len(TABLE) - 1 and all(map(torch.equal, seen["a"], seen["b"]))


def test_ddim_step_with_eta_one_is_the_ddpm_posterior(d):
    """η = 1 between adjacent levels: mean μ̃(x_t, x0) and variance σ̃² of q(x_{t-1} | x_t, x0)."""
    x_t, x0_hat, t = images(seed=5), images(seed=6), 7
    ab, ab_prev, beta = d.alpha_bar[t], d.alpha_bar[t - 1], d.betas[t]
    eps = (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
    mean = (ab_prev.sqrt() * beta * x0_hat + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
    var = beta * (1 - ab_prev) / (1 - ab)
    z = images(seed=7)
    step = ddim_step(d, Decoded(x0_hat, eps), t, t - 1, 1.0, z)
    torch.testing.assert_close(step, mean + var.sqrt() * z, atol=1e-5, rtol=0)


def test_renoise_composes_like_the_forward_process(d):
    """Two forward jumps t→s→u have the mean and variance of one jump t→u."""
    x, z1, z2 = images(seed=8), images(seed=9), images(seed=10)
    two = renoise(d, renoise(d, x, 2, 6, z1), 6, 12, z2)
    r1, r2 = d.alpha_bar[6] / d.alpha_bar[2], d.alpha_bar[12] / d.alpha_bar[6]
    torch.testing.assert_close(two, (r1 * r2).sqrt() * x + (r2 * (1 - r1)).sqrt() * z1 + (1 - r2).sqrt() * z2)
    assert math.isclose(float(r2 * (1 - r1) + 1 - r2), float(1 - r1 * r2), rel_tol=1e-5)


@pytest.mark.parametrize("steps,power", [(8, 1.0), (25, 2.0), (250, 2.0), (50, 3.0)])
def test_coarse_grid_is_distinct_increasing_and_spans_the_process(steps, power):
    grid = coarse_grid(250, steps, power)
    assert len(grid) == steps and grid[0] == 0 and grid[-1] == 249
    assert all(b > a for a, b in zip(grid, grid[1:]))


def test_coarse_travel_defaults_cost_at_most_a_fifth_of_the_paper():
    paper = jump_times(250, 1, 10, 10)
    assert count_network_calls(paper) == 2410
    assert CoarseTravelSampler().network_calls(paper) == 481 <= 2410 / 5


def test_bad_sampler_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="sampler.replace"):
        CoarseTravelSampler(replace="x1")
    with pytest.raises(ValueError, match="sampler.zeta"):
        DiffPIRSampler(zeta=2.0)
    with pytest.raises(ValueError, match="sampler.steps"):
        coarse_grid(10, 11)


SAMPLER_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "sampler", "*.yaml")))


@pytest.mark.parametrize("path", SAMPLER_CONFIGS, ids=[os.path.basename(p) for p in SAMPLER_CONFIGS])
def test_sampler_configs_build_samplers(path):
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(Sampler, "model.sampler")
    sampler = parser.instantiate_classes(parser.parse_args(["--config", path])).model.sampler
    assert isinstance(sampler, Sampler)
    assert sampler.network_calls(jump_times(250, 1, 10, 10)) <= 2410


@pytest.mark.slow
def test_eval_runs_the_fast_sampler_from_its_config(tmp_path, tiny_ckpt, image_folders):
    """eval.py with configs/sampler/fast.yaml (cut to 4 levels × 2 passes): it runs, and the sampler's own
    call count (4 + 3 jumps, not the model's time table) reaches metrics.csv."""
    import csv

    from repaint_pl.cli import eval_main

    out = str(tmp_path / "out")
    eval_main(
        ["--ckpt", tiny_ckpt, "--config", os.path.join(ROOT, "configs", "sampler", "fast.yaml")]
        + ["--model.sampler.init_args.steps", "4", "--model.sampler.init_args.jump_n_sample", "2"]
        + ["--model.net.preset", "tiny", "--model.diffusion.timestep_respacing", "10", "--accelerator", "cpu"]
        + ["--data", "repaint_pl.datamodules.InpaintFolderDataModule", "--data.gt_path", image_folders[0]]
        + ["--data.mask_path", image_folders[1], "--data.image_size", "32", "--writer.out_dir", out]
        + ["--progress.refresh_rate", "0", "--metrics.lpips", "[]"]
    )
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {int(r["network_calls"]) for r in rows} == {4 + 3}
