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
     ("smc", ["--model.sampler.init_args.particles", "2"], 3 * 2),
     ("smc", ["--model.sampler.init_args.particles", "2", "--model.sampler.init_args.observation_noise", "0.1"], 6)],
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


def test_noisy_known_values_from_the_command_line(tmp_path):
    """``observation_noise`` reaches the sampler; a negative one is a one-line error naming the field."""
    from repaint_pl.sampling import SMCSampler

    args = ["--config", DEMO, "--config", os.path.join(ROOT, "configs", "sampler", "smc.yaml"),
            "--model.sampler.init_args.steps", "2", "--model.sampler.init_args.particles", "2",
            "--data.init_args.mask_types", '["thick"]', "--metrics.enabled", "false",
            "--progress.refresh_rate", "0"]  # fmt: skip
    noise = "--model.sampler.init_args.observation_noise"
    run = eval_main([*args, noise, "0.2", "--writer.out_dir", str(tmp_path / "a")])
    assert isinstance(run.model.sampler, SMCSampler) and run.model.sampler.noisy
    assert float(run.model.sampler.noise_var) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="observation_noise=-0.1"):
        eval_main([*args, noise, "-0.1", "--writer.out_dir", str(tmp_path / "b")])
