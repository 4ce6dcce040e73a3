"""The ADM path of RePaintModule is the plain RePaint loop on guided-diffusion's model function.

``tools/compare_with_original.py`` checks pixel equality with the original RePaint code, which is not
part of this project.  These tests catch a regression of that path without it: whatever the module
composes (denoiser, space, sampler choice, noise source, precision handling), its output must equal a
direct call of ``repaint_pl.sampling.repaint`` with ``repaint_pl.denoisers.adm_model_fn`` on the same
net, drawing the numbers in the original's order: the class labels (drawn even for unconditional nets),
then the loop's.  And the original layout's sample ids are the images' indices in the full sorted list,
which is what the comparison tool seeds the original with.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.folders import InpaintFolderDataModule
from repaint_pl.apps.tiny import randomize
from repaint_pl.denoisers import adm_model_fn, classifier_grad_fn
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.module import RePaintModule
from repaint_pl.nets import ClassifierConfig, UNetConfig
from repaint_pl.noise import GlobalNoise, PerSampleNoise
from repaint_pl.sampling import repaint
from repaint_pl.schedules import JumpSchedule

SEED = 5


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads per process mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL_NET = dict(num_res_blocks=1, num_heads=2, learn_sigma=True, resblock_updown=True, use_scale_shift_norm=True)


def tiny_module(image_size: int = 16, classifier: bool = False, **kwargs) -> RePaintModule:
    """A random learned-sigma ADM UNet (32 channels) over 100 base steps respaced to 8, jumps of 2 (× 2)."""
    net = UNetConfig(
        image_size=image_size,
        num_channels=32,
        channel_mult="1,2" if image_size == 16 else "1,1,2,2",
        attention_resolutions="8",
        class_cond=classifier,
        **SMALL_NET,
    )
    module = RePaintModule(
        net=net,
        diffusion=DiffusionConfig(steps=100, timestep_respacing="8"),
        schedule=JumpSchedule(t_T=8, jump_length=2, jump_n_sample=2),
        classifier=ClassifierConfig(image_size=image_size, width=64, depth=1, attention_resolutions="8")
        if classifier
        else None,
        seed=SEED,
        **kwargs,
    )
    randomize(module.net, 1)
    if module.classifier is not None:
        randomize(module.classifier, 2)
    return module.eval()


def batch(size: int, image_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1, 1] and keep masks (1 = known) with a different hole per image."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(size, 3, image_size, image_size, generator=g) * 2 - 1
    keep = torch.ones(size, 1, image_size, image_size)
    for i in range(size):
        keep[i, :, 2 + i : image_size // 2 + i, 3 : image_size - 4] = 0
    return image, keep


def direct(module: RePaintModule, image, keep, noise, labels_high: int, y=None, scale: float = 0.0):
    """The RePaint loop called directly: labels first from the noise stream, then ``repaint``."""
    d = module.diffusion_config.build(respaced=True)
    labels = torch.full((len(image),), y) if y is not None else noise.randint(labels_high)
    fn = adm_model_fn(module.net, d, labels if module.net.num_classes is not None else None)
    grad = classifier_grad_fn(module.classifier, d, labels, scale) if scale else None
    times = JumpSchedule(t_T=8, jump_length=2, jump_n_sample=2).times(d.num_timesteps)
    return repaint(fn, image, keep, times, d, noise, grad_fn=grad, clip_x0=True)


@torch.no_grad()
def test_module_equals_direct_repaint_per_sample_noise():
    module = tiny_module()
    image, keep = batch(2)
    ids = torch.tensor([3, 11])
    ours = module.inpaint(image, keep, ids)
    expected = direct(module, image, keep, PerSampleNoise(SEED, [3, 11]), labels_high=1000)
    assert torch.equal(ours, expected)
    # and the known region is not pasted back (the original writes the raw sample)
    assert not torch.equal(ours * keep, image * keep)


@torch.no_grad()
def test_module_equals_direct_repaint_global_noise():
    module = tiny_module(noise="global")
    image, keep = batch(2)
    ours = module.inpaint(image, keep, torch.tensor([0, 1]))
    torch.manual_seed(SEED)  # the original's torch.manual_seed before its first batch
    expected = direct(module, image, keep, GlobalNoise(2, "cpu"), labels_high=1000)
    assert torch.equal(ours, expected)


@pytest.mark.slow
def test_module_equals_direct_repaint_class_cond_with_classifier():
    module = tiny_module(image_size=64, classifier=True, classifier_scale=2.0, class_label=7)
    image, keep = batch(1, 64)
    with torch.no_grad():
        ours = module.inpaint(image, keep, torch.tensor([4]))
    expected = direct(module, image, keep, PerSampleNoise(SEED, [4]), 1000, y=7, scale=2.0)
    assert torch.equal(ours, expected)
    # the guidance is in use: without it the picture changes
    assert not torch.equal(ours, direct(module, image, keep, PerSampleNoise(SEED, [4]), 1000, y=7, scale=0.0))


def test_original_layout_ids_are_full_list_image_indices(tmp_path):
    """``tools/compare_with_original.py`` seeds the original's i-th image with sample_seed(seed, offset + i)."""
    for folder in ("gts", "masks"):
        (tmp_path / folder).mkdir()
    for k in range(5):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(tmp_path / "gts" / f"img{k}.png")
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "masks" / f"m{k}.png")
    dm = InpaintFolderDataModule(str(tmp_path / "gts"), str(tmp_path / "masks"), image_size=8, max_len=2, offset=2)
    dm.setup()
    items = [dm.dataset[i] for i in range(len(dm.dataset))]
    assert [int(item["id"]) for item in items] == [2, 3]
    assert [item["name"] for item in items] == ["img2.png", "img3.png"]
