"""The worst inputs in one batch next to good ones (issue 19): eval.py with the shipped texture model
finishes the good images, reports each bad input once (log line and errors.json) and exits with 1."""

import io
import json
import logging
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from repaint_pl import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "configs", "demo", "texture.yaml")
QUICK = ["--steps", "10", "--jump_length", "2", "--metrics.lpips", "[]", "--progress.refresh_rate", "0"]


def texture(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.normal(size=(size, size)), axis=1) * 8 + 128).clip(0, 255).astype(np.uint8)


def bomb_png(path: str, side: int = 20000) -> None:
    """A ~390 KB PNG of side² black pixels (compressed row by row)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z, row = zlib.compressobj(9), b"\x00" * (side + 1)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))


def hostile_folder(root: str) -> tuple[list[str], list[str]]:
    """Good images in every awkward format, and bad files; returns (good stems, bad file names)."""
    os.makedirs(root)
    Image.fromarray(texture(0)).save(os.path.join(root, "good_a.png"))
    Image.fromarray(texture(1)).save(os.path.join(root, "good_b.jpg"))
    Image.fromarray(texture(2).astype(np.uint16) * 257).save(os.path.join(root, "deep16.png"))  # 16-bit
    Image.fromarray(texture(3).astype(np.float32) / 255).save(os.path.join(root, "unit_float.tiff"))  # F in [0, 1]
    rgb = np.stack([texture(4), texture(5), texture(6)], -1)
    Image.fromarray(rgb).convert("CMYK").save(os.path.join(root, "cmyk.tiff"))
    Image.fromarray(rgb).convert("P").save(os.path.join(root, "palette.png"))
    Image.fromarray(texture(7)).convert("LA").save(os.path.join(root, "grey_alpha.png"))
    good = ["good_a", "good_b", "deep16", "unit_float", "cmyk", "palette", "grey_alpha"]
    # bad: a decompression bomb, floats that are not fractions, a truncated PNG, text named .png, 0 bytes
    bomb_png(os.path.join(root, "bomb.png"))
    Image.fromarray(texture(8).astype(np.float32)).save(os.path.join(root, "levels_float.tiff"))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(9).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "PNG")
    with open(os.path.join(root, "truncated.png"), "wb") as f:
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    with open(os.path.join(root, "notes.png"), "w") as f:
        f.write("these are my notes, not a picture\n")
    open(os.path.join(root, "empty.png"), "wb").close()
    with open(os.path.join(root, "README.txt"), "w") as f:
        f.write("not an image extension: ignored\n")
    os.symlink(".", os.path.join(root, "loop"))  # a link loop: read once, not 41 times, no hang
    bad = ["bomb.png", "levels_float.tiff", "truncated.png", "notes.png", "empty.png"]
    return good, bad


def run_command(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        cli.command(lambda: cli.eval_main(list(args)))
        raise SystemExit(0)
    return exit_.value.code


def test_bad_inputs_next_to_good_ones(tmp_path, caplog):
    images, out = str(tmp_path / "images"), str(tmp_path / "out")
    good, bad = hostile_folder(images)
    caplog.set_level(logging.WARNING)
    args = ["--config", DEMO, "--images", images, "--image_size", "32", "--masks", "thick,ex64", "--out", out, *QUICK]
    assert run_command(*args) == 1  # finished, but something failed
    for kind in ("thick", "ex64"):
        assert sorted(os.listdir(os.path.join(out, "inpainted", kind))) == sorted(f"{s}.png" for s in good)
    errors = json.load(open(os.path.join(out, "errors.json")))
    assert sorted(os.path.basename(e["file"]) for e in errors) == sorted(bad)  # one entry per bad input
    assert all("\n" not in e["error"] and e["error"].startswith(e["file"] + ": ") for e in errors)
    assert all(sorted(e["outputs"]) == sorted(f"{k}/{os.path.splitext(os.path.basename(e['file']))[0]}.png"
                                              for k in ("thick", "ex64")) for e in errors)  # fmt: skip
    reasons = {os.path.basename(e["file"]): e["error"] for e in errors}
    assert "400,000,000 pixels, over the limit" in reasons["bomb.png"]
    assert "empty file (0 bytes)" in reasons["empty.png"]
    assert "expected fractions in [0, 1]" in reasons["levels_float.tiff"]
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(skipped) == len(bad)  # one log line per bad input, not one per mask type
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["mask_types"]["all"]["images"] == 2 * len(good) and len(summary["errors"]) == len(bad)
    assert "nan" not in open(os.path.join(out, "summary.md")).read()
    # the good pictures are the files' pixels: the 16-bit and float files read like 8-bit ones
    gt = np.asarray(Image.open(os.path.join(out, "gt", "thick", "deep16.png")))
    assert 40 < gt.mean() < 215 and gt.std() > 5


def test_a_run_with_only_a_bad_input_fails(tmp_path):
    images, out = tmp_path / "images", str(tmp_path / "out")
    images.mkdir()
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    assert run_command("--config", DEMO, "--images", str(images), "--image_size", "32", "--masks", "ex64",
                       "--out", out, *QUICK) == 1  # fmt: skip
    assert open(os.path.join(out, "summary.md")).read().startswith("No input was inpainted.")
    assert [os.path.basename(e["file"]) for e in json.load(open(os.path.join(out, "errors.json")))] == ["broken.png"]


def test_mask_files_with_the_grey_texture_model_and_a_changed_input_list(tmp_path):
    """--mask FILE and the original layout run with the 1-channel texture model (a conv2d traceback
    before); in that layout (ids = positions) a rerun after adding an image is refused in one line."""
    gts, masks = tmp_path / "gts", tmp_path / "masks"
    gts.mkdir(), masks.mkdir()
    hole = np.full((40, 40), 255, np.uint8)
    hole[10:30, 10:30] = 0
    for i in range(2):
        Image.fromarray(np.stack([texture(i)] * 3, -1)).save(gts / f"t{i}.png")  # RGB files, grey model
        Image.fromarray(hole).save(masks / f"t{i}_mask.png")
    out = str(tmp_path / "one_mask")
    cli.eval_main(["--config", DEMO, "--images", str(gts), "--image_size", "32",
                   "--mask", str(masks / "t0_mask.png"), "--out", out, *QUICK])  # fmt: skip
    assert sorted(os.listdir(os.path.join(out, "inpainted"))) == ["t0.png", "t1.png"]
    layout = ["--config", DEMO, "--data", "repaint_pl.datamodules.InpaintFolderDataModule", "--data.gt_path",
              str(gts), "--data.mask_path", str(masks), "--data.image_size", "32", "--out", str(tmp_path / "layout"),
              *QUICK]  # fmt: skip
    done = cli.eval_main(layout)
    assert done.exit_status == 0 and sorted(os.listdir(tmp_path / "layout" / "inpainted")) == ["t0.png", "t1.png"]
    assert json.load(open(tmp_path / "layout" / "errors.json")) == []
    shutil.copy(gts / "t0.png", gts / "a_new.png")  # sorts first: every index would shift
    shutil.copy(masks / "t0_mask.png", masks / "a_new_mask.png")
    with pytest.raises(ValueError, match="layout: made from another input list .added 2"):
        cli.eval_main(layout)
