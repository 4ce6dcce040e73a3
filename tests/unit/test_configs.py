"""Every YAML under configs/ parses with the CLI it is meant for, and its networks resolve."""

import glob
import os

import pytest
import yaml

from repaint_pl.cli import RePaintCLI, prepare_eval_argv
from repaint_pl.module import RePaintModule
from repaint_pl.nets import ClassifierConfig, UNetConfig
from repaint_pl.paths import weights_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
NOT_EVAL = (os.path.join("configs", "train"), os.path.join("configs", "experiments"))  # train.py; sweeps (test_sweep)
EVAL_CONFIGS = [p for p in CONFIGS if not os.path.relpath(p, ROOT).startswith(NOT_EVAL)]
DUMMY_DATA = [
    "--data",
    "repaint_pl.datamodules.InpaintFolderDataModule",
    "--data.gt_path",
    "x",
    "--data.mask_path",
    "y",
]


class ParseOnlyCLI(RePaintCLI):
    def instantiate_classes(self) -> None:  # parse and validate, build nothing
        pass


def parse(args):
    import lightning as L

    cli = ParseOnlyCLI(RePaintModule, L.LightningDataModule, subclass_mode_data=True, run=False, args=args)
    return cli.config


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=[os.path.relpath(p, ROOT) for p in EVAL_CONFIGS])
def test_config_parses(path):
    with open(path) as f:
        raw = yaml.safe_load(f)
    group = os.path.basename(os.path.dirname(path))
    base = ["--config", os.path.join(ROOT, "configs", "data", "celeba256.yaml")] if group == "masks" else []
    config = parse(prepare_eval_argv(base + ["--config", path] + ([] if "data" in raw else DUMMY_DATA)))
    if group == "masks":
        assert config["data"]["init_args"]["mask_types"] == raw["data"]["init_args"]["mask_types"]
    UNetConfig(**config["model"]["net"]).flags()
    if config["model"]["classifier"]:
        ClassifierConfig(**config["model"]["classifier"]).flags()


def test_config_groups_compose():
    """model × data × masks × schedule, as the README runs them."""
    groups = [("model", "imagenet256"), ("data", "imagenet256"), ("masks", "paper"), ("schedule", "late")]
    args = [a for g, name in groups for a in ("--config", os.path.join(ROOT, "configs", g, f"{name}.yaml"))]
    config = parse(prepare_eval_argv(args))
    assert config["model"]["net"]["preset"] == "imagenet256" and config["data"]["init_args"]["class_folders"]
    assert len(config["data"]["init_args"]["mask_types"]) == 6
    assert config["model"]["schedule"]["init_args"]["profile"] == "late"


def test_command_line_ckpt_wins_over_a_config_file(tmp_path):
    demo = os.path.join(ROOT, "configs", "demo", "texture.yaml")
    import torch

    ckpt = str(tmp_path / "mine.pt")
    torch.save({}, ckpt)
    assert parse(prepare_eval_argv(["--ckpt", ckpt, "--config", demo]))["ckpt"] == ckpt
    assert parse(prepare_eval_argv(["--config", demo, "--ckpt", ckpt]))["ckpt"] == ckpt
    # a config file's relative ckpt is relative to that file's folder, wherever eval.py runs
    assert parse(prepare_eval_argv(["--config", demo]))["ckpt"] == weights_path("texture32_ema.pt")


def test_relative_weights_follow_the_config_file_and_the_command_line_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text("ckpt: w/net.pt\nclassifier_ckpt: ../cls.pt\n")
    monkeypatch.chdir(tmp_path / "cfg")
    from_file = parse(DUMMY_DATA + ["--config", "c.yaml"])
    assert from_file["ckpt"] == str(tmp_path / "cfg" / "w" / "net.pt")
    assert from_file["classifier_ckpt"] == str(tmp_path / "cls.pt")
    monkeypatch.chdir(tmp_path)
    assert parse(DUMMY_DATA + ["--config", "cfg/c.yaml"])["ckpt"] == str(tmp_path / "cfg" / "w" / "net.pt")
    given = parse(DUMMY_DATA + ["--config", "cfg/c.yaml", "--ckpt", "mine.pt", "--classifier_ckpt", "~/c.pt"])
    assert given["ckpt"] == str(tmp_path / "mine.pt")
    assert given["classifier_ckpt"] == os.path.join(os.path.expanduser("~"), "c.pt")
