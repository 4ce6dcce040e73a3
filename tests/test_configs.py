"""Every YAML under configs/ parses with the CLI it is meant for, and its networks resolve."""
import glob
import os

import pytest
import yaml

from repaint_pl.cli import RePaintCLI, prepare_eval_argv
from repaint_pl.module import RePaintModule
from repaint_pl.nets import ClassifierConfig, UNetConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
EVAL_CONFIGS = [p for p in CONFIGS if not os.path.relpath(p, ROOT).startswith(os.path.join("configs", "train"))]
DUMMY_DATA = ["--data", "repaint_pl.datamodules.InpaintFolderDataModule", "--data.gt_path", "x",
              "--data.mask_path", "y"]  # fmt: skip


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
    config = parse(prepare_eval_argv(["--config", path] + ([] if "data" in raw else DUMMY_DATA)))
    UNetConfig(**config["model"]["net"]).flags()
    if config["model"]["classifier"]:
        ClassifierConfig(**config["model"]["classifier"]).flags()


def test_there_are_configs():
    assert len(CONFIGS) >= 8
