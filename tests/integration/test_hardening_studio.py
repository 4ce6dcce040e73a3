"""The studio against hostile requests (issue 19, case 9): schedules and runs are capped, and temporary
files are bounded.  Handlers are called as plain functions (no browser)."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pytest
from test_studio import RUN_ARGS, editor_value, studio  # noqa: F401  (the module's tiny-model studio fixture)

from repaint_pl.apps.studio import logic as L


def test_jump_counts_that_would_build_a_huge_schedule_are_refused_at_once():
    started = time.perf_counter()
    for controls in (L.ScheduleControls(jump_length=10, jump_n_sample=200), L.ScheduleControls(jump_n_sample=10**9)):
        with pytest.raises(L.StudioInputError, match="at most") as err:
            L.schedule_times(controls, 1000)
        assert "\n" not in str(err.value)
    assert time.perf_counter() - started < 1.0
    paper = L.schedule_times(L.ScheduleControls(jump_length=10, jump_n_sample=10), 1000)  # still accepted
    assert len(paper) - 1 <= L.MAX_TRANSITIONS


def test_an_explicit_time_list_longer_than_the_cap_is_refused():
    times = [9] + [8, 9] * (L.MAX_TRANSITIONS // 2 + 10) + list(range(8, -2, -1))
    with pytest.raises(L.StudioInputError, match=f"time list: {len(times) - 1} transitions, at most"):
        L.schedule_times(L.ScheduleControls(explicit=" ".join(map(str, times))), 10)
    with pytest.raises(L.StudioInputError, match="time list: too long"):
        L.schedule_times(L.ScheduleControls(explicit="9 " * L.MAX_TIME_LIST_CHARS), 10)


def run_page(studio, **changes):  # noqa: F811
    from repaint_pl.apps.studio.app import run_handler

    return list(run_handler(studio)(None, *{**RUN_ARGS, **changes}.values()))


def test_the_run_handler_refuses_oversized_runs_in_one_line(studio, monkeypatch):  # noqa: F811
    editor = studio.example_editor(next(iter(studio.examples)))
    editor["layers"] = [editor_value(editor["background"].shape[0])["layers"][0]]
    many = run_page(studio, editor=editor, variants=64)
    assert len(many) == 1 and many[0][5].startswith("⚠ variants: 64, expected 1 … 4")
    monkeypatch.setattr(L, "MAX_KEPT_BYTES", 1000)
    kept = run_page(studio, editor=editor)
    assert len(kept) == 1 and kept[0][5].startswith("⚠ kept states:")
    long = run_page(studio, editor=editor, explicit=" ".join(map(str, [9] + [8, 9] * 30000 + list(range(8, -2, -1)))))
    assert len(long) == 1 and "transitions, at most" in long[0][5]


def test_downloads_stay_in_one_bounded_folder(studio, tmp_path, monkeypatch):  # noqa: F811
    from repaint_pl.apps.studio.app import KEPT_DOWNLOADS, save_download

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    picture = np.zeros((studio.size, studio.size), np.uint8)
    keep = L.generated_mask("box", studio.size, 0)
    settings = studio.settings(10, "RePaint", 0, None, None, None, None)
    for key in range(10):
        result = L.Result(key, picture, [2, 1, 0, -1], 3, 0, 0, image=picture, keep=keep, settings=settings)
        files = save_download(result, studio)
        assert all(os.path.isfile(f) for f in files)
    roots = os.listdir(tmp_path)
    assert len(roots) == 1, roots  # one folder of the studio's own
    assert len(os.listdir(tmp_path / roots[0])) <= KEPT_DOWNLOADS


def test_gradio_cache_is_bounded_and_owned(studio, monkeypatch):  # noqa: F811
    from repaint_pl.apps.studio import __main__ as studio_main
    from repaint_pl.apps.studio.app import build_app

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    studio_main.own_cache_folder()
    folder = os.environ["GRADIO_TEMP_DIR"]
    assert os.path.isdir(folder) and os.path.basename(folder).startswith("repaint_studio_cache_")
    os.rmdir(folder)
    frequency, age = build_app(studio).delete_cache
    assert 0 < frequency <= age <= 24 * 3600
