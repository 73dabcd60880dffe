"""`birdspec serve`'s Review page in Chromium (issue 28): switching predictions quickly never shows one under
another's name nor saves verdicts into the one left, and a verdict given while the cards reload stays shown.

The race is made certain, not left to timing: the answer for the prediction Review opens first is held back
(Playwright's request routing) until another prediction was picked and shown, then let through."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from test_serve_browser import app_url, browser_page  # noqa: F401 - the fixtures of the browser tests


def _predict(url: str, recording: str, checkpoint: str) -> str:
    import httpx

    job = httpx.post(f"{url}/api/predict", json={"recording": recording, "checkpoint": checkpoint}).json()
    deadline = time.time() + 300
    while job["status"] not in ("done", "failed"):
        assert time.time() < deadline, job
        time.sleep(0.2)
        job = httpx.get(f"{url}/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    return job["result"]["prediction"]


def _verdicts(work: Path, ref: str) -> pd.DataFrame | None:
    path = work / ref.replace("/detections.csv", "/detections.verdicts.csv")
    return pd.read_csv(path) if path.is_file() else None


def _hold(page, ref: str, *, answer_now: bool = False) -> tuple[list, re.Pattern]:
    """Hold back the page's /api/review requests for prediction ``ref``: ``(list the routes land in, the pattern
    to unroute)``. ``answer_now``: the server answers at once (an entry is then ``(route, its answer)``, for
    ``route.fulfill(response=...)`` later), else the request reaches it when the route is continued."""
    from urllib.parse import quote

    held: list = []
    pattern = re.compile(r".*/api/review\?.*prediction=" + re.escape(quote(ref, safe="")) + r"(&.*)?$")
    page.route(pattern, lambda route: held.append((route, route.fetch()) if answer_now else route))
    return held, pattern


def _wait_held(page, held: list, n: int = 1) -> None:
    deadline = time.time() + 30
    while len(held) < n:
        assert time.time() < deadline, "the request was not made"
        page.wait_for_timeout(50)


def test_switching_predictions_quickly_keeps_cards_and_verdicts_with_their_prediction(app_url, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, rec_ref, ckpt_ref = app_url
    older = _predict(url, rec_ref, ckpt_ref)
    newer = _predict(url, rec_ref, ckpt_ref)  # listed first: Review opens it
    work = tmp_path / "work"
    with browser_page() as (page, errors):
        held, pattern = _hold(page, newer)
        page.goto(url + "/#/review")
        _wait_held(page, held)
        page.select_option("#review-prediction", older)  # picked at once, while the first is still loading
        expect(page.locator("#cards")).to_have_attribute("data-prediction", older)
        expect(page.locator(".card").first).to_be_visible()
        held[0].continue_()  # the first prediction's answer arrives late
        page.unroute(pattern)
        page.wait_for_timeout(1500)
        assert page.locator("#review-prediction").input_value() == older
        expect(page.locator("#cards")).to_have_attribute("data-prediction", older)

        page.locator("body").click(position={"x": 5, "y": 5})
        with page.expect_response(lambda r: "/api/verdict" in r.url):
            page.keyboard.press("c")
        expect(page.locator(".card").nth(0)).to_have_class(re.compile(r"\bv-correct\b"))
        assert _verdicts(work, newer) is None, "a verdict was saved into the prediction not shown"
        assert len(_verdicts(work, older)) == 1

        # a verdict given while the cards of the same prediction reload (their answer made before it) stays shown
        held, pattern = _hold(page, older, answer_now=True)
        page.click("#review-load")
        _wait_held(page, held)
        with page.expect_response(lambda r: "/api/verdict" in r.url):
            page.keyboard.press("x")
        route, answer = held[0]
        assert '"wrong"' not in answer.text()  # the answer predates the verdict
        route.fulfill(response=answer)
        page.unroute(pattern)
        page.wait_for_timeout(1000)
        expect(page.locator(".card").nth(0)).to_have_class(re.compile(r"\bv-correct\b"))
        expect(page.locator(".card").nth(1)).to_have_class(re.compile(r"\bv-wrong\b"))
        assert sorted(_verdicts(work, older)["verdict"]) == ["correct", "wrong"]

        # back and forth quickly: the page ends on the last one picked, with its cards
        for ref in (newer, older, newer):
            page.select_option("#review-prediction", ref)
        expect(page.locator("#cards")).to_have_attribute("data-prediction", newer)
        page.wait_for_timeout(500)
        expect(page.locator("#cards")).to_have_attribute("data-prediction", newer)
        assert page.locator(".card.v-correct").count() == 0  # the newer one has no verdicts
        assert not errors, errors


@pytest.fixture()
def busy_url(serve_config, serve_run, tmp_path):
    """A server whose recordings folder holds a busy `birdspec predict` table and a species list."""
    from test_serve_review import busy_table

    from serve_fixtures import free_port, running_server

    busy_table(tmp_path / "recs" / "busy.csv")
    species = tmp_path / "species.csv"
    species.write_text("label,scientific_name,common_name\nsedwar1,Acrocephalus schoenobaenus,Sedge Warbler\n")
    config = serve_config(runs=(serve_run.name,), recordings={"song.flac": 30.0}, port=free_port(), species_list=species)
    with running_server(config) as url:
        yield url, config.recording_dirs[0]


def test_review_pages_orders_and_other_species_in_chromium(busy_url):
    from playwright.sync_api import expect

    url, recs = busy_url
    with browser_page() as (page, errors):
        page.goto(url + "/#/review?prediction=recs/busy.csv")
        first = page.locator(".group").first
        expect(first).to_be_visible()
        page.keyboard.press("?")  # the page's keys, on every page
        expect(page.locator("#key-help")).to_be_visible()
        expect(page.locator("#key-help")).to_contain_text("other species")
        page.keyboard.press("Escape")
        expect(page.locator("#key-help")).to_be_hidden()
        page.click("nav a[data-page=analyze]")
        page.keyboard.press("?")
        expect(page.locator("#key-help")).to_contain_text("zoom in")
        page.keyboard.press("?")
        expect(page.locator("#key-help")).to_be_hidden()
        page.go_back()
        expect(first.locator("h3")).to_contain_text("Zebra Finch (zzz1) · 300 of 670 shown")
        assert page.locator(".card").count() == 350  # top choices only: no runner-up cards
        assert page.locator(".group[data-label=aaa1]").count() == 0
        first.locator("button.more").click()
        expect(first.locator("h3")).to_contain_text("600 of 670 shown")
        page.locator(".group").first.locator("button.more").click()
        expect(page.locator(".group").first.locator("h3")).to_contain_text("670 of 670 shown")
        assert page.locator(".group").first.locator("button.more").count() == 0
        keys = page.locator(".group[data-label=zzz1] .card").evaluate_all("els => els.map(e => e.dataset.key)")
        assert len(keys) == len(set(keys)) == 670

        page.select_option("#review-order", "name")
        expect(page.locator(".group").first).to_have_attribute("data-label", "mmm1")
        page.fill("#review-min", "0.8")
        page.locator("#review-min").blur()  # "change"
        expect(page.locator("#review-min-note")).to_contain_text("at least 0.80")
        page.wait_for_function("() => [...document.querySelectorAll('.card strong')].every(s => parseFloat(s.textContent) >= 0.8)")

        # "other species": free text is refused with the closest names; a listed species is saved by its label
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("o")
        field = page.locator(".card").nth(0).locator("input.other-species")
        expect(field).to_be_focused()
        field.fill("Sedge")
        field.press("Enter")
        expect(page.locator("#review-msg")).to_contain_text("Sedge Warbler (sedwar1)")
        assert not (recs / "busy.verdicts.csv").exists()
        options = page.locator("#review-species option").evaluate_all("els => els.map(e => e.value)")
        assert {"sedwar1", "zzz1", "mmm1", "aaa1"} <= set(options)
        field.fill("Sedge Warbler")
        field.press("Enter")
        expect(page.locator(".card").nth(0)).to_have_class(re.compile(r"\bv-other\b"))
        expect(page.locator(".card").nth(0).locator(".verdict")).to_have_text("other: sedwar1")
        assert pd.read_csv(recs / "busy.verdicts.csv")["species"].tolist() == ["sedwar1"]
        assert [e for e in errors if "400" not in e] == [], errors  # the refused verdict is a 400 answer
