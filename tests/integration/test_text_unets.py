"""SDXL and the inpainting UNets (9 channels) as denoisers, against diffusers' own pipelines.

Every comparison computes the reference independently: the pipeline's ``encode_prompt`` (and, for SDXL,
its ``_get_add_time_ids``), the masked picture and mask made as diffusers' inpainting pipelines make
them, and the UNet called directly; our denoiser's guided output must equal it.
"""

from __future__ import annotations

import os

import pytest
import torch

from repaint_pl.apps.exact.priors import ExactDenoiser, gaussian_prior
from repaint_pl.apps.tiny import tiny_ddpm_pipeline, tiny_sd_inpaint_pipeline, tiny_sd_pipeline, tiny_sdxl_pipeline
from repaint_pl.denoisers import (
    Conditioning,
    DiffusersDenoiser,
    StableDiffusionDenoiser,
    StableDiffusionXLDenoiser,
)
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.module import RePaintModule
from repaint_pl.noise import PerSampleNoise
from repaint_pl.pretrained import PretrainedError, kind_of, pretrained_config
from repaint_pl.sampling import RePaintSampler
from repaint_pl.sampling.policies import NoInjectionSampler
from repaint_pl.schedules import JumpSchedule, jump_times
from repaint_pl.spaces import LatentSpace

pytest.importorskip("diffusers")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    """Tiny random pipelines saved with save_pretrained: SDXL, SDXL inpainting, SD inpainting."""
    root = tmp_path_factory.mktemp("text_unets")
    builders = {
        "sdxl": tiny_sdxl_pipeline,
        "sdxl_inpaint": lambda: tiny_sdxl_pipeline(inpainting=True),
        "sd_inpaint": tiny_sd_inpaint_pipeline,
    }
    paths = {}
    for name, build in builders.items():
        paths[name] = str(root / name)
        build().save_pretrained(paths[name])
    return paths


def load(path: str):
    """The pipeline as diffusers loads it (the independent side of every comparison)."""
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(path, local_files_only=True).to(CPU)


def picture_and_hole(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures ``[B, 3, 64, 64]`` in [-1, 1] and keep masks with a hole on the 8-pixel latent grid."""
    g = torch.Generator().manual_seed(3)
    image = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
    keep = torch.ones(batch, 1, 64, 64)
    keep[:, :, 16:40, 8:48] = 0
    return image, keep


def latents(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([9, 4])


def cfg(unet, x, base_t, scale, uncond: dict, cond: dict) -> torch.Tensor:
    """diffusers' guidance: two UNet calls combined."""
    u, c = unet(x, base_t, **uncond).sample, unet(x, base_t, **cond).sample
    return u + scale * (c - u)


def sdxl_reference_kwargs(pipe, prompt: str, negative, batch: int, size=(64, 64)) -> tuple[dict, dict]:
    """The UNet arguments StableDiffusionXLPipeline builds for a prompt (unconditional, conditional)."""
    pe, ne, pooled, neg_pooled = pipe.encode_prompt(
        prompt, device=CPU, num_images_per_prompt=batch, do_classifier_free_guidance=True, negative_prompt=negative
    )
    projection = pipe.text_encoder_2.config.projection_dim
    if "Inpaint" in type(pipe).__name__:
        ids = pipe._get_add_time_ids(size, (0, 0), size, 6.0, 2.5, size, (0, 0), size, pe.dtype, projection)[0]
    else:
        ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=pe.dtype, text_encoder_projection_dim=projection)
    ids = ids.repeat(batch, 1)
    uncond = dict(encoder_hidden_states=ne, added_cond_kwargs={"text_embeds": neg_pooled, "time_ids": ids})
    return uncond, dict(encoder_hidden_states=pe, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids})


def inpaint_reference_channels(pipe, image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[hole, masked-picture latents] as diffusers' inpainting pipelines make them (VAE mean for the latents)."""
    hole = 1 - keep
    masked = image * (hole < 0.5)
    latent = pipe.vae.encode(masked).latent_dist.mode() * pipe.vae.config.scaling_factor
    return torch.cat([torch.nn.functional.interpolate(hole, size=latent.shape[-2:]), latent], dim=1)


@pytest.mark.parametrize("negative", ["blurry", None])
def test_sdxl_guided_output_equals_the_pipelines_unet_call(folders, negative):
    """Both encoders' penultimate states, the pooled projection, the six size ids and CFG, as diffusers;
    no negative prompt: zero embeddings (force_zeros_for_empty_prompt)."""
    pipe = load(folders["sdxl"])
    den = StableDiffusionXLDenoiser(folders["sdxl"], prompt="a cat", negative_prompt=negative, guidance_scale=3.0)
    image, _ = picture_and_hole()
    model_fn, _ = den.bind(Conditioning(2, CPU, image=image), PerSampleNoise(0, [0, 1]))
    x, t = latents()
    uncond, cond = sdxl_reference_kwargs(pipe, "a cat", negative, 2)
    with torch.no_grad():
        expected = cfg(pipe.unet, x, den.diffusion.model_time(t), 3.0, uncond, cond)
        torch.testing.assert_close(model_fn(x, t), expected, atol=1e-5, rtol=1e-5)
    if negative is None:
        assert not uncond["encoder_hidden_states"].any() and not uncond["added_cond_kwargs"]["text_embeds"].any()


def test_sdxl_size_conditioning_and_per_image_prompts(folders):
    """Explicit sizes reach the time ids; a batch's own prompts replace the run's prompt image by image."""
    pipe = load(folders["sdxl"])
    den = StableDiffusionXLDenoiser(
        folders["sdxl"], prompt="a cat", guidance_scale=1.0, original_size=(128, 96), target_size=(64, 64)
    )
    model_fn, _ = den.bind(Conditioning(2, CPU, prompts=["a dog", None]), PerSampleNoise(0, [0, 1]))
    x, t = latents()
    out = model_fn(x, t)
    with torch.no_grad():
        for i, prompt in enumerate(["a dog", "a cat"]):
            pe, _, pooled, _ = pipe.encode_prompt(prompt, device=CPU, do_classifier_free_guidance=False)
            ids = pipe._get_add_time_ids((128, 96), (0, 0), (64, 64), pe.dtype, 32)
            added = {"text_embeds": pooled, "time_ids": ids}
            ref = pipe.unet(x[i : i + 1], den.diffusion.model_time(t[i : i + 1]), pe, added_cond_kwargs=added).sample
            torch.testing.assert_close(out[i : i + 1], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["sd_inpaint", "sdxl_inpaint"])
def test_inpainting_unet_gets_the_hole_and_the_masked_picture_as_diffusers_builds_them(folders, name):
    pipe = load(folders[name])
    cls = StableDiffusionXLDenoiser if name.startswith("sdxl") else StableDiffusionDenoiser
    den = cls(folders[name], prompt="a cat", negative_prompt="blurry", guidance_scale=3.0)
    assert den.inpainting and den.diffusion.config.prediction == "epsilon"
    image, keep = picture_and_hole()
    cond = Conditioning(2, CPU, image=image, keep_mask=keep, space=LatentSpace(folders[name]))
    model_fn, _ = den.bind(cond, PerSampleNoise(0, [0, 1]))
    x, t = latents()
    if cls is StableDiffusionXLDenoiser:
        uncond, positive = sdxl_reference_kwargs(pipe, "a cat", "blurry", 2)
    else:
        pe, ne = pipe.encode_prompt("a cat", CPU, 2, True, negative_prompt="blurry")
        uncond, positive = dict(encoder_hidden_states=ne), dict(encoder_hidden_states=pe)
    with torch.no_grad():
        x_in = torch.cat([x, inpaint_reference_channels(pipe, image, keep)], dim=1)
        expected = cfg(pipe.unet, x_in, den.diffusion.model_time(t), 3.0, uncond, positive)
        torch.testing.assert_close(model_fn(x, t), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="needs the batch's image, keep mask and space"):
        den.bind(Conditioning(2, CPU), PerSampleNoise(0, [0, 1]))


def test_inpainting_model_sees_the_known_picture_even_without_injection(folders):
    """RePaint on an inpainting UNet keeps the known pixels (pasted) and fills differently from the model
    alone (NoInjectionSampler, no jumps), whose fill still depends on the known picture through the UNet."""
    path = folders["sd_inpaint"]
    den = StableDiffusionDenoiser(path, prompt="a cat", guidance_scale=2.0, steps=6)
    space = LatentSpace(path)
    image, keep = picture_and_hole()
    ids = torch.tensor([0, 1])

    def run(sampler, picture, schedule=JumpSchedule(jump_length=2, jump_n_sample=2)):
        module = RePaintModule(denoiser=den, space=space, sampler=sampler, schedule=schedule)
        with torch.no_grad():
            return module.inpaint(picture, keep, ids)

    plain = JumpSchedule(jump_length=1, jump_n_sample=1)
    repainted, alone = run(RePaintSampler(), image), run(NoInjectionSampler(), image, plain)
    known, hole = keep.expand_as(image) == 1, keep.expand_as(image) == 0
    assert torch.equal(repainted[known], image[known]) and torch.equal(alone[known], image[known])
    assert not torch.allclose(repainted[hole], alone[hole], atol=1e-3)
    other = run(NoInjectionSampler(), -image, plain)  # another known picture: another fill
    assert not torch.allclose(other[hole], alone[hole], atol=1e-3)


def test_no_injection_is_repaint_with_nothing_known():
    """NoInjectionSampler draws RePaint's numbers and ignores the known region: RePaint with an all-zero mask."""
    d = DiffusionConfig(timestep_respacing="20", variance="fixed_small").build()
    model_fn = ExactDenoiser(gaussian_prior(8), d).bind()[0]
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 1, 8, 8, generator=g) * 1.6 - 0.8
    keep = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    table = jump_times(20, 1, 5, 3)

    def run(sampler, mask):
        return sampler(model_fn, x0, mask, table, d, PerSampleNoise(4, [0, 1]), clip_x0=False)

    plain = run(NoInjectionSampler(), keep)
    assert torch.equal(plain, run(RePaintSampler(), torch.zeros_like(keep)))
    assert torch.equal(plain, run(NoInjectionSampler(), torch.ones_like(keep)))
    assert not torch.allclose(plain, run(RePaintSampler(), keep))
    assert NoInjectionSampler().network_calls(table) == RePaintSampler().network_calls(table)


def test_folders_are_recognised_from_their_files(folders, tmp_path):
    expected = {
        "sdxl": ("stable_diffusion_xl", "StableDiffusionXLDenoiser"),
        "sdxl_inpaint": ("stable_diffusion_xl_inpaint", "StableDiffusionXLDenoiser"),
        "sd_inpaint": ("stable_diffusion_inpaint", "StableDiffusionDenoiser"),
    }
    for name, (kind, denoiser) in expected.items():
        assert kind_of(folders[name]) == kind
        config = pretrained_config(folders[name])
        assert config["denoiser"]["class_path"] == f"repaint_pl.denoisers.{denoiser}"
        assert config["space"]["class_path"] == "repaint_pl.spaces.LatentSpace"
    unet_only = tmp_path / "unet_only"  # no model_index.json: the UNet's config decides
    os.makedirs(unet_only / "unet")
    with open(os.path.join(folders["sdxl_inpaint"], "unet", "config.json")) as src:
        (unet_only / "unet" / "config.json").write_text(src.read())
    assert kind_of(str(unet_only)) == "stable_diffusion_xl_inpaint"
    single = tmp_path / "sdxl.safetensors"
    single.write_bytes(b"")
    with pytest.raises(PretrainedError, match="single-file SDXL"):
        pretrained_config(str(single), folders["sdxl"])


def test_euler_scheduler_config_does_not_clip_latents(folders):
    """SDXL's Euler config has no clip_sample: x0 is not clipped (DDPM's default would clip latents to ±1)."""
    den = StableDiffusionXLDenoiser(folders["sdxl"], steps=10)
    assert den.clip_x0 is None and den.scheduler_config["_class_name"] == "EulerDiscreteScheduler"


def test_respace_rebuilds_the_process_of_every_diffusers_denoiser(folders, tmp_path):
    """``respace(n)`` gives the process a denoiser built with ``steps=n`` has (and diffusers' timesteps)."""
    from diffusers import DDPMScheduler

    sd, ddpm = str(tmp_path / "sd"), str(tmp_path / "ddpm")
    tiny_sd_pipeline().save_pretrained(sd)
    tiny_ddpm_pipeline().save_pretrained(ddpm)
    cases = [
        (DiffusersDenoiser, ddpm),
        (StableDiffusionDenoiser, sd),
        (StableDiffusionDenoiser, folders["sd_inpaint"]),
        (StableDiffusionXLDenoiser, folders["sdxl"]),
    ]
    for cls, path in cases:
        den = cls(path, steps=10)
        den.respace(7)
        fresh = cls(path, steps=7).diffusion
        assert den.diffusion.num_timesteps == 7 and torch.equal(den.diffusion.timestep_map, fresh.timestep_map)
        assert torch.equal(den.diffusion.alpha_bar, fresh.alpha_bar)
        scheduler = DDPMScheduler.from_config(den.scheduler_config)
        scheduler.set_timesteps(7)
        assert den.diffusion.timestep_map.flip(0).tolist() == scheduler.timesteps.tolist()
