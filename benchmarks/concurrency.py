"""Concurrency benchmark: does a birdspec training keep its share of the CPU beside another birdspec job?

    python benchmarks/concurrency.py [--out bench-out/concurrency] [--epochs 3] [--cases default,passive,...]

Protocol: the demo's synthetic dataset (``birdspec demo``'s, window encoding), ``birdspec train --model
mobilenetv2-seed --epochs N`` with its defaults; the training time is the run's own ``train_time_s``
(summary.json: epochs only, not the start-up). Per case (an environment and extra ``train`` arguments):

- **solo**: one training alone;
- **two trainings**: two identical trainings started together; each one's speed as a share of solo
  (solo time / its time; a fair share of the cores is 0.5);
- **training + predict**: one training while ``birdspec predict`` scores a 10-minute recording over and
  over; the training's share of its solo speed, and the predictions' real-time factor beside it.

Cases (:data:`CASES`): ``default`` (birdspec's CLI as installed: it sets ``OMP_WAIT_POLICY=PASSIVE`` unless the
user set a policy, so idle OpenMP threads sleep), ``gomp-default`` (the policy set empty, so libgomp's own
default applies: spin a while, then sleep; birdspec before the CLI set it), ``spin``
(``OMP_WAIT_POLICY=ACTIVE``), ``one-thread`` (the default plus ``--threads 1``). Run it alone on the machine: the
point is how birdspec processes share it, another job's load would be measured too.
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
from benchmarks.common import describe_machine, setup_logging  # noqa: E402
from benchmarks.predict_speed import write_long_recording  # noqa: E402

CASES = {  # name: (environment, extra train arguments)
    "default": ({}, []),  # birdspec's CLI: OMP_WAIT_POLICY=PASSIVE unless set
    "gomp-default": ({"OMP_WAIT_POLICY": ""}, []),  # set but empty: libgomp's own default (spin a while, then sleep)
    "spin": ({"OMP_WAIT_POLICY": "ACTIVE"}, []),
    "one-thread": ({}, ["--threads", "1"]),
}
BIRDSPEC = [sys.executable, "-m", "birdspec", "-q"]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    return {**env, **extra}


def _train_cmd(data: Path, out: Path, epochs: int, extra: list[str]) -> list[str]:
    return [*BIRDSPEC, "train", str(data), "--model", "mobilenetv2-seed", "--epochs", str(epochs), "--seed", "0",
            "--out", str(out), *extra]


def _train_time(run: Path) -> float:
    return float(json.loads((run / "summary.json").read_text())["train_time_s"])


def _trainings(data: Path, out: Path, epochs: int, env: dict[str, str], extra: list[str], n: int) -> list[float]:
    """``n`` trainings started together; their ``train_time_s``."""
    runs = [out / f"run{i}" for i in range(n)]
    procs = [subprocess.Popen(_train_cmd(data, r, epochs, extra), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for r in runs]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"train failed: {err.decode()[-2000:]}")
    return [_train_time(r) for r in runs]


def _beside_predict(data: Path, out: Path, epochs: int, env: dict[str, str], extra: list[str], ckpt: Path,
                    recording: Path, minutes: float) -> tuple[float, float]:
    """A training while predict runs over ``recording`` again and again: (train_time_s, predict x real time)."""
    train = subprocess.Popen(_train_cmd(data, out / "run", epochs, extra), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    audio_s, wall_s = 0.0, 0.0
    while train.poll() is None:
        t = time.perf_counter()
        subprocess.run([*BIRDSPEC, "predict", str(ckpt), str(recording), "--out", str(out / "pred.csv")], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall_s += time.perf_counter() - t
        audio_s += minutes * 60
    _, err = train.communicate()
    if train.returncode:
        raise SystemExit(f"train failed: {err.decode()[-2000:]}")
    return _train_time(out / "run"), audio_s / max(wall_s, 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-out/concurrency")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the recording predicted beside a training")
    args = ap.parse_args(argv)
    setup_logging()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from birdspec.demo import DemoConfig, prepare_demo_data

    data = out / "data" / "prepared"
    if not (data / "dataset.json").is_file():
        data = prepare_demo_data(out / "data", DemoConfig())
    recording = out / f"field-{args.minutes:g}min.flac"
    if not recording.is_file():
        write_long_recording(recording, minutes=args.minutes, sample_rate_hz=48000, style="field")
    rows = []
    for name in args.cases.split(","):
        env_extra, extra = CASES[name]
        env, case = _env(env_extra), out / name
        subprocess.run(["rm", "-rf", str(case)], check=True)
        solo = _trainings(data, case / "solo", args.epochs, env, extra, 1)[0]
        two = _trainings(data, case / "two", args.epochs, env, extra, 2)
        beside, pred_x = _beside_predict(data, case / "beside", args.epochs, env, extra,
                                         case / "solo" / "run0", recording, args.minutes)
        row = {"case": name, "solo_s": round(solo, 1), "two_s": [round(t, 1) for t in two],
               "two_share": round(min(solo / t for t in two), 3), "beside_predict_s": round(beside, 1),
               "beside_predict_share": round(solo / beside, 3), "predict_x_realtime_beside": round(pred_x, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"machine": describe_machine(), "epochs": args.epochs, "rows": rows}
    (out / "concurrency.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = [f"Machine: {result['machine']}; mobilenetv2-seed, {result['epochs']} epochs of the demo data.", "",
             "| case | solo train (s) | two trainings: each (s) | share of solo (lower) | beside predict (s) "
             "| share of solo | predict beside it (x real time) |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['case']} | {r['solo_s']} | {' / '.join(map(str, r['two_s']))} | {r['two_share']:.2f} | "
                     f"{r['beside_predict_s']} | {r['beside_predict_share']:.2f} | {r['predict_x_realtime_beside']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
