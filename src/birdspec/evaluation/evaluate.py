"""Evaluate a checkpoint on rows of a prepared dataset: metrics, predictions and figures.

:func:`evaluate_run` evaluates a run directory (``birdspec evaluate RUN_DIR``);
:func:`evaluate_checkpoint` any checkpoint on any manifest rows (used by
cross-validation). Both write into ``out_dir``:

``metrics.json``
    ``{"recording": {...}, "sample": {...}, checkpoint, epoch, split, rows_source,
    dataset, model, encoding, classes, aggregation, n_recordings, n_samples, ...}``;
    each level holds the keys of :func:`~birdspec.evaluation.metrics.classification_metrics`
    (accuracy, balanced_accuracy, macro_f1, micro_f1, roc_auc_macro, cmap, log_loss,
    n, top_k_accuracy, ...).
``per_class.csv``
    ``level, label_id, label, scientific_name, common_name, precision, recall, f1,
    support, predicted, average_precision, roc_auc``.
``predictions.csv``
    both levels (``level`` column): ``id, row, window, label_id, label, predicted_id,
    predicted, correct, prob_<class>...`` — the metrics recompute from it.
``confusion_matrix.png`` / ``per_class.png``
    recording level: counts and row-normalised matrices; precision/recall/F1 bars.
``reliability.png``
    sample level: the reliability diagram of the scores (``metrics.json``'s ``sample.calibration``:
    ``ece, mce, n, n_bins, kind, activation, temperature``; :mod:`birdspec.evaluation.calibration`).

Recording level = windows aggregated by the mean of their probabilities
(:func:`~birdspec.evaluation.inference.aggregate_recordings`); for stack10 it
equals the sample level.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec import __version__
from birdspec.config import EVAL_SPLITS
from birdspec.data.prepared import DATASET_FILE, PreparedDataset
from birdspec.errors import ConfigError, DataError
from birdspec.evaluation.calibration import Reliability, calibration_of, plot_reliability
from birdspec.evaluation.inference import Predictions, predict_checkpoint
from birdspec.evaluation.metrics import (
    class_display_names,
    classification_metrics,
    confusion_counts,
    per_class_metrics,
)
from birdspec.fileio import write_csv, write_json
from birdspec.models.checkpoint import CHECKPOINT_NAMES, resolve_checkpoint_path

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class.csv"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.png"
PER_CLASS_PLOT = "per_class.png"
RELIABILITY_PLOT = "reliability.png"
SPLITS = EVAL_SPLITS


def eval_dir_name(split: str, checkpoint: str = "best") -> str:
    """The folder an evaluation of ``split`` writes in a run: ``eval_val``, ``eval_test``, ``eval_val_last``."""
    return f"eval_{split}" + ("" if checkpoint == "best" else f"_{Path(checkpoint).stem}")


AGGREGATION = "recording probabilities = mean of its window (sample) softmax probabilities; predicted = arg-max"


@dataclass(frozen=True)
class EvaluationResult:
    """What an evaluation produced.

    Attributes:
        out_dir: where the files were written (None when nothing was written).
        metrics: the ``metrics.json`` object.
        per_class: the ``per_class.csv`` frame (both levels).
        samples / recordings: the predictions of each level.
        files: written file name -> path.
    """

    out_dir: Path | None
    metrics: dict[str, Any]
    per_class: pd.DataFrame
    samples: Predictions
    recordings: Predictions
    files: Mapping[str, Path]

    def level(self, name: str) -> dict[str, Any]:
        """The metrics object of ``'recording'`` or ``'sample'``."""
        return self.metrics[name]



def level_metrics(pred: Predictions, *, class_info: Sequence[Mapping[str, Any]] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Scalar metrics and the per-class frame of one level."""
    metrics = classification_metrics(pred.y_true, pred.probs, classes=pred.classes)
    per = per_class_metrics(pred.y_true, pred.probs, classes=list(pred.classes), class_info=class_info)
    per.insert(0, "level", pred.level)
    return metrics, per


def sample_calibration(
    samples: Predictions, *, activation: str, temperature: float = 1.0, targets: np.ndarray | None = None,
) -> tuple[dict[str, Any], Reliability]:
    """``metrics.json``'s ``sample.calibration`` entry and its :class:`~birdspec.evaluation.calibration.Reliability`.

    Args:
        activation / temperature: how the checkpoint turned logits into ``samples.probs``.
        targets: the ``(n, K)`` truth of a sigmoid checkpoint (default: one-hot of ``samples.y_true``).
    """
    truth: np.ndarray = samples.y_true
    if activation == "sigmoid":
        truth = targets if targets is not None else np.eye(len(samples.classes))[samples.y_true]
    rel = calibration_of(samples.probs, truth, activation=activation)
    return {**rel.summary(), "activation": activation, "temperature": float(temperature)}, rel


def evaluate_predictions(
    samples: Predictions,
    recordings: Predictions,
    *,
    out_dir: str | Path | None,
    class_info: Sequence[Mapping[str, Any]] | None = None,
    meta: Mapping[str, Any] | None = None,
    plots: bool = True,
    title: str = "",
    calibration: tuple[dict[str, Any], Reliability] | None = None,
) -> EvaluationResult:
    """Metrics of both levels from predictions; write the evaluation files when ``out_dir`` is given.

    ``calibration``: :func:`sample_calibration`'s result, recorded at the sample level (and drawn).
    """
    m_rec, pc_rec = level_metrics(recordings, class_info=class_info)
    m_smp, pc_smp = level_metrics(samples, class_info=class_info)
    if calibration is not None:
        m_smp["calibration"] = dict(calibration[0])
    metrics: dict[str, Any] = {
        "recording": m_rec,
        "sample": m_smp,
        **dict(meta or {}),
        "classes": list(samples.classes),
        "aggregation": AGGREGATION,
        "n_recordings": len(recordings),
        "n_samples": len(samples),
        "birdspec_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    per_class = pd.concat([pc_rec, pc_smp], ignore_index=True)
    files: dict[str, Path] = {}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / METRICS_FILE, metrics)
        write_csv(out / PER_CLASS_FILE, per_class)
        # full float precision: the metrics recompute exactly from the probabilities
        write_csv(out / PREDICTIONS_FILE, pd.concat([samples.to_frame(), recordings.to_frame()], ignore_index=True), float_format=None)
        files = {METRICS_FILE: out / METRICS_FILE, PER_CLASS_FILE: out / PER_CLASS_FILE, PREDICTIONS_FILE: out / PREDICTIONS_FILE}
        if plots:
            from birdspec.evaluation.plots import plot_confusion, plot_per_class

            names = class_display_names(recordings.classes, class_info)
            counts = confusion_counts(recordings.y_true, recordings.y_pred, num_classes=len(recordings.classes))
            files[CONFUSION_FILE] = plot_confusion(
                counts, names, out / CONFUSION_FILE, title=f"Confusion matrix, recording level{title}"
            )
            files[PER_CLASS_PLOT] = plot_per_class(
                pc_rec, out / PER_CLASS_PLOT, names=names, title=f"Per-class precision, recall and F1, recording level{title}"
            )
            if calibration is not None:
                files[RELIABILITY_PLOT] = plot_reliability(
                    calibration[1], out / RELIABILITY_PLOT, title=f"Reliability, sample level{title}"
                )
        log.info("wrote the evaluation to %s", out)
    return EvaluationResult(out, metrics, per_class, samples, recordings, files)


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: PreparedDataset | str | Path,
    *,
    rows: Sequence[int] | np.ndarray,
    out_dir: str | Path | None,
    split: str = "custom",
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    plots: bool = True,
    meta: Mapping[str, Any] | None = None,
    threshold_rows: Sequence[int] | np.ndarray | None = None,
    threshold_label: str = "the validation split",
) -> EvaluationResult:
    """Evaluate ``checkpoint`` on manifest ``rows`` of a prepared dataset (see the module doc for the files).

    A multi-label (sigmoid) checkpoint also gets ``metrics.json``'s ``multilabel`` object
    (:mod:`birdspec.evaluation.multilabel`), its thresholds chosen on ``threshold_rows`` (the
    validation split, or what ``threshold_label`` names; None: on ``rows``).

    Args:
        checkpoint: a birdspec checkpoint file (or a folder with best.pt/last.pt).
        data: the prepared dataset (its labels are mapped to the checkpoint's classes by name).
        rows: manifest rows to evaluate.
        out_dir: where to write the files (None: compute only).
        split: a name for these rows, recorded in ``metrics.json``.
        meta: extra metadata for ``metrics.json``.

    Raises:
        DataError: no rows, classes the model does not know, or an incompatible encoding.
        CheckpointError: an unreadable checkpoint.
    """
    data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise DataError(f"{data.root}: no recordings to evaluate in split {split!r}; choose another --split")
    samples, recordings, ckpt = predict_checkpoint(
        checkpoint, data, rows=rows, batch_size=batch_size, device=device, workers=workers
    )
    info = {
        "checkpoint": ckpt.source,
        "epoch": ckpt.epoch,
        "split": split,
        "dataset": str(data.root.resolve()),
        "model": ckpt.name,
        "encoding": ckpt.encoding.name,
        **dict(meta or {}),
    }
    if ckpt.activation == "sigmoid":
        from birdspec.evaluation.multilabel import multilabel_report

        info["multilabel"] = multilabel_report(
            checkpoint, data, rows=rows, threshold_rows=threshold_rows, threshold_label=threshold_label,
            samples=samples, recordings=recordings,
            batch_size=batch_size, device=device, workers=workers,
        )
    targets = None
    if ckpt.activation == "sigmoid":
        from birdspec.evaluation.multilabel import manifest_truth

        targets = manifest_truth(data, ckpt.classes)[samples.rows]
    calibration = sample_calibration(samples, activation=ckpt.activation, temperature=getattr(ckpt, "temperature", 1.0),
                                     targets=targets)
    epoch = f" (epoch {ckpt.epoch})" if ckpt.epoch is not None else ""
    title = f"\n{ckpt.name} ({ckpt.encoding.name}), {split} split, {Path(ckpt.source).name}{epoch}"
    return evaluate_predictions(
        samples, recordings, out_dir=out_dir, class_info=ckpt.class_info or data.class_info,
        meta=info, plots=plots, title=title, calibration=calibration,
    )


def checkpoint_of_run(run_dir: str | Path, checkpoint: str = "best") -> Path:
    """The checkpoint file of a run: ``checkpoint`` 'best' / 'last', or a ``.pt`` file given as is.

    Raises:
        CheckpointError: it does not exist (the message says what to do).
    """
    if checkpoint in CHECKPOINT_NAMES:
        return resolve_checkpoint_path(run_dir, which=checkpoint)
    if Path(checkpoint).suffix != ".pt":
        raise ConfigError(f"unknown checkpoint {checkpoint!r}; use {', '.join(CHECKPOINT_NAMES)} or a .pt file")
    return resolve_checkpoint_path(checkpoint)


def run_rows(data: PreparedDataset, run_config: Mapping[str, Any], split: str) -> tuple[np.ndarray, str]:
    """Manifest rows of ``split`` for a run: its recorded train/val recordings when the dataset has them all.

    Returns ``(rows, source)`` with source 'run' (the run's own recording ids),
    'dataset' (the dataset's split column) or 'all'.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use val, train or all")
    if split == "all":
        return data.select(split="all"), "all"
    ids = list((run_config.get("rows") or {}).get(split) or [])
    if ids:
        rows, missing = data.rows_for_ids(ids)
        if not missing:
            return rows, "run"
        log.warning(
            "%d of the run's %s recordings are not in %s; evaluating the dataset's own %s split instead",
            len(missing), split, data.root, split,
        )
    return data.select(split=split), "dataset"


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | Path | None = None,
    split: str = "val",
    checkpoint: str = "best",
    out_dir: str | Path | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    plots: bool = True,
) -> EvaluationResult:
    """Evaluate a training run directory (``birdspec evaluate``).

    Args:
        run_dir: a folder written by ``birdspec train``.
        data: the prepared dataset (default: the one recorded in the run's ``config.json``).
        split: 'val' (default) or 'train': the run's own validation/training recordings
            (the dataset's split column when the dataset lacks them); 'all': every recording.
        checkpoint: 'best', 'last' or a checkpoint file.
        out_dir: default ``RUN_DIR/eval_<split>`` (``eval_<split>_last`` for the last checkpoint).
    """
    from birdspec.training.rundir import read_run_config

    run = Path(run_dir)
    cfg = read_run_config(run)
    dataset_dir = Path(data) if data is not None else Path((cfg.get("dataset") or {}).get("path", ""))
    if data is None and not (dataset_dir / DATASET_FILE).is_file():
        raise DataError(f"the run's dataset {dataset_dir} is not there (moved?); pass it with --data DIR")
    prepared = PreparedDataset(dataset_dir)
    ckpt_path = checkpoint_of_run(run, checkpoint)
    rows, source = run_rows(prepared, cfg, split)
    val_rows = run_rows(prepared, cfg, "val")[0] if split != "val" else rows
    if out_dir is None:
        out_dir = run / eval_dir_name(split, checkpoint)
    return evaluate_checkpoint(
        ckpt_path, prepared, rows=rows, out_dir=out_dir, split=split, batch_size=batch_size, device=device,
        workers=workers, plots=plots, meta={"run_dir": str(run.resolve()), "rows_source": source},
        threshold_rows=val_rows,
    )


def format_metrics(metrics: Mapping[str, Any], per_class: pd.DataFrame | None = None) -> str:
    """A readable text table of both levels (and per-class recording-level scores)."""
    levels = [lv for lv in ("recording", "sample") if lv in metrics]
    rows = [
        ("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro F1"),
        ("micro_f1", "micro F1"), ("macro_precision", "macro precision"), ("macro_recall", "macro recall"),
        ("roc_auc_macro", "ROC-AUC (macro, OvR)"), ("cmap", "cmAP (macro AP)"), ("log_loss", "log loss"),
    ]
    ks = sorted({k for lv in levels for k in (metrics[lv].get("top_k_accuracy") or {})}, key=int)
    lines = [
        (f"model {metrics.get('model')} ({metrics.get('encoding')}), split {metrics.get('split')}, "
        f"checkpoint {Path(str(metrics.get('checkpoint'))).name} (epoch {metrics.get('epoch')})"),
        f"{'metric':<22}" + "".join(f"{lv:>12}" for lv in levels),
    ]

    def cell(v: Any) -> str:
        return f"{v:>12.4f}" if isinstance(v, (int, float)) and v is not None else f"{'-':>12}"

    lines.append(f"{'n':<22}" + "".join(f"{metrics[lv]['n']:>12d}" for lv in levels))
    for key, label in rows:
        lines.append(f"{label:<22}" + "".join(cell(metrics[lv].get(key)) for lv in levels))
    for k in ks:
        if k == "1":
            continue
        lines.append(f"{'top-' + k + ' accuracy':<22}" + "".join(cell((metrics[lv].get('top_k_accuracy') or {}).get(k)) for lv in levels))
    if metrics.get("multilabel"):
        from birdspec.evaluation.multilabel import format_multilabel

        lines.extend(format_multilabel(metrics["multilabel"]))
    absent = metrics.get("recording", {}).get("classes_absent") or []
    if absent:
        lines.append(f"classes absent from this split (ROC-AUC/cmAP over the others): {', '.join(absent)}")
    if per_class is not None and len(per_class):
        pc = per_class[per_class["level"] == "recording"] if "level" in per_class else per_class
        width = max(12, *(len(str(x)) for x in pc["label"]))
        lines.append("")
        lines.append("per class (recording level)")
        lines.append(f"{'label':<{width}} {'precision':>10} {'recall':>10} {'F1':>10} {'support':>8}  name")
        r: Any  # a row of the per-class table
        for r in pc.itertuples(index=False):
            lines.append(f"{r.label:<{width}} {r.precision:>10.3f} {r.recall:>10.3f} {r.f1:>10.3f} {int(r.support):>8d}  {r.common_name or ''}")
    return "\n".join(lines)
