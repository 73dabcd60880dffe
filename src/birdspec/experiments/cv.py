"""K-fold cross-validation over a prepared dataset's fold assignment (``manifest.csv`` ``fold``).

For every fold ``k`` the recordings of fold ``k`` are the **test** set and
all other folds the training pool. Two protocols:

``inner-val`` (default)
    The training pool is split per class (stratified, seeded by
    ``seed + k``) into inner-train and inner-validation recordings
    (``inner_val_fraction``). Training selects its best epoch on the inner
    validation split (``checkpoints/best.pt``); the test fold is never seen
    before the final evaluation.
``fixed-epochs``
    No inner split: train on the whole training pool for exactly
    ``config.epochs`` epochs and evaluate the **last** checkpoint. Training
    needs validation rows, so its per-epoch validation curves are computed on
    the test fold *for monitoring only*: nothing is selected on them (early
    stopping is refused in this mode, ``best.pt`` is not used, and the detection
    thresholds are chosen on the training folds, in-sample: ``thresholds_on='train'``).

The selected checkpoint is evaluated on the test fold at the recording level
(windows: mean of probabilities). ``CV_DIR`` then holds:

``fold_<k>/``
    the fold's training run (``config.json`` lists its train/val recording ids),
    ``eval_test/`` (the evaluation files) and ``fold_result.json``.
``cv.json``
    ``accuracy_mean, accuracy_std, macro_f1_mean, macro_f1_std, balanced_accuracy_mean/std,
    folds: [{fold, accuracy, macro_f1, balanced_accuracy, roc_auc_macro, cmap, n, n_samples,
    n_train, n_val, run_dir, checkpoint, best_epoch, epochs_run, train_time_s}], pooled: {metrics
    of all test predictions together}, model, encoding, protocol, inner_val_fraction, seed,
    dataset, train_config, std_ddof``. Standard deviations are sample standard deviations
    (``ddof=1``) over folds.
``cv_predictions.csv``
    pooled recording-level test predictions (``fold`` column + ``predictions.csv`` columns).
``cv_confusion_matrix.png`` / ``cv_folds.png``
    pooled confusion matrix; accuracy and macro F1 per fold.

Resuming: a fold with ``fold_result.json`` is skipped; a fold whose training
finished (``summary.json``) is only evaluated; an interrupted fold's training
continues from its last epoch. Changing the settings between runs is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec import __version__
from birdspec.data.splits import file_groups, inner_split
from birdspec.errors import ConfigError, DataError
from birdspec.evaluation.evaluate import PREDICTIONS_FILE, eval_dir_name
from birdspec.experiments import train_with_export
from birdspec.experiments.settings import comparable_config, config_differences, refuse_other_settings
from birdspec.fileio import locks_output, read_json, write_csv, write_json
from birdspec.models.checkpoint import resolve_checkpoint_path
from birdspec.training.rundir import CONFIG_FILE, SUMMARY_FILE, is_finished, is_started

log = logging.getLogger(__name__)

CV_JSON = "cv.json"
CV_SETTINGS = "cv_settings.json"
CV_PREDICTIONS = "cv_predictions.csv"
CV_CONFUSION = "cv_confusion_matrix.png"
CV_FOLDS_PNG = "cv_folds.png"
FOLD_RESULT = "fold_result.json"


@dataclass(frozen=True)
class CVResult:
    """What :func:`run_cv` produced.

    Attributes:
        out_dir: the CV directory.
        summary: the ``cv.json`` object.
        predictions: pooled recording-level test predictions (``cv_predictions.csv``).
        trained: folds trained (or continued) in this call.
        skipped: folds found finished on disk.
    """

    out_dir: Path
    summary: dict[str, Any]
    predictions: pd.DataFrame
    trained: int
    skipped: int


def dataset_folds(data: Any) -> list[int]:
    """The fold ids of a prepared dataset's manifest.

    Raises:
        ConfigError: when the dataset has no folds, or only one.
    """
    folds = sorted(int(f) for f in set(data.manifest["fold"]) if int(f) >= 0) if "fold" in data.manifest else []
    if len(folds) < 2:
        raise ConfigError(
            f"{data.root} has no fold assignment (or one fold); prepare it with --folds K (e.g. 5) to cross-validate"
        )
    return folds


@locks_output("out_dir")
def run_cv(
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: Any,
    *,
    inner_val_fraction: float = 0.2,
    fixed_epochs: bool = False,
    folds: Sequence[int] | None = None,
    eval_batch_size: int = 32,
    train_fn: Callable[..., Any] | None = None,
) -> CVResult:
    """Cross-validate ``config`` over the dataset's folds (see the module doc).

    Args:
        dataset_dir: a prepared dataset with folds (``birdspec prepare --folds K``).
        out_dir: the CV directory (an existing one with the same settings is resumed).
        config: the :class:`~birdspec.training.TrainConfig` every fold trains with.
        inner_val_fraction: share of each class's training-pool recordings used for
            model selection (inner-val protocol).
        fixed_epochs: the fixed-epochs protocol instead.
        folds: a subset of fold ids to run (default: all).
        eval_batch_size: batch size of the test-fold evaluation.
        train_fn: the training function (default :func:`birdspec.training.train`).

    Raises:
        ConfigError: no folds, bad settings, or a resumed CV with other settings.
    """
    from birdspec.data.prepared import PreparedDataset

    train_fn = train_fn or train_with_export
    cfg = config.resolved()
    protocol = "fixed-epochs" if fixed_epochs else "inner-val"
    if fixed_epochs and cfg.thresholds_on != "train":  # the validation rows are the test fold: never choose on them
        cfg = dataclasses.replace(cfg, thresholds_on="train")
    if fixed_epochs and cfg.early_stopping_patience:
        raise ConfigError("--fixed-epochs trains for exactly --epochs epochs; drop --early-stopping")
    if not fixed_epochs and not 0 < inner_val_fraction < 1:
        raise ConfigError(f"--inner-val-fraction must be in (0, 1), got {inner_val_fraction}")
    data = PreparedDataset(dataset_dir)
    all_folds = dataset_folds(data)
    chosen = all_folds if folds is None else [int(f) for f in folds]
    unknown = sorted(set(chosen) - set(all_folds))
    if unknown:
        raise ConfigError(f"unknown folds {unknown}; {data.root} has folds {all_folds}")
    out = Path(out_dir)
    _claim(out, {
        "format": "birdspec-cv",
        "dataset": str(data.root.resolve()),
        "protocol": protocol,
        "inner_val_fraction": None if fixed_epochs else inner_val_fraction,
        "train_config": comparable_config(cfg.to_dict()),
    })
    fold = _FoldRunner(data=data, dataset_dir=dataset_dir, out=out, cfg=cfg, protocol=protocol,
                       inner_val_fraction=inner_val_fraction, eval_batch_size=eval_batch_size, train_fn=train_fn)
    fold_results = [fold.run(k) for k in chosen]
    pooled = []
    for k in chosen:
        preds = pd.read_csv(out / f"fold_{k}" / eval_dir_name("test") / PREDICTIONS_FILE, dtype={"id": str, "label": str, "predicted": str})
        preds = preds[preds["level"] == "recording"].drop(columns="level")
        preds.insert(0, "fold", k)
        pooled.append(preds)
    predictions = pd.concat(pooled, ignore_index=True)
    summary = _summarise(fold_results, predictions, data=data, cfg=cfg, protocol=protocol,
                         inner_val_fraction=None if fixed_epochs else inner_val_fraction, out=out)
    return CVResult(out, summary, predictions, fold.trained, fold.skipped)


def _claim(out: Path, settings: dict[str, Any]) -> None:
    """Write ``cv_settings.json``; refuse a CV folder that holds a cross-validation with other settings."""
    old = read_json(out / CV_SETTINGS)
    if old:
        old["train_config"] = comparable_config(old.get("train_config") or {})
        diffs = [f"{k}: {old.get(k)!r} -> {settings[k]!r}" for k in settings
                 if k != "train_config" and old.get(k) != settings[k]]
        diffs += config_differences(old["train_config"], settings["train_config"])
        refuse_other_settings(out, "a cross-validation", diffs)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CV_SETTINGS, settings)


@dataclass
class _FoldRunner:
    """Trains (or continues) and evaluates one fold at a time; counts what it trained and skipped."""

    data: Any
    dataset_dir: str | Path
    out: Path
    cfg: Any
    protocol: str
    inner_val_fraction: float
    eval_batch_size: int
    train_fn: Callable[..., Any]
    trained: int = 0
    skipped: int = 0

    def run(self, k: int) -> dict[str, Any]:
        """The fold's result (``fold_result.json``): read when finished earlier, else trained and evaluated."""
        data, fold_dir = self.data, self.out / f"fold_{k}"
        fixed = self.protocol == "fixed-epochs"
        test_rows = data.select(folds=[k])
        pool = data.select(exclude_folds=[k])
        if test_rows.size == 0 or pool.size == 0:
            raise DataError(f"fold {k} of {data.root} leaves no test or no training recordings; prepare with fewer folds")
        result = read_json(fold_dir / FOLD_RESULT)
        if result is not None:
            self.skipped += 1
            log.info("fold %d: finished earlier (accuracy %.4f), skipped", k, result.get("accuracy") or float("nan"))
            return result
        if fixed:
            train_rows, val_rows = pool, test_rows
        else:
            labels = data.manifest["label_id"].to_numpy()
            train_rows, val_rows = inner_split(pool, labels[pool], fraction=self.inner_val_fraction, seed=self.cfg.seed + k,
                                               groups=file_groups(data.manifest, pool))
        if not is_finished(fold_dir):
            self.trained += 1
            if is_started(fold_dir):
                log.info("fold %d: continuing its interrupted training", k)
                self.train_fn(self.dataset_dir, fold_dir, self.cfg, resume=True)
            else:
                log.info("fold %d: training on %d recordings, %s %d, testing on %d", k, train_rows.size,
                         "monitoring on the test fold," if fixed else "inner validation", val_rows.size, test_rows.size)
                self.train_fn(self.dataset_dir, fold_dir, self.cfg, rows_train=train_rows, rows_val=val_rows)
        return self._evaluate(k, fold_dir, test_rows)

    def _evaluate(self, k: int, fold_dir: Path, test_rows: np.ndarray) -> dict[str, Any]:
        from birdspec.evaluation.evaluate import evaluate_checkpoint  # noqa: F811

        fixed = self.protocol == "fixed-epochs"
        summary = read_json(fold_dir / SUMMARY_FILE) or {}
        run_cfg = read_json(fold_dir / CONFIG_FILE) or {}
        _check_no_leak(run_cfg, self.data.manifest["id"].astype(str).to_numpy()[test_rows], fixed_epochs=fixed, fold=k)
        ckpt = resolve_checkpoint_path(fold_dir, which="last" if fixed else "best")
        # multi-label thresholds: never chosen on the test fold (inner validation, else the training folds)
        side = "train" if fixed else "val"
        ids = set((run_cfg.get("rows") or {}).get(side) or [])
        threshold_rows = np.flatnonzero(self.data.manifest["id"].astype(str).isin(ids).to_numpy())
        ev = evaluate_checkpoint(
            ckpt, self.data, rows=test_rows, out_dir=fold_dir / eval_dir_name("test"), split=f"fold {k} (test)",
            batch_size=self.eval_batch_size, device=self.cfg.device,
            meta={"run_dir": str(fold_dir.resolve()), "fold": k, "protocol": self.protocol},
            threshold_rows=threshold_rows if threshold_rows.size else None,
            threshold_label="the training folds (in-sample: --fixed-epochs has no validation split)" if fixed
            else "the inner validation split",
        )
        rec = ev.metrics["recording"]
        result = {
            "fold": k,
            **{key: rec[key] for key in ("accuracy", "macro_f1", "balanced_accuracy", "roc_auc_macro", "cmap", "log_loss", "n")},
            "n_samples": ev.metrics["sample"]["n"],
            "n_train": len((run_cfg.get("rows") or {}).get("train") or []),
            "n_val": len((run_cfg.get("rows") or {}).get("val") or []),
            "run_dir": str(fold_dir),
            "checkpoint": str(ckpt),
            "best_epoch": summary.get("best_epoch"),
            "epochs_run": summary.get("epochs_run"),
            "train_time_s": summary.get("train_time_s"),
        }
        write_json(fold_dir / FOLD_RESULT, result)
        log.info("fold %d: test accuracy %.4f, macro F1 %.4f (n=%d)", k, result["accuracy"], result["macro_f1"], result["n"])
        return result


def _check_no_leak(run_cfg: Mapping[str, Any], test_ids: np.ndarray, *, fixed_epochs: bool, fold: int) -> None:
    """Guard: no test recording in the fold's training rows (nor in its validation rows, for inner-val)."""
    rows = run_cfg.get("rows") or {}
    test = set(test_ids.tolist())
    sides = ["train"] + ([] if fixed_epochs else ["val"])
    for side in sides:
        leaked = test & set(rows.get(side) or [])
        if leaked:
            raise DataError(
                f"fold {fold}: {len(leaked)} test recordings are in the run's {side} rows; the fold's run directory "
                "does not belong to this cross-validation (delete it and re-run)"
            )


def _summarise(
    fold_results: list[dict[str, Any]],
    predictions: pd.DataFrame,
    *,
    data: Any,
    cfg: Any,
    protocol: str,
    inner_val_fraction: float | None,
    out: Path,
) -> dict[str, Any]:
    from birdspec.evaluation.inference import predictions_from_frame
    from birdspec.evaluation.metrics import (
        class_display_names,
        classification_metrics,
        confusion_counts,
        mean_std,
    )
    from birdspec.evaluation.plots import plot_confusion, plot_fold_scores

    summary: dict[str, Any] = {"format": "birdspec-cv"}
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "roc_auc_macro", "cmap"):
        mean, std = mean_std([f.get(key) for f in fold_results])
        summary[f"{key}_mean"], summary[f"{key}_std"] = mean, std
    pred = predictions_from_frame(predictions.drop(columns="fold"), level="recording")
    summary.update({
        "std_ddof": 1,
        "num_folds": len(fold_results),
        "folds": fold_results,
        "pooled": classification_metrics(pred.y_true, pred.probs, classes=pred.classes),
        "model": cfg.model,
        "encoding": cfg.encoding_override or data.encoding.name,
        "protocol": protocol,
        "inner_val_fraction": inner_val_fraction,
        "selection": "best.pt on the inner validation split" if protocol == "inner-val" else "last.pt after exactly `epochs` epochs",
        "level": "recording (windows: mean of probabilities)",
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "dataset": str(data.root.resolve()),
        "classes": list(pred.classes),
        "train_config": cfg.to_dict(),
        "total_train_time_s": float(sum(f.get("train_time_s") or 0.0 for f in fold_results)),
        "birdspec_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    write_csv(out / CV_PREDICTIONS, predictions, float_format=None)  # full precision: the pooled metrics recompute exactly
    names = class_display_names(pred.classes, data.class_info)
    counts = confusion_counts(pred.y_true, pred.y_pred, num_classes=len(pred.classes))
    acc, f1 = summary["accuracy_mean"], summary["macro_f1_mean"]
    plot_confusion(
        counts, names, out / CV_CONFUSION,
        title=f"Cross-validation, pooled test folds, recording level\n{cfg.model} ({summary['encoding']}), "
        f"{len(fold_results)} folds, {protocol}: accuracy {acc:.3f} \u00b1 {summary['accuracy_std']:.3f}",
    )
    plot_fold_scores(
        fold_results, out / CV_FOLDS_PNG,
        title=f"Test-fold accuracy and macro F1, recording level\n{cfg.model} ({summary['encoding']}), {protocol}: "
        f"accuracy {acc:.3f} \u00b1 {summary['accuracy_std']:.3f}, macro F1 {f1:.3f} \u00b1 {summary['macro_f1_std']:.3f}",
    )
    write_json(out / CV_JSON, summary)
    log.info("cross-validation: accuracy %.4f \u00b1 %.4f, macro F1 %.4f \u00b1 %.4f over %d folds",
             acc, summary["accuracy_std"], f1, summary["macro_f1_std"], len(fold_results))
    return summary


def format_cv(summary: Mapping[str, Any]) -> str:
    """A readable text table of a ``cv.json`` object."""
    lines = [
        f"{summary['model']} ({summary['encoding']}), {summary['protocol']}, {summary['num_folds']} folds, recording level",
        f"{'fold':>6} {'n':>6} {'accuracy':>10} {'macro F1':>10} {'bal. acc':>10} {'train s':>9}",
    ]
    for f in summary["folds"]:
        lines.append(
            f"{f['fold']:>6} {f['n']:>6} {f['accuracy']:>10.4f} {f['macro_f1']:>10.4f} {f['balanced_accuracy']:>10.4f} "
            f"{(f.get('train_time_s') or 0):>9.1f}"
        )
    lines.append(f"accuracy  {summary['accuracy_mean']:.4f} \u00b1 {summary['accuracy_std']:.4f} (mean \u00b1 sample std over folds)")
    lines.append(f"macro F1  {summary['macro_f1_mean']:.4f} \u00b1 {summary['macro_f1_std']:.4f}")
    return "\n".join(lines)
