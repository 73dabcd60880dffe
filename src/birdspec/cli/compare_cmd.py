"""``birdspec compare RUN_DIR... --out DIR``: one table, overlaid curves and an HTML report."""

from __future__ import annotations

import argparse

from birdspec.models.checkpoint import CHECKPOINT_NAMES

DESCRIPTION = """\
Compare training runs side by side (e.g. the study's MobileNetV2 and ResNet18).
Each run's checkpoint is evaluated on its validation recordings (recording
level; an up-to-date RUN_DIR/eval_val from `birdspec evaluate` is reused) and
profiled: parameters, multiply-adds per sample (Conv2d + Linear) and CPU
inference time per sample (measured here, one model after the other).

Writes into --out: comparison.csv and comparison.md (model, encoding,
parameters, multiply-adds, best validation accuracy, macro F1, cmAP, training
time, CPU ms per sample), compare_curves.png (validation accuracy and loss per
epoch, one color per run), compare_metrics.png, compare_confusion.png and
report.html: everything in one self-contained page (figures embedded),
including each run's curves.png and per-class scores.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.config import EVAL_SPLITS as SPLITS

    p = sub.add_parser(
        "compare",
        help="compare runs: table, curves, confusion matrices, HTML report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="folders written by `birdspec train`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--data", metavar="DATASET_DIR", help="evaluate every run on this prepared dataset (default: each run's own)")
    p.add_argument("--split", default="val", choices=SPLITS, help="recordings to evaluate (default val)")
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINT_NAMES, help="checkpoint of every run (default best)")
    p.add_argument("--device", default="auto", help="evaluation device: auto (default), cpu, cuda or mps; timing is always on the CPU")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="evaluation batch size (default 32)")
    p.add_argument("--no-timing", action="store_true", help="skip the CPU inference timing")
    p.add_argument("--title", default="birdspec model comparison", help="title of the report")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.evaluation.compare import compare_runs, display_table
    from birdspec.evaluation.compare_report import COMPARISON_MD

    result = compare_runs(
        args.run_dirs,
        out_dir=args.out,
        data=args.data,
        split=args.split,
        checkpoint=args.checkpoint,
        device=args.device,
        batch_size=args.batch_size,
        timing=not args.no_timing,
        title=args.title,
    )
    if args.json:
        print(result.table.to_json(orient="records", indent=2))
        return 0
    print(display_table(result.table).to_string(index=False))
    print()
    print(f"report         {result.report}")
    print(f"table          {result.files[COMPARISON_MD]}")
    return 0
