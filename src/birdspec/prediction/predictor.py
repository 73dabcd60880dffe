"""Species predictions for recordings of any length: the :class:`Predictor`.

The windows (:mod:`birdspec.windowing`): the checkpoint's ``window_s`` every
``hop_s``; **the last partial window** is kept when it holds at least
``min_partial_s`` (default 1 s) of audio, reported with its true times and
scored on the recording's last ``window_s`` of audio (the window shifted back:
real audio only, as in training); in a recording shorter than one window, and
as the last channel of a stack10 context, it is zero-padded (tiled for
``short_policy='tile'`` checkpoints) to a full window. **stack10** checkpoints
score each window from a *centred* context of 10 windows
(``context='trailing'``: the window and the 9 before it), shifted to stay
inside the recording; ``context_start_s`` / ``context_end_s`` say which audio
each score comes from. How recordings are streamed and
batched: :mod:`birdspec.prediction.engine`. Scores are **softmax
probabilities** for single-label models (a window's scores sum to 1), sigmoid
for multi-label ones. The runtime (ONNX Runtime on the CPU, PyTorch on CUDA,
BirdNET for ``birdnet-*`` heads) is chosen by :mod:`birdspec.prediction.loader`.

Typical use::

    p = Predictor("runs/best.pt", top_k=3)              # the model's detection thresholds
    df = p.predict_file("soundscape.ogg")          # one row per (window, class) kept
    wide = Predictor("runs/best.pt", scores="all").predict_file("soundscape.ogg")
    for res in p.predict_paths(["recordings/"]):   # FileResult per file, failures included
        ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec import audio
from birdspec.config import SAMPLE_RATE_HZ, EncodingConfig, FrontendConfig
from birdspec.errors import AudioError, ConfigError
from birdspec.formats import SCORE_MODES
from birdspec.prediction.engine import Engine
from birdspec.prediction.loader import open_runtime
from birdspec.prediction.outputs import scores_table
from birdspec.prediction.selection import class_thresholds
from birdspec.prediction.sources import FileResult, collect_audio_paths, tqdm_progress
from birdspec.runtime import limit_malloc_arenas
from birdspec.windowing import (
    CONTEXT_POSITIONS,
    DEFAULT_MIN_PARTIAL_S,
    WindowGeometry,
    context_offset,
    partial_source_for,
)

log = logging.getLogger(__name__)

CPU_BATCH = 4
"""Windows per network call on the CPU: small batches stay in cache (measured: the same CPU time as 8,
and ~60 MB less peak memory in ONNX Runtime)."""
DECODE_BLOCK_S = 30.0
"""Seconds decoded per block (memory per file in flight: a few blocks)."""

__all__ = ["Predictor", "FileResult", "collect_audio_paths"]


class Predictor:
    """Scores recordings with a checkpoint (see the module docstring for the windowing rules).

    Args:
        checkpoint: a checkpoint file, a run folder (best.pt / last.pt), a checkpoint dict or a
            :class:`~birdspec.models.checkpoint.Checkpoint`.
        device: 'auto' (CUDA when present), 'cpu' or 'cuda'.
        batch_size: windows (or stack10 contexts) per network call (None: 4 on the CPU, where
            small batches stay in cache and keep the peak memory low, 64 on CUDA).
        backend: 'auto' (ONNX Runtime on the CPU when installed, PyTorch on CUDA), 'onnx' or 'torch'.
        window_s: window length; must equal the checkpoint's (None: the checkpoint's).
        hop_s: distance between window starts (None: ``window_s``); for stack10
            ``window_s / hop_s`` must be a whole number.
        min_partial_s: the least audio a trailing partial window needs to be scored.
        min_conf: scores below this are not reported (``scores='topk'``): one number, one per class, or
            None (default): the model's detection thresholds (chosen on validation when it was trained; a
            window where no class reaches its threshold has no detection), else 0.1 for older checkpoints.
        top_k: at most this many classes per window (0 or None: all above ``min_conf``).
        scores: 'topk' (long table, one row per kept (window, class)) or 'all'
            (wide table, one column of scores per class).
        context: 'centre' or 'trailing' position of a window in its stack10 context.
        threads: CPU threads (None: all cores this process may use).
        activation: 'auto' (softmax unless the checkpoint was trained multi-label), 'softmax', 'sigmoid'.
        cache_dir: where the ONNX export of the checkpoint is cached.
    """

    def __init__(
        self,
        checkpoint: str | Path | Mapping[str, Any],
        *,
        device: str = "auto",
        batch_size: int | None = None,
        backend: str = "auto",
        window_s: float | None = None,
        hop_s: float | None = None,
        min_partial_s: float = DEFAULT_MIN_PARTIAL_S,
        min_conf: float | Sequence[float] | None = None,
        top_k: int | None = 3,
        scores: str = "topk",
        context: str = "centre",
        threads: int | None = None,
        activation: str = "auto",
        cache_dir: str | Path | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if scores not in SCORE_MODES:
            raise ConfigError(f"scores must be one of {', '.join(SCORE_MODES)}, got {scores!r}")
        if context not in CONTEXT_POSITIONS:
            raise ConfigError(f"context must be one of {', '.join(CONTEXT_POSITIONS)}, got {context!r}")
        if top_k is not None and top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0: no limit), got {top_k}")
        limit_malloc_arenas()  # before the decoding thread starts: flat memory over many files
        self.runtime = open_runtime(
            checkpoint, device=device, backend=backend, threads=threads, activation=activation, cache_dir=cache_dir
        )
        enc = self.runtime.info.encoding
        if window_s is not None and abs(window_s - enc.window_s) > 1e-9:
            self.runtime.close()
            raise ConfigError(
                f"this checkpoint was trained on {enc.window_s:g} s windows; --window-s {window_s:g} would change what "
                f"the model sees (leave --window-s out, or pass {enc.window_s:g})"
            )
        policy = enc.short_policy if enc.short_policy != "drop" else "pad"
        stacked = enc.name == "stack10"
        self.geometry = WindowGeometry.from_seconds(  # stack10: the partial window is a context's last channel, as trained
            window_s=enc.window_s, hop_s=hop_s, min_partial_s=min_partial_s, sample_rate_hz=SAMPLE_RATE_HZ, fill=policy,
            partial_source=partial_source_for(enc.name),
        )
        context_windows, stride, offset = 1, 1, 0
        g = self.geometry
        if stacked:
            if g.window_samples % g.hop_samples:
                raise ConfigError(
                    f"stack10 needs window_s / hop_s to be a whole number (contexts are built from non-overlapping "
                    f"windows on the hop grid); got window {enc.window_s:g} s and hop {g.hop_samples / SAMPLE_RATE_HZ:g} s"
                )
            context_windows, stride = enc.num_windows, g.window_samples // g.hop_samples
            offset = context_offset(context_windows=context_windows, stride=stride, position=context)
        self.stacked = stacked
        self.context = context
        self.batch_size = int(batch_size) if batch_size else (64 if self.runtime.device == "cuda" else CPU_BATCH)
        self.engine = Engine(self.runtime, geometry=g, context_windows=context_windows, stride=stride, offset=offset,
                             short_fill=policy, batch_size=self.batch_size)
        info = self.runtime.info
        try:
            self.min_conf = class_thresholds(min_conf, num_classes=len(info.classes), model_thresholds=info.thresholds)
        except ConfigError:
            self.runtime.close()
            raise
        self.thresholds_from_model = min_conf is None and info.thresholds is not None  # the model's own
        self.top_k = int(top_k) if top_k else 0
        self.scores_mode = scores

    # ----------------------------------------------------------------- properties

    @property
    def classes(self) -> list[str]:
        return list(self.runtime.info.classes)

    @property
    def class_info(self) -> list[dict[str, str]]:
        return [dict(c) for c in self.runtime.info.class_info]

    @property
    def encoding(self) -> EncodingConfig:
        return self.runtime.info.encoding

    @property
    def frontend(self) -> FrontendConfig:
        return self.runtime.info.frontend

    @property
    def activation(self) -> str:
        return self.runtime.info.activation

    @property
    def backend(self) -> str:
        return self.runtime.backend

    @property
    def device(self) -> str:
        return self.runtime.device

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- public API

    def table(self, result: FileResult, *, scores: str | None = None) -> pd.DataFrame:
        """The DataFrame of one result: long top-k rows or the wide per-window matrix."""
        return scores_table(
            result,
            class_info=self.runtime.info.class_info,
            mode=scores or self.scores_mode,
            min_conf=self.min_conf,
            top_k=self.top_k,
        )

    def predict_file(self, path: str | Path) -> pd.DataFrame:
        """Scores of one recording, streamed from disk.

        Returns:
            ``scores='topk'``: columns ``file, window, start_s, end_s, [context_start_s,
            context_end_s,] rank, label, scientific_name, common_name, confidence``;
            ``scores='all'``: ``file, window, start_s, end_s, [context...,] <one column per class>``.

        Raises:
            AudioError: the recording cannot be decoded.
        """
        p = Path(path)
        if not p.exists():
            raise AudioError(f"{p}: no such file")
        if p.is_dir():
            raise ConfigError(f"{p} is a folder; use predict_paths() for folders")
        (result,) = list(self.predict_paths([p], strict=True))
        return self.table(result)

    def predict_array(self, waveform: np.ndarray, sample_rate_hz: int, *, name: str = "array") -> pd.DataFrame:
        """Scores of an in-memory recording ``(num_samples,)`` or ``(channels, num_samples)``.

        Resampled to 32 kHz when ``sample_rate_hz`` differs; channels are averaged.
        Same windows and scores as :meth:`predict_file` on the same audio.
        """
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim == 2:
            wave = wave.mean(axis=0, dtype=np.float32)
        if wave.ndim != 1:
            raise ConfigError(f"waveform must be (num_samples,) or (channels, num_samples), got shape {wave.shape}")
        if sample_rate_hz <= 0:
            raise ConfigError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if sample_rate_hz != SAMPLE_RATE_HZ:
            wave = audio.resample(wave, orig_sample_rate_hz=int(sample_rate_hz), sample_rate_hz=SAMPLE_RATE_HZ)
        if wave.size == 0:
            raise AudioError(f"{name}: empty waveform")
        block = int(DECODE_BLOCK_S * SAMPLE_RATE_HZ)
        blocks = lambda: (wave[i : i + block] for i in range(0, wave.size, block))  # noqa: E731
        (result,) = list(self.engine.run([(name, name, blocks)], strict=True, progress=None))
        return self.table(result)

    def penultimate(self, waves: np.ndarray) -> np.ndarray:
        """The model's features of windows: ``(n, W)`` float32 windows at 32 kHz (``W`` the checkpoint's
        window, cut by :attr:`geometry`) -> ``(n, D)`` float32, the input of the final classifier layer (the
        last ``Linear`` of the network; ``D`` = 1280 for mobilenetv2-seed, 512 for resnet18).

        The same frontend and normalisation as :meth:`predict_paths`; needs the PyTorch runtime
        (``backend='torch'``: an ONNX export has no features output) and a window model.

        Raises:
            ConfigError: another runtime, a stack10 model, or a network without a ``Linear`` layer.
        """
        from birdspec.prediction.torch_runtime import TorchRuntime

        rt = self.runtime
        if not isinstance(rt, TorchRuntime) or self.stacked:
            raise ConfigError("window features need a window model on the PyTorch runtime (backend='torch'); "
                              f"this is a {self.encoding.name} model on {self.backend}")
        from birdspec.models.registry import final_linear

        seen: list[Any] = []
        hook = final_linear(rt.model).register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach()))
        try:
            feats = rt.features(np.asarray(waves, dtype=np.float32).reshape(-1, self.geometry.window_samples))
            rt.head(feats[:, None])
        finally:
            hook.remove()
        return np.ascontiguousarray(seen[-1].float().cpu().numpy(), dtype=np.float32).reshape(len(feats), -1)

    def predict_paths(
        self,
        paths: Iterable[str | Path],
        *,
        strict: bool = False,
        progress: bool | Callable[[float, int], None] | None = False,
    ) -> Iterator[FileResult]:
        """Stream :class:`FileResult` objects, one per recording, in input order.

        Args:
            paths: files and folders (searched recursively for audio files).
            strict: raise :class:`~birdspec.errors.AudioError` on the first recording that
                fails, instead of yielding it with ``error`` set and going on.
            progress: True for tqdm bars on stderr (audio seconds, files), or a callback
                ``(audio_seconds_done_delta, files_done_delta)``.

        ``pd.concat(predictor.table(r) for r in predictor.predict_paths(paths))`` gives one table.
        """
        items = collect_audio_paths(paths)
        sources = [(str(p), name, (lambda p=p: audio.iter_blocks(p, block_s=DECODE_BLOCK_S))) for p, name in items]
        callback: Callable[[float, int], None] | None
        bar = None
        if progress is True:
            callback, bar = tqdm_progress(items)
        elif callable(progress):
            callback = progress
        else:
            callback = None
        try:
            for result in self.engine.run(sources, strict=strict, progress=callback):
                yield _with_truncation_warning(result)
        finally:
            if bar is not None:
                bar()

    # ----------------------------------------------------------------- engine


def _with_truncation_warning(result: FileResult) -> FileResult:
    """``result`` with its ``warning`` set (and logged) when its file looks cut off."""
    if not result.ok or not Path(result.path).is_file():
        return result
    from birdspec.truncation import truncation

    note = truncation(result.path, decoded_s=result.duration_s)
    if note is None:
        return result
    log.warning("%s: %s; its scores cover what decodes", result.path, note)
    return dataclasses.replace(result, warning=note)
