"""`birdspec serve`'s Analyze page in Chromium (issue 28): the tracks start at the model's thresholds, and the
downloads hold the rows the tracks show (the minimum-score slider, or the model's thresholds)."""

from __future__ import annotations

import io
import re

import pandas as pd
from test_serve_browser import app_url, browser_page  # noqa: F401 - the fixtures of the browser tests


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


def test_spectrogram_axis_colour_bar_and_pointer_readout_in_chromium(app_url):  # noqa: F811
    from playwright.sync_api import expect

    url, rec_ref, ckpt_ref = app_url
    with browser_page() as (page, errors):
        page.goto(url + "/#/analyze")
        page.select_option("#recording", rec_ref)
        page.select_option("#checkpoint", ckpt_ref)
        page.click("#predict")
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        # the colour bar says dB; brightness moves it and the tiles drawn with it
        ticks = page.locator("#colour-ticks span").all_inner_texts()
        assert len(ticks) == 5 and all(t.endswith(" dB") for t in ticks), ticks
        page.locator("#brightness").evaluate("e => { e.value = '12'; e.dispatchEvent(new Event('input')); }")
        expect(page.locator("#tiles img").first).to_have_attribute("src", re.compile(r"floor_db=.*ceiling_db="))
        moved = page.locator("#colour-ticks span").all_inner_texts()
        assert int(moved[0].split()[0]) == int(ticks[0].split()[0]) - 12, (ticks, moved)
        page.click("#colour-reset")
        expect(page.locator("#tiles img").first).not_to_have_attribute("src", re.compile(r"floor_db"))
        # the linear axis reaches the Nyquist frequency of the recording
        page.select_option("#freq-scale", "linear")
        expect(page.locator("#tiles img").first).to_have_attribute("src", re.compile(r"axis=linear"))
        khz = [float(t.split()[0]) for t in page.locator("#freq-axis span").all_inner_texts()]
        rate = page.evaluate(f"fetch('/api/recording?ref=' + encodeURIComponent({rec_ref!r})).then(r => r.json())"
                             ".then(j => j.sample_rate_hz)")
        assert max(khz) > 14 and max(khz) <= rate / 2000, (khz, rate)
        # the pointer readout: time, frequency and dB under the pointer
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        box = page.locator("#tiles").bounding_box()
        page.mouse.move(box["x"] + 100, box["y"] + 128)
        expect(page.locator("#pointer-readout")).to_have_text(re.compile(r"^0:\d\d\.\d · \d+\.\d\d kHz · -?\d+ dB$"))
        # the widest zoom: no dark padding past the end of the recording
        page.select_option("#zoom", str(page.locator("#zoom option").count() - 1))
        page.wait_for_timeout(300)
        widths = page.evaluate("() => [document.querySelector('#scroller').scrollWidth, "
                               "document.querySelector('#inner').offsetWidth, document.querySelector('#scroller').clientWidth]")
        assert widths[0] <= max(widths[1], widths[2]) + 1, widths
        assert not errors, errors


def test_a_folder_analysed_in_chromium_opens_in_review(serve_config, serve_run):
    from playwright.sync_api import expect

    from serve_fixtures import free_port, running_server

    config = serve_config(runs=(serve_run.name,), recordings={"night/a.flac": 15.0, "night/b.flac": 20.0}, port=free_port())
    with running_server(config) as url, browser_page() as (page, errors):
        page.goto(url + "/#/analyze")
        page.select_option("#folder", "recs/night")
        page.select_option("#checkpoint", f"runs/{serve_run.name}/checkpoints/best.pt")
        page.click("#predict-folder")
        expect(page.locator("#analyze-msg")).to_contain_text("Analysed 2 recordings")
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()  # the first one is open
        page.locator("#analyze-msg a").click()
        expect(page.locator("#review-prediction")).to_contain_text("recs/night (2 recordings)")
        assert page.locator("#review-prediction option").count() == 1  # one entry for the folder, not one per recording
        page.fill("#review-min", "0")
        page.locator("#review-min").blur()
        expect(page.locator("#review-min-note")).to_contain_text("at least 0.00")
        files = page.locator(".card .meta span").all_inner_texts()
        assert {f.split(" · ")[-1] for f in files} == {"a.flac", "b.flac"}
        assert not errors, errors
