"""Spectrogram-type benchmark: the accuracy protocol's 5 folds, one row per spectrogram type.

    python benchmarks/frontends.py [BIRDCLEF_DIR] [--out bench-out/frontends] [--frontends logmel,pcen,...]
        [--epochs N] [--folds 0,1,...] [--second-seed [SEED]] [--device auto] [--no-predict] [--remeasure]

Protocol (that of ``benchmarks/accuracy.py``, whose functions this script imports):
- folds: ``StratifiedKFold(5, shuffle=True, random_state=0)`` on the filename-sorted rows of
  ``train_metadata.csv`` (checked against what ``birdspec prepare --folds 5 --seed 0`` assigned);
  one prepared ``window`` dataset (``tile`` policy) serves every type, since a prepared dataset holds
  waveforms and the spectrogram is computed by the model;
- every type (:data:`birdspec.config.FRONTENDS`): ``mobilenetv2-seed``, ``window`` encoding, the
  ``small-data`` recipe (``TrainConfig.from_recipe``) with ``frontend=TYPE`` and the type's default
  settings (no frontend option is tuned: nothing here looks at a test fold), cross-validated with
  ``fixed_epochs=True`` (the recipe's 20 epochs on all training folds, the last epoch scored);
- scores: recording-level accuracy and macro F1, mean +- std over the folds, correct recordings,
  training time summed over the folds;
- prediction speed: ``Predictor(fold checkpoint, device='cpu').predict_file(...)`` (backend
  ``auto``: ONNX Runtime when installed) on one 60 s 32 kHz FLAC made by concatenating reed-warbler
  recordings (the prepared waveforms in manifest order); one untimed call first (it exports the
  checkpoint), then the best of ``--predict-repeats`` timed calls; real-time factor = 60 s / that time.
  Only the call is timed (not the process start-up);
- ``--second-seed [SEED]`` (SEED 1 by default): afterwards the two best types (by correct recordings,
  then macro F1) run again with that seed, into ``OUT/TYPE-seedSEED/``; both seeds are reported.

Writes OUT/frontends.json and OUT/frontends.md (the table for benchmarks/README.md), rewritten after
every type, and prints the table. Each type cross-validates into ``OUT/TYPE/``; re-running resumes
(finished folds are not trained again; changing ``--epochs`` for an existing OUT is refused).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.accuracy import cv_row, fixed_epochs  # noqa: E402  (the accuracy benchmark's protocol)
from benchmarks.common import DEFAULT_DATA, prepare_encoding, start_run  # noqa: E402

MODEL = "mobilenetv2-seed"
ENCODING = "window"
RECIPE = "small-data"
PREDICT_AUDIO_S = 60.0
PREDICT_FILE = "predict-60s.flac"
PREDICT_JSON = "predict_speed.json"


def frontend_names(text: str) -> list[str]:
    """``--frontends``: comma-separated types, each known, in the given order."""
    from birdspec.config import FRONTENDS

    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in FRONTENDS]
    if bad or not names:
        raise SystemExit(f"bad --frontends {bad or text!r}; choose from {', '.join(FRONTENDS)}")
    return names


def train_config(frontend: str, *, epochs: int | None = None, device: str = "cpu", seed: int = 0):
    """The row's TrainConfig: the ``small-data`` recipe with ``frontend`` and its default settings."""
    from birdspec.training import TrainConfig

    extra = {"epochs": epochs} if epochs else {}
    return TrainConfig.from_recipe(RECIPE, encoding=ENCODING, model=MODEL, frontend=frontend, device=device,
                                   seed=seed, progress_bar=False, **extra)


def input_shape(cfg, dataset_frontend, window_samples: int) -> tuple[int, int]:
    """(rows, frames) of one 5 s window's spectrogram for ``cfg``'s type on a dataset with these settings."""
    fe = cfg.frontend_config(dataset_frontend)
    return fe.num_bins(), fe.num_frames(window_samples)


def cv_dir(out: Path, frontend: str, seed: int) -> Path:
    return out / (frontend if seed == 0 else f"{frontend}-seed{seed}")


def best_two(rows: list[dict]) -> list[str]:
    """The two best types of the first seed: most correct recordings, then macro F1 (the test folds' scores)."""
    first = [r for r in rows if r["seed"] == min(x["seed"] for x in rows)]
    ranked = sorted(first, key=lambda r: (-r["correct"], -(r["macro_f1_mean"] or 0.0)))
    return [r["frontend"] for r in ranked[:2]]


def make_predict_audio(ds: Path, dest: Path, seconds: float = PREDICT_AUDIO_S) -> Path:
    """A ``seconds`` s 32 kHz 16-bit FLAC of reed-warbler recordings (prepared waveforms, manifest order)."""
    import numpy as np
    import soundfile as sf

    from birdspec.data.prepared import PreparedDataset

    if dest.is_file():
        return dest
    data = PreparedDataset(ds)
    need = round(seconds * data.sample_rate_hz)
    pieces, have = [], 0
    for row in range(len(data.manifest)):
        wave = np.asarray(data.waveform(row), dtype=np.float32).reshape(-1)
        pieces.append(wave[: need - have])
        have += pieces[-1].size
        if have >= need:
            break
    wave = np.concatenate(pieces)
    if wave.size < need:
        raise SystemExit(f"{ds}: only {wave.size / data.sample_rate_hz:.1f} s of audio for the speed file")
    peak = float(np.abs(wave).max()) or 1.0
    tmp = dest.with_suffix(".tmp.flac")
    sf.write(tmp, np.clip(wave / max(peak, 1.0), -1, 1), data.sample_rate_hz, subtype="PCM_16")
    tmp.replace(dest)
    return dest


def predict_speed(checkpoint: Path, audio: Path, *, seconds: float, repeats: int, cache_dir: Path) -> dict:
    """Real-time factor of ``Predictor(checkpoint).predict_file(audio)`` on the CPU (best of ``repeats``)."""
    from birdspec.prediction.predictor import Predictor

    with Predictor(checkpoint, device="cpu", cache_dir=cache_dir) as pred:
        pred.predict_file(audio)  # untimed: exports the checkpoint, warms the caches
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            pred.predict_file(audio)
            times.append(time.perf_counter() - t0)
        backend = pred.backend
    best = min(times)
    return {"checkpoint": str(checkpoint), "audio_s": seconds, "backend": backend, "best_s": round(best, 4),
            "times_s": [round(t, 4) for t in times], "rtf": round(seconds / best, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def run_frontend(ds: Path, out: Path, frontend: str, *, epochs: int | None, folds: list[int] | None, device: str,
                 seed: int, predict_audio: Path | None, repeats: int, remeasure: bool) -> dict:
    from birdspec.data.prepared import PreparedDataset
    from birdspec.experiments.cv import run_cv
    from birdspec.models.checkpoint import resolve_checkpoint_path

    cfg = train_config(frontend, epochs=epochs, device=device, seed=seed)
    where = cv_dir(out, frontend, seed)
    t0 = time.perf_counter()
    result = run_cv(ds, where, cfg, fixed_epochs=fixed_epochs(RECIPE), folds=folds)
    row = cv_row(f"{MODEL} / {ENCODING} / {RECIPE} / {frontend}", MODEL, ENCODING, RECIPE, result.summary,
                 time.perf_counter() - t0)
    data = PreparedDataset(ds)
    rows_, frames = input_shape(cfg, data.frontend, round(data.encoding.window_s * data.sample_rate_hz))
    row.update({"frontend": frontend, "seed": seed, "rows": rows_, "frames": frames,
                "folds": [f["fold"] for f in result.summary["folds"]], "cv_dir": str(where), "predict": None})
    if predict_audio is not None:
        cached = where / PREDICT_JSON
        if cached.is_file() and not remeasure:
            row["predict"] = json.loads(cached.read_text())
        else:
            ckpt = resolve_checkpoint_path(where / f"fold_{row['folds'][0]}", which="last")
            try:
                row["predict"] = predict_speed(ckpt, predict_audio, seconds=PREDICT_AUDIO_S, repeats=repeats,
                                               cache_dir=out / "export-cache")
                cached.write_text(json.dumps(row["predict"], indent=2))
            except Exception as exc:  # a speed failure must not lose the accuracy row
                logging.getLogger(__name__).exception("prediction speed of %s failed", frontend)
                row["predict"] = {"error": f"{type(exc).__name__}: {exc}"}
    return row


def markdown(rows: list[dict], pending: list[str] = ()) -> str:
    def pm(mean, std):
        return "-" if mean is None else (f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}")

    def rtf(p):
        if not p:
            return "-"
        return f"failed ({p['error']})" if "error" in p else f"{p['rtf']:.0f}x ({p['backend']})"

    lines = [
        ("| spectrogram type | rows x frames (5 s) | seed | epochs | recording accuracy | macro F1 | correct | "
         "training time (min) | predict, 60 s on the CPU (x real time) |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['frontend']} | {r['rows']} x {r['frames']} | {r['seed']} | {r['epochs'] or '-'} | "
            f"{pm(r['accuracy_mean'], r['accuracy_std'])} | {pm(r['macro_f1_mean'], r['macro_f1_std'])} | "
            f"{r['correct']}/{r['total']} | {r['train_time_min']} | {rtf(r.get('predict'))} |"
        )
    for name in pending:
        lines.append(f"| {name} | - | - | - | pending | pending | pending | pending | pending |")
    return "\n".join(lines)


def _write(out: Path, machine: str, root: Path, rows: list[dict], pending: list[str]) -> None:
    """frontends.json and frontends.md, rewritten after every type (partial results survive)."""
    (out / "frontends.json").write_text(json.dumps(
        {"machine": machine, "data": str(root), "model": MODEL, "encoding": ENCODING, "recipe": RECIPE,
         "rows": rows, "pending": list(pending)}, indent=2))
    (out / "frontends.md").write_text(f"Machine: {machine}\n\n{markdown(rows, pending)}\n")


def main(argv: list[str] | None = None) -> int:
    from birdspec.config import FRONTENDS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="a BirdCLEF-2021-format folder")
    p.add_argument("--out", default="bench-out/frontends", help="work and output folder")
    p.add_argument("--frontends", default=",".join(FRONTENDS), help=f"types, in this order (default: {','.join(FRONTENDS)})")
    p.add_argument("--epochs", type=int, help="epochs per fold (default: the small-data recipe's, 20)")
    p.add_argument("--folds", help="a subset of the 5 folds, e.g. 0,1 (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--second-seed", type=int, nargs="?", const=1, metavar="SEED",
                   help="afterwards, run the two best types again with SEED (default 1) and report both")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-predict", action="store_true", help="skip the prediction-speed column")
    p.add_argument("--predict-repeats", type=int, default=3, help="timed predict_file calls (the best counts)")
    p.add_argument("--remeasure", action="store_true", help="time prediction again for types measured earlier")
    args = p.parse_args(argv)
    names = frontend_names(args.frontends)
    folds = [int(f) for f in args.folds.split(",") if f.strip()] if args.folds else None
    if args.second_seed is not None and args.second_seed == args.seed:
        raise SystemExit("--second-seed must differ from --seed")
    root, out, device, machine = start_run(args.data, args.out, args.device)
    ds = prepare_encoding(root, out, ENCODING)
    print(f"spectrogram-type benchmark on {root} ({machine}), folds verified against the protocol", flush=True)
    audio = None if args.no_predict else make_predict_audio(ds, out / PREDICT_FILE)

    plan = [(n, args.seed) for n in names]
    rows: list[dict] = []
    common = {"epochs": args.epochs, "folds": folds, "device": device, "predict_audio": audio,
              "repeats": args.predict_repeats, "remeasure": args.remeasure}
    for i, (name, seed) in enumerate(plan):
        _write(out, machine, root, rows, [n for n, _ in plan[i:]])
        rows.append(run_frontend(ds, out, name, seed=seed, **common))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    _write(out, machine, root, rows, [])
    if args.second_seed is not None:
        for name in best_two(rows):
            rows.append(run_frontend(ds, out, name, seed=args.second_seed, **common))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
            _write(out, machine, root, rows, [])
    print()
    print(f"Machine: {machine}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
