"""``birdspec cv DATASET_DIR --model NAME --out CV_DIR``: K-fold cross-validation."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Cross-validate a model over the dataset's folds (prepare it with --folds K).
For every fold: train on the other folds, select the best epoch on an inner
validation split of those training folds (--inner-val-fraction of each
class's recordings, stratified and seeded; the test fold is never used for
selection), then evaluate the selected checkpoint on the held-out fold at the
recording level. Prints mean +- std (sample std over folds) of accuracy and
macro F1.

--fixed-epochs: the other honest protocol: no inner split, train on all
training folds for exactly --epochs epochs and evaluate the last checkpoint
(the run's validation curves then show the test fold, for monitoring only).

Writes CV_DIR/cv.json (means, stds, per-fold results, pooled metrics,
settings), cv_predictions.csv (pooled test predictions), cv_confusion_matrix.png,
cv_folds.png and CV_DIR/fold_<k>/ (each fold's run and its eval_test/).
Re-running resumes: finished folds are skipped. Training options are those of
`birdspec train` and apply to every fold.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.cli.train_cmd import add_train_options

    p = sub.add_parser(
        "cv",
        help="K-fold cross-validation with honest model selection",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET_DIR", help="a prepared dataset with folds (`birdspec prepare --folds K`)")
    p.add_argument("--out", required=True, metavar="CV_DIR", help="output folder (an existing one is resumed)")
    p.add_argument("--inner-val-fraction", type=float, default=0.2, metavar="F",
                   help="share of each class's training-fold recordings used for model selection (default 0.2)")
    p.add_argument("--fixed-epochs", action="store_true", help="no inner split: train exactly --epochs epochs, use the last checkpoint")
    p.add_argument("--folds", metavar="LIST", help="run only these fold ids, e.g. 0,1 (default: all)")
    p.add_argument("--eval-batch-size", type=int, default=32, metavar="N", help="batch size of the test-fold evaluation (default 32)")
    p.add_argument("--json", action="store_true", help="print cv.json")
    add_train_options(p, within=" (as in `birdspec train`)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from birdspec.cli.train_cmd import config_from_args
    from birdspec.experiments.cv import CV_JSON, format_cv, run_cv
    from birdspec.experiments.sweep import parse_list
    from birdspec.runtime import set_cpu_threads

    set_cpu_threads(args.threads)  # --threads, as in birdspec train

    folds = parse_list(args.folds, kind=int, what="folds") if args.folds else None
    result = run_cv(
        args.dataset,
        args.out,
        config_from_args(args),
        inner_val_fraction=args.inner_val_fraction,
        fixed_epochs=args.fixed_epochs,
        folds=folds,
        eval_batch_size=args.eval_batch_size,
    )
    if args.json:
        print(json.dumps(result.summary, indent=2, default=str))
        return 0
    print(format_cv(result.summary))
    print(f"\nwritten to     {result.out_dir / CV_JSON}")
    return 0
