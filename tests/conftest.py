"""Shared fixtures: tiny random networks and small image folders made from scikit-image's photos.

Tests live in tiers, one folder each; every test is marked with its folder's tier (see pyproject.toml):
``unit/`` (pure functions and contracts, seconds), ``integration/`` (modules and tiny networks, a few seconds
each) and ``e2e/`` (eval.py/train.py end to end, DDP, the studio's browser, sweeps, benchmark commands; also
marked ``slow``).  ``make test-fast`` runs ``-m "not slow"`` of unit and integration; ``make test`` runs all."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from repaint_pl.apps.tiny import randomize  # noqa: F401  (tests import it from here)
from repaint_pl.nets import UNetConfig

# tests never download: LPIPS/FID backbones come from $TORCH_HOME only (repaint_pl.scoring.load_backbone)
os.environ.setdefault("REPAINT_NO_DOWNLOAD", "1")

TINY = dict(preset="tiny")  # 32x32, 32 channels, learned variance

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    """Mark each test with the tier of its folder (tests/<tier>/...); e2e tests are also ``slow``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        tier = os.path.relpath(str(item.path), here).split(os.sep)[0]
        if tier in TIERS:
            item.add_marker(tier)
            if tier == "e2e":
                item.add_marker("slow")


# eval.py on the tiny random network with a short schedule, on CPU (tests of eval.py and of loading use it)
TINY_ARGS = [
    "--model.net.preset",
    "tiny",
    "--model.diffusion.timestep_respacing",
    "10",
    "--model.schedule",
    "JumpSchedule",
    "--model.schedule.t_T",
    "10",
    "--model.schedule.jump_length",
    "2",
    "--model.schedule.jump_n_sample",
    "2",
    "--accelerator",
    "cpu",
    "--progress.refresh_rate",
    "0",
]


def run(tmp, ckpt, folders, *extra):
    from repaint_pl.cli import eval_main

    out = os.path.join(tmp, "out")
    args = [
        "--ckpt",
        ckpt,
        "--data",
        "repaint_pl.datamodules.InpaintFolderDataModule",
        "--data.gt_path",
        folders[0],
        "--data.mask_path",
        folders[1],
        "--data.image_size",
        "32",
        "--writer.out_dir",
        out,
        *TINY_ARGS,
        *extra,
    ]
    eval_main(args)
    return out


def photos(n: int = 3) -> list[tuple[str, np.ndarray]]:
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket"][:n]
    return [(name, getattr(data, name)()) for name in names]


def write_folder_pair(root: str, size: int = 32, n: int = 3) -> tuple[str, str]:
    """``root/gts`` with n photos and ``root/masks`` with n masks (255 = known, a hole in the middle)."""
    gts, masks = os.path.join(root, "gts"), os.path.join(root, "masks")
    os.makedirs(gts, exist_ok=True)
    os.makedirs(masks, exist_ok=True)
    for i, (name, img) in enumerate(photos(n)):
        Image.fromarray(img).save(os.path.join(gts, f"{name}.png"))
        h, w = img.shape[:2]  # masks have their image's size; after resizing, a hole in the middle
        m = np.full((h, w), 255, np.uint8)
        m[h // 4 : 3 * h // 4, w // 8 + i * w // size : w // 2 + i * w // size] = 0
        Image.fromarray(m).save(os.path.join(masks, f"{name}_mask.png"))
    return gts, masks


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    torch.save(randomize(UNetConfig(**TINY).build()).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory) -> tuple[str, str]:
    return write_folder_pair(str(tmp_path_factory.mktemp("data")))


def saved(tmp_path_factory, name: str, build) -> str:
    """A tiny random diffusers pipeline (``build()``) saved with ``save_pretrained`` into a temp folder."""
    path = str(tmp_path_factory.mktemp(name) / name)
    build().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> str:
    from repaint_pl.apps.tiny import tiny_sd_pipeline

    return saved(tmp_path_factory, "tiny_sd", tiny_sd_pipeline)


@pytest.fixture(scope="session")
def tiny_ddpm(tmp_path_factory) -> str:
    from repaint_pl.apps.tiny import tiny_ddpm_pipeline

    return saved(tmp_path_factory, "tiny_ddpm", tiny_ddpm_pipeline)


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory) -> str:
    from repaint_pl.apps.tiny import tiny_sd3_pipeline

    return saved(tmp_path_factory, "tiny_sd3", tiny_sd3_pipeline)


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> str:
    from repaint_pl.apps.tiny import tiny_flux_pipeline

    return saved(tmp_path_factory, "tiny_flux", tiny_flux_pipeline)


@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> str:
    """Two 64² photos with a prompt each (a sidecar prompts.txt), for the text models' eval runs."""
    from skimage import data

    root = tmp_path_factory.mktemp("pictures")
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(root / f"{name}.png")
    (root / "prompts.txt").write_text("an astronaut\na cup of coffee\n")
    return str(root)


def check_known_pixels(out: str, kinds: list[str], names: list[str]) -> None:
    """eval.py's outputs: one 64² RGB picture per image and mask type whose known pixels equal the input and
    whose fill does not, and a metrics.csv row for each."""
    for kind in kinds:
        for name in names:
            result, gt, keep = (np.asarray(Image.open(os.path.join(out, folder, kind, name + ".png")))
                                for folder in ("inpainted", "gt", "gt_keep_mask"))  # fmt: skip
            keep = keep > 127
            assert result.shape == (64, 64, 3)
            assert np.array_equal(result[keep], gt[keep]), "known pixels must equal the input"
            assert not np.array_equal(result[~keep], gt[~keep])
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = f.read().strip().splitlines()
    assert len(rows) == 1 + len(kinds) * len(names) and "psnr" in rows[0]


@pytest.fixture
def one_thread():
    """One torch thread for the test (restored after): the exact benchmark's small FFTs and many tiny steps
    run several times faster on one thread than on two of a busy CPU.  Modules take it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
