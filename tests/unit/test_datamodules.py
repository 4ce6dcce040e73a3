"""Folder, original-layout, webdataset and texture datamodules: pairing, labels, bad files, splitting."""

import io
import os

import numpy as np
import pytest
import torch
import webdataset as wds
from conftest import photos, write_folder_pair
from PIL import Image
from repaint_pl.datamodules import (
    ImageFileError,
    ImageFolderDataModule,
    InpaintFolderDataModule,
    ShardDataModule,
    TextureDataModule,
)
from repaint_pl.datamodules.folders import MASK_CODES, mask_code, name_index
from repaint_pl.datamodules.images import center_crop_resize

from repaint_pl.masks import MASK_TYPES


def items(dm):
    dm.setup("predict")
    return [dm.dataset[i] for i in range(len(dm.dataset))]


def test_center_crop_resize_halves_then_bicubic():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 520, 3), dtype=np.uint8))
    out = center_crop_resize(img, 64)  # 520x300 -> BOX halvings to 130x75 -> BICUBIC 111x64 -> crop
    assert out.shape == (64, 64, 3)
    expected = np.array(img.resize((260, 150), Image.BOX).resize((130, 75), Image.BOX).resize((111, 64), Image.BICUBIC))
    assert np.array_equal(out, expected[:, 23:87])


def test_original_layout_pairs_sorted_and_names_flat(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path))
    got = items(InpaintFolderDataModule(gts, masks, image_size=32, max_len=2, offset=1))
    assert [g["name"] for g in got] == ["chelsea.png", "coffee.png"] and all(g["error"] == "" for g in got)
    assert [g["id"] for g in got] == [1, 2] and got[0]["keep_mask"].shape == (3, 32, 32)
    assert got[0]["image"].min() >= -1 and got[0]["image"].max() <= 1


def test_generated_masks_cross_every_image(tmp_path):
    gts, _ = write_folder_pair(str(tmp_path))
    got = items(ImageFolderDataModule(gts, image_size=32, mask_types=["thick", "nn2"]))
    assert [g["name"] for g in got] == [
        "thick/astronaut.png",
        "nn2/astronaut.png",
        "thick/chelsea.png",
        "nn2/chelsea.png",
        "thick/coffee.png",
        "nn2/coffee.png",
    ]
    codes = [mask_code("thick"), mask_code("nn2")]
    keys = [name_index(f"{n}.png") for n in ("astronaut", "chelsea", "coffee")]  # ids follow the names
    assert [g["id"] for g in got] == [k * MASK_CODES + c for k in keys for c in codes]
    assert got[1]["keep_mask"].mean() == 0.25
    sliced = items(ImageFolderDataModule(gts, image_size=32, mask_types=["thick", "nn2"], offset=1, max_images=1))
    assert [s["id"] for s in sliced] == [got[2]["id"], got[3]["id"]]
    assert torch.equal(sliced[0]["keep_mask"], got[2]["keep_mask"])


def test_mask_type_codes_are_distinct():
    codes = [mask_code(m) for m in MASK_TYPES]
    assert len(set(codes)) == len(MASK_TYPES) and all(0 < c < MASK_CODES for c in codes)


def test_adding_a_mask_type_keeps_the_other_ids_and_masks(tmp_path):
    gts, _ = write_folder_pair(str(tmp_path))
    before = {g["name"]: g for g in items(ImageFolderDataModule(gts, image_size=32, mask_types=["thick"]))}
    more = ImageFolderDataModule(gts, image_size=32, mask_types=["nn2", "thick", "thin"])
    after = {g["name"]: g for g in items(more)}
    assert len(after) == 9 and set(before) < set(after)
    for name, g in before.items():
        assert after[name]["id"] == g["id"] and torch.equal(after[name]["keep_mask"], g["keep_mask"])
    ids = [g["id"] for g in after.values()]
    assert len(set(ids)) == len(ids)


def test_texture_ids_follow_the_mask_type_name():
    one = TextureDataModule(crop_size=16, eval_crops=1, mask_types=["ex64"], batch_size=8)
    two = TextureDataModule(crop_size=16, eval_crops=1, mask_types=["thin", "ex64"], batch_size=8)
    ids = []
    for dm in (one, two):
        dm.setup("predict")
        batch = next(iter(dm.predict_dataloader()))
        ids.append({n: int(i) for n, i in zip(batch["name"], batch["id"])})
    assert all(ids[1][n] == i for n, i in ids[0].items()) and len(ids[1]) == 2 * len(ids[0])


def test_masks_paired_by_name(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path))  # masks are named <stem>_mask.png
    got = items(ImageFolderDataModule(gts, image_size=32, mask_path=masks))
    assert [g["name"] for g in got] == ["astronaut.png", "chelsea.png", "coffee.png"]
    os.remove(os.path.join(masks, "coffee_mask.png"))
    with pytest.raises(ImageFileError, match="coffee.png: no mask with this name"):
        items(ImageFolderDataModule(gts, image_size=32, mask_path=masks))
    with pytest.raises(ImageFileError, match="3 images but .* has 2 masks"):
        items(InpaintFolderDataModule(gts, masks, image_size=32))


def test_class_folders_and_label_file(tmp_path):
    for wnid, (name, img) in zip(["n02", "n01", "n02"], photos(3)):
        os.makedirs(tmp_path / "val" / wnid, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "val" / wnid / f"{name}.png")
    got = items(ImageFolderDataModule(str(tmp_path / "val"), image_size=16, class_folders=True))
    assert {g["name"]: g["y"] for g in got} == {
        "thick/n01/coffee.png": 0,
        "thick/n02/astronaut.png": 1,
        "thick/n02/chelsea.png": 1,
    }
    (tmp_path / "labels.txt").write_text("astronaut.png 7\ncoffee 9\nn02/chelsea.png 3\n")
    got = items(ImageFolderDataModule(str(tmp_path / "val"), image_size=16, labels=str(tmp_path / "labels.txt")))
    assert sorted(g["y"] for g in got) == [3, 7, 9]


def test_bad_files_become_error_items(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path))
    (tmp_path / "gts" / "chelsea.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(np.full((40, 32), 255, np.uint8)).save(tmp_path / "masks" / "coffee_mask.png")
    got = {g["name"]: g for g in items(ImageFolderDataModule(gts, image_size=32, mask_path=masks))}
    assert got["astronaut.png"]["error"] == ""
    assert got["chelsea.png"]["error"].endswith("chelsea.png: unreadable or corrupt image (UnidentifiedImageError)")
    assert "coffee_mask.png: mask is 32x40 but its image" in got["coffee.png"]["error"]


def test_empty_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageFileError, match="empty: no image files"):
        items(ImageFolderDataModule(str(tmp_path / "empty"), image_size=16))


def test_soft_masks_binarised_with_one_warning(tmp_path):
    gts, masks = write_folder_pair(str(tmp_path))
    for f in os.listdir(masks):
        w, h = Image.open(os.path.join(masks, f)).size
        Image.fromarray(np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))).save(os.path.join(masks, f))
    with pytest.warns(UserWarning, match="not binary") as record:
        got = items(ImageFolderDataModule(gts, image_size=32, mask_path=masks))
    assert len([r for r in record if "not binary" in str(r.message)]) == 1
    assert set(torch.unique(got[0]["keep_mask"]).tolist()) == {0.0, 1.0}
    soft = items(InpaintFolderDataModule(gts, masks, image_size=32, mask_threshold=None))
    assert len(torch.unique(soft[0]["keep_mask"])) > 2  # the original keeps soft masks


def write_shards(root, n_shards=3):
    urls = []
    for s in range(n_shards):
        urls.append(os.path.join(root, f"s{s}.tar"))
        with wds.TarWriter(urls[-1]) as w:
            for i in range(2):
                b = io.BytesIO()
                Image.fromarray(np.full((40, 40, 3), 10 * (2 * s + i), np.uint8)).save(b, format="PNG")
                w.write({"__key__": f"img{s}{i}", "png": b.getvalue(), "cls": str(s).encode()})
    return urls


def shard_names(urls, monkeypatch, rank=None, world=None):
    if rank is not None:
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
    dm = ShardDataModule(urls, image_size=16, mask_types=["thick", "ev2li"], batch_size=4)
    return [n for batch in dm.predict_dataloader() for n in batch["name"]]


def test_shards_split_by_node_cover_every_sample_once(tmp_path, monkeypatch):
    urls = write_shards(str(tmp_path))
    everything = shard_names(urls, monkeypatch)
    assert len(everything) == 12 and len(set(everything)) == 12
    parts = [shard_names(urls, monkeypatch, r, 2) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(everything) and not set(parts[0]) & set(parts[1])


def test_textures_train_crops_and_held_out_eval():
    dm = TextureDataModule(
        scale=0.25, crop_size=32, eval_size=64, held_out=0.5, epoch_length=8, batch_size=4, mask_types=["ex64", "nn2"]
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 1, 32, 32) and batch["image"].abs().max() <= 1
    names = [n for b in dm.predict_dataloader() for n in b["name"]]
    assert len(names) == 3 * 2 * 2 and "ex64/brick_0.png" in names
    for _, train, held in dm.parts:  # evaluation crops never overlap training pixels
        assert train.shape[-1] + held.shape[-1] == 128 and held.shape[-1] == 64


def test_channels_follow_the_model():
    from types import SimpleNamespace

    from repaint_pl.datamodules.folders import resolve_channels

    grey = SimpleNamespace(lightning_module=SimpleNamespace(net=SimpleNamespace(in_channels=1)))
    vae = SimpleNamespace(config=SimpleNamespace(in_channels=3))
    latent = SimpleNamespace(lightning_module=SimpleNamespace(net=None, space=SimpleNamespace(vae=vae)))
    assert resolve_channels(None, grey) == 1 and resolve_channels(None, latent) == 3  # a VAE's, not the UNet's 4
    assert resolve_channels(None, None) == 3 and resolve_channels(None, None, default=1) == 1
    assert resolve_channels(1, grey) == 1
    with pytest.raises(ValueError, match="data.channels=3 but the model takes 1-channel images"):
        resolve_channels(3, grey)
