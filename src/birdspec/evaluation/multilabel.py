"""Metrics of multi-label (sigmoid) models against primary + secondary labels.

The truth of a sample is its recording's labels (the primary and the secondary
labels that are among the classes: :func:`~birdspec.data.multilabel.label_targets`
with weight 1), so a window inherits its recording's (weak) labels.

Per level (``sample`` / ``recording``), :func:`multilabel_metrics` gives

- ``average_precision``: per-class AP (``None`` for a class without a positive);
- ``cmap``: their mean over the classes with a positive (BirdCLEF's cmAP);
- ``macro_f1`` / ``micro_f1`` (and precision/recall): a class is predicted when its score is
  ``>= threshold``; the threshold is chosen on the validation split by
  :func:`choose_threshold` (best micro F1 over :data:`THRESHOLDS`) and recorded with its source;
- ``lrap`` (scikit-learn's label-ranking average precision), ``label_ranking_loss`` and
  ``coverage_error``, over the rows with at least one true label.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    coverage_error,
    label_ranking_average_precision_score,
    label_ranking_loss,
    precision_recall_fscore_support,
)

from birdspec.errors import DataError
from birdspec.evaluation.scoring import parse_thresholds
from birdspec.formats import DEFAULT_THRESHOLDS

log = logging.getLogger(__name__)

THRESHOLDS = parse_thresholds(DEFAULT_THRESHOLDS)
"""Thresholds tried on the validation split (the grid ``birdspec score-soundscapes`` tries by default)."""


def manifest_truth(data: Any, classes: Sequence[str]) -> np.ndarray:
    """``(n_manifest_rows, K)`` 0/1 truth of every manifest row in the order of ``classes`` (the model's)."""
    from birdspec.data.multilabel import label_targets

    found = label_targets(data.manifest, data.classes, secondary_weight=1.0)
    index = {c: i for i, c in enumerate(data.classes)}
    missing = [c for c in classes if c not in index]
    full = np.zeros((found.targets.shape[0], len(classes)), dtype=np.int64)
    for j, c in enumerate(classes):
        if c in index:
            full[:, j] = found.targets[:, index[c]] > 0
    if missing:
        log.info("%d model classes are not in %s (no positives there): %s", len(missing), data.root, ", ".join(missing[:5]))
    return full


def _prf(truth: np.ndarray, pred: np.ndarray, average: str) -> tuple[float, float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = precision_recall_fscore_support(truth, pred, average=average, zero_division=0)
    return float(p), float(r), float(f)


def choose_threshold(truth: np.ndarray, scores: np.ndarray, thresholds: Sequence[float] | np.ndarray = THRESHOLDS) -> float:
    """The threshold of ``thresholds`` with the best micro F1 (the lowest of ties)."""
    truth, scores = _check(truth, scores)
    if truth.shape[0] == 0:
        raise DataError("no samples to choose a threshold on")
    f1s = [_prf(truth, (scores >= t).astype(np.int64), "micro")[2] for t in thresholds]
    return float(thresholds[int(np.argmax(f1s))])


def _check(truth: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if t.shape != s.shape or t.ndim != 2:
        raise DataError(f"need truth and scores of the same (n, K) shape, got {t.shape} and {s.shape}")
    return t, s


def multilabel_metrics(truth: Any, scores: Any, *, threshold: float, classes: Sequence[str]) -> dict[str, Any]:
    """The metrics of one level (see the module doc); JSON-ready, undefined values ``None``."""
    t, s = _check(truth, scores)
    if len(classes) != t.shape[1]:
        raise DataError(f"{len(classes)} class names for {t.shape[1]} score columns")
    pred = (s >= threshold).astype(np.int64)
    has_pos = t.sum(axis=0) > 0
    ap = {c: (float(average_precision_score(t[:, k], s[:, k])) if has_pos[k] else None) for k, c in enumerate(classes)}
    labelled = t.sum(axis=1) > 0
    out: dict[str, Any] = {"n": int(t.shape[0]), "n_with_labels": int(labelled.sum()), "threshold": float(threshold)}
    for avg in ("micro", "macro"):
        p, r, f = _prf(t, pred, avg)
        out.update({f"{avg}_precision": p, f"{avg}_recall": r, f"{avg}_f1": f})
    known = [v for v in ap.values() if v is not None]
    out["cmap"] = float(np.mean(known)) if known else None
    if labelled.any():
        out["lrap"] = float(label_ranking_average_precision_score(t[labelled], s[labelled]))
        out["label_ranking_loss"] = float(label_ranking_loss(t[labelled], s[labelled]))
        out["coverage_error"] = float(coverage_error(t[labelled], s[labelled]))
    else:
        out.update(lrap=None, label_ranking_loss=None, coverage_error=None)
    out["mean_labels_per_sample"] = float(t.sum(axis=1).mean()) if t.shape[0] else None
    out["average_precision"] = ap
    return out


def multilabel_section(data: Any, levels: Mapping[str, Any], *, validation: Mapping[str, Any] | None,
                       threshold_source: str) -> dict[str, Any]:
    """``metrics.json``'s ``multilabel`` object: per level, thresholds chosen on ``validation``.

    Args:
        data: the prepared dataset (labels of the rows).
        levels: level name -> :class:`~birdspec.evaluation.inference.Predictions` that are scored.
        validation: level name -> Predictions of the validation rows (None: choose on ``levels``).
        threshold_source: what the thresholds were chosen on, recorded.
    """
    out: dict[str, Any] = {"threshold_source": threshold_source, "truth": "primary + secondary labels among the classes"}
    truths: dict[tuple[str, ...], np.ndarray] = {}  # the manifest's truth once per class order

    def truth(p: Any) -> np.ndarray:
        key = tuple(p.classes)
        if key not in truths:
            truths[key] = manifest_truth(data, key)
        return truths[key][np.asarray(p.rows, dtype=np.int64)]

    for name, pred in levels.items():
        val = (validation or levels)[name]
        thr = choose_threshold(truth(val), val.probs)
        out[name] = multilabel_metrics(truth(pred), pred.probs, threshold=thr, classes=pred.classes)
    return out


def format_multilabel(section: Mapping[str, Any]) -> list[str]:
    """Text lines of the ``multilabel`` object for :func:`~birdspec.evaluation.evaluate.format_metrics`."""
    levels = [lv for lv in ("recording", "sample") if lv in section]
    lines = ["", f"multi-label (truth: {section.get('truth')}; thresholds chosen on {section.get('threshold_source')})"]
    for key, label in (("threshold", "threshold"), ("micro_f1", "micro F1"), ("macro_f1", "macro F1"),
                       ("cmap", "cmAP"), ("lrap", "LRAP"), ("label_ranking_loss", "ranking loss")):
        cells = "".join(f"{section[lv].get(key):>12.4f}" if section[lv].get(key) is not None else f"{'-':>12}" for lv in levels)
        lines.append(f"{label:<22}{cells}")
    return lines


def multilabel_report(checkpoint: Any, data: Any, *, rows: np.ndarray, threshold_rows: Sequence[int] | np.ndarray | None,
                      samples: Any, recordings: Any, threshold_label: str = "the validation split",
                      **predict_kwargs: Any) -> dict[str, Any]:
    """The ``multilabel`` object of an evaluation of ``rows``; thresholds from ``threshold_rows`` (the
    validation split, or what ``threshold_label`` names; predicted here when they differ from ``rows``),
    else from ``rows`` themselves."""
    levels = {"recording": recordings, "sample": samples}
    given = None if threshold_rows is None else np.asarray(threshold_rows, dtype=np.int64)
    if given is None or given.size == 0:
        return multilabel_section(data, levels, validation=None, threshold_source="the evaluated rows (no validation split)")
    if np.array_equal(np.sort(given), np.sort(np.asarray(rows))):
        return multilabel_section(data, levels, validation=None, threshold_source=f"{threshold_label} (evaluated here)")
    from birdspec.evaluation.inference import predict_checkpoint

    val_samples, val_recordings, _ = predict_checkpoint(checkpoint, data, rows=given, **predict_kwargs)
    return multilabel_section(data, levels, validation={"recording": val_recordings, "sample": val_samples},
                              threshold_source=f"{threshold_label} ({given.size} recordings)")
