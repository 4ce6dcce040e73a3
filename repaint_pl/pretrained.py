"""diffusers models from local folders (or the hub when online): scheduler configs, UNets, VAEs, text encoders.

Every failure is one line: a folder without the needed component names it; a hub id while offline
says so and how to point at a local folder; a scheduler option this project does not implement
(e.g. dynamic thresholding) is refused.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Optional

import torch

from .diffusion import DiffusionConfig

VARIANCE = {
    "fixed_small": "fixed_small",
    "fixed_small_log": "fixed_small",
    "fixed_large": "fixed_large",
    "fixed_large_log": "fixed_large",
    "learned": "learned",
    "learned_range": "learned_range",
}
SINGLE_FILE = (".safetensors", ".ckpt", ".pt", ".bin")


class PretrainedError(ValueError):
    """A model folder or id that cannot be used; the message is one line."""


def diffusion_from_scheduler(
    cfg: dict[str, Any], steps: Optional[int] = None, source: str = "scheduler config"
) -> tuple[DiffusionConfig, Optional[float]]:
    """A ``DiffusionConfig`` (respaced to ``steps``) and the x0 clip range from a diffusers scheduler config.

    Reads ``num_train_timesteps``, ``beta_schedule`` / ``beta_start`` / ``beta_end`` / ``trained_betas``,
    ``timestep_spacing`` / ``steps_offset``, ``prediction_type``, ``variance_type``, ``clip_sample`` /
    ``clip_sample_range``.  Defaults are diffusers' ``DDPMScheduler`` defaults.
    """
    if cfg.get("thresholding"):
        raise PretrainedError(f"{source}: thresholding (dynamic x0 thresholding) is not implemented")
    schedule = cfg.get("beta_schedule", "linear")
    if schedule not in ("linear", "scaled_linear", "squaredcos_cap_v2"):
        raise PretrainedError(f"{source}: beta_schedule {schedule!r} is not supported")
    variance = cfg.get("variance_type") or "fixed_small"
    if variance not in VARIANCE:
        raise PretrainedError(f"{source}: variance_type {variance!r} is not supported")
    train_steps = int(cfg.get("num_train_timesteps", 1000))
    trained = cfg.get("trained_betas")
    config = DiffusionConfig(
        steps=train_steps,
        noise_schedule=schedule,
        beta_start=float(cfg.get("beta_start", 0.0001)),
        beta_end=float(cfg.get("beta_end", 0.02)),
        trained_betas=[float(b) for b in trained] if trained is not None else None,
        timestep_respacing=str(steps) if steps else "",
        timestep_spacing=cfg.get("timestep_spacing", "leading") if steps else "guided",
        steps_offset=int(cfg.get("steps_offset", 0)),
        prediction=cfg.get("prediction_type", "epsilon"),
        variance=VARIANCE[variance],
    )
    clip = float(cfg.get("clip_sample_range", 1.0)) if cfg.get("clip_sample", clips_by_default(cfg)) else None
    return config, clip


def clips_by_default(cfg: dict[str, Any]) -> bool:
    """Whether x0 is clipped when a scheduler config does not say (``clip_sample`` absent): its class'
    default (DDPM, DDIM: yes; classes without the option, e.g. SDXL's Euler: no); no class: DDPM's."""
    import inspect

    import diffusers

    cls = getattr(diffusers, str(cfg.get("_class_name", "DDPMScheduler")), None)
    if not isinstance(cls, type):
        return True
    option = inspect.signature(cls.__init__).parameters.get("clip_sample")
    return bool(option.default) if option is not None else False


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{path}: not a readable JSON config ({e.__class__.__name__})") from None


def is_local(path: str) -> bool:
    return os.path.exists(path) or path.startswith((".", "/", "~")) or path.endswith(SINGLE_FILE)


def check_source(path: str) -> None:
    """A missing local path, or a hub id while offline, in one line."""
    if is_local(path):
        if not os.path.exists(os.path.expanduser(path)):
            raise PretrainedError(f"{path}: no such model folder or file")
        return
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        raise PretrainedError(
            f"{path}: looks like a hub id but HF_HUB_OFFLINE is set; download it elsewhere "
            f"(save_pretrained) and pass the local folder"
        )


def _hub_error(path: str, e: Exception) -> PretrainedError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
    if is_local(path):
        return PretrainedError(f"{path}: cannot load ({first})")
    return PretrainedError(
        f"{path}: cannot fetch from the hub ({first}); when offline, pass a local folder "
        f"(what save_pretrained writes) and set HF_HUB_OFFLINE=1"
    )


def component_dir(root: str, name: str, marker: str) -> Optional[str]:
    """``root/name`` if it holds ``marker``, ``root`` itself if it does, else None."""
    for d in (os.path.join(root, name), root):
        if os.path.isfile(os.path.join(d, marker)):
            return d
    return None


def text_unet_kind(unet: dict[str, Any], pipeline: str = "") -> str:
    """``stable_diffusion``, ``…_inpaint``, ``stable_diffusion_xl`` or ``…_xl_inpaint`` from a text UNet's
    config (SDXL: added ``text_time`` embeddings; inpainting: 9 = 2·4 + 1 input channels) or, without
    one, the pipeline's class name (``StableDiffusionXLInpaintPipeline`` …)."""
    if unet:
        xl = unet.get("addition_embed_type") == "text_time"
        inpaint = unet.get("in_channels", 4) == 2 * unet.get("out_channels", 4) + 1
    else:
        xl, inpaint = pipeline.startswith("StableDiffusionXL"), "Inpaint" in pipeline
    return "stable_diffusion" + ("_xl" if xl else "") + ("_inpaint" if inpaint else "")


FLOW_MODELS = {  # kind -> (pipeline class prefix, transformer class, denoiser in repaint_pl.flow_models)
    "sd3": ("StableDiffusion3", "SD3Transformer2DModel", "SD3Denoiser"),
    "flux": ("Flux", "FluxTransformer2DModel", "FluxDenoiser"),
}


def flow_kind(path: str, config: Optional[str] = None) -> Optional[str]:
    """``sd3`` or ``flux`` for a flow-matching pipeline (its model_index.json ``_class_name``, else its
    transformer/config.json ``_class_name``; a single file: those of ``config``), else None."""
    if path.endswith(SINGLE_FILE):
        return flow_kind(config) if config else None
    check_source(path)
    if not is_local(path):  # a hub id, online
        from diffusers import DiffusionPipeline

        try:
            index = DiffusionPipeline.load_config(path)
        except Exception as e:
            raise _hub_error(path, e) from None
        pipeline, transformer = index.get("_class_name", ""), ""
    else:
        root = os.path.expanduser(path)
        index_file, config_file = (os.path.join(root, *p) for p in (["model_index.json"], ["transformer", "config.json"]))
        pipeline = read_json(index_file).get("_class_name", "") if os.path.isfile(index_file) else ""
        transformer = read_json(config_file).get("_class_name", "") if os.path.isfile(config_file) else ""
    for kind, (prefix, transformer_class, _) in FLOW_MODELS.items():
        if pipeline.startswith(prefix) or transformer == transformer_class:
            return kind
    return None


def kind_of(path: str) -> str:
    """``pixel`` (a UNet2DModel), or a text-conditioned UNet with a VAE: ``stable_diffusion`` (1.x/2.x),
    ``stable_diffusion_xl``, each also ``…_inpaint`` (a 9-channel inpainting UNet); see ``text_unet_kind``."""
    if path.endswith(SINGLE_FILE):
        return "stable_diffusion"
    flow = flow_kind(path)  # SD3, FLUX
    if flow is not None:
        return flow
    if not is_local(path):  # a hub id, online: its model_index.json says
        from diffusers import DiffusionPipeline

        try:
            index = DiffusionPipeline.load_config(path)
        except Exception as e:
            raise _hub_error(path, e) from None
        is_text = "vae" in index or "text_encoder" in index
        return text_unet_kind({}, index.get("_class_name", "")) if is_text else "pixel"
    root = os.path.expanduser(path)
    unet = component_dir(root, "unet", "config.json")
    unet_config = read_json(os.path.join(unet, "config.json")) if unet is not None else {}
    if os.path.isfile(os.path.join(root, "model_index.json")):
        index = read_json(os.path.join(root, "model_index.json"))
        is_text = "vae" in index or "text_encoder" in index
        return text_unet_kind(unet_config, index.get("_class_name", "")) if is_text else "pixel"
    if unet is None:
        raise PretrainedError(f"{path}: no diffusers model here (neither model_index.json nor unet/config.json)")
    is_text = unet_config.get("_class_name", "UNet2DModel") == "UNet2DConditionModel"
    return text_unet_kind(unet_config) if is_text else "pixel"


def _scheduler_config(root: str, unet_dir: str) -> dict[str, Any]:
    for d in (os.path.join(root, "scheduler"), unet_dir, os.path.join(unet_dir, "..", "scheduler")):
        path = os.path.join(d, "scheduler_config.json")
        if os.path.isfile(path):
            return read_json(path)
    raise PretrainedError(f"{root}: no scheduler_config.json (looked in scheduler/ and beside the UNet)")


def load_pixel_unet(path: str, dtype: torch.dtype) -> tuple[Any, dict[str, Any]]:
    """(UNet2DModel, scheduler config) from a UNet folder or a pipeline folder (``unet/`` + ``scheduler/``)."""
    from diffusers import DDPMScheduler, UNet2DModel

    check_source(path)
    if not is_local(path):  # a hub id, online
        try:
            unet = UNet2DModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
            return unet.eval(), dict(DDPMScheduler.load_config(path, subfolder="scheduler"))
        except Exception as e:
            raise _hub_error(path, e) from None
    root = os.path.expanduser(path)
    unet_dir = component_dir(root, "unet", "config.json")
    if unet_dir is None:
        raise PretrainedError(f"{path}: no UNet (expected unet/config.json or config.json)")
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dtype)
    except Exception as e:
        raise _hub_error(unet_dir, e) from None
    return unet.eval(), _scheduler_config(root, unet_dir)


@functools.lru_cache(maxsize=1)
def _single_file_pipeline(path: str, config: Optional[str], dtype: torch.dtype) -> Any:
    """A Stable Diffusion pipeline from one checkpoint file and a local config folder (kept for the VAE's load)."""
    from diffusers import StableDiffusionPipeline

    if not config:
        raise PretrainedError(
            f"{path}: a single-file checkpoint needs --config_dir (a pipeline folder without weights)"
        )
    check_source(path)
    try:
        return StableDiffusionPipeline.from_single_file(
            os.path.expanduser(path),
            config=os.path.expanduser(config),
            local_files_only=True,
            torch_dtype=dtype,
            safety_checker=None,
        )
    except Exception as e:
        raise _hub_error(path, e) from None


def _from_folder(cls: Any, path: str, subfolder: str, dtype: Optional[torch.dtype] = None) -> Any:
    check_source(path)
    root = os.path.expanduser(path)
    if is_local(path) and not os.path.isdir(os.path.join(root, subfolder)):
        raise PretrainedError(f"{path}: no {subfolder}/ folder (a Stable Diffusion pipeline folder has one)")
    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    try:
        return cls.from_pretrained(root if is_local(path) else path, subfolder=subfolder, **kwargs)
    except Exception as e:
        raise _hub_error(os.path.join(path, subfolder), e) from None


def load_text_unet(path: str, dtype: torch.dtype, config: Optional[str] = None) -> dict[str, Any]:
    """UNet2DConditionModel, CLIP text encoder, tokenizer and scheduler config of a Stable Diffusion model."""
    if path.endswith(SINGLE_FILE):
        pipe = _single_file_pipeline(path, config, dtype)
        parts = dict(unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
        return dict(parts, scheduler=dict(pipe.scheduler.config))
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    parts = dict(
        unet=_from_folder(UNet2DConditionModel, path, "unet", dtype).eval(),
        text_encoder=_from_folder(CLIPTextModel, path, "text_encoder", dtype).eval(),
        tokenizer=_from_folder(CLIPTokenizer, path, "tokenizer"),
    )
    return dict(parts, scheduler=scheduler_as_saved(path))


def scheduler_as_saved(path: str) -> dict[str, Any]:
    """A pipeline's ``scheduler/scheduler_config.json`` as saved: its own class name, no defaults of another
    scheduler class filled in (``diffusion_from_scheduler`` reads the missing keys)."""
    from diffusers import DDPMScheduler

    check_source(path)
    if is_local(path):
        config = os.path.join(os.path.expanduser(path), "scheduler", "scheduler_config.json")
        if not os.path.isfile(config):
            raise PretrainedError(f"{path}: no scheduler/scheduler_config.json (a pipeline folder has one)")
        return read_json(config)
    try:
        return dict(DDPMScheduler.load_config(path, subfolder="scheduler"))
    except Exception as e:
        raise _hub_error(os.path.join(path, "scheduler"), e) from None


def load_sdxl(path: str, dtype: torch.dtype) -> dict[str, Any]:
    """An SDXL pipeline's UNet, both CLIP encoders and tokenizers (``text_encoder``/``tokenizer`` None when the
    pipeline has none, as the refiner), the scheduler config and ``force_zeros_for_empty_prompt``."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    index_file = os.path.join(os.path.expanduser(path), "model_index.json")
    index = (read_json(index_file) if os.path.isfile(index_file) else {}) if is_local(path) else _hub_index(path)
    first = index.get("text_encoder", [None, None])[0] is not None
    return dict(
        unet=_from_folder(UNet2DConditionModel, path, "unet", dtype).eval(),
        text_encoder=_from_folder(CLIPTextModel, path, "text_encoder", dtype).eval() if first else None,
        tokenizer=_from_folder(CLIPTokenizer, path, "tokenizer") if first else None,
        text_encoder_2=_from_folder(CLIPTextModelWithProjection, path, "text_encoder_2", dtype).eval(),
        tokenizer_2=_from_folder(CLIPTokenizer, path, "tokenizer_2"),
        scheduler=scheduler_as_saved(path),
        force_zeros_for_empty_prompt=index.get("force_zeros_for_empty_prompt", True),
    )


def _hub_index(path: str) -> dict[str, Any]:
    from diffusers import DiffusionPipeline

    check_source(path)
    try:
        return dict(DiffusionPipeline.load_config(path))
    except Exception as e:
        raise _hub_error(path, e) from None


def load_vae(path: str, dtype: torch.dtype, config: Optional[str] = None) -> Any:
    """The AutoencoderKL of a pipeline folder (``vae/``), of a VAE folder, or of a single-file checkpoint."""
    if path.endswith(SINGLE_FILE):
        return _single_file_pipeline(path, config, dtype).vae
    from diffusers import AutoencoderKL

    root = os.path.expanduser(path)
    if is_local(path) and os.path.isfile(os.path.join(root, "config.json")):
        try:
            return AutoencoderKL.from_pretrained(root, torch_dtype=dtype).eval()
        except Exception as e:
            raise _hub_error(path, e) from None
    return _from_folder(AutoencoderKL, path, "vae", dtype).eval()


def pretrained_config(path: str, config: Optional[str] = None) -> dict[str, Any]:
    """The ``model`` config (denoiser and space) that ``--pretrained PATH`` stands for."""
    kind = flow_kind(path, config) or kind_of(path)
    if kind in FLOW_MODELS:  # the transformer from a single file, the rest (VAE included) from config
        vae_from = config if path.endswith(SINGLE_FILE) and config else path
        denoiser = {"pretrained": path, **({"config": config} if config else {})}
        return {
            "denoiser": {"class_path": f"repaint_pl.flow_models.{FLOW_MODELS[kind][2]}", "init_args": denoiser},
            "space": {"class_path": "repaint_pl.spaces.LatentSpace", "init_args": {"pretrained": vae_from}},
        }
    if kind == "pixel":
        return {"denoiser": {"class_path": "repaint_pl.denoisers.DiffusersDenoiser", "init_args": {"pretrained": path}}}
    extra = {"config": config} if config else {}
    if path.endswith(SINGLE_FILE) and config:
        kind = kind_of(config)  # the config folder says which family the file belongs to
    denoiser = "StableDiffusionXLDenoiser" if kind.startswith("stable_diffusion_xl") else "StableDiffusionDenoiser"
    if denoiser == "StableDiffusionXLDenoiser" and path.endswith(SINGLE_FILE):
        raise PretrainedError(f"{path}: a single-file SDXL checkpoint is not read; pass an SDXL pipeline folder")
    return {
        "denoiser": {
            "class_path": f"repaint_pl.denoisers.{denoiser}",
            "init_args": {"pretrained": path, **extra},
        },
        "space": {"class_path": "repaint_pl.spaces.LatentSpace", "init_args": {"pretrained": path, **extra}},
    }
