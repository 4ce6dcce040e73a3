"""RePaintPipeline: pictures from Python through eval.py's engine (the shipped texture model, a tiny Stable
Diffusion folder, a tiny ADM checkpoint), crop-and-stitch, branching, and the README's snippet as it is."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from repaint_pl.apps.tiny import tiny_sd_pipeline
from repaint_pl.pipeline import PipelineError, RePaintPipeline
from repaint_pl.schedules import count_network_calls

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = dict(steps=10, jump_length=2, jump_n_sample=2)  # 10 respaced steps, a few jumps


@pytest.fixture(scope="module")
def texture_pipe() -> RePaintPipeline:
    return RePaintPipeline.from_pretrained(device="cpu")


def picture(size: int = 64, seed: int = 0) -> np.ndarray:
    """A grey uint8 picture [H, W] with structure (a smooth gradient plus noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    return np.clip(128 + 60 * np.sin(xs / 5.0) + 20 * rng.standard_normal((size, size)), 0, 255).astype(np.uint8)


def hole_mask(size: int = 64, box=(20, 40, 16, 44)) -> np.ndarray:
    mask = np.full((size, size), 255, np.uint8)
    mask[box[0] : box[1], box[2] : box[3]] = 0
    return mask


def test_known_pixels_are_the_input_and_the_callback_sees_every_transition(texture_pipe):
    seen = []
    out = texture_pipe(Image.fromarray(picture()), Image.fromarray(hole_mask()), seed=3, **FAST,
                       callback_on_step_end=lambda pipe, i, t, kw: seen.append((i, t, kw["x"].shape)))  # fmt: skip
    result = np.asarray(out.images[0])
    known = hole_mask() == 255
    assert result.shape == (64, 64) and (result[known] == picture()[known]).all()
    assert (result[~known] != picture()[~known]).mean() > 0.5  # the hole was filled, not copied
    times = texture_pipe.model.times  # the configured table is back after the call …
    assert len(times) > 100
    assert [i for i, _, _ in seen] == list(range(len(seen)))  # … and the call walked its own, every transition
    assert out.network_calls == [count_network_calls([seen[0][1] + 1] + [t for _, t, _ in seen])]


def test_a_picture_in_a_batch_is_the_picture_alone(texture_pipe):
    """One generator per picture: picture 0 of a batch of two equals picture 0 run alone."""
    a, b = Image.fromarray(picture(seed=1)), Image.fromarray(picture(seed=2))
    mask = Image.fromarray(hole_mask())
    both = texture_pipe([a, b], mask, seed=5, output_type="pt", **FAST).images
    alone = texture_pipe(a, mask, seed=5, output_type="pt", **FAST).images
    assert both.shape == (2, 1, 64, 64)
    assert torch.allclose(both[0], alone[0], atol=1e-5)
    other = texture_pipe(a, mask, seed=6, output_type="pt", **FAST).images
    assert not torch.allclose(other[0], alone[0], atol=1e-3)


def test_fill_convention_is_the_inverted_keep_mask_and_an_inverted_mask_is_warned(texture_pipe):
    image = Image.fromarray(picture())
    keep = texture_pipe(image, Image.fromarray(hole_mask()), seed=1, output_type="np", **FAST).images[0]
    fill = texture_pipe(image, Image.fromarray(255 - hole_mask()), mask_convention="fill", seed=1,
                        output_type="np", **FAST).images[0]  # fmt: skip
    assert (keep == fill).all()
    small_hole = hole_mask(box=(30, 34, 30, 34))  # given in the other convention: 99.6 % to fill
    with pytest.warns(UserWarning, match="mask_convention='fill'"):
        texture_pipe(image, Image.fromarray(255 - small_hole), seed=1, steps=2, jump_n_sample=1)


def test_crop_and_stitch_keeps_the_photo_size_and_costs_one_crop(texture_pipe):
    big = np.tile(picture(), (8, 12))[:500, :700]  # 700×500, a 40×30 hole far from the centre
    mask = np.full(big.shape, 255, np.uint8)
    mask[400:430, 40:80] = 0
    seen = []
    out = texture_pipe(big, mask, crop_to_mask=8, seed=0, output_type="np", **FAST,
                       callback_on_step_end=lambda *a: seen.append(a[1]))  # fmt: skip
    result = out.images[0][..., 0]
    assert result.shape == big.shape and (result[mask == 255] == big[mask == 255]).all()
    assert (result[mask == 0] != big[mask == 0]).mean() > 0.5
    one_crop = texture_pipe(picture(), hole_mask(), output_type="np", **FAST).network_calls[0]
    assert out.network_calls == [one_crop] and len(seen) == len(set(seen))  # one batch, one walk
    with pytest.raises(PipelineError, match="crop_to_mask"):  # without cropping the hole is lost: refused
        texture_pipe(big, mask, **FAST)


def test_branching_from_a_saved_state_gives_the_uninterrupted_pictures(texture_pipe):
    image, mask = Image.fromarray(picture()), Image.fromarray(hole_mask())
    point = texture_pipe.save_state(image, mask, at=5, seed=4, steps=10, output_type="pt")
    same = texture_pipe.resume(point, times="saved", output_type="pt")
    assert torch.allclose(same.images, point.output.images, atol=1e-5)
    assert same.network_calls[0] < point.output.network_calls[0]  # only the rest is counted
    branch = texture_pipe.resume(point, seed=9, jump_n_sample=1, output_type="pt")
    assert not torch.allclose(branch.images, point.output.images, atol=1e-3)


def test_one_line_errors_for_bad_arguments(texture_pipe):
    image = Image.fromarray(picture())
    with pytest.raises(PipelineError, match=r"mask_image\[0\]: mask is 32x32"):
        texture_pipe(image, Image.fromarray(hole_mask(32, (4, 8, 4, 8))))
    with pytest.raises(PipelineError, match="sampler='fastest': unknown; known: .*fast"):
        texture_pipe(image, Image.fromarray(hole_mask()), sampler="fastest")
    with pytest.raises(PipelineError, match="2 masks for 1 pictures"):
        texture_pipe([image], [hole_mask(), hole_mask()])


def test_named_sampler_and_steps_apply_to_one_call(texture_pipe):
    before = (texture_pipe.model.sampling.num_timesteps, type(texture_pipe.model.sampler))
    out = texture_pipe(picture(), hole_mask(), sampler="ddim_repaint", steps=10, jump_n_sample=1, output_type="np")
    assert out.network_calls == [10]
    assert (texture_pipe.model.sampling.num_timesteps, type(texture_pipe.model.sampler)) == before


def test_tiny_stable_diffusion_folder_with_a_prompt(tmp_path):
    folder = str(tmp_path / "sd")
    tiny_sd_pipeline().save_pretrained(folder)
    pipe = RePaintPipeline.from_pretrained(folder, device="cpu")
    assert pipe.image_size == 64  # the UNet's 8² latents × the VAE's factor 8
    rgb = np.stack([picture(seed=s) for s in range(3)], -1)
    seen = []
    out = pipe(Image.fromarray(rgb), Image.fromarray(hole_mask()), prompt="a cat", steps=4, jump_n_sample=1,
               callback_on_step_end=lambda *a: seen.append(a[1]))  # fmt: skip
    result = np.asarray(out.images[0])
    known = hole_mask() == 255
    assert result.shape == (64, 64, 3) and (result[known] == rgb[known]).all()
    assert len(seen) == 4 and out.network_calls == [4]


def readme_snippet(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    after = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow
def test_the_readme_snippet_runs_as_it_is(tmp_path, monkeypatch):
    code = readme_snippet("## A real photo")
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    filled = np.asarray(Image.open(tmp_path / "brick_filled.png"))
    assert filled.shape == (512, 512)


def test_an_adm_checkpoint_runs_at_its_own_size_not_the_fallback_crops(tiny_ckpt):
    """Without data, load_model stands in the texture crops (64²); the tiny ADM net is 32² and the pipeline
    (and the studio, through the same ``picture_format``) uses 32."""
    pipe = RePaintPipeline.from_pretrained(tiny_ckpt, preset="tiny", device="cpu")
    assert (pipe.image_size, pipe.channels) == (32, 3)
    rgb = np.stack([picture(32, seed=s) for s in range(3)], -1)
    out = pipe(rgb, hole_mask(32, (8, 20, 8, 24)), steps=5, jump_n_sample=1, output_type="np")
    known = hole_mask(32, (8, 20, 8, 24)) == 255
    assert out.images[0].shape == (32, 32, 3) and (out.images[0][known] == rgb[known]).all()


def test_a_hole_the_centre_crop_cuts_is_warned_about(texture_pipe):
    wide = np.tile(picture(), (1, 3))  # 192×64: the centre crop keeps the middle third
    mask = np.full(wide.shape, 255, np.uint8)
    mask[20:40, 50:90] = 0  # 40 wide, 14 of them left of the middle third
    with pytest.warns(UserWarning, match="the centre crop loses 35% of the hole; crop_to_mask"):
        texture_pipe(wide, mask, steps=2, jump_n_sample=1)
