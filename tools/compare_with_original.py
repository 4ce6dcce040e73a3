"""Check eval.py against the original RePaint code: same conf, same checkpoint, same Gaussian numbers.

    python tools/compare_with_original.py --repaint_root ~/RePaint --conf confs/face_example.yml --seed 3
    python tools/compare_with_original.py --repaint_root ~/RePaint --case learned32 --work cmp/learned32

``--repaint_root`` is your own checkout of https://github.com/andreas128/RePaint (not part of this
project; it needs ``blobfile`` importable).  Both programs run on the given conf with their output
folders redirected to ``--work``; then every PNG they wrote is compared and the largest difference
per folder is printed.  The original is made to draw the same numbers as this project:

* ``--noise per_sample`` (default): the original runs with batch size 1 and its global generator is
  seeded with ``sample_seed(seed, offset + i)`` before its i-th image, which is what this project's
  per-sample generator for that image draws from (at any batch size): with a mask folder the sample
  id is the image's index in the full sorted list (``offset`` included), see
  ``datamodules.folders.sample_id``;
* ``--noise global``: the original's global generator is seeded once with ``seed`` before the first
  batch, which is this project's ``--model.noise global``.

``--case NAME`` first builds a small self-contained setup in ``--work/case`` (see ``CASES``): the
original's ``confs/test_c256_thick.yml`` with the case's flags, a random checkpoint made by the
original's own ``create_model`` (every parameter from N(0, 0.05²), the zero-initialised output layers
included; a classifier likewise), scikit-image photos and masks with a hole.

The original RePaint has no cosine beta schedule; for confs that ask for one (ImageNet 64) the
shim gives it guided-diffusion's (written out below, not taken from this project).  Exit status 1
if any pixel differs by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import yaml
from PIL import Image

from repaint_pl.paths import ROOT

KINDS = {"srs": "inpainted", "lrs": "gt_masked", "gts": "gt", "gt_keep_masks": "gt_keep_mask"}

SHIM = r"""
import math, sys
import numpy as np
sys.path.insert(0, {root!r})
import torch as th
import conf_mgt, test
import guided_diffusion.gaussian_diffusion as gd
from utils import yamlread
from repaint_pl.noise import sample_seed

def cosine_betas(n, max_beta=0.999):  # guided-diffusion's betas_for_alpha_bar with its cosine alpha_bar
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)])

_betas = gd.get_named_beta_schedule
gd.get_named_beta_schedule = lambda name, n, use_scale=True: (
    cosine_betas(n) if name == "cosine" else _betas(name, n, use_scale=use_scale)
)
conf = conf_mgt.conf_base.Default_Conf()
conf.update(yamlread({conf!r}))
_get = conf.get_dataloader
def get_dataloader(*a, **k):
    def seeded():
        for i, batch in enumerate(_get(*a, **k)):
            if {mode!r} == "per_sample":
                th.manual_seed(sample_seed({seed}, {offset} + i))
            elif i == 0:
                th.manual_seed({seed})
            yield batch
    return seeded()
conf.get_dataloader = get_dataloader
test.main(conf)
"""

# A random checkpoint made by the original's own constructors (guided-diffusion key names and shapes).
WEIGHTS_SHIM = r"""
import inspect, sys
sys.path.insert(0, {root!r})
import torch as th
from guided_diffusion.script_util import create_classifier, create_model
from utils import yamlread

def random_state(module, seed):
    th.manual_seed(seed)
    return {{k: th.randn(v.shape) * 0.05 if v.is_floating_point() else v for k, v in module.state_dict().items()}}

def build(fn, conf):
    return fn(**{{k: conf[k] for k in inspect.signature(fn).parameters if k in conf and k != "conf"}})

conf = yamlread({conf!r})
th.save(random_state(build(create_model, conf), 1), conf["model_path"])
if conf.get("classifier_path"):
    th.save(random_state(build(create_classifier, conf), 2), conf["classifier_path"])
"""

# Small nets at 32² unless a case says otherwise; the jump schedule over K respaced steps.
SMALL = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2,2",
    attention_resolutions="16,8",
    num_heads=2,
    num_head_channels=-1,
    resblock_updown=True,
    use_scale_shift_norm=True,
    learn_sigma=True,
    timestep_respacing="20",
    schedule_jump_params=dict(t_T=20, n_sample=1, jump_length=3, jump_n_sample=2),
)
CLASSIFIER = dict(
    class_cond=True,
    cond_y=7,
    classifier_scale=2.0,
    classifier_width=64,
    classifier_depth=1,
    classifier_attention_resolutions="32,16,8",
    classifier_pool="attention",
    classifier_use_scale_shift_norm=True,
    classifier_resblock_updown=True,
)
FAST = dict(timestep_respacing="10", schedule_jump_params=dict(t_T=10, n_sample=1, jump_length=2, jump_n_sample=2))
# name: (flags over test_c256_thick.yml, images, conf batch size, noise, photos at full size with soft masks)
CASES = {
    "learned32": (SMALL, 3, 1, "per_sample", False),
    "fp16_32": (dict(SMALL, use_fp16=True, num_head_channels=16), 3, 1, "per_sample", False),
    "new_attention32": (dict(SMALL, use_new_attention_order=True), 3, 1, "per_sample", False),
    "classifier64": (dict(SMALL, image_size=64, channel_mult="", **CLASSIFIER), 3, 1, "per_sample", True),
    "cosine32": (
        dict(
            SMALL,
            noise_schedule="cosine",
            timestep_respacing="50",
            schedule_jump_params=dict(t_T=50, n_sample=1, jump_length=5, jump_n_sample=3),
        ),
        3,
        1,
        "per_sample",
        False,
    ),
    "global_b2": (SMALL, 3, 2, "global", False),
    "batch3": (SMALL, 3, 3, "per_sample", False),
    "topology256": (dict(num_channels=64, **FAST), 2, 1, "per_sample", False),
}
PHOTOS = ("astronaut", "coffee", "chelsea")


def square(arr: np.ndarray, size: int) -> Image.Image:
    """The centre square of a photo resized to ``size`` (so that the loaders' own resize is the identity)."""
    h, w = arr.shape[:2]
    s = min(h, w)
    crop = arr[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return Image.fromarray(crop).resize((size, size), Image.BICUBIC)


def hole_mask(h: int, w: int, k: int) -> Image.Image:
    """255 = known, with a rectangular hole and a disc, placed differently for every ``k``."""
    mask = np.full((h, w), 255, np.uint8)
    mask[h // 4 + k * h // 16 : h // 2 + k * h // 16, w // 5 : w // 2 + k * w // 10] = 0
    yy, xx = np.mgrid[:h, :w]
    mask[(yy - 2 * h // 3) ** 2 + (xx - (2 + k) * w // 6) ** 2 < (min(h, w) // 8) ** 2] = 0
    return Image.fromarray(mask)


def write_images(folder: str, count: int, size: int, full_size: bool) -> None:
    import skimage.data

    os.makedirs(os.path.join(folder, "gts"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    for k, name in enumerate(PHOTOS[:count]):
        arr = getattr(skimage.data, name)()
        image = Image.fromarray(arr) if full_size else square(arr, size)
        image.save(os.path.join(folder, "gts", f"{k:02d}_{name}.png"))
        hole_mask(image.height, image.width, k).save(os.path.join(folder, "masks", f"{k:02d}_{name}.png"))


def build_case(name: str, repaint_root: str, work: str) -> tuple[str, str]:
    """Write the case's images, masks, conf and random checkpoints under ``work/case``; (conf path, noise)."""
    flags, count, batch, noise, full_size = CASES[name]
    folder = os.path.join(work, "case")
    with open(os.path.join(repaint_root, "confs", "test_c256_thick.yml")) as f:
        conf = yaml.safe_load(f)
    conf.update(flags, name=name, model_path=os.path.join(folder, "model.pt"))
    conf["classifier_path"] = os.path.join(folder, "classifier.pt") if "classifier_scale" in flags else None
    conf.setdefault("classifier_scale", 0.0) if "classifier_scale" in flags else conf.update(classifier_scale=0.0)
    write_images(folder, count, conf["image_size"], full_size)
    entry = dict(
        mask_loader=True,
        gt_path=os.path.join(folder, "gts"),
        mask_path=os.path.join(folder, "masks"),
        image_size=conf["image_size"],
        deterministic=True,
        random_crop=False,
        random_flip=False,
        return_dict=True,
        drop_last=False,
        batch_size=batch,
        return_dataloader=True,
        max_len=count,
        paths={k: os.path.join(folder, "log", v) for k, v in KINDS.items()},
    )
    conf["data"] = {"eval": {name: entry}}
    path = write_yaml(conf, os.path.join(folder, "conf.yml"))
    shim = WEIGHTS_SHIM.format(root=os.path.abspath(repaint_root), conf=path)
    subprocess.run([sys.executable, "-c", shim], check=True, env=shim_env(repaint_root))
    return path, noise


def redirected_conf(conf: dict, out: str, per_sample: bool) -> dict:
    conf = dict(conf, show_progress=False)
    ((name, entry),) = conf["data"]["eval"].items()
    entry = dict(entry, paths={k: os.path.join(out, v) for k, v in KINDS.items()})
    if per_sample:
        entry["batch_size"] = 1
    conf["data"] = {"eval": {name: entry}}
    return conf


def first_index(conf: dict) -> int:
    """The index (in the full sorted image list) of the conf's first image: its ``offset``."""
    ((_, entry),) = conf["data"]["eval"].items()
    return int(entry.get("offset") or 0)


def write_yaml(obj: dict, path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(obj, f)
    return path


def shim_env(repaint_root: str) -> dict:
    path = [os.path.abspath(repaint_root), ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def compare(a: str, b: str) -> int:
    worst = 0
    for kind in KINDS.values():
        names = sorted(os.listdir(os.path.join(a, kind)))
        if names != sorted(os.listdir(os.path.join(b, kind))):
            sys.exit(f"{kind}: the two programs wrote different files")
        diff = max(
            int(
                np.abs(
                    np.array(Image.open(os.path.join(a, kind, n)), dtype=int)
                    - np.array(Image.open(os.path.join(b, kind, n)), dtype=int)
                ).max()
            )
            for n in names
        )
        print(f"{kind:13s} {len(names)} images, largest difference {diff}/255")
        worst = max(worst, diff)
    return worst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repaint_root", required=True)
    p.add_argument("--conf", help="an original conf (or use --case)")
    p.add_argument("--case", choices=sorted(CASES), help="build a small setup in --work/case and compare on it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", choices=["per_sample", "global"], default=None, help="default: per_sample, or the case's")
    p.add_argument("--work", default="compare_original")
    p.add_argument("--tolerance", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more eval.py arguments (after --)")
    args = p.parse_args()
    if (args.conf is None) == (args.case is None):
        p.error("give exactly one of --conf and --case")
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    conf_path, noise = (
        (args.conf, "per_sample") if args.case is None else build_case(args.case, args.repaint_root, work)
    )
    noise = args.noise or noise
    with open(conf_path) as f:
        conf = yaml.safe_load(f)
    per_sample = noise == "per_sample"
    theirs = write_yaml(
        redirected_conf(conf, os.path.join(work, "original"), per_sample), os.path.join(work, "original.yml")
    )
    ours = write_yaml(redirected_conf(conf, os.path.join(work, "ours"), False), os.path.join(work, "ours.yml"))
    shim = SHIM.format(
        root=os.path.abspath(args.repaint_root), conf=theirs, mode=noise, seed=args.seed, offset=first_index(conf)
    )
    subprocess.run([sys.executable, "-c", shim], check=True, env=shim_env(args.repaint_root))
    command = [sys.executable, os.path.join(ROOT, "eval.py"), "--repaint_conf", ours, "--seed", str(args.seed)]
    subprocess.run([*command, "--model.noise", noise, *args.extra], check=True)
    worst = compare(os.path.join(work, "original"), os.path.join(work, "ours"))
    print(f"largest difference {worst}/255 (tolerance {args.tolerance})")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
