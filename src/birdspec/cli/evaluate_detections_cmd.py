"""``birdspec evaluate-detections DETECTIONS ANNOTATIONS``: how good a detector is on annotated recordings."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Score detections against annotations, per species: window precision, recall
and F1 at --threshold (default: every detection in the tables, as written)
and over all thresholds (precision-recall curve, average precision), event
recall (the share of boxes a detection of their species overlaps) and false
detections per hour of annotated audio.

DETECTIONS: birdspec predict's outputs (csv, parquet, --scores all, raven,
audacity) or BirdNET-Analyzer's (table, csv, audacity, kaleidoscope); a file
or a folder. ANNOTATIONS: Raven selection tables, Audacity labels or any of
those formats (a file or folder). Tables match recordings by name; species
by code, scientific or common name. Predict with --top-k 0 --min-conf 0 for a
full precision-recall curve. Writes OUT/detection_report.html and .md, the
per-species CSV, the figure and OUT/annotation_report.txt (every row not read,
every recording not matched).
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate-detections",
        help="precision, recall, AP, event recall of detections (birdspec, BirdNET) against annotations",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("detections", metavar="DETECTIONS", help="detection table or folder of tables")
    p.add_argument("annotations", metavar="ANNOTATIONS", help="annotation table or folder of tables")
    p.add_argument("--out", default="detection-eval", metavar="DIR", help="report folder (default detection-eval)")
    p.add_argument("--recordings", metavar="PATH", help="the audio (file or folder): durations from the files")
    p.add_argument("--threshold", type=float, metavar="T", help="confidence a detection needs (default: all count)")
    p.add_argument("--window-s", type=float, metavar="S", help="window length (default: the detections' own)")
    p.add_argument("--min-overlap-s", type=float, default=0.5, metavar="S",
                   help="a box marks a window it overlaps by S seconds (default 0.5)")
    p.add_argument("--min-overlap-fraction", type=float, default=0.5, metavar="F",
                   help="... or by this fraction of the box (default 0.5; 0: seconds only)")
    p.add_argument("--species", metavar="NAMES", help="score exactly these species (codes, scientific or common names)")
    p.add_argument("--species-column", metavar="C", help="the annotation tables' species column")
    p.add_argument("--species-table", metavar="CSV|DIR",
                   help="match names against this table (label, scientific_name, common_name) or a prepared dataset")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.data.annotations import ANNOTATION_REPORT_FILE
    from birdspec.data.species import split_names
    from birdspec.evaluation.detection_report import per_species_text, summary_lines, write_detection_report
    from birdspec.evaluation.detections import DetectionEvalSettings, evaluate_detections
    from birdspec.fileio import refuse_output_over_inputs

    settings = DetectionEvalSettings(
        window_s=args.window_s, threshold=args.threshold, min_overlap_s=args.min_overlap_s,
        min_overlap_fraction=args.min_overlap_fraction or None,
        species=tuple(split_names(args.species)) if args.species else None, species_column=args.species_column,
        species_table=args.species_table)
    refuse_output_over_inputs(args.out, [args.detections, args.annotations], option="--out")
    result = evaluate_detections(args.detections, args.annotations, recordings=args.recordings, settings=settings)
    path = write_detection_report(result, args.out, detections=args.detections, annotations=args.annotations)
    print(per_species_text(result))
    print()
    print("\n".join(summary_lines(result)))
    for note in result.notes:
        print(f"Note: {note}")
    if result.report.problems:
        print(f"Tables: {result.report.summary()} (each line in {path.parent / ANNOTATION_REPORT_FILE})")
    print(f"Report: {path}")
    return 0
