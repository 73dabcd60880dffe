"""The spectrogram types, each defined once: what follows the power spectrum.

Every type is ``power = |STFT|^power`` (centred frames, the analysis window of
:mod:`~birdspec.features.tables`), then ``energies = filterbank @ power`` (``(rows, bins)``), then
:func:`finish`, written here once against a tiny array interface (:class:`Ops`) that NumPy and
PyTorch both implement. The training module, the ONNX export and the NumPy CPU path differ only
in how they compute ``filterbank @ power`` (``torch.stft``; a DFT as a strided convolution, which
ONNX expresses; ``scipy``'s real FFT fused with the filterbank) and a test checks, for every type,
that the three agree.

Types (:data:`~birdspec.config.FRONTENDS`):

``logmel``
    the study's: ``10 log10(max(mel, amin))`` with a ``top_db`` floor under each example's peak.
``pcen``
    per-channel energy normalisation of the mel energies (``librosa.pcen``): ``M = smoother(E)``,
    ``(E / (eps + M)^gain + bias)^power - bias^power`` with ``E`` scaled by ``pcen_input_scale``.
``linear``
    log-magnitude STFT bins from ``fmin_hz`` to ``fmax_hz`` (no mel warping), dB as logmel.
``mfcc``
    ``n_mfcc`` coefficients: orthonormal DCT-II of the log-mel dB (``librosa.feature.mfcc``).
``learnable-mel``
    logmel whose filterbank is a trained parameter (initialised to the mel filters, kept
    non-negative); the learned filters travel in the checkpoint and in every export.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, cast

import numpy as np

from birdspec.config import FrontendConfig

DB_PER_LN = 10.0 / math.log(10.0)
"""``10 log10(x) = DB_PER_LN * ln(x)``."""


class Ops(Protocol):
    """The array operations :func:`finish` needs (NumPy: :data:`NUMPY_OPS`; PyTorch: the torch module's)."""

    def log(self, x: Any) -> Any: ...
    def exp(self, x: Any) -> Any: ...
    def clamp_min(self, x: Any, value: float) -> Any: ...
    def maximum(self, x: Any, y: Any) -> Any: ...
    def peak(self, x: Any) -> Any: ...  # max over the last two axes, kept
    def matmul(self, a: Any, b: Any) -> Any: ...


class NumpyOps:
    # NumPy's stubs type ufunc calls and reductions on an ndarray of unknown dtype as Any
    def log(self, x: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, np.log(x))

    def exp(self, x: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, np.exp(x))

    def clamp_min(self, x: np.ndarray, value: float) -> np.ndarray:
        return cast(np.ndarray, np.maximum(x, np.float32(value)))

    def maximum(self, x: np.ndarray, y: Any) -> np.ndarray:
        return cast(np.ndarray, np.maximum(x, y))

    def peak(self, x: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, x.max(axis=(-2, -1), keepdims=True))

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, np.matmul(a, b))


NUMPY_OPS = NumpyOps()


def to_db(ops: Ops, energies: Any, config: FrontendConfig) -> Any:
    """``10 log10(max(x, amin))``, floored at ``top_db`` under each example's peak."""
    db = ops.log(ops.clamp_min(energies, config.amin)) * DB_PER_LN
    if config.top_db is not None:
        db = ops.maximum(db, ops.peak(db) - config.top_db)
    return db


def pcen(ops: Ops, energies: Any, config: FrontendConfig, smoother: Any) -> Any:
    """``librosa.pcen`` of ``energies * pcen_input_scale`` (``smoother``: :func:`~birdspec.features.tables.pcen_smoother`)."""
    c = config
    e = energies * c.pcen_input_scale
    m = ops.matmul(e, smoother)
    # (eps + M)^-gain as exp(-gain * log(eps + M)), and ((E * that) + bias)^power - bias^power
    normed = e * ops.exp(ops.log(m + c.pcen_eps) * (-c.pcen_gain))
    return ops.exp(ops.log(normed + c.pcen_bias) * c.pcen_power) - c.pcen_bias**c.pcen_power


def finish(ops: Ops, energies: Any, config: FrontendConfig, *, dct: Any = None, smoother: Any = None) -> Any:
    """The type's spectrogram from ``energies = filterbank @ power``: ``(..., rows, frames)`` ->
    ``(..., num_bins, frames)``. ``dct`` (mfcc) and ``smoother`` (pcen) are the type's tables."""
    kind = config.kind
    if kind == "pcen":
        return pcen(ops, energies, config, smoother)
    db = to_db(ops, energies, config)
    if kind == "mfcc":
        return ops.matmul(dct, db)
    return db
