"""``birdspec train DATASET_DIR --model NAME --out RUN_DIR``: train a model into a run directory."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

DESCRIPTION = """\
Train a registered model (`birdspec models`) on a prepared dataset and write
RUN_DIR: config.json, metrics.csv (one row per epoch), curves.png,
checkpoints/best.pt (best validation accuracy; with no-bird samples, species
and no-bird accuracy count half each) and checkpoints/last.pt,
predictions_val.csv (per validation sample, from best.pt) and summary.json.

Unset optimizer, --lr, --weight-decay and --batch-size come from the model's
study defaults (batch 16, AdamW; MobileNetV2 lr 0.01; ResNet18 lr 0.001 with
weight decay 1e-4). Training runs on the GPU when there is one (--device
auto), with 16-bit mixed precision on CUDA.

Continue an interrupted run (Ctrl-C leaves checkpoints/last.pt) with
`birdspec train --resume RUN_DIR`; options given with --resume (e.g. a larger
--epochs) replace the saved ones, the model and data rows stay.

Several GPUs: --devices N trains with DDP (one process per GPU; the batch size
is per GPU, so the effective batch is N x --batch-size). For the 397-class
BirdCLEF set e.g. `--devices 4 --batch-size 32 --workers 8`.
"""

# argparse dest -> TrainConfig field (only options given on the command line are passed)
FIELDS = {
    "model": "model",
    "pretrained": "pretrained",
    "first_conv": "first_conv",
    "input_norm": "input_norm",
    "frontend": "frontend",
    "optimizer": "optimizer",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "schedule": "schedule",
    "warmup_epochs": "warmup_epochs",
    "early_stopping": "early_stopping_patience",
    "early_stopping_on": "early_stopping_metric",
    "label_smoothing": "label_smoothing",
    "grad_clip": "grad_clip_norm",
    "random_crop": "random_crop",
    "crops_per_recording": "crops_per_recording",
    "crop_s": "crop_s",
    "crop_rule": "crop_rule",
    "gain_db": "gain_db",
    "time_mask": "time_mask_frames",
    "freq_mask": "freq_mask_bins",
    "num_masks": "num_masks",
    "mixup": "mixup_alpha",
    "encoding_override": "encoding_override",
    "device": "device",
    "precision": "precision",
    "devices": "devices",
    "seed": "seed",
    "workers": "workers",
    "max_minutes": "max_minutes",
    "labels": "labels",
    "secondary_weight": "secondary_weight",
    "loss": "loss",
    "focal_gamma": "focal_gamma",
    "asl_gamma_neg": "asl_gamma_neg",
    "asl_gamma_pos": "asl_gamma_pos",
    "asl_clip": "asl_clip",
    "nocall_fraction": "nocall_fraction",
    "background": "background_dir",
    "background_mix": "background_mix_dir",
    "background_snr_db": "background_snr_db",
    "mix_nocall": "mix_nocall",
    "synthetic_nocall": "synthetic_nocall",
    "synthetic_calls": "synthetic_calls",
    "thresholds_on": "thresholds_on",
    "temperature_scaling": "temperature_scaling",
}


def add_train_options(p: argparse.ArgumentParser, *, optimizer: bool = True, within: str = "") -> None:
    """The training options, shared by ``train``, ``sweep`` and ``cv``.

    Dests match :data:`FIELDS` so :func:`config_from_args` builds the TrainConfig.
    ``optimizer=False`` leaves out --optimizer/--lr (a sweep sets them);
    ``within`` names the command in group titles (e.g. ``" (as in `birdspec train`)"``).
    """
    from birdspec.config import ENCODINGS, FRONTENDS, INPUT_NORMS
    from birdspec.runtime import DEVICES
    from birdspec.training.config import (
        CROP_RULES,
        EARLY_STOPPING_METRICS,
        FIRST_CONV_MODES,
        OPTIMIZERS,
        PRECISIONS,
        SCHEDULES,
    )
    from birdspec.training.recipes import RECIPES

    r = p.add_argument_group("recipe" + within)
    r.add_argument(
        "--recipe", choices=list(RECIPES), metavar="NAME",
        help="start from a named set of settings; options given here replace its values. "
        + "; ".join(f"{x.name}: {x.summary}" for x in RECIPES.values()),
    )
    m = p.add_argument_group("model" + within)
    m.add_argument("--model", metavar="NAME", help="registered model (default mobilenetv2-seed; `birdspec models` lists them)")
    m.add_argument("--pretrained", metavar="imagenet|PATH", help="start from ImageNet weights or a torchvision state dict")
    m.add_argument("--first-conv", choices=FIRST_CONV_MODES, help="pretrained RGB kernels to C channels: repeat (default, scaled 3/C) or average")
    m.add_argument("--input-norm", choices=INPUT_NORMS,
                   help="what the CNN sees (default level on dB spectrograms, band on pcen/mfcc): level keeps absolute "
                        "level (an absolute floor, each band's noise floor removed, fixed units fitted on the training "
                        "windows: quiet noise stays quiet); band removes each band's noise floor, then standardises "
                        "every window; instance standardises every window (the study's); none")
    m.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE", help="backbone option, e.g. dropout=0.3 (repeatable; "
        "JSON values)")
    m.add_argument("--frontend", choices=FRONTENDS, help="spectrogram type (default logmel, the study's; `birdspec models` lists them)")
    m.add_argument("--frontend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="spectrogram setting, e.g. pcen_gain=0.9 or n_mfcc=20 (repeatable; JSON values)")
    o = p.add_argument_group("optimisation" + within)
    if optimizer:
        o.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the model's (adamw)")
        o.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default: the model's)")
    else:
        p.set_defaults(optimizer=None, lr=None)
    o.add_argument("--weight-decay", type=float, metavar="WD", help="default: the model's")
    o.add_argument("--batch-size", type=int, metavar="N", help="samples per step and device (default: the model's, 16)")
    o.add_argument("--epochs", type=int, metavar="N", help="maximum epochs (default 30)")
    o.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default constant)")
    o.add_argument("--warmup-epochs", type=float, metavar="E", help="linear warm-up (onecycle: rising phase) in epochs")
    o.add_argument("--early-stopping", type=int, metavar="N", help="stop after N epochs without improvement of --early-stopping-on")
    o.add_argument("--early-stopping-on", choices=EARLY_STOPPING_METRICS, help="metric watched by --early-stopping (default val_loss)")
    o.add_argument("--label-smoothing", type=float, metavar="S", help="cross-entropy label smoothing (default 0)")
    o.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm (default: no clipping)")
    a = p.add_argument_group("augmentation" + within)
    a.add_argument("--random-crop", action=argparse.BooleanOptionalAction, default=None, help="random time crops of longer recordings (default on)")
    a.add_argument("--crops-per-recording", type=int, metavar="K",
                   help="an epoch draws K random crops from every training recording (recordings weigh equally) "
                        "instead of every window once (default 0: every window)")
    a.add_argument("--crop-s", type=float, metavar="S",
                   help="train on random S-second crops (window encoding; evaluation still scores full windows)")
    a.add_argument("--crop-rule", choices=CROP_RULES,
                   help="where random crops may start: anywhere (default) or calls (at most half the crop in the "
                        "recording's quiet stretches; the small-data recipe's)")
    a.add_argument("--gain-db", type=float, metavar="X", help="random gain in [-X, X] dB per sample")
    a.add_argument("--time-mask", type=int, metavar="N", help="SpecAugment time masks up to N frames")
    a.add_argument("--freq-mask", type=int, metavar="N", help="SpecAugment frequency masks up to N mel bins")
    a.add_argument("--num-masks", type=int, metavar="N", help="SpecAugment masks per axis (default 1)")
    a.add_argument("--mixup", type=float, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) weights (waveform models)")
    _add_label_options(p, within)
    h = p.add_argument_group("data and hardware" + within)
    h.add_argument("--encoding-override", choices=ENCODINGS, help="train per window on a stack10 dataset (window)")
    h.add_argument("--workers", type=int, metavar="N", help="data-loader processes (default min(8, cores - 1))")
    h.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads of the training process (default: PyTorch's, one per core); fewer leaves cores "
                        "to other jobs on the machine")
    h.add_argument("--device", choices=DEVICES, help="auto (default: cuda > mps > cpu), cpu, cuda or mps")
    h.add_argument("--precision", choices=PRECISIONS, help="default 16-mixed on CUDA, 32-true elsewhere")
    h.add_argument("--devices", type=int, metavar="N", help="devices per run; N > 1 trains with DDP")
    h.add_argument("--seed", type=int, help="random seed (default 0)")
    h.add_argument("--max-minutes", type=float, metavar="M", help="stop at the epoch end after which another epoch would exceed M minutes")
    h.add_argument("--no-progress", action="store_true", help="no progress bars")


def float_pair(text: str) -> tuple[float, float]:
    """An argparse type for ``LO,HI`` ranges (one number: LO = HI), e.g. ``--background-snr-db 0,20``."""
    lo, sep, hi = text.partition(",")
    try:
        return (float(lo), float(hi if sep else lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0,20), got {text!r}") from None


def _add_label_options(p: argparse.ArgumentParser, within: str) -> None:
    """Labels, loss and no-bird options (:mod:`birdspec.training.multilabel`)."""
    from birdspec.training.config import THRESHOLD_SPLITS
    from birdspec.training.multilabel import LABEL_MODES, MULTI_LOSSES

    g = p.add_argument_group("labels and no-bird windows" + within)
    g.add_argument("--labels", choices=LABEL_MODES,
                   help="primary (default, the study's: softmax over the primary label, with an implicit 'no bird' "
                        "class when there are no-bird samples) or multi (sigmoid outputs, targets from primary + "
                        "secondary labels; prediction then uses sigmoid scores)")
    g.add_argument("--secondary-weight", type=float, metavar="W", help="target of a secondary label with --labels multi (default 0.5)")
    g.add_argument("--loss", choices=MULTI_LOSSES, help="multi-label loss: bce (default), focal or asl (asymmetric)")
    g.add_argument("--focal-gamma", type=float, metavar="G", help="focal loss gamma (default 2)")
    g.add_argument("--asl-gamma-neg", type=float, metavar="G", help="asymmetric loss gamma of negatives (default 4)")
    g.add_argument("--asl-gamma-pos", type=float, metavar="G", help="asymmetric loss gamma of positives (default 1)")
    g.add_argument("--asl-clip", type=float, metavar="M", help="asymmetric loss probability margin of negatives (default 0.05)")
    g.add_argument("--nocall-fraction", type=float, metavar="F",
                   help="share of no-bird training samples (default 0.2 for per-window runs, 0 for stack10 and "
                        "--recipe study; 0: a closed-world model that names a species in every window): quiet "
                        "stretches of the training recordings (an energy rule), built-in synthetic backgrounds "
                        "(silence, noise, wind, rain, hum, frog/insect chorus at -90 to -20 dBFS) and --background "
                        "recordings")
    g.add_argument("--synthetic-nocall", action=argparse.BooleanOptionalAction, default=None,
                   help="draw no-bird samples from the built-in synthetic backgrounds too (default on)")
    g.add_argument("--synthetic-calls", action=argparse.BooleanOptionalAction, default=None,
                   help="draw no-bird samples from synthetic call-like sounds too (trills, whistles, harmonic stacks, "
                        "buzzes at other pitches), so a call that is none of the classes is 'no bird' (default off)")
    g.add_argument("--background", metavar="DIR", help="recordings without the classes' birds, for no-bird samples")
    g.add_argument("--background-mix", metavar="DIR", help="mix recordings of DIR under half the training samples")
    g.add_argument("--mix-nocall", action=argparse.BooleanOptionalAction, default=None,
                   help="mix the training side's no-bird audio (quiet stretches, synthetic backgrounds, --background) "
                        "under half the training samples too (default off)")
    g.add_argument("--background-snr-db", type=float_pair, metavar="LO,HI",
                   help="SNR range of --background-mix and --mix-nocall (default 0,20)")
    d = p.add_argument_group("detection thresholds" + within)
    d.add_argument("--thresholds-on", choices=THRESHOLD_SPLITS,
                   help="where the per-class detection thresholds predict uses are chosen after training: val "
                        "(default: the validation recordings and their no-bird samples) or train (in-sample)")
    d.add_argument("--temperature-scaling", action=argparse.BooleanOptionalAction, default=None,
                   help="fit a temperature on the same windows first, so scores are closer to probabilities (default off)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a model on a prepared dataset",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET_DIR", nargs="?", help="a folder written by `birdspec prepare` (optional with --resume)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to write (must not hold another run)")
    p.add_argument(
        "--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
        help="continue RUN_DIR (or --out) from its last completed epoch with its saved settings",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_train_options(p)
    p.set_defaults(func=run)
    return p


def parse_key_values(items: list[str], *, flag: str = "--model-option") -> dict[str, Any]:
    """``KEY=VALUE`` options (repeatable flags) -> a dict; values are JSON when they parse, else strings."""
    from birdspec.errors import ConfigError

    opts: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} needs KEY=VALUE, got {item!r}")
        try:
            opts[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.replace("-", "_")] = value
    return opts


def config_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """The TrainConfig of the command line: ``base`` (a resumed run's), the ``--recipe`` or the
    defaults, with the options given."""
    from birdspec.errors import ConfigError
    from birdspec.training.config import TrainConfig

    given = {field: getattr(args, dest) for dest, field in FIELDS.items() if getattr(args, dest) is not None}
    if args.model_option:
        given["model_options"] = parse_key_values(args.model_option)
    if getattr(args, "frontend_option", None):
        given["frontend_options"] = parse_key_values(args.frontend_option, flag="--frontend-option")
    given["progress_bar"] = not args.no_progress
    recipe = getattr(args, "recipe", None)
    if base is not None:
        if recipe:
            raise ConfigError("--recipe starts a new run; a resumed run keeps its settings (give single options instead)")
        return replace(base, **given)
    if recipe:
        return TrainConfig.from_recipe(recipe, encoding=_sample_encoding(args), **given)
    return TrainConfig(**given)


def _sample_encoding(args: argparse.Namespace) -> str:
    """'window' or 'stack10': what the training samples will be (--encoding-override, else the dataset's)."""
    if getattr(args, "encoding_override", None):
        return str(args.encoding_override)
    if not getattr(args, "dataset", None):
        return "window"
    from birdspec.data.prepared import PreparedDataset

    return PreparedDataset(args.dataset).encoding.name


def run(args: argparse.Namespace) -> int:
    from birdspec.errors import ConfigError
    from birdspec.prediction.onnx_runtime import export_beside
    from birdspec.runtime import set_cpu_threads
    from birdspec.training import TrainConfig, read_run_config, train

    set_cpu_threads(getattr(args, "threads", None))

    if isinstance(args.resume, str):
        if args.out and args.out != args.resume:
            raise ConfigError("give the run directory once: --resume RUN_DIR (or --out RUN_DIR --resume)")
        args.out = args.resume
    if not args.out:
        raise ConfigError("give the run directory with --out RUN_DIR")
    if args.resume:
        saved = TrainConfig.from_dict(read_run_config(args.out)["train_config"])
        result = train(args.dataset, args.out, config_from_args(args, saved), resume=True, export=export_beside)
    else:
        if not args.dataset:
            raise ConfigError("give the prepared dataset: birdspec train DATASET_DIR --out RUN_DIR")
        result = train(args.dataset, args.out, config_from_args(args), export=export_beside)
    if not result.is_global_zero:  # an extra DDP process: rank 0 reports
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "run_dir": str(result.run_dir),
                    "best_epoch": result.best_epoch,
                    "best_val_acc": result.best_val_acc,
                    "best_val_loss": result.best_val_loss,
                    "epochs_run": result.epochs_run,
                    "train_time_s": result.train_time_s,
                    "status": result.status,
                    "device": result.device,
                    "best_checkpoint": str(result.best_checkpoint),
                },
                indent=2,
            )
        )
        return 0
    print(f"run            {result.run_dir}")
    print(f"model          {result.config.model} ({result.num_parameters:,} parameters) on {result.device}")
    print(f"epochs         {result.epochs_run} ({result.status}, {result.train_time_s:.1f} s)")
    print(f"best epoch     {result.best_epoch}: val acc {result.best_val_acc:.4f}, val loss {result.best_val_loss:.4f}")
    print(f"checkpoint     {result.best_checkpoint}")
    return 0
