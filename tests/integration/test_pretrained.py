"""Any denoiser: diffusers scheduler configs, pixel DDPMs and Stable Diffusion in latent space.

Tiny random components are built offline and saved with ``save_pretrained`` into temporary folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY, check_known_pixels, randomize
from PIL import Image

from repaint_pl.apps.tiny import tiny_sd_pipeline
from repaint_pl.cli import eval_main
from repaint_pl.denoisers import Conditioning, StableDiffusionDenoiser
from repaint_pl.diffusion import DiffusionConfig, p_mean_variance
from repaint_pl.module import RePaintModule
from repaint_pl.noise import PerSampleNoise
from repaint_pl.pretrained import PretrainedError, diffusion_from_scheduler
from repaint_pl.schedules import ExplicitTimes, JumpSchedule
from repaint_pl.spaces import LatentSpace, PixelSpace, latent_keep_mask

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------------- tiny components


# ----------------------------------------------------------------------------- noise processes

SCHEDULES = [
    dict(beta_schedule="linear"),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    dict(beta_schedule="squaredcos_cap_v2"),
    dict(trained_betas=list(np.linspace(1e-4, 0.03, 1000))),
]
SPACINGS = [
    dict(timestep_spacing="leading", steps_offset=1),
    dict(timestep_spacing="trailing"),
    dict(timestep_spacing="linspace"),
    dict(timestep_spacing="leading"),
]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [7, 50, 333])
def test_scheduler_config_process_equals_diffusers(schedule, spacing, steps):
    """Respaced from a scheduler config: diffusers' timesteps, and ᾱ of the kept steps unchanged."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(**schedule, **spacing)
    scheduler.set_timesteps(steps)
    config, _ = diffusion_from_scheduler(dict(scheduler.config), steps)
    d = config.build(respaced=True)
    assert d.timestep_map.flip(0).tolist() == scheduler.timesteps.tolist()
    expected = scheduler.alphas_cumprod[scheduler.timesteps].flip(0).double()
    assert torch.allclose(d.alpha_bar.double(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction"])
def test_prediction_types_give_diffusers_x0(kind):
    """x0 from an ε / x0 / v output equals diffusers' ``pred_original_sample`` (an independent implementation)."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(prediction_type=kind, clip_sample=False)
    d = diffusion_from_scheduler(dict(scheduler.config))[0].build(respaced=False)
    g = torch.Generator().manual_seed(0)
    x_t, out = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    for t in (0, 17, 500, 999):
        ours = d.decode(out, x_t, torch.tensor(t)).x0
        theirs = scheduler.step(out, t, x_t, generator=torch.Generator().manual_seed(1)).pred_original_sample
        assert torch.allclose(ours, theirs, atol=1e-5), t


def test_v_and_x0_outputs_agree_with_the_eps_output():
    """The same truth expressed as ε, x0 or v gives the same reverse mean (closed-form v = √ᾱ·ε − √(1−ᾱ)·x0)."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1, torch.randn(2, 3, 8, 8, generator=g)
    base = dict(variance="fixed_small", timestep_respacing="")
    for t in (1, 300, 999):
        d = DiffusionConfig(**base).build()
        a = d.alpha_bar[t].double()
        x_t = (a.sqrt() * x0 + (1 - a).sqrt() * eps).float()
        v = (a.sqrt() * eps - (1 - a).sqrt() * x0).float()
        means = [
            p_mean_variance(DiffusionConfig(**base, prediction_type=kind).build(), out, x_t, torch.tensor(t), False)[0]
            for kind, out in (("epsilon", eps), ("sample", x0), ("v_prediction", v))
        ]
        assert torch.allclose(means[0], means[1], atol=1e-4) and torch.allclose(means[0], means[2], atol=1e-4)


def test_unsupported_scheduler_options_are_refused():
    with pytest.raises(PretrainedError, match="thresholding"):
        diffusion_from_scheduler({"thresholding": True}, 10, "x/scheduler_config.json")
    with pytest.raises(PretrainedError, match="beta_schedule"):
        diffusion_from_scheduler({"beta_schedule": "sigmoid"}, 10)


# ----------------------------------------------------------------------------- denoisers and spaces


def tiny_module(**kwargs) -> RePaintModule:
    m = RePaintModule(
        net=TINY,
        diffusion=DiffusionConfig(timestep_respacing="20"),
        schedule=JumpSchedule(jump_length=3, jump_n_sample=2),
        **kwargs,
    )
    randomize(m.net)
    return m.eval()


def batch(size: int = 32, channels: int = 3):
    g = torch.Generator().manual_seed(5)
    image = torch.rand(2, channels, size, size, generator=g) * 2 - 1
    keep = torch.ones(2, 1, size, size)
    keep[:, :, 8:24, 4:20] = 0
    return image, keep, torch.tensor([3, 11])


class IdentityVAE(torch.nn.Module):
    """A 'VAE' whose latents are the pixels: encode/decode are the identity, factor 1, scale 1."""

    config = SimpleNamespace(block_out_channels=[8], scaling_factor=1.0)

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=x))

    def decode(self, z):
        return SimpleNamespace(sample=z)


def test_latent_space_with_identity_vae_is_pixel_repaint():
    pixel = tiny_module()
    latent = tiny_module(space=LatentSpace.of(IdentityVAE()), paste_known=False)
    latent.net.load_state_dict(pixel.net.state_dict())
    with torch.no_grad():
        assert torch.equal(pixel.inpaint(*batch()), latent.inpaint(*batch()))


def test_adm_behind_a_scheduler_config_gives_the_adm_pictures():
    """The same betas and kept steps reached through diffusers' config names give identical pictures."""
    scheduler = {
        "beta_schedule": "linear",
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "variance_type": "learned_range",
        "timestep_spacing": "linspace",
        "clip_sample": True,
    }
    config, _ = diffusion_from_scheduler(scheduler, 20)
    assert config.kept_steps() == DiffusionConfig(timestep_respacing="20").kept_steps()
    adm = tiny_module()
    via_config = RePaintModule(net=TINY, diffusion=config, schedule=JumpSchedule(jump_length=3, jump_n_sample=2))
    via_config.net.load_state_dict(adm.net.state_dict())
    with torch.no_grad():
        assert torch.equal(adm.inpaint(*batch()), via_config.eval().inpaint(*batch()))


def test_latent_mask_keeps_only_fully_known_cells():
    keep = torch.ones(1, 1, 16, 16)
    keep[0, 0, 5, 9] = 0  # one unknown pixel in cell (1, 2) at factor 4
    latent = latent_keep_mask(keep, 4)
    assert latent.shape == (1, 1, 4, 4) and latent.sum() == 15 and latent[0, 0, 1, 2] == 0
    assert latent_keep_mask(keep, 4, dilate=1).sum() == 16 - 9


def test_paste_keeps_known_pixels_and_feathering_only_touches_the_known_side():
    image, keep, _ = batch()
    result = torch.zeros_like(image)
    assert torch.equal(
        PixelSpace().paste(result, image, keep)[keep.expand_as(image) == 1], image[keep.expand_as(image) == 1]
    )
    feathered = PixelSpace(feather=2).paste(result, image, keep)
    hole = keep.expand_as(image) == 0
    assert torch.equal(feathered[hole], result[hole])
    assert not torch.equal(feathered, PixelSpace().paste(result, image, keep))


def test_guidance_scale_one_is_the_conditional_model_and_cfg_follows_its_formula(tiny_sd):
    den = StableDiffusionDenoiser(tiny_sd, prompt="a red door", guidance_scale=1.0, steps=10)
    cond = Conditioning(2, torch.device("cpu"))
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([9, 4])
    model_fn, _ = den.bind(cond, PerSampleNoise(0, [0, 1]))
    text = den.encode_prompts(["a red door"] * 2, cond.device)
    base_t = den.diffusion.model_time(t)
    with torch.no_grad():
        alone = den.unet(x, base_t, encoder_hidden_states=text).sample
        assert torch.equal(model_fn(x, t), alone)
        den.guidance_scale, den.negative_prompt = 3.0, "blurry"
        guided, _ = den.bind(cond, PerSampleNoise(0, [0, 1]))
        uncond = den.unet(x, base_t, encoder_hidden_states=den.encode_prompts(["blurry"] * 2, cond.device)).sample
        assert torch.allclose(guided(x, t), uncond + 3.0 * (alone - uncond), atol=1e-5)


def test_v_prediction_sd_runs_in_latent_space(tmp_path):
    path = str(tmp_path / "sd_v")
    tiny_sd_pipeline("v_prediction").save_pretrained(path)
    den = StableDiffusionDenoiser(path, prompt="x", steps=5, guidance_scale=2.0)
    assert den.diffusion.config.prediction == "v_prediction"
    module = RePaintModule(denoiser=den, space=LatentSpace(path), schedule=ExplicitTimes([4, 3, 2, 3, 2, 1, 0, -1]))
    image, keep, ids = batch(64)
    with torch.no_grad():
        out = module.inpaint(image, keep, ids)
    known = keep.expand_as(image) == 1
    assert out.shape == image.shape and torch.isfinite(out).all() and torch.equal(out[known], image[known])


# ----------------------------------------------------------------------------- command line


def run_eval(out: str, *args: str) -> None:
    eval_main([*args, "--accelerator", "cpu", "--out", out, "--data.init_args.batch_size", "2"])


@pytest.mark.slow
def test_eval_pretrained_stable_diffusion_with_per_image_prompts(tmp_path, tiny_sd, pictures):
    out = str(tmp_path / "sd")
    run_eval(
        out,
        "--pretrained",
        tiny_sd,
        "--prompt",
        "a cat",
        "--images",
        pictures,
        "--image_size",
        "64",
        "--masks",
        "thick,genhalf",
        "--steps",
        "10",
        "--jump_length",
        "2",
        "--jump_n_sample",
        "2",
    )
    check_known_pixels(out, ["thick", "genhalf"], ["astronaut", "coffee"])
    meta = json.load(open(os.path.join(out, "meta", "thick", "astronaut.json")))
    assert meta["network_calls"] == JumpSchedule(jump_length=2, jump_n_sample=2).network_calls(10)


@pytest.mark.slow
def test_eval_pretrained_pixel_ddpm(tmp_path, tiny_ddpm, pictures):
    out = str(tmp_path / "ddpm")
    run_eval(
        out,
        "--pretrained",
        tiny_ddpm,
        "--images",
        pictures,
        "--image_size",
        "64",
        "--masks",
        "thick,genhalf",
        "--steps",
        "10",
        "--jump_length",
        "2",
        "--jump_n_sample",
        "2",
        "--model.paste_known",
        "true",
    )
    check_known_pixels(out, ["thick", "genhalf"], ["astronaut", "coffee"])


def test_single_picture_with_a_mask_file(tmp_path, tiny_sd, pictures):
    hole = np.full((64, 64), 255, np.uint8)
    hole[20:40, 20:40] = 0
    Image.fromarray(hole).save(tmp_path / "hole.png")
    out = str(tmp_path / "door")
    run_eval(
        out,
        "--pretrained",
        tiny_sd,
        "--images",
        os.path.join(pictures, "coffee.png"),
        "--mask",
        str(tmp_path / "hole.png"),
        "--prompt",
        "a red door",
        "--image_size",
        "64",
        "--steps",
        "4",
        "--jump_length",
        "1",
        "--jump_n_sample",
        "1",
        "--model.denoiser.init_args.guidance_scale",
        "1",
    )
    result = np.asarray(Image.open(os.path.join(out, "inpainted", "coffee.png")))
    gt = np.asarray(Image.open(os.path.join(out, "gt", "coffee.png")))
    assert np.array_equal(result[hole == 255], gt[hole == 255])


def one_line_error(*args: str) -> str:
    import tempfile

    out = tempfile.mkdtemp()
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "eval.py"), *args, "--accelerator", "cpu", "--out", out],
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_bad_inputs_get_one_line(tmp_path, tiny_sd, pictures):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no diffusers model" in one_line_error("--pretrained", str(empty), "--images", pictures)
    assert "HF_HUB_OFFLINE" in one_line_error("--pretrained", "google/ddpm-cat-256", "--images", pictures)
    assert "multiple of the VAE" in one_line_error(
        "--pretrained", tiny_sd, "--images", pictures, "--image_size", "60", "--steps", "2"
    )
    (tmp_path / "three").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (64, 64)).save(tmp_path / "three" / f"{name}.png")
    (tmp_path / "three" / "prompts.txt").write_text("one\ntwo\nthree\n")
    line = one_line_error("--pretrained", tiny_sd, "--images", str(tmp_path / "three"), "--steps", "2")
    assert "3 prompts for 2 images" in line


@pytest.mark.slow
def test_two_processes_write_the_same_stable_diffusion_pictures_as_one(tmp_path, tiny_sd, pictures):
    common = [
        "--pretrained",
        tiny_sd,
        "--images",
        pictures,
        "--image_size",
        "64",
        "--masks",
        "thick,nn2",
        "--steps",
        "4",
        "--jump_length",
        "2",
        "--jump_n_sample",
        "2",
        "--accelerator",
        "cpu",
        "--guidance_scale",
        "2",
        "--progress.refresh_rate",
        "0",
    ]
    outs = {n: str(tmp_path / f"p{n}") for n in (1, 2)}
    for n, out in outs.items():
        extra = ["--devices", "2", "--trainer.strategy", "ddp"] if n == 2 else []
        subprocess.run(
            [sys.executable, os.path.join(REPO, "eval.py"), *common, *extra, "--out", out],
            check=True,
            capture_output=True,
            timeout=600,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
    for kind in ("thick", "nn2"):
        for name in ("astronaut", "coffee"):
            a, b = (
                np.asarray(Image.open(os.path.join(o, "inpainted", kind, name + ".png"))).astype(int)
                for o in outs.values()
            )
            assert np.abs(a - b).max() <= 1, (kind, name)


# ----------------------------------------------------------------------------- prompts from the data


def test_prompts_from_sidecar_files_follow_their_images(tmp_path):
    from repaint_pl.datamodules import ImageFolderDataModule

    for name in ("b", "a", "c"):
        Image.new("RGB", (16, 16)).save(tmp_path / f"{name}.png")
    (tmp_path / "prompts.json").write_text(json.dumps({"c": "sea", "a.png": "sky", "b": "sand"}))
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, mask_types=["thick", "genhalf"])
    dm.setup()
    assert {(it["name"], it["prompt"]) for it in dm.dataset} == {
        (f"{k}/{n}.png", p) for k in ("thick", "genhalf") for n, p in (("a", "sky"), ("b", "sand"), ("c", "sea"))
    }
    (tmp_path / "lines.txt").write_text("one\ntwo\nthree\n")  # sorted image order
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, mask_types=["thick"], prompts=str(tmp_path / "lines.txt"))
    dm.setup()
    assert [it["prompt"] for it in dm.dataset] == ["one", "two", "three"]


def test_prompt_field_of_webdataset_shards(tmp_path):
    import io

    import webdataset as wds
    from repaint_pl.datamodules.shards import ShardItems

    url = str(tmp_path / "s-000000.tar")
    with wds.TarWriter(url) as w:
        for i, text in enumerate(("a fox", "a boat")):
            buf = io.BytesIO()
            Image.new("RGB", (16, 16)).save(buf, format="PNG")
            w.write({"__key__": f"{i:06d}", "png": buf.getvalue(), "prompt": text.encode()})
    items = list(ShardItems(url, 16, ["thick"]))
    assert [it["prompt"] for it in items] == ["a fox", "a boat"]


def test_per_image_prompts_reach_the_denoiser(tiny_sd):
    """Each image is conditioned on its own prompt: the same picture under two prompts fills differently,
    and an image's fill does not depend on the prompt of its batch neighbour."""
    den = StableDiffusionDenoiser(tiny_sd, guidance_scale=4.0, steps=4)
    module = RePaintModule(
        denoiser=den, space=LatentSpace(tiny_sd), schedule=JumpSchedule(jump_length=1, jump_n_sample=1)
    ).eval()
    image, keep, _ = batch(64)
    image, keep = image[:1].expand(2, -1, -1, -1), keep[:1].expand(2, -1, -1, -1)
    ids = torch.tensor([7, 7])
    with torch.no_grad():
        two = module.inpaint(image, keep, ids, prompts=["a red door", "green grass"])
        alone = module.inpaint(image[:1], keep[:1], ids[:1], prompts=["green grass"])
    assert (two[0] - two[1]).abs().max() > 1e-3
    assert torch.allclose(two[1], alone[0], atol=1e-5)


@pytest.mark.slow
def test_latent_benchmark_compares_equal_network_calls(tiny_sd):
    """Both sides of the latent benchmark drive the same UNet equally often, and both keep the known pixels."""
    from repaint_pl.apps import bench_latent as bl

    setup = bl.LatentBenchSetup(pretrained=tiny_sd, batch_size=1, steps=6, jump_length=2, jump_n_sample=2, repeats=1)
    r = bl.run_benchmark(setup)
    expected = JumpSchedule(jump_length=2, jump_n_sample=2).network_calls(6)
    assert r["network_calls"]["repaint_pl_s"] == r["network_calls"]["diffusers_s"] == expected
    den = StableDiffusionDenoiser(tiny_sd, steps=6)
    module = RePaintModule(
        denoiser=den, space=LatentSpace(tiny_sd), schedule=JumpSchedule(jump_length=2, jump_n_sample=2)
    ).eval()
    image, keep = bl.inputs(setup)
    with torch.no_grad():
        theirs = bl.theirs(module, setup)()
    known = keep.expand_as(image) == 1
    assert torch.equal(theirs[known], image[known])
