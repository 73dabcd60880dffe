"""Classification metrics from predicted probabilities (scikit-learn underneath).

Everything here takes ``y_true`` (label ids, ``(n,)``) and ``probs``
(class probabilities, ``(n, K)``, columns in the model's class order) and
returns plain-JSON values, so ``metrics.json`` can be recomputed from a saved
``predictions.csv`` with the same functions.

Conventions (also written into every metrics object under ``notes``):

- The predicted class is the arg-max of the probabilities.
- Macro precision/recall/F1 average over the classes that occur in the truth
  or in the predictions (scikit-learn's default label set); a class never
  predicted has precision 0 (``zero_division=0``).
- ROC-AUC (one-vs-rest) and average precision (cmAP, the BirdCLEF macro
  mean of per-class AP) are only defined for classes with at least one
  positive: they are averaged over the classes *present* in ``y_true``;
  ``classes_absent`` lists the others. ROC-AUC also needs a negative, so it
  is ``None`` when only one class is present.
- Top-k accuracy is reported for ``k = 1 .. min(3, K - 1)`` (``k >= K`` is
  trivially 1).
- Log loss is scikit-learn's (mean negative log probability of the true
  class; rows renormalised to sum to 1, probabilities clipped at float64 eps).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from birdspec.errors import DataError

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "micro_f1",
    "weighted_f1",
    "macro_precision",
    "macro_recall",
    "roc_auc_macro",
    "cmap",
    "log_loss",
    "n",
)
"""Scalar keys of every metrics object (plus ``top_k_accuracy``, ``classes_present``, ...)."""

MAX_TOP_K = 3

METRIC_NOTES = (
    "predicted = arg-max probability; macro P/R/F1 over classes in truth or predictions (zero_division=0); "
    "roc_auc_macro (one-vs-rest) and cmap (macro average precision) over the classes present in the truth "
    "(see classes_absent); top-k for k < number of classes; log_loss is sklearn's over all classes"
)


def _check(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise DataError(f"need probabilities of shape (n, K) for n={y.shape[0]} labels, got {p.shape}")
    if p.shape[1] < 2:
        raise DataError(f"need at least 2 classes, got probabilities for {p.shape[1]}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise DataError(f"label ids must be in [0, {p.shape[1]}), got {y.min()}..{y.max()}")
    if not np.isfinite(p).all():
        raise DataError("probabilities contain NaN or infinity; the model diverged, check the run's training curves")
    return y, p


def _num(value: float | None) -> float | None:
    """A JSON-safe float (``None`` for NaN/inf)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def top_k_values(num_classes: int) -> list[int]:
    """The k of top-k accuracy reported for ``num_classes`` classes: ``1 .. min(3, K - 1)``."""
    return list(range(1, max(1, min(MAX_TOP_K, num_classes - 1)) + 1))


def log_loss_of(y_true: Any, probs: Any) -> float:
    """scikit-learn's log loss over all K classes (rows renormalised to sum to 1)."""
    y, p = _check(y_true, probs)
    if y.size == 0:
        return float("nan")
    sums = p.sum(axis=1, keepdims=True)
    p = np.divide(p, sums, out=np.full_like(p, 1.0 / p.shape[1]), where=sums > 0)
    return float(log_loss(y, p, labels=np.arange(p.shape[1])))


OVR_CHUNK_CELLS = 4_000_000
"""Scores (rows x classes) handled at once by :func:`one_vs_rest_scores` (bounds its memory)."""


def one_vs_rest_scores(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class average precision and ROC-AUC (one-vs-rest) of every column of ``p``, NaN where undefined.

    scikit-learn's ``average_precision_score`` and ``roc_auc_score`` per column (equal up to rounding
    in the last bits), for all classes at once: one sort per column instead of two scikit-learn calls
    per class (with 397 classes those calls, each with its argument checks, were most of the metrics'
    time). AP sums precision x recall increments at each distinct score (ties form one step); ROC-AUC
    is the Mann-Whitney statistic with tied scores given their average rank.
    """
    from scipy.stats import rankdata

    n, k = p.shape
    ap, auc = np.full(k, np.nan), np.full(k, np.nan)
    if n == 0:
        return ap, auc
    step = max(1, OVR_CHUNK_CELLS // n)
    for a in range(0, k, step):
        cols = np.arange(a, min(k, a + step))
        pos = y[:, None] == cols[None, :]
        n_pos = pos.sum(axis=0)
        n_neg = n - n_pos
        s = p[:, cols]
        order = np.argsort(-s, axis=0, kind="stable")
        sorted_s, hits = np.take_along_axis(s, order, axis=0), np.take_along_axis(pos, order, axis=0)
        tp = np.cumsum(hits, axis=0, dtype=np.float64)
        precision = tp / np.arange(1, n + 1, dtype=np.float64)[:, None]
        last = np.ones_like(hits)
        last[:-1] = sorted_s[:-1] != sorted_s[1:]  # the last row of each group of tied scores
        at_last = np.where(last, tp, 0.0)
        before = np.vstack([np.zeros((1, len(cols))), np.maximum.accumulate(at_last, axis=0)[:-1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            ap[cols] = np.where(n_pos > 0, np.where(last, (tp - before) * precision, 0.0).sum(axis=0) / n_pos, np.nan)
            rank_sum = np.where(pos, rankdata(s, axis=0), 0.0).sum(axis=0)
            u = rank_sum - n_pos * (n_pos + 1) / 2.0
            auc[cols] = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return ap, auc


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    *,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Scalar metrics of one level (samples or recordings), JSON-ready.

    Args:
        y_true: true label ids ``(n,)``.
        probs: probabilities ``(n, K)`` in class-id order.
        classes: labels of the K classes (to name present/absent classes).

    Returns:
        ``{accuracy, balanced_accuracy, macro_f1, micro_f1, weighted_f1,
        macro_precision, macro_recall, roc_auc_macro, cmap, log_loss, n,
        top_k_accuracy: {"1": .., "2": ..}, classes_present, classes_absent,
        roc_auc_classes, notes}``; undefined values are ``None``.

    Raises:
        DataError: when shapes disagree, labels are out of range or probabilities are not finite.
    """
    y, p = _check(y_true, probs)
    k = p.shape[1]
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"{len(names)} class names for {k} probability columns")
    present = np.unique(y)
    out: dict[str, Any] = {"n": int(y.size)}
    if y.size == 0:
        out.update({key: None for key in METRIC_KEYS if key != "n"})
        out.update(top_k_accuracy={}, classes_present=[], classes_absent=names, roc_auc_classes=[], notes=METRIC_NOTES)
        return out
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" and similar
        out["accuracy"] = _num(accuracy_score(y, pred))
        out["balanced_accuracy"] = _num(balanced_accuracy_score(y, pred))
        out["macro_f1"] = _num(f1_score(y, pred, average="macro", zero_division=0))
        out["micro_f1"] = _num(f1_score(y, pred, average="micro", zero_division=0))
        out["weighted_f1"] = _num(f1_score(y, pred, average="weighted", zero_division=0))
        mp, mr, _, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
        out["macro_precision"], out["macro_recall"] = _num(mp), _num(mr)
        cols = present.tolist()
        ap, auc = one_vs_rest_scores(y, p)  # sklearn's macro averages over the present classes, vectorised
        out["roc_auc_macro"] = _num(np.mean(auc[cols])) if len(cols) >= 2 else None
        out["cmap"] = _num(np.mean(ap[cols]))
        out["log_loss"] = _num(log_loss_of(y, p))
        out["top_k_accuracy"] = {
            str(kk): _num(top_k_accuracy_score(y, p, k=kk, labels=np.arange(k))) if kk > 1 else out["accuracy"]
            for kk in top_k_values(k)
        }
    out["classes_present"] = [names[i] for i in cols]
    present_ids = set(cols)  # once, not once per class (O(classes^2) with 397 classes)
    out["classes_absent"] = [names[i] for i in range(k) if i not in present_ids]
    out["roc_auc_classes"] = out["classes_present"] if out["roc_auc_macro"] is not None else []
    if out["classes_absent"]:
        log.info(
            "%d of %d classes have no samples here (%s): ROC-AUC and cmAP are averaged over the %d present",
            len(out["classes_absent"]), k, ", ".join(out["classes_absent"][:5]), len(cols),
        )
    out["notes"] = METRIC_NOTES
    return out


def per_class_metrics(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    *,
    classes: Sequence[str],
    class_info: Sequence[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per class (all K, in class-id order).

    Columns: ``label_id, label, scientific_name, common_name, precision,
    recall, f1, support`` (true samples), ``predicted`` (predicted samples),
    ``average_precision`` and ``roc_auc`` (one-vs-rest; empty when the class
    has no positive or no negative sample).
    """
    y, p = _check(y_true, probs)
    k = p.shape[1]
    if len(classes) != k:
        raise DataError(f"{len(classes)} class names for {k} probability columns")
    info = {d.get("label"): d for d in (class_info or [])}
    pred = p.argmax(axis=1) if y.size else np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prec, rec, f1, support = precision_recall_fscore_support(
            y, pred, labels=np.arange(k), zero_division=0
        ) if y.size else (np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64))
    aps, aucs = one_vs_rest_scores(y, p)
    predicted = np.bincount(pred, minlength=k) if y.size else np.zeros(k, dtype=np.int64)
    rows = []
    for i, label in enumerate(classes):  # one dict per class; the metrics are computed above, vectorised
        ap, auc = _num(aps[i]), _num(aucs[i])
        meta = info.get(label, {})
        rows.append({
            "label_id": i,
            "label": label,
            "scientific_name": meta.get("scientific_name", ""),
            "common_name": meta.get("common_name", ""),
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "average_precision": ap,
            "roc_auc": auc,
        })
    return pd.DataFrame(rows)


def confusion_counts(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, *, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class."""
    return confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=np.arange(num_classes))


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (recall on the diagonal); empty rows stay 0."""
    counts = np.asarray(counts, dtype=np.float64)
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def class_display_names(classes: Sequence[str], class_info: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """Readable names for figures: the common name when known, else the label."""
    info = {d.get("label"): d for d in (class_info or [])}
    out = []
    for c in classes:
        name = (info.get(c) or {}).get("common_name") or c
        out.append(str(name))
    return out


def mean_std(values: Sequence[float | None], *, ddof: int = 1) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``ddof=1``; 0.0 for a single value) ignoring ``None``."""
    vals = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if vals.size == 0:
        return None, None
    std = float(vals.std(ddof=ddof)) if vals.size > ddof else 0.0
    return float(vals.mean()), std
