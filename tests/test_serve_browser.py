"""`birdspec serve` in a real browser: Playwright (Python) driving headless Chromium (Debian's `chromium`).

The flow of issue 16: start the server on a free port, open Analyze, predict a real recording
(../shared/data/recordings/osm-1min.flac; a synthetic one when shared data is absent) with a checkpoint
trained in this session, see the species tracks and the spectrogram tiles, seek and play, open Review,
give three verdicts with the keyboard, reload and see them kept, export the manifest and prepare it with
the CLI. Screenshots go to the test's tmp folder.

Skipped only on a developer machine without chromium; in CI (``CI`` set, as ``.ci/run`` does) a missing
browser or Playwright is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from serve_fixtures import free_port, recordings_folder, running_server, trained_run

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.getbasetemp())


def _chromium() -> str:
    found = os.environ.get("BIRDSPEC_CHROMIUM") or next((c for c in CHROMIUM_CANDIDATES if Path(c).exists()), None)
    found = found or shutil.which("chromium")
    missing = None
    if not found:
        missing = "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does this)"
    else:
        if importlib.util.find_spec("playwright") is None:
            missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run in CI: {missing}")
        pytest.skip(missing)
    return str(found)


@contextmanager
def browser_page():
    """A Chromium page and the list its page errors and console errors are collected in."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text} at {m.location}") if m.type == "error" else None)
            page.set_default_timeout(30_000)
            yield page, errors
        finally:
            browser.close()


@pytest.fixture()
def app_url(tmp_path, serve_run, monkeypatch):
    from birdspec.app.paths import ServeConfig

    monkeypatch.setenv("BIRDSPEC_CACHE_DIR", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    shutil.copytree(serve_run, runs / serve_run.name)
    recs, name = recordings_folder(tmp_path)
    config = ServeConfig(runs_dir=runs, recording_dirs=(recs,), work_dir=tmp_path / "work", port=free_port())
    with running_server(config) as url:
        yield url, f"recordings/{name}", f"runs/{serve_run.name}/checkpoints/best.pt"


def test_analyze_review_export_in_chromium(app_url, tmp_path):
    from playwright.sync_api import expect

    url, rec_ref, ckpt_ref = app_url
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with browser_page() as (page, errors):
        page.goto(url + "/#analyze")  # the old form of the hash still opens the page
        expect(page).to_have_url(re.compile(r"#/analyze$"))

        # ---- Analyze: predict in the background, see tracks and tiles
        page.select_option("#recording", rec_ref)
        page.select_option("#checkpoint", ckpt_ref)
        page.click("#predict")
        expect(page.locator("#viewer")).to_be_visible()
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        page.locator("#min-score").evaluate("e => { e.value = '0.1'; e.dispatchEvent(new Event('input')); }")
        expect(page.locator("#tracks .track").first).to_be_visible()
        assert page.locator("#tracks .track .box").count() > 0
        assert page.locator("#analyze-msg").inner_text() == ""
        page.screenshot(path=str(shots / "analyze.png"))

        # ---- seek and play: a click sets the time there and plays; the cursor follows
        box = page.locator("#scroller").bounding_box()
        page.mouse.click(box["x"] + 300, box["y"] + 100)
        pps = float(page.locator("#inner").get_attribute("data-pps"))
        page.wait_for_function("() => !document.querySelector('#player').paused", timeout=20_000)
        t0 = page.evaluate("document.querySelector('#player').currentTime")
        assert abs(t0 - 300 / pps) < 1.5, (t0, 300 / pps)
        page.wait_for_function(f"() => document.querySelector('#player').currentTime > {t0 + 0.3}", timeout=20_000)
        left = float(page.evaluate("parseFloat(document.querySelector('#cursor').style.left)"))
        assert left >= 300 - 2
        page.evaluate("document.querySelector('#player').pause()")
        # zoom out and jump to a time: the tiles of that stretch load
        page.click("#zoom-out")
        page.fill("#goto", "0:40")
        page.press("#goto", "Enter")
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()

        # ---- Review: three verdicts with the keyboard, kept after a reload
        page.click("nav a[data-page=review]")
        expect(page.locator(".card").first).to_be_visible()
        assert page.locator(".card").count() >= 3
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("c")
        expect(page.locator(".card").nth(0)).to_have_class(re.compile(r"\bv-correct\b"))
        page.keyboard.press("x")
        expect(page.locator(".card").nth(1)).to_have_class(re.compile(r"\bv-wrong\b"))
        page.keyboard.press("o")
        other = page.locator(".card").nth(2).locator("input.other-species")
        expect(other).to_be_focused()
        other.fill("synth2")
        other.press("Enter")
        expect(page.locator(".card").nth(2)).to_have_class(re.compile(r"\bv-other\b"))
        expect(page.locator("#summary h4").first).to_be_visible()
        page.screenshot(path=str(shots / "review.png"))
        page.reload()
        expect(page.locator(".card").first).to_be_visible()
        kept = [page.locator(".card").nth(i).get_attribute("class").split() for i in range(3)]
        assert [[c for c in k if c.startswith("v-")] for k in kept] == [["v-correct"], ["v-wrong"], ["v-other"]]

        # ---- export the verified windows as a manifest
        page.click("#export")
        expect(page.locator("#export-result")).to_be_visible()
        manifest = page.locator("#export-result").get_attribute("data-path")
        assert not errors, errors

    from birdspec.cli.main import main
    from birdspec.data.prepared import PreparedDataset

    out = tmp_path / "prepared"
    assert main(["prepare", manifest, "--encoding", "window", "--short-policy", "tile", "--out", str(out), "--workers", "1"]) == 0
    ds = PreparedDataset(out)
    assert len(ds.manifest) == 2 and "synth2" in set(ds.manifest["label"])
    assert (shots / "analyze.png").stat().st_size > 10_000

