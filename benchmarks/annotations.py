"""Is annotating soundscapes worth it? Focal recordings only vs focal + annotated soundscapes vs BirdNET as it is.

    python benchmarks/annotations.py [BIRDCLEF_DIR] [--out bench-out/annotations] [--folds 0,1,2,3,4]
        [--variants focal,annotated,birdnet] [--epochs N] [--count 6] [--duration-s 60] [--device auto]
        [--birdnet-checkpoint PATH] [--annotated-epochs equal|N] [--soundscapes-out bench-out/soundscapes]

Protocol (the reed warblers; data, folds and soundscapes exactly as benchmarks/soundscapes.py makes them):
- data and folds: the window-encoding dataset of benchmarks/accuracy.py (``prepare --folds 5 --seed 0``);
  for every fold k, ``--count`` synthetic soundscapes of ``--duration-s`` mixed from fold k's recordings only
  over the even-numbered files of ../shared/data/recordings (:func:`soundscapes.make_all_soundscapes`);
- annotations: each soundscape's ``calls.csv`` rows written as a Raven selection table
  (``<stem>.Table.1.selections.txt``: Begin/End Time, Low/High Freq 0-16000 Hz, Species = eBird code, Common
  Name, Scientific Name), one folder per fold. ``birdspec prepare SOUNDSCAPES --annotations TABLES --complete``
  labels their 5 s windows with the truth's own rule (a call overlapping a window by >= 0.5 s,
  ``--min-overlap-fraction 0``) and writes their unannotated time as no-bird audio;
- one training set: a CSV manifest of the focal recordings (whole, their folds) and the annotated soundscape
  windows (the fold of their soundscape), prepared with ``--fold-column fold``; every fold k trains on folds
  != k with the ``small-data`` recipe (mobilenetv2-seed, last.pt scored, thresholds on the training rows):
  ``focal``: the training folds' focal recordings only (as soundscapes.py's ``default``);
  ``annotated``: the same plus the training folds' annotated soundscape windows (strong labels; several
  species in a window: the one with most overlap is the label) and, as ``--background``, their no-bird stretches;
  ``annotated-windows`` (optional): the windows without the no-bird audio (what the labels alone do);
  ``birdnet``: BirdNET as it is (``birdnet-closed``, its sigmoid confidence, its default 0.1 as the stored
  threshold; trained once on fold 0's split, it learns nothing; ``--birdnet-checkpoint`` reuses one);
- scoring on fold k's soundscapes: ``birdspec evaluate-detections`` of the model's detections at its stored
  thresholds against fold k's Raven tables (window precision/recall/F1, event recall, false detections per hour)
  and of all its scores (mean AP); ``birdspec score-soundscapes`` row-wise micro F1 at the stored thresholds
  and at one threshold tuned on the training folds' soundscapes (as soundscapes.py).

Budget: the ``small-data`` recipe draws 8 crops per manifest row and epoch, and each annotated soundscape window
is a row, so 20 epochs on focal + annotated rows is about 4x the training steps of focal only. By default the
annotated run gets the focal run's number of training samples (``--annotated-epochs equal``: the recipe's epochs
x focal rows / all training rows, at least 1), so the comparison is at equal training time; ``--annotated-epochs
20`` gives it the recipe's full budget. ``--soundscapes-out`` (a benchmarks/soundscapes.py output folder) reuses
its soundscapes and its ``default`` fold models as the focal-only models: same data, folds, recipe and seed.

The question's answer is the paired per-fold difference annotated - focal of the window F1 and the row-wise F1
against its spread over the folds (:func:`verdict`). Writes OUT/annotations.json and OUT/annotations.md;
re-running resumes (datasets and soundscapes are reused, runs resume, a fold with ``annotation_result.json``
is not scored again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import DEFAULT_DATA, prepare_encoding, start_run  # noqa: E402
from benchmarks.soundscapes import MODEL, THRESHOLDS, birdspec, make_all_soundscapes, split_backgrounds  # noqa: E402

VARIANTS = {  # name: (description, model)
    "focal": ("focal recordings only", MODEL),
    "annotated": ("focal + annotated soundscapes (windows and their no-bird audio)", MODEL),
    "annotated-windows": ("focal + annotated soundscape windows (no no-bird audio)", MODEL),
    "birdnet": ("BirdNET as it is (sigmoid confidence, 0.1)", "birdnet-closed"),
}
DEFAULT_VARIANTS = ("focal", "annotated", "birdnet")
BIRDNET_CONF = 0.1
"""BirdNET's own default confidence: its stored threshold here."""
RESULT = "annotation_result.json"
OVERLAP = ("--min-overlap-s", "0.5", "--min-overlap-fraction", "0")
"""The soundscape truth's rule (a call labels a window it overlaps by >= 0.5 s), for labels and scores alike."""


def write_tables(ds: Path, scapes: dict[int, Path], out: Path) -> dict[int, Path]:
    """Every soundscape's calls.csv as a Raven selection table, one folder per fold."""
    from birdspec.data.prepared import PreparedDataset

    info = {c["label"]: c for c in PreparedDataset(ds).meta["class_info"]}
    dirs = {}
    for k, d in scapes.items():
        folder = out / "annotations" / f"fold{k}"
        folder.mkdir(parents=True, exist_ok=True)
        calls = pd.read_csv(d / "calls.csv")
        for stem in sorted(p.stem for p in (d / "audio").glob("*.flac")):
            g = calls[calls["audio_id"] == stem]
            table = pd.DataFrame({"Selection": np.arange(1, len(g) + 1), "View": "Spectrogram 1", "Channel": 1,
                                  "Begin Time (s)": g["start_s"].round(6), "End Time (s)": g["end_s"].round(6),
                                  "Low Freq (Hz)": 0, "High Freq (Hz)": 16000, "Species": g["label"],
                                  "Common Name": g["label"].map(lambda c: info[c]["common_name"]),
                                  "Scientific Name": g["label"].map(lambda c: info[c]["scientific_name"])})
            path = folder / f"{stem}.Table.1.selections.txt"
            if not path.is_file():
                table.to_csv(path, sep="\t", index=False)
        dirs[k] = folder
    return dirs


def prepare_annotated(out: Path, recordings: Path, tables: dict[int, Path]) -> tuple[Path, dict]:
    """``prepare --annotations --complete`` of every fold's soundscapes; (dataset, its speed)."""
    from birdspec.fileio import read_json, write_json

    ds, note = out / "data-annotated", out / "data-annotated.speed.json"
    fresh = not (ds / "dataset.json").is_file()
    t0 = time.perf_counter()
    birdspec("prepare", str(recordings), "--annotations", *map(str, tables.values()), "--out", str(ds),
             "--complete", *OVERLAP, "--workers", "2", "--no-progress")
    seconds = time.perf_counter() - t0
    speed = read_json(note) or {}
    if fresh:  # measured when it is made, not when a rerun reuses it
        meta = json.loads((ds / "dataset.json").read_text())["annotations"]
        speed = {"annotated_s": meta["annotated_s"], "wall_s": round(seconds, 2), "workers": 2,
                 "command": "birdspec prepare (the whole command: start-up, tables, decoding, no-bird audio)",
                 "x_real_time": round(meta["annotated_s"] / seconds, 1)}
        write_json(note, speed)
    return ds, speed


def _fold_of(name: str) -> int:
    return int(str(name).split("/")[0].removeprefix("fold"))


def prepare_combined(focal: Path, annotated: Path, out: Path) -> Path:
    """One dataset of the focal recordings (whole) and the annotated windows, folds kept (``origin`` column)."""
    f = pd.read_csv(focal / "manifest.csv", dtype={"filename": str})
    a = pd.read_csv(annotated / "manifest.csv", dtype={"filename": str})
    rows = pd.concat([
        pd.DataFrame({"path": f["source_path"], "label": f["label"], "secondary_labels": f["secondary_labels"],
                      "scientific_name": f["scientific_name"], "common_name": f["common_name"], "start_s": 0.0,
                      "end_s": f["duration_s"], "fold": f["fold"], "origin": "focal"}),
        pd.DataFrame({"path": a["source_path"], "label": a["label"], "secondary_labels": a["secondary_labels"],
                      "scientific_name": a["scientific_name"], "common_name": a["common_name"], "start_s": a["start_s"],
                      "end_s": a["end_s"], "fold": a["filename"].map(_fold_of), "origin": "soundscape"}),
    ], ignore_index=True)
    csv = out / "combined.csv"
    if not csv.is_file():  # written once: delete OUT (or this file and data-combined) to start over
        rows.to_csv(csv, index=False)
    ds = out / "data-combined"
    birdspec("prepare", str(csv), "--out", str(ds), "--encoding", "window", "--short-policy", "tile",
             "--fold-column", "fold", "--workers", "2", "--no-progress")
    return ds


def nobird_folder(annotated: Path, out: Path, k: int) -> Path:
    """The training folds' no-bird stretches (links), the --background of fold k's annotated run."""
    table = pd.read_csv(annotated / "nobird.csv")
    folder = out / "nobird" / f"train_fold{k}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, file in zip(table["filename"], table["file"], strict=True):
        if _fold_of(name) != k and not (folder / Path(file).name).exists():
            os.symlink((annotated / file).resolve(), folder / Path(file).name)
    return folder


def train_run(ds: Path, run: Path, variant: str, k: int, *, device: str, seed: int, epochs: int | None,
              background: Path | None) -> Path:
    from birdspec.data.prepared import PreparedDataset
    from birdspec.training import TrainConfig, train
    from birdspec.training.rundir import is_finished, is_started

    if VARIANTS[variant][1] == "birdnet-closed":
        cfg = TrainConfig(model="birdnet-closed", epochs=1, device="cpu", workers=0, seed=seed, progress_bar=False,
                          thresholds_on="train", nocall_fraction=0.0)
    else:
        cfg = TrainConfig.from_recipe("small-data", model=MODEL, device=device, seed=seed, progress_bar=False,
                                      thresholds_on="train", **({"epochs": epochs} if epochs else {}),
                                      **({"background_dir": str(background)} if background else {}))
    data = PreparedDataset(ds)
    m = data.manifest
    focal_only = variant in ("focal", "birdnet") and "origin" in m
    keep = (m["origin"] == "focal").to_numpy() if focal_only else np.ones(len(m), dtype=bool)
    if not is_finished(run):
        if is_started(run):
            train(ds, run, cfg, resume=True)
        else:  # fixed epoch budget: the held-out fold is only monitored
            train(ds, run, cfg, rows_train=np.flatnonzero(keep & (m["fold"] != k).to_numpy()),
                  rows_val=np.flatnonzero(keep & (m["fold"] == k).to_numpy()))
    return run / "checkpoints" / "last.pt"


def annotated_epochs(ds: Path, k: int, choice: str, epochs: int | None) -> int:
    """Epochs of an annotated run: ``choice`` N, or 'equal': as many training samples as the focal run's
    (the recipe draws the same crops per row, so epochs x focal rows / all rows of the training folds)."""
    from birdspec.training.recipes import get_recipe

    budget = epochs or int(get_recipe("small-data").settings["epochs"])
    if choice != "equal":
        return int(choice)
    m = pd.read_csv(ds / "manifest.csv", usecols=["origin", "fold"])
    train = m[m["fold"] != k]
    return max(1, round(budget * int((train["origin"] == "focal").sum()) / len(train)))


def reused_focal(run: Path, *, seed: int, epochs: int | None) -> Path:
    """The last.pt of a finished soundscapes.py ``default`` run, after checking it is the focal-only protocol."""
    from birdspec.training.recipes import get_recipe
    from birdspec.training.rundir import is_finished, read_run_config

    cfg = read_run_config(run)["train_config"]
    want = {"model": MODEL, "recipe": "small-data", "seed": seed, "thresholds_on": "train", "background_dir": None,
            "synthetic_calls": False, "epochs": epochs or int(get_recipe("small-data").settings["epochs"])}
    differs = {key: (cfg.get(key), value) for key, value in want.items() if cfg.get(key) != value}
    if differs or not is_finished(run):
        raise SystemExit(f"{run} is not a finished focal-only run of this protocol (differs: {differs})")
    return run / "checkpoints" / "last.pt"


def evaluate(det: Path, tables: Path, audio: Path, out: Path, *extra: str) -> dict:
    """``birdspec evaluate-detections``: its summary and per-species rows."""
    birdspec("evaluate-detections", str(det), str(tables), "--recordings", str(audio), "--out", str(out), *OVERLAP, *extra)
    summary = json.loads((out / "detection_summary.json").read_text())
    per = pd.read_csv(out / "detection_metrics.csv")
    return {**{key: summary[key] for key in ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "mean_ap",
                                              "event_recall", "false_per_hour", "threshold")},
            "per_species": per.set_index("species")[["f1", "ap", "event_recall"]].round(4).to_dict("index")}


def score_fold(ckpt: Path, run: Path, k: int, scapes: dict[int, Path], tables: dict[int, Path], device: str,
               birdnet: bool, scores_dir: Path) -> dict:
    from birdspec.evaluation.scoring import read_truth, score_soundscapes

    extra = ("--activation", "sigmoid", "--device", "cpu") if birdnet else ("--device", device)
    stored = ("--min-conf", f"{BIRDNET_CONF:g}") if birdnet else ()
    scores = {}
    for j, d in scapes.items():  # every fold's scores: the tuned threshold comes from the training folds'
        path = scores_dir / f"scores_fold{j}.csv"
        if not path.is_file():
            birdspec("predict", str(ckpt), str(d / "audio"), "--top-k", "0", "--min-conf", "0", *extra, "--out", str(path))
        scores[j] = path
    others = [j for j in scapes if j != k]
    truth_other = {r: b for j in others for r, b in read_truth(scapes[j] / "truth.csv").items()}
    tuned = score_soundscapes(pd.concat([pd.read_csv(scores[j]) for j in others], ignore_index=True), truth_other,
                              thresholds=THRESHOLDS)
    threshold = float(tuned.threshold)
    audio, truth = scapes[k] / "audio", scapes[k] / "truth.csv"
    subs = {}
    for name, conf in (("tuned", ("--min-conf", f"{threshold:g}")), ("stored", stored)):
        subs[name] = run / f"submission_{name}_fold{k}.csv"
        birdspec("predict", str(ckpt), str(audio), "--format", "birdclef", "--top-k", "0", *conf, *extra,
                 "--out", str(subs[name]))
    det = run / f"detections_stored_fold{k}.csv"
    birdspec("predict", str(ckpt), str(audio), "--top-k", "0", *stored, *extra, "--out", str(det))
    return {"fold": k, "threshold_tuned": threshold,
            "row_f1_stored": score_soundscapes(subs["stored"], truth).f1,
            "row_f1_tuned": score_soundscapes(subs["tuned"], truth).f1,
            "score_soundscapes_cli": birdspec("score-soundscapes", str(subs["stored"]), str(truth)).strip(),
            "stored": evaluate(det, tables[k], audio, run / f"eval_stored_fold{k}"),
            "all_scores": evaluate(scores[k], tables[k], audio, run / f"eval_all_fold{k}", "--threshold", f"{threshold:g}")}


def _pm(values) -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not vals:
        return "-"
    return f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")


def markdown(rows: list[dict]) -> str:
    lines = ["| variant | folds | window F1, stored thresholds | precision | recall | event recall | false detections / h "
             "| mean AP | row-wise micro F1, stored | row-wise micro F1, tuned on train folds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        s = [r["stored"] for r in rs]
        lines.append(f"| {VARIANTS[name][0]} | {len(rs)} | {_pm(x['micro_f1'] for x in s)} | "
                     f"{_pm(x['micro_precision'] for x in s)} | {_pm(x['micro_recall'] for x in s)} | "
                     f"{_pm(x['event_recall'] for x in s)} | {_pm(x['false_per_hour'] for x in s)} | "
                     f"{_pm(r['all_scores']['mean_ap'] for r in rs)} | {_pm(r['row_f1_stored'] for r in rs)} | "
                     f"{_pm(r['row_f1_tuned'] for r in rs)} |")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """Annotated - focal, paired by fold, against the spread of those differences."""
    by = {(r["variant"], r["fold"]): r for r in rows}
    folds = sorted(f for v, f in by if v == "focal" and ("annotated", f) in by)
    if not folds:
        return "No fold has both the focal and the annotated model yet."
    out = []
    for label, get in (("window F1 at the stored thresholds", lambda r: r["stored"]["micro_f1"]),
                       ("row-wise micro F1 at the stored thresholds", lambda r: r["row_f1_stored"])):
        d = np.array([get(by[("annotated", f)]) - get(by[("focal", f)]) for f in folds], dtype=float)
        each = ", ".join(f"{x:+.3f}" for x in d)
        if len(d) < 2:
            out.append(f"Annotated soundscapes change the {label} by {d.mean():+.3f} on one fold: no fold spread to "
                       "compare with yet.")
            continue
        spread = float(np.std(d, ddof=1))
        call = "more" if d.mean() > spread else "not more"
        out.append(f"Annotated soundscapes change the {label} by {d.mean():+.3f} (per fold {each}; spread {spread:.3f}): "
                   f"{call} than the fold spread.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="bench-out/annotations")
    p.add_argument("--folds", default="0,1,2,3,4", help="test folds to run (soundscapes are made for all five)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--epochs", type=int, help="override the small-data recipe's epoch budget (quick checks)")
    p.add_argument("--count", type=int, default=6, help="soundscapes per fold")
    p.add_argument("--duration-s", type=float, default=60.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--birdnet-checkpoint", help="a birdnet-closed checkpoint of the four species to reuse")
    p.add_argument("--annotated-epochs", default="equal",
                   help="epochs of the annotated runs: 'equal' (as many training samples as the focal run) or N")
    p.add_argument("--soundscapes-out", help="a benchmarks/soundscapes.py output: reuse its soundscapes and its "
                   "'default' fold models as the focal-only models")
    args = p.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; use {', '.join(VARIANTS)}")
    root, out, device, machine = start_run(args.data, args.out, args.device)
    from birdspec.fileio import read_json, write_json

    focal = prepare_encoding(root, out, "window")
    scape_bg, _ = split_backgrounds(out)
    source = Path(args.soundscapes_out) if args.soundscapes_out else out
    scapes = make_all_soundscapes(focal, source, list(range(5)), count=args.count, duration_s=args.duration_s,
                                  bg=scape_bg)
    reused = source / "runs" / "default" if args.soundscapes_out else None
    tables = write_tables(focal, scapes, out)
    annotated, speed = prepare_annotated(out, source / "soundscapes", tables)
    combined = prepare_combined(focal, annotated, out)
    if speed:
        print(f"prepare --annotations: {speed['annotated_s'] / 60:.0f} min of soundscapes in {speed['wall_s']} s "
              f"({speed['x_real_time']}x real time, whole command)", flush=True)
    rows = []
    for k in [int(f) for f in args.folds.split(",") if f]:  # fold by fold: paired rows arrive together
        for variant in variants:
            run = out / "runs" / variant / f"fold_{k}"
            result = read_json(run / RESULT)
            if result is None:
                birdnet = VARIANTS[variant][1] == "birdnet-closed"
                epochs = args.epochs
                if birdnet:
                    ckpt = Path(args.birdnet_checkpoint) if args.birdnet_checkpoint else _birdnet(focal, out, args.seed)
                elif variant == "focal" and reused is not None and (reused / f"fold_{k}").is_dir():
                    ckpt = reused_focal(reused / f"fold_{k}", seed=args.seed, epochs=args.epochs)
                else:
                    bg = nobird_folder(annotated, out, k) if variant == "annotated" else None
                    if variant != "focal":
                        epochs = annotated_epochs(combined, k, args.annotated_epochs, args.epochs)
                    ckpt = train_run(combined, run, variant, k, device=device, seed=args.seed, epochs=epochs,
                                     background=bg)
                run.mkdir(parents=True, exist_ok=True)
                result = {"variant": variant, "epochs": epochs, "model": str(ckpt),
                          **score_fold(ckpt, run, k, scapes, tables, device, birdnet, run.parent if birdnet else run)}
                write_json(run / RESULT, result)
            rows.append(result)
            print(f"{variant} fold {k}: window F1 {result['stored']['micro_f1']:.3f} (stored thresholds), mean AP "
                  f"{result['all_scores']['mean_ap']:.3f}, row-wise F1 {result['row_f1_stored']:.3f}", flush=True)
            write_json(out / "annotations.json", {"machine": machine, "data": str(root), "prepare": speed, "rows": rows})
            (out / "annotations.md").write_text(f"Machine: {machine}\n\n{markdown(rows)}\n\n{verdict(rows)}\n")
    print()
    print(markdown(rows))
    print()
    print(verdict(rows))
    return 0


def _birdnet(focal: Path, out: Path, seed: int) -> Path:
    """BirdNET's own classifier over the four species (embeds the focal dataset once; learns nothing)."""
    from birdspec.birdnet.backend import birdnet_available
    from birdspec.data.embed import embed_dataset

    if not birdnet_available():
        raise SystemExit("the birdnet variant needs pip install 'birdspec[birdnet]' (or --birdnet-checkpoint)")
    embed_dataset(focal, progress=False)
    return train_run(focal, out / "runs" / "birdnet" / "model", "birdnet", 0, device="cpu", seed=seed, epochs=None,
                     background=None)


if __name__ == "__main__":
    sys.exit(main())
