"""``birdspec sweep DATASET_DIR --model NAME --out SWEEP_DIR``: optimizer x learning-rate sweep.

The training options are ``birdspec train``'s (:func:`birdspec.cli.train_cmd.add_train_options`).
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train one run per optimizer x learning rate and plot the best validation
accuracy of each (the study's figure). Each trial is an ordinary run directory
SWEEP_DIR/trials/<optimizer>_lr<lr> (evaluate or compare it like any run).

Writes SWEEP_DIR/sweep.csv (optimizer, lr, status, best_val_acc,
best_val_loss, best_epoch, train_time_s, run_dir, ...), sweep.png and
sweep.json (the settings). Re-running the same command resumes: finished
trials (with summary.json) are skipped, an interrupted trial continues from
its last epoch, failed trials (e.g. a non-finite loss at a high learning
rate; status 'failed') are retried unless --no-retry-failed.

--trials N smaller than the grid runs an Optuna (TPE) search of N trials over
the optimizers x a log-uniform learning rate in [min, max] of --lrs
(needs `pip install 'birdspec[search]'`).
"""

DEFAULT_OPTIMIZERS = "adamw,adam,sgd,rmsprop"
DEFAULT_LRS = "0.1,0.01,0.001,0.0001"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="optimizer x learning-rate sweep (the study's figure)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET_DIR", help="a folder written by `birdspec prepare`")
    p.add_argument("--out", required=True, metavar="SWEEP_DIR", help="sweep folder (an existing sweep there is resumed)")
    p.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS, metavar="LIST", help=f"comma-separated (default {DEFAULT_OPTIMIZERS})")
    p.add_argument("--lrs", default=DEFAULT_LRS, metavar="LIST", help=f"comma-separated learning rates (default {DEFAULT_LRS})")
    p.add_argument("--frontends", metavar="LIST", help="also sweep these spectrogram types, comma-separated (e.g. logmel,pcen)")
    p.add_argument("--trials", type=int, metavar="N", help="Optuna search of N trials when N is smaller than the grid")
    p.add_argument("--no-retry-failed", action="store_true", help="keep failed trials failed when resuming")
    p.add_argument("--json", action="store_true", help="print the sweep table as JSON records")
    from birdspec.cli.train_cmd import add_train_options

    add_train_options(p, optimizer=False, within=" (as in `birdspec train`)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.cli.train_cmd import config_from_args
    from birdspec.experiments.sweep import parse_list, run_sweep
    from birdspec.runtime import set_cpu_threads

    set_cpu_threads(args.threads)  # --threads, as in birdspec train

    config = config_from_args(args)
    result = run_sweep(
        args.dataset,
        args.out,
        config,
        optimizers=parse_list(args.optimizers, what="optimizers"),
        lrs=parse_list(args.lrs, kind=float, what="learning rates"),
        frontends=args.frontends,
        trials=args.trials,
        retry_failed=not args.no_retry_failed,
    )
    if args.json:
        print(result.table.to_json(orient="records", indent=2))
        return 0
    t = result.table
    print(f"{'trial':<28} {'lr':>9} {'status':>8} {'best val acc':>13} {'best epoch':>11} {'train s':>9}")
    for r in t.itertuples(index=False):
        acc = f"{r.best_val_acc:.4f}" if r.status == "ok" else "-"
        epoch = f"{int(r.best_epoch)}" if r.status == "ok" else "-"
        secs = f"{r.train_time_s:.1f}" if r.status == "ok" else "-"
        print(f"{r.trial:<28} {r.lr:>9g} {r.status:>8} {acc:>13} {epoch:>11} {secs:>9}")
    if result.best:
        b = result.best
        print(f"\nbest           {b['optimizer']}, lr {b['lr']:g}: val acc {b['best_val_acc']:.4f} (epoch {int(b['best_epoch'])})")
    failed = int((t["status"] == "failed").sum())
    print(f"trials         {len(t)} ({result.trained} trained now, {result.skipped} found finished, {failed} failed; {result.mode})")
    print(f"written to     {result.csv_path} and {result.figure_path}")
    return 0


__all__ = ["add_parser", "run"]
