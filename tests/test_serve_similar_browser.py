"""`birdspec serve --index` in Chromium (issue 31): open a recording of the index's archive in Analyze, draw a box,
find similar (f) -> the hits as Review cards, verdicts by key -> an agile round (r) -> its next windows open in
Review with the round's figures; the keys are in the page's key help; no console errors."""

from __future__ import annotations

import re

from test_serve_browser import browser_page

from serve_fixtures import free_port, running_server, serve_index  # noqa: F401 - serve_index: a fixture


def test_box_find_similar_verdicts_agile_round_next_batch_in_chromium(serve_config, serve_run, serve_index, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    archive, index_dir = serve_index
    config = serve_config(runs=(serve_run.name,), recording_dirs=(archive,), index_dirs=(index_dir,), port=free_port())
    with running_server(config) as url, browser_page() as (page, errors):
        page.goto(url + "/#/analyze")
        page.select_option("#recording", f"{archive.name}/site0/r0.flac")
        page.select_option("#checkpoint", f"runs/{serve_run.name}/checkpoints/best.pt")
        page.click("#predict")
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        expect(page.locator("#box-index option")).to_have_count(1)
        box = page.locator("#tiles").bounding_box()
        page.mouse.move(box["x"] + 40, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 160, box["y"] + 120, steps=5)
        page.mouse.up()
        expect(page.locator("#box-panel")).to_be_visible()
        page.fill("#box-species", "synth0")
        page.screenshot(path=str(tmp_path / "similar-box.png"))
        page.locator("#box-species").blur()
        page.keyboard.press("?")
        expect(page.locator("#key-help")).to_contain_text("find similar windows to the box")
        page.keyboard.press("Escape")
        page.keyboard.press("f")
        expect(page).to_have_url(re.compile(r"#/review\?prediction=predictions%2Fsimilar-synth0-"))
        expect(page.locator("#similar-info")).to_contain_text("Search of serve-index for synth0")
        expect(page.locator(".card").first).to_be_visible()
        assert page.locator(".card").count() == 21  # every window of the index (top 50 of 21)
        for key, done in (("c", ".v-correct"), ("c", ".v-correct"), ("x", ".v-wrong"), ("x", ".v-wrong")):
            n = page.locator(".card" + done).count()
            page.keyboard.press(key)  # saved, then the next card comes in hand
            expect(page.locator(".card" + done)).to_have_count(n + 1)
        page.keyboard.press("?")
        expect(page.locator("#key-help")).to_contain_text("agile round")
        page.keyboard.press("Escape")
        page.keyboard.press("r")
        expect(page).to_have_url(re.compile(r"#/review\?prediction=predictions%2Fagile-synth0-serve-index-r1-"), timeout=60_000)
        expect(page.locator("#similar-info")).to_contain_text("Agile round 1 of synth0 on serve-index: trained on 2 yes and 2 no")
        expect(page.locator("#similar-info")).to_contain_text("cross-validated precision")
        expect(page.locator(".card").first).to_be_visible()
        assert page.locator(".card").count() == 17  # the windows not verified yet (20 asked for)
        page.keyboard.press("x")
        expect(page.locator(".card.v-wrong")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "similar-round.png"))
        assert not errors, errors
