"""End to end: eval.py on a tiny random network writes what the original writes, reproducibly."""

import os

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_ARGS, randomize, run
from PIL import Image
from repaint_pl.datamodules import load_image

from repaint_pl.cli import eval_main
from repaint_pl.nets import CheckpointError, UNetConfig
from repaint_pl.original_conf import RepaintConfError, translate


def read(out, kind, name):
    return np.array(Image.open(os.path.join(out, kind, name)))


@pytest.mark.slow
def test_eval_writes_the_original_outputs(tmp_path, tiny_ckpt, image_folders):
    out = run(str(tmp_path / "a"), tiny_ckpt, image_folders, "--data.batch_size", "3", "--seed", "4")
    names = sorted(os.listdir(os.path.join(out, "inpainted")))
    assert names == ["astronaut.png", "chelsea.png", "coffee.png"]
    for kind in ("inpainted", "gt", "gt_masked", "gt_keep_mask"):
        assert sorted(os.listdir(os.path.join(out, kind))) == names
    mask = read(out, "gt_keep_mask", "coffee.png")
    assert mask.shape == (32, 32, 3) and set(np.unique(mask)) == {0, 255}
    masked, gt = read(out, "gt_masked", "coffee.png"), read(out, "gt", "coffee.png")
    assert np.all(masked[mask == 0] == 0) and np.array_equal(masked[mask == 255], gt[mask == 255])
    assert yaml.safe_load(open(os.path.join(out, "config.yaml")))["model"]["seed"] == 4
    # the same seed in batches of one gives the same pictures
    again = run(str(tmp_path / "b"), tiny_ckpt, image_folders, "--data.batch_size", "1", "--seed", "4")
    for name in names:
        assert np.array_equal(read(out, "inpainted", name), read(again, "inpainted", name))
    # another seed gives other pictures
    other = run(str(tmp_path / "c"), tiny_ckpt, image_folders, "--seed", "5")
    assert not np.array_equal(read(out, "inpainted", "coffee.png"), read(other, "inpainted", "coffee.png"))


def test_wrong_checkpoint_is_one_line(tmp_path, tiny_ckpt, image_folders):
    with pytest.raises(CheckpointError, match="tiny.pt: weights do not fit"):
        run(str(tmp_path), tiny_ckpt, image_folders, "--model.net.num_channels", "64")


def original_conf(tmp, folders, ckpt, **extra):
    conf = {
        "image_size": 32,
        "num_channels": 32,
        "num_res_blocks": 1,
        "attention_resolutions": "8",
        "channel_mult": "1,2",
        "num_head_channels": 32,
        "num_heads": 4,
        "learn_sigma": True,
        "class_cond": False,
        "use_fp16": False,
        "use_scale_shift_norm": True,
        "resblock_updown": False,
        "use_new_attention_order": False,
        "diffusion_steps": 1000,
        "noise_schedule": "linear",
        "timestep_respacing": "10",
        "classifier_scale": 4.0,
        "clip_denoised": True,
        "model_path": ckpt,
        "inpa_inj_sched_prev": True,
        "use_ddim": False,
        "schedule_jump_params": {"t_T": 10, "n_sample": 1, "jump_length": 2, "jump_n_sample": 2},
        "data": {
            "eval": {
                "mine": {
                    "mask_loader": True,
                    "gt_path": folders[0],
                    "mask_path": folders[1],
                    "image_size": 32,
                    "batch_size": 2,
                    "max_len": 2,
                    "random_flip": False,  # the original flips at random when the key is absent
                    "paths": {k: os.path.join(tmp, "log", k) for k in ("srs", "lrs", "gts", "gt_keep_masks")},
                }
            }
        },
    }
    conf.update(extra)
    path = os.path.join(tmp, "conf.yml")
    with open(path, "w") as f:
        yaml.safe_dump(conf, f)
    return path, conf


@pytest.mark.slow
def test_original_conf_runs_as_it_is(tmp_path, tiny_ckpt, image_folders):
    path, _ = original_conf(str(tmp_path), image_folders, tiny_ckpt)
    eval_main(["--repaint_conf", path, "--accelerator", "cpu", "--progress.refresh_rate", "0"])
    log = tmp_path / "log"
    assert sorted(os.listdir(log / "srs")) == ["astronaut.png", "chelsea.png"]  # max_len 2, sorted order
    assert {"config.yaml", "gt_keep_masks", "gts", "lrs", "srs", "metrics.csv", "summary.md"} <= set(os.listdir(log))
    saved = yaml.safe_load(open(log / "config.yaml"))
    assert saved["ckpt"] == tiny_ckpt and saved["model"]["schedule"]["init_args"]["jump_length"] == 2


def test_original_conf_refuses_what_it_cannot_reproduce(tmp_path, tiny_ckpt, image_folders):
    _, conf = original_conf(str(tmp_path), image_folders, tiny_ckpt, use_ddim=True)
    with pytest.raises(RepaintConfError, match="use_ddim"):
        translate(conf, "x.yml")
    _, conf = original_conf(str(tmp_path), image_folders, tiny_ckpt, inpa_inj_sched_prev_cumnoise=True)
    with pytest.raises(RepaintConfError, match="x.yml: inpa_inj_sched_prev_cumnoise"):
        translate(conf, "x.yml")


def test_original_conf_translation_of_released_setups(tmp_path, tiny_ckpt, image_folders):
    _, conf = original_conf(
        str(tmp_path),
        image_folders,
        tiny_ckpt,
        class_cond=True,
        cond_y=3,
        classifier_path="c.pt",
        classifier_scale=1.0,
        classifier_depth=2,
        noise_schedule="cosine",
    )
    config, ckpt, classifier_ckpt = translate(conf, "x.yml")
    model = config["model"]
    assert (ckpt, classifier_ckpt) == (tiny_ckpt, "c.pt")
    assert model["class_label"] == 3 and model["classifier_scale"] == 1.0 and model["classifier"]["depth"] == 2
    assert model["diffusion"]["noise_schedule"] == "cosine" and model["diffusion"]["variance"] == "learned_range"
    assert config["data"]["init_args"]["mask_threshold"] is None  # soft masks stay soft, as in the original
    assert config["writer"]["inpainted"].endswith("srs")


def test_command_line_errors_are_one_line(tmp_path, tiny_ckpt, image_folders):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [
        sys.executable,
        os.path.join(root, "eval.py"),
        "--ckpt",
        tiny_ckpt,
        "--model.net.preset",
        "celeba256",
        "--model.net.num_channels",
        "64",
        "--data",
        "repaint_pl.datamodules.ImageFolderDataModule",
        "--data.image_path",
        image_folders[0],
        "--writer.out_dir",
        str(tmp_path),
        "--accelerator",
        "cpu",
    ]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tiny_ckpt}: weights do not fit net celeba256")


@pytest.fixture(scope="module")
def grey_ckpt(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("grey") / "tiny_grey.pt")
    torch.save(randomize(UNetConfig(preset="tiny", in_channels=1).build()).state_dict(), path)
    return path


def grey_run(tmp, ckpt, images, *extra):
    out = os.path.join(tmp, "out")
    eval_main(
        [
            "--ckpt",
            ckpt,
            "--model.net.in_channels",
            "1",
            "--data",
            "repaint_pl.datamodules.ImageFolderDataModule",
            "--data.image_path",
            images,
            "--data.image_size",
            "32",
            "--data.mask_types",
            "[ex64]",
            "--writer.out_dir",
            out,
            "--metrics.lpips",
            "[]",
            *TINY_ARGS,
            *extra,
        ]
    )
    return out


@pytest.mark.slow
def test_rgb_images_follow_a_grey_model(tmp_path, grey_ckpt, image_folders):
    out = grey_run(str(tmp_path), grey_ckpt, image_folders[0])
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        picture = Image.open(os.path.join(out, "inpainted", "ex64", name))
        assert picture.mode == "L" and picture.size == (32, 32)
        # the ground truth written is the photo read in grey (PIL's L conversion), as the model saw it
        grey = load_image(os.path.join(image_folders[0], name), 32, channels=1)[0]
        expected = ((grey + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        assert np.array_equal(read(out, "gt", f"ex64/{name}"), expected)


def test_data_channels_against_the_model_is_one_line(tmp_path, grey_ckpt, image_folders):
    with pytest.raises(ValueError, match="data.channels=3 but the model takes 1-channel images"):
        grey_run(str(tmp_path), grey_ckpt, image_folders[0], "--data.channels", "3")
