"""From a network's logits to the scores birdspec reports: every activation, defined once.

A checkpoint names its activation (:data:`ACTIVATIONS`) and may carry a temperature ``T``
(fitted on validation, see :mod:`birdspec.training.detection`); the scores of logits ``z`` ``(B, K)`` are

``softmax``
    ``softmax(z / T)`` over the K classes: a window's scores sum to 1 (the study's single-label models;
    closed-world: some class always wins).
``sigmoid``
    ``sigmoid(z / T)`` per class (multi-label models; a window with nothing scores low everywhere).
``softmax-background``
    softmax over the K classes **and an implicit "no bird" class whose logit is fixed at 0**:
    ``exp(z_k / T) / (1 + sum_j exp(z_j / T))``. Single-label models trained with no-bird windows
    (their target is that extra class) use it: the K scores sum to ``1 - p(no bird)``, so a window
    with no bird scores low in every class. With one dominant class it is close to ``sigmoid(z_k)``.

:func:`scores_numpy` (prediction without PyTorch) and :func:`scores_torch` (training, evaluation, the
ONNX export) compute the same thing; :func:`background_logits` is the ``(B, K + 1)`` form the training loss
and accuracy use (the no-bird target is class index K). :func:`fit_temperature` fits ``T`` to labelled
logits (training stores it; evaluation reports calibration with it).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from birdspec.errors import ConfigError, DataError

if TYPE_CHECKING:  # torch is imported where it is used: prediction from an ONNX export never loads it
    import torch

log = logging.getLogger(__name__)

ACTIVATIONS = ("softmax", "sigmoid", "softmax-background")
BACKGROUND = "softmax-background"
"""The single-label activation with a trained "no bird" answer (an implicit class with logit 0)."""
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The range :func:`fit_temperature` searches (on a log scale)."""


def check_activation(activation: str) -> str:
    """``activation`` if it is one of :data:`ACTIVATIONS`.

    Raises:
        ConfigError: an unknown name.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    return activation


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ConfigError(f"the temperature must be a positive number, got {temperature!r}")
    return t


def scores_numpy(logits: np.ndarray, activation: str, *, temperature: float = 1.0) -> npt.NDArray[np.float32]:
    """Scores ``(B, K)`` float32 of logits ``(B, K)`` (see the module doc); computed in float64."""
    check_activation(activation)
    z = np.asarray(logits, dtype=np.float64) / _check_temperature(temperature)
    if activation == "sigmoid":
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # overflow-free logistic
    if activation == BACKGROUND:
        top = np.maximum(z.max(axis=1, keepdims=True, initial=0.0), 0.0) if z.size else np.zeros((z.shape[0], 1))
        e: npt.NDArray[np.float64] = np.exp(z - top)
        total: npt.NDArray[np.float64] = e.sum(axis=1, keepdims=True) + np.exp(-top)  # NumPy types keepdims sums as Any
        return (e / total).astype(np.float32)
    z = z - z.max(axis=1, keepdims=True) if z.size else z
    e = np.exp(z)
    total = e.sum(axis=1, keepdims=True)
    return (e / total).astype(np.float32)


def background_logits(logits: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` -> ``(B, K + 1)``: the implicit no-bird logit (0) appended as class K."""
    import torch

    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], dim=1)


def scores_torch(logits: torch.Tensor, activation: str, *, temperature: float = 1.0) -> torch.Tensor:
    """Scores ``(B, K)`` of logits ``(B, K)`` in PyTorch (exportable to ONNX); the same as :func:`scores_numpy`."""
    import torch

    check_activation(activation)
    z = logits / _check_temperature(temperature) if float(temperature) != 1.0 else logits
    if activation == "sigmoid":
        return torch.sigmoid(z)
    if activation == BACKGROUND:
        return torch.softmax(background_logits(z), dim=-1)[:, :-1]
    return torch.softmax(z, dim=-1)


def has_background(activation: str | None) -> bool:
    """True for :data:`BACKGROUND`: the scores leave room for "no bird" (a window's scores may sum to < 1)."""
    return activation == BACKGROUND


# --------------------------------------------------------------------------- temperature


def score_matrix(probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise DataError(f"scores must be a (windows, classes) matrix, got shape {p.shape}")
    return p


def label_ids(y_true: Any, n: int, k: int, activation: str) -> np.ndarray:
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


def target_matrix(y_true: Any, shape: tuple[int, int]) -> np.ndarray:
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


def nll(logits: np.ndarray, y: np.ndarray, activation: str, temperature: float) -> float:
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
    z = score_matrix(logits)
    if not np.isfinite(z).all():
        raise DataError("logits must be finite numbers")
    n, k = z.shape
    y = target_matrix(y_true, (n, k)) if activation == "sigmoid" else label_ids(y_true, n, k, activation)
    if n < 2:
        return 1.0
    lo, hi = (math.log(b) for b in TEMPERATURE_BOUNDS)
    best = minimize_scalar(lambda s: nll(z, y, activation, math.exp(s)), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-5})
    t = float(math.exp(best.x))
    log.debug("fitted temperature %.4f (NLL %.4f -> %.4f)", t, nll(z, y, activation, 1.0), best.fun)
    return t
