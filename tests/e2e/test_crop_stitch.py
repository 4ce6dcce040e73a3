"""Big photos (issue 22): eval.py --crop_to_mask inpaints a 3000×2000 picture's hole in one model-size crop
with the shipped texture model and writes the full-resolution picture with every known pixel's byte."""

import json
import os

import numpy as np
import torch
from PIL import Image

from repaint_pl import cli
from repaint_pl.nets.adm import UNetModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "configs", "demo", "texture.yaml")
QUICK = ["--steps", "4", "--jump_length", "1", "--jump_n_sample", "1", "--metrics.lpips", "[]",
         "--progress.refresh_rate", "0"]  # fmt: skip


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A grey (the texture model's channels) uint8 picture: smooth stripes plus noise."""
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(w) / 17.0)[None, :] * 60 + np.cos(np.arange(h) / 23.0)[:, None] * 40 + 128
    return (x + rng.normal(0, 8, (h, w))).clip(0, 255).astype(np.uint8)


def write(root, name: str, picture: np.ndarray, holes) -> np.ndarray:
    keep = np.full(picture.shape, 255, np.uint8)
    for t, l, b, r in holes:
        keep[t:b, l:r] = 0
    Image.fromarray(picture).save(os.path.join(root, "images", f"{name}.png"))
    Image.fromarray(keep).save(os.path.join(root, "masks", f"{name}.png"))
    return keep == 255


class NetCalls:
    """Counts forward calls of the ADM network and the pictures they carry (a global forward hook)."""

    def __enter__(self):
        self.calls, self.pictures = 0, 0

        def hook(module, args, output):
            if isinstance(module, UNetModel):
                self.calls += 1
                self.pictures += int(args[0].shape[0])

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_a_big_photo_is_inpainted_in_one_crop_per_hole_region(tmp_path):
    for folder in ("images", "masks"):
        os.makedirs(tmp_path / folder)
    big = photo(2000, 3000, 0)
    keep_big = write(tmp_path, "big", big, [(1700, 2700, 1780, 2800)])  # 100×80, far off-centre
    two = photo(700, 900, 1)
    keep_two = write(tmp_path, "two", two, [(40, 40, 70, 80), (600, 780, 640, 860)])  # two holes far apart
    out = str(tmp_path / "out")
    args = ["--config", DEMO, "--images", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"),
            "--image_size", "64", "--crop_to_mask", "32", "--data.batch_size", "4", "--out", out, *QUICK,
            "--metrics.enabled", "false"]  # fmt: skip  (SSIM of a 6-megapixel picture: seconds; scored below)
    with NetCalls() as net:
        run = cli.eval_main(args)
    assert run.exit_status == 0
    per_crop = run.model.network_calls_per_image
    # one batch of three model-size crops: the network calls of one crop, each carrying three pictures
    assert net.calls == per_crop and net.pictures == 3 * per_crop
    for name, picture, keep, crops in (("big", big, keep_big, 1), ("two", two, keep_two, 2)):
        result = np.asarray(Image.open(os.path.join(out, "inpainted", f"{name}.png")))
        assert result.shape == picture.shape and result.dtype == np.uint8
        assert np.array_equal(result[keep], picture[keep])  # every known pixel is the input's byte
        assert (result[~keep] != picture[~keep]).mean() > 0.5  # the hole was filled
        assert np.array_equal(np.asarray(Image.open(os.path.join(out, "gt", f"{name}.png"))), picture)
        mask = np.asarray(Image.open(os.path.join(out, "gt_keep_mask", f"{name}.png")))
        assert np.array_equal(mask == 255, keep)
        meta = json.load(open(os.path.join(out, "meta", f"{name}.json")))
        assert meta["network_calls"] == crops * per_crop and len(meta["crops"]) == crops
        assert meta["size"] == list(picture.shape)
    assert not os.path.exists(os.path.join(out, "staging"))  # staged crops removed once stitched
    # run again with one picture's outputs gone: only its two crops are sampled again
    os.remove(os.path.join(out, "meta", "two.json"))
    with NetCalls() as again:
        assert cli.eval_main(args).exit_status == 0
    assert again.calls == per_crop and again.pictures == 2 * per_crop
    assert np.array_equal(np.asarray(Image.open(os.path.join(out, "inpainted", "two.png")))[keep_two], two[keep_two])


def test_two_processes_split_a_pictures_crops_and_write_the_one_process_pictures(tmp_path):
    """DDP on two CPU processes: the crops of 'two' land on different processes; the stitched pictures (and
    everything else written) are byte-equal to one process's."""
    import subprocess
    import sys

    for folder in ("images", "masks"):
        os.makedirs(tmp_path / folder)
    write(tmp_path, "one", photo(300, 400, 2), [(100, 100, 150, 160)])
    write(tmp_path, "two", photo(700, 900, 1), [(40, 40, 70, 80), (600, 780, 640, 860)])
    common = ["--config", DEMO, "--images", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"),
              "--image_size", "64", "--crop_to_mask", "32", *QUICK]  # fmt: skip
    ddp = ["--devices", "2", "--accelerator", "cpu", "--trainer.strategy", "ddp", "--out", str(tmp_path / "ddp")]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *common, *ddp], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not os.path.exists(tmp_path / "ddp" / "staging")  # both processes unstaged; neither tripped on the other
    assert cli.eval_main([*common, "--out", str(tmp_path / "one")]).exit_status == 0
    for kind in ("inpainted", "gt", "gt_masked", "gt_keep_mask"):
        for name in ("one.png", "two.png"):
            a, b = (open(tmp_path / run / kind / name, "rb").read() for run in ("ddp", "one"))
            assert a == b, f"{kind}/{name}"
    for run in ("ddp", "one"):  # one row per picture, scored at full resolution
        rows = open(tmp_path / run / "metrics.csv").read().splitlines()
        assert len(rows) == 3 and {r.split(",")[0] for r in rows[1:]} == {"one.png", "two.png"}
    assert not os.path.exists(tmp_path / "ddp" / "staging")
