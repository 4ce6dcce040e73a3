"""The traps a new user fell into on eval.py's command line (issue 22), each refused or fixed before anything
is built or written: no weights, a mask type typo, --steps from a config file, errors in a notebook."""

from __future__ import annotations

import os

import pytest
import yaml
from conftest import TINY_ARGS

from repaint_pl.apps.tiny import tiny_ddpm_pipeline
from repaint_pl.cli import UsageError, eval_cli, eval_main, load_model, prepare_eval_argv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "configs", "demo", "texture.yaml")


def test_a_run_without_weights_is_refused_before_anything_is_written(tmp_path, image_folders):
    out = tmp_path / "out"
    args = ["--images", image_folders[0], "--image_size", "32", "--out", str(out), *TINY_ARGS]
    with pytest.raises(UsageError, match="no weights: give --ckpt FILE .*--random_weights true") as err:
        eval_main(args)
    assert "\n" not in str(err.value) and not out.exists()
    cli = eval_cli(prepare_eval_argv(args + ["--random_weights", "true"]))  # smoke tests may, when they say so
    assert cli.model.net is not None


def test_a_mask_type_typo_is_caught_at_parse_time_with_the_closest_name(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=r"data.mask_types: unknown mask type 'thikc' \(did you mean thick\?\)"):
        eval_main(["--config", DEMO, "--masks", "thick,thikc", "--out", str(out)])
    assert not out.exists()  # no fingerprint to block the corrected rerun


def test_an_unknown_option_names_the_closest_one():
    with pytest.raises(UsageError, match=r"--jump_lenght 5 \(did you mean --jump_length\?\)"):
        eval_cli(prepare_eval_argv(["--config", DEMO, "--jump_lenght", "5"]))


def test_steps_applies_to_the_model_of_a_config_file(tmp_path, image_folders):
    """--steps reaches a diffusers denoiser given by a config file (it set an unused ADM key before)."""
    folder = str(tmp_path / "ddpm")
    tiny_ddpm_pipeline().save_pretrained(folder)
    config = tmp_path / "ddpm.yaml"
    denoiser = {"class_path": "repaint_pl.denoisers.DiffusersDenoiser", "init_args": {"pretrained": folder}}
    config.write_text(yaml.safe_dump({"model": {"denoiser": denoiser}}))
    data = ["--images", image_folders[0], "--out", str(tmp_path / "o")]
    cli = eval_cli(prepare_eval_argv(["--config", str(config), "--steps", "7", *data]))
    assert cli.model.sampling.num_timesteps == 7
    assert cli.config["model"]["denoiser"]["init_args"]["steps"] == 7 and cli.config["steps"] is None
    adm = eval_cli(prepare_eval_argv(["--config", DEMO, "--steps", "20", "--out", str(tmp_path / "o")]))
    assert adm.model.sampling.num_timesteps == 20 and adm.config["model"]["diffusion"]["timestep_respacing"] == "20"


def test_load_model_raises_exceptions_a_notebook_can_catch(tmp_path):
    for args in (["--ckpt", str(tmp_path / "missing.pt")], ["--config", DEMO, "--bogus", "1"]):
        with pytest.raises((ValueError, OSError)):
            load_model(args)


def test_pictures_take_the_models_size_when_the_data_does_not_say(tmp_path, image_folders):
    """--images without --image_size: the size the model was made for (the texture net's 32²), not a fixed 256."""
    from PIL import Image

    out = tmp_path / "out"
    args = ["--config", DEMO, "--images", image_folders[0], "--masks", "thick", "--steps", "4"]
    eval_main(args + ["--jump_n_sample", "1", "--out", str(out), "--progress.refresh_rate", "0"])
    sizes = {Image.open(p).size for p in (out / "inpainted" / "thick").iterdir()}
    assert sizes == {(32, 32)}


def test_an_image_folder_option_without_image_folders_says_what_to_give():
    with pytest.raises(UsageError, match="--crop_to_mask is an option of image folders: give --images DIR"):
        eval_cli(prepare_eval_argv(["--config", DEMO, "--crop_to_mask", "32"]))
