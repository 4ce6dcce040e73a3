"""True-precision modes (bf16-true, 16-true): the time embedding stays float32, the posterior and the loss are
computed in float32, and the pictures are those of float32 up to rounding."""

import os

import numpy as np
import pytest
import torch
from conftest import TINY, randomize
from PIL import Image

from repaint_pl.cli import eval_main
from repaint_pl.module import RePaintModule
from repaint_pl.nets import UNetConfig
from repaint_pl.nets.adm import sinusoid_freqs, timestep_embedding


def test_time_embedding_stays_float32_in_a_bfloat16_net():
    net = randomize(UNetConfig(**TINY).build()).to(torch.bfloat16)
    assert net.input_blocks[0][0].weight.dtype == torch.bfloat16
    assert net.time_freqs.dtype == torch.float32 and torch.equal(net.time_freqs, sinusoid_freqs(net.model_channels))
    t = torch.tensor([999.0, 500.0])
    emb = timestep_embedding(t, net.model_channels, net.time_freqs)
    # float64 reference: every sinusoid within float32 rounding (a bfloat16 argument t·f would be off by radians)
    args = t.double()[:, None] * sinusoid_freqs(net.model_channels).double()[None]
    assert emb.dtype == torch.float32
    assert torch.allclose(emb.double(), torch.cat([args.cos(), args.sin()], -1), atol=1e-3)


def test_bfloat16_net_output_is_close_to_float32():
    net = randomize(UNetConfig(**TINY).build())
    x, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([999, 10])
    with torch.no_grad():
        full = net(x, t)
        low = net.to(torch.bfloat16)(x, t)
    assert low.shape == full.shape
    assert (low.float() - full).abs().max() < 0.05 * full.abs().max()


def test_training_loss_is_float32_under_bfloat16():
    batch = {"image": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1}
    torch.manual_seed(0)
    module = RePaintModule(net=dict(preset="tiny"))
    randomize(module.net)
    full = module.diffusion_losses(batch, torch.Generator().manual_seed(2))["loss"]
    module.to(torch.bfloat16)
    low = module.diffusion_losses({"image": batch["image"].bfloat16()}, torch.Generator().manual_seed(2))["loss"]
    assert low.dtype == torch.float32 and torch.allclose(low, full, rtol=0.05)


@pytest.mark.slow
def test_eval_in_bf16_true_gives_the_float32_pictures(tmp_path, tiny_ckpt, image_folders):
    def run(precision):
        out = str(tmp_path / precision)
        eval_main(
            [
                "--ckpt",
                tiny_ckpt,
                "--model.net.preset",
                "tiny",
                "--model.diffusion.timestep_respacing",
                "10",
                "--model.schedule.t_T",
                "10",
                "--model.schedule.jump_length",
                "2",
                "--model.schedule.jump_n_sample",
                "2",
                "--data",
                "repaint_pl.datamodules.ImageFolderDataModule",
                "--data.image_path",
                image_folders[0],
                "--data.image_size",
                "32",
                "--data.mask_types",
                "[thick]",
                "--data.max_images",
                "1",
                "--writer.out_dir",
                out,
                "--metrics.lpips",
                "[]",
                "--accelerator",
                "cpu",
                "--progress.refresh_rate",
                "0",
                "--trainer.precision",
                precision,
            ]
        )
        folder = os.path.join(out, "inpainted", "thick")
        return {f: np.asarray(Image.open(os.path.join(folder, f)), dtype=int) for f in sorted(os.listdir(folder))}

    full, low = run("32-true"), run("bf16-true")
    assert full.keys() == low.keys() and len(full) == 1
    diff = np.stack([np.abs(full[k] - low[k]) for k in full])
    assert diff.mean() < 1 and diff.max() <= 8  # grey levels of 255
