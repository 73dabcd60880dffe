"""``birdspec score-soundscapes``: the BirdCLEF 2021 row-wise micro F1 of predictions."""

from __future__ import annotations

import argparse
import logging

from birdspec.formats import DEFAULT_THRESHOLDS

log = logging.getLogger(__name__)

DESCRIPTION = """\
Score soundscape predictions with the BirdCLEF 2021 metric: for every row_id
(a 5 s window), F1 = 2|P & T| / (|P| + |T|) between the predicted and the true
set of birds, 'nocall' counted as a label (an empty prediction is nocall); the
score is the mean over the rows of TRUTH (rows without a prediction count as
nocall).

PRED is a submission (row_id, birds), a birdspec predict CSV (row ids are
<file stem>_<end second>, Kaggle's <audio_id>_<site>_<yyyymmdd> stems lose the
date), or a wide row_id x class score matrix. With per-class scores, every
threshold in --thresholds is tried (a class is predicted when its score is >=
the threshold) and the best is reported; predict with --top-k 0 --min-conf 0
(or --scores all) so that every score is there. TRUTH has row_id and birds
columns (Kaggle's train_soundscape_labels.csv).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score-soundscapes",
        help="BirdCLEF 2021 row-wise micro F1 of soundscape predictions (with a threshold search)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("predictions", metavar="PRED.csv", help="submission, birdspec predict CSV, or row_id x class scores")
    p.add_argument("truth", metavar="TRUTH.csv", help="row_id, birds")
    p.add_argument("--thresholds", default=DEFAULT_THRESHOLDS,
                   help=f"start:stop:step (stop included), a list 0.1,0.3, or one value (default {DEFAULT_THRESHOLDS})")
    p.add_argument("--curve", default=None, metavar="CSV", help="also write the F1 of every threshold here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --curve that is not a CSV file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.evaluation.scoring import parse_thresholds, score_soundscapes

    parse_thresholds(args.thresholds)  # a usage error before any reading
    if args.curve:
        from birdspec.fileio import refuse_output_over_inputs, refuse_replacing

        refuse_output_over_inputs(args.curve, [args.predictions, args.truth], option="--curve")
        refuse_replacing(args.curve, suffixes=(".csv",), overwrite=args.overwrite, option="--curve")
    result = score_soundscapes(args.predictions, args.truth, thresholds=args.thresholds)
    if result.threshold is None:
        print(f"row-wise micro F1: {result.f1:.4f}  ({result.rows} rows, {result.missing} without prediction)")
    else:
        print(f"best row-wise micro F1: {result.f1:.4f} at threshold {result.threshold:g}  ({result.rows} rows, {result.missing} without prediction)")
        for t, f in zip(result.curve["threshold"], result.curve["f1"], strict=True):
            print(f"  threshold {t:<6g} F1 {f:.4f}")
        tried = result.curve["threshold"]
        if len(tried) > 1 and result.threshold in (tried.min(), tried.max()):
            side = "lowest" if result.threshold == tried.min() else "highest"
            log.warning("the best threshold is the %s one tried (%g): the best may lie beyond it; widen --thresholds "
                        "(e.g. --thresholds 0.001,0.005,0.01,0.02,0.05,0.1 for a model with low confidences)",
                        side, result.threshold)
        if args.curve:
            from birdspec.fileio import write_csv

            write_csv(args.curve, result.curve, float_format=None)
    return 0
