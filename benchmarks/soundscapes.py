"""Soundscape benchmark: BirdCLEF-style scoring on synthetic soundscapes with known truth (the reed warblers).

    python benchmarks/soundscapes.py [BIRDCLEF_DIR] [--out bench-out/soundscapes] [--folds 0,1,2,3,4]
        [--variants single,multi-nocall,...,birdnet] [--epochs N] [--count 6] [--duration-s 60] [--device auto]

Protocol (fixed, so the numbers compare across machines):
- data and folds: as benchmarks/accuracy.py (window encoding, ``prepare --folds 5 --seed 0``, checked
  against ``StratifiedKFold(5, shuffle=True, random_state=0)`` on the primary labels);
- soundscapes: for every fold k, ``--count`` soundscapes of ``--duration-s`` mixed from fold k's recordings
  only (:mod:`birdspec.data.soundscape`, seed 0: calls of 2-8 s at SNR -5..+20 dB, 30 % overlapping,
  gaps 0-10 s) over the even-numbered (sorted) files of ../shared/data/recordings; the odd-numbered
  files are the only backgrounds the training sees (``--background`` / ``--background-mix``), so no
  background audio is shared between training and test;
- every fold k trains on the other four folds with the ``small-data`` recipe (mobilenetv2-seed, its fixed
  epoch budget unless ``--epochs``; the held-out fold is only monitored, ``last.pt`` is scored; its
  detection thresholds are chosen on the training folds, in-sample, as ``cv --fixed-epochs`` does);
- scoring, two ways: (1) **stored thresholds**: the test fold is predicted with ``birdspec predict --format
  birdclef`` at the model's own per-class thresholds (what a user gets; BirdNET as it is at its default
  confidence, 0.1); (2) **tuned**: every fold's soundscapes are predicted (``--top-k 0 --min-conf 0``), one
  threshold (:data:`THRESHOLDS`, 0.001 to 0.95) is the best row-wise micro F1 on the *training folds'*
  soundscapes (``score_soundscapes``), and the test fold is predicted at it. Both are scored with ``birdspec
  score-soundscapes`` (row-wise micro F1, ``nocall`` a label); cmAP and LRAP of the test fold's window scores
  against the truth (:mod:`birdspec.evaluation.multilabel`, over the classes with a positive); and the same
  checkpoint's recording accuracy on the held-out fold's recordings (the reed warbler CV's score);
- variants (:data:`VARIANTS`, default :data:`DEFAULT_VARIANTS`): birdspec's defaults (the level-aware input,
  no-bird samples: quiet stretches and built-in synthetic backgrounds; crops where the calls are), the same
  with the band input (which part the input contributes), the closed-world model of before (band input, no
  no-bird samples), optionally the defaults plus the training backgrounds (``default-bg``) or with crops
  anywhere (``default-crops-anywhere``: ``--crop-rule anywhere``, the defaults before 2026-12-07) or with
  the no-bird audio also mixed under training samples (``default-mix``: ``--mix-nocall``) or multi-label
  (``default-multi``: ``--labels multi``); with
  ``pip install 'birdspec[birdnet]'`` also the ``birdnet-linear`` and ``birdnet-prior`` heads with their
  defaults (no-bird samples from ``embed``) for 30 epochs as benchmarks/few_shot.py (optionally
  ``birdnet-prior-multi``: ``--labels multi``), and BirdNET itself as the reference (``birdnet-closed``: its
  own classifier over the four species, scored with its own sigmoid confidence).

For context only: the BirdCLEF 2021 winning private score was 0.69 row-wise micro F1, on real soundscapes
with 397 candidate species; these synthetic 4-species soundscapes are a different task.

A second table breaks the submissions down (:func:`breakdown`, pooled over the folds): recall of the true
(window, species) pairs per SNR range of their loudest call, the share of no-bird windows answered
``nocall``, and wrong labels per window.

Writes OUT/soundscapes.json and OUT/soundscapes.md. Re-running resumes: a fold whose
``soundscape_result.json`` exists is not trained or scored again (delete it, or OUT, to start over).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import DEFAULT_DATA, prepare_encoding, start_run  # noqa: E402
from birdspec.evaluation.scoring import parse_thresholds  # noqa: E402
from birdspec.formats import DEFAULT_THRESHOLDS  # noqa: E402

RECORDINGS = DEFAULT_DATA.parent / "recordings"
MODEL = "mobilenetv2-seed"
HEAD_EPOCHS = 30
VARIANTS = {  # name: (description, model, TrainConfig fields, extra predict arguments)
    # the defaults of the installed birdspec; benchmarks/results keeps earlier defaults' folds apart
    # (runs/default-before-chorus: before the synthetic chorus kind joined the no-bird backgrounds;
    # runs/default-crops-anywhere: before the small-data recipe's crops went where the calls are)
    "default": ("birdspec's defaults: level input, no-bird samples, crops where the calls are", MODEL, {}, ()),
    "default-calls": ("defaults + synthetic other calls as no-bird samples (--synthetic-calls)", MODEL,
                      {"synthetic_calls": True}, ()),
    "default-crops-anywhere": ("defaults with crops anywhere (--crop-rule anywhere: the defaults before 2026-12-07)", MODEL,
                               {"crop_rule": "anywhere"}, ()),
    "default-band": ("no-bird samples, band input (not level-aware)", MODEL, {"input_norm": "band"}, ()),
    "closed": ("closed-world: band input, no no-bird samples (before)", MODEL, {"input_norm": "band", "nocall_fraction": 0.0}, ()),
    "default-bg": ("defaults + the training backgrounds (--background)", MODEL, {"background_dir": "TRAIN_BG"}, ()),
    "default-multi": ("multi-label (--labels multi: sigmoid, primary + secondary labels; no-bird samples all zeros)", MODEL,
                      {"labels": "multi"}, ()),
    "default-mix": ("defaults + no-bird audio mixed under half the training samples at 0-20 dB SNR (--mix-nocall)", MODEL,
                    {"mix_nocall": True}, ()),
    "birdnet-linear": ("birdspec's defaults (no-bird samples)", "birdnet-linear", {}, ()),
    "birdnet-prior": ("birdspec's defaults (no-bird samples)", "birdnet-prior", {}, ()),
    # a fixed L2-SP strength instead of the one inner validation picks (2026-12-07 evening; not adopted)
    **{f"birdnet-prior-wd{wd:g}": (f"a fixed pull toward BirdNET (--weight-decay {wd:g})", "birdnet-prior",
                                    {"weight_decay": wd}, ()) for wd in (10.0, 100.0, 1000.0)},
    "birdnet-prior-wd100-nocorr": ("--weight-decay 100, no linear correction on the pooled embeddings (--model-option correction=false)",
                                   "birdnet-prior", {"weight_decay": 100.0, "model_options": {"correction": False}}, ()),
    "birdnet-prior-multi": ("multi-label (--labels multi: sigmoid, primary + secondary labels; no-bird samples all zeros)",
                            "birdnet-prior", {"labels": "multi"}, ()),
    "birdnet": ("BirdNET as it is (reference; its sigmoid confidence, default 0.1)", "birdnet-closed", {"nocall_fraction": 0.0},
                ("--activation", "sigmoid")),
}
DEFAULT_VARIANTS = ("default", "default-calls", "default-band", "closed", "birdnet-linear", "birdnet-prior", "birdnet")
BIRDNET_DEFAULT_CONF = 0.1
"""BirdNET's own default confidence (birdnetlib's ``min_conf``): the "stored threshold" of the reference row."""
BIRDNET_VARIANTS = tuple(name for name, v in VARIANTS.items() if v[1].startswith("birdnet"))
RESULT = "soundscape_result.json"
THRESHOLDS = np.round(np.r_[0.001, 0.002, 0.005, 0.01:0.05:0.01, parse_thresholds(DEFAULT_THRESHOLDS)], 3)
"""Thresholds tried on the training folds' soundscapes: the CLI's 0.05-0.95 grid and 0.001-0.04 below it
(BirdNET's confidences on these quiet, overlapping calls are low: its best was at the edge of the
0.05-0.95 grid, then of a grid from 0.01)."""


def split_backgrounds(out: Path) -> tuple[Path, Path]:
    """Even-numbered recordings -> soundscape beds, odd-numbered -> training backgrounds (no overlap)."""
    from birdspec.audio import is_audio_file

    files = sorted(p for p in RECORDINGS.iterdir() if p.is_file() and is_audio_file(p))
    dirs = out / "backgrounds" / "soundscapes", out / "backgrounds" / "training"
    for i, f in enumerate(files):
        dest = dirs[i % 2] / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copyfile(f, dest)
    return dirs


def make_all_soundscapes(ds: Path, out: Path, folds: list[int], *, count: int, duration_s: float, bg: Path) -> dict[int, Path]:
    from birdspec.data.soundscape import TRUTH_FILE, SoundscapeConfig, make_soundscapes

    dirs = {}
    for k in folds:
        d = out / "soundscapes" / f"fold{k}"
        if not (d / TRUTH_FILE).is_file():
            make_soundscapes(ds, d, fold=k, count=count, config=SoundscapeConfig(duration_s=duration_s), background_dir=bg)
        dirs[k] = d
    return dirs


def birdspec(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "birdspec", "-q", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"birdspec {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def train_fold(ds: Path, run: Path, k: int, cfg) -> Path:
    from birdspec.data.prepared import PreparedDataset
    from birdspec.training import train
    from birdspec.training.rundir import is_finished, is_started

    data = PreparedDataset(ds)
    if not is_finished(run):
        if is_started(run):
            train(ds, run, cfg, resume=True)
        else:  # fixed epoch budget: the held-out fold is only monitored, last.pt is scored
            train(ds, run, cfg, rows_train=data.select(exclude_folds=[k]), rows_val=data.select(folds=[k]))
    return run / "checkpoints" / "last.pt"


def train_config(variant: str, *, train_bg: Path, device: str, seed: int, epochs: int | None):
    """The fold runs' TrainConfig: the small-data recipe for the CNN, 30 epochs on the CPU for BirdNET heads."""
    from birdspec.training import TrainConfig

    _, model, fields, _ = VARIANTS[variant]
    fields = {key: (str(train_bg) if v == "TRAIN_BG" else v) for key, v in fields.items()}
    # the validation rows of a fold run are its test fold (monitored only): thresholds on the training folds
    if model.startswith("birdnet"):
        return TrainConfig(model=model, epochs=epochs or HEAD_EPOCHS, device="cpu", workers=0, seed=seed,
                           progress_bar=False, thresholds_on="train", **fields)
    return TrainConfig.from_recipe("small-data", model=model, device=device, seed=seed, progress_bar=False,
                                   thresholds_on="train", **fields, **({"epochs": epochs} if epochs else {}))


def score_fold(ckpt: Path, run: Path, k: int, scapes: dict[int, Path], device: str, extra: tuple[str, ...] = (),
               scores_dir: Path | None = None) -> dict:
    """Threshold on the other folds' soundscapes, then the test fold's submission and scores. ``scores_dir``:
    where the window scores of every fold's soundscapes go (default ``run``; a model that trains nothing,
    BirdNET as it is, shares one folder across folds: its scores do not depend on the fold)."""
    from birdspec.evaluation.multilabel import multilabel_metrics
    from birdspec.evaluation.scoring import read_predictions, read_truth, score_soundscapes

    scores = {}
    for j, d in scapes.items():
        path = (scores_dir or run) / f"scores_fold{j}.csv"
        if not path.is_file():
            birdspec("predict", str(ckpt), str(d / "audio"), "--top-k", "0", "--min-conf", "0", "--device", device,
                     *extra, "--out", str(path))
        scores[j] = pd.read_csv(path)
    others = [j for j in scapes if j != k]
    truth_other = {r: b for j in others for r, b in read_truth(scapes[j] / "truth.csv").items()}
    tuned = score_soundscapes(pd.concat([scores[j] for j in others], ignore_index=True), truth_other,
                              thresholds=THRESHOLDS)
    threshold = float(tuned.threshold)
    sub = run / f"submission_fold{k}.csv"
    birdspec("predict", str(ckpt), str(scapes[k] / "audio"), "--format", "birdclef", "--top-k", "0",
             "--min-conf", f"{threshold:g}", "--device", device, *extra, "--out", str(sub))
    cli = birdspec("score-soundscapes", str(sub), str(scapes[k] / "truth.csv"))
    f1 = score_soundscapes(sub, scapes[k] / "truth.csv").f1
    stored = run / f"submission_stored_fold{k}.csv"  # the model's own thresholds (what `predict` does by default)
    own = ("--min-conf", f"{BIRDNET_DEFAULT_CONF:g}") if "--activation" in extra else ()
    birdspec("predict", str(ckpt), str(scapes[k] / "audio"), "--format", "birdclef", "--top-k", "0", *own,
             "--device", device, *extra, "--out", str(stored))
    f1_stored = score_soundscapes(stored, scapes[k] / "truth.csv").f1
    truth = read_truth(scapes[k] / "truth.csv")
    wide = read_predictions(scores[k]).reindex(list(truth), fill_value=0.0)
    classes = [str(c) for c in wide.columns]
    t = np.array([[int(c in truth[r]) for c in classes] for r in wide.index])
    ml = multilabel_metrics(t, wide.to_numpy(), threshold=threshold, classes=classes)
    return {"fold": k, "row_f1": f1, "threshold": threshold, "train_folds_f1": tuned.f1, "cmap": ml["cmap"],
            "lrap": ml["lrap"], "rows": len(truth), "nocall_rows": sum(1 for b in truth.values() if b == {"nocall"}),
            "row_f1_stored": f1_stored, "breakdown_stored": breakdown(stored, scapes[k]),
            **recording_accuracy(ckpt, k, run), "cli": cli.strip()}


def recording_accuracy(ckpt: Path, k: int, run: Path) -> dict:
    """The checkpoint's recording-level accuracy on its held-out fold (the reed warbler CV's score)."""
    from birdspec.data.prepared import PreparedDataset
    from birdspec.evaluation.evaluate import evaluate_checkpoint
    from birdspec.models.checkpoint import read_checkpoint

    data = PreparedDataset(read_checkpoint(ckpt).extra["dataset"])
    rec = evaluate_checkpoint(ckpt, data, rows=data.select(folds=[k]), out_dir=run / "eval_fold", split=f"fold {k}",
                              plots=False).metrics["recording"]
    return {"rec_correct": int(round(rec["accuracy"] * rec["n"])), "rec_total": int(rec["n"])}


SNR_BINS_DB = ((-5.0, 0.0), (0.0, 5.0), (5.0, 10.0), (10.0, 20.0))
"""SNR ranges of the breakdown table (the soundscapes place calls at -5 to +20 dB)."""


def breakdown(submission: Path, scape_dir: Path) -> dict:
    """Where a submission's F1 goes: recall of the true (window, species) pairs per SNR range of their
    loudest call, the share of no-bird windows answered ``nocall``, and wrong labels per window.

    The windows of each call in ``calls.csv`` come from :func:`birdspec.data.soundscape.truth_table` with
    the window length and overlap rule recorded in ``soundscapes.json``; the pairs are checked against
    ``truth.csv``.
    """
    from birdspec.data.soundscape import CALLS_FILE, SOUNDSCAPES_META_FILE, TRUTH_FILE, truth_table
    from birdspec.evaluation.scoring import read_predictions, read_truth
    from birdspec.fileio import read_json
    from birdspec.formats import NOCALL

    truth, predicted = read_truth(scape_dir / TRUTH_FILE), read_predictions(submission)
    calls, rule = pd.read_csv(scape_dir / CALLS_FILE), read_json(scape_dir / SOUNDSCAPES_META_FILE)["config"]
    table = pd.read_csv(scape_dir / TRUTH_FILE)
    durations_s = (table.groupby("audio_id")["seconds"].max()).astype(float).to_dict()
    loudest: dict[tuple[str, str], float] = {}
    for i in range(len(calls)):
        call = calls.iloc[[i]]
        windows = truth_table(call, {call["audio_id"].iat[0]: durations_s[call["audio_id"].iat[0]]},
                              window_s=rule["window_s"], min_overlap_s=rule["min_overlap_s"])
        for row_id in windows.loc[windows["birds"] != NOCALL, "row_id"]:
            key = (str(row_id), str(call["label"].iat[0]))
            loudest[key] = max(loudest.get(key, -np.inf), float(call["snr_db"].iat[0]))
    pairs = {(r, b) for r, birds in truth.items() for b in birds if b != NOCALL}
    if set(loudest) != pairs:
        raise SystemExit(f"{scape_dir}: calls.csv and truth.csv disagree on {len(set(loudest) ^ pairs)} pairs")
    out = {}
    for lo, hi in SNR_BINS_DB:
        keys = [key for key, snr in loudest.items() if lo <= snr < hi or (hi == SNR_BINS_DB[-1][1] and snr == hi)]
        out[f"recall_{lo:g}_{hi:g}_db"] = [sum(b in predicted.get(r, ()) for r, b in keys), len(keys)]
    quiet = [r for r, birds in truth.items() if birds == {NOCALL}]
    out["nocall_right"] = [sum(predicted.get(r) == {NOCALL} for r in quiet), len(quiet)]
    out["wrong_labels"] = [sum(len(predicted.get(r, frozenset()) - birds) for r, birds in truth.items()), len(truth)]
    return out


def breakdown_markdown(rows: list[dict]) -> str:
    """Pooled over the folds: recall per SNR range, no-bird windows answered nocall, wrong labels per window."""
    def pooled(rs: list[dict], key: str) -> str:
        hit, total = (sum(r["breakdown"][key][i] for r in rs) for i in (0, 1))
        return f"{hit / total:.2f} ({hit}/{total})" if total else "-"

    bins = [f"recall at {lo:+g}..{hi:+g} dB" for lo, hi in SNR_BINS_DB]
    lines = ["| variant | model | " + " | ".join(bins) + " | no-bird windows -> nocall | wrong labels per window |",
             "|---|---|" + "---|" * (len(bins) + 2)]
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name and "breakdown" in r]
        if not rs:
            continue
        cells = [pooled(rs, f"recall_{lo:g}_{hi:g}_db") for lo, hi in SNR_BINS_DB]
        wrong, windows = (sum(r["breakdown"]["wrong_labels"][i] for r in rs) for i in (0, 1))
        lines.append(f"| {VARIANTS[name][0]} | {VARIANTS[name][1]} | " + " | ".join(cells)
                     + f" | {pooled(rs, 'nocall_right')} | {wrong / windows:.2f} |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    def pm(values):
        vals = [v for v in values if v is not None]
        if not vals:
            return "-"
        return f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")

    def pooled(rs: list[dict], key: str) -> str:
        hit, total = (sum(r[key][i] for r in rs) for i in (0, 1)) if all(key in r for r in rs) else (0, 0)
        return f"{hit}/{total}" if total else "-"

    lines = ["| variant | model | folds | micro F1, stored thresholds | nocall (stored) | micro F1, threshold tuned on "
             "train folds' soundscapes | nocall (tuned) | cmAP | held-out recordings right |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        nocall_stored = pooled([r["breakdown_stored"] for r in rs if "breakdown_stored" in r], "nocall_right")
        nocall_tuned = pooled([r["breakdown"] for r in rs if "breakdown" in r], "nocall_right")
        right = (f"{sum(r['rec_correct'] for r in rs)}/{sum(r['rec_total'] for r in rs)}"
                 if all("rec_correct" in r for r in rs) else "-")
        lines.append(f"| {VARIANTS[name][0]} | {VARIANTS[name][1]} | {len(rs)} | {pm(r.get('row_f1_stored') for r in rs)} | "
                     f"{nocall_stored} | {pm(r['row_f1'] for r in rs)} (at {pm(r['threshold'] for r in rs)}) | {nocall_tuned} | "
                     f"{pm(r['cmap'] for r in rs)} | {right} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="bench-out/soundscapes")
    p.add_argument("--folds", default="0,1,2,3,4", help="test folds to run (soundscapes are made for all five)")
    p.add_argument("--variants", help=f"of {', '.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)}; the BirdNET "
                   "ones when it is installed)")
    p.add_argument("--epochs", type=int, help="override the small-data recipe's epoch budget (quick checks)")
    p.add_argument("--count", type=int, default=6, help="soundscapes per fold")
    p.add_argument("--duration-s", type=float, default=60.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root, out, device, machine = start_run(args.data, args.out, args.device)
    from birdspec.birdnet.backend import birdnet_available
    from birdspec.fileio import read_json, write_json

    variants = [v for v in (args.variants or ",".join(DEFAULT_VARIANTS)).split(",") if v]
    for variant in variants:
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; use {', '.join(VARIANTS)}")
    if not birdnet_available() and any(v in BIRDNET_VARIANTS for v in variants):
        if args.variants:
            raise SystemExit("the BirdNET variants need pip install 'birdspec[birdnet]'")
        print("BirdNET rows skipped (pip install 'birdspec[birdnet]' to compare with it)")
        variants = [v for v in variants if v not in BIRDNET_VARIANTS]
    ds = prepare_encoding(root, out, "window")
    if any(v in BIRDNET_VARIANTS for v in variants):
        from birdspec.data.embed import embed_dataset

        embed_dataset(ds, progress=False)  # once: every BirdNET head of every fold reads these
    scape_bg, train_bg = split_backgrounds(out)
    scapes = make_all_soundscapes(ds, out, list(range(5)), count=args.count, duration_s=args.duration_s, bg=scape_bg)
    rows = []
    for variant in variants:
        cfg = train_config(variant, train_bg=train_bg, device=device, seed=args.seed, epochs=args.epochs)
        for k in [int(f) for f in args.folds.split(",") if f]:
            run = out / "runs" / variant / f"fold_{k}"
            result = read_json(run / RESULT)
            if result is None:
                result = {"variant": variant, "epochs": cfg.epochs,
                          **score_fold(train_fold(ds, run, k, cfg), run, k, scapes, device, VARIANTS[variant][3],
                                       scores_dir=run.parent if VARIANTS[variant][1] == "birdnet-closed" else None)}
                write_json(run / RESULT, result)
            if "breakdown" not in result:  # results of earlier versions of this script get it from their files
                result["breakdown"] = breakdown(run / f"submission_fold{k}.csv", scapes[k])
                write_json(run / RESULT, result)
            rows.append(result)
            print(f"{variant} fold {k}: row-wise micro F1 {result['row_f1']:.3f} (threshold {result['threshold']:g}), "
                  f"cmAP {result['cmap']:.3f}", flush=True)
            write_json(out / "soundscapes.json", {"machine": machine, "data": str(root), "rows": rows})
            (out / "soundscapes.md").write_text(f"Machine: {machine}\n\n{markdown(rows)}\n\n{breakdown_markdown(rows)}\n")
    print()
    print(markdown(rows))
    print()
    print(breakdown_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
