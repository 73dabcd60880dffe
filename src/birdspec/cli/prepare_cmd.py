"""``birdspec prepare SOURCE --out DIR``: decode a source into a prepared dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from birdspec.config import ENCODINGS, SHORT_POLICIES, EncodingConfig

DESCRIPTION = """\
Decode the recordings of SOURCE once (32 kHz mono, float16) into a prepared
dataset directory that training and evaluation read.

SOURCE is a BirdCLEF folder (train_metadata.csv + train_short_audio/ or
train_audio/), a folder with one sub-folder of audio per class, or a CSV
manifest with a file-path and a label column. Unusable recordings (unreadable,
empty, all silent, too short for the encoding) are skipped and listed in
DIR/skipped.csv, and so are rows that list the same audio (file, or window of
it) again: under the same label the first row is kept, under another label
every row of it is skipped (one primary label per recording; other species go
in secondary_labels). Re-running with the same settings reuses DIR; an interrupted
run resumes from DIR.partial/.

With --annotations TABLES, SOURCE is a recording or a folder of recordings and
the tables (Raven selection tables, Audacity labels, BirdNET-Analyzer or birdspec
outputs; files or folders) label their windows: a box labels a --window-s window
when it overlaps it by --min-overlap-s seconds or by --min-overlap-fraction of the
box; several species make secondary labels. Tables match recordings by file name
(<recording>.Table.1.selections.txt, <recording>.txt, ...) or by a recording
column. Unannotated time is left out unless --complete (every call of the species
is annotated): then it becomes no-bird audio in DIR/nobird/<split>/ (for train
--background) and DIR/nobird.csv. Rows not read and tables or recordings not
matched are listed in DIR/annotation_report.txt.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``prepare`` on ``subparsers``; sets ``func``."""
    from birdspec.config import LAYOUTS

    p = subparsers.add_parser(
        "prepare",
        help="decode recordings into a prepared dataset",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SOURCE", help="dataset folder or CSV manifest (with --annotations: recordings)")
    p.add_argument("--out", required=True, metavar="DIR", help="prepared dataset directory to write")
    p.add_argument(
        "--layout",
        default="auto",
        choices=LAYOUTS,
        help="layout of SOURCE (default: detect)",
    )
    sel = p.add_argument_group("species")
    sel.add_argument(
        "--species",
        metavar="NAMES",
        help="comma-separated eBird codes, scientific or common names (any case), "
        'e.g. "grrwar1,Acrocephalus palustris,sedge warbler"',
    )
    sel.add_argument("--top-n", type=int, metavar="K", help="keep the K species with most recordings")
    enc = p.add_argument_group("encoding")
    enc.add_argument("--encoding", choices=ENCODINGS,
                     help="stack10 (default, the study) or window (the default and only choice with --annotations)")
    enc.add_argument("--num-windows", type=int, default=10, metavar="N", help="windows stacked by stack10 (default 10)")
    enc.add_argument("--window-s", type=float, default=5.0, metavar="S", help="window length in seconds (default 5)")
    enc.add_argument(
        "--short-policy",
        default="drop",
        choices=SHORT_POLICIES,
        help="recordings too short for the encoding: drop (default), tile or pad",
    )
    clean = p.add_argument_group("cleaning")
    clean.add_argument("--min-rating", type=float, metavar="R", help="skip recordings rated below R (unrated kept)")
    clean.add_argument("--min-duration-s", type=float, metavar="S", help="skip recordings shorter than S seconds")
    clean.add_argument(
        "--max-duration-s", type=float, metavar="S", help="keep only the first S seconds of each recording"
    )
    split = p.add_argument_group("splits")
    split.add_argument(
        "--val-fraction", type=float, default=0.3, metavar="F", help="validation share per species (default 0.3)"
    )
    split.add_argument("--folds", type=int, metavar="K", help="also assign K stratified cross-validation folds")
    split.add_argument("--seed", type=int, default=0, help="seed of the split and folds (default 0)")
    csv = p.add_argument_group("CSV manifest")
    csv.add_argument("--path-column", metavar="C", help="column with the audio paths (relative to the CSV)")
    csv.add_argument("--label-column", metavar="C", help="column with the labels")
    csv.add_argument("--fold-column", metavar="C", help="column whose values are the folds (replaces --folds)")
    ann = p.add_argument_group("annotations")
    ann.add_argument("--annotations", nargs="+", metavar="TABLE", help="annotation tables or folders of them")
    ann.add_argument("--species-column", metavar="C", help="the tables' species column (default: the first of "
                     "Species, Species Code, Label, Annotation, Common Name, ...)")
    ann.add_argument("--min-overlap-s", type=float, default=0.5, metavar="S",
                     help="a box labels a window it overlaps by S seconds (default 0.5)")
    ann.add_argument("--min-overlap-fraction", type=float, default=0.5, metavar="F",
                     help="... or by this fraction of the box (default 0.5; 0: seconds only)")
    ann.add_argument("--hop-s", type=float, metavar="S", help="window step (default: --window-s, no overlap)")
    ann.add_argument("--complete", action="store_true",
                     help="every call of the species is annotated: unannotated windows are no-bird audio")
    ann.add_argument("--species-table", metavar="CSV|DIR", help="match species names against this table (label, "
                     "scientific_name, common_name) or a prepared dataset's classes")
    run = p.add_argument_group("run")
    run.add_argument("--workers", type=int, metavar="N", help="decoding processes (default: all cores)")
    run.add_argument("--overwrite", action="store_true", help="replace DIR if it was prepared with other settings")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)
    return p


def run_prepare(args: argparse.Namespace) -> int:
    """Run :func:`birdspec.data.prepare.prepare` and print a summary."""
    from birdspec.data.prepare import prepare
    from birdspec.data.prepared import describe

    annotations = None
    if args.annotations:
        from birdspec.data.annotation_windows import annotation_settings

        annotations = annotation_settings(
            args.annotations, species_column=args.species_column, min_overlap_s=args.min_overlap_s,
            min_overlap_fraction=args.min_overlap_fraction, hop_s=args.hop_s, complete=args.complete,
            species_table=args.species_table)
    else:
        given = [f for f, v in (("--complete", args.complete), ("--species-column", args.species_column),
                                ("--hop-s", args.hop_s), ("--species-table", args.species_table)) if v]
        if given:
            from birdspec.errors import ConfigError

            raise ConfigError(f"{', '.join(given)} only apply with --annotations TABLES")
    encoding = EncodingConfig(
        name=args.encoding or ("window" if annotations else "stack10"),
        num_windows=args.num_windows,
        window_s=args.window_s,
        short_policy=args.short_policy,
    )
    out = prepare(
        args.source,
        args.out,
        layout=args.layout,
        species=args.species,
        top_n=args.top_n,
        encoding=encoding,
        min_rating=args.min_rating,
        min_duration_s=args.min_duration_s,
        max_duration_s=args.max_duration_s,
        val_fraction=args.val_fraction,
        folds=args.folds,
        seed=args.seed,
        workers=args.workers,
        path_column=args.path_column,
        label_column=args.label_column,
        fold_column=args.fold_column,
        annotations=annotations,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    d = describe(out)
    if annotations is not None:
        from birdspec.data.prepared import DATASET_FILE
        from birdspec.fileio import read_json

        d["annotations"] = (read_json(Path(out) / DATASET_FILE) or {}).get("annotations")
    print(summary(d))
    return 0


def summary(d: dict[str, Any]) -> str:
    """One paragraph about a prepared dataset, from :func:`~birdspec.data.prepared.describe`."""
    per_class = ", ".join(f"{label} {n}" for label, n in d["per_class"].items())
    splits = " / ".join(f"{name} {n}" for name, n in d["splits"].items())
    enc = d["encoding"]
    shape = "x".join(str(s) for s in d["sample_shape"])
    text = (
        f"Prepared {d['path']}: {d['num_recordings']} recordings of {len(d['classes'])} species "
        f"({per_class}); {d['duration_s'] / 60:.1f} min of audio; {d['num_samples']} samples of {shape} "
        f"({enc['name']}, short policy {enc['short_policy']}); {splits}"
    )
    if d.get("folds"):
        text += f"; {len(d['folds'])} folds"
    text += "."
    from birdspec.data.prepared import MANIFEST_FILE, SKIPPED_FILE

    if d.get("truncated"):
        text += (f" {d['truncated']} kept recording(s) look cut off: what decodes is kept (see the warning "
                 f"column of {Path(d['path']) / MANIFEST_FILE}).")

    report = Path(d["path"]) / SKIPPED_FILE
    if d["skipped"]:
        reasons = ", ".join(f"{kind} {n}" for kind, n in d["skipped_reasons"].items())
        text += f" Skipped {d['skipped']} ({reasons}), listed in {report}."
    else:
        text += " Nothing skipped."
    ann = d.get("annotations")
    if ann:
        text += (f" From annotations: {ann.get('windows', 0)} labelled windows, {ann.get('ambiguous_windows', 0)} "
                 f"ambiguous and {ann.get('unannotated_windows', 0)} unannotated left out")
        if ann.get("complete"):
            from birdspec.data.annotation_nobird import NOBIRD_DIR

            text += (f", {ann.get('nobird_windows', 0)} no-bird windows as audio in {Path(d['path']) / NOBIRD_DIR} "
                     "(train --background)")
        text += f"; {ann.get('report_lines', 0)} report lines in {Path(d['path']) / ann.get('report', '')}."
    return text
