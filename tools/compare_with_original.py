"""Check eval.py against the original RePaint code: same conf, same checkpoint, same Gaussian numbers.

    python tools/compare_with_original.py --repaint_root ~/RePaint --conf confs/face_example.yml --seed 3

``--repaint_root`` is your own checkout of https://github.com/andreas128/RePaint (not part of this
project; it needs ``blobfile`` importable).  Both programs run on the given conf with their output
folders redirected to ``--work``; then every PNG they wrote is compared and the largest difference
per folder is printed.  The original is made to draw the same numbers as this project:

* ``--noise per_sample`` (default): the original runs with batch size 1 and its global generator is
  seeded with ``sample_seed(seed, i)`` before image i, which is what this project's per-sample
  generator for sample id i draws from (at any batch size);
* ``--noise global``: the original's global generator is seeded once with ``seed`` before the first
  batch, which is this project's ``--model.noise global``.

The original RePaint has no cosine beta schedule; for confs that ask for one (ImageNet 64) the
shim gives it guided-diffusion's.  Exit status 1 if any pixel differs by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import yaml
from PIL import Image

KINDS = {"srs": "inpainted", "lrs": "gt_masked", "gts": "gt", "gt_keep_masks": "gt_keep_mask"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHIM = r"""
import sys
sys.path.insert(0, {root!r})
import torch as th
import conf_mgt, test
import guided_diffusion.gaussian_diffusion as gd
from utils import yamlread
from repaint_pl.noise import sample_seed
from repaint_pl.schedules import named_betas
_betas = gd.get_named_beta_schedule
gd.get_named_beta_schedule = lambda name, n, scale: named_betas(name, n) if name == "cosine" else _betas(name, n, scale)
conf = conf_mgt.conf_base.Default_Conf()
conf.update(yamlread({conf!r}))
_get = conf.get_dataloader
def get_dataloader(*a, **k):
    def seeded():
        for i, batch in enumerate(_get(*a, **k)):
            if {mode!r} == "per_sample":
                th.manual_seed(sample_seed({seed}, i))
            elif i == 0:
                th.manual_seed({seed})
            yield batch
    return seeded()
conf.get_dataloader = get_dataloader
test.main(conf)
"""


def redirected_conf(conf: dict, out: str, per_sample: bool) -> dict:
    conf = dict(conf, show_progress=False)
    ((name, entry),) = conf["data"]["eval"].items()
    entry = dict(entry, paths={k: os.path.join(out, v) for k, v in KINDS.items()})
    if per_sample:
        entry["batch_size"] = 1
    conf["data"] = {"eval": {name: entry}}
    return conf


def write_yaml(obj: dict, path: str) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(obj, f)
    return path


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
    p.add_argument("--conf", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", choices=["per_sample", "global"], default="per_sample")
    p.add_argument("--work", default="compare_original")
    p.add_argument("--tolerance", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more eval.py arguments (after --)")
    args = p.parse_args()
    with open(args.conf) as f:
        conf = yaml.safe_load(f)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    per_sample = args.noise == "per_sample"
    theirs = write_yaml(
        redirected_conf(conf, os.path.join(work, "original"), per_sample), os.path.join(work, "original.yml")
    )
    ours = write_yaml(redirected_conf(conf, os.path.join(work, "ours"), False), os.path.join(work, "ours.yml"))
    shim = SHIM.format(root=os.path.abspath(args.repaint_root), conf=theirs, mode=args.noise, seed=args.seed)
    path = [os.path.abspath(args.repaint_root), ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    subprocess.run([sys.executable, "-c", shim], check=True, env=env)
    subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "eval.py"),
            "--repaint_conf",
            ours,
            "--seed",
            str(args.seed),
            "--model.noise",
            args.noise,
            *args.extra,
        ],
        check=True,
    )
    worst = compare(os.path.join(work, "original"), os.path.join(work, "ours"))
    print(f"largest difference {worst}/255 (tolerance {args.tolerance})")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
