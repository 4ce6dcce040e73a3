"""Evaluation at scale on CPU: metrics, 2 processes = 1 process, resuming, bad inputs, score-only mode."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_folder_pair
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from repaint_pl.scoring import score_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow


def eval_args(ckpt, images, out, *extra):
    return [
        sys.executable,
        os.path.join(ROOT, "eval.py"),
        "--ckpt",
        ckpt,
        "--model.net.preset",
        "tiny",
        "--model.diffusion.timestep_respacing",
        "10",
        "--model.schedule.t_T",
        "10",
        "--model.schedule.jump_length",
        "2",
        "--model.schedule.jump_n_sample",
        "2",
        "--data",
        "repaint_pl.datamodules.ImageFolderDataModule",
        "--data.image_path",
        images,
        "--data.image_size",
        "32",
        "--data.mask_types",
        "[thick, nn2]",
        "--writer.out_dir",
        out,
        "--metrics.lpips",
        "[alex]",
        "--metrics.lpips_random",
        "true",
        "--accelerator",
        "cpu",
        "--progress.refresh_rate",
        "0",
        "--seed",
        "3",
        *extra,
    ]


def run(args, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def pictures(out):
    found = {}
    for kind in ("inpainted", "gt", "gt_masked", "gt_keep_mask"):
        for d, _, files in os.walk(os.path.join(out, kind)):
            for f in files:
                found[os.path.relpath(os.path.join(d, f), out)] = np.array(Image.open(os.path.join(d, f)), dtype=int)
    return found


def rows(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return {r["name"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_ckpt):
    root = tmp_path_factory.mktemp("scale")
    images, _ = write_folder_pair(str(root))
    out = str(root / "one")
    run(
        eval_args(
            tiny_ckpt,
            images,
            out,
            "--data.batch_size",
            "4",
            "--trainer.logger",
            "CSVLogger",
            "--trainer.logger.save_dir",
            str(root / "logs"),
            "--trainer.logger.name",
            "eval",
        )
    )
    return images, out


def test_metrics_agree_with_an_independent_computation(reference):
    _, out = reference
    table = rows(out)
    assert len(table) == 6 and {r["mask_type"] for r in table.values()} == {"thick", "nn2"}
    for name, row in table.items():
        gt = np.asarray(Image.open(os.path.join(out, "gt", name)), dtype=np.float64) / 255
        res = np.asarray(Image.open(os.path.join(out, "inpainted", name)), dtype=np.float64) / 255
        fill = np.asarray(Image.open(os.path.join(out, "gt_keep_mask", name)))[..., 0] < 128
        assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, res, data_range=1), abs=1e-3)
        ssim = structural_similarity(
            gt, res, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert float(row["ssim"]) == pytest.approx(ssim, abs=1e-4)
        mse_fill = ((gt - res) ** 2)[fill].mean()
        assert float(row["psnr_fill"]) == pytest.approx(10 * np.log10(1 / mse_fill), abs=1e-3)
        assert float(row["network_calls"]) == 18 and float(row["seconds"]) > 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["mask_types"]["thick"]["images"] == 3 and "lpips_alex_fill" in summary["mask_types"]["all"]
    assert (
        os.path.isfile(os.path.join(out, "grids", "nn2.png"))
        and "| thick | 3 |" in open(os.path.join(out, "summary.md")).read()
    )


def test_metrics_reach_the_logger(reference):
    _, out = reference
    logged = os.path.join(os.path.dirname(out), "logs", "eval", "version_0", "metrics.csv")
    with open(logged) as f:
        header = f.readline()
    assert "thick/psnr" in header and "all/lpips_alex_fill" in header


def test_fid_and_kid_per_mask_type(reference):
    import torch

    from repaint_pl.scoring import fid_kid, output_dirs, result_names

    class Features(torch.nn.Module):  # a small random feature extractor instead of Inception (no weights here)
        num_features = 8

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)

        def forward(self, x):
            return self.conv(x.float()).mean(dim=(2, 3)).double()

    _, out = reference
    dirs = output_dirs(out)
    names = [n for n in result_names(dirs) if n.startswith("thick/")]
    assert fid_kid(dict(dirs, inpainted=dirs["gt"]), names, Features())["fid"] == pytest.approx(0, abs=1e-3)
    scores = fid_kid(dirs, names, Features())
    assert scores["fid"] > 0 and set(scores) == {"fid", "kid", "kid_std"}


def test_two_processes_write_the_same_as_one(reference, tiny_ckpt, tmp_path):
    images, one = reference
    two = str(tmp_path / "two")
    run(eval_args(tiny_ckpt, images, two, "--data.batch_size", "2", "--devices", "2", "--trainer.strategy", "ddp"))
    a, b = pictures(one), pictures(two)
    assert a.keys() == b.keys() and len(a) == 24
    assert max(np.abs(a[k] - b[k]).max() for k in a) <= 1
    assert rows(two).keys() == rows(one).keys()  # both processes' rows merged into one table
    ids = [json.load(open(os.path.join(d, f)))["id"] for d, _, fs in os.walk(os.path.join(two, "meta")) for f in fs]
    assert len(ids) == len(set(ids)) == 6  # every input exactly once


def test_killed_run_resumes_to_the_same_outputs(reference, tiny_ckpt, tmp_path):
    images, one = reference
    out = str(tmp_path / "resumed")
    args = eval_args(tiny_ckpt, images, out, "--data.batch_size", "1")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = os.path.join(out, "meta")
    deadline = time.time() + 300
    while not (os.path.isdir(meta) and any(fs for _, _, fs in os.walk(meta))) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = pictures(out)
    assert 0 < len(first) < 24
    run(args)
    again = pictures(out)
    # the uninterrupted run at the same batch size (on CPU a batch of 4 and 4 batches of 1 differ by float
    # rounding inside the network, ~1e-7, which can move a pixel by 1/255: resuming is what is tested here)
    whole = str(tmp_path / "whole")
    run(eval_args(tiny_ckpt, images, whole, "--data.batch_size", "1"))
    reference_pictures = pictures(whole)
    assert again.keys() == reference_pictures.keys() == pictures(one).keys()
    assert all(np.array_equal(again[k], reference_pictures[k]) for k in again)
    assert rows(out).keys() == rows(one).keys()


def test_bad_image_is_reported_and_the_rest_finishes(tiny_ckpt, tmp_path):
    images, _ = write_folder_pair(str(tmp_path))
    with open(os.path.join(images, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    out = str(tmp_path / "out")
    proc = subprocess.run(eval_args(tiny_ckpt, images, out, "--data.batch_size", "4"), capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-3000:]  # finished, but an input failed
    assert proc.stderr.count("broken.png: unreadable or corrupt image") == 1  # once, not once per mask type
    assert len(rows(out)) == 6
    errors = json.load(open(os.path.join(out, "errors.json")))
    assert len(errors) == 1 and errors[0]["file"].endswith("broken.png") and len(errors[0]["outputs"]) == 2
    assert "skipped" in open(os.path.join(out, "summary.md")).read()


def test_score_only_mode_reproduces_the_table(reference, tmp_path, monkeypatch):
    """Rescoring a copy of an output folder gives the run's own per-image values, and summaries that are the
    means of its rows; without backbone weights LPIPS is skipped in one line and the rest is scored."""
    _, out = reference
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)  # the shared reference folder stays as the run wrote it
    written = rows(out)
    for name in ("metrics.csv", "summary.json", "summary.md"):
        os.remove(os.path.join(copy, name))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))  # downloads are off in the tests (conftest)
    summary = score_folder(copy, lpips=["alex"], lpips_random=False)
    assert len(summary["notes"]) == 1 and summary["notes"][0].startswith("LPIPS-alex skipped: alex weights")
    rescored = rows(copy)
    assert rescored.keys() == written.keys() and "lpips_alex" not in next(iter(rescored.values()))
    for name, row in rescored.items():
        assert row["mask_type"] == written[name]["mask_type"]
        for key in ("psnr", "psnr_fill", "ssim", "ssim_fill", "network_calls"):
            assert float(row[key]) == pytest.approx(float(written[name][key]), rel=1e-6), (name, key)
    for kind in ("thick", "nn2", "all"):
        group = [r for r in rescored.values() if kind in ("all", r["mask_type"])]
        for key in ("psnr", "ssim_fill"):
            values = np.array([float(r[key]) for r in group])
            stats = summary["mask_types"][kind]
            assert stats["images"] == len(group) and stats[key]["mean"] == pytest.approx(values.mean(), rel=1e-9)
            assert stats[key]["std"] == pytest.approx(values.std(), rel=1e-9, abs=1e-12)
    assert json.load(open(os.path.join(copy, "summary.json")))["mask_types"] == summary["mask_types"]
    assert "lpips_alex" in next(iter(rows(out).values()))  # the reference kept its columns
