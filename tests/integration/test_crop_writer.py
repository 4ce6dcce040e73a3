"""The writer's crop-and-stitch (data.crop_to_mask): crops of one picture written by different processes, or
by a killed run and its rerun, are stitched once all are staged, into the same full-resolution picture."""

import json
import os
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from repaint_pl.callbacks import RePaintWriter
from repaint_pl.datamodules import ImageFolderDataModule
from torch.utils.data import default_collate

from repaint_pl.crops import Box, stitch


def crop_items(root) -> list[dict]:
    """The two crop items of one 300×400 grey picture with two holes far apart."""
    os.makedirs(os.path.join(root, "images"))
    picture = np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)
    keep = np.full((300, 400), 255, np.uint8)
    keep[20:40, 30:60] = keep[250:280, 330:370] = 0
    Image.fromarray(picture).save(os.path.join(root, "images", "p.png"))
    Image.fromarray(keep).save(os.path.join(root, "mask.png"))
    dm = ImageFolderDataModule(os.path.join(root, "images"), 64, mask_path=os.path.join(root, "mask.png"),
                               crop_to_mask=8, channels=1)  # fmt: skip
    dm.setup("predict")
    return [dm.dataset[i] for i in range(len(dm.dataset))]


def predicted(item: dict, writer: RePaintWriter) -> dict:
    """One item's batch as the writer sees it after predict_step: the fill is the crop's negative."""
    batch = default_collate([item])
    writer.on_predict_batch_start(None, None, batch, 0)
    return dict(batch, inpainted=-batch["image"], sampled=[not d for d in batch["done"]], seconds=0.5,
                network_calls=7)  # fmt: skip


TRAINER = SimpleNamespace(datamodule=SimpleNamespace(crop_to_mask=8), strategy=SimpleNamespace(barrier=lambda: None))


def expected(root, items) -> np.ndarray:
    picture = np.asarray(Image.open(os.path.join(root, "images", "p.png")))
    keep = np.asarray(Image.open(os.path.join(root, "mask.png"))) == 255
    boxes = [Box.from_list(i["crop_box"].tolist()) for i in items]
    return stitch(picture, keep, torch.stack([-i["image"] for i in items]), boxes)


def test_crops_from_two_processes_are_stitched_by_the_one_that_writes_the_last(tmp_path):
    items = crop_items(str(tmp_path))
    out = str(tmp_path / "out")
    first, second = RePaintWriter(out), RePaintWriter(out)  # two processes, one output folder
    for writer in (first, second):
        writer.fingerprint = "abc"
    first.write_on_batch_end(TRAINER, None, predicted(items[0], first), None, None, 0)
    assert not os.path.exists(os.path.join(out, "inpainted", "p.png"))  # one crop of two: nothing to stitch yet
    second.write_on_batch_end(TRAINER, None, predicted(items[1], second), None, None, 0)
    result = np.asarray(Image.open(os.path.join(out, "inpainted", "p.png")))
    assert np.array_equal(result, expected(str(tmp_path), items))
    meta = json.load(open(os.path.join(out, "meta", "p.json")))
    assert meta["network_calls"] == 14 and meta["seconds"] == 1.0 and meta["fingerprint"] == "abc"
    for writer in (first, second):
        writer.finish_crops(TRAINER)
    assert not os.path.exists(os.path.join(out, "staging"))  # removed by the owner of crop 0


def test_a_killed_run_resumes_crop_by_crop(tmp_path):
    items = crop_items(str(tmp_path))
    out = str(tmp_path / "out")
    killed = RePaintWriter(out)
    killed.fingerprint = "abc"
    killed.write_on_batch_end(TRAINER, None, predicted(items[0], killed), None, None, 0)  # then the run dies
    other = RePaintWriter(out)
    other.fingerprint = "another configuration"
    assert predicted(items[0], other)["done"] == [False]  # a staged crop counts only under its fingerprint
    rerun = RePaintWriter(out)
    rerun.fingerprint = "abc"
    again = predicted(items[0], rerun)
    assert again["done"] == [True] and again["sampled"] == [False]  # the staged crop is not sampled again
    rerun.write_on_batch_end(TRAINER, None, again, None, None, 0)
    rerun.write_on_batch_end(TRAINER, None, predicted(items[1], rerun), None, None, 0)
    rerun.finish_crops(TRAINER)
    result = np.asarray(Image.open(os.path.join(out, "inpainted", "p.png")))
    assert np.array_equal(result, expected(str(tmp_path), items))
    assert predicted(items[1], RePaintWriter(out))["done"] == [True]  # the picture is finished
    assert not os.path.exists(os.path.join(out, "staging"))
