"""Which scores a prediction keeps: the per-class thresholds and the top-k rule every output format applies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from birdspec.errors import ConfigError

DEFAULT_MIN_CONF = 0.1
"""The lowest score written for a model without stored detection thresholds (older checkpoints)."""


def class_thresholds(min_conf: float | Sequence[float] | np.ndarray | None, *, num_classes: int,
                     model_thresholds: Sequence[float] | None = None) -> np.ndarray:
    """The threshold of every class, ``(K,)`` float32 (compared with the float32 scores as they are).

    ``min_conf`` None: the model's stored thresholds when it has them, else :data:`DEFAULT_MIN_CONF`;
    a number: that number for every class; a sequence: one per class.

    Raises:
        ConfigError: a threshold outside [0, 1], or a sequence of the wrong length.
    """
    given = model_thresholds if min_conf is None and model_thresholds is not None else (
        DEFAULT_MIN_CONF if min_conf is None else min_conf)
    values = np.asarray(given, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(num_classes, float(values))
    if values.shape != (num_classes,):
        raise ConfigError(f"need one threshold per class ({num_classes}), got {values.size}")
    if not (np.all(np.isfinite(values)) and np.all(values >= 0) and np.all(values <= 1)):
        raise ConfigError(f"thresholds (--min-conf) must be in [0, 1], got {values.min():g}..{values.max():g}")
    return values.astype(np.float32)


def topk_indices(scores: np.ndarray, *, min_conf: float | np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(window_idx, rank, class_idx)`` of the kept scores, ranked by score per window.

    ``scores`` is ``(n, K)``; kept: ``score >= min_conf`` (one number, or ``(K,)`` thresholds per class), at
    most ``top_k`` per window (0: all).
    """
    n, k = scores.shape
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    order = np.argsort(-scores, axis=1, kind="stable")
    if top_k:
        order = order[:, : min(top_k, k)]
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    limit = np.asarray(min_conf)
    keep = sorted_scores >= (limit[order] if limit.ndim else min_conf)
    rows, ranks = np.nonzero(keep)
    return rows.astype(np.int64), (ranks + 1).astype(np.int64), order[rows, ranks].astype(np.int64)
