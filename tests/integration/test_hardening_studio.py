"""The studio against hostile uploads and requests (issue 19, cases 6 and 9): a decompression bomb is refused
from its header, messages never show server paths or raw decoder text, schedules and runs are capped, and
temporary files are bounded.  Handlers are called as plain functions (no browser)."""

from __future__ import annotations

import os
import struct
import tempfile
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from test_studio import RUN_ARGS, editor_value, studio  # noqa: F401  (the module's tiny-model studio fixture)

from repaint_pl.apps.studio import logic as L


def grey_png(path: str, side: int) -> str:
    """A valid all-black ``side``² 8-bit grey PNG, written row by row (a 12000² one is ~140 KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    data = b"".join(z.compress(row * 500) for _ in range(side // 500)) + z.compress(row * (side % 500)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def server_temp(tmp_path, name: str) -> str:
    """Where Gradio puts an upload: a hashed folder in the server's temp dir."""
    folder = tmp_path / "gradio" / "5f1c0ffee0ddba11"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)


def test_a_12000_square_upload_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    from repaint_pl.apps.studio.app import upload_picture_handler

    path = grey_png(server_temp(tmp_path, "bomb.png"), 12000)
    assert os.path.getsize(path) < 1_000_000
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    with pytest.raises(L.StudioInputError, match="bomb.png is 12000x12000, too large") as err:
        L.as_uint8(path, "picture")
    assert decoded == []  # nothing was decoded
    assert str(tmp_path) not in str(err.value)
    editor, message = upload_picture_handler(None)(path)
    assert message.startswith("⚠ picture: bomb.png is 12000x12000, too large") and decoded == []


@pytest.mark.parametrize("content", [b"not a picture at all", None])
def test_broken_uploads_show_one_line_without_server_paths_or_decoder_text(tmp_path, content):
    from repaint_pl.apps.studio.app import upload_picture_handler

    path = server_temp(tmp_path, "photo.png")
    if content is None:  # a PNG cut in the middle of its pixel data
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        with open(path, "rb") as f:
            content = f.read()[:400]
    with open(path, "wb") as f:
        f.write(content)
    editor, message = upload_picture_handler(None)(path)
    assert message.startswith("⚠ picture: photo.png ") and "\n" not in message
    assert str(tmp_path) not in message and "gradio" not in message
    assert "cannot identify" not in message and "truncated" not in message  # PIL's own wording


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
