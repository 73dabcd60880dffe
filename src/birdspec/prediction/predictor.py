"""Species predictions for recordings of any length: the :class:`Predictor`.

How a recording is scored:

1. It is decoded in blocks (:func:`birdspec.audio.iter_blocks`, 32 kHz mono)
   on a background thread, so memory stays flat for multi-hour files and
   decoding overlaps the network.
2. It is cut into windows of the checkpoint's ``window_s`` every ``hop_s``
   (rules in :mod:`birdspec.windowing`). **The last partial window**
   is kept when it holds at least ``min_partial_s`` (default 1 s) of audio:
   it is zero-padded (tiled for ``short_policy='tile'`` checkpoints) to a full
   window and reported with its true end time; a shorter tail is dropped.
3. Windows from one or more files are batched; each window's log-mel and
   input normalisation are computed once.
4. **window** checkpoints score each window directly. **stack10** checkpoints
   (10 consecutive 5 s windows as channels, 50 s of context) score output
   window ``i`` from a *centred* context: the 10 non-overlapping windows with
   window ``i`` in 5th position (4 before, 5 after; ``context='trailing'``
   puts it last), shifted to stay inside the recording at its start and end
   (never padded there). The context of every row is reported in
   ``context_start_s`` / ``context_end_s``. A recording shorter than the
   context is scored once, as a whole, tiled or zero-padded to 50 s per the
   checkpoint's ``short_policy`` (``drop`` falls back to ``pad``, as the
   dataset reader does), and that score is given to each of its windows.
5. Scores are the checkpoint's activation of the logits: **softmax
   probabilities** for single-label models (the study's: a window's scores sum
   to 1 over the classes), sigmoid for multi-label ones.

Typical use::

    p = Predictor("runs/best.pt", min_conf=0.1, top_k=3)
    df = p.predict_file("soundscape.ogg")          # one row per (window, class) kept
    wide = Predictor("runs/best.pt", scores="all").predict_file("soundscape.ogg")
    for res in p.predict_paths(["recordings/"]):   # FileResult per file, failures included
        ...
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from birdspec import audio
from birdspec.config import SAMPLE_RATE_HZ
from birdspec.errors import AudioError, BirdspecError, ConfigError, DataError
from birdspec.prediction.fast import Runtime, apply_activation, has_cached_runtime, load_runtime
from birdspec.prediction.outputs import scores_table
from birdspec.windowing import (
    CONTEXT_POSITIONS,
    DEFAULT_MIN_PARTIAL_S,
    WindowGeometry,
    context_offset,
    fit_window,
    num_full_windows,
    partial_window,
    window_bounds,
)

log = logging.getLogger(__name__)

SCORE_MODES = ("topk", "all")
DECODE_BLOCK_S = 30.0
"""Seconds decoded per block (memory per file in flight: a few blocks)."""
_QUEUE_ITEMS = 8


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class FileResult:
    """Scores of one recording (or why it failed).

    Attributes:
        path: the recording (or the name given to :meth:`Predictor.predict_array`).
        name: path relative to the folder it was found in (for output file names).
        duration_s: decoded length (0 when it failed before decoding).
        windows: one row per scored window: ``window`` (index), ``start_s``, ``end_s``
            (true end), and for stack10 checkpoints ``context_start_s``, ``context_end_s``.
        scores: ``(len(windows), K)`` float32 class scores.
        error: None, or the reason the recording was skipped.
    """

    path: str
    name: str
    duration_s: float
    windows: pd.DataFrame
    scores: np.ndarray
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def collect_audio_paths(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Files and folders (searched recursively for audio extensions) -> ``[(path, name)]``.

    ``name`` is the path relative to the folder argument (the file name for file
    arguments). Files given explicitly are kept whatever their extension.

    Raises:
        DataError: a path does not exist, or nothing to predict on.
    """
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and audio.is_audio_file(q))
            if not found:
                log.warning("%s: no audio files (%s) in this folder", p, ", ".join(audio.AUDIO_EXTENSIONS))
            for q in found:
                if q.resolve() not in seen:
                    seen.add(q.resolve())
                    out.append((q, str(q.relative_to(p))))
        elif p.exists():
            if p.resolve() not in seen:
                seen.add(p.resolve())
                out.append((p, p.name))
        else:
            raise DataError(f"{p}: no such file or folder")
    if not out:
        raise DataError("no audio files to predict on; pass recordings or folders that contain them")
    return out


# --------------------------------------------------------------------------- streaming windower


@dataclass
class _Chunk:
    file_id: int
    kind: str  # 'w': grid windows, 's': channels of a short file's single context
    first: int
    starts: np.ndarray
    ends: np.ndarray
    waves: np.ndarray  # (n, W)


@dataclass
class _Short:
    file_id: int
    bounds: np.ndarray  # (n, 2) output windows
    wave: np.ndarray


@dataclass
class _End:
    file_id: int
    num_samples: int


@dataclass
class _Failed:
    file_id: int
    message: str


class _Done:
    pass


class _Windower:
    """Cuts a stream of blocks into windows, following :mod:`birdspec.windowing` exactly.

    ``hold_samples`` > 0 (stack10): nothing is emitted until the stream is known to be
    at least that long; a shorter stream ends as one :class:`_Short` item.
    """

    def __init__(self, file_id: int, geometry: WindowGeometry, *, hold_samples: int = 0) -> None:
        self.file_id = file_id
        self.g = geometry
        self.hold = hold_samples
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_off = 0
        self.total = 0
        self.next_k = 0

    def push(self, block: np.ndarray) -> list[Any]:
        block = np.asarray(block, dtype=np.float32)
        if block.size == 0:
            return []
        self.buf = np.concatenate([self.buf, block]) if self.buf.size else block
        self.total += block.size
        if self.hold and self.total < self.hold:
            return []
        self.hold = 0
        return self._emit_full()

    def _emit_full(self) -> list[Any]:
        g = self.g
        n_ready = num_full_windows(num_samples=self.total, window_samples=g.window_samples, hop_samples=g.hop_samples) - self.next_k
        items: list[Any] = []
        if n_ready > 0:
            ks = self.next_k + np.arange(n_ready)
            starts = ks * g.hop_samples
            rel = starts - self.buf_off
            if g.hop_samples == g.window_samples:
                a = int(rel[0])
                waves = self.buf[a : a + n_ready * g.window_samples].reshape(n_ready, g.window_samples).copy()
            else:
                view = np.lib.stride_tricks.sliding_window_view(self.buf, g.window_samples)
                waves = view[rel]
            items.append(_Chunk(self.file_id, "w", int(ks[0]), starts, starts + g.window_samples, waves))
            self.next_k += n_ready
        drop = min(self.next_k * g.hop_samples - self.buf_off, self.buf.size)
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_off += drop
        return items

    def finish(self) -> list[Any]:
        g = self.g
        if self.hold:  # stack10 and shorter than the context: one context for the whole file
            bounds = window_bounds(num_samples=self.total, geometry=g)
            return [_Short(self.file_id, bounds, self.buf.copy()), _End(self.file_id, self.total)]
        items = self._emit_full()
        tail = partial_window(num_samples=self.total, geometry=g)
        if tail is not None:
            a = tail[0] - self.buf_off
            wave = fit_window(self.buf[a:], length=g.window_samples, fill=g.fill)[None]
            items.append(_Chunk(self.file_id, "w", self.next_k, np.asarray([tail[0]]), np.asarray([tail[1]]), wave))
            self.next_k += 1
        items.append(_End(self.file_id, self.total))
        return items


# --------------------------------------------------------------------------- per-file state


@dataclass
class _FileState:
    file_id: int
    path: str
    name: str
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    n_feat: int = 0
    ended: bool = False
    num_samples: int = 0
    error: str | None = None
    scores: dict[Any, np.ndarray] = field(default_factory=dict)
    feats: dict[Any, Any] = field(default_factory=dict)
    next_out: int = 0
    ctx_first: dict[int, int] = field(default_factory=dict)
    short_bounds: np.ndarray | None = None
    short_pending: int = 0
    n_outputs: int | None = None


class Predictor:
    """Scores recordings with a checkpoint (see the module docstring for the windowing rules).

    Args:
        checkpoint: a checkpoint file, a run folder (best.pt / last.pt) or a checkpoint dict.
        device: 'auto' (CUDA when present), 'cpu' or 'cuda'.
        batch_size: windows (or stack10 contexts) per network call (None: 8 on the CPU, where
            small batches stay in cache and keep the peak memory low, 64 on CUDA).
        backend: 'auto' (ONNX Runtime on the CPU when installed, PyTorch on CUDA), 'onnx' or 'torch'.
        window_s: window length; must equal the checkpoint's (None: the checkpoint's).
        hop_s: distance between window starts (None: ``window_s``); for stack10
            ``window_s / hop_s`` must be a whole number.
        min_partial_s: the least audio a trailing partial window needs to be scored.
        min_conf: scores below this are not reported (``scores='topk'``).
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
        min_conf: float = 0.1,
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
        if not 0.0 <= min_conf <= 1.0:
            raise ConfigError(f"min_conf must be in [0, 1], got {min_conf}")
        if top_k is not None and top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0: no limit), got {top_k}")
        self._birdnet = None  # a BirdnetAudioClassifier for birdnet-* head checkpoints
        # a cached ONNX export means a CNN checkpoint: skip reading it (that would import PyTorch)
        ckpt = None if has_cached_runtime(checkpoint, cache_dir=cache_dir) else _embedding_checkpoint(checkpoint)
        if ckpt is not None:
            self.runtime, self._birdnet = _birdnet_runtime(ckpt, threads=threads)
        else:
            self.runtime = load_runtime(
                checkpoint, device=device, backend=backend, threads=threads, activation=activation, cache_dir=cache_dir
            )
        meta = self.runtime.meta
        enc, fe = meta.encoding, meta.frontend
        if fe.sample_rate_hz != SAMPLE_RATE_HZ:
            raise ConfigError(f"checkpoint frontend runs at {fe.sample_rate_hz} Hz; birdspec decodes at {SAMPLE_RATE_HZ} Hz")
        if window_s is not None and abs(window_s - enc.window_s) > 1e-9:
            raise ConfigError(
                f"this checkpoint was trained on {enc.window_s:g} s windows; --window-s {window_s:g} would change what "
                f"the model sees (leave --window-s out, or pass {enc.window_s:g})"
            )
        policy = enc.short_policy if enc.short_policy != "drop" else "pad"
        self.geometry = WindowGeometry.from_seconds(
            window_s=enc.window_s, hop_s=hop_s, min_partial_s=min_partial_s, sample_rate_hz=SAMPLE_RATE_HZ, fill=policy
        )
        self.short_fill = policy
        self.stacked = enc.name == "stack10"
        self.context_windows = enc.num_windows if self.stacked else 1
        g = self.geometry
        if self.stacked:
            if g.window_samples % g.hop_samples:
                raise ConfigError(
                    f"stack10 needs window_s / hop_s to be a whole number (contexts are built from non-overlapping "
                    f"windows on the hop grid); got window {enc.window_s:g} s and hop {g.hop_samples / SAMPLE_RATE_HZ:g} s"
                )
            self.stride = g.window_samples // g.hop_samples
            self.span = (self.context_windows - 1) * self.stride
            self.offset = context_offset(context_windows=self.context_windows, stride=self.stride, position=context)
        else:
            self.stride, self.span, self.offset = 1, 0, 0
        self.context = context
        self.batch_size = int(batch_size) if batch_size else (64 if self.runtime.device == "cuda" else 8)
        self.min_conf = float(min_conf)
        self.top_k = int(top_k) if top_k else 0
        self.scores_mode = scores

    # ----------------------------------------------------------------- properties

    @property
    def classes(self) -> list[str]:
        return list(self.runtime.meta.classes)

    @property
    def class_info(self) -> list[dict]:
        return [dict(c) for c in self.runtime.meta.class_info]

    @property
    def encoding(self):
        return self.runtime.meta.encoding

    @property
    def frontend(self):
        return self.runtime.meta.frontend

    @property
    def activation(self) -> str:
        return self.runtime.meta.activation

    @property
    def backend(self) -> str:
        return self.runtime.backend

    @property
    def device(self) -> str:
        return self.runtime.device

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- public API

    def table(self, result: FileResult, *, scores: str | None = None) -> pd.DataFrame:
        """The DataFrame of one result: long top-k rows or the wide per-window matrix."""
        return scores_table(
            result,
            class_info=self.runtime.meta.class_info,
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
        (result,) = list(self._run([(name, name, blocks)], strict=True, progress=None))
        return self.table(result)

    def predict_paths(
        self,
        paths: Iterable[str | Path],
        *,
        strict: bool = False,
        progress: bool | Callable[[float, int], None] = False,
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
            callback, bar = _tqdm_progress(items)
        elif callable(progress):
            callback = progress
        else:
            callback = None
        try:
            yield from self._run(sources, strict=strict, progress=callback)
        finally:
            if bar is not None:
                bar()

    # ----------------------------------------------------------------- engine

    def _producer(self, sources: Sequence[tuple[str, str, Callable[[], Iterable[np.ndarray]]]], q: queue.Queue, stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        hold = self.context_windows * self.geometry.window_samples if self.stacked else 0
        try:
            for file_id, (path, _name, blocks) in enumerate(sources):
                win = _Windower(file_id, self.geometry, hold_samples=hold)
                try:
                    for block in blocks():
                        for item in win.push(block):
                            if not put(item):
                                return
                    tail = win.finish()
                except Exception as exc:  # a bad recording is reported and skipped, never fatal
                    msg = str(exc) if isinstance(exc, BirdspecError) else f"{path}: {type(exc).__name__}: {exc}"
                    log.debug("decoding %s failed", path, exc_info=True)
                    if not put(_Failed(file_id, msg)):
                        return
                    continue
                for item in tail:
                    if not put(item):
                        return
        finally:
            put(_Done())

    def _run(
        self,
        sources: Sequence[tuple[str, str, Callable[[], Iterable[np.ndarray]]]],
        *,
        strict: bool,
        progress: Callable[[float, int], None] | None,
    ) -> Iterator[FileResult]:
        if self._birdnet is not None:
            yield from self._run_birdnet(sources, strict=strict, progress=progress)
            return
        q: queue.Queue = queue.Queue(maxsize=_QUEUE_ITEMS)
        stop = threading.Event()
        worker = threading.Thread(target=self._producer, args=(sources, q, stop), name="birdspec-decode", daemon=True)
        states = [_FileState(i, path, name) for i, (path, name, _b) in enumerate(sources)]
        feat_pending: list[tuple[int, str, int, np.ndarray]] = []  # (file, kind, index, wave row)
        head_pending: list[tuple[int, Any, Any]] = []  # (file, output key, input (C, ...))
        next_yield = 0
        sr = SAMPLE_RATE_HZ
        worker.start()
        try:
            done = False
            while True:
                if not done:
                    item = q.get()
                    if isinstance(item, _Done):
                        done = True
                    elif isinstance(item, _Chunk):
                        st = states[item.file_id]
                        if st.error is None:
                            if item.kind == "w":
                                st.starts.extend(int(s) for s in item.starts)
                                st.ends.extend(int(e) for e in item.ends)
                            for j in range(item.waves.shape[0]):
                                feat_pending.append((item.file_id, item.kind, item.first + j, item.waves[j]))
                    elif isinstance(item, _Short):
                        st = states[item.file_id]
                        st.short_bounds = item.bounds
                        st.starts = [int(b) for b in item.bounds[:, 0]]
                        st.ends = [int(b) for b in item.bounds[:, 1]]
                        st.n_outputs = len(item.bounds)
                        if progress is not None:
                            progress(item.wave.size / sr, 0)
                        if len(item.bounds):
                            n = self.context_windows * self.geometry.window_samples
                            ctx = fit_window(item.wave, length=n, fill=self.short_fill).reshape(self.context_windows, -1)
                            st.short_pending = self.context_windows
                            for j in range(self.context_windows):
                                feat_pending.append((item.file_id, "s", j, ctx[j]))
                    elif isinstance(item, _End):
                        st = states[item.file_id]
                        st.ended = True
                        st.num_samples = item.num_samples
                        if st.n_outputs is None:
                            st.n_outputs = len(st.starts)
                        if st.n_outputs == 0 and st.error is None:
                            log.warning("%s: shorter than %.2f s; no window to score", st.path, self.geometry.min_partial_samples / sr)
                    elif isinstance(item, _Failed):
                        st = states[item.file_id]
                        st.error = item.message
                        st.ended = True
                        feat_pending = [f for f in feat_pending if f[0] != item.file_id]
                        head_pending = [h for h in head_pending if h[0] != item.file_id]
                        log.warning("skipped %s", item.message)
                        if strict:
                            raise AudioError(item.message)
                # run the network when batches are full (or everything has arrived)
                while len(feat_pending) >= self.batch_size or (done and feat_pending):
                    batch, feat_pending = feat_pending[: self.batch_size], feat_pending[self.batch_size :]
                    self._featurize(batch, states, head_pending)
                    if progress is not None:
                        progress(sum(1 for b in batch if b[1] == "w") * self.geometry.hop_samples / sr, 0)
                for i in range(next_yield, len(states)):
                    st = states[i]
                    if self.stacked and st.error is None and st.short_bounds is None:
                        self._assemble(st, head_pending)
                    if not st.ended and st.n_feat == 0 and not st.starts:
                        break  # files after this one have not started
                while len(head_pending) >= self.batch_size or (done and not feat_pending and head_pending):
                    batch, head_pending = head_pending[: self.batch_size], head_pending[self.batch_size :]
                    self._score(batch, states)
                while next_yield < len(states) and self._complete(states[next_yield]):
                    st = states[next_yield]
                    states[next_yield] = None  # type: ignore[call-overload]  # free its memory
                    next_yield += 1
                    if progress is not None:
                        progress(0.0, 1)
                    yield self._result(st)
                if done and next_yield >= len(states):
                    break
                if done and not feat_pending and not head_pending:
                    # nothing left to run: any file still incomplete is a bug in the engine
                    stuck = [s.path for s in states[next_yield:] if s is not None]
                    raise RuntimeError(f"prediction engine stalled on {stuck[:3]}")  # pragma: no cover
        finally:
            stop.set()
            worker.join(timeout=5)

    def _featurize(self, batch: list[tuple[int, str, int, np.ndarray]], states: list[_FileState], head_pending: list) -> None:
        rt = self.runtime
        waves = np.stack([b[3] for b in batch])
        feats = rt.features(waves)
        for j, (fid, kind, idx, _w) in enumerate(batch):
            st = states[fid]
            if st is None or st.error is not None:
                continue
            if kind == "s":
                st.feats[("s", idx)] = feats[j]
                st.short_pending -= 1
                if st.short_pending == 0:
                    ctx = rt.stack([st.feats.pop(("s", k)) for k in range(self.context_windows)])
                    head_pending.append((fid, "short", ctx))
            elif self.stacked:
                st.feats[idx] = feats[j]
                st.n_feat = idx + 1
            else:
                st.n_feat = idx + 1
                head_pending.append((fid, idx, feats[j][None]))

    def _assemble(self, st: _FileState, head_pending: list) -> None:
        """Queue every stack10 context of ``st`` whose windows are all featurized."""
        span, stride = self.span, self.stride
        final = st.ended
        n = len(st.starts)
        while st.next_out < (n if final else st.n_feat):
            i = st.next_out
            if final:
                if n < span + 1:  # pragma: no cover - such files are sent as _Short
                    raise RuntimeError("short stack file reached the long path")
                if st.n_feat < n:
                    break
                s = min(max(i - self.offset, 0), n - 1 - span)
            else:
                s = max(i - self.offset, 0)
                if s + span >= st.n_feat:
                    break
            ctx = self.runtime.stack([st.feats[s + j * stride] for j in range(self.context_windows)])
            head_pending.append((st.file_id, i, ctx))
            st.ctx_first[i] = s
            st.next_out += 1
        # forget windows no future context can use
        keep_from = max(0, min(st.next_out - self.offset, st.n_feat - 1 - span))
        for k in [k for k in st.feats if isinstance(k, int) and k < keep_from]:
            del st.feats[k]

    def _score(self, batch: list[tuple[int, Any, Any]], states: list[_FileState]) -> None:
        rt = self.runtime
        x = rt.stack([b[2] for b in batch])
        probs = apply_activation(rt.head(x), rt.meta.activation)
        for j, (fid, key, _x) in enumerate(batch):
            st = states[fid]
            if st is None or st.error is not None:
                continue
            st.scores[key] = probs[j]

    def _complete(self, st: _FileState) -> bool:
        if st.error is not None:
            return True
        if not st.ended or st.n_outputs is None:
            return False
        if st.short_bounds is not None:
            return st.n_outputs == 0 or "short" in st.scores
        return len(st.scores) == st.n_outputs

    def _run_birdnet(
        self,
        sources: Sequence[tuple[str, str, Callable[[], Iterable[np.ndarray]]]],
        *,
        strict: bool,
        progress: Callable[[float, int], None] | None,
    ) -> Iterator[FileResult]:
        """birdnet-* heads: BirdNET embeds 3 s windows every 1 s, and each output window is
        scored by the head over the 3 s windows inside it (see :mod:`birdspec.birdnet.predict`).

        The recording is decoded whole (BirdNET runs at 48 kHz on its own windows), so memory
        grows with file length: about 0.2 GB per hour of audio besides BirdNET itself.
        """
        sr = SAMPLE_RATE_HZ
        k = len(self.runtime.meta.classes)
        for path, name, blocks in sources:
            try:
                parts = list(blocks())
                wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
                if wave.size == 0:
                    raise AudioError(f"{path}: no audio frames")
                bounds = window_bounds(num_samples=wave.size, geometry=self.geometry)
                if bounds.shape[0] == 0:  # shorter than the shortest partial window: one padded window
                    bounds = np.asarray([[0, wave.size]], dtype=np.int64)
                probs = self._birdnet.predict_windows(wave, sample_rate_hz=sr, bounds_s=bounds / sr).probs
            except BirdspecError as exc:
                if strict:
                    raise
                log.warning("skipped %s: %s", path, exc)
                if progress:
                    progress(0.0, 1)
                yield FileResult(path, name, 0.0, _empty_windows(False), np.zeros((0, k), np.float32), str(exc))
                continue
            if progress:
                progress(wave.size / sr, 1)
            windows = pd.DataFrame(
                {"window": np.arange(len(bounds), dtype=np.int64), "start_s": bounds[:, 0] / sr, "end_s": bounds[:, 1] / sr}
            )
            yield FileResult(path, name, wave.size / sr, windows, probs.astype(np.float32), None)

    def _result(self, st: _FileState) -> FileResult:
        sr = SAMPLE_RATE_HZ
        k = len(self.runtime.meta.classes)
        if st.error is not None:
            return FileResult(st.path, st.name, st.num_samples / sr, _empty_windows(self.stacked), np.zeros((0, k), np.float32), st.error)
        n = st.n_outputs or 0
        starts = np.asarray(st.starts[:n], dtype=np.int64)
        ends = np.asarray(st.ends[:n], dtype=np.int64)
        cols: dict[str, Any] = {"window": np.arange(n, dtype=np.int64), "start_s": starts / sr, "end_s": ends / sr}
        if st.short_bounds is not None:
            scores = np.repeat(st.scores["short"][None], n, axis=0) if n else np.zeros((0, k), np.float32)
            if self.stacked:
                cols["context_start_s"] = np.zeros(n)
                cols["context_end_s"] = np.full(n, st.num_samples / sr)
        else:
            scores = np.stack([st.scores[i] for i in range(n)]) if n else np.zeros((0, k), np.float32)
            if self.stacked:
                first = np.asarray([st.ctx_first[i] for i in range(n)], dtype=np.int64)
                cols["context_start_s"] = starts[first] / sr if n else np.zeros(0)
                cols["context_end_s"] = ends[first + self.span] / sr if n else np.zeros(0)
        return FileResult(st.path, st.name, st.num_samples / sr, pd.DataFrame(cols), scores.astype(np.float32), None)


def _embedding_checkpoint(checkpoint: str | Path | Mapping[str, Any]) -> dict[str, Any] | None:
    """The checkpoint dict when it holds a head over BirdNET embeddings, else None."""
    from birdspec.models.checkpoint import read_checkpoint

    ckpt = dict(checkpoint) if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)
    return ckpt if (ckpt.get("model") or {}).get("input") == "embedding" else None


def _birdnet_runtime(ckpt: Mapping[str, Any], *, threads: int | None) -> tuple[Runtime, Any]:
    """Metadata for the engine and the BirdNET + head classifier (needs the optional extra)."""
    from dataclasses import replace

    from birdspec.birdnet.predict import BirdnetAudioClassifier
    from birdspec.config import EncodingConfig, FrontendConfig, from_dict
    from birdspec.prediction.fast import ModelMeta

    classifier = BirdnetAudioClassifier.from_checkpoint(ckpt, num_threads=threads)
    encoding = from_dict(EncodingConfig, ckpt.get("encoding") or {})
    meta = ModelMeta(
        classes=tuple(ckpt["classes"]),
        class_info=tuple(ckpt.get("class_info") or [{"label": c} for c in ckpt["classes"]]),
        frontend=from_dict(FrontendConfig, ckpt.get("frontend") or {}),
        encoding=replace(encoding, name="window"),  # the head scores every output window on its own
        activation="softmax",
        norm=None,
        model=dict(ckpt["model"]),
        source=str(ckpt.get("path", "<memory>")),
    )
    unused = lambda *_a, **_k: None  # noqa: E731  (the streaming engine's stages are not used)
    return Runtime(meta=meta, features=unused, head=unused, stack=unused, backend="birdnet", device="cpu"), classifier


def _empty_windows(stacked: bool) -> pd.DataFrame:
    cols = ["window", "start_s", "end_s"] + (["context_start_s", "context_end_s"] if stacked else [])
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "window" else "float64") for c in cols})


def _tqdm_progress(items: Sequence[tuple[Path, str]]) -> tuple[Callable[[float, int], None], Callable[[], None]]:
    """Two tqdm bars on stderr: audio seconds (total from the file headers) and files."""
    from tqdm.auto import tqdm

    total_s = 0.0
    for p, _n in items:
        try:
            total_s += audio.info(p).duration_s
        except BirdspecError:
            pass
    secs = tqdm(total=round(total_s, 1), unit="s", desc="audio", file=sys.stderr, position=0, dynamic_ncols=True, smoothing=0.1)
    files = tqdm(total=len(items), unit="file", desc="files", file=sys.stderr, position=1, dynamic_ncols=True)

    def update(seconds: float, n_files: int) -> None:
        if seconds:
            secs.update(min(seconds, max(0.0, secs.total - secs.n)))
        if n_files:
            files.update(n_files)

    def close() -> None:
        secs.close()
        files.close()

    return update, close
