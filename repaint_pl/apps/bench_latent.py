"""Benchmark: latent RePaint (Stable Diffusion) against diffusers' RePaintScheduler on the same components;
SD3 and FLUX against diffusers' inpainting pipelines at equal network calls.

    python -m repaint_pl.apps.bench_latent                            # tiny random SD components, CPU, about a minute
    python -m repaint_pl.apps.bench_latent --setup.pretrained sd15/   # a real Stable Diffusion folder (GPU recommended)
    python -m repaint_pl.apps.bench_latent --setup.model sd3          # tiny SD3 (or flux); --setup.pretrained a folder

Both sides get the same UNet, VAE, text encoder, prompt, guidance (one batched network call on
[unconditional; conditional] per step), pictures, masks and RePaint time table, and do the same
work around the sampler (prompt encoding, VAE encoding of the known image, decoding, paste):
(a) this project: ``RePaintModule`` with ``StableDiffusionDenoiser`` + ``LatentSpace``;
(b) diffusers: its ``RePaintScheduler`` (``set_timesteps(steps, jump_length, jump_n_sample)``,
    ``step`` on reverse moves, ``undo_step`` on jumps) driven by the loop of its RePaintPipeline, in
    latent space (diffusers has no latent RePaint pipeline in its package).
The network calls of both are counted and must be equal; each time is the best of interleaved rounds
in one run, and the ratio (a)/(b) is printed.

SD3 / FLUX (``--setup.model sd3|flux``): (a) ``RePaintModule`` with ``SD3Denoiser``/``FluxDenoiser`` +
``LatentSpace`` (RePaint on the rectified flow); (b) diffusers' ``StableDiffusion3InpaintPipeline`` /
``FluxInpaintPipeline`` built from the same components, at strength 1 with as many steps as (a) makes
network calls.  The samplers differ, so the figure that compares the frameworks is the time outside the
transformer (the transformer's calls are timed by forward hooks on the one module both sides call).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal, Optional

import torch

from repaint_pl.denoisers import StableDiffusionDenoiser
from repaint_pl.files import write_json
from repaint_pl.module import RePaintModule
from repaint_pl.schedules import JumpSchedule
from repaint_pl.spaces import LatentSpace, paste

from .cli import check_device, run
from .measure import timed


@dataclass
class LatentBenchSetup:
    pretrained: Optional[str] = None  # None: tiny random components built here
    model: Literal["sd", "sd3", "flux"] = "sd"  # Stable Diffusion 1.x/2.x, SD3/SD3.5 or FLUX
    image_size: int = 64
    batch_size: int = 2
    steps: int = 20
    jump_length: int = 5
    jump_n_sample: int = 2
    guidance_scale: float = 7.5
    prompt: str = "a photo of a cat"
    device: str = "cpu"
    repeats: int = 3


class CountingUNet(torch.nn.Module):
    """The UNet, counting its calls and the seconds spent inside it (both sides go through it)."""

    def __init__(self, unet: torch.nn.Module, device: str = "cpu"):
        super().__init__()
        self.unet, self.calls, self.seconds, self.config, self.device = unet, 0, 0.0, unet.config, device

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        start = time.perf_counter()
        out = self.unet(*args, **kwargs)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


def inputs(setup: LatentBenchSetup) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    s = setup.image_size
    image = (torch.rand(setup.batch_size, 3, s, s, generator=g) * 2 - 1).to(setup.device)
    keep = torch.ones(setup.batch_size, 1, s, s, device=setup.device)
    keep[:, :, s // 4 : 3 * s // 4, s // 8 : s // 2] = 0
    return image, keep


def ours(module: RePaintModule, setup: LatentBenchSetup) -> Callable[[], torch.Tensor]:
    image, keep = inputs(setup)
    ids = torch.arange(setup.batch_size, device=setup.device)
    return lambda: module.inpaint(image, keep, ids)


def theirs(module: RePaintModule, setup: LatentBenchSetup) -> Callable[[], torch.Tensor]:
    """diffusers' RePaintScheduler in latent space with the same components (RePaintPipeline's loop)."""
    from diffusers import RePaintScheduler

    den, space = module.denoiser, module.space
    config = dict(den.scheduler_config)
    scheduler = RePaintScheduler.from_config(config, eta=0.0, clip_sample=False)
    image, keep = inputs(setup)
    B, g = setup.batch_size, setup.guidance_scale

    def run() -> torch.Tensor:
        generator = torch.Generator(setup.device).manual_seed(0)
        text = torch.cat(
            [den.encode_prompts([""] * B, image.device), den.encode_prompts([setup.prompt] * B, image.device)]
        )
        z0, latent_keep = space.encode(image), space.mask(keep)
        scheduler.set_timesteps(setup.steps, setup.jump_length, setup.jump_n_sample, device=setup.device)
        z = torch.randn(z0.shape, generator=generator, device=setup.device)
        t_last = scheduler.timesteps[0] + 1
        for t in scheduler.timesteps:
            if t < t_last:  # reverse step
                out_u, out_c = den.unet(torch.cat([z, z]), t, encoder_hidden_states=text).sample.chunk(2)
                eps = out_u + g * (out_c - out_u)
                z = scheduler.step(eps, t, z, z0, latent_keep, generator).prev_sample
            else:  # jump back
                z = scheduler.undo_step(z, t_last, generator)
            t_last = t
        return paste(space.decode(z), image, keep)

    return run


class NetworkClock:
    """Counts the calls of a module and the seconds spent inside them, by forward hooks (nothing patched)."""

    def __init__(self, module: torch.nn.Module, device: str):
        self.calls, self.seconds, self.device, self._start = 0, 0.0, device, 0.0
        module.register_forward_pre_hook(self.before)
        module.register_forward_hook(self.after)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def before(self, *_: Any) -> None:
        self.sync()
        self._start = time.perf_counter()

    def after(self, *_: Any) -> None:
        self.sync()
        self.calls += 1
        self.seconds += time.perf_counter() - self._start


FLOW_MODELS = {  # model -> (tiny builder, denoiser, diffusers inpainting pipeline)
    "sd3": ("tiny_sd3_pipeline", "SD3Denoiser", "StableDiffusion3InpaintPipeline"),
    "flux": ("tiny_flux_pipeline", "FluxDenoiser", "FluxInpaintPipeline"),
}


def flow_module(setup: LatentBenchSetup) -> RePaintModule:
    """RePaint with the SD3 / FLUX denoiser of ``setup.pretrained`` (or tiny random components)."""
    from repaint_pl import flow_models

    from . import tiny

    builder, denoiser, _ = FLOW_MODELS[setup.model]
    path = setup.pretrained
    if path is None:
        path = tempfile.mkdtemp(prefix=f"tiny_{setup.model}_")
        getattr(tiny, builder)().save_pretrained(path)
    den = getattr(flow_models, denoiser)(
        path, prompt=setup.prompt, guidance_scale=setup.guidance_scale, steps=setup.steps, image_size=setup.image_size
    )
    schedule = JumpSchedule(jump_length=setup.jump_length, jump_n_sample=setup.jump_n_sample)
    return RePaintModule(denoiser=den, space=LatentSpace(path), schedule=schedule).to(setup.device).eval()


def flow_theirs(module: RePaintModule, setup: LatentBenchSetup) -> Callable[[], torch.Tensor]:
    """diffusers' inpainting pipeline on the same components, strength 1, one step per network call of ours."""
    import diffusers

    den = module.denoiser
    parts = dict(den.pipe.components, vae=module.space.vae, transformer=den.transformer)
    pipe = getattr(diffusers, FLOW_MODELS[setup.model][2])(**parts)
    pipe.set_progress_bar_config(disable=True)
    image, keep = inputs(setup)
    calls = module.network_calls_per_image

    def run() -> torch.Tensor:
        return pipe(
            [setup.prompt] * setup.batch_size, image=(image + 1) / 2, mask_image=1 - keep, strength=1.0,
            height=setup.image_size, width=setup.image_size, num_inference_steps=calls,
            guidance_scale=setup.guidance_scale, max_sequence_length=den.max_sequence_length, output_type="pt",
            generator=torch.Generator(setup.device).manual_seed(0),
        ).images  # fmt: skip

    return run


def run_flow_benchmark(setup: LatentBenchSetup) -> dict[str, Any]:
    """(a) RePaint on the flow, (b) diffusers' inpainting pipeline, equal network calls; best of interleaved rounds."""
    module = flow_module(setup)
    clock = NetworkClock(module.denoiser.transformer, setup.device)
    runs = {"repaint_pl_s": ours(module, setup), "diffusers_s": flow_theirs(module, setup)}
    return measure_rounds(runs, clock, setup)


def measure_rounds(runs: dict[str, Callable[[], Any]], clock: Any, setup: LatentBenchSetup) -> dict[str, Any]:
    """Network calls of each side (a warm-up run), then the best total and outside-the-network seconds of
    ``setup.repeats`` interleaved rounds; ``clock`` counts the calls and seconds of the shared network."""
    calls = {}
    best = {name: float("inf") for name in runs}
    outside = {name: float("inf") for name in runs}
    with torch.no_grad():
        for name, fn in runs.items():
            clock.calls = 0
            timed(fn, setup.device)
            calls[name] = clock.calls
        for _ in range(setup.repeats):
            for name, fn in runs.items():
                clock.seconds = 0.0
                total = timed(fn, setup.device)
                best[name] = min(best[name], total)
                outside[name] = min(outside[name], total - clock.seconds)
    return dict(
        setup=asdict(setup),
        network_calls=calls,
        **best,
        outside_network_s=outside,
        ratio=best["repaint_pl_s"] / best["diffusers_s"],
    )


def run_benchmark(setup: LatentBenchSetup) -> dict[str, Any]:
    if setup.model in FLOW_MODELS:
        return run_flow_benchmark(setup)
    if setup.model != "sd":
        raise ValueError(f"setup.model={setup.model!r}: expected sd, sd3 or flux")
    path = setup.pretrained
    if path is None:
        from .tiny import tiny_sd_pipeline

        path = tempfile.mkdtemp(prefix="tiny_sd_")
        tiny_sd_pipeline().save_pretrained(path)
    den = StableDiffusionDenoiser(path, prompt=setup.prompt, guidance_scale=setup.guidance_scale, steps=setup.steps)
    module = (
        RePaintModule(
            denoiser=den,
            space=LatentSpace(path),
            schedule=JumpSchedule(jump_length=setup.jump_length, jump_n_sample=setup.jump_n_sample),
        )
        .to(setup.device)
        .eval()
    )
    den.unet = CountingUNet(den.unet, setup.device)
    runs = {"repaint_pl_s": ours(module, setup), "diffusers_s": theirs(module, setup)}
    return measure_rounds(runs, den.unet, setup)


LABELS = {  # model -> (what is benchmarked, our side, their side, the network)
    "sd": ("tiny random SD", "StableDiffusionDenoiser + LatentSpace", "RePaintScheduler, same components", "UNet"),
    "sd3": ("tiny random SD3", "SD3Denoiser + LatentSpace", "StableDiffusion3InpaintPipeline", "transformer"),
    "flux": ("tiny random FLUX", "FluxDenoiser + LatentSpace", "FluxInpaintPipeline", "transformer"),
}


def report(r: dict[str, Any]) -> str:
    s, calls, out = r["setup"], r["network_calls"], r["outside_network_s"]
    tiny, mine, other, net = LABELS[s.get("model", "sd")]
    return "\n".join(
        [
            f"latent RePaint, {s['pretrained'] or tiny}: {s['image_size']}² pictures, "
            f"batch {s['batch_size']}, {s['steps']} steps, jumps {s['jump_length']}×{s['jump_n_sample']}, "
            f"guidance {s['guidance_scale']}, {s['device']}",
            f"| sampler | network calls | seconds (best of rounds) | seconds outside the {net} |",
            "|---|---|---|---|",
            f"| repaint_pl ({mine}) | {calls['repaint_pl_s']} | {r['repaint_pl_s']:.3f} | {out['repaint_pl_s']:.3f} |",
            f"| diffusers {other} | {calls['diffusers_s']} | {r['diffusers_s']:.3f} | {out['diffusers_s']:.3f} |",
            f"| ratio repaint_pl / diffusers | | **{r['ratio']:.3f}** | |",
        ]
    )


def main(args: Optional[list[str]] = None) -> dict[str, Any]:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m repaint_pl.apps.bench_latent", description=__doc__.splitlines()[0])
    parser.add_class_arguments(LatentBenchSetup, "setup")
    parser.add_argument("--out", type=str, default="bench_latent.json", help="the results as JSON")
    cfg = parser.parse_args(args)
    setup = LatentBenchSetup(**vars(cfg.setup)) if not isinstance(cfg.setup, dict) else LatentBenchSetup(**cfg.setup)
    check_device(setup.device)
    result = run_benchmark(setup)
    if result["network_calls"]["repaint_pl_s"] != result["network_calls"]["diffusers_s"]:
        raise ValueError(f"the two sides made different network calls: {result['network_calls']}")
    write_json(result, cfg.out, indent=2)
    print(report(result))
    return result


if __name__ == "__main__":
    run(main)
