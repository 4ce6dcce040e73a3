"""Benchmark: latent RePaint (Stable Diffusion) against diffusers' RePaintScheduler on the same components.

    python -m repaint_pl.apps.bench_latent                            # tiny random SD components, CPU, about a minute
    python -m repaint_pl.apps.bench_latent --setup.pretrained sd15/   # a real Stable Diffusion folder (GPU recommended)

Both sides get the same UNet, VAE, text encoder, prompt, guidance (one batched network call on
[unconditional; conditional] per step), pictures, masks and RePaint time table, and do the same
work around the sampler (prompt encoding, VAE encoding of the known image, decoding, paste):
(a) this project: ``RePaintModule`` with ``StableDiffusionDenoiser`` + ``LatentSpace``;
(b) diffusers: its ``RePaintScheduler`` (``set_timesteps(steps, jump_length, jump_n_sample)``,
    ``step`` on reverse moves, ``undo_step`` on jumps) driven by the loop of its RePaintPipeline, in
    latent space (diffusers has no latent RePaint pipeline in its package).
The network calls of both are counted and must be equal; each time is the best of interleaved rounds
in one run, and the ratio (a)/(b) is printed.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

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


def run_benchmark(setup: LatentBenchSetup) -> dict[str, Any]:
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
    calls = {}
    best = {name: float("inf") for name in runs}
    outside = {name: float("inf") for name in runs}  # seconds outside the UNet: the sampler's own work
    with torch.no_grad():
        for name, fn in runs.items():  # warm-up, and the network calls of each side
            den.unet.calls = 0
            timed(fn, setup.device)
            calls[name] = den.unet.calls
        for _ in range(setup.repeats):  # interleaved rounds, best of each
            for name, fn in runs.items():
                den.unet.seconds = 0.0
                total = timed(fn, setup.device)
                best[name] = min(best[name], total)
                outside[name] = min(outside[name], total - den.unet.seconds)
    return dict(
        setup=asdict(setup),
        network_calls=calls,
        **best,
        outside_network_s=outside,
        ratio=best["repaint_pl_s"] / best["diffusers_s"],
    )


def report(r: dict[str, Any]) -> str:
    s, calls, out = r["setup"], r["network_calls"], r["outside_network_s"]
    return "\n".join(
        [
            f"latent RePaint, {s['pretrained'] or 'tiny random SD'}: {s['image_size']}² pictures, "
            f"batch {s['batch_size']}, {s['steps']} steps, jumps {s['jump_length']}×{s['jump_n_sample']}, "
            f"guidance {s['guidance_scale']}, {s['device']}",
            "| sampler | network calls | seconds (best of rounds) | seconds outside the UNet |",
            "|---|---|---|---|",
            f"| repaint_pl (StableDiffusionDenoiser + LatentSpace) | {calls['repaint_pl_s']} | {r['repaint_pl_s']:.3f} "
            f"| {out['repaint_pl_s']:.3f} |",
            f"| diffusers RePaintScheduler, same components | {calls['diffusers_s']} | {r['diffusers_s']:.3f} "
            f"| {out['diffusers_s']:.3f} |",
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
