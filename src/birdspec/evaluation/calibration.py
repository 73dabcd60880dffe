"""How far scores are from probabilities: reliability (ECE, MCE), its diagram, and temperature scaling.

A score is calibrated when, of all the windows scored about ``c``, a fraction of about ``c`` is right.
:func:`reliability` bins the confidences into ``n_bins`` equal-width bins on [0, 1] (the last bin
includes 1.0) and compares, per bin, the mean confidence with the observed frequency of being right:

``ece`` (expected calibration error)
    the count-weighted mean of ``|frequency - confidence|`` over the non-empty bins (0 = calibrated);
``mce`` (maximum calibration error)
    the largest of those gaps.

What is "confident" and "right" depends on the activation (:mod:`birdspec.models.activation`);
:func:`calibration_of` applies one rule per activation:

``softmax`` (**top-label**)
    ``y_true`` label ids ``(n,)``; confidence = the top score, right = the arg-max is the label.
``softmax-background`` (**top-label**)
    as ``softmax``, and ``y_true`` may also hold the id ``K`` meaning "no bird": such a window's
    confidence is still its top score (the model's claim that this bird is there) and it is never
    right (any class claimed is wrong). A calibrated model scores no-bird windows low.
``sigmoid`` (**per-class**)
    ``y_true`` a target matrix ``(n, K)`` (0/1 or soft; positive = target > 0); every (window, class)
    pair counts: confidence = its score, right = the pair is positive.

:func:`~birdspec.models.activation.fit_temperature` (defined with the activations; training fits it too)
finds the ``T`` that makes ``scores_numpy(logits, activation, temperature=T)`` fit labels best (least
negative log-likelihood); :func:`plot_reliability` draws the diagram.
NumPy and SciPy only (matplotlib is imported by the plot alone).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import ConfigError, DataError
from birdspec.models.activation import (
    check_activation,
    fit_temperature,  # noqa: F401 - re-exported: calibration's API
    label_ids,
    score_matrix,
    target_matrix,
)

log = logging.getLogger(__name__)

KINDS = ("top-label", "per-class")
DEFAULT_BINS = 15
_TOLERANCE = 1e-6  # float32 scores may stray this far outside [0, 1]


@dataclass(frozen=True, eq=False)
class Reliability:
    """A reliability table: confidence against observed frequency in equal-width bins.

    Attributes:
        edges: bin edges ``(n_bins + 1,)`` from 0 to 1.
        counts: items per bin ``(n_bins,)``.
        confidence: mean confidence per bin ``(n_bins,)`` (NaN in an empty bin).
        frequency: observed frequency of being right per bin ``(n_bins,)`` (the accuracy; NaN when empty).
        ece / mce: expected / maximum calibration error (NaN when there is nothing to bin).
        n: items binned (windows for top-label, (window, class) pairs for per-class).
        n_bins: number of bins.
        kind: 'top-label' or 'per-class'.
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    frequency: np.ndarray
    ece: float
    mce: float
    n: int
    n_bins: int
    kind: str = "top-label"

    def summary(self) -> dict[str, Any]:
        """``{"ece", "mce", "n", "n_bins", "kind"}`` as plain JSON (None for NaN)."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {"ece": num(self.ece), "mce": num(self.mce), "n": int(self.n), "n_bins": int(self.n_bins), "kind": self.kind}


def reliability(confidence: Any, correct: Any, *, n_bins: int = DEFAULT_BINS, kind: str = "top-label") -> Reliability:
    """Bin ``confidence`` ``(n,)`` in [0, 1] against ``correct`` ``(n,)`` (bool or 0/1).

    Raises:
        ConfigError: ``n_bins`` < 1 or an unknown ``kind``.
        DataError: shapes that differ, or confidences that are not finite numbers in [0, 1].
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a whole number >= 1, got {n_bins!r}")
    if kind not in KINDS:
        raise ConfigError(f"unknown calibration kind {kind!r}; use {', '.join(KINDS)}")
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct)
    if conf.ndim != 1 or right.shape != conf.shape:
        raise DataError(f"confidence and correct must be two 1-D arrays of one length, got shapes "
                        f"{conf.shape} and {right.shape}")
    if conf.size and (not np.isfinite(conf).all() or conf.min() < -_TOLERANCE or conf.max() > 1 + _TOLERANCE):
        raise DataError("confidences must be finite scores in [0, 1]; pass probabilities, not logits")
    conf = np.clip(conf, 0.0, 1.0)
    right = right.astype(np.float64)
    edges = np.arange(int(n_bins) + 1) / n_bins  # i / n_bins exactly as written (0.7, not linspace's 0.7000000000000001)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)  # the last bin holds 1.0
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        freq = np.bincount(idx, weights=right, minlength=n_bins) / counts
    filled = counts > 0
    gaps = np.abs(freq - mean_conf)[filled]
    ece = float((counts[filled] * gaps).sum() / counts.sum()) if filled.any() else float("nan")
    mce = float(gaps.max()) if filled.any() else float("nan")
    return Reliability(edges, counts, mean_conf, freq, ece, mce, int(conf.size), int(n_bins), kind)


def calibration_of(probs: Any, y_true: Any, *, activation: str, n_bins: int = DEFAULT_BINS) -> Reliability:
    """The reliability of scores ``probs`` ``(n, K)`` against ``y_true`` under ``activation`` (rules: module doc).

    Args:
        probs: scores in [0, 1] ``(n, K)``.
        y_true: label ids ``(n,)`` (softmax, softmax-background; id K = no bird for the latter) or a
            target matrix ``(n, K)`` (sigmoid).

    Raises:
        ConfigError: an unknown activation.
        DataError: shapes that do not fit together, label ids out of range.
    """
    check_activation(activation)
    p = score_matrix(probs)
    n, k = p.shape
    if activation == "sigmoid":
        t = target_matrix(y_true, (n, k))
        return reliability(p.reshape(-1), (t > 0).reshape(-1), n_bins=n_bins, kind="per-class")
    y = label_ids(y_true, n, k, activation)
    top = p.argmax(axis=1) if n else np.zeros(0, np.int64)
    conf = p.max(axis=1) if n else np.zeros(0)
    return reliability(conf, (top == y) & (y < k), n_bins=n_bins, kind="top-label")


def calibration_line(entry: dict[str, Any]) -> str:
    """The one summary line of a ``metrics.json`` calibration entry: ``calibration: ECE 0.031 (top-label, 120 windows)``."""
    ece = entry.get("ece")
    items = "windows" if entry.get("kind") == "top-label" else "(window, class) pairs"
    t = float(entry.get("temperature") or 1.0)
    return (f"calibration: ECE {'-' if ece is None else f'{ece:.3f}'} ({entry.get('kind')}, {entry.get('n')} {items})"
            + (f", temperature {t:g}" if t != 1.0 else ""))


def plot_reliability(rel: Reliability, path: str | Path, *, title: str) -> Path:
    """A reliability diagram PNG: observed frequency per bin against the diagonal, the gap to each bin's
    mean confidence shaded, ECE in the title; the count per bin under it."""
    from matplotlib.figure import Figure

    from birdspec.evaluation.plots import DPI, PALETTE
    from birdspec.fileio import save_figure

    width = 1.0 / rel.n_bins
    centers = rel.edges[:-1] + width / 2
    filled = rel.counts > 0
    fig = Figure(figsize=(6.4, 6.8), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3.2, 1.0)})
    freq = np.where(filled, rel.frequency, 0.0)
    conf = np.where(filled, rel.confidence, 0.0)
    top.bar(centers[filled], freq[filled], width, color=PALETTE[0], edgecolor="white", label="observed frequency")
    low = np.minimum(freq, conf)
    top.bar(centers[filled], np.abs(conf - freq)[filled], width, bottom=low[filled], color=PALETTE[3], alpha=0.3,
            edgecolor=PALETTE[3], hatch="//", label="gap to the mean confidence")
    top.plot(centers[filled], conf[filled], "o", color="black", markersize=3.5, label="mean confidence")
    top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1.2, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("observed frequency")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    ece = "-" if math.isnan(rel.ece) else f"{rel.ece:.3f}"
    mce = "-" if math.isnan(rel.mce) else f"{rel.mce:.3f}"
    items = "windows" if rel.kind == "top-label" else "(window, class) pairs"
    top.set_title(f"{title}\nECE {ece}, MCE {mce} ({rel.kind}, n = {rel.n} {items})")
    bottom.bar(centers, rel.counts, width, color=PALETTE[7], edgecolor="white")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("count")
    bottom.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path, dpi=DPI)
