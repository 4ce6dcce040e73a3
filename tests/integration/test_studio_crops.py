"""The studio with big pictures (issue 22): a picture larger than the model's size is inpainted in a crop around
its painted hole and stitched back at full resolution, every known pixel kept; uploads up to the decoder's pixel
limit are accepted."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from test_studio import RUN_ARGS, studio  # noqa: F401  (the module's tiny-model studio fixture)

from repaint_pl.apps.studio import logic as L

HOLE = (150, 200, 270, 330)  # rows 150:200, columns 270:330: the painted hole in a 360×480 picture


def big_editor(h: int = 360, w: int = 480) -> dict:
    """An editor value: a 480×360 RGB picture (stripes and noise) and one layer painted over ``HOLE``."""
    rng = np.random.default_rng(0)
    picture = (np.sin(np.arange(w) / 9.0)[None, :, None] * 80 + 128 + rng.normal(0, 10, (h, w, 3))).clip(0, 255)
    background = np.concatenate([picture.astype(np.uint8), np.full((h, w, 1), 255, np.uint8)], axis=2)
    layer = np.zeros((h, w, 4), np.uint8)
    y0, y1, x0, x1 = HOLE
    layer[y0:y1, x0:x1] = (255, 0, 170, 255)
    return {"background": background, "layers": [layer], "composite": background}


def test_a_big_picture_is_cropped_around_its_hole_and_stitched_back():
    editor = big_editor()
    hole = L.painted_alpha(editor)
    picture, keep, context = L.crop_around_hole(L.as_uint8(editor["background"]), hole, 32, 3, pad=8)
    assert picture.shape == (32, 32, 3) and keep.shape == (1, 32, 32) and 0 < keep.mean() < 1
    box = context.box  # the hole (50×60) plus 8 pixels each side, square: 76²
    assert (box.height, box.width) == (76, 76) and box.hole == (150, 270, 200, 330)
    full = context.stitch(np.zeros_like(picture))  # a black fill
    rgb = np.asarray(Image.fromarray(editor["background"][..., :3]).convert("RGB"))
    assert full.shape == rgb.shape and np.array_equal(full[~hole], rgb[~hole]) and (full[hole] == 0).all()
    with pytest.raises(L.StudioInputError, match="nothing to fill"):
        L.crop_around_hole(rgb, np.zeros(hole.shape, bool), 32, 3, pad=8)


@pytest.mark.slow  # the studio fixture loads a model (about 10 s)
def test_the_run_handler_fills_a_big_picture_at_full_resolution(studio):  # noqa: F811
    from repaint_pl.apps.studio.app import big_picture_handler, mask_preview_handler, run_handler, save_download

    editor = big_editor()
    assert big_picture_handler(studio)(editor) and not big_picture_handler(studio)(studio.example_editor(
        next(iter(studio.examples))) | {"background": np.zeros((studio.size, studio.size, 4), np.uint8)})  # fmt: skip
    view, note = mask_preview_handler(studio)(editor, "painted", False, "thick", 0, None, True, 8)
    assert "crop around the hole of the 480x360 picture" in note and view is not None
    args = {**RUN_ARGS, "editor": editor, "variants": 1, "crop": True, "crop_pad": 8}
    outputs = list(run_handler(studio)(None, *args.values()))
    tree, message = outputs[-1][0], outputs[-1][5]
    assert message.startswith("finished") and "the full picture is in the downloads" in message
    result = tree.results[1]
    assert result.picture.shape[:2] == (studio.size, studio.size) and result.crop is not None
    files = save_download(result, studio)
    assert [os.path.basename(f) for f in files] == ["result_1_full.png", "result_1.png", "result_1_eval.zip"]
    full = np.asarray(Image.open(files[0]))
    hole = L.painted_alpha(editor)
    known = np.asarray(Image.fromarray(editor["background"][..., :3]).convert("L" if studio.channels == 1 else "RGB"))
    assert full.shape == known.shape and np.array_equal(full[~hole], known[~hole])
    assert (full[hole] != known[hole]).mean() > 0.5
    plain = list(run_handler(studio)(None, *{**args, "crop": False}.values()))  # unticked: the centre square
    assert plain[-1][0].results[1].crop is None


def test_uploads_up_to_the_decoders_pixel_limit_are_accepted(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((10, 6000), np.uint8)).save(path)  # wider than the old 4096-pixel refusal
    assert L.as_uint8(str(path), "picture").shape[:2] == (10, 6000)
    assert L.MAX_UPLOAD_SIDE**2 == 64_000_000  # datamodules.images.DEFAULT_MAX_PIXELS
