"""thick/thin masks against an independent transcription of LaMa's mask generation, drawn with OpenCV as LaMa does.

The reference follows LaMa's bin/gen_mask_dataset.py with configs/data_gen/random_{thick,thin}_256.yaml on square
256² images (where its square crop is the whole mask): MixedMaskGenerator (irregular strokes, boxes with
probability 0.3/1.3 for thick), the generators' ramp at coefficient 1 (so strokes reach max_times + 1 and box sides
bbox_max_size), cv2.line brushes, and only masks that hide at most half the image.
"""

import cv2
import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import ks_2samp

from repaint_pl.masks import _stroke, keep_mask

SIZE = 256
CONFIGS = {  # LaMa's configs/data_gen/random_*_256.yaml
    "thin": dict(irregular=dict(min_times=4, max_times=50, max_width=10, max_angle=4, max_len=40), box_proba=0),
    "thick": dict(
        irregular=dict(min_times=1, max_times=5, max_width=100, max_angle=4, max_len=200),
        box_proba=0.3,
        box=dict(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=3),
    ),
}


def reference_strokes(rs, min_times, max_times, max_width, max_angle, max_len):
    mask = np.zeros((SIZE, SIZE), np.float32)
    ramped_max_times = int(min_times + 1 + (max_times - min_times) * 1.0)  # RandomIrregularMaskGenerator
    for i in range(rs.randint(min_times, ramped_max_times + 1)):
        start = [rs.randint(SIZE), rs.randint(SIZE)]
        for _ in range(1 + rs.randint(5)):
            angle = 0.01 + rs.randint(max_angle)
            if i % 2 == 0:
                angle = 2 * 3.1415926 - angle
            length, brush = 10 + rs.randint(max_len), 5 + rs.randint(max_width)
            end = [
                int(np.clip(np.int32(start[0] + length * np.sin(angle)), 0, SIZE)),
                int(np.clip(np.int32(start[1] + length * np.cos(angle)), 0, SIZE)),
            ]
            cv2.line(mask, tuple(start), tuple(end), 1.0, int(brush))
            start = end
    return mask


def reference_boxes(rs, margin, bbox_min_size, bbox_max_size, min_times, max_times):
    mask = np.zeros((SIZE, SIZE), np.float32)
    ramped_max_size = int(bbox_min_size + 1 + (bbox_max_size - bbox_min_size) * 1.0)  # RandomRectangleMaskGenerator
    ramped_max_size = min(ramped_max_size, SIZE - 2 * margin)
    for _ in range(rs.randint(min_times, max_times + 1)):
        w, h = rs.randint(bbox_min_size, ramped_max_size), rs.randint(bbox_min_size, ramped_max_size)
        x, y = rs.randint(margin, SIZE - margin - w + 1), rs.randint(margin, SIZE - margin - h + 1)
        mask[y : y + h, x : x + w] = 1
    return mask


def reference_masks(kind, n, seed=0):
    """n masks as gen_mask_dataset.py keeps them.  It draws 5 independent variants per image and picks one of
    those that hide at most half the image (max_tamper_area); that pick has the same distribution as the first
    accepted of a stream of variants, which is cheaper to draw."""
    cfg, rs, masks = CONFIGS[kind], np.random.RandomState(seed), []
    probas = np.array([1.0] + ([cfg["box_proba"]] if cfg["box_proba"] else []))
    while len(masks) < n:
        use_boxes = rs.choice(len(probas), p=probas / probas.sum()) == 1  # MixedMaskGenerator
        mask = reference_boxes(rs, **cfg["box"]) if use_boxes else reference_strokes(rs, **cfg["irregular"])
        if mask.mean() <= 0.5:
            masks.append(mask > 0)
    return masks


def holes(mask):
    return ndimage.label(mask)[1]


def test_strokes_paint_what_opencv_paints():
    rs, agree, painted = np.random.RandomState(1), 0, 0
    for _ in range(300):
        width = int(5 + rs.randint(100 if rs.rand() < 0.5 else 10))
        p0 = (int(rs.randint(SIZE)), int(rs.randint(SIZE)))
        p1 = (
            int(np.clip(p0[0] + rs.randint(-150, 150), 0, SIZE)),
            int(np.clip(p0[1] + rs.randint(-150, 150), 0, SIZE)),
        )
        expected = np.zeros((SIZE, SIZE), np.float32)
        cv2.line(expected, p0, p1, 1.0, width)
        ours = np.zeros((SIZE, SIZE), bool)
        _stroke(ours, p0, p1, width)
        agree += (ours == (expected > 0)).sum() - (~ours & (expected == 0)).sum()
        painted += ((expected > 0) | ours).sum()
    assert agree / painted > 0.99  # pixels painted by both / painted by either


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["thin", "thick"])
def test_hole_area_and_count_distributions_equal_lamas(kind):
    n = 2000
    ours = [keep_mask(kind, SIZE, seed=0, image_id=i)[0].numpy() < 0.5 for i in range(n)]
    reference = reference_masks(kind, n)
    area = ks_2samp([m.mean() for m in ours], [m.mean() for m in reference])
    count = ks_2samp([holes(m) for m in ours], [holes(m) for m in reference])
    assert area.pvalue > 0.01, (kind, area, np.mean([m.mean() for m in ours]), np.mean([m.mean() for m in reference]))
    assert count.pvalue > 0.01, (kind, count)
