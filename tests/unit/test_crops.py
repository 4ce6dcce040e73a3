"""Crop-and-stitch (repaint_pl.crops): boxes hold their holes at the model's aspect, size and factor; the
stitched picture keeps every known byte; the model sees one crop per hole region, in one call."""

import numpy as np
import pytest
import torch

from repaint_pl.crops import CropError, as_keep, crop, hole_boxes, inpaint_crops, model_size, stitch


def random_mask(rng: np.random.Generator, shape: tuple[int, int], holes: int) -> np.ndarray:
    """bool keep mask with ``holes`` random rectangles and a few random stray pixels as holes."""
    keep = np.ones(shape, bool)
    h, w = shape
    for _ in range(holes):
        hh, ww = rng.integers(1, max(2, h // 4)), rng.integers(1, max(2, w // 4))
        t, l = rng.integers(0, h - hh + 1), rng.integers(0, w - ww + 1)
        keep[t : t + hh, l : l + ww] = False
    keep[rng.integers(0, h, 3), rng.integers(0, w, 3)] = False
    return keep


def owners(keep: np.ndarray, boxes) -> np.ndarray:
    """How many boxes claim each hole pixel (inside the box and inside its ``hole`` bounds)."""
    count = np.zeros(keep.shape, int)
    for b in boxes:
        t, l, bt, r = b.hole
        claim = np.zeros((b.height, b.width), bool)
        claim[max(0, t - b.top) : bt - b.top, max(0, l - b.left) : r - b.left] = True
        count[b.slices] += claim & ~keep[b.slices]
    return count


CASES = [((600, 900), 64, 1, 16), ((517, 311), 64, 8, 0), ((300, 500), (48, 80), 8, 20), ((90, 70), 64, 4, 8)]


@pytest.mark.parametrize("shape,size,factor,pad", CASES)
def test_boxes_hold_their_holes_at_the_model_aspect_size_and_factor(shape, size, factor, pad):
    sh, sw = model_size(size)
    for seed in range(6):
        keep = random_mask(np.random.default_rng(seed), shape, holes=1 + seed % 4)
        boxes = hole_boxes(keep, pad, size, factor)
        H, W = shape
        assert boxes and (owners(keep, boxes) == (~keep)).all()  # every hole pixel filled by exactly one crop
        for b in boxes:
            assert 0 <= b.top and b.top + b.height <= H and 0 <= b.left and b.left + b.width <= W
            t, l, bt, r = b.hole
            assert b.top <= t and bt <= b.top + b.height and b.left <= l and r <= b.left + b.width
            for side, model, full in ((b.height, sh, H), (b.width, sw, W)):
                assert side % factor == 0 or side == full  # a side is cut to the picture only when it must be
                assert side >= min(model, (full // factor) * factor)
            clipped = b.height >= (H // factor) * factor or b.width >= (W // factor) * factor
            if not clipped:  # the model's aspect, up to rounding each side to the factor
                assert abs(b.height / b.width - sh / sw) <= factor / min(b.height, b.width) * 2
                assert b.top <= max(0, t - pad) and min(H, bt + pad) <= b.top + b.height  # the context fits
                assert b.left <= max(0, l - pad) and min(W, r + pad) <= b.left + b.width


def test_holes_far_apart_get_a_crop_each_and_close_ones_share_one():
    keep = np.ones((2000, 3000), bool)
    keep[100:180, 200:300] = False
    keep[1500:1580, 2500:2600] = False
    assert len(hole_boxes(keep, 32, 64)) == 2
    keep = np.ones((2000, 3000), bool)
    keep[100:180, 200:300] = False
    keep[100:180, 350:450] = False  # 50 pixels apart: padded by 32 they overlap, by 20 they do not
    merged = hole_boxes(keep, 32, 64)
    assert len(merged) == 1 and merged[0].hole == (100, 200, 180, 450)
    assert len(hole_boxes(keep, 20, 64)) == 2
    assert hole_boxes(np.ones((50, 50), bool), 8, 64) == []


def test_thousands_of_specks_are_grouped_in_a_few_label_passes():
    """A grid of single-pixel holes 40 pixels apart: with 5 pixels of context each is its own region; with 20
    their padded boxes touch and everything is one region (merging is by painted boxes, not pairwise)."""
    keep = np.ones((2000, 3000), bool)
    keep[::40, ::40] = False
    apart = hole_boxes(keep, 5, 64)
    assert len(apart) == 50 * 75 and (owners(keep, apart) == ~keep).all()
    together = hole_boxes(keep, 20, 64)
    assert len(together) == 1 and together[0].hole == (0, 0, 1961, 2961)
    lines = np.ones((2000, 3000), bool)
    lines[::2] = False  # every second row: 1000 components, one region once a pixel of context joins them
    assert len(hole_boxes(lines, 0, 64)) == 1000 and len(hole_boxes(lines, 1, 64)) == 1


def test_stitch_changes_only_hole_pixels_and_writes_the_fill_levels():
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    keep = np.ones((200, 300), bool)
    keep[50:70, 40:60] = False  # box = the model's size (64): no resampling, fills land as they are
    keep[150:190, 200:280] = False  # a bigger box: resampled back with bicubic
    boxes = hole_boxes(keep, 8, 64)
    assert [(b.height, b.width) for b in boxes][0] == (64, 64)
    results = torch.rand(len(boxes), 3, 64, 64) * 2 - 1
    out = stitch(picture, keep, results, boxes)
    assert out.dtype == np.uint8 and out.shape == picture.shape
    assert np.array_equal(out[keep], picture[keep])  # the known pixels are the input's bytes
    b = boxes[0]
    expected = ((results[0] + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # eval.py's cut
    hole = ~keep[b.slices]
    assert np.array_equal(out[b.slices][hole], expected[hole])
    big = boxes[1]
    assert (out[big.slices][~keep[big.slices]] != picture[big.slices][~keep[big.slices]]).mean() > 0.9


@pytest.mark.parametrize("seed", range(4))
def test_irregular_holes_keep_every_known_byte(seed):
    """Holes of overlapping rectangles and stray pixels: known pixels inside a hole's bounds stay too."""
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    keep = random_mask(rng, (240, 320), holes=6)
    ring = np.hypot(*np.mgrid[-40:40, -40:40]) // 8 == 3  # a ring: known pixels inside and around it
    keep[100:180, 150:230] &= ~ring
    boxes = hole_boxes(keep, int(rng.integers(0, 24)), 64, 8)
    out = stitch(picture, keep, torch.rand(len(boxes), 3, 64, 64) * 2 - 1, boxes)
    assert np.array_equal(out[keep], picture[keep]) and (out[~keep] != picture[~keep]).mean() > 0.9


def test_crops_see_nothing_of_the_hole_where_they_are_known():
    """Changing the hole's pixels changes no crop pixel that the crop's keep mask calls known (the hole is
    widened by the resize filter's reach); with a box of the model's size the crop is the picture itself."""
    rng = np.random.default_rng(2)
    picture = rng.integers(0, 256, (400, 600), dtype=np.uint8)
    keep = np.ones((400, 600), bool)
    keep[100:160, 100:190] = False  # box 122 -> downscaled to 64
    keep[300:320, 450:470] = False  # box 64: exact
    other = picture.copy()
    other[~keep] = 255 - other[~keep]
    boxes = hole_boxes(keep, 16, 64)
    (a, ka), (b, _) = crop(picture, keep, boxes, 64), crop(other, keep, boxes, 64)
    known = ka.expand_as(a) == 1
    assert known.float().mean() > 0.5 and torch.equal(a[known], b[known])
    exact = boxes[1]
    assert torch.equal(a[1, 0], torch.from_numpy(picture[exact.slices]).float() / 127.5 - 1)
    assert torch.equal(ka[1, 0] == 1, torch.from_numpy(keep[exact.slices]))


def test_inpaint_crops_calls_the_model_once_and_keeps_the_known_bytes():
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    keep = np.ones((2000, 3000), bool)
    keep[1700:1780, 2800:2900] = False  # off-centre, near a corner
    keep[200:230, 100:120] = False
    calls = []

    def fill(images, keeps):
        calls.append((tuple(images.shape), tuple(keeps.shape)))
        assert images.min() >= -1 and images.max() <= 1 and set(keeps.unique().tolist()) <= {0.0, 1.0}
        return torch.zeros_like(images)  # mid grey

    out = inpaint_crops(picture, torch.from_numpy(keep).float()[None], 64, 32, 8, fill)
    assert calls == [((2, 3, 64, 64), (2, 1, 64, 64))]
    assert np.array_equal(out[keep], picture[keep]) and (out[~keep] == 127).all()
    assert np.array_equal(inpaint_crops(picture, np.ones((2000, 3000)), 64, 32, 8, fill), picture) and len(calls) == 1


def test_identity_fill_at_the_model_size_returns_the_picture_within_one_level():
    picture = np.random.default_rng(4).integers(0, 256, (100, 100), dtype=np.uint8)
    keep = np.ones((100, 100), bool)
    keep[40:50, 40:60] = False
    out = inpaint_crops(picture, keep, 64, 8, 1, lambda images, keeps: images)
    assert np.abs(out.astype(int) - picture).max() <= 1  # truncation of (x + 1)·127.5, as eval.py writes


def test_feather_blends_only_known_pixels_near_the_hole():
    picture = np.full((120, 120), 200, np.uint8)
    keep = np.ones((120, 120), bool)
    keep[50:70, 50:70] = False
    boxes = hole_boxes(keep, 10, 64)
    out = stitch(picture, keep, -torch.ones(1, 1, 64, 64), boxes, feather=3)
    changed = out != picture
    assert (out[~keep] == 0).all() and changed[47:73, 47:73].sum() > changed[50:70, 50:70].sum()
    changed[47:73, 47:73] = False  # beyond 3 pixels of the hole nothing moves
    assert not changed.any()


def test_bad_arguments_are_one_line_errors():
    keep = np.ones((10, 10), bool)
    keep[2, 2] = False
    with pytest.raises(CropError, match="crop_to_mask"):
        hole_boxes(keep, -1, 8)
    with pytest.raises(CropError, match="keep mask"):
        crop(np.zeros((10, 12), np.uint8), keep, hole_boxes(keep, 1, 8), 8)
    with pytest.raises(CropError, match="not a multiple"):
        inpaint_crops(np.zeros((10, 10), np.uint8), keep, 60, 1, 8, lambda i, k: i)
    with pytest.raises(CropError, match="uint8"):
        stitch(np.zeros((10, 10), np.float32), keep, torch.zeros(1, 1, 8, 8), hole_boxes(keep, 1, 8))
    with pytest.raises(CropError, match="expected"):
        inpaint_crops(np.zeros((10, 10), np.uint8), keep, 8, 1, 1, lambda i, k: i[:, :, :4])
    assert as_keep(np.array([[0, 255]], np.uint8)).tolist() == [[False, True]]
