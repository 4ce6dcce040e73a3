"""The outputs' fingerprint: what determines a picture is in it, a folder of another configuration is refused in
one line, ``--writer.overwrite true`` samples everything again, and pictures of two configurations never mix."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image
from repaint_pl.callbacks import RePaintWriter

from repaint_pl.cli import eval_main
from repaint_pl.fingerprint import (
    FINGERPRINT_FILE,
    FingerprintMismatch,
    check_out_dir,
    describe,
    file_digest,
    fingerprint,
    picture_keys,
    weights_digest,
)

CONFIG = {
    "seed_everything": 0,
    "trainer": {"devices": 4, "precision": "bf16-mixed", "num_nodes": 1},
    "model": {"seed": 3, "noise": "per_sample", "net": {"preset": "tiny"}, "compile": None},
    "data": {"class_path": "F", "init_args": {"image_path": "/d", "batch_size": 8, "num_workers": 2, "offset": 5}},
    "writer": {"out_dir": "results", "overwrite": False},
    "metrics": {"lpips": ["alex"]},
    "ckpt": None,
}


def test_picture_keys_keep_what_changes_pictures_and_drop_the_rest():
    keys = picture_keys(CONFIG)
    assert keys == {
        "seed_everything": 0,
        "trainer.precision": "bf16-mixed",
        "model.seed": 3,
        "model.noise": "per_sample",
        "model.net.preset": "tiny",
        "data.class_path": "F",
        "data.init_args.image_path": "/d",
    }
    # a key nobody listed is covered automatically
    new = dict(CONFIG, model=dict(CONFIG["model"], guidance={"scale": 2.0}))
    assert picture_keys(new)["model.guidance.scale"] == 2.0
    # the original's global stream depends on batches, slices and the number of processes
    glob = picture_keys(dict(CONFIG, model=dict(CONFIG["model"], noise="global")))
    assert glob["data.init_args.batch_size"] == 8 and glob["data.init_args.offset"] == 5
    assert glob["trainer.devices"] == 4


def test_file_digest_is_sha256_read_in_chunks_and_cached(tmp_path):
    path = tmp_path / "w.pt"
    data = os.urandom(100_003)
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert file_digest(str(path), chunk=4096) == expected
    cache = {}
    assert file_digest(str(path), cache) == expected and list(cache.values()) == [expected]
    cache[next(iter(cache))] = "from the cache"  # (path, size, mtime) unchanged: not read again
    assert file_digest(str(path), cache) == "from the cache"
    path.write_bytes(data[:-1] + b"x")  # another size: read again
    assert file_digest(str(path), cache) == hashlib.sha256(data[:-1] + b"x").hexdigest()


def test_folder_digest_follows_content_not_place(tmp_path):
    folder = tmp_path / "a"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    (folder / "model_index.json").write_text("{}")
    moved = tmp_path / "b"
    shutil.copytree(folder, moved)
    assert weights_digest(str(folder)) == weights_digest(str(moved))
    (moved / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"other weights")
    assert weights_digest(str(folder)) != weights_digest(str(moved))


def test_fingerprint_holds_weight_hashes_instead_of_paths(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"one")
    b.write_bytes(b"one")
    fa, fb = fingerprint(dict(CONFIG, ckpt=str(a)), "cpu"), fingerprint(dict(CONFIG, ckpt=str(b)), "cpu")
    assert fa == fb and fa["ckpt"] == "sha256:" + hashlib.sha256(b"one").hexdigest()
    b.write_bytes(b"two")
    assert fingerprint(dict(CONFIG, ckpt=str(b)), "cpu")["ckpt"] != fa["ckpt"]
    assert fingerprint(CONFIG, "cuda")["device_type"] == "cuda"  # CPU and CUDA generators draw other noise


def test_a_folder_of_another_configuration_is_refused_in_one_line(tmp_path):
    out = str(tmp_path)
    old = fingerprint(CONFIG, "cpu")
    with open(os.path.join(out, FINGERPRINT_FILE), "w") as f:
        json.dump(old, f)
    os.makedirs(os.path.join(out, "meta"))  # the folder holds a picture of that configuration
    with open(os.path.join(out, "meta", "a.json"), "w") as f:
        json.dump({"fingerprint": "old"}, f)
    same_pictures = dict(CONFIG, trainer=dict(CONFIG["trainer"], devices=8), writer={"overwrite": True})
    check_out_dir(out, fingerprint(same_pictures, "cpu"), overwrite=False)
    new = fingerprint(dict(CONFIG, model=dict(CONFIG["model"], seed=4)), "cpu")
    with pytest.raises(FingerprintMismatch) as e:
        check_out_dir(out, new, overwrite=False)
    message = str(e.value)
    assert "\n" not in message and "model.seed: 3 -> 4" in message and "--writer.overwrite true" in message
    check_out_dir(out, new, overwrite=True)
    assert describe({"a": 1}, {"b": [1, 2]}) == "a: 1 -> <unset>; b: <unset> -> [1, 2]"


def test_outputs_without_a_fingerprint_are_refused(tmp_path):
    os.makedirs(tmp_path / "meta")
    (tmp_path / "meta" / "x.json").write_text("{}")
    with pytest.raises(FingerprintMismatch, match="without a fingerprint.json"):
        check_out_dir(str(tmp_path), fingerprint(CONFIG, "cpu"), overwrite=False)


def test_an_input_is_done_only_under_its_fingerprint(tmp_path):
    writer = RePaintWriter(out_dir=str(tmp_path))
    for kind in ("inpainted", "gt", "gt_masked", "gt_keep_mask"):
        os.makedirs(tmp_path / kind)
        (tmp_path / kind / "a.png").write_bytes(b"")
    os.makedirs(tmp_path / "meta")
    (tmp_path / "meta" / "a.json").write_text(json.dumps({"fingerprint": "old"}))
    assert writer.finished("a.png")  # no fingerprint known: files suffice
    writer.fingerprint = "new"
    assert not writer.finished("a.png")
    writer.fingerprint = "old"
    assert writer.finished("a.png")


def eval_args(ckpt, images, out, *extra):
    return [
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
        "[thick]",
        "--data.max_images",
        "2",
        "--writer.out_dir",
        out,
        "--metrics.lpips",
        "[]",
        "--accelerator",
        "cpu",
        "--progress.refresh_rate",
        "0",
        *extra,
    ]


def pictures(out):
    folder = os.path.join(out, "inpainted", "thick")
    return {f: np.asarray(Image.open(os.path.join(folder, f))) for f in sorted(os.listdir(folder))}


@pytest.mark.slow
def test_rerun_with_another_seed_refuses_or_resamples_everything(tmp_path, tiny_ckpt, image_folders):
    out = str(tmp_path / "out")
    eval_main(eval_args(tiny_ckpt, image_folders[0], out, "--seed", "3"))
    first = pictures(out)
    with pytest.raises(FingerprintMismatch, match="model.seed: 3 -> 4"):
        eval_main(eval_args(tiny_ckpt, image_folders[0], out, "--seed", "4"))
    assert all(np.array_equal(first[k], v) for k, v in pictures(out).items())
    assert yaml.safe_load(open(os.path.join(out, "config.yaml")))["model"]["seed"] == 3  # the record is kept
    # the same pictures' configuration (another batch size) resumes
    eval_main(eval_args(tiny_ckpt, image_folders[0], out, "--seed", "3", "--data.batch_size", "2"))
    assert all(np.array_equal(first[k], v) for k, v in pictures(out).items())
    eval_main(eval_args(tiny_ckpt, image_folders[0], out, "--seed", "4", "--writer.overwrite", "true"))
    again = pictures(out)
    assert again.keys() == first.keys() and all(not np.array_equal(first[k], again[k]) for k in first)
    assert yaml.safe_load(open(os.path.join(out, "config.yaml")))["model"]["seed"] == 4
    stamp = json.load(open(os.path.join(out, FINGERPRINT_FILE)))
    assert stamp["model.seed"] == 4 and stamp["ckpt"].startswith("sha256:")


def test_one_class_under_old_and_new_paths_fingerprints_alike():
    from repaint_pl.fingerprint import canonical_class_path, picture_keys

    old = {"model": {"sampler": {"class_path": "repaint_pl.samplers.RePaintSampler"}}}
    new = {"model": {"sampler": {"class_path": "repaint_pl.sampling.RePaintSampler"}}}
    assert picture_keys(old) == picture_keys(new)
    assert canonical_class_path("repaint_pl.sampler.RePaintSampler") == "repaint_pl.sampling.RePaintSampler"
    assert canonical_class_path("no.such.Thing") == "no.such.Thing"


@pytest.mark.slow
def test_a_default_run_resumes_with_the_sampler_config_file(tmp_path, tiny_ckpt, image_folders):
    """A run with the default sampler, rerun with --config configs/sampler/repaint.yaml (the same sampler under
    its config file's class path) resumes: nothing is refused, nothing is sampled again."""
    out = str(tmp_path / "out")
    eval_main(eval_args(tiny_ckpt, image_folders[0], out))
    first = {f: os.stat(os.path.join(out, "inpainted", "thick", f)).st_mtime_ns for f in pictures(out)}
    conf = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "sampler", "repaint.yaml")
    eval_main(eval_args(tiny_ckpt, image_folders[0], out, "--config", conf))
    again = {f: os.stat(os.path.join(out, "inpainted", "thick", f)).st_mtime_ns for f in pictures(out)}
    assert again == first  # resumed: every picture counted as done
    eval_main(eval_args(tiny_ckpt, image_folders[0], out, "--model.sampler", "repaint_pl.samplers.RePaintSampler"))


def test_folder_digest_reads_a_link_loop_once(tmp_path):
    from repaint_pl.fingerprint import weights_digest

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(b"123")
    before = weights_digest(str(tmp_path / "model"))
    os.symlink(str(tmp_path / "model"), str(tmp_path / "model" / "self"))
    assert len(weights_digest(str(tmp_path / "model"))) == len(before)  # finishes (no endless walk)


def test_options_added_later_leave_older_fingerprints_alone_at_their_neutral_values():
    """A folder made before crop_to_mask, mask_convention, --steps and --random_weights existed resumes: at
    their neutral values they are not in the fingerprint; any other value is."""
    from repaint_pl.fingerprint import picture_keys

    before = {"model": {"seed": 0}, "data": {"init_args": {"image_size": 256, "mask_types": ["thick"]}}}
    now = {
        "model": {"seed": 0},
        "steps": None,
        "random_weights": True,
        "data": {"init_args": {"image_size": 256, "mask_types": ["thick"], "crop_to_mask": None,
                               "mask_convention": "keep"}},
    }  # fmt: skip
    assert picture_keys(now) == picture_keys(before)
    now["data"]["init_args"].update(crop_to_mask=32, mask_convention="fill")
    assert {"data.init_args.crop_to_mask", "data.init_args.mask_convention"} <= set(picture_keys(now))
