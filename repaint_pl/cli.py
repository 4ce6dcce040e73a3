"""Command lines: ``eval.py`` (RePaint over a dataset) and ``train.py`` (fit a DDPM), both LightningCLI.

Anything can be set the Lightning CLI way (``--config`` files, dotted overrides such as
``--model.schedule.init_args.jump_length 5``).  Shorthands: ``--devices``,
``--accelerator``, ``--num_nodes`` (for ``--trainer.*``) and ``--seed`` (``--model.seed``
and ``--seed_everything``).  ``eval.py`` adds ``--ckpt`` (a guided-diffusion ``.pt`` or a
train.py ``.ckpt``), ``--classifier_ckpt`` and ``--repaint_conf`` (an original RePaint YAML),
and short flags (``SHORT_FLAGS``: ``--images``, ``--mask``, ``--masks``, ``--steps``, ``--image_size``,
``--out`` …).

The order in which sources compose (``SOURCE_ORDER``, also in ``eval.py --help``): first the configs
that ``--pretrained``, ``--repaint_conf`` and ``--ckpt`` imply, then the command line from left to
right, where each ``--config`` file, dotted option and short flag applies where it stands and a later
one wins over an earlier one.  ``--images DIR`` selects the image-folder data class at its position
(so ``--config demo.yaml --images DIR`` runs on DIR, and a ``--config`` after it would replace it);
the data flags ``--mask``, ``--masks`` and ``--image_size`` given before ``--images`` apply right
after it.  A command-line ``--ckpt`` wins over any config file's ``ckpt``.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
import warnings
from argparse import ArgumentError
from typing import Any, Callable, Optional, Sequence

import lightning as L
import yaml
from lightning.pytorch.cli import LightningCLI

from .argv import (  # noqa: F401  (re-exported: the command line's tables live in repaint_pl.argv)
    ALIASES,
    DATA_SHORT_FLAGS,
    IMAGE_FOLDER,
    SHORT_FLAGS,
    SOURCE_ORDER,
    _option,
    did_you_mean,
    expand_aliases,
    expand_short_flags,
)
from .argv import EVAL_DESCRIPTION as SHORT_DESCRIPTION
from .files import OutputError
from .module import RePaintModule
from .nets import RELEASED_FILES, read_checkpoint
from .nets.checkpoint import is_lightning_checkpoint, sub_state_dict
from .noise import check_global_noise
from .original_conf import translate_file
from .paths import CONFIGS as REPO_CONFIGS
from .paths import absolute, config_relative_path

EVAL_TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "inference_mode": False,  # classifier guidance needs autograd inside prediction
}


_KEPT_CHECKPOINTS: dict[str, dict[str, Any]] = {}  # read by the config step, handed to the load step once


def cached_checkpoint(path: str, trust: bool = False, keep: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path``, tensors memory-mapped (``weights_only`` unless ``trust``).

    A copy kept by an earlier call (``keep=True``: the config step) is handed over and
    forgotten, so the file is read once and nothing stays cached for the run.
    """
    obj = _KEPT_CHECKPOINTS.pop(absolute(path), None)  # the command line's path, or the parsed absolute one
    obj = read_checkpoint(path, trust) if obj is None else obj
    if keep:
        _KEPT_CHECKPOINTS[absolute(path)] = obj
    return obj


def _trusted(argv: list[str]) -> bool:
    """Whether argv opts in to unpickling checkpoints (``--trust_checkpoint true``).

    Only the command line can: a config file travels with the files it names (a studio bundle's
    ``config.yaml`` beside a ``weights.pt``), so a ``trust_checkpoint`` it sets is never read.
    """
    return str(_option(argv, "--trust_checkpoint")).lower() in ("true", "yes", "1")


def trust_from_command_line(argv: list[str], parsed: Any) -> bool:
    """The effective ``trust_checkpoint``: the command line's flag; a config file's ``true`` is ignored (warned)."""
    trust = _trusted(argv)
    if parsed and not trust:
        print(
            "warning: trust_checkpoint in a config file is ignored: unpickling a checkpoint is allowed only by "
            "the command-line flag --trust_checkpoint true",
            file=sys.stderr,
        )
    return trust


def _released_preset_config(ckpt: str) -> Optional[str]:
    """configs/model/<preset>.yaml for a released file name such as 256x256_diffusion.pt."""
    preset = RELEASED_FILES.get(os.path.basename(ckpt))
    path = preset and os.path.join(REPO_CONFIGS, "model", f"{preset}.yaml")
    return path if path and os.path.isfile(path) else None


def _checkpoint_config(ckpt: str, trust: bool = False) -> Optional[str]:
    """The architecture and diffusion a train.py checkpoint was made with, as a config string.

    The (memory-mapped) checkpoint is kept for ``load_checkpoints``, which releases it.
    """
    obj = cached_checkpoint(ckpt, trust, keep=True)
    if not is_lightning_checkpoint(obj):
        return None
    hp = obj.get("hyper_parameters") or {}
    model = {k: hp[k] for k in ("net", "diffusion") if k in hp}
    return yaml.safe_dump({"model": model}) if model else None


def _pretrained_front(argv: list[str]) -> list[str]:
    """The model config that ``--pretrained PATH`` (a diffusers folder, or a file with ``--config_dir``) stands for."""
    from .pretrained import pretrained_config

    path = _option(argv, "--pretrained")
    if not path:
        return []
    return ["--config", yaml.safe_dump({"model": pretrained_config(path, _option(argv, "--config_dir"))})]


def prepare_eval_argv(argv: list[str]) -> list[str]:
    """Resolve shorthands, and put the configs implied by ``--repaint_conf``, ``--ckpt`` and ``--pretrained``
    first (an original conf's model_path/classifier_path become ``--ckpt``/``--classifier_ckpt`` unless given),
    so that every explicit argument overrides them."""
    argv = expand_short_flags(expand_aliases(list(argv)))
    repaint_conf, ckpt = _option(argv, "--repaint_conf"), _option(argv, "--ckpt")
    front: list[str] = _pretrained_front(argv)
    if ckpt:  # the command line's --ckpt wins over a config file's ``ckpt:``, wherever --config stands
        argv = argv + ["--ckpt", ckpt]
    if repaint_conf:
        conf_yaml, conf_ckpt, conf_classifier = translate_file(repaint_conf)
        front += ["--config", conf_yaml]
        if conf_ckpt and not ckpt:
            front += ["--ckpt", conf_ckpt]
            ckpt = conf_ckpt
        if conf_classifier and not _option(argv, "--classifier_ckpt"):
            front += ["--classifier_ckpt", conf_classifier]
    if ckpt:
        derived = _checkpoint_config(ckpt, _trusted(argv))
        if derived:
            front += ["--config", derived]
        elif not repaint_conf and _released_preset_config(ckpt):
            front = ["--config", _released_preset_config(ckpt)] + front
    return front + argv


def load_checkpoints(
    model: RePaintModule, ckpt: Optional[str], classifier_ckpt: Optional[str], trust: bool = False
) -> None:
    """Put the weights of ``ckpt`` (net) and ``classifier_ckpt`` into the model, strictly.

    Each file is memory-mapped, copied into the model and dropped: no second copy of
    the weights stays in host memory.  ``trust`` allows files that need unpickling.
    """
    if ckpt:
        obj = cached_checkpoint(ckpt, trust)
        state = sub_state_dict(obj["state_dict"], "net") if is_lightning_checkpoint(obj) else obj
        model.load_net_weights(state, ckpt)
        del obj, state
    if classifier_ckpt:
        model.load_classifier_weights(cached_checkpoint(classifier_ckpt, trust), classifier_ckpt)


class RePaintCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        from repaint_pl.callbacks import BranchStates, InpaintMetrics, InpaintProgressBar, RePaintWriter

        parser.add_argument(
            "--ckpt",
            type=Optional[config_relative_path()],
            default=None,
            help="net weights: a guided-diffusion .pt (released file names pick their preset) "
            "or a train.py .ckpt (its architecture and diffusion come along); in a config file, relative to its folder",
        )
        parser.add_argument(
            "--classifier_ckpt", type=Optional[config_relative_path()], default=None, help="classifier weights (.pt)"
        )
        parser.add_argument(
            "--trust_checkpoint",
            type=bool,
            default=False,
            help="allow checkpoints that hold pickled Python objects (unpickling runs code from the file: "
            "only for files from a source you trust); by default only tensors and plain containers are read",
        )
        parser.add_argument(
            "--pretrained",
            type=Optional[str],
            default=None,
            help="a diffusers model: a local folder (pixel DDPM such as google/ddpm-ema-celebahq-256, or a Stable "
            "Diffusion pipeline) or a single .safetensors file with --config_dir; recognised from its files",
        )
        parser.add_argument(
            "--config_dir",
            type=Optional[str],
            default=None,
            help="the pipeline config folder (no weights needed) for a single-file --pretrained checkpoint",
        )
        parser.add_argument(
            "--repaint_conf",
            type=Optional[str],
            default=None,
            help="an original RePaint YAML, run as it is (explicit arguments override it)",
        )
        parser.add_lightning_class_args(RePaintWriter, "writer")
        parser.add_lightning_class_args(InpaintProgressBar, "progress")
        parser.add_lightning_class_args(InpaintMetrics, "metrics")
        BranchStates.add_to_parser(parser)  # --save_state_at K --state_dir DIR, --resume_state DIR
        parser.add_argument(
            "--steps",
            type=Optional[int],
            default=None,
            help="sampling steps (respacing) of whichever model the composed config has: the ADM net's "
            "model.diffusion.timestep_respacing, or a diffusers denoiser's model.denoiser.init_args.steps",
        )
        parser.add_argument(
            "--random_weights",
            type=bool,
            default=False,
            help="allow a network without weights (random): smoke tests only; otherwise a run without --ckpt, "
            "--pretrained or a config naming weights is refused",
        )

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse; an unknown option is one line with the closest known one (did you mean …?)."""
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as e:
            raise UsageError(usage_error_line(str(e), known_options(parser))) from None

    def before_instantiate_classes(self) -> None:
        """Checks and mappings that need the composed config but no model: mask type names, ``--steps``."""
        check_mask_types(self.config.get("data"))
        apply_steps(self.config)


EVAL_DESCRIPTION = SHORT_DESCRIPTION + " " + SOURCE_ORDER


class UsageError(ValueError):
    """Arguments that do not parse (one line; ``eval.py --help`` lists the options)."""


_USAGE_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value")


def usage_error_line(message: str, known: Sequence[str] = ()) -> str:
    """jsonargparse's multi-line parse error as one line: the key and the innermost reasons, and for an
    unrecognized option the closest ``known`` one."""
    lines = [line.strip().lstrip("- ").strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_USAGE_NOISE) and "NoneType" not in line]
    text = " ".join(kept)
    unknown = text.partition("unrecognized arguments:")[2].split()
    hint = did_you_mean(unknown[0], known) if unknown and unknown[0].startswith("--") else ""
    return text + hint + image_folder_hint(text) + " (eval.py --help lists the options)"


def image_folder_hint(text: str) -> str:
    """``; --crop_to_mask is an option of image folders: give --images DIR`` when a data option that only the
    image-folder data class has was given to another data class (e.g. the demo's texture crops)."""
    from repaint_pl.datamodules import ImageFolderDataModule

    found = re.search(r"Option '(\w+)' is not accepted", text)
    if not found or "data" not in text or found.group(1) not in inspect.signature(ImageFolderDataModule).parameters:
        return ""
    return f"; --{found.group(1)} is an option of image folders: give --images DIR (or a folder data config) first"


def known_options(parser: Any) -> list[str]:
    """The parser's option strings, and the short flags and aliases that expand into them."""
    return [*getattr(parser, "_option_string_actions", {}), *SHORT_FLAGS, *ALIASES]


def check_mask_types(data: Any) -> None:
    """Generated mask type names are checked before anything is built or written (one line, closest name)."""
    from .masks import MASK_TYPES

    args = (data or {}).get("init_args") or {}
    if args.get("mask_path") or args.get("mask_types") is None:
        return
    for kind in args["mask_types"]:
        if kind not in MASK_TYPES:
            hint = did_you_mean(kind, MASK_TYPES)
            raise UsageError(f"data.mask_types: unknown mask type {kind!r}{hint}; known: {', '.join(MASK_TYPES)}")


def apply_steps(config: Any) -> None:
    """``--steps N`` -> the respacing of whichever denoiser the composed config has: a diffusers denoiser's
    ``steps`` argument, else the ADM net's ``diffusion.timestep_respacing``.  The value moves there (the
    config then reads as if it had been written so, and so does the run's fingerprint)."""
    steps = config.get("steps")
    if steps is None:
        return
    model = config["model"]
    denoiser = model.get("denoiser")
    if denoiser is not None:
        if "steps" not in (denoiser.get("init_args") or {}):
            raise UsageError(f"--steps: {denoiser['class_path']} has no sampling steps to set")
        denoiser["init_args"]["steps"] = steps
    else:
        model["diffusion"]["timestep_respacing"] = str(steps)
    config["steps"] = None


def check_weights(model: RePaintModule, ckpt: Optional[str], random_weights: bool) -> None:
    """Refuse (one line) to sample with a network nobody trained: guided-diffusion's ADM net needs ``--ckpt``
    (diffusers denoisers load their weights themselves); ``--random_weights true`` allows it for smoke tests."""
    from .denoisers import ADMDenoiser

    if isinstance(model.denoiser, ADMDenoiser) and not ckpt and not random_weights:
        raise UsageError(
            "no weights: give --ckpt FILE (guided-diffusion .pt or train.py .ckpt), --pretrained DIR, or a config "
            "that names them (--config configs/demo/texture.yaml runs the shipped texture model); "
            "--random_weights true samples an untrained network"
        )


def eval_cli(argv: list[str]) -> RePaintCLI:
    """The eval command line, instantiated (model with its weights, data, trainer), nothing run yet.

    Checkpoints kept by the config step are released whatever happens (a failed parse, or a
    command-line ``--ckpt`` that replaced a config file's).
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
            try:
                cli = RePaintCLI(
                    RePaintModule,
                    L.LightningDataModule,
                    subclass_mode_data=True,
                    run=False,
                    args=argv,
                    trainer_defaults=EVAL_TRAINER_DEFAULTS,
                    save_config_callback=None,
                    seed_everything_default=0,
                    parser_kwargs={"exit_on_error": False, "description": EVAL_DESCRIPTION},
                    auto_configure_optimizers=False,  # eval.py never trains: no --optimizer/--lr_scheduler
                )
            except ArgumentError as e:  # one line instead of the usage of every option
                raise UsageError(usage_error_line(str(e))) from None
        config = cli.config
        config["trust_checkpoint"] = trust_from_command_line(argv, config["trust_checkpoint"])
        check_weights(cli.model, config["ckpt"], config["random_weights"])
        load_checkpoints(cli.model, config["ckpt"], config["classifier_ckpt"], config["trust_checkpoint"])
    finally:
        _KEPT_CHECKPOINTS.clear()
    return cli


def load_model(args: Optional[list[str]] = None, default_data: str = "configs/demo/texture.yaml") -> RePaintCLI:
    """A ready model from eval.py's model flags (``--ckpt``, ``--pretrained``, ``--config`` …), in eval mode.

    Without any model flag: the shipped texture model (``default_data``'s config).  Returns the
    instantiated CLI: ``.model`` (weights loaded), ``.datamodule`` (examples), ``.config``, and
    ``.data_is_fallback`` (no data was given: the texture crops stand in).
    """
    argv = list(args or [])
    if not any(_option(argv, k) for k in ("--ckpt", "--pretrained", "--config", "--repaint_conf")):
        argv = ["--config", os.path.join(os.path.dirname(REPO_CONFIGS), default_data)] + argv
    fallback = not _option(argv, "--data") and not _option(argv, "--images") and _option(argv, "--config") is None
    if fallback:
        argv += ["--data=repaint_pl.datamodules.TextureDataModule"]
    cli = eval_cli(prepare_eval_argv(argv))
    cli.model.eval()
    cli.data_is_fallback = fallback  # the texture crops stand in for missing data: their size is not the model's
    return cli


def eval_main(args: Optional[list[str]] = None) -> RePaintCLI:
    """``eval.py``: RePaint every input of the datamodule and write the pictures.

    Bad inputs do not stop the run: each is logged once and listed in ``errors.json`` beside the
    outputs; the returned CLI's ``failed_inputs`` holds them and ``exit_status`` is 1 if there are any.
    """
    from repaint_pl.callbacks import RePaintWriter
    from repaint_pl.datamodules.folders import check_input_list

    from .fingerprint import digest, guard_run

    cli = eval_cli(prepare_eval_argv(sys.argv[1:] if args is None else args))
    if cli.model.noise_mode == "global":  # refused before anything is written, not at the first batch
        check_global_noise(cli.trainer.world_size)
    # the outputs' fingerprint: refuse a folder of another configuration's pictures, then record this one
    writer = next(c for c in cli.trainer.callbacks if isinstance(c, RePaintWriter))
    main = cli.trainer.is_global_zero
    if main:
        os.makedirs(writer.out_dir, exist_ok=True)
    resolve_data_size(cli)
    config = yaml.safe_load(cli.parser.dump(cli.config, skip_check=True))
    # where sample ids are positions in the input list (the original layout), a changed list is refused
    input_list = getattr(cli.datamodule, "input_list", None)
    inputs = input_list() if callable(input_list) else None
    if inputs is not None:
        check_input_list(writer.out_dir, inputs, writer.overwrite, write=False)
    config.update(id_keys(cli.datamodule))
    fp = guard_run(config, writer.out_dir, writer.overwrite, cli.trainer.strategy.root_device.type, write=main)
    writer.fingerprint = digest(fp)
    if main:
        cli.parser.save(cli.config, os.path.join(writer.out_dir, "config.yaml"), overwrite=True, skip_check=True)
        if inputs is not None:
            check_input_list(writer.out_dir, inputs, overwrite=True, write=True)
    cli.trainer.predict(cli.model, datamodule=cli.datamodule, return_predictions=False)
    record_failed_inputs(cli, writer.out_dir, write=main)
    return cli


def resolve_data_size(cli: RePaintCLI) -> None:
    """A data class whose ``image_size`` was left unset takes the model's (``resolve_image_size``) now, and the
    config says so: the fingerprint and the saved config.yaml hold the size the pictures have."""
    from repaint_pl.datamodules.folders import resolve_image_size

    dm = cli.datamodule
    if getattr(dm, "image_size", 0) is None:
        dm.image_size = resolve_image_size(None, cli.model)
        cli.config["data"]["init_args"]["image_size"] = dm.image_size


def id_keys(datamodule: Any) -> dict[str, str]:
    """Fingerprint keys for how the datamodule derives sample ids: ``{"sample_ids": "name"}`` where they follow
    the inputs' names (image folders; they were list positions before), so that a folder of pictures made
    under position ids is not resumed with name ids; nothing where ids are what they always were."""
    source = getattr(datamodule, "id_source", None)
    value = source() if callable(source) else None
    return {"sample_ids": value} if value else {}


def failed_inputs(errors: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One entry per bad input file (``file``, one-line ``error``, the ``outputs`` it would have made),
    from the per-output errors (``name``, ``error``) of every mask type, in first-seen order."""
    by_error: dict[str, dict[str, Any]] = {}
    for e in errors:
        entry = by_error.setdefault(e["error"], {"file": e["error"].partition(": ")[0], "error": e["error"]})
        entry.setdefault("outputs", []).append(e["name"])
    return list(by_error.values())


def record_failed_inputs(cli: RePaintCLI, out_dir: str, write: bool) -> None:
    """After a run: ``errors.json`` (one entry per bad input, ``failed_inputs``), one line saying how many
    inputs failed, and ``cli.exit_status`` 1 if any did (eval.py then exits with it), else 0."""
    from repaint_pl.callbacks import InpaintMetrics
    from repaint_pl.callbacks.metrics import gather

    from .files import write_json

    local = [e for c in cli.trainer.callbacks if isinstance(c, InpaintMetrics) for e in c.errors]
    failed = failed_inputs([e for part in gather(local) for e in part])
    if write:
        path = os.path.join(out_dir, "errors.json")
        write_json(failed, path)
        if failed:
            logging.getLogger(__name__).warning("%d input(s) could not be used, listed in %s", len(failed), path)
    cli.failed_inputs = failed
    cli.exit_status = 1 if failed else 0


class TrainCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="resume training from this checkpoint (e.g. <run>/checkpoints/last.ckpt)",
        )


def train_main(args: Optional[list[str]] = None) -> TrainCLI:
    """``train.py``: fit a DDPM (LightningCLI ``fit``); ``--ckpt_path`` resumes.

    A non-finite loss ends the run (``FiniteTraining``: one line naming the step, exit status 2), and
    no checkpoint with non-finite weights is written.
    """
    from repaint_pl.callbacks import FiniteTraining

    argv = expand_aliases(sys.argv[1:] if args is None else args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
        cli = TrainCLI(
            RePaintModule,
            L.LightningDataModule,
            subclass_mode_data=True,
            run=False,
            args=argv,
            save_config_kwargs={"overwrite": True},
            # always, next to the config's callbacks: a NaN/inf loss stops the run before a checkpoint of it
            trainer_defaults={"callbacks": [FiniteTraining()]},
        )
    ckpt_path = cli.config["ckpt_path"]
    if ckpt_path and ckpt_path not in ("last", "best", "hpc") and not ckpt_path.startswith("registry"):
        read_checkpoint(ckpt_path)  # a missing file or one that needs unpickling: one line, before anything runs
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True)
    return cli


def command(main: Callable[[], Any]) -> None:
    """Run an entry point; bad input (files, checkpoints, configs) and I/O failures (a read-only or full
    disk, an output path that is a file) end with one line naming the path, and exit status 2.

    ``REPAINT_DEBUG=1`` shows the full traceback instead.  A run that finishes but could not use some
    of its inputs (``exit_status`` of the result: eval.py lists them in errors.json) exits with status 1.
    """
    try:
        result = main()
    except (ValueError, OSError) as e:
        if os.environ.get("REPAINT_DEBUG"):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    leave_process_group()
    status = getattr(result, "exit_status", 0)
    if status:
        sys.exit(status)


def leave_process_group() -> None:
    """End a finished multi-process run's process group before the interpreter exits. Lightning does this
    for NCCL only; a gloo group (DDP on CPUs) left open can abort its process at exit ('terminate called
    without an active exception', status -6) once the other process has closed the connection first."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # neither process closes the connection while the other still uses it
        dist.destroy_process_group()


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line; an OSError as ``path: reason`` (``[Errno 28] …: 'path'`` otherwise)."""
    if isinstance(e, OSError) and not isinstance(e, OutputError) and e.filename is not None:
        target = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else f"{e.filename}"
        text = f"{target}: {e.strerror or type(e).__name__}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
