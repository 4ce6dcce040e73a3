"""train.py: the loss goes down, EMA weights land in the checkpoint, training resumes, eval reads the checkpoint."""

import glob
import os

import pytest
import torch
import yaml

from repaint_pl.cli import TrainCLI, eval_main, train_main
from repaint_pl.module import RePaintModule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "train", "*.yaml")))


def train_args(tmp, steps, *extra):
    return [
        "--config",
        os.path.join(ROOT, "configs", "train", "texture.yaml"),
        "--model.net.preset",
        "tiny",
        "--model.net.in_channels",
        "1",
        "--model.net.num_channels",
        "32",
        "--model.diffusion.timestep_respacing",
        "10",
        "--model.lr",
        "1e-3",
        "--model.channels_last",
        "false",
        "--data.init_args.crop_size",
        "16",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.epoch_length",
        "64",
        "--trainer.max_steps",
        str(steps),
        "--trainer.default_root_dir",
        tmp,
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.check_val_every_n_epoch",
        "4",
        "--trainer.callbacks",
        CALLBACKS.replace("CKPT_DIR", os.path.join(tmp, "checkpoints")),
        *extra,
    ]


CALLBACKS = """[
  {class_path: lightning.pytorch.callbacks.EMAWeightAveraging, init_args: {decay: 0.9, use_buffers: false}},
  {class_path: lightning.pytorch.callbacks.ModelCheckpoint,
   init_args: {dirpath: CKPT_DIR, save_last: true, every_n_train_steps: 8}},
  {class_path: repaint_pl.callbacks.SamplePreview, init_args: {num_samples: 2}}]"""


def fixed_loss(module: RePaintModule, batch) -> float:
    module.eval()
    with torch.no_grad():
        return module.diffusion_losses(batch, torch.Generator().manual_seed(0))["loss"].mean().item()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("train"))
    cli = train_main(train_args(tmp, 40))
    return tmp, cli


@pytest.mark.slow
def test_training_lowers_the_loss(trained):
    tmp, cli = trained
    batch = next(iter(cli.datamodule.val_dataloader()))
    ckpt = torch.load(os.path.join(tmp, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=False)
    torch.manual_seed(0)  # the initial weights of the run (seed_everything: 0)
    model = RePaintModule(**{k: cli.model.hparams[k] for k in ("net", "diffusion")})
    before = fixed_loss(model, batch)
    model.load_state_dict(ckpt["current_model_state"])  # the optimised (not yet averaged) weights
    assert fixed_loss(model, batch) < 0.7 * before


@pytest.mark.slow
def test_checkpoint_holds_the_ema_weights(trained):
    tmp, cli = trained
    ckpt = torch.load(os.path.join(tmp, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=False)
    ema, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert ema.keys() == current.keys() and ckpt["hyper_parameters"]["net"]["preset"] == "tiny"
    assert any(not torch.equal(ema[k], current[k]) for k in ema)
    # after fit, Lightning's weight averaging leaves the EMA weights in the model
    assert all(torch.equal(v, ema[k]) for k, v in cli.model.state_dict().items())


@pytest.mark.slow
def test_training_resumes_from_a_checkpoint(trained):
    tmp, _ = trained
    cli = train_main(train_args(tmp, 48, "--ckpt_path", os.path.join(tmp, "checkpoints", "last.ckpt")))
    assert cli.trainer.global_step == 48


@pytest.mark.slow
def test_eval_reads_architecture_and_weights_from_the_checkpoint(trained, tmp_path):
    tmp, cli = trained
    out = str(tmp_path / "eval")
    eval_main(
        [
            "--ckpt",
            os.path.join(tmp, "checkpoints", "last.ckpt"),
            "--data",
            "repaint_pl.datamodules.TextureDataModule",
            "--data.crop_size",
            "16",
            "--data.eval_size",
            "24",
            "--data.mask_types",
            "[ex64]",
            "--data.eval_crops",
            "1",
            "--writer.out_dir",
            out,
            "--metrics.lpips",
            "[]",
            "--accelerator",
            "cpu",
            "--progress.refresh_rate",
            "0",
        ]
    )
    saved = yaml.safe_load(open(os.path.join(out, "config.yaml")))
    assert saved["model"]["net"]["preset"] == "tiny" and saved["model"]["diffusion"]["timestep_respacing"] == "10"
    assert sorted(os.listdir(os.path.join(out, "inpainted", "ex64"))) == ["brick_0.png", "grass_0.png", "gravel_0.png"]


class ParseOnly(TrainCLI):
    def instantiate_classes(self) -> None:
        pass


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=[os.path.basename(p) for p in TRAIN_CONFIGS])
def test_train_configs_instantiate(path):
    import lightning as L

    cli = ParseOnly(RePaintModule, L.LightningDataModule, subclass_mode_data=True, run=False, args=["--config", path])
    init = cli.parser.instantiate(cli.config)
    assert isinstance(init["model"], RePaintModule) and init["trainer"].max_steps > 0
