"""Labels from a teacher: can the small CNN learn a site from birdnet-prior's detections instead of annotations?

    python benchmarks/teacher_labels.py [BIRDCLEF_DIR] --soundscapes-out bench-out/soundscapes
        [--out bench-out/teacher-labels] [--folds 0,1,2,3,4] [--annotated-epochs equal|N] [--epochs N]

The question (issue 27): the from-scratch CNN mislabels the other animals of a site's soundscapes; annotated
soundscapes of the site teach it (benchmarks/annotations.py), but annotating costs a person's time. Can the
labels come from a stronger, slower model instead: ``birdspec predict TEACHER SITE_AUDIO --format raven`` at
the teacher's stored thresholds, then ``prepare --annotations --complete`` and training as annotations.py does?

Protocol: annotations.py's ``annotated`` variant (same data, folds, soundscapes, recipe, epochs, seed and
scoring), with one change: the training folds' soundscapes are labelled by fold k's ``birdnet-prior`` model of
benchmarks/soundscapes.py (``--soundscapes-out``: its ``runs/birdnet-prior/fold_k``, trained on folds != k)
instead of by their ``calls.csv``. The teacher never saw fold k; it did see the training folds' focal
recordings, whose calls these soundscapes are mixed from, so its labels here are better than on a new site's
new birds: this is an upper bound of what its labels give, and annotations.py's ``annotated`` row (the truth
as labels) the bound above it. The teacher's own row-wise micro F1 on the soundscapes it labels is reported
beside the student's. Scored on fold k's soundscapes against their true tables, as annotations.py.

Writes OUT/teacher_labels.json and OUT/teacher_labels.md; re-running resumes (a fold with its result is not
trained or scored again).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.annotations import (  # noqa: E402
    OVERLAP,
    RESULT,
    _pm,
    annotated_epochs,
    nobird_folder,
    prepare_combined,
    score_fold,
    train_run,
    write_tables,
)
from benchmarks.common import DEFAULT_DATA, prepare_encoding, start_run  # noqa: E402
from benchmarks.soundscapes import birdspec, make_all_soundscapes, split_backgrounds  # noqa: E402

TEACHER = "birdnet-prior"
"""soundscapes.py's variant whose fold models label the training folds' soundscapes."""


def teacher_checkpoint(source: Path, k: int) -> Path:
    ckpt = source / "runs" / TEACHER / f"fold_{k}" / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        raise SystemExit(f"{ckpt} is missing: run python benchmarks/soundscapes.py --out {source} --variants {TEACHER} "
                         f"--folds {k} first (it needs pip install -e '.[birdnet]')")
    return ckpt


def teacher_dataset(teacher: Path, scapes: dict[int, Path], k: int, out: Path) -> tuple[Path, float]:
    """The training folds' soundscapes labelled by ``teacher`` and prepared with ``--annotations --complete``;
    (dataset, the teacher's row-wise micro F1 on them)."""
    from birdspec.evaluation.scoring import read_truth, score_soundscapes

    root, tables = out / "audio", out / "tables"
    for j, d in scapes.items():
        if j == k:
            continue
        (root / f"fold{j}").mkdir(parents=True, exist_ok=True)
        for f in sorted((d / "audio").glob("*.flac")):
            link = root / f"fold{j}" / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    if not tables.is_dir():  # the teacher's detections at its stored thresholds: what a user would train on
        partial = out / "tables.partial"  # renamed when whole: a rerun after a failure predicts again
        shutil.rmtree(partial, ignore_errors=True)
        birdspec("predict", str(teacher), str(root), "--format", "raven", "--device", "cpu", "--out", str(partial))
        partial.rename(tables)
    submission = out / "teacher_submission.csv"
    if not submission.is_file():
        birdspec("predict", str(teacher), str(root), "--format", "birdclef", "--top-k", "0", "--device", "cpu",
                 "--out", str(submission))
    truth = {r: b for j, d in scapes.items() if j != k for r, b in read_truth(d / "truth.csv").items()}
    ds = out / "data-teacher"
    birdspec("prepare", str(root), "--annotations", str(tables), "--out", str(ds), "--complete", *OVERLAP,
             "--workers", "2", "--no-progress")
    return ds, float(score_soundscapes(submission, truth).f1)


def markdown(rows: list[dict]) -> str:
    s = [r["stored"] for r in rows]
    return "\n".join([
        "| labels of the training folds' soundscapes | folds | teacher's row-wise F1 on them | window F1, stored | "
        "false detections / h | row-wise micro F1, stored | row-wise micro F1, tuned on train folds |",
        "|---|---|---|---|---|---|---|",
        f"| {TEACHER}'s detections (teacher labels) | {len(rows)} | {_pm(r['teacher_row_f1'] for r in rows)} | "
        f"{_pm(x['micro_f1'] for x in s)} | {_pm(x['false_per_hour'] for x in s)} | "
        f"{_pm(r['row_f1_stored'] for r in rows)} | {_pm(r['row_f1_tuned'] for r in rows)} |"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="bench-out/teacher-labels")
    p.add_argument("--soundscapes-out", required=True, help="a benchmarks/soundscapes.py output with its "
                   f"{TEACHER} fold models")
    p.add_argument("--folds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, help="override the small-data recipe's epoch budget (quick checks)")
    p.add_argument("--annotated-epochs", default="equal",
                   help="epochs of the student: 'equal' (as many training samples as the focal run) or N")
    p.add_argument("--count", type=int, default=6, help="soundscapes per fold (as the soundscapes.py run)")
    p.add_argument("--duration-s", type=float, default=60.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root, out, device, machine = start_run(args.data, args.out, args.device)
    from birdspec.fileio import read_json, write_json

    source = Path(args.soundscapes_out)
    focal = prepare_encoding(root, out, "window")
    scape_bg, _ = split_backgrounds(out)
    scapes = make_all_soundscapes(focal, source, list(range(5)), count=args.count, duration_s=args.duration_s,
                                  bg=scape_bg)
    true_tables = write_tables(focal, scapes, out)  # for scoring only
    rows = []
    for k in [int(f) for f in args.folds.split(",") if f]:
        run = out / "runs" / "teacher" / f"fold_{k}"
        result = read_json(run / RESULT)
        if result is None:
            work = out / "teacher" / f"fold_{k}"
            teacher = teacher_checkpoint(source, k)
            ds, teacher_f1 = teacher_dataset(teacher, scapes, k, work)
            combined = prepare_combined(focal, ds, work)
            epochs = annotated_epochs(combined, k, args.annotated_epochs, args.epochs)
            ckpt = train_run(combined, run, "annotated", k, device=device, seed=args.seed, epochs=epochs,
                             background=nobird_folder(ds, work, k))
            labelled = pd.read_csv(ds / "manifest.csv", usecols=["label"])
            result = {"variant": "teacher", "teacher": str(teacher), "epochs": epochs,
                      "teacher_row_f1": teacher_f1, "teacher_windows": int(len(labelled)),
                      **score_fold(ckpt, run, k, scapes, true_tables, device, False, run)}
            write_json(run / RESULT, result)
        rows.append(result)
        print(f"fold {k}: teacher row-wise F1 {result['teacher_row_f1']:.3f} on the training folds' soundscapes; "
              f"student row-wise F1 {result['row_f1_stored']:.3f} stored, {result['row_f1_tuned']:.3f} tuned", flush=True)
        write_json(out / "teacher_labels.json", {"machine": machine, "data": str(root), "rows": rows})
        (out / "teacher_labels.md").write_text(f"Machine: {machine}\n\n{markdown(rows)}\n")
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
