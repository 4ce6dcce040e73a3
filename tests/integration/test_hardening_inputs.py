"""Careless and hostile inputs (issue 19, the input half): argument order, masks of grey models, link
loops, bit depths, decompression bombs, EXIF, stable sample ids, summaries of failed runs."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import write_folder_pair
from PIL import Image
from repaint_pl.datamodules import ImageFolderDataModule, InpaintFolderDataModule
from repaint_pl.datamodules.folders import MASK_CODES, check_input_list, mask_code, name_index, sample_id
from repaint_pl.datamodules.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageFileError,
    image_size_of,
    list_images,
    load_image,
    read_image,
)

from repaint_pl import cli, scoring

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "configs", "demo", "texture.yaml")


def items(dm):
    dm.setup("predict")
    return [dm.dataset[i] for i in range(len(dm.dataset))]


def gradient(h=24, w=32) -> np.ndarray:
    return np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))


def png_of_size(path, width: int, height: int, pixels: bool = True) -> str:
    """A grey 8-bit PNG of ``width × height`` black pixels, compressed row by row (a 20000² one is ~390 KB);
    ``pixels=False``: the header alone (no image data at all)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b""
    if pixels:
        z, row = zlib.compressobj(9), b"\x00" * (width + 1)
        data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + header + (chunk(b"IDAT", data) if pixels else b"") + chunk(b"IEND", b""))
    return str(path)


# ---------------------------------------------------------------- 1: argument order


def test_short_flags_expand_where_they_stand():
    argv = ["--masks", "thick", "--config", "a.yaml", "--images", "D", "--image_size", "32", "--config", "b.yaml"]
    assert cli.expand_short_flags(argv) == [
        "--config",
        "a.yaml",
        f"--data={cli.IMAGE_FOLDER}",
        "--data.image_path=D",
        "--data.mask_types=[thick]",  # a data flag before --images applies right after it
        "--data.image_size=32",
        "--config",
        "b.yaml",  # later wins: a config after --images replaces its data
    ]
    assert "later one winning" in cli.SOURCE_ORDER and "later one wins" in " ".join(cli.__doc__.split())


def test_images_after_a_config_run_on_the_folder(tmp_path, capsys):
    """``--config demo.yaml --images DIR --image_size 32`` reads DIR (it ran the config's crops before, and
    ``--image_size`` ended in usage lines); a flag the config's data class lacks is one line."""
    gts, _ = write_folder_pair(str(tmp_path))
    out = str(tmp_path / "out")
    made = cli.eval_cli(cli.prepare_eval_argv(["--config", DEMO, "--images", gts, "--image_size", "32", "--out", out]))
    data = made.datamodule
    assert isinstance(data, ImageFolderDataModule) and (data.image_path, data.image_size) == (gts, 32)
    assert data.mask_types == ["thick", "thin", "nn2", "ev2li", "genhalf", "ex64"]  # the rest of the config stays
    with pytest.raises(cli.UsageError) as err:
        cli.eval_cli(cli.prepare_eval_argv(["--config", DEMO, "--image_size", "32", "--out", out]))
    message = str(err.value)
    assert "\n" not in message and "image_size" in message and "TextureDataModule" in message
    with pytest.raises(SystemExit) as exit_:
        cli.eval_cli(["--help"])
    assert exit_.value.code == 0
    assert "later one winning" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------- 2: mask files with a grey model


def test_mask_files_follow_the_image_channels(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path))
    grey = ImageFolderDataModule(gts, image_size=32, mask_path=masks, channels=1)
    got = items(grey)
    assert all(g["error"] == "" for g in got)
    assert all(g["image"].shape == (1, 32, 32) and g["keep_mask"].shape == (1, 32, 32) for g in got)
    one_mask = os.path.join(masks, "coffee_mask.png")
    one_file = items(ImageFolderDataModule(gts, image_size=32, mask_path=one_mask, channels=1))
    assert all(g["keep_mask"].shape == (1, 32, 32) for g in one_file)
    layout = InpaintFolderDataModule(gts, masks, image_size=32)
    layout.channels = 1  # as a 1-channel model makes it (resolve_channels)
    assert all(g["keep_mask"].shape == (1, 32, 32) for g in items(layout))
    rgb = items(InpaintFolderDataModule(gts, masks, image_size=32))
    assert rgb[0]["keep_mask"].shape == (3, 32, 32)  # the original's 3-channel masks for RGB images


# ---------------------------------------------------------------- 3: link loops


def test_link_loops_list_each_file_once(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(gradient()).save(root / name)
    os.symlink(".", root / "self")  # a loop: self/self/self/…
    os.symlink("..", root / "sub" / "up")  # and another one, two levels deep
    os.symlink("a.png", root / "also_a.png")  # the same file twice
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(gradient()).save(outside / "c.png")
    os.symlink(outside, root / "linked")  # a linked folder elsewhere is followed, once
    os.symlink(root, outside / "back")
    assert list_images(str(root)) == [str(root / "a.png"), str(root / "linked" / "c.png"), str(root / "sub" / "b.png")]


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(ImageFileError, match=r"notes.txt: not an image file \(.jpg.*\) nor a folder"):
        list_images(str(notes))
    with pytest.raises(ImageFileError, match="missing: no such file or folder"):
        list_images(str(tmp_path / "missing"))


# ---------------------------------------------------------------- 5, 6: bit depths, modes, bombs, EXIF


def test_sixteen_bit_and_float_images_read_like_their_8_bit_version(tmp_path):
    eight = gradient()
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # I;16
    Image.fromarray(eight.astype(np.float32) / 255).save(tmp_path / "float.tiff")  # F in [0, 1]
    expected = load_image(str(tmp_path / "eight.png"), 16, channels=1)
    for name in ("sixteen.png", "float.tiff"):
        for channels in (1, 3):
            got = load_image(str(tmp_path / name), 16, channels=channels)
            assert torch.equal(got, load_image(str(tmp_path / "eight.png"), 16, channels=channels)), name
    assert expected.min() < -0.5 and expected.max() > 0.5  # not all white, not all black
    Image.fromarray(eight.astype(np.float32)).save(tmp_path / "levels.tiff")  # floats in [0, 255]: refused
    with pytest.raises(ImageFileError, match=r"levels.tiff: floating-point pixels span \[0, 255\]; expected"):
        load_image(str(tmp_path / "levels.tiff"), 16)


def test_palette_cmyk_and_grey_alpha_are_converted(tmp_path):
    rgb = np.stack([gradient(), gradient()[:, ::-1], np.full((24, 32), 90, np.uint8)], -1)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tiff")
    Image.fromarray(gradient()).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    for name in ("palette.png", "cmyk.tiff", "la.png", "rgba.png"):
        assert read_image(str(tmp_path / name)).mode == "RGB"
        assert load_image(str(tmp_path / name), 16).shape == (3, 16, 16)


def test_decompression_bombs_are_refused_from_the_header(tmp_path, monkeypatch):
    bomb = png_of_size(tmp_path / "bomb.png", 20000, 20000)  # the 389 KB file
    assert os.path.getsize(bomb) < 500_000
    with pytest.raises(ImageFileError, match=r"bomb.png: .*400,000,000 pixels, over the limit of 64,000,000"):
        load_image(bomb, 32)
    # under PIL's own guard but over ours: refused before decoding (the file has no pixel data at all)
    header_only = png_of_size(tmp_path / "big.png", 9000, 9000, pixels=False)
    assert 9000 * 9000 > DEFAULT_MAX_PIXELS
    with pytest.raises(ImageFileError, match=r"big.png: 9000x9000 is 81,000,000 pixels, over the limit"):
        load_image(header_only, 32)
    # the limit can be set; the studio passes bytes and a display name (no temp path in the message)
    Image.fromarray(gradient()).save(tmp_path / "small.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")
    data = (tmp_path / "small.png").read_bytes()
    with pytest.raises(ImageFileError) as err:
        read_image(data, name="upload.png")
    assert str(err.value) == "upload.png: 32x24 is 768 pixels, over the limit of 100 (REPAINT_MAX_PIXELS)"
    assert read_image(io.BytesIO(data), "L", name="upload.png", max_pixels=10_000).size == (32, 24)


def test_broken_files_are_one_line_naming_them(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, I am not a PNG")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    reasons = {"empty.png": "empty file (0 bytes)", "text.png": "unreadable", "cut.png": "unreadable or corrupt"}
    for name, reason in reasons.items():
        with pytest.raises(ImageFileError) as err:
            read_image(str(tmp_path / name))
        assert str(err.value).startswith(f"{tmp_path / name}: {reason}") and "\n" not in str(err.value)
    with pytest.raises(ImageFileError, match="^shown.png: empty file"):
        read_image(b"", name="shown.png")


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((10, 20, 3), np.uint8)
    stored[:, :10] = 255  # left half white as stored
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = read_image(str(tmp_path / "phone.jpg"))
    assert upright.size == (10, 20) and image_size_of(str(tmp_path / "phone.jpg")) == (10, 20)
    arr = np.asarray(upright.convert("L"))
    assert arr[:10].mean() > 200 and arr[10:].mean() < 50  # the white half is now on top


# ---------------------------------------------------------------- 8: sample ids when inputs are added


def test_adding_an_image_keeps_the_other_ids_and_masks(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path), n=3)
    before = {g["name"]: g for g in items(ImageFolderDataModule(gts, image_size=32, mask_types=["thick", "nn2"]))}
    Image.fromarray(gradient(40, 40)).save(os.path.join(gts, "aardvark.png"))  # sorts first
    after = {g["name"]: g for g in items(ImageFolderDataModule(gts, image_size=32, mask_types=["thick", "nn2"]))}
    assert len(after) == len(before) + 2
    for name, g in before.items():
        assert after[name]["id"] == g["id"] and torch.equal(after[name]["keep_mask"], g["keep_mask"])
    assert after["thick/coffee.png"]["id"] == sample_id(name_index("coffee.png"), "thick")
    assert after["thick/coffee.png"]["id"] % MASK_CODES == mask_code("thick")
    named = ImageFolderDataModule(gts, image_size=32, mask_path=masks)
    assert named.input_list() is None  # ids follow names: nothing to guard


def test_original_layout_keeps_index_ids_and_refuses_another_list(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path), n=3)
    layout = InpaintFolderDataModule(gts, masks, image_size=32)
    assert [g["id"] for g in items(layout)] == [0, 1, 2]  # as tools/compare_with_original.py seeds the original
    listed = layout.input_list()
    names = ("astronaut", "chelsea", "coffee")
    assert listed == [f"{n}.png" for n in names] + [f"{n}_mask.png" for n in names]
    out = str(tmp_path / "out")
    check_input_list(out, listed, write=True)
    check_input_list(out, listed)  # the same list: a rerun resumes
    Image.fromarray(gradient(40, 40)).save(os.path.join(gts, "aardvark.png"))
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(os.path.join(masks, "aardvark_mask.png"))
    with pytest.raises(ValueError, match=r"out: made from another input list \(added 2 \(aardvark.png, aardvark_m"):
        check_input_list(out, layout.input_list())
    check_input_list(out, layout.input_list(), overwrite=True)  # sampling everything again is allowed


# ---------------------------------------------------------------- 9: summaries


def test_undefined_metrics_and_failed_runs_summarise_cleanly():
    rows = [
        {"name": "ex64/a.png", "mask_type": "ex64", "psnr": 30.0, "psnr_fill": 20.0},
        {"name": "known/a.png", "mask_type": "known", "psnr": float("inf"), "psnr_fill": float("nan")},
        {"name": "known/b.png", "mask_type": "known", "psnr": 40.0, "psnr_fill": float("nan")},
    ]
    errors = [{"name": f"{k}/bad.png", "error": "/x/bad.png: empty file (0 bytes)"} for k in ("ex64", "known")]
    summary = scoring.summarize(rows, errors)
    known = summary["mask_types"]["known"]
    assert "psnr_fill" not in known and known["psnr"] == {"mean": 40.0, "std": 0.0, "n": 1}
    table = scoring.markdown_table(summary)
    assert "nan" not in table and "inf" not in table
    assert table.count("bad.png: empty file") == 1  # one line per bad input, not per mask type
    assert "nan" not in scoring.metrics_csv(rows)  # an undefined metric is an empty cell
    nothing = scoring.markdown_table(scoring.summarize([], errors[:1]))
    assert nothing.startswith("No input was inpainted.") and "|" not in nothing and "bad.png" in nothing


def test_the_id_scheme_is_in_the_fingerprint(tmp_path):
    """A folder of pictures made when image-folder ids were list positions is not resumed with name ids."""
    gts, masks = write_folder_pair(str(tmp_path))
    assert cli.id_keys(ImageFolderDataModule(gts, image_size=32)) == {"sample_ids": "name"}
    assert cli.id_keys(ImageFolderDataModule(gts, image_size=32, mask_path=masks)) == {"sample_ids": "name"}
    assert cli.id_keys(InpaintFolderDataModule(gts, masks, image_size=32)) == {}  # ids as they always were
