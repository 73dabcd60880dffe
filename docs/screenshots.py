"""Redo the screenshots of the README's web-app section (``birdspec serve``): Analyze, Review and Train.

::

    python docs/screenshots.py --out docs/images [--data ../shared/data/xc-reed-warblers] [--chromium /usr/bin/chromium]
                               [--run RUN] [--work DIR]

1. Prepares the reed warblers (a BirdCLEF-layout folder) and trains a ``mobilenetv2-seed`` with ``--recipe
   small-data`` for 4 epochs (``--threads 1``) on their training split, unless ``--run RUN`` names a run folder
   to use instead. The recording shown (``--recording``, default XC233487, a Great Reed Warbler) must be in the
   run's validation split: the script stops otherwise.
2. Copies the shown recording and a few other validation-split recordings of every species into a served
   folder, starts ``birdspec serve`` on a free port (one CPU thread for PyTorch) and drives it with Playwright
   in headless Chromium (viewport 1400x900, device scale 1), through the pages as a user does:

   - Analyze: each recording is analysed with the run's checkpoint; on the shown one, at 10 s per tile with
     the tracks at a minimum score of 0.1, one time-frequency box is drawn on a song phrase, named with its
     species and saved; the pointer rests on the spectrogram (readout) -> ``serve-analyze.png``;
   - Review: every window's top choice (minimum score 0) of each analysed recording gets a verdict by key,
     following the recording's xeno-canto label (``c`` when the model names it, else ``o`` and the label); the
     shown recording's cards after its first 3 verdicts (the 4th card in hand) and the verified precision per
     score bin -> ``serve-review.png``;
   - Train from verified: the verified windows of all the predictions and the box are pooled and trained on
     (recipe small-data, ``--app-epochs`` epochs, CPU) in the app; the Train page (760 px wide) when it is
     done, above the Runs page's list of runs, beside the new run's page (split, curves, metrics, confusion
     matrix) -> ``serve-train.png``.
3. Writes the three PNGs into ``--out`` (each under ``--max-kb``: reduced to a 256-colour palette when larger).

Any failure (a command, the server, a page error or console error in the browser, an element that does not
appear) stops the script with exit status 1 and a message saying what failed; nothing is written then.
Needs the ``app`` extra and Playwright (``pip install -e '.[app,test]'``) and a Chromium (Debian's
``chromium``; Playwright's own download is not needed). Takes about 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "xc-reed-warblers"
RUN_NAME = "reed-warblers-mnv2"
APP_RUN_NAME = "verified-reed-warblers"
VIEWPORT = {"width": 1400, "height": 900}
TILE_HEIGHT_PX = 256  # the Analyze tiles' height (static/js/spectro_view.js)
ZOOM_LABEL = "10 s per tile"
BOX = {"start_s": 24.3, "end_s": 27.1, "low_hz": 1300.0, "high_hz": 5600.0}  # a song phrase of XC233487
VIEW_FROM_S = 19.0
POINTER = (30.6, 2500.0)  # where the pointer rests for the readout (s, Hz)
ANALYZE_MIN_SCORE = 0.1  # the tracks' minimum score: the other species' rows show too
REVIEW_SHOWN_VERDICTS = 3  # verdicts given on the shown recording before its Review screenshot
TRAIN_WIDTH = 760  # the Train page's width in serve-train.png (beside the run's page)


class ShotError(Exception):
    """A step failed: the message says which and why."""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- step 1: the run
def run_cli(argv: list[str], log_path: Path, what: str, env: dict[str, str] | None = None) -> None:
    """``python -m birdspec ARGV``, its output into ``log_path``; ShotError with the log's tail when it fails."""
    cmd = [sys.executable, "-m", "birdspec", *argv]
    log(f"{what}: {' '.join(cmd[2:])}")
    with open(log_path, "w", encoding="utf-8") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise ShotError(f"{what} failed (exit {code}); the end of {log_path}:\n{tail}")


def one_thread_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    return env


def train_run(data: Path, work: Path, epochs: int) -> Path:
    """Prepare ``data`` and train the run the screenshots predict with (reused when ``work`` holds it finished)."""
    from birdspec.training.rundir import is_finished

    prepared, run = work / "data", work / "runs" / RUN_NAME
    if is_finished(run):
        log(f"reusing {run}")
        return run
    if run.exists():
        raise ShotError(f"{run} exists but did not finish; remove it (or pass --run with a finished run)")
    run_cli(["prepare", str(data), "--encoding", "window", "--short-policy", "tile", "--workers", "1", "--no-progress",
             "--out", str(prepared)], work / "prepare.log", "prepare")
    run_cli(["train", str(prepared), "--model", "mobilenetv2-seed", "--recipe", "small-data", "--epochs", str(epochs),
             "--threads", "1", "--workers", "0", "--device", "cpu", "--no-progress", "--out", str(run)],
            work / "train.log", "train", env=one_thread_env())
    return run


def validation_recordings(run: Path) -> Any:
    """The run's validation recordings (its dataset's manifest rows with split ``val``)."""
    from birdspec.data.prepared import PreparedDataset
    from birdspec.training.rundir import read_run_config

    path = (read_run_config(run).get("dataset") or {}).get("path")
    if not path or not Path(path).is_dir():
        raise ShotError(f"{run}: its prepared dataset ({path}) is not there; its validation split cannot be read")
    manifest = PreparedDataset(path).manifest
    if "split" not in manifest.columns:
        raise ShotError(f"{path}: no split column (a cross-validation dataset?); train on a dataset with a validation split")
    return manifest[manifest["split"] == "val"]


def pick_recordings(val: Any, shown: str, per_species: int, data: Path) -> list[tuple[str, str, Path]]:
    """``(xc id, label, source file)``: the shown recording first, then for every species the ``per_species``
    shortest validation recordings of at least 40 s (the shown one counts for its species)."""
    rows = val.assign(xc=val["id"].astype(str))
    if shown not in set(rows["xc"]):
        raise ShotError(f"{shown} is not in the run's validation split; pick one that is (--recording), "
                        "and say so in the README's caption")

    def source(r: Any) -> Path:
        p = Path(str(r.source_path)) if "source_path" in rows.columns else Path()
        if not p.is_file():
            p = data / "train_short_audio" / str(r.label) / str(r.filename)
        if not p.is_file():
            raise ShotError(f"{r.xc}: its audio is not found ({p})")
        return p

    first = rows[rows["xc"] == shown].iloc[0]
    picked = [(shown, str(first.label), source(first))]
    for label, g in rows[rows["duration_s"] >= 40].groupby("label", sort=True):
        have = sum(1 for _, lab, _ in picked if lab == label)
        for r in g[g["xc"] != shown].sort_values(["duration_s", "xc"]).head(max(0, per_species - have)).itertuples():
            picked.append((str(r.xc), str(label), source(r)))
    return picked


# ---------------------------------------------------------------- step 2: the server
def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, params: dict[str, Any] | None = None) -> Any:
    full = url + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(full, timeout=60) as r:
            return json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise ShotError(f"GET {full}: {exc.code} {exc.read().decode('utf-8', 'replace')[:300]}") from exc


@contextlib.contextmanager
def serve(runs: Path, recordings: Path, work: Path) -> Iterator[str]:
    """``birdspec serve`` in a child process (PyTorch on one thread, its cache in ``work``); yields its URL."""
    port = free_port()
    env = {**one_thread_env(), "BIRDSPEC_CACHE_DIR": str(work / "cache")}
    log_path = work / "serve.log"
    cmd = [sys.executable, "-m", "birdspec", "serve", "--runs", str(runs), "--recordings", str(recordings),
           "--work", str(work / "serve"), "--port", str(port)]
    log(f"serve: {' '.join(cmd[2:])}")
    with open(log_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise ShotError(f"birdspec serve exited ({proc.returncode}):\n{log_path.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/api/config", timeout=2).close()
                break
            if time.time() > deadline:
                raise ShotError(f"birdspec serve did not answer in 60 s; see {log_path}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the pages
class Driver:
    """The browser's page, the server's URL, and the page's errors (any of them fails the run)."""

    def __init__(self, page: Any, url: str) -> None:
        self.page, self.url = page, url
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)

    def check(self, where: str) -> None:
        if self.errors:
            raise ShotError(f"the browser reported errors ({where}):\n" + "\n".join(self.errors))

    def message(self, sel: str) -> str:
        return (self.page.locator(sel).text_content() or "").strip()

    # -------------------------------------------------- Analyze
    def analyze(self, recording: str, checkpoint: str) -> str:
        """Analyze ``recording`` with ``checkpoint`` on the Analyze page; the prediction's reference."""
        from playwright.sync_api import expect

        page = self.page
        page.click("nav a[data-page=analyze]")
        page.select_option("#recording", recording)
        page.select_option("#checkpoint", checkpoint)
        before = page.url
        page.click("#predict")
        try:
            page.wait_for_function(f"() => location.hash.includes('prediction=') && location.href !== {before!r}", timeout=300_000)
        except Exception as exc:
            raise ShotError(f"analysing {recording} did not open its prediction: {self.message('#analyze-msg')!r}") from exc
        expect(page.locator("#tiles img[data-loaded='1']").first).to_be_attached()
        query = page.url.split("?", 1)[1] if "?" in page.url else ""
        ref = urllib.parse.parse_qs(query).get("prediction", [""])[0]
        if not ref:
            raise ShotError(f"no prediction in the URL after analysing {recording}: {page.url}")
        self.check(f"analysing {recording}")
        return ref

    def draw_box(self, recording: str, species: str) -> None:
        """Zoom to :data:`ZOOM_LABEL`, show the song phrase, drag :data:`BOX` on the tiles, name it, save it."""
        from playwright.sync_api import expect

        page = self.page
        page.select_option("#zoom", label=ZOOM_LABEL)
        page.fill("#goto", f"0:{VIEW_FROM_S:04.1f}")
        page.press("#goto", "Enter")
        page.wait_for_load_state("networkidle")
        self.wait_tiles()
        display = get_json(self.url + "/api/display", {"ref": recording, "axis": "mel"})
        pps = float(page.locator("#inner").get_attribute("data-pps") or 0)
        tiles = page.locator("#tiles").bounding_box()
        if not pps or tiles is None:
            raise ShotError("the Analyze timeline has no scale (data-pps) or no tiles")

        def at(t: float, hz: float) -> tuple[float, float]:
            return tiles["x"] + t * pps, tiles["y"] + hz_to_y(display, hz)

        (x0, y0), (x1, y1) = at(BOX["start_s"], BOX["high_hz"]), at(BOX["end_s"], BOX["low_hz"])
        page.mouse.move(x0, y0)
        page.mouse.down()
        for k in range(1, 6):
            page.mouse.move(x0 + (x1 - x0) * k / 5, y0 + (y1 - y0) * k / 5)
        page.mouse.up()
        expect(page.locator("#box-species")).to_be_focused()
        page.fill("#box-species", species)
        with page.expect_response(lambda r: r.url.endswith("/api/boxes") and r.request.method == "POST") as resp:
            page.press("#box-species", "Enter")
        if resp.value.status != 200:
            raise ShotError(f"saving the box failed: {resp.value.status} {resp.value.text()}")
        expect(page.locator(".sel-box")).to_have_count(1)
        expect(page.locator("#box-msg")).to_contain_text("saved")
        page.mouse.move(*at(*POINTER))  # the readout under the pointer
        expect(page.locator("#pointer-readout")).to_contain_text("kHz")
        self.check("drawing the box")

    def min_score(self, value: float) -> None:
        """Set the Analyze minimum-score slider (the tracks then show every species scoring at least ``value``)."""
        from playwright.sync_api import expect

        self.page.locator("#min-score").evaluate(f"e => {{ e.value = '{value}'; e.dispatchEvent(new Event('input')); }}")
        expect(self.page.locator("#min-score-value")).to_have_text(f"{value:.2f}")

    def wait_tiles(self) -> None:
        """Every tile in view is loaded."""
        self.page.wait_for_function("""() => {
            const sc = document.querySelector('#scroller').getBoundingClientRect();
            const imgs = [...document.querySelectorAll('#tiles img')].filter((i) => {
                const b = i.getBoundingClientRect(); return b.right > sc.left && b.left < sc.right; });
            return imgs.length > 0 && imgs.every((i) => i.dataset.loaded === '1' && i.complete && i.naturalWidth > 0);
        }""", timeout=60_000)

    # -------------------------------------------------- Review
    def open_review(self, prediction: str) -> None:
        from playwright.sync_api import expect

        page = self.page
        page.click("nav a[data-page=review]")
        expect(page.locator("#review-prediction")).to_have_count(1)
        page.wait_for_function(f"() => [...document.querySelectorAll('#review-prediction option')].some((o) => o.value === {prediction!r})")
        if page.locator("#review-prediction").input_value() != prediction:
            page.select_option("#review-prediction", prediction)
        expect(page.locator("#cards")).to_have_attribute("data-prediction", prediction)
        if page.locator("#review-min").input_value() != "0":
            with page.expect_response(lambda r: "/api/review?" in r.url):
                page.fill("#review-min", "0")  # every window's top choice, whatever the model's thresholds
                page.locator("#review-min").blur()
        expect(page.locator("#review-min-note")).to_contain_text("at least 0.00")
        page.wait_for_load_state("networkidle")
        expect(page.locator(".card.current")).to_have_count(1)

    def verify(self, truth: str, count: int | None = None) -> tuple[int, int]:
        """Verdicts by key on ``count`` cards (None: all that are left), from the card in hand on: ``c`` when the
        card names ``truth``, else ``o`` and ``truth``; ``(correct, other)``."""
        from playwright.sync_api import expect

        page = self.page
        n = page.locator(".card").count()
        first = page.locator(".card").evaluate_all("cs => cs.findIndex((c) => c.classList.contains('current'))")
        if first < 0:
            raise ShotError("no card in hand on the Review page")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        counts = [0, 0]
        for i in range(first, n if count is None else min(n, first + count)):
            card = page.locator(".card").nth(i)
            expect(card).to_have_class(re.compile(r"\bcurrent\b"))
            label = card.evaluate("n => n.closest('.group').dataset.label")
            with page.expect_response(lambda r: "/api/verdict" in r.url) as resp:
                if label == truth:
                    page.keyboard.press("c")
                else:
                    page.keyboard.press("o")
                    field = card.locator("input.other-species")
                    expect(field).to_be_focused()
                    field.fill(truth)
                    field.press("Enter")
            if resp.value.status != 200:
                raise ShotError(f"verdict {i} on {label}: {resp.value.status} {resp.value.text()}")
            expect(card).to_have_class(re.compile(r"\bv-(correct|other)\b"))
            counts[label != truth] += 1
        expect(page.locator("#summary h4").first).to_be_visible()
        self.check("giving verdicts")
        return counts[0], counts[1]

    # -------------------------------------------------- Train and Runs
    def train(self, epochs: int, timeout_min: float) -> float:
        """Train from every source listed, on the Train page; the seconds it took."""
        from playwright.sync_api import expect

        page = self.page
        page.click("nav a[data-page=train]")
        expect(page.locator("#train-sources input").first).to_be_attached()
        page.wait_for_load_state("networkidle")
        for box in page.locator("#train-sources input").all():
            box.check()
        expect(page.locator("#train-recipe")).to_have_value("small-data")
        expect(page.locator("#train-model")).to_have_value("mobilenetv2-seed")
        page.select_option("#train-device", "cpu")
        page.fill("#train-epochs", str(epochs))
        page.fill("#train-name", APP_RUN_NAME)
        started = time.time()
        page.click("#train-start")
        try:
            expect(page.locator("#train-split")).to_be_visible()
            expect(page.locator("#train-done")).to_be_visible(timeout=timeout_min * 60_000)
        except AssertionError as exc:
            raise ShotError(f"training in the app did not end: {self.message('#train-msg')!r} {self.message('#train-text')!r}") from exc
        expect(page.locator("#train-done")).to_contain_text("val macro F1")
        page.wait_for_load_state("networkidle")
        self.check("training")
        return time.time() - started

    def open_run(self) -> None:
        from playwright.sync_api import expect

        page = self.page
        page.locator("#train-done a").click()
        expect(page.locator("#run-detail h3")).to_have_text(f"runs/{APP_RUN_NAME}")
        expect(page.locator("#run-detail img[alt='confusion_matrix.png']")).to_be_visible()
        page.wait_for_function("() => [...document.querySelectorAll('#run-detail img')].every((i) => i.complete && i.naturalWidth > 0)")
        page.wait_for_load_state("networkidle")
        self.check("opening the run")


def hz_to_y(display: dict[str, Any], hz: float) -> float:
    """Pixels from the tiles' top where ``hz`` is drawn (spectro_view.js's hzToY)."""
    rows = [float(v) for v in display["rows_hz"]]
    n = len(rows)
    i = next((k for k, v in enumerate(rows) if v >= hz), -1)
    if i < 0:
        return 0.0
    if i == 0:
        return TILE_HEIGHT_PX * (1 - max(0.0, 0.5 - (rows[0] - hz) / (rows[1] - rows[0])) / n)
    r = i - 1 + (hz - rows[i - 1]) / (rows[i] - rows[i - 1]) + 0.5
    return TILE_HEIGHT_PX * (1 - r / n)


# ---------------------------------------------------------------- images
def shot(page: Any, bottom_of: str | None = None, *, top_of: str | None = None, full_page: bool = False, margin: int = 12) -> Any:
    """A screenshot as a PIL image, cut below ``bottom_of``'s bottom edge (and above ``top_of``'s top edge)."""
    from PIL import Image

    img = Image.open(io.BytesIO(page.screenshot(full_page=full_page))).convert("RGB")
    scroll = 0.0 if full_page else float(page.evaluate("window.scrollY"))
    top, bottom = 0, img.height
    if bottom_of:
        box = page.locator(bottom_of).bounding_box()
        if box is None:
            raise ShotError(f"{bottom_of} is not shown")
        bottom = min(img.height, int(box["y"] + box["height"] + (scroll if full_page else 0)) + margin)
    if top_of:
        box = page.locator(top_of).bounding_box()
        if box is None:
            raise ShotError(f"{top_of} is not shown")
        top = max(0, int(box["y"] + (scroll if full_page else 0)) - margin)
    return img.crop((0, top, img.width, bottom))


def page_box(page: Any, sel: str) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of ``sel`` in page pixels (a full-page screenshot's)."""
    box = page.locator(sel).first.bounding_box()
    if box is None:
        raise ShotError(f"{sel} is not shown")
    sx, sy = page.evaluate("[window.scrollX, window.scrollY]")
    x, y = box["x"] + sx, box["y"] + sy
    return int(x), int(y), int(x + box["width"]), int(y + box["height"])


def train_figure(page: Any, train_img: Any, gap: int = 16) -> Any:
    """The Train page (left, above the Runs page's list of runs) beside the new run's page (its split, curves,
    metrics and confusion matrix): two columns cut from the real pages, a line between them."""
    from PIL import Image, ImageDraw

    full = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    detail = page_box(page, "#run-detail")
    matrix = page_box(page, "#run-detail img[alt='confusion_matrix.png']")
    runs = page_box(page, "#page-runs")
    listing = page_box(page, "table.runs")
    right = full.crop((detail[0] - 8, detail[1] - 8, min(full.width, detail[2] + 8), matrix[3] + 12))
    below = full.crop((0, runs[1] - 8, detail[0] - 8, listing[3] + 12))
    background = full.getpixel((full.width - 2, full.height - 2))
    width = max(train_img.width, below.width) + gap + right.width
    height = max(train_img.height + gap + below.height, right.height)
    out = Image.new("RGB", (width, height), background)
    out.paste(train_img, (0, 0))
    out.paste(below, (0, train_img.height + gap))
    x = max(train_img.width, below.width) + gap // 2
    ImageDraw.Draw(out).line([(x, 0), (x, height)], fill="#9aa0a6", width=2)
    out.paste(right, (x + gap // 2, 0))
    return out


def png_bytes(img: Any, max_kb: int) -> bytes:
    """``img`` as PNG, reduced to a 256-colour palette when larger than ``max_kb``."""
    from PIL import Image

    def encode(im: Any) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    data = encode(img)
    if len(data) > max_kb * 1024:
        data = encode(img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    if len(data) > max_kb * 1024:
        raise ShotError(f"a screenshot is {len(data) // 1024} KB even with 256 colours (limit {max_kb} KB); crop it")
    return data


# ---------------------------------------------------------------- main
def take(args: argparse.Namespace, work: Path) -> dict[str, bytes]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a page's first answers wait for the server's imports
    data = Path(args.data).resolve()
    if args.run:
        base = Path(args.run).resolve()
        if not (base / "checkpoints" / "best.pt").is_file():
            raise ShotError(f"{base}: not a run folder with checkpoints/best.pt")
    else:
        if not (data / "train_metadata.csv").is_file():
            raise ShotError(f"{data}: not a BirdCLEF folder (no train_metadata.csv); give the reed warblers with --data")
        base = train_run(data, work, args.epochs)
    picked = pick_recordings(validation_recordings(base), args.recording, args.per_species, data)

    # the served folders, fresh: a copy of the run (the app trains its run beside it), the recordings, the app's work
    runs, recs = work / "serve-runs", work / "recordings"
    for d in (runs, recs, work / "serve"):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, runs / RUN_NAME, ignore=shutil.ignore_patterns("lightning", "*.ckpt"))
    for _xc, label, src in picked:
        (recs / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, recs / label / src.name)
    log("recordings: " + ", ".join(f"{xc} ({label})" for xc, label, _ in picked))
    checkpoint = f"runs/{RUN_NAME}/checkpoints/best.pt"
    ref = {xc: f"{recs.name}/{label}/{src.name}" for xc, label, src in picked}
    shown_xc, shown_label, _ = picked[0]

    images: dict[str, Any] = {}
    with serve(runs, recs, work) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--mute-audio"])
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(60_000)
            d = Driver(page, url)
            order = picked[1:] + picked[:1]  # the shown recording last: it stays open in Analyze and Review
            page.goto(url + "/#/analyze")
            predictions = {}
            for xc, _label, _src in order:
                predictions[xc] = d.analyze(ref[xc], checkpoint)
                log(f"analysed {xc}: {predictions[xc]}")
            d.min_score(ANALYZE_MIN_SCORE)
            d.draw_box(ref[shown_xc], shown_label)
            images["serve-analyze.png"] = shot(page, "#page-analyze")

            for xc, label, _src in order:
                d.open_review(predictions[xc])
                correct, other = d.verify(label, REVIEW_SHOWN_VERDICTS if xc == shown_xc else None)
                if xc == shown_xc:  # photographed midway: verdicts, the card in hand, cards still to judge
                    page.evaluate("window.scrollTo(0, 0)")
                    page.wait_for_load_state("networkidle")
                    page.wait_for_function("() => [...document.querySelectorAll('.card img')].slice(0, 6)"
                                           ".every((i) => i.complete && i.naturalWidth > 0)")
                    images["serve-review.png"] = shot(page)
                    more = d.verify(label)
                    correct, other = correct + more[0], other + more[1]
                log(f"verified {xc}: {correct} correct, {other} other species ({label})")

            page.set_viewport_size({"width": TRAIN_WIDTH, "height": VIEWPORT["height"]})
            train_s = d.train(args.app_epochs, args.train_timeout_min)
            log(f"trained from verified windows in the app in {train_s:.0f} s: {d.message('#train-done')}")
            page.locator("#train-sources").evaluate("u => { u.closest('fieldset').scrollTop = 0; }")
            train_img = shot(page, "#train-done", full_page=True)
            page.set_viewport_size(VIEWPORT)
            d.open_run()
            images["serve-train.png"] = train_figure(page, train_img)
        finally:
            browser.close()
    return {name: png_bytes(img, args.max_kb) for name, img in images.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write serve-analyze.png, serve-review.png, serve-train.png into")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the reed warblers, BirdCLEF layout (default ../shared/data/xc-reed-warblers)")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium Playwright drives (default /usr/bin/chromium)")
    ap.add_argument("--run", help="a finished run folder to predict with instead of training one (its dataset must be there)")
    ap.add_argument("--work", help="where to keep the prepared data, the run and the app's files (default: a temporary folder, "
                    "removed at the end); a finished run there is reused")
    ap.add_argument("--recording", default="XC233487", help="the recording shown (a validation recording of the run; default XC233487)")
    ap.add_argument("--per-species", type=int, default=2, help="validation recordings analysed and verified per species (default 2)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the run trained here (default 4)")
    ap.add_argument("--app-epochs", type=int, default=3, help="epochs of the training from verified windows in the app (default 3)")
    ap.add_argument("--train-timeout-min", type=float, default=30.0, help="longest wait for the app's training (default 30 min)")
    ap.add_argument("--max-kb", type=int, default=400, help="largest PNG (default 400 KB)")
    args = ap.parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"screenshots: error: no Chromium at {args.chromium} (--chromium PATH)", file=sys.stderr)
        return 1
    started = time.time()
    with contextlib.ExitStack() as stack_:
        work = Path(args.work).resolve() if args.work else Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="birdspec-shots-")))
        work.mkdir(parents=True, exist_ok=True)
        try:
            pngs = take(args, work)
        except ShotError as exc:
            print(f"screenshots: error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # Playwright's timeouts and assertions, and the like: say where
            print(f"screenshots: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        (out / name).write_bytes(data)
        log(f"wrote {out / name} ({len(data) // 1024} KB)")
    log(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
