"""397 classes end to end through the CLI (issue 17, part 5): prepare, train, evaluate, export, predict, score.

    python benchmarks/scale397.py --out bench-out/scale397
    python benchmarks/scale397.py --out bench-out/scale397 --pause-pid PID   # a shared machine: see below

Writes a synthetic 397-class dataset in the BirdCLEF 2021 layout (``train_metadata.csv`` +
``train_short_audio/<code>/XC*.ogg``; :mod:`birdspec.data.synthetic_many`: 397 call types, 3
recordings of 10-30 s each, ~6.6 h, secondary labels on ~30 %), then runs every command as a user
would, each a subprocess of ``birdspec`` timed from start to exit (wall, CPU of the process tree,
peak RSS summed over the tree, sampled every 20 ms):

- ``prepare`` (``--encoding window --short-policy tile --folds 3``): wall, x real time, disk use of
  the prepared dataset per hour of audio;
- ``train`` 1 epoch of ``mobilenetv2-seed`` (``--labels primary``, then ``--labels multi``):
  training windows per second of the epoch (its validation pass included) and the whole command;
- ``evaluate`` the primary run (metrics, per-class table, figures with 397 classes);
- ``export --format onnx`` (time, size);
- ``predict`` a 30 min soundscape mixed from fold 0 (``birdspec soundscape make``) with 397 outputs:
  x real time and peak memory per output kind (csv top-3, csv all scores, long csv with every score,
  parquet top-3 and all scores, birdclef), output sizes (an untimed run first: page cache);
- ``score-soundscapes`` of the birdclef submission and of the all-scores table (threshold search).

The work folder is reused: the dataset, the prepared set, the runs and the soundscape are kept
and not made again (``--redo STEP,...`` times a step again; the timings of one run of the script are
those in ``scale397.json``). ``--pause-pid PID`` sends SIGSTOP to that process and its children
during each timed command and SIGCONT right after (always, also on errors), for a machine shared
with another long benchmark; untimed work (synthesis, soundscape) runs beside it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import TreeMemory, describe_machine  # noqa: E402
from birdspec.runtime import cpu_count  # noqa: E402

BIRDSPEC = str(Path(sys.executable).with_name("birdspec"))
STEPS = ("prepare", "train", "train-multi", "evaluate", "export", "predict", "score")
PREDICT_CASES = {  # name -> (options, output file); top-3 with --min-conf 0, so that every window has 3 rows
    "csv-top3": (["--min-conf", "0"], "top3.csv"),  # (a 1-epoch 397-class model rarely scores 0.1, the default)
    "csv-all": (["--scores", "all"], "all.csv"),
    "csv-long-all": (["--top-k", "0", "--min-conf", "0"], "long_all.csv"),
    "parquet-top3": (["--format", "parquet", "--min-conf", "0"], "top3.parquet"),
    "parquet-all": (["--format", "parquet", "--scores", "all"], "all.parquet"),
    "birdclef": (["--format", "birdclef"], "submission.csv"),
}


@contextmanager
def paused(pid: int | None):
    """SIGSTOP ``pid`` and its descendants for the block, SIGCONT them after it (always)."""
    if not pid:
        yield
        return
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        procs = []
    for p in procs:
        try:
            p.suspend()
        except psutil.Error:
            pass
    try:
        yield
    finally:
        for p in procs:
            try:
                p.resume()
            except psutil.Error:
                pass


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], *, pause_pid: int | None) -> dict:
    """Run ``cmd``; its wall seconds, CPU seconds (the tree, once reaped), peak tree RSS (MB) and output."""
    print("$ " + " ".join(cmd), file=sys.stderr)
    with paused(pause_pid):
        cpu0, t0 = _children_cpu_s(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with TreeMemory(proc.pid) as peak:  # summed VmRSS and RssAnon, every 20 ms
            out, err = proc.communicate()
        wall = time.perf_counter() - t0
        cpu = _children_cpu_s() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_mb": round(peak.rss_kb / 1024),
            "peak_anon_mb": round(peak.anon_kb / 1024), "stdout": out}


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def info(prepared: Path) -> dict:
    return json.loads(subprocess.run([BIRDSPEC, "info", str(prepared), "--json"], capture_output=True, text=True,
                                     check=True).stdout)


def split_windows(prepared: Path) -> tuple[int, int]:
    """5 s windows (samples) of the train and val splits."""
    from birdspec.data.prepared import PreparedDataset, count_samples

    data = PreparedDataset(prepared)
    m = data.manifest
    n = [count_samples(int(k), encoding=data.encoding) for k in m["num_samples"]]
    split = m["split"].to_numpy()
    return (int(sum(k for k, s in zip(n, split, strict=True) if s == "train")), int(sum(k for k, s in zip(n, split, strict=True) if s == "val")))


def make_dataset(root: Path, classes: int, per_class: int) -> dict:
    from birdspec.data.synthetic_many import make_many_birdclef

    meta = root / "train_metadata.csv"
    t0 = time.perf_counter()
    if not meta.exists():
        make_many_birdclef(root, num_classes=classes, per_class=per_class, min_duration_s=10.0, max_duration_s=30.0,
                           seed=0, workers=cpu_count())
    import pandas as pd

    df = pd.read_csv(meta)
    return {"classes": int(df["primary_label"].nunique()), "recordings": len(df),
            "with_secondary_labels": int((df["secondary_labels"] != "[]").sum()),
            "source_mb": round(du_mb(root), 1), "synthesis_s": round(time.perf_counter() - t0, 1)}


def step_prepare(work: Path, pause: int | None) -> dict:
    out = work / "prepared"
    shutil.rmtree(out, ignore_errors=True)
    r = timed([BIRDSPEC, "prepare", str(work / "source"), "--out", str(out), "--encoding", "window",
               "--short-policy", "tile", "--folds", "3", "--workers", "2", "--no-progress"], pause_pid=pause)
    desc = info(out)
    hours = desc["duration_s"] / 3600
    mb = du_mb(out)
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_mb": r["peak_mb"], "audio_h": round(hours, 3),
            "x_real_time": round(hours * 3600 / r["wall_s"]), "disk_mb": round(mb, 1),
            "disk_mb_per_audio_h": round(mb / hours, 1), "classes": len(desc["classes"]),
            "recordings": desc["num_recordings"], "windows": desc["num_samples"], "splits": desc.get("splits")}


def step_train(work: Path, pause: int | None, labels: str) -> dict:
    run = work / f"run-{labels}"
    shutil.rmtree(run, ignore_errors=True)
    r = timed([BIRDSPEC, "train", str(work / "prepared"), "--model", "mobilenetv2-seed", "--epochs", "1",
               "--labels", labels, "--out", str(run), "--no-progress", "--json"], pause_pid=pause)
    import pandas as pd

    metrics = pd.read_csv(run / "metrics.csv").iloc[-1]
    train_n, val_n = split_windows(work / "prepared")
    epoch_s = float(metrics["epoch_time_s"])
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_mb": r["peak_mb"], "peak_anon_mb": r["peak_anon_mb"], "epoch_s": round(epoch_s, 1),
            "train_windows": train_n, "val_windows": val_n, "train_samples_per_s": round(train_n / epoch_s, 1),
            "val_acc": round(float(metrics["val_acc"]), 4), "checkpoint_mb": round((run / "checkpoints" / "best.pt").stat().st_size / 2**20, 2)}


def step_evaluate(work: Path, pause: int | None) -> dict:
    out = work / "eval"
    shutil.rmtree(out, ignore_errors=True)
    r = timed([BIRDSPEC, "evaluate", str(work / "run-primary"), "--out", str(out), "--json"], pause_pid=pause)
    files = {f.name: round(f.stat().st_size / 2**10, 1) for f in sorted(out.iterdir()) if f.is_file()}
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_mb": r["peak_mb"], "peak_anon_mb": r["peak_anon_mb"], "files_kb": files}


def step_export(work: Path, pause: int | None) -> dict:
    out = work / "export" / "model.onnx"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    r = timed([BIRDSPEC, "export", str(work / "run-primary" / "checkpoints" / "best.pt"), "--format", "onnx",
               "--out", str(out)], pause_pid=pause)
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_mb": r["peak_mb"],
            "onnx_mb": round(out.stat().st_size / 2**20, 2), "sidecar_kb": round(out.with_suffix(".json").stat().st_size / 2**10, 1)}


def soundscape(work: Path, minutes: float) -> Path:
    """A ``minutes`` long soundscape of fold 0 (untimed; kept for reruns)."""
    sc = work / "soundscape"
    if not (sc / "truth.csv").exists():
        shutil.rmtree(sc, ignore_errors=True)
        subprocess.run([BIRDSPEC, "soundscape", "make", str(work / "prepared"), "--fold", "0", "--count", "1",
                        "--duration-s", str(int(minutes * 60)), "--out", str(sc), "--no-progress"], check=True)
    return next((sc / "audio").iterdir())


def step_predict(work: Path, pause: int | None, audio: Path) -> dict:
    out = work / "predict"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ckpt = str(work / "run-primary" / "checkpoints" / "best.pt")
    import soundfile as sf

    seconds = sf.info(str(audio)).duration
    subprocess.run([BIRDSPEC, "predict", ckpt, str(audio), "--out", str(out / "warmup.csv"), "--no-progress"],
                   check=True, capture_output=True)  # untimed: page cache, first-run work
    rows = {}
    for name, (opts, fname) in PREDICT_CASES.items():
        r = timed([BIRDSPEC, "predict", ckpt, str(audio), "--out", str(out / fname), "--no-progress", *opts],
                  pause_pid=pause)
        rows[name] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_mb": r["peak_mb"], "peak_anon_mb": r["peak_anon_mb"],
                      "x_real_time": round(seconds / r["wall_s"]), "size_kb": round((out / fname).stat().st_size / 2**10, 1)}
    return {"audio_min": round(seconds / 60, 2), "windows": int(round(seconds / 5)), "cases": rows}


def step_score(work: Path, pause: int | None) -> dict:
    truth = str(work / "soundscape" / "truth.csv")
    rows = {}
    for name, fname in (("submission", "submission.csv"), ("all-scores", "all.csv")):
        r = timed([BIRDSPEC, "score-soundscapes", str(work / "predict" / fname), truth], pause_pid=pause)
        rows[name] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_mb": r["peak_mb"],
                      "result": r["stdout"].strip().splitlines()[-3:]}
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-out/scale397", help="work folder (dataset and runs are kept for reruns)")
    ap.add_argument("--classes", type=int, default=397)
    ap.add_argument("--per-class", type=int, default=3, help="recordings per class (10-30 s each)")
    ap.add_argument("--soundscape-min", type=float, default=30.0, help="length of the predicted soundscape")
    ap.add_argument("--steps", default=",".join(STEPS), help="comma list of " + ", ".join(STEPS))
    ap.add_argument("--pause-pid", type=int, default=None,
                    help="SIGSTOP this process (and its children) during each timed command, SIGCONT after")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks (resume a paused process)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    result_path = work / "scale397.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    result["machine"] = describe_machine()
    result["dataset"] = make_dataset(work / "source", args.classes, args.per_class)
    print(json.dumps(result["dataset"]), file=sys.stderr)
    steps = args.steps.split(",")
    for step in steps:
        if step not in STEPS:
            raise SystemExit(f"unknown step {step!r}; choose from {', '.join(STEPS)}")
    t0 = time.perf_counter()
    for step in STEPS:
        if step not in steps:
            continue
        if step == "prepare":
            result[step] = step_prepare(work, args.pause_pid)
        elif step == "train":
            result[step] = step_train(work, args.pause_pid, "primary")
        elif step == "train-multi":
            result[step] = step_train(work, args.pause_pid, "multi")
        elif step == "evaluate":
            result[step] = step_evaluate(work, args.pause_pid)
        elif step == "export":
            result[step] = step_export(work, args.pause_pid)
        elif step == "predict":
            result[step] = step_predict(work, args.pause_pid, soundscape(work, args.soundscape_min))
        elif step == "score":
            result[step] = step_score(work, args.pause_pid)
        print(json.dumps({step: result[step]}), file=sys.stderr)
        result_path.write_text(json.dumps(result, indent=2))
    result["steps_wall_s"] = round(time.perf_counter() - t0, 1)
    result_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
