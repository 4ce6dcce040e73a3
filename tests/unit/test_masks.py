"""The paper's six mask types, LaMa's random masks and boxes match their definitions."""

import numpy as np
import pytest
import torch

from repaint_pl.masks import LAMA_PARAMS, MASK_TYPES, PAPER_MASK_TYPES, keep_mask


def known(kind, size=256, image_id=0, **kw):
    m = keep_mask(kind, size, seed=0, image_id=image_id, **kw)
    assert m.shape == (1, size, size) and m.dtype == torch.float32
    assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
    return m[0].numpy().astype(bool)


def test_nn2_every_second_pixel_of_every_second_row():
    m = known("nn2")
    assert m.mean() == 0.25 and m[::2, ::2].all() and not m[1::2].any() and not m[:, 1::2].any()


def test_ev2li_every_second_row():
    m = known("ev2li")
    assert m.mean() == 0.5 and m[::2].all() and not m[1::2].any()


def test_ex64_only_the_centre_64_known():
    m = known("ex64")
    assert m.sum() == 64 * 64 and m[96:160, 96:160].all()
    assert known("ex64", 64)[24:40, 24:40].all() and known("ex64", 64).sum() == 16 * 16


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_genhalf_one_half_known(side):
    m = known("genhalf", side=side)
    half = {"left": m[:, :128], "right": m[:, 128:], "top": m[:128], "bottom": m[128:]}[side]
    assert m.mean() == 0.5 and half.all()


def test_random_half_is_one_of_the_four_halves_and_varies():
    halves = {
        tuple(known("genhalf", 32, i).nonzero()[0][:1]) + tuple(known("genhalf", 32, i).nonzero()[1][:1])
        for i in range(12)
    }
    assert all(known("genhalf", 32, i).mean() == 0.5 for i in range(12)) and len(halves) > 1


@pytest.mark.parametrize("kind", ["thick", "thin", "medium"])
def test_lama_masks_hide_at_most_half_and_are_deterministic(kind):
    masks = [known(kind, image_id=i) for i in range(8)]
    holes = [1 - m.mean() for m in masks]
    assert all(0 < h <= 0.5 for h in holes)
    assert np.array_equal(masks[3], known(kind, image_id=3))
    assert len({m.tobytes() for m in masks}) == 8
    assert not np.array_equal(masks[0], keep_mask(kind, 256, seed=1, image_id=0)[0].numpy().astype(bool))


def test_thin_strokes_are_thinner_than_thick_ones():
    thin = np.mean([1 - known("thin", image_id=i).mean() for i in range(10)])
    assert LAMA_PARAMS["thin"][0].max_width < LAMA_PARAMS["thick"][0].max_width and 0 < thin <= 0.5


def test_lama_published_parameters():
    strokes, boxes, p = LAMA_PARAMS["thick"]
    assert (strokes.min_times, strokes.max_times, strokes.max_width, strokes.max_len) == (1, 5, 100, 200)
    assert (boxes.margin, boxes.bbox_min_size, boxes.bbox_max_size, p) == (10, 30, 150, 0.3)
    strokes, boxes, _ = LAMA_PARAMS["thin"]
    assert (strokes.min_times, strokes.max_times, strokes.max_width, strokes.max_len, boxes) == (4, 50, 10, 40, None)


def test_box_is_one_rectangle():
    m = ~known("box", 64, image_id=5)
    ys, xs = m.nonzero()
    assert m.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) and 16 <= ys.max() - ys.min() + 1 <= 32


def test_outpaint_and_hole_are_centre_squares_of_half_the_side():
    assert known("outpaint", 64)[16:48, 16:48].all() and known("outpaint", 64).sum() == 32 * 32
    assert np.array_equal(known("hole", 64), ~known("outpaint", 64))


def test_every_type_known_and_unknown_named():
    assert set(PAPER_MASK_TYPES) <= set(MASK_TYPES)
    with pytest.raises(ValueError, match="'thik' is unknown"):
        keep_mask("thik", 32)
