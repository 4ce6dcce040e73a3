"""LanPaint and the SMC sampler (repaint_pl/sampling/exact_samplers.py) against closed forms: the SMC weights
against a float64 formula, its answer against the exact posterior, LanPaint's Langevin iterations leaving a
Gaussian prior's p_t invariant; batch independence, call counts and the known image for both."""

import math

import pytest
import torch

from repaint_pl.apps.exact.priors import BatchNoise, ExactDenoiser, gaussian_prior
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.noise import PerSampleNoise
from repaint_pl.sampling import LanPaintSampler, SMCSampler
from repaint_pl.sampling.exact_samplers import ParticleProblem, effective_sample_size, systematic_resample
from repaint_pl.sampling.steps import Problem
from repaint_pl.schedules import jump_times

K = 20
TABLE = jump_times(K, 1, 5, 3)
SMALL = [LanPaintSampler(steps=8, thinking=2), LanPaintSampler(steps=None, thinking=1, eta=1.0),
         SMCSampler(particles=3, steps=8), SMCSampler(particles=2, steps=None, variance="analytic"),
         SMCSampler(particles=3, steps=8, twist=True)]  # fmt: skip
IDS = ["lanpaint", "lanpaint_table", "smc", "smc_table_analytic", "smc_twisted"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small FFTs, many tiny steps


def process(steps: int | str):
    return DiffusionConfig(timestep_respacing=str(steps), variance="fixed_small").build()


def images(n=3, size=8, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


@pytest.mark.parametrize("sampler", SMALL, ids=IDS)
def test_a_sample_does_not_depend_on_its_batch(sampler):
    """Sample 1 of a batch of 3 equals sample 1 alone: every particle of a picture comes from its generator."""
    d = process(K)
    model = ExactDenoiser(gaussian_prior(8), d).bind()[0]
    x0, keep = images(), (torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    together = sampler(model, x0, keep, TABLE, d, PerSampleNoise(5, [10, 11, 12]), clip_x0=False)
    alone = sampler(model, x0[1:2], keep[1:2], TABLE, d, PerSampleNoise(5, [11]), clip_x0=False)
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=0)
    assert not torch.allclose(together[0], together[1])


@pytest.mark.parametrize("sampler", SMALL, ids=IDS)
def test_network_calls_counts_the_calls_and_known_pixels_are_the_image(sampler):
    """Each network evaluation of a batch row counts once (a particle is a row); the raw sample carries the
    known image on the known pixels (both samplers write it into the last x0 prediction)."""
    d = process(K)
    model = ExactDenoiser(gaussian_prior(8), d).bind()[0]
    rows = []

    def counting(x, t):
        rows.append(x.shape[0])
        return model(x, t)

    x0, keep = images(), (torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    out = sampler(counting, x0, keep, TABLE, d, PerSampleNoise(0, [0, 1, 2]), clip_x0=False)
    assert set(rows) == {3} and len(rows) == sampler.network_calls(TABLE)
    torch.testing.assert_close(out * keep, x0 * keep, atol=1e-6, rtol=0)


def test_step_hooks_see_one_picture_per_sample():
    d = process(K)
    model = ExactDenoiser(gaussian_prior(8), d).bind()[0]
    seen = []
    SMCSampler(particles=4, steps=5)(
        model, images(), torch.zeros(3, 1, 8, 8), TABLE, d, PerSampleNoise(0, [0, 1, 2]), clip_x0=False,
        on_step=lambda s: seen.append((s.t_from, s.t_to, tuple(s.x.shape))),
    )  # fmt: skip
    assert [(a, b) for a, b, _ in seen] == [(19, 14), (14, 10), (10, 5), (5, 0), (0, -1)]
    assert {shape for *_, shape in seen} == {(3, 1, 8, 8)}


# ---------------------------------------------------------------- SMC: weights and answer


@pytest.mark.parametrize("twist", [False, True])
def test_smc_incremental_log_weights_match_a_float64_formula(twist):
    """One step t -> t−1 of the SMC sampler on a 4×4 Gaussian prior with the ideal denoiser: the log-weight it
    adds per particle equals Σ_known log N(√ᾱ'·y; μ̃, σ̃² + 1 − ᾱ') − log N(x_t; √ᾱ·y, 1 − ᾱ), with
    μ̃, σ̃² the DDPM posterior at E[x0 | x_t] (dense covariance algebra in float64); twisted, the first level
    adds log h_t = Σ_known log N(y; x̂0, v) − log N(x_t; √ᾱ·y, 1 − ᾱ) with v = (1 − ᾱ)/ᾱ·(1 − mean ε̂²),
    averaged over the picture's particles (at least 1% of (1 − ᾱ)/ᾱ)."""
    d, prior, size, t = process(50), gaussian_prior(4), 4, 30
    model = ExactDenoiser(prior, d).bind()[0]
    g = torch.Generator().manual_seed(0)
    y = prior.sample(2, g).float()
    keep = (torch.rand(2, 1, size, size, generator=g) > 0.6).float()
    x_t = torch.randn(2, 5, 1, size, size, generator=g) * 0.8
    p = ParticleProblem(model, y, keep, d, PerSampleNoise(0, [0, 1]), None, False, particles=5)
    p.log_w = torch.zeros(2, 5)
    SMCSampler(particles=5, ess_threshold=0.0, twist=twist).reverse(p, x_t, t, t - 1, 0)

    ab, ab_prev = d.alpha_bar.double()[t], d.alpha_bar.double()[t - 1]
    cov, dim = prior.covariance(0), size * size
    x = x_t.double().reshape(2, 5, dim)
    gain = ab.sqrt() * cov @ torch.linalg.inv(ab * cov + (1 - ab) * torch.eye(dim, dtype=torch.float64))
    x0_hat = x @ gain.T  # E[x0 | x_t] for a zero-mean prior
    ratio = ab / ab_prev
    mean = (ab_prev.sqrt() * (1 - ratio) * x0_hat + ratio.sqrt() * (1 - ab_prev) * x) / (1 - ab)
    var = (1 - ab_prev) * (1 - ratio) / (1 - ab)

    def log_normal(v, m, s2):
        return -0.5 * ((v - m) ** 2 / s2 + torch.log(2 * math.pi * s2))

    known, yy = keep.reshape(2, 1, dim).double(), y.reshape(2, 1, dim).double()
    expected = (log_normal(ab_prev.sqrt() * yy, mean, var + 1 - ab_prev) * known).sum(-1)
    expected -= (log_normal(x, ab.sqrt() * yy, 1 - ab) * known).sum(-1)
    if twist:
        eps_hat = (x - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
        v = ((1 - ab) / ab * (1 - eps_hat.pow(2).mean(-1, keepdim=True))).mean(1, keepdim=True)
        v = v.clamp(min=0.01 * (1 - ab) / ab)
        expected += (log_normal(yy, x0_hat, v) * known).sum(-1)
        expected -= (log_normal(x, ab.sqrt() * yy, 1 - ab) * known).sum(-1)
        assert p.log_twist is not None and torch.isfinite(p.log_twist).all()
    torch.testing.assert_close(p.log_w.double(), expected, atol=2e-3, rtol=1e-4)


def test_systematic_resampling_keeps_each_particle_its_share():
    """Particle k is picked ⌊K·w_k⌋ or ⌈K·w_k⌉ times, for any uniform; ESS of equal weights is K."""
    log_w = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.05, 0.05, 0.1, 0.8]]))
    for u in torch.rand(20, generator=torch.Generator().manual_seed(0)):
        counts = torch.stack([torch.bincount(row, minlength=4) for row in systematic_resample(log_w, u.expand(2))])
        share = 4 * log_w.exp()
        assert ((counts >= share.floor()) & (counts <= share.ceil())).all(), (u, counts)
    torch.testing.assert_close(effective_sample_size(torch.zeros(1, 6)), torch.tensor([6.0], dtype=torch.float64))


# a 2-D correlated Gaussian: x0 ~ N(μ, Σ), pixel 0 known; the ideal ε-predictor in closed form
MU = torch.tensor([0.3, -0.2], dtype=torch.float64)
SIGMA = torch.tensor([[0.25, 0.2], [0.2, 0.36]], dtype=torch.float64)


def two_pixel_oracle(d):
    def model_fn(x_t, t):
        ab = d.alpha_bar.double()[t].view(-1, 1, 1)
        cov = ab * SIGMA + (1 - ab) * torch.eye(2, dtype=torch.float64)
        centred = x_t.double().reshape(-1, 2, 1) - ab.sqrt() * MU.view(1, 2, 1)
        return ((1 - ab).sqrt() * torch.linalg.solve(cov, centred)).reshape(x_t.shape).float()

    return model_fn


def chain_conditional(d, y: float) -> tuple[float, float]:
    """Mean and variance of pixel 1 given pixel 0 = y under the model's own chain (``chain_joint``)."""
    mean, cov = chain_joint(d)
    return float(mean[1] + cov[0, 1] / cov[0, 0] * (y - mean[0])), float(cov[1, 1] - cov[0, 1] ** 2 / cov[0, 0])


def chain_joint(d) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of both pixels under the model's own chain (x_T ~ N(0, I), reverse steps
    N(μ̃(x_t, E[x0 | x_t]), σ̃²), last step x̂0) with the two-pixel oracle: the chain is linear-Gaussian, so its
    moments follow in float64 (x_{t'} = A·x_t + b + σ̃·ξ)."""
    eye, ab = torch.eye(2, dtype=torch.float64), d.alpha_bar.double()
    mean, cov = torch.zeros(2, dtype=torch.float64), eye.clone()
    for t in range(d.num_timesteps - 1, -1, -1):
        a, s = ab[t].sqrt(), (1 - ab[t]).sqrt()
        M = torch.linalg.inv(a**2 * SIGMA + s**2 * eye)  # ε̂ = s·M·(x − a·μ)
        x0_map, x0_shift = (eye - s**2 * M) / a, s**2 * M @ MU  # x̂0 = x0_map·x + x0_shift
        if t == 0:
            A, b, var = x0_map, x0_shift, 0.0
        else:
            a_prev, s_prev = ab[t - 1].sqrt(), (1 - ab[t - 1]).sqrt()
            var = (1 - ab[t] / ab[t - 1]) * s_prev**2 / s**2  # σ̃² of the step
            c_eps = (s_prev**2 - var).sqrt()
            A = a_prev * x0_map + c_eps * s * M
            b = a_prev * x0_shift - c_eps * s * a * M @ MU
        mean, cov = A @ mean + b, A @ cov @ A.T + var * eye
    return mean, cov


@pytest.mark.parametrize("twist", [False, True])
def test_smc_with_many_particles_gets_the_exact_posterior(twist):
    """Pixel 0 known at 1.5 prior std above its mean, 250 levels: with 16 particles the SMC draws of pixel 1
    have the mean and variance of the model chain's exact conditional (within 4 standard errors), which is
    within 0.02 of the prior's exact posterior (the σ̃² steps' discretization); one particle (the guided
    proposal alone) misses the mean by far.  Twisted, the same: the twist telescopes out of the target."""
    d, n = process(250), 1000
    y = float(1.5 * SIGMA[0, 0].sqrt() + MU[0])
    exact_mean = float(MU[1] + SIGMA[0, 1] / SIGMA[0, 0] * (y - MU[0]))
    exact_var = float(SIGMA[1, 1] - SIGMA[0, 1] ** 2 / SIGMA[0, 0])
    chain_mean, chain_var = chain_conditional(d, y)
    assert abs(chain_mean - exact_mean) < 0.02 and abs(chain_var - exact_var) < 0.02
    x0 = torch.tensor([y, 0.0]).view(1, 1, 1, 2).expand(n, 1, 1, 2)
    keep = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand(n, 1, 1, 2)
    times = jump_times(d.num_timesteps, 1, 1, 1)

    def draws(particles):
        sampler = SMCSampler(particles=particles, steps=None, twist=twist)
        with torch.no_grad():
            out = sampler(two_pixel_oracle(d), x0, keep, times, d, BatchNoise(3, n), clip_x0=False)
        return out[:, 0, 0, 1].double()

    many = draws(16)
    mean_err, var_err = 4 * (chain_var / n) ** 0.5, 4 * chain_var * (2 / n) ** 0.5
    assert abs(float(many.mean()) - chain_mean) < mean_err, (float(many.mean()), chain_mean)
    assert abs(float(many.var()) - chain_var) < var_err, (float(many.var()), chain_var)
    assert abs(float(draws(1).mean()) - chain_mean) > 5 * mean_err


def test_smc_with_a_noisy_known_pixel_gets_the_exact_posterior_of_both_pixels():
    """Pixel 0 observed with noise std r (``observation_noise``): with 16 particles both pixels have the mean
    and variance of the chain's law conditioned on y = x_0 + r·ξ (within 4 standard errors), the observed
    pixel is not pinned to y, and r → 0 gives back the noiseless sampler's draws."""
    d, n, r = process(250), 1000, 0.3
    mean, cov = chain_joint(d)
    y = float(MU[0] + 1.5 * SIGMA[0, 0].sqrt())
    gain = cov[:, 0] / (cov[0, 0] + r**2)
    exact_mean, exact_var = mean + gain * (y - mean[0]), cov.diagonal() - gain * cov[:, 0]
    x0 = torch.tensor([y, 0.0]).view(1, 1, 1, 2).expand(n, 1, 1, 2)
    keep = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand(n, 1, 1, 2)
    times = jump_times(d.num_timesteps, 1, 1, 1)

    def draws(noise):
        sampler = SMCSampler(particles=16, steps=None, observation_noise=noise)
        with torch.no_grad():
            return sampler(two_pixel_oracle(d), x0, keep, times, d, BatchNoise(3, n), clip_x0=False)[:, 0, 0].double()

    noisy = draws(r)
    for i in range(2):
        mean_err, var_err = 4 * (exact_var[i] / n) ** 0.5, 4 * exact_var[i] * (2 / n) ** 0.5
        assert abs(float(noisy[:, i].mean() - exact_mean[i])) < mean_err, (i, float(noisy[:, i].mean()), exact_mean[i])
        assert abs(float(noisy[:, i].var() - exact_var[i])) < var_err, (i, float(noisy[:, i].var()), exact_var[i])
    assert torch.equal(draws(0.0), draws(torch.zeros(1, 1, 2)))  # a per-pixel zero is the noiseless sampler
    assert (draws(0.0)[:, 0] == torch.tensor(y, dtype=torch.float32).double()).all()


def test_smc_noisy_weights_match_a_float64_formula():
    """One step with observation noise r per pixel: the added log-weight is Σ_known log N(√ᾱ'·y; μ̃, σ̃² + 1 − ᾱ'
    + ᾱ'r²) − log N(x_t; √ᾱ·y, 1 − ᾱ + ᾱr²)."""
    d, prior, size, t = process(50), gaussian_prior(4), 4, 30
    model = ExactDenoiser(prior, d).bind()[0]
    g = torch.Generator().manual_seed(1)
    y = prior.sample(2, g).float()
    keep = (torch.rand(2, 1, size, size, generator=g) > 0.5).float()
    r = torch.rand(1, size, size, generator=g) * 0.5
    x_t = torch.randn(2, 3, 1, size, size, generator=g) * 0.8
    p = ParticleProblem(model, y, keep, d, PerSampleNoise(0, [0, 1]), None, False, particles=3)
    p.log_w = torch.zeros(2, 3)
    SMCSampler(particles=3, ess_threshold=0.0, observation_noise=r).reverse(p, x_t, t, t - 1, 0)
    ab, ab_prev, dim = d.alpha_bar.double()[t], d.alpha_bar.double()[t - 1], size * size
    cov = prior.covariance(0)
    x = x_t.double().reshape(2, 3, dim)
    x0_hat = x @ (ab.sqrt() * cov @ torch.linalg.inv(ab * cov + (1 - ab) * torch.eye(dim, dtype=torch.float64))).T
    ratio = ab / ab_prev
    mean = (ab_prev.sqrt() * (1 - ratio) * x0_hat + ratio.sqrt() * (1 - ab_prev) * x) / (1 - ab)
    var = (1 - ab_prev) * (1 - ratio) / (1 - ab)
    r2, known, yy = r.reshape(1, 1, dim).double() ** 2, keep.reshape(2, 1, dim).double(), y.reshape(2, 1, dim).double()

    def log_normal(v, m, s2):
        return -0.5 * ((v - m) ** 2 / s2 + torch.log(2 * math.pi * s2))

    expected = (log_normal(ab_prev.sqrt() * yy, mean, var + 1 - ab_prev + ab_prev * r2) * known).sum(-1)
    expected -= (log_normal(x, ab.sqrt() * yy, 1 - ab + ab * r2) * known).sum(-1)
    torch.testing.assert_close(p.log_w.double(), expected, atol=2e-3, rtol=1e-4)


# ---------------------------------------------------------------- LanPaint: invariance


def whitened_excess(samples: torch.Tensor, cov: torch.Tensor) -> float:
    """tr(Σ⁻¹ S)/d − 1 for the sample covariance S of ``samples`` ``[N, …]``: 0 ± √(2/(N d)) for draws from Σ."""
    S = torch.cov(samples.flatten(1).double().T)
    return float(torch.linalg.solve(cov, S).diagonal().mean() - 1)


def test_lanpaint_thinking_leaves_the_noised_prior_invariant():
    """Nothing known: 20 Langevin iterations (long steps) started from exact draws of p_t keep p_t's covariance
    at high, middle and low noise (whitened trace within 4 standard errors; the unadjusted Euler scheme's
    bias at this step would be far outside)."""
    size, n, prior, d = 4, 6000, gaussian_prior(4), process(250)
    model, cov = ExactDenoiser(prior, d).bind()[0], prior.covariance(0)
    g = torch.Generator().manual_seed(0)
    zero = torch.zeros(n, 1, size, size)
    sampler = LanPaintSampler(thinking=20, step_size=0.8, friction=0.5)
    for t in (200, 60, 5):
        a, s = (float(v) for v in d.scales(t))
        x_t = a * prior.sample(n, g).float() + s * torch.randn(n, 1, size, size, generator=g)
        problem = Problem(model, zero, zero, d, BatchNoise(t, n), None, False)
        with torch.no_grad():
            after, _ = sampler.think(problem, x_t, t)
        assert not torch.allclose(after, x_t)
        cov_t = a**2 * cov + s**2 * torch.eye(size * size, dtype=torch.float64)
        assert abs(whitened_excess(after, cov_t)) < 4 * (2 / (n * size * size)) ** 0.5, t


def test_lanpaint_without_a_mask_samples_the_prior():
    """Nothing known, 250 levels with 2 iterations each: the samples' covariance is the prior's (whitened
    trace within 4 standard errors, and no entry of the whitened covariance off by more than 5 of them)."""
    size, n, prior, d = 4, 3000, gaussian_prior(4), process(250)
    model = ExactDenoiser(prior, d).bind()[0]
    zero = torch.zeros(n, 1, size, size)
    with torch.no_grad():
        out = LanPaintSampler(steps=250, thinking=2)(
            model, zero, zero, jump_times(250, 1, 1, 1), d, BatchNoise(1, n), clip_x0=False
        )
    cov, dim = prior.covariance(0), size * size
    assert abs(whitened_excess(out, cov)) < 4 * (2 / (n * dim)) ** 0.5
    chol = torch.linalg.cholesky(cov)
    white = torch.linalg.solve_triangular(chol, out.flatten(1).double().T, upper=False)
    assert (torch.cov(white) - torch.eye(dim, dtype=torch.float64)).abs().max() < 5 * (2 / n) ** 0.5


def test_bad_settings_are_one_line_errors():
    for make in (lambda: LanPaintSampler(step_size=1.5), lambda: LanPaintSampler(thinking=-1),
                 lambda: SMCSampler(particles=0), lambda: SMCSampler(variance="exact"),
                 lambda: SMCSampler(steps=0), lambda: SMCSampler(twist="yes")):  # fmt: skip
        with pytest.raises(ValueError, match="sampler\\."):
            make()


def test_the_pipeline_and_configs_name_both_samplers():
    """``RePaintPipeline(..., sampler="smc")`` reads configs/sampler/smc.yaml: 8 particles × 50 levels = 400
    calls; lanpaint.yaml: 80 levels × (1 + 5) = 480 (whatever the model's time table)."""
    from repaint_pl.pipeline import _sampler

    paper = jump_times(250, 1, 10, 10)
    assert type(_sampler("smc")) is SMCSampler and _sampler("smc").network_calls(paper) == 400
    assert _sampler("smc").twist and not SMCSampler().twist  # the config twists; the class is MCGdiff's
    assert type(_sampler("lanpaint")) is LanPaintSampler and _sampler("lanpaint").network_calls(paper) == 480


@pytest.mark.parametrize("variance", ["posterior", "analytic"])
def test_a_resampled_particle_moves_from_its_ancestor(variance):
    """Always resampling, with unit noise: each new particle is its ancestor's reverse step N(μ, σ²) on unknown
    pixels and N(μ, σ²)·N(a'·y, s'²) on known ones (the fused mean plus the fused std), per particle."""
    d, prior = process(50), gaussian_prior(4)
    model = ExactDenoiser(prior, d).bind()[0]
    g = torch.Generator().manual_seed(1)
    y, keep = prior.sample(2, g).float(), (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    x_t = torch.randn(2, 6, 1, 4, 4, generator=g)
    sampler = SMCSampler(particles=6, ess_threshold=1.0, variance=variance)
    p = ParticleProblem(model, y, keep, d, PerSampleNoise(0, [0, 1]), None, False, particles=6)
    p.log_w = torch.randn(2, 6, generator=g) * 3
    p.particle_noise = lambda: torch.ones(2, 6, 1, 4, 4)
    x0_pred, eps = sampler.predict_particles(p, x_t, 20)
    mean, std = sampler.kernel(d, x0_pred, eps, 20, 19)
    new, _ = sampler.reverse(p, x_t, 20, 19, 0)
    rows = torch.arange(2)[:, None]
    mean, std = mean[rows, p.ancestors], (std[rows, p.ancestors] if std.dim() else std)
    (a, s) = d.scales(19)
    fused_std = std * s / (std**2 + s**2).sqrt()
    fused_mean = (s**2 * mean + std**2 * a * y[:, None]) / (std**2 + s**2)
    known = keep[:, None]
    expected = known * (fused_mean + fused_std) + (1 - known) * (mean + std)
    torch.testing.assert_close(new, expected, atol=1e-5, rtol=1e-5)
    assert (p.log_w == 0).all() and not (p.ancestors == torch.arange(6)).all()


@pytest.mark.parametrize("twist", [False, True])
def test_smc_on_a_flow_starts_from_pure_noise_with_finite_weights(twist):
    """A rectified flow's first level is pure noise (a = 0), where Tweedie's x0 variance is undefined: the
    analytic step falls back to σ̃² there and the twist is flat, so samples and weights stay finite."""
    from repaint_pl.flow import FlowConfig

    d = FlowConfig(steps=12).build()
    model = ExactDenoiser(gaussian_prior(8), d).bind()[0]
    keep = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    sampler = SMCSampler(particles=3, steps=None, variance="analytic", twist=twist)
    out = sampler(model, images(2), keep, list(range(11, -2, -1)), d, PerSampleNoise(0, [0, 1]), clip_x0=False)
    assert torch.isfinite(out).all()
