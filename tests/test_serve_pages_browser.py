"""`birdspec serve`'s pages as a user sees them at 1400 px (the README screenshots' size), in Chromium: the keys
hint in the header is readable, the Review precision box is as wide as its table (no score bin or heading on two
lines) and a card's "other species…" field shows its whole placeholder, the Train page says it is loading its
sources (then "none yet"), and a run's page shows its training curves once (drawn, not curves.png as well)."""

from __future__ import annotations

import re

from test_serve_browser import app_url, browser_page  # noqa: F401 - the fixtures of the browser tests
from test_serve_review_browser import _predict

CONTRAST = """(sel) => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const v = rgb(c).map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                       return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const s = getComputedStyle(document.querySelector(sel));
  const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def test_keys_hint_is_readable_on_every_page(app_url):  # noqa: F811
    from playwright.sync_api import expect

    url, _, _ = app_url
    with browser_page() as (page, errors):
        for name in ("analyze", "review", "train", "runs"):
            page.goto(f"{url}/#/{name}")
            expect(page.locator(f"#page-{name}")).to_be_visible()
            hint = page.locator("header .help-hint kbd")
            expect(hint).to_have_text("?")
            assert page.evaluate(CONTRAST, "header .help-hint kbd") >= 4.5, name  # WCAG AA for its text on its box
        assert not errors, errors


def test_review_precision_box_fits_its_table_and_cards_their_placeholder(app_url):  # noqa: F811
    from playwright.sync_api import expect

    url, rec_ref, ckpt_ref = app_url
    ref = _predict(url, rec_ref, ckpt_ref)
    with browser_page() as (page, errors):
        page.goto(f"{url}/#/review?prediction={ref}")
        page.fill("#review-min", "0")
        page.locator("#review-min").blur()
        expect(page.locator(".card").first).to_be_visible()
        expect(page.locator("#summary table").first).to_be_visible()
        assert page.locator("#summary td", has_text=re.compile(r"^0\.\d-\d\.\d$")).count() > 0
        got = page.evaluate("""() => {
          const lines = (c) => { const r = document.createRange(); r.selectNodeContents(c);
                                 return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; };
          const cells = [...document.querySelectorAll('#summary th, #summary td')];
          const box = document.querySelector('#summary-box');
          const field = document.querySelector('.card input.other-species');
          field.value = field.placeholder;
          const fits = field.scrollWidth <= field.clientWidth;
          field.value = '';
          return { cells: cells.length, wrapped: cells.filter((c) => lines(c) > 1).map((c) => c.textContent),
                   wide: box.scrollWidth - box.clientWidth, fits };
        }""")
        assert got["cells"] > 7 and got["wrapped"] == [], got  # every bin and heading on one line
        assert got["wide"] <= 0, got  # the box holds its table: no sideways scrolling
        assert got["fits"], got  # "other species…" whole, beside the list's picker arrow
        assert not errors, errors


def test_train_sources_say_loading_then_none_yet(app_url):  # noqa: F811
    from playwright.sync_api import expect

    url, _, _ = app_url
    with browser_page() as (page, errors):
        held: list = []
        page.route(re.compile(r".*/api/train-sources$"), lambda route: held.append(route))
        page.goto(f"{url}/#/train")
        expect(page.locator("#train-sources li")).to_have_text(re.compile("^loading"))
        while not held:
            page.wait_for_timeout(50)
        held[0].continue_()
        page.unroute(re.compile(r".*/api/train-sources$"))
        expect(page.locator("#train-sources li")).to_have_text(re.compile("^none yet: verify detections in Review"))
        expect(page.locator("#train-recipe")).to_have_value("small-data")  # the choices come on their own
        assert not errors, errors


def test_a_run_shows_its_training_curves_once(app_url):  # noqa: F811
    from playwright.sync_api import expect

    url, _, ckpt_ref = app_url
    run = ckpt_ref.split("/checkpoints/")[0]
    with browser_page() as (page, errors):
        page.goto(f"{url}/#/runs?run={run}")
        expect(page.locator("#run-detail h3")).to_have_text(run)
        expect(page.locator("#run-detail canvas")).to_have_count(1)
        expect(page.locator("#run-detail .curves-note")).to_contain_text("training's own check on the validation samples")
        expect(page.locator("#run-detail img[alt='curves.png']")).to_have_count(0)
        expect(page.locator("#run-detail .level-note")).to_have_count(0)  # a CLI run: its recordings are recordings
        assert not errors, errors
