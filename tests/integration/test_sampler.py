"""The RePaint loop: invariants that hold for any model, and batch independence with a real tiny UNet."""

import numpy as np
import pytest
import torch
from conftest import TINY, randomize

from repaint_pl.denoisers import adm_model_fn
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.nets import UNetConfig
from repaint_pl.noise import GlobalNoise, PerSampleNoise, sample_seed
from repaint_pl.sampling import repaint, reverse_step
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


def test_jumps_follow_the_formulas_of_an_independent_loop(d):
    """A run with resampling jumps and a half-known image against a float64 loop written from the paper:
    before every reverse step but the first, the known region becomes √ᾱ_t·x0 + √(1-ᾱ_t)·n at the level t the
    step starts from; a forward jump t -> t+1 is x_{t+1} = √(1-β_{t+1})·x_t + √β_{t+1}·n.  Draws in the
    original's order: x_T; per reverse step the posterior noise, then the known-region noise; per jump its noise."""
    times = jump_times(t_T=K, jump_length=3, jump_n_sample=3)
    assert any(b > a for a, b in zip(times[:-1], times[1:]))  # the table has forward jumps
    model = lambda x, t: 0.3 * torch.tanh(x) + 0.05 * x.mean()  # noqa: E731
    x0 = images(1)
    keep = torch.zeros(1, 1, 8, 8)
    keep[..., :, :4] = 1
    out = repaint(model, x0, keep, times, d, PerSampleNoise(5, [9]))
    betas, _ = respace_betas(linear_betas(1000), space_timesteps(1000, str(K)))
    ab = np.cumprod(1 - betas)
    ab_prev = np.append(1.0, ab[:-1])
    g = torch.Generator().manual_seed(sample_seed(5, 9))
    draw = lambda: torch.randn(1, 3, 8, 8, generator=g).double()  # noqa: E731
    x, known, m = draw(), x0.double(), keep.double()
    for i, (a, b) in enumerate(zip(times[:-1], times[1:])):
        if b > a:  # forward jump a -> a+1 with β_{a+1}
            x = np.sqrt(1 - betas[b]) * x + np.sqrt(betas[b]) * draw()
            continue
        z = draw()
        if i > 0:  # known region at the level a of this step
            x = m * (np.sqrt(ab[a]) * known + np.sqrt(1 - ab[a]) * draw()) + (1 - m) * x
        eps = model(x.float(), None).double()
        x0_pred = ((x - np.sqrt(1 - ab[a]) * eps) / np.sqrt(ab[a])).clamp(-1, 1)
        mean = (betas[a] * np.sqrt(ab_prev[a]) * x0_pred + (1 - ab_prev[a]) * np.sqrt(1 - betas[a]) * x) / (1 - ab[a])
        var = betas[a] * (1 - ab_prev[a]) / (1 - ab[a])
        x = mean + np.sqrt(var) * z if a > 0 else mean
    torch.testing.assert_close(out.double(), x, atol=5e-4, rtol=0)


def test_classifier_gradient_is_the_finite_difference_of_log_p():
    """classifier_grad_fn = s·∇_x log p(y | x_t), checked by central differences of a tiny classifier's
    log-softmax in float64, with the classifier fed the base timestep of the respaced index."""
    from repaint_pl.denoisers import classifier_grad_fn

    torch.manual_seed(0)
    seen = []

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.head = torch.nn.Linear(4, 5)

        def forward(self, x, t):
            seen.append(t.clone())
            h = torch.tanh(self.conv(x)) * (1 + t.to(x.dtype).view(-1, 1, 1, 1) / 1000)
            return self.head(h.mean((2, 3)))

    net = Tiny().double()
    diffusion = DiffusionConfig(timestep_respacing="25").build()
    x, y, t, scale = torch.randn(2, 3, 6, 6, dtype=torch.float64), torch.tensor([1, 3]), torch.tensor([7, 19]), 2.5
    grad = classifier_grad_fn(net, diffusion, y, scale)(x, t)
    assert seen[0].tolist() == [space_timesteps(1000, "25")[7], space_timesteps(1000, "25")[19]]

    def log_p(x_):
        with torch.no_grad():
            return torch.log_softmax(net(x_, diffusion.model_time(t)), -1)[torch.arange(2), y]

    h, numeric = 1e-6, torch.zeros_like(x)
    for idx in np.ndindex(*x.shape[1:]):
        step = torch.zeros_like(x)
        step[(slice(None), *idx)] = h
        numeric[(slice(None), *idx)] = (log_p(x + step) - log_p(x - step)) / (2 * h)
    torch.testing.assert_close(grad, scale * numeric, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("respacing", ["25", "250", "21", "10,15,20", "ddim50"])
def test_respaced_index_feeds_the_network_its_base_timestep(respacing):
    """The network sees, for respaced index k, the k-th kept base timestep of guided-diffusion's respacing
    (and k·1000/steps of it with rescale_timesteps)."""
    kept = space_timesteps(1000, respacing)
    d = DiffusionConfig(timestep_respacing=respacing).build()
    k = torch.arange(len(kept))
    assert d.model_time(k).tolist() == kept
    fed = []
    adm_model_fn(lambda x, t, y: fed.append(t) or x, d)(torch.zeros(len(kept), 1), k)
    assert fed[0].tolist() == kept
    rescaled = DiffusionConfig(timestep_respacing=respacing, rescale_timesteps=True, steps=1000).build()
    torch.testing.assert_close(rescaled.model_time(k), torch.tensor(kept, dtype=torch.float32))
    half = DiffusionConfig(timestep_respacing="10", rescale_timesteps=True, steps=500).build()
    torch.testing.assert_close(half.model_time(torch.arange(10)), torch.tensor(space_timesteps(500, "10")) * 2.0)
