"""Benchmark: RePaint sampling against the bare network and against diffusers' RePaintPipeline.

    python -m repaint_pl.apps.bench                 # CPU configuration, about 2 minutes
    python -m repaint_pl.apps.bench --setup gpu     # ADM-256 (CelebA-HQ architecture, random weights) on a GPU
    python -m repaint_pl.apps.bench --setup gpu --override.batch_size 4   # a setup with some fields changed

Every figure comes from one run and the same process:
(a) the network alone, called as often as the schedule calls it, at the same batch size;
(b) RePaint sampling with this project, and (b / a) its overhead;
(c) diffusers' RePaintPipeline driving the same network (its ε channels) through the same time table
    (same calls, same batch), and the time ratio;
(d) the speed path (channels_last, SDPA attention, autocast, optionally torch.compile) against plain fp32;
(e) images/s and peak memory against batch size (speed path, eager), and the seconds per image of the
    paper's schedule (2410 network calls) extrapolated from the measured time per call.

Timings on a shared machine drift between runs; every figure is the best of interleaved rounds, and
the sampler's own overhead is also measured inside a single sampling run (network time recorded around
each call), which drift cannot affect.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from repaint_pl.diffusion import DiffusionConfig
from repaint_pl.files import write_json
from repaint_pl.module import RePaintModule
from repaint_pl.nets import UNetConfig
from repaint_pl.schedules import JumpSchedule, count_network_calls

from .cli import check_device, run
from .measure import timed

PAPER_CALLS = 2410


@dataclass
class BenchSetup:
    """What to measure. ``jump_length``/``jump_n_sample``/``steps`` define the measured time table."""

    preset: str = "texture32"
    image_size: int = 64
    channels: int = 1
    batch_size: int = 4
    steps: int = 30
    jump_length: int = 5
    jump_n_sample: int = 2
    device: str = "cpu"
    autocast: Optional[str] = None  # the fast path's autocast dtype: bf16 / fp16 / None
    compile: Optional[str] = None  # torch.compile mode of the fast path (None: eager)
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    sweep_calls: int = 10  # network calls per batch-size point
    diffusers: bool = True
    repeats: int = 3  # interleaved rounds; each figure is the best round


SETUPS = {
    # the shipped texture model's architecture on 64² crops; the speed path compiles the network (~1 min)
    "cpu": BenchSetup(steps=24, jump_length=4, jump_n_sample=2, compile="default", repeats=2, sweep_calls=6),
    # ADM-256 over the paper's 250 steps with fewer jumps (490 calls); the paper's 2410 are extrapolated
    "gpu": BenchSetup(
        preset="celeba256",
        image_size=256,
        channels=3,
        batch_size=8,
        steps=250,
        jump_length=10,
        jump_n_sample=2,
        device="cuda",
        autocast="bf16",
        compile="max-autotune-no-cudagraphs",
        batch_sizes=[1, 4, 8, 16, 32],
        sweep_calls=20,
        repeats=2,
    ),
}


class PeakMemory:
    """Peak memory during a block: CUDA allocator peak, or resident set size sampled every 2 ms on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()


class EpsOnly(nn.Module):
    """The ε channels of a guided-diffusion UNet ``net(x, t)``, with the interface diffusers' pipelines expect."""

    def __init__(self, net: Callable[..., torch.Tensor], device: str | torch.device = "cpu"):
        super().__init__()
        self.net, self._device = net, torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> Any:
        t = t.reshape(-1).expand(x.shape[0]) if t.dim() else t.expand(x.shape[0])
        return type("Output", (), {"sample": self.net(x, t)[:, : x.shape[1]]})


def make_module(setup: BenchSetup, fast: bool, compile: bool = True) -> RePaintModule:
    net = UNetConfig(preset=setup.preset, image_size=setup.image_size, in_channels=setup.channels, use_fp16=False)
    module = RePaintModule(
        net=net,
        diffusion=DiffusionConfig(timestep_respacing=str(setup.steps)),
        schedule=JumpSchedule(jump_length=setup.jump_length, jump_n_sample=setup.jump_n_sample),
        attention="sdpa" if fast else "einsum",
        channels_last=fast,
        compile=setup.compile if fast and compile else None,
    )
    return module.to(setup.device).eval()


def inputs(setup: BenchSetup, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, setup.channels, setup.image_size, setup.image_size, generator=g) * 2 - 1
    mask = torch.ones(batch, 1, setup.image_size, setup.image_size)
    s = setup.image_size
    mask[..., s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 0
    return image.to(setup.device), mask.to(setup.device), torch.arange(batch, device=setup.device)


def autocast(setup: BenchSetup, fast: bool):
    if not (fast and setup.autocast):
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[setup.autocast]
    return torch.autocast(torch.device(setup.device).type, dtype=dtype)


def network_only(module: RePaintModule, setup: BenchSetup, calls: int, batch: int, fast: bool = False) -> float:
    image, _, _ = inputs(setup, batch)
    d = module.sampling.to(image.device)
    t = torch.full((batch,), d.num_timesteps // 2, device=image.device)
    x, denoiser = image, module.denoiser

    def run() -> None:
        with autocast(setup, fast):
            for _ in range(calls):
                denoiser.forward_net(x, d.model_time(t))

    return timed(run, torch.device(setup.device))


class NetworkClock:
    """Time spent inside the ADM denoiser's network callable (``forward_net``) during a run (CUDA events on
    GPUs: no extra synchronisation).  The clock wraps the denoiser's callable; the module is untouched."""

    def __init__(self, module: RePaintModule):
        self.denoiser, self.cuda = module.denoiser, module.device.type == "cuda"
        self.spans: list[Any] = []

    def _timed_forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = self.forward(*args, **kwargs)
            end.record()
            self.spans.append((start, end))
        else:
            start = time.perf_counter()
            out = self.forward(*args, **kwargs)
            self.spans.append(time.perf_counter() - start)
        return out

    def __enter__(self) -> "NetworkClock":
        self.forward = self.denoiser.forward_net
        self.denoiser.forward_net = self._timed_forward
        return self

    def __exit__(self, *exc: Any) -> None:
        self.denoiser.forward_net = self.forward

    def seconds(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return sum(s.elapsed_time(e) for s, e in self.spans) / 1000
        return sum(self.spans)


def repaint_time(
    module: RePaintModule, setup: BenchSetup, batch: int, fast: bool = False, times: Optional[list[int]] = None
) -> float:
    return repaint_timings(module, setup, batch, fast, times)[0]


def repaint_timings(
    module: RePaintModule, setup: BenchSetup, batch: int, fast: bool = False, times: Optional[list[int]] = None
) -> tuple[float, float]:
    """(seconds of the whole sampling, seconds spent in the network during it)."""
    image, mask, ids = inputs(setup, batch)
    clock = NetworkClock(module)

    def run() -> None:
        with autocast(setup, fast), clock:
            module.inpaint(image, mask, ids, times=times)

    total = timed(run, torch.device(setup.device))
    return total, clock.seconds()


def diffusers_time(module: RePaintModule, setup: BenchSetup, batch: int) -> float:
    return diffusers_timings(module, setup, batch)[0]


def diffusers_timings(module: RePaintModule, setup: BenchSetup, batch: int) -> tuple[float, float]:
    """(seconds of diffusers' RePaintPipeline on the same network and time table, seconds in the network)."""
    from diffusers import RePaintPipeline, RePaintScheduler

    clock = NetworkClock(module)
    unet = EpsOnly(lambda x, t: module.denoiser.forward_net(x, t), module.device)  # through the clock
    pipe = RePaintPipeline(unet=unet, scheduler=RePaintScheduler(num_train_timesteps=1000))
    pipe.set_progress_bar_config(disable=True)
    image, mask, _ = inputs(setup, batch)
    generator = torch.Generator(setup.device).manual_seed(0)

    def run() -> None:
        with clock:
            pipe(
                image=image,
                mask_image=mask.expand_as(image),
                num_inference_steps=setup.steps,
                jump_length=setup.jump_length,
                jump_n_sample=setup.jump_n_sample,
                generator=generator,
                output_type="np",
            )

    return timed(run, torch.device(setup.device)), clock.seconds()


def best_of(repeats: int, *measurements: Callable[[], float]) -> list[float]:
    """Each measurement's shortest time over ``repeats`` interleaved rounds (filters out noise from the machine)."""
    best = [float("inf")] * len(measurements)
    for _ in range(repeats):
        best = [min(b, m()) for b, m in zip(best, measurements)]
    return best


def run_benchmark(setup: BenchSetup) -> dict[str, Any]:
    device = torch.device(setup.device)
    plain, fast = make_module(setup, fast=False), make_module(setup, fast=True)
    fast.load_state_dict(plain.state_dict())
    calls, B = count_network_calls(plain.times), setup.batch_size
    r: dict[str, Any] = {
        "setup": asdict(setup),
        "network_calls": calls,
        "device_name": device_name(device),
        "repeats": setup.repeats,
        "torch": torch.__version__,
    }
    measurements = {
        "network_s": lambda: network_only(plain, setup, calls, B),
        "repaint_s": lambda: repaint_time(plain, setup, B),
        "fast_network_s": lambda: network_only(fast, setup, calls, B, True),
        "fast_repaint_s": lambda: repaint_time(fast, setup, B, True),
    }
    if setup.diffusers:
        measurements["diffusers_s"] = lambda: diffusers_time(plain, setup, B)
    with torch.no_grad():
        for m, f in ((plain, False), (fast, True)):  # warm-up (and compilation)
            network_only(m, setup, 2, B, f)
            repaint_time(m, setup, B, f, times=list(range(2, -2, -1)))
        # all measurements interleaved round by round; each keeps its best round
        r.update(zip(measurements, best_of(setup.repeats, *measurements.values())))
        # the sampler's own work, measured inside one sampling run (immune to the machine's speed drifting)
        transitions = len(plain.times) - 1
        total, inside = repaint_timings(plain, setup, B)
        r["overhead_same_run"] = total / inside
        r["sampler_ms_per_transition"] = (total - inside) / transitions * 1e3
        if setup.diffusers:
            total, inside = diffusers_timings(plain, setup, B)
            r["diffusers_overhead_same_run"] = total / inside
            r["diffusers_ms_per_transition"] = (total - inside) / transitions * 1e3
        eager = make_module(setup, fast=True, compile=False)  # batch sizes would each recompile
        eager.load_state_dict(plain.state_dict())
        r["batch_sweep"] = batch_sweep(eager, setup)
    r["overhead"] = r["repaint_s"] / r["network_s"]
    r["fast_overhead"] = r["fast_repaint_s"] / r["fast_network_s"]
    r["fast_vs_plain"] = r["fast_repaint_s"] / r["repaint_s"]
    r["paper_s_per_image"] = r["fast_repaint_s"] / calls * PAPER_CALLS / B
    if setup.diffusers:
        r["repaint_vs_diffusers"] = r["repaint_s"] / r["diffusers_s"]
        r["fast_vs_diffusers"] = r["fast_repaint_s"] / r["diffusers_s"]
    return r


def batch_sweep(module: RePaintModule, setup: BenchSetup) -> list[dict[str, float]]:
    times = list(range(setup.sweep_calls - 1, -2, -1))
    rows = []
    for batch in setup.batch_sizes:
        repaint_time(module, setup, batch, True, times=[1, 0, -1])  # warm-up at this batch size
        with PeakMemory(torch.device(setup.device)) as mem:
            seconds = repaint_time(module, setup, batch, True, times=times)
        rows.append(
            {
                "batch": batch,
                "images_per_s": batch / seconds * setup.sweep_calls / PAPER_CALLS,
                "s_per_call": seconds / setup.sweep_calls,
                "peak_mib": mem.peak / 2**20,
            }
        )
    return rows


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def report(r: dict[str, Any]) -> str:
    s = r["setup"]
    lines = [
        f"{s['preset']} at {s['image_size']}², batch {s['batch_size']}, {r['network_calls']} network calls "
        f"({s['steps']} steps, jumps {s['jump_length']}×{s['jump_n_sample']}) on {r['device_name']}, "
        f"torch {r['torch']}, best of {r['repeats']} interleaved rounds",
        "",
        "| measurement | seconds | ratio |",
        "|---|---|---|",
        f"| (a) network alone | {r['network_s']:.2f} | |",
        f"| (b) RePaint, this project | {r['repaint_s']:.2f} | {r['overhead']:.3f} × network |",
        f"| (b) within one run: RePaint / its own network time | | {r['overhead_same_run']:.4f} × "
        f"({r['sampler_ms_per_transition']:.2f} ms of sampler work per transition) |",
    ]
    if "diffusers_s" in r:
        lines.append(
            f"| (c) diffusers RePaintPipeline, same network | {r['diffusers_s']:.2f} | "
            f"this project = {r['repaint_vs_diffusers']:.3f} × diffusers |"
        )
        lines.append(
            f"| (c) within one run: diffusers / its own network time | | "
            f"{r['diffusers_overhead_same_run']:.4f} × ({r['diffusers_ms_per_transition']:.2f} ms of "
            f"sampler work per transition) |"
        )
    fast = ", ".join(
        x
        for x in [
            "channels_last",
            "SDPA",
            s["autocast"] and f"{s['autocast']} autocast",
            s["compile"] and f"compile {s['compile']}",
        ]
        if x
    )
    lines += [
        f"| (d) network alone, speed path ({fast}) | {r['fast_network_s']:.2f} | |",
        f"| (d) RePaint, speed path | {r['fast_repaint_s']:.2f} | {r['fast_overhead']:.3f} × its network, "
        f"{r['fast_vs_plain']:.3f} × plain fp32"
        + (f", {r['fast_vs_diffusers']:.3f} × diffusers |" if "fast_vs_diffusers" in r else " |"),
        "",
        f"Paper schedule (2410 calls), speed path: {r['paper_s_per_image']:.1f} s per image at batch {s['batch_size']}",
        "",
        "| batch (speed path, eager) | images/s (paper schedule) | s per call | peak memory MiB |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b['batch']} | {b['images_per_s']:.4f} | {b['s_per_call']:.3f} | {b['peak_mib']:.0f} |"
        for b in r["batch_sweep"]
    ]
    return "\n".join(lines)


def parse_args(args: Optional[list[str]] = None) -> tuple[BenchSetup, str]:
    """(what to measure, the JSON path): the ``--setup`` named, with every ``--override.FIELD`` given applied,
    also one equal to a default (``--setup gpu --override.device cpu`` runs on the CPU)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m repaint_pl.apps.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--setup", type=str, default="cpu", help=f"one of {', '.join(SETUPS)}, then the overrides")
    parser.add_class_arguments(BenchSetup, "override", default=None)
    parser.add_argument("--out", type=str, default="bench_results.json", help="the results as JSON")
    cfg = parser.parse_args(args)
    if cfg.setup not in SETUPS:
        raise ValueError(f"--setup {cfg.setup}: expected one of {', '.join(SETUPS)}")
    given = parser.parse_args(args, defaults=False).get("override")  # only what the command line names
    setup = BenchSetup(**{**asdict(SETUPS[cfg.setup]), **(given.as_dict() if given else {})})
    check_device(setup.device)
    return setup, cfg.out


def main(args: Optional[list[str]] = None) -> dict[str, Any]:
    setup, out = parse_args(args)
    result = run_benchmark(setup)
    write_json(result, out, indent=2)
    print(report(result))
    print(f"\n(written to {out})")
    return result


if __name__ == "__main__":
    run(main)
