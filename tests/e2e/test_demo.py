"""The shipped texture model: its weights are trained, and the README's first command runs with them."""

import json
import os

import pytest
import torch
import yaml
from repaint_pl.datamodules import TextureDataModule

from repaint_pl.cli import cached_checkpoint, eval_main
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.module import RePaintModule
from repaint_pl.nets import UNetConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "configs", "demo", "texture.yaml")
WEIGHTS = os.path.join(ROOT, "weights", "texture32_ema.pt")


def demo_module() -> RePaintModule:
    with open(DEMO) as f:
        model = yaml.safe_load(f)["model"]
    return RePaintModule(net=UNetConfig(**model["net"]), diffusion=DiffusionConfig(**model["diffusion"]))


def held_out_loss(module: RePaintModule) -> float:
    data = TextureDataModule(scale=0.25, crop_size=32, held_out=0.5, eval_crops=4)
    data.setup()
    batch = {"image": torch.stack([crop for _, crop in data.eval_images(32)])}
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # the same t and noise for both networks, several draws
        return sum(module.eval().diffusion_losses(batch, generator)["mse"].mean().item() for _ in range(4))


def test_shipped_weights_match_their_record_and_are_trained():
    with open(os.path.splitext(WEIGHTS)[0] + ".yaml") as f:
        record = yaml.safe_load(f)
    with open(DEMO) as f:
        model = yaml.safe_load(f)["model"]
    assert record["ema"] and record["model"]["net"]["preset"] == model["net"]["preset"]
    assert os.path.getsize(WEIGHTS) < 20e6
    trained = demo_module()
    trained.load_net_weights(cached_checkpoint(WEIGHTS), WEIGHTS)  # strict
    torch.manual_seed(0)
    untrained = demo_module()
    # ε-prediction error on held-out crops: the shipped net predicts the noise far better than chance
    assert held_out_loss(trained) < 0.25 * held_out_loss(untrained)


@pytest.mark.slow
def test_demo_config_runs_with_the_shipped_weights(tmp_path):
    out = str(tmp_path / "demo")
    reduced = ["--model.diffusion.timestep_respacing", "10", "--model.schedule.jump_length", "2"]
    masks = ["--data.init_args.mask_types", '["thick", "ex64"]', "--metrics.lpips", "[]"]
    eval_main(["--config", DEMO, *reduced, *masks, "--writer.out_dir", out, "--progress.refresh_rate", "0"])
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)["mask_types"]
    assert set(summary) == {"thick", "ex64", "all"} and summary["all"]["images"] == 6
    assert all(os.path.isfile(os.path.join(out, "grids", f"{kind}.png")) for kind in ("thick", "ex64"))
    assert len(os.listdir(os.path.join(out, "inpainted", "thick"))) == 3
