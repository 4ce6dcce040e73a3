"""RePaint Studio's logic without a browser: masks from the editor, schedules from the controls, the branch
tree, exact continuation from a kept state, stop, bad uploads, and the eval.py config that reproduces a result."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from repaint_pl.apps.studio import logic as L
from repaint_pl.apps.studio.runner import SAMPLERS, Job, apply_settings, kept_transitions, run_to_end
from repaint_pl.schedules import count_network_calls, jump_times, profile_jump_counts

SIZE = 32


# ---------------------------------------------------------------- masks


def editor_value(side: int = 128, box=(32, 48, 64, 80)) -> dict:
    """An editor value: grey background, one RGBA layer painted (alpha 255) over rows/cols ``box``."""
    background = np.full((side, side, 4), 128, np.uint8)
    layer = np.zeros((side, side, 4), np.uint8)
    y0, y1, x0, x1 = box
    layer[y0:y1, x0:x1] = (255, 0, 170, 255)
    return {"background": background, "layers": [layer], "composite": background}


def test_painted_layer_is_the_hole_and_invert_flips_it():
    keep = L.mask_from_layers(editor_value(128, (32, 48, 64, 80)), SIZE)
    expected = np.ones((SIZE, SIZE), np.float32)
    expected[8:12, 16:20] = 0  # the painted box at a quarter of the size
    assert keep.shape == (1, SIZE, SIZE)
    np.testing.assert_array_equal(keep[0].numpy(), expected)
    np.testing.assert_array_equal(L.mask_from_layers(editor_value(), SIZE, invert=True)[0].numpy(), 1 - expected)


def test_a_one_pixel_stroke_still_makes_a_hole_after_downsizing():
    value = editor_value(128, (33, 34, 10, 120))  # one row of paint
    keep = L.mask_from_layers(value, SIZE)[0]
    assert (keep[8, 3:30] == 0).all() and keep.sum() == SIZE * SIZE - (keep[8] == 0).sum()


def test_nothing_painted_keeps_everything_and_a_wrong_layer_is_refused():
    value = editor_value()
    value["layers"] = []
    assert L.mask_from_layers(value, SIZE).min() == 1
    value["layers"] = [np.zeros((10, 10, 4), np.uint8)]
    with pytest.raises(L.StudioInputError, match="layer is 10x10"):
        L.mask_from_layers(value, SIZE)
    with pytest.raises(L.StudioInputError, match="upload a picture"):
        L.mask_from_layers({"background": None, "layers": []}, SIZE)


def test_uploaded_mask_255_is_known_with_invert_and_size_check(tmp_path):
    mask = np.full((64, 96), 255, np.uint8)
    mask[16:48, 40:56] = 0  # a hole inside the centre square (columns 16..80)
    path = str(tmp_path / "m.png")
    Image.fromarray(mask).save(path)
    keep = L.mask_from_upload(path, (64, 96), SIZE)[0].numpy()
    expected = np.ones((SIZE, SIZE), np.float32)
    expected[8:24, 12:20] = 0  # centre crop (columns 16..80), halved
    np.testing.assert_array_equal(keep, expected)
    np.testing.assert_array_equal(L.mask_from_upload(path, (64, 96), SIZE, invert=True)[0].numpy(), 1 - expected)
    with pytest.raises(L.StudioInputError, match="mask: it is 96x64 but the picture is 50x40"):
        L.mask_from_upload(path, (40, 50), SIZE)


def test_bad_uploads_give_one_line_messages(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(L.StudioInputError, match="picture: notes.png is not an image"):
        L.as_uint8(str(text), "picture")
    with pytest.raises(L.StudioInputError, match="9000x8 is too large"):  # 8000² pixels: the decoder's limit
        L.as_uint8(np.zeros((8, 9000, 3), np.uint8), "picture")


def test_upload_handler_shows_the_message_in_the_page(tmp_path):
    from repaint_pl.apps.studio.app import upload_picture_handler

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    editor, message = upload_picture_handler(None)(str(text))
    assert message.startswith("⚠ picture: notes.txt is not an image") and "\n" not in message


def test_generated_masks_are_eval_masks():
    from repaint_pl.masks import keep_mask

    for kind in L.STUDIO_MASK_TYPES:
        assert torch.equal(L.generated_mask(kind, SIZE, 3), keep_mask(kind, SIZE, 3, 0))
    with pytest.raises(L.StudioInputError, match="unknown"):
        L.generated_mask("circle", SIZE, 0)


# ---------------------------------------------------------------- schedules


def test_schedule_from_controls_and_its_call_count():
    c = L.ScheduleControls(jump_length=2, jump_n_sample=3)
    times = L.schedule_times(c, 20)
    assert times == jump_times(20, 1, 2, 3)
    # every reverse step calls the network once; each jump point adds (n - 1) jumps of 2 reverse steps
    points = len(range(0, 20 - 2, 2))
    assert count_network_calls(times) == 20 + points * (3 - 1) * 2
    early = L.schedule_times(L.ScheduleControls(jump_length=2, jump_n_sample=3, profile="early"), 20)
    assert count_network_calls(early) == count_network_calls(times) and early != times
    assert sum(profile_jump_counts(20, 2, 3, "late")) and L.schedule_times(
        L.ScheduleControls(jump_length=2, jump_n_sample=3, start_resampling=6), 20
    ) == jump_times(20, 1, 2, 3, start_resampling=6)


def test_explicit_time_list_and_its_errors():
    c = L.ScheduleControls(explicit="4, 3 2 3 2 1 0 -1")
    assert L.schedule_times(c, 10) == [4, 3, 2, 3, 2, 1, 0, -1]
    for text, message in [
        ("4 2 -1", "every step must move by ±1"),
        ("4 x", "only integers"),
        ("12 11 -1", "10 respaced steps"),
        ("", None),
    ]:
        if message:
            with pytest.raises(L.StudioInputError, match=message):
                L.schedule_times(L.ScheduleControls(explicit=text), 10)


def test_branch_tail_starts_at_the_saved_level():
    tail = L.branch_tail(L.ScheduleControls(jump_length=2, jump_n_sample=2), 7, 20)
    assert tail == jump_times(8, 1, 2, 2) and tail[0] == 7


def test_kept_states_every_k_reverse_steps():
    times = jump_times(10, 1, 2, 2)
    kept = L.keep_indices(times, 3)
    reverse = [i for i, (a, b) in enumerate(zip(times[:-1], times[1:])) if b < a]
    assert sorted(kept) == [i for n, i in enumerate(reverse, 1) if n % 3 == 0 and i < len(times) - 2]
    assert L.remaining_calls(times, reverse[2]) == count_network_calls(times) - 3


def test_progress_line():
    p = L.Progress(total=40, done=10, started=0.0)
    assert p.line(now=2.0) == "calls 10 / 40 · 0.200 s/call · 6.0 s left"


def test_schedule_plot_is_an_rgb_picture():
    plot = L.schedule_plot(jump_times(10, 1, 2, 2), position=5, kept=[3, 7], start=4)
    assert plot.ndim == 3 and plot.shape[2] == 3 and plot.dtype == np.uint8


# ---------------------------------------------------------------- the branch tree


def result(key, parent=None, index=None, times=None):
    return L.Result(key, np.zeros((4, 4), np.uint8), times or [3, 2, 1, 0, -1], 4, 0, 0, parent, index)


def test_tree_orders_branches_after_their_parent():
    tree = L.ResultTree()
    for r in (result(1), result(2), result(3, 1, 0), result(4, 3, 1), result(5, 1, 2)):
        tree.add(r)
    assert [r.key for r in tree.ordered()] == [1, 3, 4, 5, 2]
    assert tree.lineage(4) == [1, 3, 4] and [c.key for c in tree.children(1)] == [3, 5]
    assert tree.next_key() == 6
    with pytest.raises(KeyError):
        tree.add(result(7, parent=99))
    assert "from #3 at transition 1" in tree.results[4].caption()


# ---------------------------------------------------------------- with a tiny model


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from repaint_pl.apps.studio.app import load_studio
    from repaint_pl.apps.tiny import randomize
    from repaint_pl.nets import UNetConfig

    path = str(tmp_path_factory.mktemp("studio") / "tiny.pt")
    torch.manual_seed(0)
    torch.save(randomize(UNetConfig(preset="tiny").build()).state_dict(), path)
    args = [
        "--ckpt",
        path,
        "--model.net.preset=tiny",
        "--model.diffusion.timestep_respacing=10",
        "--data=repaint_pl.datamodules.TextureDataModule",
        "--data.eval_size=32",
        "--data.crop_size=32",
    ]
    return load_studio(args)


def first_run(studio, steps=10, seed=3, variants=2, sampler="RePaint"):
    name, picture = next(iter(studio.examples.items()))
    picture = L.fit_picture(picture, studio.size, studio.channels)
    keep = L.generated_mask("box", studio.size, 1)
    apply_settings(studio.model, {"steps": steps, "sampler": sampler, "seed": seed})
    times = L.schedule_times(L.ScheduleControls(jump_length=2, jump_n_sample=2), steps)
    image = L.to_tensor(picture)[None].repeat(variants, 1, 1, 1)
    job = Job(
        studio.model,
        image,
        keep[None].repeat(variants, 1, 1, 1),
        torch.arange(variants),
        times,
        keep=kept_transitions(times, 2),
        preview_every=1,
    )
    return picture, keep, times, job, run_to_end(job)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_exact_continuation_reproduces_the_uninterrupted_run(studio, sampler):
    picture, keep, times, job, done = first_run(studio, sampler=sampler)
    assert not done.error and not done.stopped and done.calls == count_network_calls(times)
    index = sorted(done.states[1])[len(done.states[1]) // 2]
    parent = L.Result(1, done.pictures[1], times, done.calls, 3, 1, states=done.states[1], image=picture, keep=keep)
    state = L.branch_state(parent, index)
    branch = Job(studio.model, L.to_tensor(picture)[None], keep[None], torch.tensor([1]), times, start=state)
    again = run_to_end(branch)
    assert again.calls == L.remaining_calls(times, index) < done.calls
    np.testing.assert_array_equal(again.pictures[0], done.pictures[1])  # same pixels as without the stop
    # a new seed from the same state gives another fill, same known pixels' neighbourhood cost
    studio.model.seed = 11
    other = run_to_end(
        Job(
            studio.model,
            L.to_tensor(picture)[None],
            keep[None],
            torch.tensor([1]),
            times,
            start=L.branch_state(parent, index, new_seed=11),
        )
    )
    assert not np.array_equal(other.pictures[0], done.pictures[1])


def test_a_new_tail_costs_only_its_own_calls(studio):
    picture, keep, times, job, done = first_run(studio, variants=1)
    index = sorted(done.states[0])[0]
    parent = L.Result(1, done.pictures[0], times, done.calls, 3, 0, states=done.states[0], image=picture, keep=keep)
    state = L.branch_state(parent, index)
    tail = L.branch_tail(L.ScheduleControls(jump_length=3, jump_n_sample=3), state.t, 10)
    full = state.continue_times(tail)
    out = run_to_end(Job(studio.model, L.to_tensor(picture)[None], keep[None], torch.tensor([0]), full, start=state))
    assert out.calls == count_network_calls(tail) == L.remaining_calls(full, index)


def test_stop_ends_the_run_with_the_states_kept_so_far(studio):
    picture, keep, times, job, _ = first_run(studio, variants=1)
    stop_at = 6
    job = Job(
        studio.model, L.to_tensor(picture)[None], keep[None], torch.tensor([0]), times, keep=kept_transitions(times, 1)
    )
    hook = job._hook

    def stopping_hook(s):
        if s.index == stop_at:
            job.stop.set()
        hook(s)

    job._hook = stopping_hook
    out = run_to_end(job)
    assert out.stopped and not out.error and out.calls < count_network_calls(times)
    assert max(out.states[0]) < stop_at + 1 and len(out.pictures) == 1


RUN_ARGS = dict(
    editor=None, source="painted", invert=False, kind="thick", mask_seed=0, mask_file=None, steps=10, jump_length=2,
    jump_n_sample=2, start_resampling=0, profile="uniform", strength=1.0, explicit="", sampler="RePaint", seed=0,
    variants=2, guidance=7.5, prompt="", negative="", label=0, keep_every=2, keep_at="3 4", preview_every=1,
)  # fmt: skip


def run_page(studio, **changes) -> list[tuple]:
    """All outputs the run button's handler yields, for the page's inputs in their order."""
    from repaint_pl.apps.studio.app import run_handler

    return list(run_handler(studio)(None, *{**RUN_ARGS, **changes}.values()))


def test_run_handler_streams_previews_then_adds_results(studio):
    editor = studio.example_editor(next(iter(studio.examples)))
    editor["layers"] = [editor_value(editor["background"].shape[0])["layers"][0]]
    outputs = run_page(studio, editor=editor)
    tree, message = outputs[-1][0], outputs[-1][5]
    assert message.startswith("finished") and len(tree.results) == 2 and len(outputs) >= 2
    assert {r.sample_id for r in tree.results.values()} == {0, 1}
    assert {3, 4} <= set(tree.results[1].states)  # the chosen transitions, besides every 2nd call
    bad_mask = run_page(studio, editor=editor, source="uploaded")
    assert bad_mask[-1][5].startswith("⚠ mask: upload a mask file") and len(bad_mask) == 1
    bad_keep = run_page(studio, editor=editor, keep_at="999")
    assert bad_keep[-1][5].startswith("⚠ kept transitions: 999 is outside")


@pytest.mark.slow
def test_downloaded_config_reproduces_a_branch_with_eval_py(studio, tmp_path, monkeypatch):
    from repaint_pl.apps.studio.app import save_download
    from repaint_pl.cli import eval_main

    picture, keep, times, job, done = first_run(studio, variants=2)
    parent = L.Result(
        1,
        done.pictures[1],
        times,
        done.calls,
        3,
        1,
        states=done.states[1],
        image=picture,
        keep=keep,
        settings={"steps": 10, "sampler": "RePaint", "seed": 3},
    )
    index = sorted(done.states[1])[1]
    state = L.branch_state(parent, index)
    full = state.continue_times(L.branch_tail(L.ScheduleControls(jump_length=3, jump_n_sample=2), state.t, 10))
    out = run_to_end(Job(studio.model, L.to_tensor(picture)[None], keep[None], torch.tensor([1]), full, start=state))
    branch = L.Result(
        2,
        out.pictures[0],
        full,
        out.calls,
        3,
        1,
        parent=1,
        branch_index=index,
        image=picture,
        keep=keep,
        settings=parent.settings,
    )
    png, bundle = save_download(branch, studio)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), branch.picture)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(tmp_path)
    monkeypatch.chdir(tmp_path)
    eval_main(["--config", "config.yaml", "--metrics.enabled=false"])
    written = np.asarray(Image.open(os.path.join(tmp_path, "reproduced", "inpainted", "image.png")))
    np.testing.assert_array_equal(written, branch.picture)


def test_command_line_listens_locally_and_passes_model_flags_on():
    from repaint_pl.apps.studio.__main__ import parse_args

    args, model_args = parse_args(["--ckpt", "m.pt", "--port", "7000", "--accelerator", "gpu"])
    assert (args.host, args.port) == ("127.0.0.1", 7000)
    assert model_args == ["--ckpt", "m.pt", "--accelerator", "gpu"]


def test_prompt_and_class_controls_follow_the_denoiser():
    from types import SimpleNamespace

    from repaint_pl.apps.studio.app import Studio

    text = SimpleNamespace(prompt="a door", negative_prompt="", guidance_scale=7.5)
    model = SimpleNamespace(denoiser=text, sampling=SimpleNamespace(num_timesteps=50), net=None, seed=0,
                            sampler=SAMPLERS["RePaint"]())  # fmt: skip
    studio = Studio(model, {}, 64, 3, [])
    assert studio.has_prompt and not studio.num_classes
    settings = studio.settings(None, "RePaint", 4, 3.0, "a red door", "blurry", 7)
    assert settings["steps"] == 50 and settings["label"] is None  # steps stay the loaded ones without an ADM net
    cond = studio.conditioning(settings, 2)
    assert cond == {"prompts": ["a red door"] * 2, "negative_prompts": ["blurry"] * 2}
    apply_settings(model, settings)
    assert (text.guidance_scale, model.seed) == (3.0, 4)
    assert studio.config_extra(settings)["data"]["prompt"] == "a red door"

    model.denoiser = SimpleNamespace(num_classes=10)
    studio = Studio(model, {}, 64, 3, [])
    settings = studio.settings(None, "RePaint", 0, 3.0, "ignored", "", 7)
    assert not studio.has_prompt and settings["prompt"] is None
    assert torch.equal(studio.conditioning(settings, 2)["y"], torch.tensor([7, 7]))
    assert studio.config_extra(settings)["data"]["label"] == 7


def test_emptied_boxes_are_messages_not_crashes(studio):
    from repaint_pl.apps.studio.app import schedule_figure_of

    plot, line = schedule_figure_of(studio, 10, None, 2, 0, "uniform", 1.0, "")
    assert plot is None and line == "⚠ schedule: jump length is empty"
    plot, line = schedule_figure_of(studio, 10, 2, 2, 0, "uniform", 1.0, "")
    assert plot.ndim == 3 and line.startswith(f"**{count_network_calls(jump_times(10, 1, 2, 2))} network calls**")
    assert L.keep_indices(jump_times(10, 1, 2, 2), None) == set()
