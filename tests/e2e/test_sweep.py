"""The sweep runner: points run as eval.py runs, then one CSV, plots, picture tables, diversity; configs parse."""

import csv
import glob
import itertools
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from repaint_pl.apps.measure import pairwise_fill_distance
from repaint_pl.apps.sweep import SweepConfigError, check, load_sweep, main, points
from repaint_pl.paths import ROOT
from repaint_pl.schedules import count_network_calls, jump_times


def tiny_sweep(tmp, ckpt, folders, **extra):
    spec = {
        "eval": [
            f"--ckpt={ckpt}",
            "--data=repaint_pl.datamodules.InpaintFolderDataModule",
            f"--data.gt_path={folders[0]}",
            f"--data.mask_path={folders[1]}",
            "--data.image_size=32",
            "--model.net.preset=tiny",
            "--steps=10",
            "--model.schedule=JumpSchedule",
            "--jump_length=2",
            "--jump_n_sample=2",
            "--accelerator=cpu",
            "--metrics.lpips=[vgg]",
        ],
        "axes": {"seed": [1, 2]},
        "diversity": "seed",
        "plots": [
            {"x": "network_calls", "y": ["psnr_fill", "1-ssim_fill", "lpips_vgg"]},
            {"bars": "seed", "y": ["psnr"]},
        ],
        "tables": [{"columns": "seed", "rows": 2}],
        **extra,
    }
    path = os.path.join(tmp, "sweep.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(spec, f)
    return path


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def png(path):
    return np.asarray(Image.open(path), dtype=np.float64) / 255


@pytest.mark.slow
def test_a_branching_sweep_writes_csv_plots_tables_and_diversity(tmp_path, tiny_ckpt, image_folders, capsys):
    path = tiny_sweep(str(tmp_path), tiny_ckpt, image_folders, branch={"at": 10})
    out = str(tmp_path / "out")
    main([path, "--out", out])
    rows = read_csv(os.path.join(out, "sweep.csv"))
    assert len(rows) == 6 and {r["point"] for r in rows} == {"seed=1", "seed=2"}
    # every point branches from the trunk's state after transition 10 and pays only for the rest
    times = jump_times(10, 1, 2, 2)
    trunk = read_csv(os.path.join(out, "trunk", "metrics.csv"))
    assert {float(r["network_calls"]) for r in trunk} == {count_network_calls(times)}
    rest = jump_times(times[11] + 1, 1, 2, 2)  # the configured schedule from the saved level
    assert {float(r["network_calls"]) for r in rows} == {count_network_calls(rest)}
    assert sorted(os.listdir(os.path.join(out, "plots"))) == [
        "bars_seed.png",
        "psnr_fill_1-ssim_fill_lpips_vgg_vs_network_calls.png",
    ]
    assert os.listdir(os.path.join(out, "tables")) == ["seed.png"]
    summary = open(os.path.join(out, "summary.md")).read()
    assert "no lpips_vgg values" in summary or "lpips_vgg" in rows[0]
    # diversity: the mean pairwise RMS difference in the filled region, recomputed from the PNGs
    div = {r["name"]: float(r["pixel_rms_fill"]) for r in read_csv(os.path.join(out, "diversity.csv"))}
    a, b = (png(os.path.join(out, "points", p, "inpainted", "coffee.png")) for p in ("seed=1", "seed=2"))
    fill = png(os.path.join(out, "points", "seed=1", "gt_keep_mask", "coffee.png")) < 0.5
    assert div["coffee.png"] == pytest.approx(np.sqrt(((a - b)[fill] ** 2).mean()), rel=1e-5)
    assert div["coffee.png"] > 0
    # started again: every point is skipped, the results stay
    capsys.readouterr()
    main([path, "--out", out])
    assert capsys.readouterr().out.count("done before, skipped") == 2


def test_pairwise_fill_distance_is_the_mean_over_pairs():
    import torch

    samples = torch.rand(3, 1, 4, 4)
    keep = torch.zeros(1, 4, 4)
    keep[:, :2] = 1
    pairs = [((samples[i] - samples[j])[:, 2:] ** 2).mean().sqrt() for i, j in itertools.combinations(range(3), 2)]
    assert pairwise_fill_distance(samples, keep) == pytest.approx(float(sum(pairs) / 3), rel=1e-6)


def test_grid_and_zip_points(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("eval: []\naxes: {steps: [10, 20], jump_n_sample: [1, 2, 3]}\n")
    grid = points(load_sweep(str(path)))
    assert [p.name for p in grid][:2] == ["steps=10_jump_n_sample=1", "steps=10_jump_n_sample=2"] and len(grid) == 6
    assert grid[4].args == ["--steps=20", "--jump_n_sample=2"]
    path.write_text("eval: []\nmode: zip\naxes: {steps: [10, 20], v: [{label: a, args: [--x=1, --y=2]}, {label: b}]}\n")
    zipped = points(load_sweep(str(path)))
    assert [(p.name, p.args) for p in zipped] == [
        ("steps=10_v=a", ["--steps=10", "--x=1", "--y=2"]),
        ("steps=20_v=b", ["--steps=20"]),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("axes: {steps: [1]}\nplot: []\n", "unknown field"),
        ("axes: {}\n", "axes: expected a mapping"),
        ("axes: {steps: 5}\n", "axes.steps: expected a non-empty list"),
        ("axes: {a: [1], b: [1, 2]}\nmode: zip\n", "mode zip needs axes of one length"),
        ("axes: {a: [1]}\ntables: [{columns: b}]\n", r"tables\[0\].columns"),
        ("axes: {a: [1]}\ndiversity: seed\n", "diversity: 'seed' is not an axis"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SweepConfigError, match=message):
        load_sweep(str(path))


def test_a_point_that_does_not_parse_is_reported(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("eval: [--config=configs/demo/texture.yaml]\naxes: {model.no_such_option: [1]}\n")
    with pytest.raises(SweepConfigError, match="do not parse"):
        check(load_sweep(str(path)), [])


def test_check_prepares_a_pretrained_point_as_eval_does(tmp_path):
    """``--pretrained DIR`` stands for a denoiser config that eval.py puts first; ``--steps`` then sets that
    denoiser's steps.  (A check of its own that skipped the preparation refused this valid point.)"""
    from repaint_pl.apps.sweep import parse_eval_args
    from repaint_pl.apps.tiny import tiny_ddpm_pipeline

    folder = str(tmp_path / "ddpm")
    tiny_ddpm_pipeline().save_pretrained(folder)
    path = tmp_path / "s.yaml"
    path.write_text(
        f"eval: [--pretrained={folder}, --data=repaint_pl.datamodules.TextureDataModule]\naxes: {{steps: [5, 7]}}\n"
    )
    assert check(load_sweep(str(path)), []) == 2
    model = parse_eval_args([f"--pretrained={folder}", "--data=repaint_pl.datamodules.TextureDataModule", "--steps=7"])
    assert model["model"]["denoiser"]["class_path"].endswith("DiffusersDenoiser")
    assert model["model"]["denoiser"]["init_args"]["steps"] == 7


def test_check_prepares_an_original_conf_point_as_eval_does(tmp_path, tiny_ckpt, image_folders):
    """``--repaint_conf`` brings its model, schedule, data and checkpoint first, as in eval.py, and an axis
    overrides them.  (A check of its own that skipped the translation found no data and refused the point.)"""
    from repaint_pl.apps.sweep import parse_eval_args

    conf = {
        "image_size": 32, "num_channels": 32, "num_res_blocks": 1, "attention_resolutions": "8",
        "channel_mult": "1,2", "num_head_channels": 32, "learn_sigma": True, "class_cond": False,
        "diffusion_steps": 1000, "noise_schedule": "linear", "timestep_respacing": "10", "model_path": tiny_ckpt,
        "schedule_jump_params": {"t_T": 10, "n_sample": 1, "jump_length": 2, "jump_n_sample": 2},
        "data": {"eval": {"mine": {
            "mask_loader": True, "gt_path": image_folders[0], "mask_path": image_folders[1], "image_size": 32,
            "batch_size": 1, "random_flip": False, "paths": {"srs": str(tmp_path / "log" / "srs")},
        }}},
    }  # fmt: skip
    (tmp_path / "conf.yml").write_text(yaml.safe_dump(conf))
    path = tmp_path / "s.yaml"
    path.write_text(f"eval: [--repaint_conf={tmp_path / 'conf.yml'}]\naxes: {{jump_n_sample: [1, 3]}}\n")
    assert check(load_sweep(str(path)), []) == 2
    config = parse_eval_args([f"--repaint_conf={tmp_path / 'conf.yml'}", "--jump_n_sample=3"])
    assert config["ckpt"] == tiny_ckpt and config["model"]["diffusion"]["timestep_respacing"] == "10"
    assert config["model"]["schedule"]["init_args"]["jump_length"] == 2
    assert config["model"]["schedule"]["init_args"]["jump_n_sample"] == 3
    assert config["data"]["init_args"]["gt_path"] == image_folders[0]


@pytest.mark.parametrize("conf", ["missing.yml", "broken.yml"])
def test_check_reads_an_original_conf_as_eval_does(tmp_path, conf):
    """``--repaint_conf`` is translated as eval.py translates it: a conf eval.py would refuse fails the check."""
    (tmp_path / "broken.yml").write_text("model_path: [unclosed\n")
    path = tmp_path / "s.yaml"
    path.write_text(f"eval: [--repaint_conf={tmp_path / conf}]\naxes: {{jump_n_sample: [1, 2]}}\n")
    with pytest.raises(SweepConfigError, match="do not parse"):
        check(load_sweep(str(path)), [])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "experiments", "*.yaml"))))
def test_every_experiment_config_parses(path):
    sweep = load_sweep(path)
    assert len(points(sweep)) >= 2
    assert check(sweep, []) >= 1


def test_the_readme_example_parses(tmp_path):
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("## The seed's experiments") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    (tmp_path / "example.yaml").write_text(example)
    sweep = load_sweep(str(tmp_path / "example.yaml"))
    assert len(points(sweep)) == 12 and check(sweep, []) >= 1
