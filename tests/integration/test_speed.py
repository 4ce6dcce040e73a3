"""The speed path gives the same pictures as the plain fp32 path (within stated tolerances), and the benchmark runs."""

import json

import pytest
import torch
from conftest import randomize

from repaint_pl.apps.bench import main as bench_main
from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.module import RePaintModule
from repaint_pl.nets import UNetConfig
from repaint_pl.schedules import JumpSchedule


def module(**kw):
    torch.manual_seed(0)
    m = RePaintModule(
        net=UNetConfig(preset="tiny", use_new_attention_order=True),
        diffusion=DiffusionConfig(timestep_respacing="10"),
        schedule=JumpSchedule(jump_length=2, jump_n_sample=2),
        **kw,
    )
    randomize(m.net)
    return m.eval()


def batch():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    mask = torch.ones(3, 1, 32, 32)
    mask[..., 8:24, 4:20] = 0
    return image, mask, torch.arange(3)


@pytest.fixture(scope="module")
def reference():
    with torch.no_grad():
        return module().inpaint(*batch())


@pytest.mark.parametrize(
    "options,tolerance",
    [
        (dict(channels_last=True), 1e-4),  # same math, another memory layout
        (dict(attention="sdpa"), 1e-4),  # fused attention: float reassociation only
    ],
)
def test_layout_and_attention_match_fp32(reference, options, tolerance):
    with torch.no_grad():
        out = module(**options).inpaint(*batch())
    assert (out - reference).abs().max() <= tolerance


@pytest.mark.slow
def test_bf16_autocast_stays_close_to_fp32(reference):
    """bf16 networks round differently; the pictures stay within 0.005 on average and 0.05 at worst (in [-1, 1])."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(channels_last=True, attention="sdpa").inpaint(*batch())
    diff = (out - reference).abs()
    assert out.dtype == torch.float32 and diff.mean() < 0.005 and diff.max() < 0.05


@pytest.mark.slow
def test_compiled_network_matches_eager(reference):
    with torch.no_grad():
        out = module(compile="default").inpaint(*batch())
    assert (out - reference).abs().max() <= 1e-3


def test_compiled_module_keeps_plain_checkpoint_keys():
    m = module(compile="default")
    assert all(k.startswith("net.") for k in m.state_dict())


@pytest.mark.slow
def test_benchmark_runs_and_saves_its_report(tmp_path):
    out = tmp_path / "bench.json"
    r = bench_main(
        [
            "--override.preset",
            "tiny",
            "--override.image_size",
            "32",
            "--override.channels",
            "3",
            "--override.steps",
            "6",
            "--override.jump_length",
            "2",
            "--override.jump_n_sample",
            "2",
            "--override.batch_sizes",
            "[1]",
            "--override.sweep_calls",
            "2",
            "--override.repeats",
            "1",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["network_calls"] == r["network_calls"] == 6 + 2 * 2  # jump points 0 and 2, one 2-step jump each
    assert all(saved[k] == pytest.approx(r[k]) for k in ("repaint_s", "network_s", "diffusers_s", "fast_repaint_s"))
    assert r["overhead_same_run"] >= 1  # the network's time is part of the sampling's
    assert r["batch_sweep"][0]["batch"] == 1 and r["batch_sweep"][0]["peak_mib"] > 0


def test_benchmark_clock_and_call_counts_are_what_happens(monkeypatch):
    """The figures' ingredients checked against independent counts: a network that takes a known 20 ms per
    call is called as often as the time table says, by this project's sampler and by diffusers' pipeline
    alike, and the clock around it reads the time really spent inside."""
    import time

    from repaint_pl.apps import bench
    from repaint_pl.schedules import count_network_calls

    setup = bench.BenchSetup(preset="tiny", image_size=32, channels=3, steps=6, jump_length=2, jump_n_sample=2)
    m = bench.make_module(setup, fast=False, compile=False)
    calls, real = [], m.denoiser.forward_net

    def slow_net(*args, **kwargs):
        calls.append(1)
        time.sleep(0.02)
        return real(*args, **kwargs)

    m.denoiser.forward_net = slow_net
    with torch.no_grad():
        total, inside = bench.repaint_timings(m, setup, 1)
    assert len(calls) == count_network_calls(m.times) == 10
    assert 0.02 * 10 <= inside <= total
    calls.clear()
    total, inside = bench.diffusers_timings(m, setup, 1)
    assert len(calls) == 10  # diffusers is timed on the same number of calls
    assert 0.02 * 10 <= inside <= total


def test_benchmark_overrides_apply_also_when_equal_to_a_default():
    """``--override.FIELD`` replaces the named setup's value whatever it is: ``--setup gpu --override.device cpu``
    runs on the CPU (an override equal to the dataclass default was dropped before), and unnamed fields stay."""
    from repaint_pl.apps.bench import SETUPS, parse_args

    setup, out = parse_args(["--setup", "gpu", "--override.device", "cpu", "--override.autocast", "null"])
    assert setup.device == "cpu" and setup.autocast is None
    assert setup.preset == SETUPS["gpu"].preset == "celeba256" and setup.batch_sizes == SETUPS["gpu"].batch_sizes
    setup, _ = parse_args(["--setup", "gpu", "--override.device", "cpu", "--override.batch_size", "8"])
    assert setup.batch_size == 8 and setup.compile == SETUPS["gpu"].compile  # 8: both the gpu value and a default
    assert parse_args([])[0] == SETUPS["cpu"] and out == "bench_results.json"
    with pytest.raises(ValueError, match="--setup tpu"):
        parse_args(["--setup", "tpu"])
