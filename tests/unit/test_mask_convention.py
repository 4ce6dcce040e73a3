"""Mask files: the one mask_convention option (keep|fill, invert_masks its alias), the warning for masks that
look inverted, the centre crop's lost-hole trap (issue 22), and crop-and-stitch items (data.crop_to_mask)."""

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from repaint_pl.datamodules import ImageFolderDataModule
from repaint_pl.datamodules.folders import CropItems, sample_id

from repaint_pl.argv import expand_short_flags

RNG = np.random.default_rng(0)


def pair(root, w: int, h: int, holes, name: str = "pic", fill: bool = False) -> tuple[str, str]:
    """``root/images/<name>.png`` (w×h RGB noise) and ``root/masks/<name>.png`` (255 = known, or inverted)."""
    images, masks = os.path.join(root, "images"), os.path.join(root, "masks")
    os.makedirs(images, exist_ok=True)
    os.makedirs(masks, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(os.path.join(images, f"{name}.png"))
    keep = np.full((h, w), 255, np.uint8)
    for t, l, b, r in holes:
        keep[t:b, l:r] = 0
    Image.fromarray(255 - keep if fill else keep).save(os.path.join(masks, f"{name}.png"))
    return images, masks


def items(**kwargs):
    dm = ImageFolderDataModule(**kwargs)
    dm.setup("predict")
    return [dm.dataset[i] for i in range(len(dm.dataset))]


def test_fill_convention_reads_white_as_the_hole_and_invert_masks_is_its_alias(tmp_path):
    images, keep_masks = pair(str(tmp_path / "a"), 64, 64, [(10, 20, 30, 50)])
    os.makedirs(tmp_path / "b")
    os.rename(images, tmp_path / "b" / "images")
    _, fill_masks = pair(str(tmp_path / "c"), 64, 64, [(10, 20, 30, 50)], fill=True)
    images = str(tmp_path / "b" / "images")
    base = dict(image_path=images, image_size=64, channels=3)
    ref = items(mask_path=keep_masks, **base)[0]["keep_mask"]
    assert ref[0, 10:30, 20:50].eq(0).all() and ref.sum() == 3 * (64 * 64 - 20 * 30)
    assert torch.equal(items(mask_path=fill_masks, mask_convention="fill", **base)[0]["keep_mask"], ref)
    assert torch.equal(items(mask_path=fill_masks, invert_masks=True, **base)[0]["keep_mask"], ref)
    assert torch.equal(items(mask_path=fill_masks, **base)[0]["keep_mask"], 1 - ref)  # read as keep: inverted
    with pytest.raises(ValueError, match="mask_convention: expected keep .* or fill"):
        ImageFolderDataModule(images, mask_path=fill_masks, mask_convention="white")


def test_a_mask_that_looks_inverted_is_warned_about_once_naming_the_flag(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    images, masks = pair(str(tmp_path), 64, 64, [(0, 0, 64, 63)], name="a")  # 98% to fill
    pair(str(tmp_path), 64, 64, [(0, 0, 64, 63)], name="b")
    items(image_path=images, mask_path=masks, image_size=64)
    lines = [r.getMessage() for r in caplog.records if "--mask_convention" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(os.path.join(masks, "a.png"))
    assert "--mask_convention fill" in lines[0]
    caplog.clear()
    items(image_path=images, mask_path=masks, image_size=64, mask_convention="fill")  # 2% to fill: fine
    assert not [r for r in caplog.records if "--mask_convention" in r.getMessage()]


def test_the_centre_crop_warns_when_it_loses_part_of_the_hole_and_refuses_when_it_loses_all(tmp_path, caplog):
    """A 300×100 picture keeps its centre 100×100 square: a hole at the left edge is lost entirely (the item's
    error, one line), a hole across the square's edge half lost (a warning), a centred hole kept (nothing)."""
    caplog.set_level(logging.WARNING)
    images, masks = pair(str(tmp_path), 300, 100, [(40, 10, 60, 50)], name="lost")
    pair(str(tmp_path), 300, 100, [(40, 80, 60, 120)], name="half")
    pair(str(tmp_path), 300, 100, [(40, 130, 60, 170)], name="kept")
    got = {i["name"]: i for i in items(image_path=images, mask_path=masks, image_size=32)}
    error = got["lost.png"]["error"]
    assert error.startswith(os.path.join(masks, "lost.png") + ": ") and "--crop_to_mask" in error
    assert "100%" in error and "\n" not in error
    assert got["half.png"]["error"] == "" and got["kept.png"]["error"] == ""
    assert (got["half.png"]["keep_mask"] == 0).any() and (got["kept.png"]["keep_mask"] == 0).any()
    lines = [r.getMessage() for r in caplog.records if "centre crop" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(os.path.join(masks, "half.png"))
    assert "loses 50% of the hole" in lines[0] and "--crop_to_mask" in lines[0]


def test_crop_to_mask_gives_one_item_per_hole_region(tmp_path):
    images, masks = pair(str(tmp_path), 900, 600, [(50, 60, 90, 110), (500, 800, 540, 860)], name="two")
    pair(str(tmp_path), 900, 600, [(300, 300, 340, 340), (300, 360, 340, 400)], name="one")  # 20 px apart
    pair(str(tmp_path), 900, 600, [], name="none")
    dm = ImageFolderDataModule(images, mask_path=masks, image_size=64, crop_to_mask=16, channels=3)
    dm.setup("predict")
    assert isinstance(dm.dataset, CropItems)
    got = [dm.dataset[i] for i in range(len(dm.dataset))]
    assert [(g["picture"], g["crop_index"], g["crop_count"]) for g in got] == [
        ("none.png", 0, 0), ("one.png", 0, 1), ("two.png", 0, 2), ("two.png", 1, 2)]  # fmt: skip
    assert got[0]["error"].startswith(os.path.join(masks, "none.png")) and "no hole" in got[0]["error"]
    ok = got[1:]
    assert all(g["error"] == "" and g["image"].shape == (3, 64, 64) and g["keep_mask"].shape == (1, 64, 64) for g in ok)
    assert all((g["keep_mask"] == 0).any() and (g["keep_mask"] == 1).any() for g in ok)
    assert [g["name"] for g in ok] == ["one.crop0.png", "two.crop0.png", "two.crop1.png"]
    assert len({g["id"] for g in ok}) == 3 and got[3]["id"] == sample_id(dm.dataset.items.image_index[2], "crop1")
    box = got[2]["crop_box"].tolist()  # top, left, height, width, hole bounds
    assert box[4:] == [50, 60, 90, 110] and box[2] == box[3] == 82  # 40×50 hole + 2·16 -> an 82² square


def test_crop_to_mask_needs_mask_files_and_the_short_flags_follow_images(tmp_path):
    images, _ = pair(str(tmp_path), 64, 64, [(10, 10, 20, 20)])
    dm = ImageFolderDataModule(images, image_size=32, mask_types=["thick"], crop_to_mask=8)
    with pytest.raises(ValueError, match="crop_to_mask needs mask files"):
        dm.setup("predict")
    with pytest.raises(ValueError, match="crop_to_mask"):
        ImageFolderDataModule(images, crop_to_mask=-1)
    argv = expand_short_flags(["--crop_to_mask", "32", "--mask_convention", "fill", "--images", "DIR"])
    assert argv.index("--data.crop_to_mask=32") > argv.index("--data.image_path=DIR")
    assert "--data.mask_convention=fill" in argv
