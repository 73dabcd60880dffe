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

:func:`fit_temperature` finds the ``T`` that makes ``scores_numpy(logits, activation, temperature=T)``
fit labels best (least negative log-likelihood); :func:`plot_reliability` draws the diagram.
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
from birdspec.models.activation import BACKGROUND, check_activation

log = logging.getLogger(__name__)

KINDS = ("top-label", "per-class")
DEFAULT_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The range :func:`fit_temperature` searches (on a log scale)."""
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


def _scores(probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise DataError(f"scores must be a (windows, classes) matrix, got shape {p.shape}")
    return p


def _label_ids(y_true: Any, n: int, k: int, activation: str) -> np.ndarray:
    """Label ids ``(n,)`` in ``[0, K)`` (``[0, K]`` for softmax-background: K = no bird)."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{activation} scores need label ids of shape ({n},), got shape {y.shape}"
                        + ("; a target matrix goes with activation 'sigmoid'" if y.ndim == 2 else ""))
    top = k + 1 if activation == BACKGROUND else k
    if y.size and (not np.issubdtype(y.dtype, np.number) or not np.all(np.mod(y, 1) == 0) or y.min() < 0 or y.max() >= top):
        raise DataError(f"label ids must be whole numbers in [0, {top - 1}] for {k} classes with {activation}"
                        + (f" ({k} = no bird)" if activation == BACKGROUND else ""))
    return y.astype(np.int64)


def _targets(y_true: Any, shape: tuple[int, int]) -> np.ndarray:
    """A target matrix ``(n, K)`` of values in [0, 1]."""
    try:
        t = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("targets must be numbers (1 = the class is there, 0 = not)") from None
    if t.shape != shape:
        got = t.shape
        raise DataError(f"sigmoid scores need a target matrix of shape {shape}, got shape {got}"
                        + ("; label ids go with a softmax activation" if len(got) == 1 else ""))
    if t.size and (not np.isfinite(t).all() or t.min() < 0 or t.max() > 1):
        raise DataError("targets must be in [0, 1] (1 = the class is there)")
    return t


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
    p = _scores(probs)
    n, k = p.shape
    if activation == "sigmoid":
        t = _targets(y_true, (n, k))
        return reliability(p.reshape(-1), (t > 0).reshape(-1), n_bins=n_bins, kind="per-class")
    y = _label_ids(y_true, n, k, activation)
    top = p.argmax(axis=1) if n else np.zeros(0, np.int64)
    conf = p.max(axis=1) if n else np.zeros(0)
    return reliability(conf, (top == y) & (y < k), n_bins=n_bins, kind="top-label")


def _nll(logits: np.ndarray, y: np.ndarray, activation: str, temperature: float) -> float:
    """Mean negative log-likelihood of labels (or targets) under ``scores(logits / T)``, via log-sum-exp."""
    from scipy.special import logsumexp

    z = logits / temperature
    if activation == "sigmoid":  # binary cross entropy: log(1 + e^z) - t z
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    if activation == BACKGROUND:
        z = np.concatenate([z, np.zeros((z.shape[0], 1))], axis=1)  # the no-bird logit, class K
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(z.shape[0]), y]))


def fit_temperature(logits: Any, y_true: Any, *, activation: str) -> float:
    """The temperature ``T`` in [0.05, 20] that minimises the negative log-likelihood of
    ``scores_numpy(logits, activation, temperature=T)``: cross entropy over the K classes
    (softmax), over K + the no-bird class (softmax-background; label id K = no bird), binary cross
    entropy over every (window, class) pair (sigmoid, ``y_true`` a 0/1 or soft target matrix).

    Args:
        logits: ``(n, K)``.
        y_true: label ids ``(n,)`` or a target matrix ``(n, K)`` (see :func:`calibration_of`).

    Returns:
        T (> 1 softens over-confident scores); 1.0 with fewer than 2 windows.

    Raises:
        ConfigError: an unknown activation.
        DataError: shapes that do not fit, logits that are not finite.
    """
    from scipy.optimize import minimize_scalar

    check_activation(activation)
    z = _scores(logits)
    if not np.isfinite(z).all():
        raise DataError("logits must be finite numbers")
    n, k = z.shape
    y = _targets(y_true, (n, k)) if activation == "sigmoid" else _label_ids(y_true, n, k, activation)
    if n < 2:
        return 1.0
    lo, hi = (math.log(b) for b in TEMPERATURE_BOUNDS)
    best = minimize_scalar(lambda s: _nll(z, y, activation, math.exp(s)), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-5})
    t = float(math.exp(best.x))
    log.debug("fitted temperature %.4f (NLL %.4f -> %.4f)", t, _nll(z, y, activation, 1.0), best.fun)
    return t


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
