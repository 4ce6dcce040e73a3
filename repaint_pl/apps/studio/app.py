"""The studio's page (Gradio): paint a mask, set the schedule, watch x_t and the x0 prediction form,
stop, branch from kept states, compare results, download a result with its eval.py config.

Handlers are thin: the work is in ``logic`` (masks, schedules, tree, configs) and ``runner`` (sampling).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import zipfile
from types import SimpleNamespace
from typing import Any, Optional

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from repaint_pl.schedules import count_network_calls  # noqa: E402

from . import logic as L  # noqa: E402
from .runner import SAMPLERS, Job, JobResult, Snapshot, apply_settings, can_respace, kept_transitions  # noqa: E402

DISPLAY_SIDE = 256  # small pictures are enlarged (nearest) to about this many pixels in the page
KEPT_DOWNLOADS = 4  # download folders kept on disk (older ones are removed)
CACHE_LIFETIME = (600, 3600)  # Gradio's cache of shown pictures and files: every 10 min, drop those over 1 h


class Studio:
    """The loaded model and what the page needs to know about it."""

    def __init__(
        self,
        model,
        model_config: dict[str, Any],
        size: int,
        channels: int,
        examples: list[tuple[str, np.ndarray]],
        ckpt: Optional[str] = None,
        device: str = "cpu",
    ):
        self.model, self.model_config, self.size, self.channels = model, model_config, size, channels
        self.examples, self.ckpt, self.device = dict(examples), ckpt, torch.device(device)
        self.factor = int(getattr(getattr(model, "space", None), "factor", 1) or 1)  # crops around the hole snap to it
        self.num_classes = getattr(model.denoiser, "num_classes", None)
        self.has_prompt = hasattr(model.denoiser, "prompt")
        self.default_steps = model.sampling.num_timesteps
        self._downloads: Optional[str] = None
        self._download_count = 0

    # ------------------------------------------------------------------ inputs

    def example_editor(self, name: str) -> dict[str, Any]:
        picture = L.enlarge(self.examples[name], DISPLAY_SIDE)
        return {"background": picture, "layers": [], "composite": picture}

    def picture(self, editor: Optional[dict[str, Any]]) -> np.ndarray:
        if not editor or editor.get("background") is None:
            raise L.StudioInputError("image: upload a picture or pick an example first")
        return L.as_uint8(editor["background"])

    def keep_mask(self, editor, source: str, invert: bool, kind: str, mask_seed: int, mask_file) -> torch.Tensor:
        picture = self.picture(editor)
        if source == "generated":
            keep = L.generated_mask(kind, self.size, mask_seed)
            return 1 - keep if invert else keep
        if source == "uploaded":
            if mask_file is None:
                raise L.StudioInputError("mask: upload a mask file (255 = known) or choose another mask source")
            return L.mask_from_upload(mask_file, picture.shape, self.size, invert)
        return L.mask_from_layers(editor, self.size, invert)

    def inputs(self, editor, source, invert, kind, mask_seed, mask_file, crop: bool = False, pad: Any = 32):
        """The model's picture (uint8 at its size), keep mask ``[1, S, S]`` and, for a picture larger than the
        model's size with ``crop`` (and a painted or uploaded hole), the ``CropContext`` to stitch the fill back;
        else the picture's centre square, resized (context None)."""
        picture = self.picture(editor)
        if crop and source != "generated" and max(picture.shape[:2]) > self.size:
            hole = self.full_hole(editor, source, invert, mask_file, picture.shape)
            if hole is not None:
                return L.crop_around_hole(picture, hole, self.size, self.channels, int(pad or 0), self.factor)
        keep = self.keep_mask(editor, source, invert, kind, mask_seed, mask_file)
        return L.fit_picture(picture, self.size, self.channels), keep, None

    def full_hole(self, editor, source: str, invert: bool, mask_file, shape) -> Optional[np.ndarray]:
        """The hole at the picture's resolution (bool ``[H, W]``), or None (an uploaded mask of the model's size)."""
        if source == "uploaded":
            if mask_file is None:
                raise L.StudioInputError("mask: upload a mask file (255 = known) or choose another mask source")
            return L.upload_hole(mask_file, shape, invert)
        painted = L.painted_alpha(editor)
        return ~painted if invert else painted

    def state_numel(self) -> int:
        """Numbers in one kept state (at most the picture's; a latent space keeps fewer)."""
        return int(self.channels) * int(self.size) ** 2

    # ------------------------------------------------------------------ downloads

    def download_folder(self, key: int) -> str:
        """A fresh folder for result ``key``'s download, inside the one folder the studio owns (removed at
        exit); only the ``KEPT_DOWNLOADS`` newest stay (the page has its own copy once it is shown)."""
        if self._downloads is None:
            self._downloads = tempfile.mkdtemp(prefix="repaint_studio_")
            atexit.register(shutil.rmtree, self._downloads, True)
        self._download_count += 1
        folder = os.path.join(self._downloads, f"{self._download_count:06d}_result_{key}")
        os.makedirs(folder)
        for old in sorted(os.listdir(self._downloads))[:-KEPT_DOWNLOADS]:
            shutil.rmtree(os.path.join(self._downloads, old), ignore_errors=True)
        return folder

    # ------------------------------------------------------------------ settings

    def num_timesteps(self, steps: Optional[int]) -> int:
        return int(steps) if steps and can_respace(self.model) else self.model.sampling.num_timesteps

    def settings(self, steps, sampler, seed, guidance, prompt, negative, label) -> dict[str, Any]:
        return {
            "steps": self.num_timesteps(steps),
            "sampler": sampler,
            "seed": int(seed),
            "guidance": guidance if self.has_prompt else None,
            "prompt": prompt if self.has_prompt else None,
            "negative_prompt": negative if self.has_prompt else None,
            "label": int(label) if self.num_classes else None,
        }

    def config_extra(self, settings: dict[str, Any]) -> dict[str, Any]:
        """What the eval.py config needs beyond the model's loaded section."""
        cls = SAMPLERS[settings["sampler"]]
        model: dict[str, Any] = {"sampler": {"class_path": f"{cls.__module__}.{cls.__name__}"}}
        if can_respace(self.model):
            model["diffusion"] = {
                **self.model_config.get("diffusion", {}),
                "timestep_respacing": str(settings["steps"]),
            }
        if settings.get("prompt") is not None and isinstance(self.model_config.get("denoiser"), dict):
            denoiser = self.model_config["denoiser"]
            guided = {"negative_prompt": settings.get("negative_prompt") or "", "guidance_scale": settings["guidance"]}
            model["denoiser"] = {**denoiser, "init_args": {**denoiser.get("init_args", {}), **guided}}
        data = {"image_size": self.size, "channels": self.channels}
        if settings.get("label") is not None:
            data["label"] = settings["label"]
        if settings.get("prompt"):
            data["prompt"] = settings["prompt"]
        return {"model": model, "data": data, "ckpt": os.path.abspath(self.ckpt) if self.ckpt else None}

    def conditioning(self, settings: dict[str, Any], n: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if settings.get("label") is not None:
            out["y"] = torch.full((n,), settings["label"], dtype=torch.long, device=self.device)
        if settings.get("prompt") is not None:
            out["prompts"] = [settings["prompt"]] * n
            out["negative_prompts"] = [settings.get("negative_prompt") or ""] * n
        return out


# ---------------------------------------------------------------------- pictures for the page


def tile(pictures: list[np.ndarray]) -> Optional[np.ndarray]:
    """Variants side by side, enlarged for the page."""
    if not pictures:
        return None
    rgb = [np.asarray(Image.fromarray(p).convert("RGB")) for p in pictures]
    gap = np.full((rgb[0].shape[0], 2, 3), 255, np.uint8)
    row = np.concatenate([x for p in rgb for x in (p, gap)][:-1], axis=1)
    return L.enlarge(row, DISPLAY_SIDE)


def gallery_items(tree: L.ResultTree) -> list[tuple[np.ndarray, str]]:
    return [(L.enlarge(r.picture, DISPLAY_SIDE), r.caption()) for r in tree.ordered()]


def result_choices(tree: L.ResultTree) -> list[tuple[str, int]]:
    return [(r.caption(), r.key) for r in tree.ordered()]


def schedule_figure(studio: Studio, controls: L.ScheduleControls, steps) -> tuple[np.ndarray, str]:
    """The schedule plot and the call count for the current controls."""
    try:
        times = L.schedule_times(controls, studio.num_timesteps(steps))
    except L.StudioInputError as e:
        return None, f"⚠ {e}"
    calls = studio.model.sampler.network_calls(times)
    return L.schedule_plot(times), f"**{calls} network calls** per image · {len(times) - 1} transitions"


def save_download(result: L.Result, studio: Studio) -> list[str]:
    """result_<key>.png and a zip with image.png, keep_mask.png, result.png and config.yaml (the model's
    input and output: eval.py reproduces them); for a big picture's crop first result_<key>_full.png, the
    fill stitched into the full-resolution picture."""
    folder = studio.download_folder(result.key)
    png = os.path.join(folder, f"result_{result.key}.png")
    Image.fromarray(result.picture).save(png)
    full = []
    if result.crop is not None:
        full = [os.path.join(folder, f"result_{result.key}_full.png")]
        Image.fromarray(result.full_picture()).save(full[0])
    config = L.reproduce_config(result, studio.model_config, result_extra(result, studio))
    bundle = os.path.join(folder, f"result_{result.key}_eval.zip")
    with zipfile.ZipFile(bundle, "w") as z:
        z.write(png, "result.png")
        for name, arr in (("image.png", result.image), ("keep_mask.png", to_mask_png(result.keep))):
            path = os.path.join(folder, name)
            Image.fromarray(arr).save(path)
            z.write(path, name)
        z.writestr("config.yaml", L.config_yaml(config))
    return [*full, png, bundle]


def result_extra(result: L.Result, studio: Studio) -> dict[str, Any]:
    return studio.config_extra(result.settings)


def to_mask_png(keep: torch.Tensor) -> np.ndarray:
    return (keep[0].numpy() * 255).round().astype(np.uint8)


# ---------------------------------------------------------------------- handlers


def controls_of(steps, jump_length, jump_n_sample, start_resampling, profile, strength, explicit) -> L.ScheduleControls:
    """The schedule controls' values (``steps`` is handled by the caller); an emptied box is a message."""
    named = {"jump length": jump_length, "resamplings": jump_n_sample, "profile strength": strength}
    for name, value in named.items():
        if value is None or value == "":
            raise L.StudioInputError(f"schedule: {name} is empty")
    start = int(start_resampling) if start_resampling not in (None, "") and int(start_resampling) > 0 else None
    return L.ScheduleControls(
        None, int(jump_length), int(jump_n_sample), start, profile, float(strength), explicit or ""
    )


def schedule_figure_of(studio: Studio, *values) -> tuple[Optional[np.ndarray], str]:
    """The schedule plot and call count for the page's schedule controls (``values`` in their order)."""
    try:
        controls = controls_of(*values)
    except L.StudioInputError as e:
        return None, f"⚠ {e}"
    return schedule_figure(studio, controls, values[0])


def live_outputs(snap: Snapshot, times: list[int], kept: list[int], start: Optional[int]) -> tuple:
    plot = L.schedule_plot(times, position=snap.index + 1, kept=kept, start=start)
    return tile(snap.x_t), tile(snap.x0), plot, snap.progress


def follow_job(studio: Studio, tree: L.ResultTree, job: Job, make_results, start: Optional[int] = None):
    """Yield the page's outputs while ``job`` runs, then add its results to the tree and show them."""
    tree.job = job
    kept = sorted(job.keep)
    job.start_thread()
    try:
        for event in job.follow():
            if isinstance(event, Snapshot):
                yield (tree, *live_outputs(event, job.times, kept, start), *[gr.skip()] * 5)
            else:
                yield from finish_job(tree, job, event, make_results, kept, start)
    finally:  # the page went away mid-run: stop the job so that the next one has the device to itself
        job.stop.set()
        job.thread.join()
        tree.job = None


def finish_job(tree: L.ResultTree, job: Job, event: JobResult, make_results, kept: list[int], start: Optional[int]):
    """The final outputs of a job: its results in the tree, gallery, pickers and comparison."""
    if event.error:
        yield message_only(tree, event.error)
        return
    added = make_results(event)
    if not added:
        yield message_only(tree, "stopped before the first network call: nothing to keep")
        return
    word = "stopped" if event.stopped else "finished"
    message = f"{word}: {event.calls} network calls in {event.seconds:.1f} s → result #{added[-1].key}"
    if added[-1].crop is not None:
        message += f" ({added[-1].crop.describe()}; the full picture is in the downloads)"
    choices = result_choices(tree)
    final_pos = len(job.times) - 1 if not event.stopped else None
    plot = L.schedule_plot(job.times, position=final_pos, kept=kept, start=start)
    first = added[0].parent if added[0].parent is not None else added[0].key
    yield (
        tree,
        tile(event.pictures) if event.pictures else gr.skip(),
        gr.skip(),
        plot,
        f"calls {event.calls} / {job.total} · {event.seconds:.1f} s",
        message,
        gallery_items(tree),
        gr.update(choices=choices, value=added[0].key),
        gr.update(choices=choices, value=first),
        gr.update(choices=choices, value=added[-1].key),
    )


def message_only(tree: L.ResultTree, text: str) -> tuple:
    """The outputs of a run that could not start or failed: a one-line message, nothing else changes."""
    return (tree, gr.skip(), gr.skip(), gr.skip(), "", f"⚠ {text}", *[gr.skip()] * 4)


def run_handler(studio: Studio):
    def run(
        tree,
        editor,
        source,
        invert,
        kind,
        mask_seed,
        mask_file,
        steps,
        jump_length,
        jump_n_sample,
        start_resampling,
        profile,
        strength,
        explicit,
        sampler,
        seed,
        variants,
        guidance,
        prompt,
        negative,
        label,
        keep_every,
        keep_at,
        preview_every,
        crop=False,
        crop_pad=32,
    ):
        tree = tree or L.ResultTree()
        try:
            picture, keep, context = studio.inputs(editor, source, invert, kind, mask_seed, mask_file, crop, crop_pad)
            settings = studio.settings(steps, sampler, seed, guidance, prompt, negative, label)
            controls = controls_of(steps, jump_length, jump_n_sample, start_resampling, profile, strength, explicit)
            times = L.schedule_times(controls, settings["steps"])
            kept = kept_transitions(times, keep_every, extra=keep_at)
            L.check_run_size(variants or 0, len(kept), studio.state_numel())
            apply_settings(studio.model, settings)
        except L.StudioInputError as e:
            yield message_only(tree, str(e))
            return
        n = int(variants)
        image = L.to_tensor(picture)[None].repeat(n, 1, 1, 1).to(studio.device)
        job = Job(
            studio.model,
            image,
            keep[None].repeat(n, 1, 1, 1).to(studio.device),
            torch.arange(n, device=studio.device),
            times,
            keep=kept,
            preview_every=int(preview_every or 1),
            **studio.conditioning(settings, n),
        )

        def make_results(event: JobResult) -> list[L.Result]:
            return [
                tree.add(
                    L.Result(
                        tree.next_key(),
                        pic,
                        times,
                        event.calls,
                        int(seed),
                        v,
                        stopped=event.stopped,
                        states=event.states[v],
                        image=picture,
                        keep=keep,
                        settings=settings,
                        crop=context,
                    )
                )
                for v, pic in enumerate(event.pictures)
            ]

        yield from follow_job(studio, tree, job, make_results)

    return run


def branch_plan(studio: Studio, tree, key, index, tail_mode, new_seed, controls: L.ScheduleControls):
    """(state to start from, full table, the branch's own calls) for a branch request."""
    if tree is None or key is None or key not in tree.results:
        raise L.StudioInputError("branch: run first, then pick a result")
    if index is None:
        raise L.StudioInputError(f"branch: result #{key} has no kept state to branch from")
    parent = tree.results[key]
    state = L.branch_state(parent, int(index), None if not new_seed else 1)
    if state.noise_state is None and not new_seed:
        raise L.StudioInputError("branch: this sampler keeps no noise stream; tick 'new seed' to branch")
    steps = parent.settings.get("steps")
    tail = None if tail_mode == "saved rest" else L.branch_tail(controls, state.t, studio.num_timesteps(steps))
    times = state.continue_times(tail)
    L.check_schedule_size(times, "branch")
    return parent, state, times, count_network_calls(times[state.index + 1 :])


def branch_cost_handler(studio: Studio):
    def cost(
        tree, key, index, tail_mode, new_seed, steps, jump_length, jump_n_sample, start_res, profile, strength, explicit
    ):
        try:
            controls = controls_of(steps, jump_length, jump_n_sample, start_res, profile, strength, explicit)
            parent, state, times, calls = branch_plan(studio, tree, key, index, tail_mode, new_seed, controls)
        except L.StudioInputError as e:
            return f"{e}"
        total = count_network_calls(parent.times)
        return f"branch cost: **{calls}** network calls (the whole run: {total}) · continues from t={state.t}"

    return cost


def branch_handler(studio: Studio):
    def branch(
        tree,
        key,
        index,
        tail_mode,
        new_seed,
        branch_seed,
        steps,
        jump_length,
        jump_n_sample,
        start_res,
        profile,
        strength,
        explicit,
        keep_every,
        keep_at,
        preview_every,
    ):
        try:
            controls = controls_of(steps, jump_length, jump_n_sample, start_res, profile, strength, explicit)
            parent, state, times, calls = branch_plan(studio, tree, key, index, tail_mode, new_seed, controls)
            seed = int(branch_seed) if new_seed else parent.seed
            settings = {**parent.settings, "seed": seed}
            kept = kept_transitions(times, keep_every, state, keep_at)
            L.check_run_size(1, len(kept), studio.state_numel())
            apply_settings(studio.model, settings)
        except L.StudioInputError as e:
            yield message_only(tree, str(e))
            return
        dev = studio.device
        job = Job(
            studio.model,
            L.to_tensor(parent.image)[None].to(dev),
            parent.keep[None].to(dev),
            torch.tensor([parent.sample_id], device=dev),
            times,
            start=state,
            keep=kept,
            preview_every=int(preview_every or 1),
            **studio.conditioning(settings, 1),
        )

        def make_results(event: JobResult) -> list[L.Result]:
            if not event.pictures:
                return []
            inherited = {i: s for i, s in parent.states.items() if i <= state.index and not new_seed}
            r = L.Result(
                tree.next_key(),
                event.pictures[0],
                times,
                event.calls,
                seed,
                parent.sample_id,
                parent=parent.key,
                branch_index=state.index,
                exact_noise=parent.exact_noise and not new_seed,
                stopped=event.stopped,
                states={**inherited, **event.states[0]},
                image=parent.image,
                keep=parent.keep,
                settings=settings,
                crop=parent.crop,
            )
            return [tree.add(r)]

        yield from follow_job(studio, tree, job, make_results, start=state.index + 1)

    return branch


def stop_handler(tree) -> None:
    """Ask the running job to stop after its current transition (the run's own output reports it)."""
    if tree is not None and tree.job is not None:
        tree.job.stop.set()


def pick_result_handler(studio: Studio):
    def pick(tree, key):
        if tree is None or key not in (tree.results if tree else {}):
            return gr.update(choices=[], value=None), None, None
        r = tree.results[key]
        choices = tree.state_choices(key)
        middle = choices[len(choices) // 2][1] if choices else None
        return gr.update(choices=choices, value=middle), save_download(r, studio), r.caption()

    return pick


def compare_handler(tree, a, b):
    if tree is None or a not in tree.results or b not in tree.results:
        return None
    return (
        L.enlarge(np.asarray(Image.fromarray(tree.results[a].picture).convert("RGB")), DISPLAY_SIDE),
        L.enlarge(np.asarray(Image.fromarray(tree.results[b].picture).convert("RGB")), DISPLAY_SIDE),
    )


def mask_preview_handler(studio: Studio):
    def preview(editor, source, invert, kind, mask_seed, mask_file, crop=False, crop_pad=32):
        try:
            picture, keep, context = studio.inputs(editor, source, invert, kind, mask_seed, mask_file, crop, crop_pad)
        except L.StudioInputError as e:
            return None, f"⚠ {e}"
        hole = 100 * (1 - keep.mean().item())
        where = "the picture" if context is None else context.describe()
        return L.enlarge(L.masked_view(picture, keep), DISPLAY_SIDE), f"hole: {hole:.0f}% of {where}"

    return preview


def big_picture_handler(studio: Studio):
    """After an upload: tick "crop around the hole" for a picture larger than the model's size."""

    def big(editor):
        background = (editor or {}).get("background")
        return background is not None and max(np.asarray(background).shape[:2]) > studio.size

    return big


def upload_picture_handler(studio: Studio):
    def upload(path):
        if path is None:
            return gr.skip(), ""
        try:
            picture = L.as_uint8(path, "picture")
        except L.StudioInputError as e:
            return gr.skip(), f"⚠ {e}"
        shown = np.asarray(Image.fromarray(picture).convert("RGB"))
        h, w = shown.shape[:2]
        side = studio.size
        seen = f"the model sees its centre square at {side}x{side}"
        if max(h, w) > side:
            seen = f"inpainted in a crop around the hole at {side}x{side}, stitched back"
        note = f"loaded {os.path.basename(path)} ({w}x{h}; {seen})"
        return {"background": shown, "layers": [], "composite": shown}, note

    return upload


# ---------------------------------------------------------------------- the page

INTRO = (
    "### RePaint Studio\n"
    "Paint the hole on the picture (brush, eraser and undo are in the editor's toolbar), or pick a generated "
    "or uploaded mask; set the schedule; **Run**.  x_t and the x0 prediction refresh while it runs, the red "
    "marker walks the schedule, green dots are the kept states.  Pick a result and a kept state to **branch**: "
    "only the remaining network calls are spent."
)


def _schedule_controls(studio: Studio) -> list:
    steps = gr.Slider(
        2,
        max(studio.default_steps, 250),
        value=studio.default_steps,
        step=1,
        label="steps (respaced)",
        interactive=can_respace(studio.model),
        elem_id="steps",
    )
    with gr.Row():
        jump_length = gr.Number(10, label="jump length", precision=0, minimum=1, elem_id="jump-length")
        jump_n = gr.Number(3, label="resamplings (jump_n_sample)", precision=0, minimum=1, elem_id="jump-n")
        start_res = gr.Number(0, label="start_resampling (0 = everywhere)", precision=0, minimum=0)
    with gr.Row():
        profile = gr.Radio(["uniform", "early", "late"], value="uniform", label="resampling profile")
        strength = gr.Slider(0, 1, value=1.0, step=0.05, label="profile strength")
    explicit = gr.Textbox("", label="explicit time list (overrides the above; e.g. 9 8 7 8 7 6 … -1)", lines=1)
    return [steps, jump_length, jump_n, start_res, profile, strength, explicit]


def _editor_panel(studio: Studio, ui: SimpleNamespace) -> None:
    """The picture with its brush (the hole), the examples and the clear button."""
    names = list(studio.examples)
    ui.editor = gr.ImageEditor(
        studio.example_editor(names[0]) if names else None,
        label="picture — paint the hole",
        type="numpy",
        layers=False,
        format="png",
        image_mode="RGBA",
        sources=["upload", "clipboard"],
        brush=gr.Brush(default_size=12, colors=["#ff00aa"], color_mode="fixed"),
        eraser=gr.Eraser(default_size=12),
        transforms=[],
        canvas_size=(DISPLAY_SIDE, DISPLAY_SIDE),
        elem_id="editor",
        height=400,
    )
    with gr.Row():
        ui.example = gr.Dropdown(names, value=names[0] if names else None, label="example", scale=3)
        ui.clear = gr.Button("clear mask", scale=1)


def _mask_panel(ui: SimpleNamespace) -> None:
    """Mask source, invert, generated type and seed, uploads, and what the model gets."""
    with gr.Row():
        ui.source = gr.Radio(["painted", "generated", "uploaded"], value="painted", label="mask source")
        ui.invert = gr.Checkbox(False, label="invert mask")
    with gr.Row():
        ui.kind = gr.Dropdown(list(L.STUDIO_MASK_TYPES), value="thick", label="generated mask type")
        ui.mask_seed = gr.Number(0, label="mask seed", precision=0)
    with gr.Row():
        ui.crop = gr.Checkbox(False, label="big picture: inpaint a crop around the hole", elem_id="crop")
        ui.crop_pad = gr.Number(32, label="context around the hole (pixels)", precision=0, minimum=0)
    ui.mask_view = gr.Image(
        label="what the model gets (hole in pink)", format="png", interactive=False, elem_id="mask-view", height=200
    )
    ui.mask_note = gr.Markdown("", elem_id="mask-note")
    with gr.Accordion("upload a picture or a mask file", open=False):
        files = dict(file_types=["image"], type="filepath", height=90)
        ui.picture_file = gr.File(label="picture", elem_id="picture-file", **files)
        ui.mask_file = gr.File(label="mask (255 = known)", elem_id="mask-file", **files)


def _conditioning_controls(studio: Studio, ui: SimpleNamespace) -> None:
    """Prompt / negative prompt / guidance for text models, a class for class-conditional ones (else hidden)."""
    denoiser = studio.model.denoiser
    with gr.Row(visible=studio.has_prompt):
        ui.prompt = gr.Textbox(getattr(denoiser, "prompt", "") or "", label="prompt")
        ui.negative = gr.Textbox(getattr(denoiser, "negative_prompt", "") or "", label="negative prompt")
        ui.guidance = gr.Number(getattr(denoiser, "guidance_scale", 7.5) or 7.5, label="guidance scale")
    top = (studio.num_classes or 1) - 1
    ui.label = gr.Number(0, label=f"class (0 … {top})", precision=0, visible=bool(studio.num_classes))


def _run_panel(studio: Studio, ui: SimpleNamespace) -> None:
    """Schedule controls and plot, sampler, seed, variants, conditioning, kept states, run and stop."""
    ui.schedule = _schedule_controls(studio)
    ui.calls = gr.Markdown("", elem_id="calls")
    ui.plot = gr.Image(label="schedule", format="png", interactive=False, elem_id="schedule-plot", height=210)
    with gr.Row():
        ui.sampler = gr.Dropdown(list(SAMPLERS), value="RePaint", label="sampler", visible=len(SAMPLERS) > 1)
        ui.seed = gr.Number(0, label="seed", precision=0, elem_id="seed")
        ui.variants = gr.Slider(1, 4, value=1, step=1, label="variants")
    _conditioning_controls(studio, ui)
    with gr.Row():
        every = dict(precision=0, minimum=1)
        ui.keep_every = gr.Number(5, label="keep a state every k calls", elem_id="keep-every", **every)
        ui.keep_at = gr.Textbox("", label="and after transitions (e.g. 10 25)", elem_id="keep-at")
        ui.preview_every = gr.Number(5, label="preview every k transitions", elem_id="preview-every", **every)
    with gr.Row():
        ui.run = gr.Button("Run", variant="primary", elem_id="run")
        ui.stop = gr.Button("Stop", variant="stop", elem_id="stop")


def _live_panel(ui: SimpleNamespace) -> None:
    """Progress line, x_t, x0 prediction and the position on the schedule."""
    ui.progress = gr.Markdown("", elem_id="progress")
    with gr.Row():
        shown = dict(format="png", interactive=False, height=260)
        ui.live_xt = gr.Image(label="x_t", elem_id="live-xt", **shown)
        ui.live_x0 = gr.Image(label="x0 prediction", elem_id="live-x0", **shown)
        ui.live_plot = gr.Image(label="position on the schedule", elem_id="live-plot", **shown)


def _results_panel(ui: SimpleNamespace) -> None:
    """The result tree (gallery), downloads, branching and the A | B comparison."""
    with gr.Row():
        with gr.Column(scale=3):
            ui.gallery = gr.Gallery(
                label="results (each branch follows its parent)", columns=5, height=230, format="png",
                elem_id="gallery", fit_columns=False, object_fit="contain", allow_preview=False,
            )  # fmt: skip
            ui.result_pick = gr.Dropdown([], label="result", elem_id="result-pick")
            ui.downloads = gr.File(label="PNG + eval.py config", file_count="multiple", elem_id="downloads", height=110)
            ui.result_info = gr.Markdown("")
        with gr.Column(scale=2):
            ui.state_pick = gr.Dropdown([], label="branch from kept state", elem_id="branch-state")
            rests = ["saved rest", "new schedule from the controls"]
            ui.tail_mode = gr.Radio(rests, value="saved rest", label="rest of the schedule")
            with gr.Row():
                ui.new_seed = gr.Checkbox(False, label="new seed")
                ui.branch_seed = gr.Number(1, label="branch seed", precision=0)
            ui.cost = gr.Markdown("", elem_id="branch-cost")
            ui.branch = gr.Button("Branch", variant="primary", elem_id="branch")
        with gr.Column(scale=3):
            with gr.Row():
                ui.compare_a = gr.Dropdown([], label="compare A", elem_id="compare-a")
                ui.compare_b = gr.Dropdown([], label="compare B", elem_id="compare-b")
            ui.slider = gr.ImageSlider(label="A | B", format="png", elem_id="compare", max_height=300)


def clear_layers(editor):
    """The editor with its paint removed (the picture stays)."""
    if not editor or editor.get("background") is None:
        return gr.skip()
    return {"background": editor["background"], "layers": [], "composite": editor["background"]}


def _wire_inputs(studio: Studio, demo: gr.Blocks, ui: SimpleNamespace) -> None:
    """Mask preview, examples, clear, uploads, schedule plot and call count."""
    mask_inputs = [ui.editor, ui.source, ui.invert, ui.kind, ui.mask_seed, ui.mask_file]
    ui.crop_inputs = [ui.crop, ui.crop_pad]
    mask_events = [c.change for c in (*mask_inputs, *ui.crop_inputs)] + [ui.editor.apply, ui.editor.input]
    preview = mask_preview_handler(studio)
    previewed = [*mask_inputs, *ui.crop_inputs]
    gr.on(mask_events, preview, previewed, [ui.mask_view, ui.mask_note], show_progress="hidden")
    demo.load(preview, previewed, [ui.mask_view, ui.mask_note])
    ui.example.change(lambda n: studio.example_editor(n) if n else gr.skip(), ui.example, ui.editor).then(
        lambda: False, None, ui.crop
    )
    ui.clear.click(clear_layers, ui.editor, ui.editor)
    big = big_picture_handler(studio)
    ui.picture_file.upload(upload_picture_handler(studio), ui.picture_file, [ui.editor, ui.message]).then(
        big, ui.editor, ui.crop
    )  # (the editor's own upload event also fires for its initial picture: the box is ticked by hand there)
    schedule_fn = lambda *values: schedule_figure_of(studio, *values)  # noqa: E731
    gr.on([c.change for c in ui.schedule], schedule_fn, ui.schedule, [ui.plot, ui.calls], show_progress="hidden")
    demo.load(schedule_fn, ui.schedule, [ui.plot, ui.calls])
    ui.mask_inputs = mask_inputs


def _wire_jobs(studio: Studio, ui: SimpleNamespace) -> None:
    """Run, stop and branch (one job at a time on the device), branch cost, result pick, comparison."""
    live = [ui.tree, ui.live_xt, ui.live_x0, ui.live_plot, ui.progress, ui.message, ui.gallery, ui.result_pick]
    live += [ui.compare_a, ui.compare_b]
    run_inputs = [ui.tree, *ui.mask_inputs, *ui.schedule, ui.sampler, ui.seed, ui.variants, ui.guidance]
    run_inputs += [ui.prompt, ui.negative, ui.label, ui.keep_every, ui.keep_at, ui.preview_every, *ui.crop_inputs]
    device_queue = dict(concurrency_id="device", concurrency_limit=1)
    ui.run.click(run_handler(studio), run_inputs, live, **device_queue)
    ui.stop.click(stop_handler, ui.tree, None, concurrency_limit=None, queue=False)
    choice = [ui.tree, ui.result_pick, ui.state_pick, ui.tail_mode, ui.new_seed]
    branch_inputs = [*choice, ui.branch_seed, *ui.schedule, ui.keep_every, ui.keep_at, ui.preview_every]
    ui.branch.click(branch_handler(studio), branch_inputs, live, **device_queue)
    cost_events = [c.change for c in (ui.state_pick, ui.tail_mode, ui.new_seed, *ui.schedule)]
    gr.on(cost_events, branch_cost_handler(studio), [*choice, *ui.schedule], ui.cost, show_progress="hidden")
    picked = [ui.state_pick, ui.downloads, ui.result_info]
    ui.result_pick.change(pick_result_handler(studio), [ui.tree, ui.result_pick], picked)
    compared = [ui.tree, ui.compare_a, ui.compare_b]
    gr.on([ui.compare_a.change, ui.compare_b.change], compare_handler, compared, ui.slider)


def build_app(studio: Studio) -> gr.Blocks:
    """The page; one sampling job at a time (a queue), the stop button outside the queue's limit."""
    ui = SimpleNamespace()
    with gr.Blocks(title="RePaint Studio", analytics_enabled=False, delete_cache=CACHE_LIFETIME) as demo:
        ui.tree = gr.State(None)
        gr.Markdown(INTRO)
        ui.message = gr.Markdown("", elem_id="message")
        with gr.Row():
            with gr.Column(scale=4):
                _editor_panel(studio, ui)
            with gr.Column(scale=3):
                _mask_panel(ui)
            with gr.Column(scale=5):
                _run_panel(studio, ui)
        _live_panel(ui)
        _results_panel(ui)
        _wire_inputs(studio, demo, ui)
        _wire_jobs(studio, ui)
    return demo


def load_studio(model_args: list[str]) -> Studio:
    """The model of eval.py's flags (the texture model without any) and its held-out crops as examples."""
    from repaint_pl.cli import load_model
    from repaint_pl.pipeline import picture_format

    cli = load_model(model_args)
    model, dm = cli.model, cli.datamodule
    device = cli.trainer.strategy.root_device
    model.to(device)
    config = cli.config.as_dict()
    size, channels = picture_format(cli)  # the pipeline's rule: a released model at its own size, not the crops'
    size = size or 64
    return Studio(
        model, config["model"], int(size), int(channels), example_pictures(dm), config.get("ckpt"), str(device)
    )


def example_pictures(dm, limit: int = 12) -> list[tuple[str, np.ndarray]]:
    """Held-out crops of a texture datamodule, or the first pictures of the datamodule's prediction set."""
    if dm is None:
        return []
    try:
        dm.setup("predict")
        if hasattr(dm, "eval_images"):
            return [(name, L.to_uint8(crop)) for name, crop in dm.eval_images()[:limit]]
        dataset = dm.predict_dataloader().dataset
        items = [dataset[i] for i in range(min(limit, len(dataset)))]
        return [(str(it.get("name", i)), L.to_uint8(it["image"])) for i, it in enumerate(items) if not it.get("error")]
    except (OSError, ValueError):  # a datamodule without readable examples: the page starts empty
        return []
