"""SD3 and FLUX denoisers on tiny random pipelines saved with ``save_pretrained`` (built offline).

The independent computation is diffusers' own pipeline: the deterministic walk (DDIM at η = 0 over the flow's
levels, i.e. the Euler sampler) from the same x_T must give the latents that ``StableDiffusion3Pipeline`` /
``FluxPipeline`` return with ``output_type="latent"`` (prompts, CFG, distilled guidance, packing, σ grid).
"""

from __future__ import annotations

import pytest
import torch

from repaint_pl.denoisers import Conditioning
from repaint_pl.flow_models import FluxDenoiser, SD3Denoiser, pack, patch_ids, unpack
from repaint_pl.noise import PerSampleNoise
from repaint_pl.pretrained import kind_of, pretrained_config
from repaint_pl.sampling import DDIMRePaintSampler
from repaint_pl.spaces import LatentSpace

diffusers = pytest.importorskip("diffusers")


def euler_walk(denoiser, x_T: torch.Tensor, prompts=None, negative=None) -> torch.Tensor:
    """Our deterministic walk over all levels from x_T, nothing known."""
    fn, _ = denoiser.bind(Conditioning(len(x_T), x_T.device, None, prompts, negative), None)
    n = denoiser.diffusion.num_timesteps
    keep = torch.zeros(len(x_T), 1, *x_T.shape[-2:])
    noise = PerSampleNoise(0, list(range(len(x_T))))
    times = list(range(n - 1, -2, -1))
    return DDIMRePaintSampler(0.0)(fn, x_T, keep, times, denoiser.diffusion, noise, clip_x0=False, x_start=x_T)


def start_latents(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 16, 8, 8, generator=torch.Generator().manual_seed(0))


def test_sd3_walk_equals_the_diffusers_pipeline_with_cfg_and_per_image_prompts(tiny_sd3):
    denoiser = SD3Denoiser(tiny_sd3, prompt="unused", guidance_scale=4.0, steps=5)
    pipe = diffusers.StableDiffusion3Pipeline.from_pretrained(tiny_sd3)
    prompts, negative = ["a cat", "a red door"], ["blurry", "dark"]
    x_T = start_latents()
    theirs = pipe(
        prompts, negative_prompt=negative, height=64, width=64, num_inference_steps=5, guidance_scale=4.0,
        latents=x_T, output_type="latent", max_sequence_length=16,
    ).images  # fmt: skip
    assert torch.allclose(euler_walk(denoiser, x_T, prompts, negative), theirs, atol=1e-4)


@pytest.mark.parametrize("true_cfg", [1.0, 3.0])
def test_flux_walk_equals_the_diffusers_pipeline_with_distilled_guidance_and_packing(tiny_flux, true_cfg):
    """Distilled guidance alone, and with true CFG against a negative prompt (two calls per step)."""
    denoiser = FluxDenoiser(
        tiny_flux, prompt="a cat", negative_prompt="blurry", guidance_scale=2.5, steps=6, image_size=64,
        true_cfg_scale=true_cfg,
    )  # fmt: skip
    pipe = diffusers.FluxPipeline.from_pretrained(tiny_flux)
    x_T = start_latents()
    theirs = pipe(
        ["a cat"] * 2, negative_prompt=["blurry"] * 2, true_cfg_scale=true_cfg, height=64, width=64,
        num_inference_steps=6, guidance_scale=2.5, latents=pack(x_T), output_type="latent", max_sequence_length=16,
    ).images  # fmt: skip
    assert torch.allclose(euler_walk(denoiser, x_T), unpack(theirs, 8, 8), atol=1e-4)


def test_half_precision_velocity_is_float32_and_near_the_full_one(tiny_flux):
    x_t, t = start_latents(1), torch.tensor([3])
    velocities = []
    for dtype in ("float32", "bfloat16"):
        denoiser = FluxDenoiser(tiny_flux, prompt="a cat", steps=6, image_size=64, dtype=dtype)
        assert denoiser.transformer.dtype == getattr(torch, dtype)
        fn, _ = denoiser.bind(Conditioning(1, x_t.device), None)
        velocities.append(fn(x_t, t))
    full, half = velocities
    # bf16 keeps about 3 significant digits, which random weights amplify; a wrong reading would be off by ~100%
    assert half.dtype == torch.float32 and (half - full).norm() < 0.15 * full.norm()


def test_a_size_the_grid_was_not_shifted_for_is_named_once(tiny_flux, caplog):
    denoiser = FluxDenoiser(tiny_flux, steps=4)  # shifted for the default 1024² pictures
    fn, _ = denoiser.bind(Conditioning(1, torch.device("cpu")), None)
    with caplog.at_level("WARNING"):
        for _ in range(2):
            fn(start_latents(1), torch.tensor([1]))
    assert [r.getMessage().count("image_size 64") for r in caplog.records] == [1]


def test_respace_rederives_the_grid_as_a_fresh_denoiser(tiny_flux):
    denoiser = FluxDenoiser(tiny_flux, steps=6, image_size=64)
    denoiser.respace(9)
    fresh = FluxDenoiser(tiny_flux, steps=9, image_size=64)
    assert denoiser.diffusion.num_timesteps == 9 and torch.equal(denoiser.diffusion.sigma, fresh.diffusion.sigma)
    bigger = FluxDenoiser(tiny_flux, steps=9, image_size=256)  # more tokens: a larger μ shifts σ up
    assert (bigger.diffusion.sigma[:-1] > fresh.diffusion.sigma[:-1]).all()


def test_packing_is_diffusers_packing_and_inverts():
    x = torch.randn(2, 16, 6, 4)
    packed = pack(x)
    assert torch.equal(packed, diffusers.FluxPipeline._pack_latents(x, 2, 16, 6, 4))
    assert torch.equal(unpack(packed, 6, 4), x)
    theirs = diffusers.FluxPipeline._prepare_latent_image_ids(1, 3, 2, "cpu", x.dtype)
    assert torch.equal(patch_ids(6, 4, x.device, x.dtype), theirs)
    with pytest.raises(ValueError, match="multiple of 16"):
        pack(torch.zeros(1, 16, 5, 4))


def test_latent_space_shifts_then_scales_as_the_pipelines(tiny_sd3):
    space = LatentSpace(tiny_sd3)
    vae = space.vae
    picture = torch.rand(1, 3, 64, 64) * 2 - 1
    mean = vae.encode(picture).latent_dist.mean
    z = space.encode(picture)
    cfg = vae.config
    assert cfg.shift_factor and torch.allclose(z, (mean - cfg.shift_factor) * cfg.scaling_factor)
    assert torch.allclose(space.decode(z), vae.decode(z / cfg.scaling_factor + cfg.shift_factor).sample)


def test_pretrained_folders_are_recognised_from_their_files(tiny_sd3, tiny_flux, tmp_path):
    assert kind_of(tiny_sd3) == "sd3" and kind_of(tiny_flux) == "flux"
    model = pretrained_config(tiny_flux)
    assert model["denoiser"]["class_path"] == "repaint_pl.flow_models.FluxDenoiser"
    assert model["space"] == {"class_path": "repaint_pl.spaces.LatentSpace", "init_args": {"pretrained": tiny_flux}}
    single = pretrained_config(str(tmp_path / "sd3.safetensors"), tiny_sd3)  # the transformer file + a config folder
    assert single["denoiser"]["class_path"].endswith("SD3Denoiser")
    assert single["space"]["init_args"]["pretrained"] == tiny_sd3


def test_a_single_transformer_file_takes_the_rest_from_the_config_folder(tiny_sd3, tmp_path):
    from safetensors.torch import save_file

    weights = {k: torch.randn_like(v) for k, v in SD3Denoiser(tiny_sd3, steps=3).transformer.state_dict().items()}
    save_file(weights, str(tmp_path / "sd3.safetensors"))
    denoiser = SD3Denoiser(str(tmp_path / "sd3.safetensors"), config=tiny_sd3, steps=3)
    loaded = denoiser.transformer.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    with pytest.raises(ValueError, match="--config_dir"):
        SD3Denoiser(str(tmp_path / "sd3.safetensors"), steps=3)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["sd3", "flux"])
def test_latent_benchmark_runs_the_inpainting_pipelines_at_equal_network_calls(model, tiny_sd3, tiny_flux):
    from repaint_pl.apps import bench_latent as bl
    from repaint_pl.schedules import JumpSchedule

    folder = {"sd3": tiny_sd3, "flux": tiny_flux}[model]
    setup = bl.LatentBenchSetup(
        pretrained=folder, model=model, batch_size=1, steps=4, jump_length=2, jump_n_sample=2, repeats=1
    )
    r = bl.run_benchmark(setup)
    expected = JumpSchedule(jump_length=2, jump_n_sample=2).network_calls(4)
    assert r["network_calls"]["repaint_pl_s"] == r["network_calls"]["diffusers_s"] == expected
    assert 0 < r["outside_network_s"]["repaint_pl_s"] < r["repaint_pl_s"]
    assert f"diffusers {bl.LABELS[model][2]}" in bl.report(r)


def test_without_an_image_size_the_grid_follows_the_pictures_being_inpainted(tiny_flux):
    """The batch's pictures (64²) set dynamic shifting's token count, as a fresh denoiser made for 64² has it;
    an explicit image_size stays as given."""
    follows = FluxDenoiser(tiny_flux, steps=6)  # made for the default 1024²
    made_for_64 = FluxDenoiser(tiny_flux, steps=6, image_size=64)
    picture = torch.zeros(1, 3, 64, 64)
    follows.bind(Conditioning(1, torch.device("cpu"), image=picture), None)
    assert torch.equal(follows.diffusion.sigma, made_for_64.diffusion.sigma) and follows.image_size == 64
    fixed = FluxDenoiser(tiny_flux, steps=6, image_size=256)
    before = fixed.diffusion.sigma.clone()
    fixed.bind(Conditioning(1, torch.device("cpu"), image=picture), None)
    assert torch.equal(fixed.diffusion.sigma, before)


def test_coarse_travel_analytic_variance_on_a_flow_uses_the_signal_share_and_skips_pure_noise(tiny_sd3):
    from repaint_pl.sampling import CoarseTravelSampler
    from repaint_pl.sampling.steps import Problem

    d = SD3Denoiser(tiny_sd3, steps=10, image_size=64).diffusion
    sampler = CoarseTravelSampler(analytic_min_alpha_bar=0.0)
    p = Problem(None, torch.zeros(1, 16, 8, 8), torch.zeros(1, 1, 8, 8), d, None, None, False)
    top = d.num_timesteps - 1
    a, s = (float(v) for v in d.scales(top))
    assert (a == 0) == (not sampler.uses_analytic(p, top))  # σ = 1: no signal, the analytic variance is not used
    assert sampler.uses_analytic(p, 0)
    half = CoarseTravelSampler(analytic_min_alpha_bar=0.5)
    shares = [float(d.scales(t)[0]) ** 2 / sum(float(v) ** 2 for v in d.scales(t)) for t in range(top + 1)]
    assert [half.uses_analytic(p, t) for t in range(top + 1)] == [x >= 0.5 for x in shares]
