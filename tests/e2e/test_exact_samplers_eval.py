"""eval.py with configs/sampler/lanpaint.yaml and smc.yaml on the shipped texture model (cut to 3 levels):
it runs, scores every picture, and each sampler's own call count (not the model's time table) reaches
metrics.csv."""

import csv
import os

import pytest

from repaint_pl.cli import eval_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "configs", "demo", "texture.yaml")


@pytest.mark.parametrize(
    "name, extra, calls",
    [("lanpaint", ["--model.sampler.init_args.thinking", "1"], 3 * (1 + 1)),
     ("smc", ["--model.sampler.init_args.particles", "2"], 3 * 2)],
)  # fmt: skip
def test_eval_runs_the_sampler_from_its_config(tmp_path, name, extra, calls):
    out = str(tmp_path / name)
    eval_main(
        ["--config", DEMO, "--config", os.path.join(ROOT, "configs", "sampler", f"{name}.yaml")]
        + ["--model.sampler.init_args.steps", "3", *extra, "--data.init_args.mask_types", '["thick"]']
        + ["--metrics.lpips", "[]", "--writer.out_dir", out, "--progress.refresh_rate", "0"]
    )
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert rows and {int(r["network_calls"]) for r in rows} == {calls}
    assert all(float(r["psnr"]) > 0 for r in rows)
