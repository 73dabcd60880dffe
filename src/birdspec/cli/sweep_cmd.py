"""``birdspec sweep DATASET_DIR --model NAME --out SWEEP_DIR``: optimizer x learning-rate sweep.

Also home of :func:`add_train_options`, the training options shared by
``sweep`` and ``cv`` (the TrainConfig is built by ``train_cmd.config_from_args``).
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


def add_train_options(p: argparse.ArgumentParser, *, optimizer: bool = True) -> None:
    """The ``birdspec train`` options applied to every run of a sweep or CV.

    Dests match ``birdspec.cli.train_cmd.FIELDS`` so ``train_cmd.config_from_args``
    builds the TrainConfig. ``optimizer=False`` leaves out --optimizer/--lr (a sweep sets them).
    """
    from birdspec.training.config import (
        DEVICES,
        EARLY_STOPPING_METRICS,
        FIRST_CONV_MODES,
        OPTIMIZERS,
        PRECISIONS,
        SCHEDULES,
    )

    m = p.add_argument_group("model (as in `birdspec train`)")
    m.add_argument("--model", metavar="NAME", help="registered model (default mobilenetv2-seed; `birdspec models` lists them)")
    m.add_argument("--pretrained", metavar="imagenet|PATH", help="start from ImageNet weights or a torchvision state dict")
    m.add_argument("--first-conv", choices=FIRST_CONV_MODES, help="pretrained RGB kernels to C channels (default repeat)")
    m.add_argument("--input-norm", choices=("instance", "none"), help="log-mel input standardisation (default instance)")
    m.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE", help="backbone option, e.g. dropout=0.3 (repeatable)")
    o = p.add_argument_group("optimisation (as in `birdspec train`)")
    if optimizer:
        o.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the model's (adamw)")
        o.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default: the model's)")
    else:
        p.set_defaults(optimizer=None, lr=None)
    o.add_argument("--weight-decay", type=float, metavar="WD", help="default: the model's")
    o.add_argument("--batch-size", type=int, metavar="N", help="samples per step (default: the model's, 16)")
    o.add_argument("--epochs", type=int, metavar="N", help="epochs per run (default 30)")
    o.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default constant)")
    o.add_argument("--warmup-epochs", type=float, metavar="E", help="linear warm-up in epochs")
    o.add_argument("--early-stopping", type=int, metavar="N", help="stop after N epochs without improvement")
    o.add_argument("--early-stopping-on", choices=EARLY_STOPPING_METRICS, help="metric watched by --early-stopping (default val_loss)")
    o.add_argument("--label-smoothing", type=float, metavar="S", help="cross-entropy label smoothing (default 0)")
    o.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm")
    a = p.add_argument_group("augmentation (as in `birdspec train`)")
    a.add_argument("--random-crop", action=argparse.BooleanOptionalAction, default=None, help="random time crops (default on)")
    a.add_argument("--gain-db", type=float, metavar="X", help="random gain in [-X, X] dB")
    a.add_argument("--time-mask", type=int, metavar="N", help="SpecAugment time masks up to N frames")
    a.add_argument("--freq-mask", type=int, metavar="N", help="SpecAugment frequency masks up to N mel bins")
    a.add_argument("--num-masks", type=int, metavar="N", help="SpecAugment masks per axis (default 1)")
    a.add_argument("--mixup", type=float, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) weights")
    h = p.add_argument_group("data and hardware (as in `birdspec train`)")
    h.add_argument("--encoding-override", choices=("window", "stack10"), help="train per window on a stack10 dataset")
    h.add_argument("--workers", type=int, metavar="N", help="data-loader processes (default min(8, cores - 1))")
    h.add_argument("--device", choices=DEVICES, help="auto (default), cpu, cuda or mps")
    h.add_argument("--precision", choices=PRECISIONS, help="default 16-mixed on CUDA, 32-true elsewhere")
    h.add_argument("--devices", type=int, metavar="N", help="devices per run; N > 1 trains with DDP")
    h.add_argument("--seed", type=int, help="random seed (default 0)")
    h.add_argument("--max-minutes", type=float, metavar="M", help="time budget per run")
    h.add_argument("--no-progress", action="store_true", help="no progress bars")


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
    p.add_argument("--trials", type=int, metavar="N", help="Optuna search of N trials when N is smaller than the grid")
    p.add_argument("--no-retry-failed", action="store_true", help="keep failed trials failed when resuming")
    p.add_argument("--json", action="store_true", help="print the sweep table as JSON records")
    add_train_options(p, optimizer=False)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.cli.train_cmd import config_from_args
    from birdspec.evaluation.sweep import parse_list, run_sweep

    config = config_from_args(args)
    result = run_sweep(
        args.dataset,
        args.out,
        config,
        optimizers=parse_list(args.optimizers, what="optimizers"),
        lrs=parse_list(args.lrs, kind=float, what="learning rates"),
        trials=args.trials,
        retry_failed=not args.no_retry_failed,
    )
    if args.json:
        print(result.table.to_json(orient="records", indent=2))
        return 0
    t = result.table
    print(f"{'optimizer':<10} {'lr':>9} {'status':>8} {'best val acc':>13} {'best epoch':>11} {'train s':>9}")
    for r in t.itertuples(index=False):
        acc = f"{r.best_val_acc:.4f}" if r.status == "ok" else "-"
        epoch = f"{int(r.best_epoch)}" if r.status == "ok" else "-"
        secs = f"{r.train_time_s:.1f}" if r.status == "ok" else "-"
        print(f"{r.optimizer:<10} {r.lr:>9g} {r.status:>8} {acc:>13} {epoch:>11} {secs:>9}")
    if result.best:
        b = result.best
        print(f"\nbest           {b['optimizer']}, lr {b['lr']:g}: val acc {b['best_val_acc']:.4f} (epoch {int(b['best_epoch'])})")
    failed = int((t["status"] == "failed").sum())
    print(f"trials         {len(t)} ({result.trained} trained now, {result.skipped} found finished, {failed} failed; {result.mode})")
    print(f"written to     {result.csv_path} and {result.figure_path}")
    return 0


__all__ = ["add_parser", "add_train_options", "run"]
