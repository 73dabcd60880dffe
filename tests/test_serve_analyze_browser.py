"""`birdspec serve`'s Analyze page in Chromium (issue 28): the tracks start at the model's thresholds, and the
downloads hold the rows the tracks show (the minimum-score slider, or the model's thresholds)."""

from __future__ import annotations

import io
import re

import pandas as pd
from test_serve_browser import app_url, browser_page, serve_run  # noqa: F401 - the fixtures of the browser tests


def test_downloads_follow_the_minimum_score_in_chromium(app_url):  # noqa: F811
    from playwright.sync_api import expect

    url, rec_ref, ckpt_ref = app_url
    with browser_page() as (page, errors):
        page.goto(url + "/#/analyze")
        page.select_option("#recording", rec_ref)
        page.select_option("#checkpoint", ckpt_ref)
        page.click("#predict")
        expect(page.locator("#viewer")).to_be_visible()
        expect(page.locator("#min-model")).to_be_checked()  # the model has thresholds: they come first
        expect(page.locator("#dl-csv")).to_have_attribute("href", re.compile(r"min_score=model"))
        page.locator("#min-score").evaluate("e => { e.value = '0.9'; e.dispatchEvent(new Event('input')); }")
        expect(page.locator("#min-model")).not_to_be_checked()
        expect(page.locator("#dl-csv")).to_have_attribute("href", re.compile(r"min_score=0\.90"))
        boxes = page.locator("#tracks .box").evaluate_all("els => els.map(e => parseFloat(e.title.split(' ').slice(-3)[0]))")
        assert all(b >= 0.9 for b in boxes), boxes
        csv = page.request.get(url + page.locator("#dl-csv").get_attribute("href")).text()
        assert (pd.read_csv(io.StringIO(csv))["confidence"] >= 0.9).all()
        raven = page.request.get(url + page.locator("#dl-raven").get_attribute("href")).text()
        assert (pd.read_csv(io.StringIO(raven), sep="\t")["Confidence"] >= 0.9).all()
        page.locator("#min-score").evaluate("e => { e.value = '0.2'; e.dispatchEvent(new Event('input')); }")
        low = page.request.get(url + page.locator("#dl-csv").get_attribute("href")).text()
        assert (pd.read_csv(io.StringIO(low))["confidence"] >= 0.2).all() and len(pd.read_csv(io.StringIO(low))) >= len(pd.read_csv(io.StringIO(csv)))
        assert not errors, errors
