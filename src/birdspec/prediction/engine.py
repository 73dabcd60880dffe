"""The streaming prediction engine: decode in blocks, cut windows, batch the network, assemble results.

How a recording is scored (the rules of the windows are in :mod:`birdspec.windowing`):

1. It is decoded in blocks (:func:`birdspec.audio.iter_blocks`, 32 kHz mono)
   on a background thread, so memory stays flat for multi-hour files and
   decoding overlaps the network.
2. It is cut into windows of the checkpoint's ``window_s`` every ``hop_s``;
   the last partial window is kept when it holds at least ``min_partial_s``.
3. Windows from one or more files are batched; each window's features
   (spectrogram + input normalisation) are computed once.
4. **window** checkpoints score each window directly. **stack10** checkpoints
   score output window ``i`` from the centred (or trailing) context of
   ``num_windows`` windows (:func:`~birdspec.windowing.context_starts`); a
   recording shorter than the context is scored once, as a whole, tiled or
   zero-padded per the checkpoint's ``short_policy`` (``drop`` falls back to
   ``pad``), and that score is given to each of its windows.
5. Scores are the runtime's activation of the logits.

Non-finite samples (NaN or infinite) are scored as silence (0), and the recording's result carries
(and the log shows, once per recording) a warning with their count and time range; a recording with
no finite sample fails like one that does not decode (:class:`~birdspec.prediction.windower.NonFinite`).

:class:`~birdspec.prediction.runtime_types.RecordingRuntime` runtimes (BirdNET heads)
get each whole recording and its output windows instead (:meth:`Engine.run_recordings`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from birdspec.config import SAMPLE_RATE_HZ
from birdspec.errors import AudioError, BirdspecError
from birdspec.prediction.runtime_types import RecordingRuntime, WindowRuntime
from birdspec.prediction.sources import FileResult, empty_windows
from birdspec.prediction.windower import Chunk, Done, End, Failed, NonFinite, Short, Windower
from birdspec.windowing import WindowGeometry, fit_window, window_bounds

log = logging.getLogger(__name__)

_QUEUE_ITEMS = 8
Source = tuple[str, str, Callable[[], Iterable[np.ndarray]]]
"""``(path, name, blocks)``: a recording and a function that yields its 32 kHz blocks."""


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
    warning: str | None = None
    scores: dict[Any, np.ndarray] = field(default_factory=dict)
    feats: dict[Any, Any] = field(default_factory=dict)
    next_out: int = 0
    ctx_first: dict[int, int] = field(default_factory=dict)
    short_bounds: np.ndarray | None = None
    short_pending: int = 0
    n_outputs: int | None = None


@dataclass
class _RunState:
    """The engine's state over one call: per-file states and the work waiting for the network."""

    states: list[_FileState]
    feat_pending: list[tuple[int, str, int, np.ndarray]] = field(default_factory=list)  # (file, kind, index, wave)
    head_pending: list[tuple[int, Any, Any]] = field(default_factory=list)  # (file, output key, input (C, ...))
    next_yield: int = 0
    done: bool = False


class Engine:
    """Runs a runtime over recordings (see the module doc).

    Args:
        runtime: the checkpoint's runtime.
        geometry: the output windows.
        context_windows / stride / offset: stack10 contexts (1 / 1 / 0 for window models).
        short_fill: how a recording shorter than a stack10 context is filled ('pad' or 'tile').
        batch_size: windows (or contexts) per network call.
    """

    def __init__(self, runtime: WindowRuntime | RecordingRuntime, *, geometry: WindowGeometry, context_windows: int,
                 stride: int, offset: int, short_fill: str, batch_size: int) -> None:
        self.runtime = runtime
        self.geometry = geometry
        self.context_windows = context_windows
        self.stacked = runtime.info.encoding.name == "stack10"
        self.stride = stride
        self.span = (context_windows - 1) * stride
        self.offset = offset
        self.short_fill = short_fill
        self.batch_size = batch_size

    def run(self, sources: Sequence[Source], *, strict: bool, progress: Callable[[float, int], None] | None) -> Iterator[FileResult]:
        """One :class:`FileResult` per source, in order."""
        if isinstance(self.runtime, RecordingRuntime):
            return self.run_recordings(sources, strict=strict, progress=progress)
        return self._run(sources, strict=strict, progress=progress)

    def _producer(self, sources: Sequence[Source], q: queue.Queue[Any], stop: threading.Event) -> None:
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
                win = Windower(file_id, self.geometry, hold_samples=hold)
                try:
                    for block in blocks():
                        for item in win.push(block):
                            if not put(item):
                                return
                    tail = win.finish()
                except Exception as exc:  # a bad recording is reported and skipped, never fatal
                    msg = str(exc) if isinstance(exc, BirdspecError) else f"{type(exc).__name__}: {exc}"
                    msg = msg if msg.startswith(f"{path}: ") else f"{path}: {msg}"
                    log.debug("decoding %s failed", path, exc_info=True)
                    if not put(Failed(file_id, msg)):
                        return
                    continue
                for item in tail:
                    if not put(item):
                        return
        finally:
            put(Done())

    def _run(self, sources: Sequence[Source], *, strict: bool, progress: Callable[[float, int], None] | None) -> Iterator[FileResult]:
        q: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
        stop = threading.Event()
        worker = threading.Thread(target=self._producer, args=(sources, q, stop), name="birdspec-decode", daemon=True)
        run = _RunState([_FileState(i, path, name) for i, (path, name, _b) in enumerate(sources)])
        worker.start()
        try:
            while True:
                if not run.done:
                    self._receive(q.get(), run, strict=strict, progress=progress)
                yield from self._advance(run, progress)
                if run.done and run.next_yield >= len(run.states):
                    break
                if run.done and not run.feat_pending and not run.head_pending:
                    # nothing left to run: any file still incomplete is a bug in the engine
                    stuck = [st.path for st in run.states[run.next_yield :] if st is not None]
                    raise RuntimeError(f"prediction engine stalled on {stuck[:3]}")  # pragma: no cover
        finally:
            stop.set()
            worker.join(timeout=5)

    def _receive(self, item: Any, run: _RunState, *, strict: bool, progress: Callable[[float, int], None] | None) -> None:
        """Take one item of the decoding thread into the run's state."""
        if isinstance(item, Done):
            run.done = True
            return
        st = run.states[item.file_id]
        if isinstance(item, Chunk):
            if st.error is None:
                st.starts.extend(int(s) for s in item.starts)
                st.ends.extend(int(e) for e in item.ends)
                for j in range(item.waves.shape[0]):  # 'w': a grid window ('s': a channel of a short file's context)
                    run.feat_pending.append((item.file_id, "w", item.first + j, item.waves[j]))
        elif isinstance(item, Short):
            self._receive_short(item, st, run, progress)
        elif isinstance(item, End):
            st.ended = True
            st.num_samples = item.num_samples
            if item.warning and st.error is None:
                st.warning = item.warning
                log.warning("%s: %s", st.path, item.warning)
            if st.n_outputs is None:
                st.n_outputs = len(st.starts)
            if st.n_outputs == 0 and st.error is None:  # reported like a failed file (not fatal under strict)
                st.error = (f"{st.path}: {st.num_samples / SAMPLE_RATE_HZ:.2f} s of audio, shorter than the "
                            f"{self.geometry.min_partial_samples / SAMPLE_RATE_HZ:.2f} s a window needs (--min-partial-s)")
                log.warning("skipped %s", st.error)
        elif isinstance(item, Failed):
            st.error = item.message
            st.ended = True
            run.feat_pending = [f for f in run.feat_pending if f[0] != item.file_id]
            run.head_pending = [h for h in run.head_pending if h[0] != item.file_id]
            log.warning("skipped %s", item.message)
            if strict:
                raise AudioError(item.message)

    def _receive_short(self, item: Short, st: _FileState, run: _RunState, progress: Callable[[float, int], None] | None) -> None:
        """A stack10 recording shorter than the context: its one filled context, split into windows."""
        st.short_bounds = item.bounds
        st.starts = [int(b) for b in item.bounds[:, 0]]
        st.ends = [int(b) for b in item.bounds[:, 1]]
        st.n_outputs = len(item.bounds)
        if progress is not None:
            progress(item.wave.size / SAMPLE_RATE_HZ, 0)
        if len(item.bounds):
            n = self.context_windows * self.geometry.window_samples
            ctx = fit_window(item.wave, length=n, fill=self.short_fill).reshape(self.context_windows, -1)
            st.short_pending = self.context_windows
            for j in range(self.context_windows):
                run.feat_pending.append((item.file_id, "s", j, ctx[j]))

    def _advance(self, run: _RunState, progress: Callable[[float, int], None] | None) -> Iterator[FileResult]:
        """Run the network on full batches (or on everything once decoding is done); yield finished files."""
        while len(run.feat_pending) >= self.batch_size or (run.done and run.feat_pending):
            batch, run.feat_pending = run.feat_pending[: self.batch_size], run.feat_pending[self.batch_size :]
            self._featurize(batch, run.states, run.head_pending)
            if progress is not None:
                progress(sum(1 for b in batch if b[1] == "w") * self.geometry.hop_samples / SAMPLE_RATE_HZ, 0)
        for i in range(run.next_yield, len(run.states)):
            st = run.states[i]
            if self.stacked and st.error is None and st.short_bounds is None:
                self._assemble(st, run.head_pending)
            if not st.ended and st.n_feat == 0 and not st.starts:
                break  # files after this one have not started
        while len(run.head_pending) >= self.batch_size or (run.done and not run.feat_pending and run.head_pending):
            heads, run.head_pending = run.head_pending[: self.batch_size], run.head_pending[self.batch_size :]
            self._score(heads, run.states)
        while run.next_yield < len(run.states) and self._complete(run.states[run.next_yield]):
            st = run.states[run.next_yield]
            run.states[run.next_yield] = None  # type: ignore[call-overload]  # free its memory
            run.next_yield += 1
            if progress is not None:
                progress(0.0, 1)
            yield self._result(st)

    def _window_runtime(self) -> WindowRuntime:
        """The runtime of :meth:`_run` (:meth:`run` gives recording runtimes to :meth:`run_recordings`)."""
        if isinstance(self.runtime, RecordingRuntime):  # pragma: no cover - a programming error
            raise TypeError("a RecordingRuntime scores whole recordings: use run_recordings")
        return self.runtime

    def _featurize(self, batch: list[tuple[int, str, int, np.ndarray]], states: list[_FileState],
                   head_pending: list[tuple[int, Any, Any]]) -> None:
        rt = self._window_runtime()
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

    def _assemble(self, st: _FileState, head_pending: list[tuple[int, Any, Any]]) -> None:
        """Queue every stack10 context of ``st`` whose windows are all featurized."""
        rt = self._window_runtime()
        span, stride = self.span, self.stride
        final = st.ended
        n = len(st.starts)
        while st.next_out < (n if final else st.n_feat):
            i = st.next_out
            if final:
                if n < span + 1:  # pragma: no cover - such files are sent as Short
                    raise RuntimeError("short stack file reached the long path")
                if st.n_feat < n:
                    break
                s = min(max(i - self.offset, 0), n - 1 - span)
            else:
                s = max(i - self.offset, 0)
                if s + span >= st.n_feat:
                    break
            ctx = rt.stack([st.feats[s + j * stride] for j in range(self.context_windows)])
            head_pending.append((st.file_id, i, ctx))
            st.ctx_first[i] = s
            st.next_out += 1
        # forget windows no future context can use
        keep_from = max(0, min(st.next_out - self.offset, st.n_feat - 1 - span))
        for k in [k for k in st.feats if isinstance(k, int) and k < keep_from]:
            del st.feats[k]

    def _score(self, batch: list[tuple[int, Any, Any]], states: list[_FileState]) -> None:
        rt = self._window_runtime()
        x = rt.stack([b[2] for b in batch])
        probs = rt.info.scores(rt.head(x))
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

    def run_recordings(self, sources: Sequence[Source], *, strict: bool, progress: Callable[[float, int], None] | None) -> Iterator[FileResult]:
        """A :class:`~birdspec.prediction.runtime_types.RecordingRuntime` on each whole recording.

        The recording is decoded whole, so memory grows with file length (BirdNET heads:
        about 0.2 GB per hour of audio besides BirdNET itself).
        """
        rt = self.runtime
        if not isinstance(rt, RecordingRuntime):  # pragma: no cover - a programming error
            raise TypeError("only a RecordingRuntime scores whole recordings: use run")
        sr = SAMPLE_RATE_HZ
        k = len(rt.info.classes)
        for path, name, blocks in sources:
            try:
                parts = list(blocks())
                wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
                if wave.size == 0:
                    raise AudioError(f"{path}: no audio frames")
                nonfinite = NonFinite()
                wave = nonfinite.clean(np.asarray(wave, dtype=np.float32))
                try:
                    warning = nonfinite.note()
                except AudioError as exc:
                    raise AudioError(f"{path}: {exc}") from None
                if warning:
                    log.warning("%s: %s", path, warning)
                bounds = window_bounds(num_samples=wave.size, geometry=self.geometry)
                if bounds.shape[0] == 0:  # shorter than the shortest partial window: one padded window
                    bounds = np.asarray([[0, wave.size]], dtype=np.int64)
                probs = rt.info.scores(rt.score(wave, bounds))
            except BirdspecError as exc:
                if strict:
                    raise
                log.warning("skipped %s: %s", path, exc)
                if progress:
                    progress(0.0, 1)
                yield FileResult(path, name, 0.0, empty_windows(False), np.zeros((0, k), np.float32), str(exc))
                continue
            if progress:
                progress(wave.size / sr, 1)
            windows = pd.DataFrame(
                {"window": np.arange(len(bounds), dtype=np.int64), "start_s": bounds[:, 0] / sr, "end_s": bounds[:, 1] / sr}
            )
            yield FileResult(path, name, wave.size / sr, windows, probs.astype(np.float32), None, warning)

    def _result(self, st: _FileState) -> FileResult:
        sr = SAMPLE_RATE_HZ
        k = len(self.runtime.info.classes)
        if st.error is not None:
            return FileResult(st.path, st.name, st.num_samples / sr, empty_windows(self.stacked), np.zeros((0, k), np.float32), st.error)
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
        return FileResult(st.path, st.name, st.num_samples / sr, pd.DataFrame(cols), scores.astype(np.float32), None,
                          st.warning)
