"""The exact benchmark's proper divergences and their floors, the prior-reproduction check, the flow prior's
ideal velocity, the fresh (dense) priors' oracle and MCGdiff's mixture against independent computations."""

import math

import pytest
import torch

from repaint_pl.apps.exact import metrics
from repaint_pl.apps.exact.benchmark import FAST, PAPER, Contender, Setting, floor_tolerance, setting_rows
from repaint_pl.apps.exact.gmm import gmm_setting
from repaint_pl.apps.exact.posterior import posterior, score
from repaint_pl.apps.exact.priors import (
    ExactDenoiser,
    colour_prior,
    denoise,
    gaussian_prior,
    grid_gmm,
    mixture_prior,
    nonstationary_prior,
    stripes_prior,
)
from repaint_pl.apps.exact.report import at_floor, floor_table, prior_table, reproduces
from repaint_pl.flow import FlowConfig
from repaint_pl.sampling import RePaintSampler

N = 6  # image side for the dense priors: 36 pixels


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small FFTs, many tiny steps


def test_gaussian_kl_against_the_closed_form_in_one_and_two_dimensions():
    """KL(N(μ1, s1²) ‖ N(μ2, s2²)) = log(s2/s1) + (s1² + (μ1-μ2)²)/(2 s2²) - ½, summed over independent axes."""
    m1, m2, s1, s2 = (torch.tensor(v, dtype=torch.float64) for v in ([0.3, -1.0], [1.0, 0.5], [0.5, 2.0], [1.5, 1.0]))
    want = (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum()
    got = metrics.gaussian_kl(m1.double(), torch.diag(s1**2).double(), m2.double(), torch.diag(s2**2).double())
    assert got == pytest.approx(float(want), rel=1e-10)
    # a rotated pair: KL is invariant under the same rotation of both
    q = torch.linalg.qr(torch.randn(2, 2, generator=torch.Generator().manual_seed(0)).double())[0]
    rot = metrics.gaussian_kl(q @ m1.double(), q @ torch.diag(s1**2).double() @ q.T, q @ m2.double(),
                              q @ torch.diag(s2**2).double() @ q.T)
    assert rot == pytest.approx(float(want), rel=1e-9)
    assert metrics.gaussian_kl(m1.double(), torch.zeros(2, 2).double(), m2.double(), torch.eye(2).double()) == math.inf


def test_fitted_kl_penalises_a_narrow_sampler_where_excess_nll_rewards_it():
    prior = gaussian_prior(4)
    post = posterior(prior, prior.sample(1, torch.Generator().manual_seed(0))[0], torch.zeros(1, 4, 4))
    g = torch.Generator().manual_seed(1)
    exact = post.sample(3000, g)
    narrow = post.mean + 0.8 * (exact - post.mean)
    good, bad = score(exact, post, post.entropy(g)), score(narrow, post, post.entropy(g))
    assert bad["excess_nll"] < good["excess_nll"] - 0.05  # |excess NLL| would call the narrow sampler better
    assert bad["kl"] > good["kl"] + 0.02  # KL: 0.8² variance costs (0.64 - 1 - log 0.64)/2 = 0.043 per pixel
    assert bad["kl"] - good["kl"] == pytest.approx(0.5 * (0.64 - 1 - math.log(0.64)), abs=0.01)
    assert metrics.fitted_kl(exact[:10], post.means[0], post.covs[0]) == math.inf  # N ≤ m: no density


def test_sliced_wasserstein_and_energy_distance_of_identical_and_shifted_sets():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(500, 1, generator=g, dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, x) == 0 and metrics.energy_distance(x, x) == pytest.approx(0, abs=1e-12)
    assert metrics.sliced_wasserstein(x, x + 0.7) == pytest.approx(0.7, rel=1e-9)  # 1-D: W₂ of a shift is the shift
    # 1-D energy distance by brute force: 2E|X-Y| - E|X-X'| - E|Y-Y'| over all pairs
    y = 0.5 * torch.randn(40, 1, generator=g, dtype=torch.float64) + 1.0
    xs = x[:30]
    pair = lambda a, b: (a[:, None, 0] - b[None, :, 0]).abs().mean()  # noqa: E731
    brute = float(2 * pair(xs, y) - pair(xs, xs) - pair(y, y))
    assert metrics.energy_distance(xs, y) == pytest.approx(brute, rel=1e-12)
    # in d dimensions a shift c along an axis has SW² = E[θ₁²]c² = c²/d
    z = torch.randn(400, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([2.0, 0, 0, 0], dtype=torch.float64)
    assert metrics.sliced_wasserstein(z, z + shift, projections=4000) == pytest.approx(2.0 / 2, rel=0.05)


def test_floor_is_the_metric_of_independent_exact_draws_and_shrinks_with_more_draws():
    """The "exact posterior" row compares exact draws with reference draws of other seeds: its SW is the
    direct computation on those two sets, positive, and smaller for 4× the draws (≈ 1/√N)."""
    setting = Setting("mixture", 4, ["genhalf"], seed=0)
    small = setting_rows(setting, 100, [], seed=0, log=lambda _: None)[0]
    exact, ref = setting.exact_samples(0, 100, 2), setting.reference(0, 100)
    assert small["sw"] == pytest.approx(metrics.sliced_wasserstein(exact, ref), rel=1e-12) and small["sw"] > 0
    assert not torch.equal(exact, ref)
    large = setting_rows(setting, 1600, [], seed=0, log=lambda _: None)[0]
    assert large["sw"] < 0.6 * small["sw"] and large["energy"] < small["energy"]


def shrunk(samples: torch.Tensor, factor: float) -> torch.Tensor:
    return samples.mean(0) + factor * (samples - samples.mean(0))


@pytest.mark.parametrize("make", [gaussian_prior, mixture_prior, stripes_prior, colour_prior])
def test_prior_reproduction_check_passes_exact_draws_and_fails_a_shrunk_sampler(make):
    setting = Setting("p", N, ["none"], seed=0, prior=make(N))
    n = 800
    exact = setting.exact_samples(0, n, 5)
    good = setting.row(0, "exact", "exact", 0, exact, 0.0)
    bad = setting.row(0, "shrunk", "shrunk", 0, shrunk(exact, 0.8), 0.0)
    assert reproduces(good) and not reproduces(bad)
    assert bad["spread"] == pytest.approx(0.64 * good["spread"], rel=1e-9)
    table = prior_table([{**good, "mask": "none"}, {**bad, "mask": "none"}])
    assert table.count("✓") == 1 and table.count("✗") == 1


@pytest.mark.parametrize("make", [gaussian_prior, mixture_prior])
def test_floor_tolerance_passes_other_exact_draws_and_fails_a_shrunk_or_shifted_sampler(make):
    """The tolerance comes from replicate exact draw sets: a fresh exact set is at the floor, the same draws
    shrunk 0.8× about their mean or shifted by half a posterior std are not, and the table counts them."""
    setting = Setting("p", N, ["thick", "genhalf"], seed=0, prior=make(N))
    n = 400
    tables = []
    for j in range(2):
        tol = floor_tolerance(setting, j, n)
        assert set(tol) == {"kl_tol", "sw_tol", "energy_tol", "mean_err_tol"}
        exact = setting.exact_samples(j, n, 99)
        std = exact.std(0).mean()
        sets = (("exact", exact), ("shrunk", shrunk(exact, 0.8)), ("shifted", exact + 0.5 * std))
        rows = [dict(setting.row(j, name, name, 0, samples, 0.0), **tol) for name, samples in sets]
        good, narrow, off = (at_floor(r) for r in rows)
        assert good[0] and not narrow[0] and not off[0]
        assert good[2] <= 1 < min(narrow[2], off[2])
        tables += rows
    table = floor_table(tables)
    assert "| 2 of 2 | – |" in table and table.count("| 0 of 2 | thick, genhalf |") == 2


@pytest.mark.parametrize("make", [gaussian_prior, mixture_prior, stripes_prior])
def test_flow_velocity_is_the_monte_carlo_mean_of_eps_minus_x0(make):
    """E[ε - x0 | x_t] at σ = 0.6 by self-normalised importance sampling over prior draws (x0 ~ prior,
    weights N(x_t; (1-σ)x0, σ²I)), against the closed-form velocity of ``ExactDenoiser``."""
    prior = make(2) if make is not stripes_prior else make(3)
    process = FlowConfig(sigmas=[1.0, 0.6, 0.2]).build()
    t = int((process.sigma - 0.6).abs().argmin())
    sigma = float(process.sigma[t])
    g = torch.Generator().manual_seed(3)
    x0_true = prior.sample(1, g)
    x_t = ((1 - sigma) * x0_true + sigma * torch.randn(x0_true.shape, generator=g, dtype=torch.float64)).float()
    model_fn, _ = ExactDenoiser(prior, process).bind()
    v = model_fn(x_t, torch.tensor([t]))[0].double().flatten()
    draws = prior.sample(400_000, g).flatten(1)
    xt = x_t.double().flatten()
    logw = -((xt - (1 - sigma) * draws) ** 2).sum(1) / (2 * sigma**2)
    w = torch.softmax(logw, 0)
    x0_mc = (w[:, None] * draws).sum(0)
    v_mc = (xt - (1 - sigma) * x0_mc) / sigma - x0_mc  # ε = (x_t - (1-σ)x0)/σ
    ess = 1 / (w**2).sum()
    assert ess > 200
    torch.testing.assert_close(v, v_mc, atol=6 * v_mc.abs().max() / float(ess) ** 0.5 + 0.02, rtol=0)


def dense_moments(prior, x_t, a, s):
    """(E[ε | x_t], E[x0 | x_t]) from dense covariances and MultivariateNormal weights (float64)."""
    v = x_t.flatten().double()
    logs, eps, x0 = [], [], []
    for k in range(prior.components):
        cov, mu = prior.covariance(k), prior.mean_vector(k)
        S = a * a * cov + s * s * torch.eye(len(v), dtype=torch.float64)
        sol = torch.linalg.solve(S, v - a * mu)
        eps.append(s * sol)
        x0.append(mu + a * cov @ sol)
        logs.append(prior.log_weights[k] + torch.distributions.MultivariateNormal(a * mu, S).log_prob(v))
    w = torch.softmax(torch.stack(logs), 0)
    return sum(w[k] * eps[k] for k in range(len(eps))), sum(w[k] * x0[k] for k in range(len(x0)))


@pytest.mark.parametrize("make", [gaussian_prior, mixture_prior, nonstationary_prior, stripes_prior, colour_prior])
@pytest.mark.parametrize("a,s", [(0.2, 0.98), (0.8, 0.6), (0.55, 0.45), (0.0, 1.0)])
def test_oracle_moments_match_dense_linear_algebra(make, a, s):
    """Both families of the oracle (FFT-diagonal fields, dense eigenbases) at DDPM levels (a² + s² = 1),
    flow levels (a + s = 1) and σ = 1 (a = 0: E[x0 | x_t] is the prior mean)."""
    prior = make(N)
    g = torch.Generator().manual_seed(4)
    x0 = prior.sample(2, g)
    x_t = (a * x0 + s * torch.randn(x0.shape, generator=g, dtype=torch.float64)).float()
    eps, x0_hat = denoise(prior, x_t, torch.tensor([a]), torch.tensor([s]))
    for i in range(2):
        want_eps, want_x0 = dense_moments(prior, x_t[i], a, s)
        torch.testing.assert_close(eps[i].flatten().double(), want_eps, atol=3e-4, rtol=1e-4)
        torch.testing.assert_close(x0_hat[i].flatten().double(), want_x0, atol=3e-4, rtol=1e-4)


@pytest.mark.parametrize("make", [stripes_prior, colour_prior])
def test_dense_prior_samples_have_its_covariance(make):
    prior = make(4)
    x = prior.sample(40000, torch.Generator().manual_seed(5)).flatten(1)
    w = prior.log_weights.exp()
    mean = (w[:, None] * prior.mean_vectors).sum(0)
    cov = sum(w[k] * (prior.covariance(k) + torch.outer(prior.mean_vectors[k] - mean, prior.mean_vectors[k] - mean))
              for k in range(prior.components))
    assert torch.linalg.matrix_norm(torch.cov(x.T) - cov) / torch.linalg.matrix_norm(cov) < 0.05


def test_gmm_posterior_against_brute_force_in_two_dimensions():
    """d = 2, one coordinate observed: p(k | x_1 = y) ∝ w_k N(y; μ_k1, 1) and x_2 | k ~ N(μ_k2, 1), by
    direct evaluation of the 25 components; the prior's grid and weights as MCGdiff builds them."""
    setting = gmm_setting(2, seed=3, counts=(1,))
    prior, post, keep = setting.prior, setting.posteriors[0], setting.keeps[0].flatten()
    assert sorted({float(v) for v in prior.mean_vectors[:, 0]}) == [-16.0, -8.0, 0.0, 8.0, 16.0]
    assert prior.mean_vectors.shape == (25, 2) and prior.log_weights.exp().sum() == pytest.approx(1)
    obs, hid = int(keep.argmax()), int(keep.argmin())
    y = float(setting.image.flatten()[obs])
    logw = prior.log_weights + torch.distributions.Normal(prior.mean_vectors[:, obs], 1.0).log_prob(torch.tensor(y))
    torch.testing.assert_close(post.log_weights.exp(), torch.softmax(logw, 0), atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(post.means[:, 0], prior.mean_vectors[:, hid])
    torch.testing.assert_close(post.covs[:, 0, 0], torch.ones(25, dtype=torch.float64))


def test_gmm_grid_weights_follow_the_seed_and_the_dimension_must_be_even():
    assert torch.equal(grid_gmm(8, 1).log_weights, grid_gmm(8, 1).log_weights)
    assert not torch.equal(grid_gmm(8, 1).log_weights, grid_gmm(8, 2).log_weights)
    with pytest.raises(ValueError, match="even"):
        grid_gmm(7)


def test_colour_prior_masks_cover_every_channel_of_a_pixel():
    setting = Setting("colour", 4, ["genhalf"], seed=0)
    keep = setting.keeps[0]
    assert keep.shape == (3, 4, 4) and torch.equal(keep[0], keep[1]) and torch.equal(keep[1], keep[2])
    assert setting.posteriors[0].means.shape[1] == int((keep < 0.5).sum()) == 3 * 8


def test_samplers_on_the_flow_reproduce_the_prior_and_approach_the_posterior():
    """The rectified flow with the ideal velocity, 4² Gaussian field: ancestral sampling over 1000 levels with
    nothing known reproduces the prior within Monte Carlo error; RePaint's paper schedule with the left half
    known comes within 0.3 posterior std of the exact conditional mean (exact draws: ~0.05)."""
    setting = Setting("gaussian", 4, ["none", "genhalf"], seed=0, process="flow")
    (nothing, _), _ = setting.run(Contender("ancestral", RePaintSampler(), 1000), 600, seed=1)
    assert reproduces(setting.row(0, "a", "a", 0, setting.unknown(nothing, 0), 0.0))
    (_, half), _ = setting.run(PAPER, 300, seed=2)
    assert setting.row(1, "p", "p", 0, setting.unknown(half, 1), 0.0)["mean_err"] < 0.3
    assert FAST.runs_on("flow") and PAPER.runs_on("flow")
    assert not Contender("RePaint σ²=β", RePaintSampler(), variance="fixed_large").runs_on("flow")


def test_gmm_rows_and_table_report_each_sampler_against_the_floor():
    from repaint_pl.apps.exact.gmm import gmm_rows, gmm_table, observed_masks
    from repaint_pl.sampling import DiffPIRSampler

    keeps = observed_masks(8, (1, 2, 4), seed=0)
    assert [int(k.sum()) for k in keeps] == [1, 2, 4]
    assert bool((keeps[1] >= keeps[0]).all() & (keeps[2] >= keeps[1]).all())  # nested
    rows = gmm_rows([4], [0], 20, [Contender("DiffPIR", DiffPIRSampler(), 20)], counts=(1, 2), log=lambda _: None)
    assert [(r["mask"], r["sampler"]) for r in rows] == [
        ("d_y=1", "exact posterior"), ("d_y=2", "exact posterior"), ("d_y=1", "DiffPIR (20 steps)"),
        ("d_y=2", "DiffPIR (20 steps)")]
    table = gmm_table(rows)
    assert "| 4 | 1 | DiffPIR (20 steps) | 20 |" in table and table.count("\n") == 6


def test_noisy_linear_posterior_against_a_grid_in_two_dimensions():
    """y = A x + σ ε with A 1 × 2 and three unit Gaussians: the closed-form posterior's mean and covariance
    equal those of prior × likelihood evaluated on a fine grid."""
    from repaint_pl.apps.exact.gmm import linear_posterior
    from repaint_pl.apps.exact.priors import DensePrior

    means = torch.tensor([[-2.0, 1.0], [1.5, 0.5], [0.0, -2.5]], dtype=torch.float64)
    prior = DensePrior(means, None, [0.5, 0.3, 0.2], (1, 1, 2))
    A, y, sigma = torch.tensor([[0.7, -0.4]], dtype=torch.float64), torch.tensor([0.9], dtype=torch.float64), 0.5
    post = linear_posterior(prior, A, y, sigma)
    axis = torch.linspace(-9, 9, 901, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_prior = torch.logsumexp(prior.log_weights - 0.5 * ((grid[:, None] - means[None]) ** 2).sum(-1), 1)
    w = torch.softmax(log_prior - 0.5 * ((grid @ A.T - y) ** 2).sum(-1) / sigma**2, 0)
    mean = (w[:, None] * grid).sum(0)
    cov = (w[:, None, None] * (grid - mean)[:, :, None] * (grid - mean)[:, None, :]).sum(0)
    torch.testing.assert_close(post.mean, mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(post.cov, cov, atol=1e-6, rtol=1e-6)


def test_noisy_problem_observes_the_rotated_coordinates_with_their_own_noise():
    """In x̄ = Vᵀx the observation is x̄_i + (σ_y/s_i)·ε_i for i < d_y: the exact posterior rotated into x̄ has the
    same law as the prior conditioned on those noisy coordinates; MCGdiff's A has singular values in (0, 1)."""
    from repaint_pl.apps.exact.gmm import linear_observation, linear_posterior, noisy_problem

    U, s, Vh, sigma = linear_observation(6, 2, seed=1)
    assert bool((s > 0).all() & (s < 1).all()) and s[0] >= s[1] and 0 < sigma < float(s.max())
    torch.testing.assert_close(Vh @ Vh.T, torch.eye(6, dtype=torch.float64))
    p = noisy_problem(6, 2, seed=1)
    # the rotated problem: observe coordinates 0 and 1 of x̄ with noise (σ/s_i): A' = diag(1/noise) rows of I
    rows = torch.eye(6, dtype=torch.float64)[:2] / p.noise[0, 0, :2].double()[:, None]
    y_rot = p.image[0, 0, :2].double() / p.noise[0, 0, :2].double()
    rotated = linear_posterior(p.rotated, rows, y_rot, 1.0)
    torch.testing.assert_close(rotated.log_weights, p.posterior.log_weights, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rotated.means, p.posterior.means @ Vh.T, atol=1e-4, rtol=1e-4)


def test_noisy_gmm_command_runs_smc_and_reports_the_floor(tmp_path):
    """``gmm --noisy``: the exact draws at their floor, SMC rows with their calls; the samplers that take exact
    known values are refused in one line."""
    from repaint_pl.apps.exact.__main__ import main
    from repaint_pl.apps.exact.gmm import noisy_rows

    rows = noisy_rows([4], [0], 60, counts=(1,), points=((4, 10, False), (4, 10, True)), log=lambda _: None)
    assert [(r["sampler"], r["calls"]) for r in rows] == [
        ("exact posterior", 0), ("SMC (4 particles, 10 levels)", 40), ("SMC twisted (4 particles, 10 levels)", 40)
    ]
    assert at_floor(rows[0])[0] and rows[0]["sigma_y"] > 0 and rows[1]["samples"] == 60
    main(["gmm", "--noisy", "--out", str(tmp_path), "--dims", "4", "--observed", "1", "--samples", "30",
          "--seeds", "1"])  # fmt: skip
    text = (tmp_path / "gmm.md").read_text()
    assert "noisy linear observation" in text and "| 4 | 1 | SMC (32 particles, 75 levels) | 2400 |" in text
    assert "| 4 | 1 | SMC twisted (32 particles, 75 levels) | 2400 |" in text
    with pytest.raises(SystemExit):
        main(["gmm", "--noisy", "--families", "SMC", "--out", str(tmp_path)])


def test_prior_command_writes_the_reproduction_table_for_the_chosen_families(tmp_path):
    from repaint_pl.apps.exact.__main__ import main

    args = ["prior", "--out", str(tmp_path), "--sizes", "4", "--priors", "gaussian", "--samples", "20"]
    rows = main([*args, "--w2_factor", "0", "--families", "DiffPIR"])
    assert {r["sampler"] for r in rows} == {"exact posterior", "DiffPIR (100 steps)", "DiffPIR (480 steps)"}
    assert {r["mask"] for r in rows} == {"none"}
    text = (tmp_path / "summary.md").read_text()
    assert "Nothing known" in text and text.count("| gaussian | 4² |") == 3
    assert not (tmp_path / "exact.png").exists()  # the plot is of rows with known pixels
    with pytest.raises(ValueError, match="Nope"):
        main([*args, "--families", "Nope"])
