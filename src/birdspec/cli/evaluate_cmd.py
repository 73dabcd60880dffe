"""``birdspec evaluate RUN_DIR``: metrics, predictions and figures of a trained run."""

from __future__ import annotations

import argparse
import json
from typing import Any

DESCRIPTION = """\
Evaluate a run's checkpoint on its validation recordings (or --split train|all)
and write, into --out (default RUN_DIR/eval_<split>):

  metrics.json          recording- and sample-level metrics: accuracy, balanced accuracy,
                        macro/micro F1, top-k accuracy, macro ROC-AUC (one-vs-rest),
                        cmAP (macro average precision), log loss
  per_class.csv         precision, recall, F1 and support per class and level
  predictions.csv       every sample's and recording's probabilities (the metrics recompute from it)
  confusion_matrix.png  counts and row-normalised, recording level
  per_class.png         per-class precision / recall / F1
  reliability.png       sample level: score against observed frequency (calibration, ECE)

Recording level: the window probabilities of a recording are averaged (mean of
softmax probabilities, then arg-max); for stack10 it equals the sample level.
The dataset defaults to the one recorded in RUN_DIR/config.json.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.config import EVAL_SPLITS as SPLITS

    p = sub.add_parser(
        "evaluate",
        help="metrics, predictions and figures of a trained run",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `birdspec train`")
    p.add_argument("--data", metavar="DATASET_DIR", help="prepared dataset (default: the run's own)")
    p.add_argument("--split", default="val", choices=SPLITS, help="recordings to evaluate (default val: the run's validation recordings)")
    p.add_argument("--checkpoint", default="best", metavar="best|last|FILE", help="checkpoint to evaluate (default best)")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN_DIR/eval_<split>)")
    p.add_argument("--device", default="auto", help="auto (default: cuda > mps > cpu), cpu, cuda or mps")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="samples per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="data-loader processes (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of the table")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.errors import ConfigError
    from birdspec.evaluation.evaluate import evaluate_run, format_metrics

    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    result = evaluate_run(
        args.run_dir,
        data=args.data,
        split=args.split,
        checkpoint=args.checkpoint,
        out_dir=args.out,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        plots=not args.no_plots,
    )
    if args.json:
        print(json.dumps(_plain(result.metrics), indent=2))
        return 0
    print(format_metrics(result.metrics, result.per_class))
    calibration = result.metrics.get("sample", {}).get("calibration")
    if calibration:
        from birdspec.evaluation.calibration import calibration_line

        print(calibration_line(calibration))
    print()
    print(f"written to     {result.out_dir}")
    return 0


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
