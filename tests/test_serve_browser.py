"""`birdspec serve` in a real browser: Playwright (Python) driving headless Chromium (Debian's `chromium`).

The flow of issue 16: start the server on a free port, open Analyze, predict a real recording
(../shared/data/recordings/osm-1min.flac; a synthetic one when shared data is absent) with a checkpoint
trained in this session, see the species tracks and the spectrogram tiles, seek and play, open Review,
give three verdicts with the keyboard, reload and see them kept, export the manifest and prepare it with
the CLI. Screenshots go to the test's tmp folder.

The front end's plumbing (issue 30): every page shows without console errors, the URL hash routes
(back, forward, reload), leaving a page stops its job polling and a finished job is not polled, and
keyboard shortcuts act only on the page shown. The static modules are checked without a browser: each is
served as JavaScript, packaged (pyproject's package data), small, and says what it owns.

Skipped only on a developer machine without chromium; in CI (``CI`` set, as ``.ci/run`` does) a missing
browser or Playwright is a failure.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from serve_fixtures import free_port, recordings_folder, running_server

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "src" / "birdspec" / "app" / "static"
MODULE_MAX_LINES = 250


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


PAGE_TIMEOUT_MS = 30_000
"""How long page actions and expect() wait (a loaded 2-core runner is slow; the tests check content, not speed)."""


@contextmanager
def browser_page():
    """A Chromium page and the list its page errors and console errors are collected in."""
    from playwright.sync_api import expect, sync_playwright

    # tests check what the page shows, not how fast: a loaded 2-core runner may take seconds to re-render hundreds
    # of cards, so expect() waits as long as page actions do (its own default is 5 s)
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text} at {m.location}") if m.type == "error" else None)
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            yield page, errors
        finally:
            browser.close()


@pytest.fixture()
def app_url(serve_config, serve_run, tmp_path):
    recs, name = recordings_folder(tmp_path)
    with running_server(serve_config(runs=(serve_run.name,), recording_dirs=(recs,), port=free_port())) as url:
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


def _count_requests(page, part: str) -> list[str]:
    """The URLs of the page's requests whose URL holds ``part``, from now on (a list that grows)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if part in r.url else None)
    return seen


def _show(page, name: str) -> None:
    page.click(f"nav a[data-page={name}]")
    page.wait_for_function(f"() => !document.querySelector('#page-{name}').hidden && location.hash.startsWith('#/{name}')")


def test_routing_job_polling_and_page_keys_in_chromium(app_url):
    from playwright.sync_api import expect

    url, rec_ref, ckpt_ref = app_url
    with browser_page() as (page, errors):
        jobs = _count_requests(page, "/api/jobs/")
        verdicts = _count_requests(page, "/api/verdict")
        page.goto(url + "/")
        expect(page).to_have_url(re.compile(r"#/analyze$"))
        # every page shows without an error; nav entries are real links, controls are plain buttons
        for name in ("review", "train", "runs", "analyze"):
            _show(page, name)
            expect(page.locator(f"nav a[data-page={name}]")).to_have_class(re.compile(r"\bactive\b"))
            assert not errors, (name, errors)
        assert page.locator("a:not([href])").evaluate_all("els => els.filter(e => !e.id.startsWith('dl-')).length") == 0
        assert page.locator("button:not([type=button])").count() == 0

        # start a prediction and leave at once: no polling while the page is away
        page.select_option("#recording", rec_ref)
        page.select_option("#checkpoint", ckpt_ref)
        page.click("#predict")
        _show(page, "review")
        _show(page, "train")
        jobs.clear()
        page.wait_for_timeout(3000)
        assert jobs == [], jobs
        # back on Analyze the job is followed again and its prediction opened
        _show(page, "analyze")
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        expect(page.locator("#predict")).to_be_enabled()
        assert jobs, "the job was not followed again when Analyze was shown again"
        expect(page).to_have_url(re.compile(r"#/analyze\?prediction="))
        # switching back and forth quickly leaves nothing polling the finished job
        for _ in range(3):
            for name in ("review", "analyze", "runs", "analyze"):
                page.click(f"nav a[data-page={name}]")
        _show(page, "review")
        expect(page.locator(".card").first).to_be_visible()
        jobs.clear()
        page.wait_for_timeout(3000)
        assert jobs == [], jobs

        # keys act on the page shown only
        zoom_before = page.locator("#zoom").input_value()
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("-")
        page.keyboard.press("+")
        page.keyboard.press("-")
        assert page.locator("#zoom").input_value() == zoom_before
        page.locator("#review-filter").focus()
        page.keyboard.press("c")  # typed into the filter, not a verdict
        page.locator("#review-filter").fill("")
        _show(page, "analyze")
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("c")
        page.keyboard.press("x")
        page.keyboard.press("j")
        page.wait_for_timeout(500)
        assert verdicts == [], verdicts
        page.keyboard.press("-")  # Analyze's own key works here
        expect(page.locator("#zoom")).not_to_have_value(zoom_before)
        assert page.evaluate("document.querySelector('#player').paused")
        _show(page, "review")
        expect(page.locator(".card").first).to_be_visible()
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("c")  # and Review's here
        expect(page.locator(".card").nth(0)).to_have_class(re.compile(r"\bv-correct\b"))
        assert len(verdicts) == 1, verdicts

        # the hash routes: a run is a link, back and forward and reload show the page of the URL
        expect(page).to_have_url(re.compile(r"#/review\?prediction="))
        _show(page, "runs")
        page.locator("#runs-list a").first.click()
        expect(page.locator("#run-detail h3")).to_be_visible()
        expect(page).to_have_url(re.compile(r"#/runs\?run="))
        page.go_back()
        page.go_back()
        page.wait_for_function("() => !document.querySelector('#page-review').hidden")
        assert page.locator("#page-runs").is_hidden()
        page.go_forward()
        page.wait_for_function("() => !document.querySelector('#page-runs').hidden")
        page.reload()
        expect(page.locator("#page-runs")).to_be_visible()
        page.go_back()
        page.wait_for_function("() => !document.querySelector('#page-review').hidden")
        page.reload()
        expect(page.locator(".card").nth(0)).to_have_class(re.compile(r"\bv-correct\b"))
        assert not errors, errors


def _package_data_patterns() -> list[str]:
    """The app's package-data globs in pyproject.toml (read by hand: tomllib is Python 3.11+)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^\[tool\.setuptools\.package-data\]\n(?:.*\n)*?"birdspec\.app" = (\[.*\])$', text, flags=re.MULTILINE)
    assert found, "pyproject.toml: no package data for birdspec.app"
    return ast.literal_eval(found.group(1))


def test_front_end_modules_are_served_packaged_and_small(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from birdspec.app.paths import ServeConfig
    from birdspec.app.server import create_app

    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    packaged = {p for pattern in _package_data_patterns() for p in STATIC.parent.glob(pattern)}
    assert set(files) <= packaged, sorted(str(p.relative_to(STATIC)) for p in set(files) - packaged)

    modules = sorted((STATIC / "js").glob("*.js"))
    assert modules and not list(STATIC.glob("*.js")), "the front end's scripts are the modules in static/js"
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    assert '<script type="module" src="/static/js/main.js">' in index
    for m in modules:
        text = m.read_text(encoding="utf-8")
        assert text.startswith(f"// {m.name}: "), f"{m.name}: start with a comment saying what the module owns"
        assert len(text.splitlines()) < MODULE_MAX_LINES, f"{m.name}: {len(text.splitlines())} lines; split it"
        for imported in re.findall(r'^import .* from "\./([\w.]+)";$', text, flags=re.MULTILINE):
            assert (STATIC / "js" / imported).is_file(), (m.name, imported)
        assert "window." not in text.replace("window.addEventListener", ""), f"{m.name}: no globals"

    config = ServeConfig(runs_dir=tmp_path / "runs", recording_dirs=(), work_dir=tmp_path / "work")
    client = TestClient(create_app(config))
    for m in modules:
        r = client.get(f"/static/js/{m.name}")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"], (m.name, r.headers)
    assert 'type="module"' in client.get("/").text
