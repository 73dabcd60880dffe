"""``birdspec learning-curve DATASET_DIR --model A,B --per-class 1,2,4,8,all --draws N --out DIR``."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
How many recordings per species do you need? For every model (--model, comma-
separated), every k of --per-class and --draws random draws: in every fold of
the dataset's fold assignment (prepare with --folds K), train on k recordings
of each species drawn from the training folds (whole recordings; 'all' = every
training recording, one draw) for exactly --epochs epochs, and score the last
checkpoint on the held-out fold at the recording level.

Writes OUT/learning_curve.csv (one row per model, k and draw: accuracy over the
pooled test folds, macro F1 of the pooled predictions), learning_curve_summary.csv
(mean, std, min, max over draws) and learning_curve.png (accuracy and macro F1
against k, a band over draws, every model in OUT in one figure). Re-running
resumes: finished cells are skipped, and a later run with another model into
the same OUT adds its line. Training options are those of `birdspec train` and
apply to every model; birdnet-* models need `birdspec embed DATASET_DIR` first.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.cli.train_cmd import add_train_options

    p = sub.add_parser("learning-curve", help="accuracy against recordings per species (k = 1, 2, 4, 8, all)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", metavar="DATASET_DIR", help="a prepared dataset with folds (`birdspec prepare --folds K`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (an existing one is resumed and extended)")
    p.add_argument("--per-class", default="1,2,4,8,all", metavar="LIST",
                   help="training recordings per species, e.g. 1,2,4,8,all (default)")
    p.add_argument("--draws", type=int, default=5, metavar="N", help="random draws of the recordings per k (default 5)")
    p.add_argument("--draw-seed", type=int, default=0, metavar="S", help="seed of the draws (default 0)")
    p.add_argument("--folds", metavar="LIST", help="only these test folds, e.g. 0,1 (default: all)")
    p.add_argument("--eval-batch-size", type=int, default=32, metavar="N", help="batch size of the evaluation (default 32)")
    add_train_options(p, within=" (as in `birdspec train`, for every model)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.cli.train_cmd import config_from_args
    from birdspec.errors import ConfigError
    from birdspec.experiments.learning_curve import CURVE_CSV, CURVE_PNG, parse_per_class, run_learning_curve
    from birdspec.experiments.sweep import parse_list
    from birdspec.runtime import set_cpu_threads

    set_cpu_threads(args.threads)  # --threads, as in birdspec train

    models = [m.strip() for m in (args.model or "").split(",") if m.strip()]
    if not models:
        raise ConfigError("give the models to compare: --model birdnet-closed,birdnet-prior (`birdspec models` lists them)")
    configs = []
    for model in models:
        args.model = model
        configs.append(config_from_args(args))
    result = run_learning_curve(
        args.dataset, args.out, configs, per_class=parse_per_class(args.per_class), draws=args.draws,
        seed=args.draw_seed, folds=parse_list(args.folds, kind=int, what="folds") if args.folds else None,
        eval_batch_size=args.eval_batch_size,
    )
    s = result.summary
    print(f"{'model':<28} {'k':>5} {'draws':>5} {'accuracy':>17} {'macro F1':>17} {'correct':>9}")
    for r in s.itertuples(index=False):
        std = 0.0 if r.accuracy_std != r.accuracy_std else r.accuracy_std  # NaN with one draw
        f1_std = 0.0 if r.macro_f1_std != r.macro_f1_std else r.macro_f1_std
        print(f"{r.model:<28} {r.k:>5} {r.draws:>5} {r.accuracy_mean:>9.3f} \u00b1 {std:.3f} "
              f"{r.macro_f1_mean:>9.3f} \u00b1 {f1_std:.3f} {r.correct_mean:>5.1f}/{r.n}")
    print(f"\nwritten to     {result.out_dir / CURVE_CSV}\nfigure         {result.out_dir / CURVE_PNG}")
    return 0
