"""RePaint Studio end to end in a real headless browser (Playwright + Debian's chromium), texture model, CPU.

Paints a stroke on the picture, runs a short schedule while watching the live previews change, waits for
the result, branches once from a middle kept state and checks that the branch's shown cost (and the calls
it made) is the parent's remaining calls; saves docs/studio.png.  No request may leave 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest

from repaint_pl.paths import ROOT as REPO
from repaint_pl.schedules import count_network_calls, jump_times

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
STEPS, JUMP_LENGTH, JUMP_N = 20, 2, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio_url():
    from repaint_pl.apps.studio.app import build_app, load_studio

    demo = build_app(load_studio([]))
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, footer_links=[])
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: make setup installs it (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--enable-unsafe-swiftshader"])
        yield b
        b.close()


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def image_src(page, elem_id: str) -> str:
    img = page.locator(f"#{elem_id} img")
    return img.first.get_attribute("src") if img.count() else ""


def wait_text(page, elem_id: str, pattern: str, timeout: float = 120) -> re.Match:
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, page.locator(f"#{elem_id}").inner_text())
        if m:
            return m
        time.sleep(0.2)
    raise AssertionError(f"#{elem_id} never showed {pattern!r}: {page.locator(f'#{elem_id}').inner_text()!r}")


def draw_stroke(page) -> None:
    box = page.locator("#editor canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 70, cy - 10)
    page.mouse.down()
    page.mouse.move(cx + 70, cy + 25, steps=15)
    page.mouse.up()


def watch_live(page, timeout: float = 180) -> list[tuple[str, str]]:
    """(x_t preview, progress line) pairs seen until the run's final message appears."""
    seen, end = [], time.time() + timeout
    while time.time() < end:
        seen.append((image_src(page, "live-xt"), page.locator("#progress").inner_text()))
        if re.search(r"finished|stopped|⚠", page.locator("#message").inner_text()):
            return seen
        time.sleep(0.05)
    raise AssertionError("the run did not finish")


def intermediate_previews(seen: list[tuple[str, str]]) -> set[str]:
    """The x_t previews shown while the progress line said calls k / N with 0 < k < N."""
    out = set()
    for src, line in seen:
        m = re.search(r"calls (\d+) / (\d+)", line)
        if src and m and 0 < int(m.group(1)) < int(m.group(2)):
            out.add(src)
    return out


def test_paint_run_branch_screenshot(studio_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    outside = []
    page.on(
        "request", lambda r: outside.append(r.url) if not r.url.startswith((studio_url, "blob:", "data:")) else None
    )
    page.goto(studio_url, wait_until="load")
    page.wait_for_selector("#editor canvas", timeout=60_000)
    time.sleep(1)

    draw_stroke(page)
    wait_text(page, "mask-note", r"hole: [1-9]\d*%", 30)  # the stroke reached the server as a hole
    set_number(page, "steps", STEPS)
    set_number(page, "jump-length", JUMP_LENGTH)
    set_number(page, "jump-n", JUMP_N)
    calls = count_network_calls(jump_times(STEPS, 1, JUMP_LENGTH, JUMP_N))
    wait_text(page, "calls", rf"\b{calls} network calls", 30)
    set_number(page, "keep-every", 2)
    set_number(page, "preview-every", 1)
    time.sleep(0.5)

    page.click("#run")
    seen = watch_live(page)
    message = page.locator("#message").inner_text()
    assert "finished" in message and f"{calls} network calls" in message, message
    live = intermediate_previews(seen)
    final = image_src(page, "live-xt")
    assert live and final not in live, "no intermediate x_t was shown before the result"

    # branch from the middle kept state (the default choice) with the saved rest of the schedule
    cost = int(wait_text(page, "branch-cost", r"branch cost: (\d+)", 30).group(1))
    state = page.locator("#branch-state input").first.input_value()
    index = int(re.search(r"transition (\d+)", state).group(1))
    times = jump_times(STEPS, 1, JUMP_LENGTH, JUMP_N)
    assert 0 < index < len(times) - 2
    assert cost == count_network_calls(times[index + 1 :]) < calls
    page.get_by_label("new seed").check()  # another fill from the same state, at the same cost
    time.sleep(0.5)
    page.click("#branch")
    wait_text(page, "message", rf"finished: {cost} network calls .* result #2", 180)
    wait_text(page, "gallery", r"#2 from #1 at transition " + str(index), 30)
    page.wait_for_function("document.querySelectorAll('#compare img').length >= 2", timeout=30_000)  # #1 | #2
    time.sleep(1)
    page.screenshot(path=os.path.join(REPO, "docs", "studio.png"), full_page=True)
    assert not outside, f"requests left the machine: {outside[:5]}"


def test_stop_and_bad_uploads_are_messages_in_the_page(studio_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.goto(studio_url, wait_until="load")
    page.wait_for_selector("#editor canvas", timeout=60_000)
    draw_stroke(page)
    set_number(page, "steps", 40)
    set_number(page, "preview-every", 1)
    time.sleep(0.5)
    page.click("#run")
    wait_text(page, "progress", r"calls [1-9]\d* / ", 120)
    page.click("#stop")
    done = int(wait_text(page, "message", r"stopped: (\d+) network calls", 60).group(1))
    assert 0 < done < count_network_calls(jump_times(40, 1, 10, 3))

    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    page.click("text=upload a picture or a mask file")
    page.set_input_files("#picture-file input[type=file]", str(fake))
    wait_text(page, "message", r"⚠ picture: fake\.png is not an image", 60)
    small = tmp_path / "small_mask.png"
    from PIL import Image

    Image.new("L", (10, 7), 255).save(small)
    page.get_by_label("uploaded").check()  # the source first, so that the upload's own change event decides
    page.wait_for_function("document.querySelector('#mask-note') !== null")
    time.sleep(1.0)
    page.set_input_files("#mask-file input[type=file]", str(small))
    wait_text(page, "mask-note", r"⚠ mask: it is 10x7 but the picture is \d+x\d+", 60)
