"""The run directory a training writes, read without PyTorch (evaluation, CV, sweeps and compare use it).

Layout::

    RUN_DIR/
      config.json            everything to rebuild model and data pipeline (TrainConfig, model config,
                             dataset path and settings, encoding, frontend, classes, train/val recording ids)
      metrics.csv            one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc,
                             val_acc_species, val_acc_nobird, lr, epoch_time_s, elapsed_s (epochs counted
                             from 1; val_acc counts the fixed no-bird samples too, its two parts follow it)
      curves.png             loss and accuracy, training vs validation
      checkpoints/best.pt    birdspec checkpoint of the epoch with the best validation accuracy (its species and
                             no-bird parts counting half each when there are no-bird samples)
      checkpoints/last.pt    birdspec checkpoint of the last complete epoch
      checkpoints/best.runtime/  the ONNX runtime export of best.pt (fast CPU prediction; also last.runtime/)
      predictions_val.csv    per validation sample, from best.pt: sample, recording_id, row, window,
                             label, label_id, predicted, predicted_id, correct, prob_<class>...
      summary.json           best_epoch, best_val_acc, best_val_loss, train_time_s, epochs_run, ...
      lightning/last.ckpt    Lightning's resume state (optimizer, scheduler, loops) for --resume
      lightning/logs/        Lightning's raw CSV logs (and TensorBoard's, when installed)

The file names are defined here only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdspec.errors import CheckpointError, ConfigError
from birdspec.models.checkpoint import CHECKPOINTS_DIR

if TYPE_CHECKING:  # pragma: no cover
    from birdspec.training.config import TrainConfig

RUN_FORMAT = "birdspec-run"
RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
EPOCH_METRICS_FILE = "metrics.csv"
VAL_PREDICTIONS_FILE = "predictions_val.csv"
CURVES_FILE = "curves.png"
LIGHTNING_DIR = "lightning"
LIGHTNING_LAST = "last.ckpt"


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run directory.

    Raises:
        CheckpointError: not a run directory, or a corrupt config.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a birdspec run directory (no {CONFIG_FILE}); train one with `birdspec train`")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt ({exc})") from exc
    if cfg.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path}: not a birdspec run config")
    return cfg


def is_finished(run_dir: str | Path) -> bool:
    """True when the run wrote its ``summary.json`` (training ended)."""
    return (Path(run_dir) / SUMMARY_FILE).is_file()


def is_started(run_dir: str | Path) -> bool:
    """True when the run wrote its ``config.json`` (an interrupted run can be resumed)."""
    return (Path(run_dir) / CONFIG_FILE).is_file()


def check_fresh_run_dir(out: Path) -> None:
    """Refuse to start a run in a folder that holds one.

    Raises:
        ConfigError: ``out`` holds a run (says how to continue it).
    """
    markers = [out / CONFIG_FILE, out / CHECKPOINTS_DIR, out / LIGHTNING_DIR]
    if any(p.exists() for p in markers):
        raise ConfigError(
            f"{out} already holds a training run; continue it with --resume, or choose another --out (or delete it)"
        )


def resumed_config(out: Path, config: TrainConfig | None, *, given_rows: bool) -> tuple[dict[str, Any], TrainConfig]:
    """The saved run config of ``out`` and the config to continue with (architecture unchanged).

    Raises:
        ConfigError: ``config`` changes what defines the network or its outputs, or rows were given.
    """
    from birdspec.training.config import TrainConfig

    saved = read_run_config(out)
    saved_cfg = TrainConfig.from_dict(saved["train_config"])
    cfg = (config or saved_cfg).resolved()
    if cfg.nocall_fraction is None:  # left to the default: what the run decided when it started
        cfg = dataclasses.replace(cfg, nocall_fraction=saved_cfg.nocall_fraction)
    changed = saved_cfg.architecture_changes(cfg)
    if saved_cfg.activation != cfg.activation:
        changed.append("nocall_fraction (with or without no-bird samples)")
    if changed:
        raise ConfigError(f"a resumed run cannot change {', '.join(changed)}; start a new run with another --out")
    if given_rows:
        raise ConfigError("a resumed run keeps its own training/validation rows; do not pass rows_train/rows_val")
    return saved, cfg
