"""`birdspec serve` speed on an hour-long recording, measured in the browser (headless Chromium).

    python benchmarks/serve_speed.py                                   # 60 min, 48 kHz FLAC, untrained checkpoint
    python benchmarks/serve_speed.py --checkpoint RUN/checkpoints/best.pt --minutes 60 --json serve.json

What it does:

1. writes a field-like soundscape of ``--minutes`` (48 kHz, 16-bit mono FLAC, written block by block;
   :func:`predict_speed.write_long_recording`) and, unless ``--checkpoint`` is given, an untrained
   ``mobilenetv2-seed`` window checkpoint (speed does not depend on the weights);
2. starts ``birdspec serve`` as its own process and times its start (spawn to first HTTP answer);
3. predicts the recording through the API (the background job) and times it;
4. in headless Chromium (Debian's ``chromium`` through Playwright): opens the finished prediction in
   Analyze and times **until the tiles in view are loaded** (the first tiles after prediction; the
   server's tile cache is cold for this recording), then jumps to ``--jumps`` random minutes at two
   zoom levels (10 s per tile: seconds in view; 120 s per tile: the default for an hour) and times each
   jump until the tiles in view are loaded. Times are measured in the page (``performance.now()``);
5. after the server stops, draws 10 random cold tiles one at a time at every zoom level with the app's
   ``TileCache`` in this process (``cold_tile_s``: the cost of one tile, which a jump's time is not).

The issue's goals: first tiles in under 2 s after prediction, any minute in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import describe_machine  # noqa: E402
from benchmarks.predict_speed import make_checkpoint, write_long_recording  # noqa: E402

VISIBLE_LOADED_JS = """
() => {
  const sc = document.querySelector('#scroller');
  const imgs = [...document.querySelectorAll('#tiles img')].filter((i) => {
    const l = parseFloat(i.style.left); return l + 512 > sc.scrollLeft && l < sc.scrollLeft + sc.clientWidth; });
  return imgs.length > 0 && imgs.every((i) => i.dataset.loaded === '1');
}"""
TIMED_JS = """
async ([action, arg]) => {
  const loaded = %s;
  const t0 = performance.now();
  if (action === 'open') {  // what a link to the prediction does
    location.hash = '#/analyze?prediction=' + encodeURIComponent(arg);
  } else {  // what a user does: the zoom menu, then a time typed into "go to"
    const zoom = document.querySelector('#zoom'), go = document.querySelector('#goto');
    if (zoom.value !== String(arg[0])) { zoom.value = String(arg[0]); zoom.dispatchEvent(new Event('change')); }
    go.value = String(arg[1]); go.dispatchEvent(new Event('change'));
  }
  await new Promise((r) => setTimeout(r, 0));
  while (!loaded()) await new Promise((r) => setTimeout(r, 5));
  return performance.now() - t0;
}""" % VISIBLE_LOADED_JS  # noqa: UP031 - a JavaScript template: its braces stay as they are


def _get(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def start_server(work: Path, runs: Path, recs: Path, port: int) -> tuple[subprocess.Popen, float]:
    exe = Path(sys.executable).with_name("birdspec")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "serve", "--runs", str(runs), "--recordings", str(recs), "--work", str(work / "app"),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            _get(f"http://127.0.0.1:{port}/api/config", timeout=0.5)
            return proc, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > 60:
                raise RuntimeError("birdspec serve did not start") from None
            time.sleep(0.02)


def measure(args: argparse.Namespace, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    recs, runs = work / "recs", work / "runs"
    recs.mkdir(exist_ok=True)
    rec = recs / f"field-{args.minutes:g}min.flac"
    if not rec.exists():
        t = time.perf_counter()
        write_long_recording(rec, minutes=args.minutes, sample_rate_hz=48000, style="field")
        print(f"wrote {rec} in {time.perf_counter() - t:.0f} s", flush=True)
    ckpt = runs / "bench" / "checkpoints" / "best.pt"
    if args.checkpoint:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_bytes(Path(args.checkpoint).read_bytes())
    elif not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        make_checkpoint(ckpt, model="mobilenetv2-seed", encoding="window", num_classes=4)
    proc, start_s = start_server(work, runs, recs, args.port)
    base = f"http://127.0.0.1:{args.port}"
    out: dict = {"minutes": args.minutes, "server_start_s": round(start_s, 2)}
    try:
        t = time.perf_counter()
        job = _post(base + "/api/predict", {"recording": f"recs/{rec.name}", "checkpoint": "runs/bench/checkpoints/best.pt"})
        while job["status"] not in ("done", "failed"):
            time.sleep(0.2)
            job = _get(f"{base}/api/jobs/{job['id']}")
        if job["status"] != "done":
            raise RuntimeError(job["message"])
        out["predict_s"] = round(time.perf_counter() - t, 1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(base + "/#/analyze")
            page.wait_for_function("() => (document.querySelector('#checkpoint')?.options.length || 0) > 0")
            out["first_tiles_s"] = round(page.evaluate(TIMED_JS, ["open", job["result"]["prediction"]]) / 1000, 3)
            import random

            rng = random.Random(0)
            for level, name in ((1, "jump_10s_tiles_s"), (4, "jump_120s_tiles_s")):
                times = []
                for _ in range(args.jumps):
                    minute = rng.randrange(0, int(args.minutes))
                    times.append(page.evaluate(TIMED_JS, ["jump", [level, minute * 60.0]]) / 1000)
                out[name] = [round(x, 3) for x in times]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out["cold_tile_s"] = cold_tiles(rec, minutes=args.minutes)
    return out


def cold_tiles(rec: Path, *, minutes: float, count: int = 10) -> dict[str, list[float]]:
    """Seconds to draw ``count`` random cold tiles of ``rec`` one at a time at every zoom level, in this process with
    the app's :class:`~birdspec.app.tiles.TileCache` (after its colour scale), by seconds per tile."""
    import numpy as np

    from birdspec.app.tiles import LEVELS_S, TileCache

    cache = TileCache()
    cache.scale(str(rec))
    rng = np.random.default_rng(0)
    out = {}
    for level, level_s in enumerate(LEVELS_S):
        n = int(np.ceil(minutes * 60 / level_s))
        times = []
        for index in rng.choice(n, size=min(count, n), replace=False):
            t = time.perf_counter()
            cache.tile(rec, level=level, index=int(index))
            times.append(round(time.perf_counter() - t, 3))
        out[f"{level_s:g}"] = times
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--checkpoint", default=None, help="a checkpoint file to predict with (default: an untrained one)")
    ap.add_argument("--jumps", type=int, default=10, help="random minutes visited per zoom level")
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--workdir", default=None, help="keep the recording and checkpoint here (default: a temporary folder)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("BIRDSPEC_CACHE_DIR", str(Path(tempfile.gettempdir()) / "birdspec-serve-bench-cache"))
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        result = measure(args, work)
    else:
        with tempfile.TemporaryDirectory() as d:
            result = measure(args, Path(d))
    result["machine"] = describe_machine()
    for key in ("jump_10s_tiles_s", "jump_120s_tiles_s"):
        xs = sorted(result[key])
        result[key.replace("_s", "_median_s")] = xs[len(xs) // 2]
        result[key.replace("_s", "_max_s")] = xs[-1]
    result["cold_tile_median_max_s"] = {k: [sorted(v)[len(v) // 2], max(v)] for k, v in result["cold_tile_s"].items()}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = result["first_tiles_s"] < 2.0 and max(result["jump_10s_tiles_s"] + result["jump_120s_tiles_s"]) < 1.0
    print(f"goals (first tiles < 2 s, any minute < 1 s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
