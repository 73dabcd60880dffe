"""The review loop of issue 28 in Chromium, on ONE analysed recording: upload it and analyse it twice, draw and
label two boxes on its spectrogram, verify 20 windows across the two predictions (switching between them), train
from them all on the Train page (recipe, model, epochs, device), and the new run's page shows its split, metrics
and confusion matrix; no console errors. Screenshots of the Analyze, Review, Train and Runs pages go to the
test's folder (``BIRDSPEC_SCREENSHOTS=DIR`` keeps copies there, for the README)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
from test_serve_browser import app_url, browser_page  # noqa: F401 - the fixtures of the browser tests


def _shot(page, folder, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=False)
    keep = os.environ.get("BIRDSPEC_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(folder / f"{name}.png", os.path.join(keep, f"{name}.png"))


def _draw_box(page, x0: float, y0: float, x1: float, y1: float, species: str) -> None:
    """Drag a box on the tiles (pixels from their top left) and name its species; Enter saves the boxes."""
    from playwright.sync_api import expect

    box = page.locator("#tiles").bounding_box()
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    page.mouse.move(box["x"] + (x0 + x1) / 2, box["y"] + (y0 + y1) / 2)
    page.mouse.move(box["x"] + x1, box["y"] + y1)
    page.mouse.up()
    expect(page.locator("#box-species")).to_be_focused()
    page.fill("#box-species", species)
    with page.expect_response(lambda r: r.url.endswith("/api/boxes") and r.request.method == "POST") as resp:
        page.press("#box-species", "Enter")
    assert resp.value.status == 200, resp.value.text()


def _analyze(page, rec_ref: str, ckpt_ref: str) -> str:
    from playwright.sync_api import expect

    page.click("nav a[data-page=analyze]")
    page.select_option("#recording", rec_ref)
    page.select_option("#checkpoint", ckpt_ref)
    before = page.url
    page.click("#predict")
    page.wait_for_function(f"() => location.hash.includes('prediction=') && location.href !== {before!r}")
    expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
    return page.locator("#dl-csv").get_attribute("href")


def _verify(page, n: int, species: list[str]) -> None:
    """Give ``n`` verdicts, one per window (top choices), on the card in hand: 'other species' naming ``species``
    in turn (the truth is unknown for a field recording; the labels only have to be two species)."""
    from playwright.sync_api import expect

    expect(page.locator(".card.current")).to_have_count(1)
    # one card per window the model detected at its stored thresholds: how many depends on the trained model
    n = min(n, page.locator(".card").count())
    assert n >= 4, f"only {n} cards to verify"
    for i in range(n):
        # the page moves the card in hand on after a verdict: wait for it (under load it lags), or the next
        # verdict would replace the last one
        expect(page.locator(".card.current:not(.v-other)")).to_have_count(1)
        field = page.locator(".card.current input.other-species")
        field.click()
        field.fill(species[i % len(species)])
        with page.expect_response(lambda r: "/api/verdict" in r.url) as resp:
            field.press("Enter")  # saved; the next card is in hand
        try:
            expect(page.locator(".card.v-other")).to_have_count(i + 1)
        except AssertionError as exc:  # say what the page and the server said
            shown = page.evaluate("() => [document.querySelector('#cards').dataset.prediction, document.querySelector('#review-prediction').value]")
            raise AssertionError(f"verdict {i}: answer {resp.value.status} {resp.value.text()!r}, message "
                                 f"{page.locator('#review-msg').text_content()!r}, cards of / picked {shown}") from exc


def test_analyze_verify_train_and_see_the_run_in_chromium(app_url, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from serve_fixtures import recordings_folder

    url, _served_ref, ckpt_ref = app_url
    folder, name = recordings_folder(tmp_path)  # the recording the server serves; uploaded, so boxes go to --work
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with browser_page() as (page, errors):
        page.goto(url + "/#/analyze")
        page.set_input_files("#upload", str(folder / name))
        expect(page.locator("#analyze-msg")).to_contain_text("uploaded")
        rec_ref = page.locator("#recording").input_value()
        assert rec_ref.startswith("uploads/"), rec_ref
        _analyze(page, rec_ref, ckpt_ref)
        _analyze(page, rec_ref, ckpt_ref)

        # two boxes, labelled with the model's classes, saved as a Raven table beside the upload
        page.select_option("#zoom", "1")
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        _draw_box(page, 60, 60, 160, 150, "synth0")
        _draw_box(page, 260, 40, 330, 200, "synth1")
        expect(page.locator(".sel-box")).to_have_count(2)
        expect(page.locator("#box-msg")).to_have_text(f"saved 2 boxes to uploads/{Path(rec_ref).stem}.Table.1.selections.txt")
        table = tmp_path / "work" / "uploads" / (Path(rec_ref).stem + ".Table.1.selections.txt")
        assert pd.read_csv(table, sep="\t")["Species"].tolist() == ["synth0", "synth1"]
        _shot(page, shots, "analyze")
        page.click("nav a[data-page=review]")
        page.fill("#review-min", "0")  # every window's top choice, whatever the model's thresholds
        page.locator("#review-min").blur()  # "change": the cards load again, once
        expect(page.locator("#review-min-note")).to_contain_text("at least 0.00")
        page.wait_for_load_state("networkidle")
        expect(page.locator(".card").first).to_be_visible()
        options = page.locator("#review-prediction option").evaluate_all("els => els.map(e => e.value)")
        assert len(options) == 2
        for ref in options:  # switch between the two predictions, verifying in each
            page.select_option("#review-prediction", ref)
            expect(page.locator("#cards")).to_have_attribute("data-prediction", ref)
            page.wait_for_load_state("networkidle")
            _verify(page, 10, ["synth0", "synth1"])
        _shot(page, shots, "review")

        page.click("nav a[data-page=train]")
        expect(page.locator("#train-sources input")).to_have_count(3)  # two predictions and the boxes
        for box in page.locator("#train-sources input").all():
            box.check()
        expect(page.locator("#train-recipe")).to_have_value("small-data")
        page.select_option("#train-device", "cpu")
        page.fill("#train-epochs", "2")
        page.fill("#train-name", "loop")
        page.click("#train-start")
        expect(page.locator("#train-split")).to_contain_text("time blocks")
        started = time.time()
        expect(page.locator("#train-done")).to_be_visible(timeout=600_000)
        train_s = time.time() - started
        expect(page.locator("#train-done")).to_contain_text("val macro F1")
        # whose accuracy is whose: the evaluation's, per validation window, and training's own of the curves
        expect(page.locator("#train-done")).to_contain_text(re.compile(r"birdspec evaluate, per window\) on its \d+ validation windows"))
        expect(page.locator("#train-done")).to_contain_text("the curves' val_acc is training's own")
        expect(page.locator("#train-curves-note")).to_contain_text("training's own check on the validation samples")
        _shot(page, shots, "train")

        page.locator("#train-done a").click()
        expect(page.locator("#run-detail h3")).to_have_text("runs/loop")
        expect(page.locator("#run-detail .msg.warn")).to_contain_text("time blocks within recordings")
        expect(page.locator("#run-detail img[alt='confusion_matrix.png']")).to_be_visible()
        page.wait_for_function("() => document.querySelector(\"#run-detail img[alt='confusion_matrix.png']\").naturalWidth > 0")
        assert page.locator("#run-detail td", has_text=re.compile(r"^val macro f1$")).count() == 1
        expect(page.locator("#run-detail th", has_text="birdspec evaluate, per validation window")).to_have_count(1)
        expect(page.locator("#run-detail .level-note")).to_contain_text("read window level")  # the figures say "recording level"
        expect(page.locator("#run-detail canvas")).to_have_count(1)  # the curves once: drawn, not curves.png as well
        expect(page.locator("#run-detail img[alt='curves.png']")).to_have_count(0)
        row = page.locator("#runs-list tr", has_text="loop")
        expect(row).to_contain_text("val macro F1")
        expect(row).to_contain_text("completed")
        _shot(page, shots, "runs")
        assert not errors, errors
    print(f"training from verified windows (prepare + 2 epochs + evaluate): {train_s:.1f} s")
