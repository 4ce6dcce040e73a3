"""The exact benchmark: its oracle and posterior against dense linear algebra, its metrics on exact
samples, and RePaint with the ideal denoiser against the exact conditional."""

import math

import pytest
import torch

from repaint_pl.apps.exact.__main__ import main
from repaint_pl.apps.exact.benchmark import Contender, Setting
from repaint_pl.apps.exact.posterior import posterior, score
from repaint_pl.apps.exact.priors import BatchNoise, ExactDenoiser, gaussian_prior, mixture_prior
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.masks import keep_mask
from repaint_pl.sampling import RePaintSampler
from repaint_pl.schedules import jump_times

N = 8  # image side: 64 pixels, fast dense algebra


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small FFTs, many tiny steps


def dense_eps(prior, x_t, ab):
    """E[ε | x_t] from dense covariances and MultivariateNormal component weights (float64)."""
    d = prior.dim
    v = x_t.flatten().double()
    logs, eps = [], []
    for k in range(len(prior.fields)):
        S = ab * prior.covariance(k) + (1 - ab) * torch.eye(d, dtype=torch.float64)
        mu = math.sqrt(ab) * prior.means[k] * torch.ones(d, dtype=torch.float64)
        eps.append(math.sqrt(1 - ab) * torch.linalg.solve(S, v - mu))
        logs.append(prior.log_weights[k] + torch.distributions.MultivariateNormal(mu, S).log_prob(v))
    w = torch.softmax(torch.stack(logs), 0)
    return sum(w[k] * eps[k] for k in range(len(eps)))


@pytest.mark.parametrize("make", [gaussian_prior, mixture_prior])
@pytest.mark.parametrize("ab", [0.02, 0.5, 0.98])
def test_oracle_is_the_dense_posterior_mean_of_the_noise(make, ab):
    prior = make(N)
    g = torch.Generator().manual_seed(0)
    x0 = prior.sample(3, g).float()
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(x0.shape, generator=g)
    got = prior.eps_given_xt(x_t, torch.full((3,), ab))
    for i in range(3):
        torch.testing.assert_close(got[i].flatten().double(), dense_eps(prior, x_t[i], ab), atol=2e-4, rtol=1e-4)


def test_prior_samples_have_the_prior_covariance():
    prior = gaussian_prior(N)
    x = prior.sample(20000, torch.Generator().manual_seed(1)).flatten(1)
    cov = prior.covariance(0)
    assert torch.linalg.matrix_norm(torch.cov(x.T) - cov) / torch.linalg.matrix_norm(cov) < 0.05  # MC: ~0.03


def test_gaussian_posterior_matches_the_precision_matrix_form():
    """Σ_u|k = (Λ_uu)^{-1}, μ_u|k = μ - (Λ_uu)^{-1} Λ_uk (x_k - μ) with Λ = Σ^{-1}: independent of the Schur form."""
    prior = gaussian_prior(N)
    x0 = prior.sample(1, torch.Generator().manual_seed(2))[0]
    keep = keep_mask("genhalf", N, seed=0, image_id=0)
    post = posterior(prior, x0, keep)
    known = keep.flatten() > 0.5
    lam = torch.linalg.inv(prior.covariance(0))
    cov_u = torch.linalg.inv(lam[~known][:, ~known])
    mean_u = -cov_u @ lam[~known][:, known] @ x0.flatten()[known]  # μ = 0
    torch.testing.assert_close(post.covs[0], cov_u, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(post.means[0], mean_u, atol=1e-8, rtol=1e-6)


def test_metrics_of_exact_samples_are_at_their_floor():
    """Exact posterior draws: mean error ~ 1/√n, excess NLL ~ 0, mode weights recovered."""
    for make in (gaussian_prior, mixture_prior):
        prior = make(N)
        x0 = prior.sample(1, torch.Generator().manual_seed(3))[0]
        post = posterior(prior, x0, keep_mask("ex64", N, seed=0, image_id=0))
        g = torch.Generator().manual_seed(4)
        m = score(post.sample(4000, g), post, post.entropy(g))
        assert m["mean_err"] < 3 / math.sqrt(4000)
        assert abs(m["excess_nll"]) < 0.02
        if len(prior.fields) > 1:
            assert m["mode_tv"] < 0.03


def test_metrics_see_a_wrong_spread():
    prior = gaussian_prior(N)
    x0 = prior.sample(1, torch.Generator().manual_seed(3))[0]
    post = posterior(prior, x0, keep_mask("nn2", N, seed=0, image_id=0))
    g = torch.Generator().manual_seed(5)
    exact = post.sample(2000, g)
    narrow = post.mean + 0.5 * (exact - post.mean)
    assert score(narrow, post, post.entropy(g))["excess_nll"] < -0.2
    assert score(narrow, post, post.entropy(g))["w2_rel"] > score(exact, post, post.entropy(g))["w2_rel"] + 0.2


def ancestral(prior, n, steps, seed=0):
    d = DiffusionConfig(timestep_respacing=str(steps), variance="fixed_small").build()
    model_fn, _ = ExactDenoiser(prior, d).bind()
    blank = torch.zeros(n, 1, N, N)
    times = list(range(steps - 1, -2, -1))
    return RePaintSampler()(model_fn, blank, torch.zeros_like(blank), times, d, BatchNoise(seed, n), clip_x0=False)


@pytest.mark.slow
def test_ancestral_sampling_with_nothing_known_reproduces_the_prior_covariance():
    """Plain DDPM (1000 steps, σ̃²) with the ideal denoiser: the power spectrum of the samples (the
    covariance of a stationary field, diagonal in the Fourier basis) is the prior's within 6% on
    average over frequencies and 20% at any one; 1000 exact draws give about 3% and 12%.
    (At 250 steps the σ̃² steps under-disperse by 10-20%, the reason the benchmark reports excess NLL.)"""
    prior = gaussian_prior(N)
    x = ancestral(prior, 1000, 1000)[:, 0].double()
    ratio = (torch.fft.fft2(x, norm="ortho").abs() ** 2).mean(0) / prior.spectra[0]
    assert (ratio - 1).abs().mean() < 0.06
    assert (ratio - 1).abs().max() < 0.2
    assert x.mean().abs() < 0.03


@pytest.fixture(scope="module")
def genhalf_setting():
    return Setting("gaussian", N, ["genhalf"], seed=0)


def repaint_errors(setting, jump_n_sample, n=400):
    c = Contender("RePaint", RePaintSampler(), 250, 10, jump_n_sample)
    (samples,), _ = setting.run(c, n, seed=1)
    return score(setting.unknown(samples, 0), setting.posteriors[0], setting.entropies[0])


@pytest.mark.slow
def test_repaint_error_shrinks_with_resampling_and_reaches_the_exact_conditional(genhalf_setting):
    """With the ideal denoiser on the 8² Gaussian field (left half known): the error of the mean falls
    from no resampling to jumps 10×3 to the paper's 10×10, which is within 0.2 posterior std of the
    exact conditional mean (exact draws: ~0.05) and within 0.15 nats per pixel of its likelihood."""
    none, some, paper = (repaint_errors(genhalf_setting, n) for n in (1, 3, 10))
    assert none["mean_err"] > some["mean_err"] > paper["mean_err"]
    assert paper["mean_err"] < 0.2
    assert abs(paper["excess_nll"]) < 0.15


def test_time_table_of_the_paper_costs_2410_calls():
    assert RePaintSampler().network_calls(jump_times(250, 1, 10, 10)) == 2410


@pytest.mark.slow
def test_benchmark_command_writes_csv_summary_and_plot(tmp_path):
    from repaint_pl.apps.exact.benchmark import core_contenders

    args = ["--sizes", "4", "--priors", "mixture", "--masks", "genhalf", "--samples", "8", "--core_from", "4"]
    rows = main(["--out", str(tmp_path), *args])
    assert {r["sampler"] for r in rows} == {"exact posterior"} | {c.label for c in core_contenders()}
    for name in ("exact.csv", "summary.md", "exact.png"):
        assert (tmp_path / name).stat().st_size > 0
    text = (tmp_path / "summary.md").read_text()
    assert "2410" in text and "## At the floor?" in text
    assert all(r["sw_tol"] > 0 for r in rows)  # every row carries its mask's floor tolerance
    assert "| mixture | 4² | exact posterior | 0 | 1 of 1 | – |" in text  # exact draws are at their own floor
    assert "| 4² | exact posterior | 0 | 1 of 1 |" in text and "at the floor: fresh" not in text  # tuning prior only


def test_texture_metrics_against_direct_formulas():
    from repaint_pl.apps.exact.texture import diversity, fill_metrics
    from repaint_pl.scoring import Scorer

    gt = torch.full((1, 1, 16, 16), 0.5)
    keep = torch.ones(1, 1, 16, 16)
    keep[..., 4:12, 4:12] = 0
    result = gt + 0.1 * (1 - keep)  # error 0.1 on the whole hole: PSNR 20 dB, also on its seam band
    (m,) = fill_metrics(gt, result, keep, seam=2)
    assert m["psnr_fill"] == pytest.approx(20.0, abs=1e-4)
    assert m["psnr_seam"] == pytest.approx(20.0, abs=1e-4)
    result[..., 4:6, 4:12] += 0.1  # the seam band's top rows are worse than the hole's middle
    (m,) = fill_metrics(gt, result, keep, seam=2)
    (scored,) = Scorer(lpips=()).score(gt, result, keep)  # eval.py's metrics.csv: the same fill figures
    assert (m["psnr_fill"], m["ssim_fill"]) == (scored["psnr_fill"], scored["ssim_fill"])
    band = torch.zeros_like(keep, dtype=torch.bool)
    band[..., 4:6, 4:12] = band[..., 10:12, 4:12] = band[..., 4:12, 4:6] = band[..., 4:12, 10:12] = True
    seam_mse = ((gt - result) ** 2)[band].mean()
    assert m["psnr_seam"] == pytest.approx(float(10 * torch.log10(1 / seam_mse)), abs=1e-4)
    fills = torch.stack([torch.zeros(1, 16, 16), 0.2 * (1 - keep[0])])  # two seeds, [-1, 1]: 0.1 apart in [0, 1]
    assert diversity(fills, keep.expand(2, -1, -1, -1), seeds=2).item() == pytest.approx(0.1, abs=1e-6)


@pytest.mark.slow
def test_texture_command_compares_both_samplers_on_the_shipped_model(tmp_path):
    import os

    from repaint_pl.apps.exact.texture import TEXTURE_WEIGHTS
    from repaint_pl.apps.exact.texture import main as texture_main

    if not os.path.isfile(TEXTURE_WEIGHTS):
        pytest.fail("weights/texture32_ema.pt is shipped with the repository")
    args = ["--out", str(tmp_path), "--crops", "1", "--seeds", "2", "--masks", "thick", "--steps", "4"]
    args += ["--jump_length", "1", "--jump_n_sample", "1", "--fast_steps", "2", "--fast_jump_n_sample", "1"]
    args += ["--lanpaint_steps", "2", "--lanpaint_thinking", "1", "--smc_particles", "2", "--smc_steps", "3"]
    rows = texture_main(args)
    names = {"RePaint", "CoarseTravel", "LanPaint", "SMC", "SMC twisted"}
    assert {r["sampler"] for r in rows} == names and len(rows) == 5 * 3 * 2
    calls = {"RePaint": 4, "CoarseTravel": 2, "LanPaint": 4, "SMC": 6, "SMC twisted": 6}
    assert {r["sampler"]: r["calls"] for r in rows} == calls
    text = (tmp_path / "texture.md").read_text()
    assert text.count("psnr_fill: ") == 4 and "* SMC: psnr_fill: " in text and "* SMC twisted: psnr_fill: " in text
    assert (tmp_path / "texture.png").stat().st_size > 0
    rows = texture_main([*args, "--samplers", "LanPaint", "--out", str(tmp_path / "one")])
    assert {r["sampler"] for r in rows} == {"RePaint", "LanPaint"}  # RePaint always: the reference


def test_fast_sampler_keeps_the_mode_the_known_pixels_pin_down():
    """Mixture, 16², only the centre known (ex64): the exact posterior puts all its weight on one mode.
    The fast sampler's defaults (analytic variance only where ᾱ_t ≥ 0.9) put at most 10% of 200 samples
    elsewhere (measured: 4%; the paper's schedule: 42%); with the analytic variance at every level the
    high-noise steps forget the known pixels' evidence and at least 15% go wrong (measured: 26%)."""
    from repaint_pl.sampling import CoarseTravelSampler

    setting = Setting("mixture", 16, ["ex64"], seed=0)
    post = setting.posteriors[0]
    assert post.log_weights.exp().max() > 0.999

    def wrong_mode(sampler) -> float:
        (samples,), _ = setting.run(Contender("CT", sampler), 200, seed=3)
        modes = post.responsibilities(setting.unknown(samples, 0).double()).argmax(1)
        return float((modes != post.log_weights.argmax()).double().mean())

    assert wrong_mode(CoarseTravelSampler()) <= 0.10
    assert wrong_mode(CoarseTravelSampler(analytic_min_alpha_bar=0.0)) >= 0.15


@pytest.mark.parametrize("threshold_level", [0, 2, 3, 5])
def test_analytic_variance_is_used_exactly_on_steps_from_levels_at_or_above_the_threshold(threshold_level, monkeypatch):
    """Steps from a level with ᾱ_t ≥ analytic_min_alpha_bar take the analytic variance, the others σ̃²
    (the threshold set to one level's own ᾱ: that level is included)."""
    from repaint_pl.sampling import CoarseTravelSampler, coarse_grid, policies

    prior = mixture_prior(N)
    d = DiffusionConfig(steps=1000, timestep_respacing="250", variance="fixed_small").build()
    model_fn, _ = ExactDenoiser(prior, d).bind()
    x0 = prior.sample(2, torch.Generator().manual_seed(0)).float()
    keep = keep_mask("genhalf", N, seed=0, image_id=0).expand(2, -1, -1, -1)
    grid = coarse_grid(250, 6, 2.0)
    threshold = float(d.alpha_bar[grid[threshold_level]])
    analytic, posterior_steps = [], []
    real_analytic, real_ddim = policies.analytic_step, policies.ddim_step

    def spy_analytic(d_, out, x0_var, t, t_prev, z):
        analytic.append(t)
        return real_analytic(d_, out, x0_var, t, t_prev, z)

    def spy_ddim(d_, out, t, t_prev, eta, z):
        if eta == 1.0 and z.abs().sum() > 0:  # a σ̃² step (not the analytic step's own mean)
            posterior_steps.append(t)
        return real_ddim(d_, out, t, t_prev, eta, z)

    monkeypatch.setattr(policies, "analytic_step", spy_analytic)
    monkeypatch.setattr(policies, "ddim_step", spy_ddim)
    CoarseTravelSampler(steps=6, jump_n_sample=3, analytic_min_alpha_bar=threshold)(
        model_fn, x0, keep, [], d, BatchNoise(1, 2), clip_x0=False
    )
    assert set(analytic) == set(grid[: threshold_level + 1])
    assert set(posterior_steps) == set(grid[threshold_level + 1 :])


def test_gaussian_prior_gets_enough_samples_for_a_full_rank_w2():
    """W2 is estimated from the sample covariance: with fewer samples than unknown pixels it is biased
    upward and hides differences, so the Gaussian prior draws w2_factor × the largest hole's pixels."""
    from repaint_pl.apps.exact.benchmark import sample_count

    gauss = Setting("gaussian", N, ["genhalf", "ex64"], seed=0)
    holes = [int((k < 0.5).sum()) for k in gauss.keeps]
    assert sample_count(gauss, 10, 1.5) == math.ceil(1.5 * max(holes)) > max(holes)
    assert sample_count(gauss, 10, 0.5) == max(holes) + 1  # never fewer samples than dimensions
    assert sample_count(gauss, 10_000, 1.5) == 10_000
    assert sample_count(gauss, 10, 0) == 10
    assert sample_count(Setting("mixture", N, ["genhalf"], seed=0), 10, 1.5) == 10  # no W2 on the mixture


@pytest.mark.slow
def test_benchmark_rows_do_not_depend_on_the_number_of_processes():
    from repaint_pl.apps.exact.benchmark import FAST, benchmark

    kwargs = dict(
        sizes=[4, 6], priors=["gaussian", "mixture"], masks=["genhalf"], n=6, chosen=[FAST], log=lambda _: None
    )
    one, two = benchmark(**kwargs), benchmark(**kwargs, jobs=2)
    for rows in (one, two):
        for r in rows:
            r.pop("seconds")
    assert repr(one) == repr(two) and len(one) == 8  # repr: nan == nan


def test_verdict_counts_wins_and_numerical_ties_but_not_losses():
    from repaint_pl.apps.exact.report import verdict

    def row(sampler, mean_err, mode_tv, sw):
        nan = float("nan")
        return dict(prior="mixture", size=4, mask="genhalf", sampler=sampler, mean_err=mean_err, kl=nan, sw=sw,
                    energy=0.01, mode_tv=mode_tv)

    rows = [row("exact posterior", 0.05, 0.0, 0.1), row("paper", 0.2, 1.0e-32, 0.5), row("fast", 0.3, 1.1e-32, 0.4)]
    table, wins, total = verdict(rows, "fast", "paper")
    assert (wins, total) == (3, 4)  # mean error lost, SW won, energy equal, mode TV a tie at 1e-32; no KL (mixture)
    assert table.count("✗") == 1


def test_summary_gives_each_metric_against_its_floor_and_the_prior_table_for_nothing_known():
    from repaint_pl.apps.exact.benchmark import setting_rows
    from repaint_pl.apps.exact.report import summary

    setting = Setting("gaussian", 4, ["genhalf", "none"], seed=0)
    rows = setting_rows(setting, 40, [], seed=0, log=lambda _: None)
    text = summary(rows, "t")
    assert "| gaussian | 4² | exact posterior | 0 | 40 |" in text and "(1.0×)" in text  # the floor is 1× itself
    assert "Nothing known" in text and text.count("| ✓ |") == 1  # exact prior draws reproduce the prior


def test_plot_takes_a_size_where_kl_is_infinite_everywhere(tmp_path):
    """Fewer draws than unknown pixels (``--w2_factor 0`` at 32²) make every KL inf: the third panel row shows
    the energy distance instead of failing on a log axis with no finite point."""
    from repaint_pl.apps.exact.report import plot

    rows = [dict(prior="gaussian", size=32, mask="thick", sampler=f"{fam} {calls}", family=fam, calls=calls,
                 kl=math.inf, mode_tv=math.nan, sw=0.1, energy=0.2 + calls / 1000, mean_err=0.3)
            for fam, calls in (("exact", 0), ("A", 10), ("A", 100))]  # fmt: skip
    plot(rows, str(tmp_path / "exact.png"))
    assert (tmp_path / "exact.png").stat().st_size > 0
