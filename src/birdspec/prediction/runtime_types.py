"""The inference runtimes behind :class:`~birdspec.prediction.predictor.Predictor`, and the choice of one.

A runtime scores audio with one checkpoint. Two kinds:

:class:`WindowRuntime` (the CNNs)
    splits the model in two stages so the streaming engine can batch, cache and
    re-use work: ``features(waves (n, W) float32) -> X (n, n_mels, frames)`` (the
    spectrogram and the input normalisation of **one window**; a stack10
    context is 10 of these stacked, each window's features computed once and
    re-used by the 10 contexts that contain it) and ``head(X (B, C, ...)) ->
    logits (B, K)``. Backends: ``onnx`` (:mod:`birdspec.prediction.onnx_runtime`:
    NumPy log-mel + ONNX Runtime, the CPU default, no PyTorch import) and
    ``torch`` (:mod:`birdspec.prediction.torch_runtime`: the model's own modules;
    the only one used on CUDA).
:class:`RecordingRuntime` (the ``birdnet-*`` heads, :mod:`birdspec.prediction.birdnet_runtime`)
    scores the windows of a whole recording at once (BirdNET runs on its own 3 s
    windows at 48 kHz): ``score(wave, bounds) -> (M, K)`` scores.

:func:`birdspec.prediction.loader.open_runtime` picks the runtime of a checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from birdspec.models.activation import ACTIVATIONS
from birdspec.models.checkpoint import CheckpointInfo

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
ACTIVATION_CHOICES = ("auto", *ACTIVATIONS)


class WindowRuntime:
    """A runtime scored window by window (see the module doc). Subclasses set the stages.

    Attributes:
        info: the checkpoint's metadata (with the activation in use).
        backend / device: what actually runs ('onnx' or 'torch'; 'cpu' or 'cuda').
    """


    def __init__(self, info: CheckpointInfo, *, backend: str, device: str) -> None:
        self.info = info
        self.backend = backend
        self.device = device

    def features(self, waves: np.ndarray) -> Any:
        """``(n, W)`` float32 windows -> ``(n, ...)`` per-window model inputs."""
        raise NotImplementedError

    def head(self, x: Any) -> np.ndarray:
        """``(B, C, ...)`` stacked inputs -> ``(B, K)`` float32 logits."""
        raise NotImplementedError

    def stack(self, rows: list[Any]) -> Any:
        """Stack per-window feature rows into one network input."""
        return np.stack(rows)

    def close(self) -> None:
        """Free threads and sessions (idempotent)."""


class RecordingRuntime:
    """A runtime that scores the windows of a whole recording in one call (see the module doc)."""


    def __init__(self, info: CheckpointInfo, *, backend: str, device: str = "cpu") -> None:
        self.info = info
        self.backend = backend
        self.device = device

    def score(self, wave: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Scores ``(M, K)`` of the windows ``bounds`` ``(M, 2)`` (samples) of ``wave`` ``(n,)`` at 32 kHz."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the runtime holds (idempotent)."""


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
