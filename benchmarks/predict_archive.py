"""Archive-scale prediction: one process vs --jobs 2 vs a Dask LocalCluster (issue 18).

    python benchmarks/predict_archive.py --out bench-out/archive             # >= 20 h of 48 kHz FLAC
    python benchmarks/predict_archive.py --out bench-out/archive --hours 1   # a quick look

Writes a synthetic archive of field-like recordings (pink noise, bird-like songs, a buzz; 48 kHz,
16-bit FLAC, files of 1 to 60 minutes; see ``predict_speed.write_long_recording``) and an untrained
``mobilenetv2-seed`` window checkpoint (speed does not depend on the weights), then times the whole
``birdspec predict CKPT ARCHIVE --out DIR`` command per mode, from process start to exit, first run
(nothing scored before; the ONNX export is made once beforehand, as ``birdspec train`` does):

- ``jobs1``: one process, 2 threads (``--jobs 1``);
- ``jobs2``: two worker processes of one thread each (``--jobs 2``, the default on 2 cores);
- ``dask``: ``--engine dask --jobs 2``, a LocalCluster of 2 single-thread workers.

It reports audio hours per wall hour, the peak RSS of the main process and of the largest worker,
the Dask overhead (cluster start, then per recording), checks that every mode's merged output is
byte-identical, and projects hours per day on 16 machines of 16 cores from the measured per-core
throughput. Distinct contents: 8 base recordings (1, 2, 5, 10, 20, 30, 45, 60 min) written once; the
archive holds hard links to them under distinct names (each is its own recording to birdspec).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import TreeMemory, describe_machine  # noqa: E402
from benchmarks.predict_speed import make_checkpoint, write_long_recording  # noqa: E402
from birdspec.runtime import cpu_count  # noqa: E402

BASE_MINUTES = (1, 2, 5, 10, 20, 30, 45, 60)
MODES = {
    "jobs1": ["--jobs", "1", "--threads", "2"],
    "jobs2": ["--jobs", "2"],
    "dask": ["--engine", "dask", "--jobs", "2"],
}


def build_archive(root: Path, hours: float) -> tuple[Path, int, float]:
    """``root/archive/siteNN/recNNNN.flac`` (hard links to the base recordings) totalling >= ``hours``."""
    base = root / "base"
    base.mkdir(parents=True, exist_ok=True)
    for m in BASE_MINUTES:
        p = base / f"{m:02d}min.flac"
        if not p.exists():
            print(f"writing {p}", file=sys.stderr)
            write_long_recording(p.with_suffix(".tmp.flac"), minutes=m, sample_rate_hz=48000, style="field").rename(p)
    archive = root / "archive"
    order = [60, 1, 20, 5, 45, 2, 30, 10]  # a mix of long and short files
    total_min, n = 0.0, 0
    while total_min < hours * 60:
        m = order[n % len(order)]
        link = archive / f"site{n % 7:02d}" / f"rec{n:04d}.flac"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.link(base / f"{m:02d}min.flac", link)
        total_min += m
        n += 1
    return archive, n, total_min / 60


def run_mode(name: str, ckpt: Path, archive: Path, out: Path, hours: float) -> dict:
    cmd = [str(Path(sys.executable).with_name("birdspec")), "predict", str(ckpt), str(archive.resolve()),
           "--out", str(out.resolve()) + "/", "--no-progress", *MODES[name]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with TreeMemory(proc.pid, interval_s=0.1) as memory:  # every process's own peak RSS, sampled every 100 ms
        text, _ = proc.communicate()
    wall = time.perf_counter() - t0
    peaks = {pid: kb / 1024 for pid, kb in memory.per_pid_kb.items()}
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{text.decode(errors='replace')[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    workers = [mb for pid, mb in peaks.items() if pid != proc.pid]
    return {"mode": name, "wall_s": round(wall, 2), "audio_h": hours, "h_per_wall_h": round(hours * 3600 / wall, 1),
            "x_real_time": round(hours * 3600 / wall), "main_peak_mb": round(peaks.get(proc.pid, 0.0)),
            "worker_peak_mb": round(max(workers)) if workers else None, "workers": summary["workers"],
            "threads": summary["threads_per_worker"], "recordings": summary["recordings"]}


def cluster_start_s() -> float:
    """Seconds to start and close a LocalCluster of 2 workers (the fixed part of the Dask overhead)."""
    code = ("import time, logging; t=time.perf_counter(); from distributed import Client, LocalCluster; "
            "c=LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR); "
            "cl=Client(c); cl.close(); c.close(); print(time.perf_counter()-t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-out/archive", help="work folder (the archive is kept for reruns)")
    ap.add_argument("--hours", type=float, default=20.0, help="audio in the archive (default 20 h)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of " + ", ".join(MODES))
    args = ap.parse_args(argv)
    root = Path(args.out)
    archive, n_files, hours = build_archive(root, args.hours)
    ckpt = root / "window.pt"
    if not ckpt.exists():
        make_checkpoint(ckpt, model="mobilenetv2-seed", encoding="window", num_classes=4)
    subprocess.run([sys.executable, "-c", f"from birdspec.prediction.archive_run import ensure_export; "
                    f"from pathlib import Path; ensure_export(Path({str(ckpt.resolve())!r}))"], check=True)
    rows = []
    for name in args.modes.split(","):
        out = root / f"run-{name}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        print(f"{name}: {n_files} files, {hours:.1f} h ...", file=sys.stderr)
        rows.append(run_mode(name, ckpt, archive, out, hours))
        print(json.dumps(rows[-1]), file=sys.stderr)
    merged = {r["mode"]: (root / f"run-{r['mode']}" / "predictions.csv").read_bytes() for r in rows}
    identical = len(set(merged.values())) == 1
    best_single = max((r for r in rows if r["mode"] == "jobs1"), key=lambda r: r["h_per_wall_h"], default=None)
    result = {"machine": describe_machine(), "files": n_files,
              "audio_h": round(hours, 2), "rows": rows, "outputs_identical": identical}
    if "dask" in merged:
        start = cluster_start_s()
        dask = next(r for r in rows if r["mode"] == "dask")
        jobs2 = next((r for r in rows if r["mode"] == "jobs2"), None)
        result["dask_cluster_start_s"] = round(start, 2)
        if jobs2:
            result["dask_overhead_per_recording_s"] = round((dask["wall_s"] - start - jobs2["wall_s"]) / n_files, 3)
    best = max(rows, key=lambda r: r["h_per_wall_h"])
    per_core = best["h_per_wall_h"] / cpu_count()
    result["projection_16x16_h_per_day"] = round(per_core * 16 * 16 * 24)
    if best_single:
        result["parallel_vs_single"] = {r["mode"]: round(r["h_per_wall_h"] / best_single["h_per_wall_h"], 3) for r in rows}
    (root / "predict_archive.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
