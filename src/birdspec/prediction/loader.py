"""Choosing the runtime of a checkpoint: :func:`open_runtime`.

On the CPU a waveform checkpoint runs from its ONNX runtime export
(:mod:`~birdspec.prediction.onnx_runtime`), looked up beside the checkpoint
(``checkpoints/best.runtime/``, written by ``birdspec train``) and then in the
cache; a missing, stale or corrupt one is (re)built, in a child process when
PyTorch is not loaded yet, so the predicting process stays small. Whether a
checkpoint is a CNN or a BirdNET head is read from its metadata without
PyTorch (:func:`~birdspec.models.checkpoint.peek_checkpoint`). CUDA, the
``torch`` backend and checkpoint dicts run with PyTorch
(:mod:`~birdspec.prediction.torch_runtime`); ``birdnet-*`` heads with
:mod:`birdspec.prediction.birdnet_runtime`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from birdspec.errors import ConfigError, DependencyError
from birdspec.models.checkpoint import Checkpoint, CheckpointInfo, peek_checkpoint, read_checkpoint, resolve_checkpoint_path
from birdspec.prediction import onnx_runtime as ox
from birdspec.prediction.runtime_types import (
    ACTIVATION_CHOICES,
    BACKENDS,
    RecordingRuntime,
    WindowRuntime,
    onnxruntime_available,
)
from birdspec.runtime import PREDICT_DEVICES, cpu_count, resolve_device

log = logging.getLogger(__name__)


def _check_choices(backend: str, activation: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if activation not in ACTIVATION_CHOICES:
        raise ConfigError(f"unknown activation {activation!r}; use one of {', '.join(ACTIVATION_CHOICES)}")


def open_runtime(
    checkpoint: str | Path | Mapping[str, Any] | Checkpoint,
    *,
    device: str = "auto",
    backend: str = "auto",
    threads: int | None = None,
    activation: str = "auto",
    cache_dir: str | Path | None = None,
) -> WindowRuntime | RecordingRuntime:
    """The fastest runtime available for ``checkpoint`` (see the module doc).

    Args:
        checkpoint: a checkpoint file, a run folder, a checkpoint dict or a
            :class:`~birdspec.models.checkpoint.Checkpoint`.
        device: 'auto' (CUDA when present), 'cpu' or 'cuda'.
        backend: 'auto' (ONNX Runtime on the CPU, PyTorch on CUDA), 'onnx' or 'torch'.
        threads: CPU threads (None: all cores this process may use).
        activation: 'auto' (from the checkpoint), 'softmax' or 'sigmoid'.
        cache_dir: where exports of checkpoints without their own are kept.

    Raises:
        CheckpointError: an unreadable or inconsistent checkpoint.
        ConfigError / DependencyError: bad choices, or a backend that is not installed.
    """
    _check_choices(backend, activation)
    dev = resolve_device(device, allowed=PREDICT_DEVICES)
    n_threads = int(threads) if threads else cpu_count()
    if backend == "onnx" and not onnxruntime_available():
        raise DependencyError("backend 'onnx' needs onnxruntime (pip install onnxruntime), or use --backend torch")
    use_onnx = backend == "onnx" or (backend == "auto" and dev == "cpu" and onnxruntime_available())
    # a dict or a read Checkpoint: no file to look beside
    path = None if isinstance(checkpoint, (Mapping, CheckpointInfo)) else resolve_checkpoint_path(checkpoint)
    if use_onnx and path is not None:
        found = ox.find_export(path, cache_dir=cache_dir)
        if found is not None:
            rt = ox.try_open(found, threads=n_threads, device=dev, activation=activation)
            if rt is not None:
                return rt
            ox.discard(found)
        if "torch" not in sys.modules:
            # No PyTorch here yet: a waveform checkpoint is exported by a short-lived child process
            # (PyTorch's ~600 MB never enter this one); other checkpoints need PyTorch anyway.
            info = peek_checkpoint(path)
            if info is not None and info.input == "waveform":
                entry = ox.export_in_subprocess(path, cache_dir=cache_dir)
                rt = ox.try_open(entry, threads=n_threads, device=dev, activation=activation) if entry else None
                if rt is not None:
                    return rt
    return _open_with_torch(checkpoint, path, dev=dev, use_onnx=use_onnx, threads=threads, n_threads=n_threads,
                            activation=activation, cache_dir=cache_dir)


def _open_with_torch(checkpoint: Any, path: Path | None, *, dev: str, use_onnx: bool, threads: int | None,
                     n_threads: int, activation: str, cache_dir: str | Path | None) -> WindowRuntime | RecordingRuntime:
    """Read the checkpoint with PyTorch: BirdNET heads, in-process exports, the torch backend."""
    ckpt = read_checkpoint(path if path is not None else checkpoint)
    if ckpt.input == "embedding":
        from birdspec.prediction.birdnet_runtime import BirdnetHeadRuntime

        return BirdnetHeadRuntime(ckpt, threads=threads, activation=activation)
    if use_onnx:
        try:
            entry = ox.export_to_cache(ckpt, path=path, cache_dir=cache_dir)
        except DependencyError:
            raise
        except Exception as exc:  # an exporter failure must not stop prediction
            log.warning("ONNX export failed (%s); running the model with PyTorch", exc)
        else:
            rt = ox.try_open(entry, threads=n_threads, device=dev, activation=activation)
            if rt is not None:
                return rt
            log.warning("the fresh ONNX export of %s does not load; running the model with PyTorch", ckpt.source)
    from birdspec.prediction.torch_runtime import TorchRuntime

    return TorchRuntime(ckpt, device=dev, activation=activation, threads=threads)
