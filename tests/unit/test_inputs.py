"""Unchecked inputs refused in one line: schedule strength, original-conf loader settings, mask files."""

import copy

import numpy as np
import pytest
from PIL import Image
from repaint_pl.datamodules import load_mask
from repaint_pl.datamodules.images import ImageFileError

from repaint_pl.original_conf import RepaintConfError, translate
from repaint_pl.schedules import ProfileSchedule, count_network_calls, profile_jump_counts

CONF = {
    "image_size": 32,
    "learn_sigma": False,
    "timestep_respacing": "10",
    "schedule_jump_params": {"t_T": 10, "n_sample": 1, "jump_length": 2, "jump_n_sample": 2},
    "data": {
        "eval": {
            "e": {
                "mask_loader": True,
                "gt_path": "gts",
                "mask_path": "masks",
                "batch_size": 4,
                "max_len": 8,
                "random_flip": False,
                "paths": {"srs": "out/srs"},
            }
        }
    },
}


def conf_with(**entry):
    conf = copy.deepcopy(CONF)
    conf["data"]["eval"]["e"].update(entry)
    return conf


@pytest.mark.parametrize("strength", [-0.1, 1.5, 2.0])
def test_profile_strength_outside_unit_interval_is_one_line(strength):
    with pytest.raises(ValueError, match=r"^schedule.strength=.* must lie in \[0, 1\]"):
        ProfileSchedule(strength=strength)
    with pytest.raises(ValueError, match="strength"):
        profile_jump_counts(250, 10, 10, "early", strength)


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_profile_strength_inside_keeps_the_promised_cost(strength):
    assert count_network_calls(ProfileSchedule(strength=strength).times(250)) == 2410


def test_original_loader_defaults_that_change_pictures_are_refused():
    translate(conf_with(), "c.yml")  # the released confs' settings pass
    entry_without_flip = conf_with()
    del entry_without_flip["data"]["eval"]["e"]["random_flip"]  # the original's default: flip at random
    with pytest.raises(RepaintConfError, match=r"^c.yml: data.eval.e.random_flip is true \(the original's default"):
        translate(entry_without_flip, "c.yml")
    with pytest.raises(RepaintConfError, match="data.eval.e.random_crop is true"):
        translate(conf_with(random_crop=True), "c.yml")
    with pytest.raises(RepaintConfError, match="data.eval.e.class_cond"):
        translate(conf_with(class_cond=True), "c.yml")
    with pytest.raises(RepaintConfError, match="mask_loader"):
        translate(conf_with(mask_loader=False), "c.yml")
    # drop_last (default true) skips a last incomplete batch: 10 images in batches of 4
    with pytest.raises(RepaintConfError, match="drop_last"):
        translate(conf_with(max_len=10), "c.yml")
    translate(conf_with(max_len=10, drop_last=False), "c.yml")


def test_sigma_small_is_ignored_as_by_the_original():
    # RePaint's create_model_and_diffusion does not pass sigma_small on: the variance stays fixed_large
    config, _, _ = translate(dict(conf_with(), sigma_small=True), "c.yml")
    assert config["model"]["diffusion"]["variance"] == "fixed_large"


def write(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return str(path)


def test_mask_files_are_checked(tmp_path):
    half = np.zeros((16, 16), np.uint8)
    half[:, 8:] = 255
    ok = load_mask(write(tmp_path / "ok.png", half), 16)
    assert ok.shape == (3, 16, 16) and ok[:, :, 8:].eq(1).all() and ok[:, :, :8].eq(0).all()
    # a float mask in [0, 1] reads like its 8-bit version
    as_float = write(tmp_path / "f.tiff", (half / 255).astype(np.float32), "F")
    assert load_mask(as_float, 16).equal(ok)
    cases = {
        "wide.png": (half.astype(np.uint16) * 257, "I;16", "outside \\[0, 255\\]"),
        "neg.tiff": (half.astype(np.float32) - 1, "F", "outside \\[0, 255\\]"),
        "zero_one.png": (half // 255, None, "only 0 and 1"),
        "colour.png": (np.stack([half, 255 - half, half], -1), None, "not a grey mask"),
    }
    for name, (arr, mode, message) in cases.items():
        path = write(tmp_path / name, arr, mode)
        with pytest.raises(ImageFileError, match=f"^{path}: .*{message}") as err:
            load_mask(path, 16)
        assert "\n" not in str(err.value)
