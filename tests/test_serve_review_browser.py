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
from test_serve_browser import app_url, browser_page, serve_run  # noqa: F401 - the fixtures of the browser tests


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
