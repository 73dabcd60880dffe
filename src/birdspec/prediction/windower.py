"""Cutting a stream of decoded blocks into the predictor's windows, exactly as :mod:`birdspec.windowing` says.

:class:`Windower` turns blocks of one recording into items for the engine
(:mod:`birdspec.prediction.engine`): :class:`Chunk` (full windows, and the
last partial window: the recording's last window length of audio, or its own
audio filled, :func:`~birdspec.windowing.partial_audio_start`), :class:`Short`
(a stack10 recording shorter than its context, scored as one), :class:`End`,
and from the decoding thread :class:`Failed` and :class:`Done`.

Non-finite samples (NaN, infinite: a damaged float file) are never scored as they are (they would
give empty scores): :class:`NonFinite` sets them to 0 (silence) and the recording's :class:`End`
carries a warning with their count and time range; a recording with no finite sample at all fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from birdspec.config import SAMPLE_RATE_HZ
from birdspec.errors import AudioError
from birdspec.windowing import (
    PARTIAL_END,
    WindowGeometry,
    fit_window,
    num_full_windows,
    partial_audio_start,
    partial_window,
    window_bounds,
)


@dataclass
class Chunk:
    """Grid windows of one file: their index of the first, bounds (samples) and audio ``(n, W)``."""

    file_id: int
    first: int
    starts: np.ndarray
    ends: np.ndarray
    waves: np.ndarray  # (n, W)


@dataclass
class Short:
    file_id: int
    bounds: np.ndarray  # (n, 2) output windows
    wave: np.ndarray


@dataclass
class End:
    file_id: int
    num_samples: int
    warning: str | None = None  # non-finite samples were scored as silence (:class:`NonFinite`)


@dataclass
class Failed:
    file_id: int
    message: str


class Done:
    pass


class NonFinite:
    """The predict rule for non-finite samples of one recording's blocks: each is set to 0 (silence),
    counted, and told once (:meth:`note`); a recording with no finite sample fails (:meth:`note` raises)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.first = self.last = -1

    def clean(self, block: np.ndarray) -> np.ndarray:
        """``block`` ``(n,)`` float32 with its non-finite samples set to 0 (a copy only when it has some)."""
        bad = ~np.isfinite(block)
        if bad.any():
            at = np.flatnonzero(bad)
            if not self.count:
                self.first = self.total + int(at[0])
            self.last = self.total + int(at[-1])
            self.count += at.size
            block = np.where(bad, np.float32(0), block)
        self.total += block.size
        return block

    def note(self, *, sample_rate_hz: int = SAMPLE_RATE_HZ) -> str | None:
        """None when every sample was finite, else the warning of the recording's result.

        Raises:
            AudioError: no sample at all was finite (nothing to score).
        """
        if not self.count:
            return None
        if self.count == self.total:
            raise AudioError(f"no finite samples: all {self.total} decoded samples are NaN or infinite")
        sr = float(sample_rate_hz)
        return (f"{self.count} non-finite sample(s) (NaN or infinite) between {self.first / sr:.2f} s and "
                f"{(self.last + 1) / sr:.2f} s were scored as silence")


class Windower:
    """Cuts a stream of blocks into windows, following :mod:`birdspec.windowing` exactly.

    ``hold_samples`` > 0 (stack10): nothing is emitted until the stream is known to be
    at least that long; a shorter stream ends as one :class:`Short` item.
    """

    def __init__(self, file_id: int, geometry: WindowGeometry, *, hold_samples: int = 0) -> None:
        self.file_id = file_id
        self.g = geometry
        self.hold = hold_samples
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_off = 0
        self.total = 0
        self.next_k = 0
        self.nonfinite = NonFinite()

    def push(self, block: np.ndarray) -> list[Any]:
        block = np.asarray(block, dtype=np.float32)
        if block.size == 0:
            return []
        block = self.nonfinite.clean(block)
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
            items.append(Chunk(self.file_id, int(ks[0]), starts, starts + g.window_samples, waves))
            self.next_k += n_ready
        keep = g.window_samples if g.partial_source == PARTIAL_END else 0  # the audio a trailing partial window may need
        drop = min(self.next_k * g.hop_samples - self.buf_off, self.buf.size - keep)
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_off += drop
        return items

    def finish(self) -> list[Any]:
        """The last items of the recording.

        Raises:
            AudioError: no sample of the recording was finite (:class:`NonFinite`).
        """
        g = self.g
        warning = self.nonfinite.note()
        if self.hold:  # stack10 and shorter than the context: one context for the whole file
            bounds = window_bounds(num_samples=self.total, geometry=g)
            return [Short(self.file_id, bounds, self.buf.copy()), End(self.file_id, self.total, warning)]
        items = self._emit_full()
        tail = partial_window(num_samples=self.total, geometry=g)
        if tail is not None:
            a = partial_audio_start(num_samples=self.total, tail_start=tail[0], geometry=g) - self.buf_off
            wave = fit_window(self.buf[a:], length=g.window_samples, fill=g.fill)[None]
            items.append(Chunk(self.file_id, self.next_k, np.asarray([tail[0]]), np.asarray([tail[1]]), wave))
            self.next_k += 1
        items.append(End(self.file_id, self.total, warning))
        return items
