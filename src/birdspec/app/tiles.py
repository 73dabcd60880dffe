"""Spectrogram tiles of a recording, rendered on demand as small PNGs (never one giant image).

A tile is :data:`TILE_WIDTH_PX` columns covering ``level_s`` seconds starting at ``index * level_s``;
:data:`LEVELS_S` are the zoom levels, from minutes per tile down to seconds. Each tile decodes only
its own stretch (:func:`birdspec.audio.load` seeks), computes a log-mel with the NumPy spectrogram
path (:class:`~birdspec.features.numpy_frontend.NumpyFrontend`, the one the CPU predictor uses),
pools its frames to the tile's width (max, so short calls stay visible when zoomed out) and maps
dB to colours with a per-recording scale, so neighbouring tiles join without seams. Finished PNGs
are kept in an LRU cache (:class:`TileCache`).
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.config import SAMPLE_RATE_HZ, FrontendConfig

log = logging.getLogger(__name__)

TILE_WIDTH_PX = 512
"""Columns of one tile."""
LEVELS_S = (5.0, 10.0, 20.0, 60.0, 120.0, 300.0)
"""Seconds per tile at each zoom level (5 s per 512 px: a call's syllables; 300 s: ten minutes on a screen)."""
DISPLAY_N_MELS = 128
DISPLAY_FMAX_HZ = 15_000.0
DISPLAY_N_FFT = 1024
MIN_HOP = 160
"""Finest frame step (5 ms): zoomed-out tiles compute more frames than columns and max-pool them."""
SCALE_PROBES = 5
"""Stretches of 4 s sampled over the recording to fix its colour scale (dB floor and ceiling)."""
RANGE_DB = (5.0, 99.9)
"""Percentiles of the probes' dB mapped to the bottom and top of the colour map."""
MIN_SPAN_DB = 40.0


@dataclass(frozen=True)
class TileKey:
    """What a tile shows: a recording, a start and a length in seconds, a width in pixels."""

    path: str
    start_s: float
    duration_s: float
    width_px: int = TILE_WIDTH_PX


def display_config(hop_length: int, sample_rate_hz: int = SAMPLE_RATE_HZ) -> FrontendConfig:
    """The log-mel the page shows (wider band than the models', finer steps), at the rate it is computed at."""
    return FrontendConfig.for_kind("logmel", sample_rate_hz=int(sample_rate_hz), n_fft=DISPLAY_N_FFT, hop_length=int(hop_length),
                                   n_mels=DISPLAY_N_MELS, fmin_hz=50.0, fmax_hz=DISPLAY_FMAX_HZ, top_db=None)


def display_rate(native_hz: int) -> int:
    """The rate a tile is computed at: the file's own when it holds the displayed band (no resampling, the
    mel rows mean the same frequencies at any rate), else the models' 32 kHz."""
    return int(native_hz) if native_hz >= 2 * DISPLAY_FMAX_HZ else SAMPLE_RATE_HZ


def initial_level(duration_s: float) -> int:
    """The zoom level the page opens a recording at (the job that predicts it draws those tiles first)."""
    return 4 if duration_s > 600 else 3 if duration_s > 120 else 1


def frequency_ticks_khz() -> list[dict[str, float]]:
    """Where 0.5, 1, 2, 4, 8 and 14 kHz sit on a tile, as a fraction of its height from the bottom."""
    from birdspec.features import tables

    centres, _unit = tables.frequency_axis(display_config(MIN_HOP))
    n = len(centres)
    return [{"khz": khz, "fraction": float(np.interp(khz * 1000.0, centres, np.arange(n)) + 0.5) / n}
            for khz in (0.5, 1.0, 2.0, 4.0, 8.0, 14.0)]


def _magma_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


class _Frontends:
    """One :class:`NumpyFrontend` per frame step (the tables are built once)."""

    def __init__(self) -> None:
        self._made: dict[tuple[int, int], Any] = {}  # NumpyFrontend by (hop, sample rate)
        self._lock = threading.Lock()

    def __call__(self, hop: int, sample_rate_hz: int):
        from birdspec.features import tables
        from birdspec.features.numpy_frontend import NumpyFrontend

        with self._lock:
            if (hop, sample_rate_hz) not in self._made:
                cfg = display_config(hop, sample_rate_hz)
                self._made[hop, sample_rate_hz] = NumpyFrontend(cfg, window=tables.analysis_window(cfg),
                                                                filterbank=tables.filterbank(cfg))
            return self._made[hop, sample_rate_hz]


def spectrogram_db(wave: np.ndarray, *, duration_s: float, width_px: int, frontends: _Frontends,
                   sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``(DISPLAY_N_MELS, width_px)`` dB of ``wave`` (mono at ``sample_rate_hz``) laid over ``duration_s`` seconds.

    Frames step by the samples per pixel (at most ``n_fft``: zoomed out, frames touch without overlap,
    so every sample is seen at the least cost). Audio shorter than ``duration_s`` (the end of a
    recording) fills the left part; the rest is NaN.
    """
    samples_per_px = duration_s * sample_rate_hz / width_px
    hop = int(max(MIN_HOP * sample_rate_hz // SAMPLE_RATE_HZ, min(samples_per_px, DISPLAY_N_FFT)))
    out = np.full((DISPLAY_N_MELS, width_px), np.nan, dtype=np.float32)
    if wave.size == 0:
        return out
    db = frontends(hop, sample_rate_hz)(wave.reshape(1, -1))[0]  # (mels, frames)
    frame_px = (np.arange(db.shape[1]) * hop / samples_per_px).astype(np.int64)
    keep = frame_px < width_px
    frame_px, db = frame_px[keep], db[:, keep]
    starts = np.flatnonzero(np.r_[True, frame_px[1:] != frame_px[:-1]])
    pooled = np.maximum.reduceat(db, starts, axis=1)
    cols = frame_px[starts]
    out[:, cols] = pooled
    filled = np.zeros(width_px, dtype=bool)
    filled[cols] = True
    last = cols[-1] if cols.size else -1
    gaps = np.flatnonzero(~filled[: last + 1])
    if gaps.size:  # fewer frames than columns (zoomed in): each empty column repeats the frame before it
        src = np.maximum.accumulate(np.where(filled[: last + 1], np.arange(last + 1), 0))
        out[:, gaps] = out[:, src[gaps]]
    return out


def to_png(db: np.ndarray, *, floor_db: float, ceiling_db: float, lut: np.ndarray) -> bytes:
    """dB -> magma RGB PNG, low frequencies at the bottom; NaN columns are transparent-dark."""
    from PIL import Image

    span = max(ceiling_db - floor_db, 1e-6)
    idx = np.clip((np.nan_to_num(db, nan=floor_db) - floor_db) / span * 255.0, 0, 255).astype(np.uint8)
    rgb = lut[idx[::-1]]
    rgb[np.isnan(db[::-1])] = (24, 24, 28)
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


class TileCache:
    """Renders tiles and keeps the last ``max_bytes`` of PNGs (least recently used dropped first).

    Thread-safe: the server renders tiles on its worker threads while a prediction runs.
    """

    def __init__(self, *, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = int(max_bytes)
        self._png: OrderedDict[TileKey, bytes] = OrderedDict()
        self._scale: dict[str, tuple[float, float, int]] = {}  # path -> (floor dB, ceiling dB, rate)
        self._bytes = 0
        self._lock = threading.Lock()
        self._frontends = _Frontends()
        self._lut: np.ndarray | None = None

    def scale(self, path: str) -> tuple[float, float]:
        """``(floor_db, ceiling_db)`` of a recording, from :data:`SCALE_PROBES` short stretches of what decodes."""
        from birdspec import audio
        from birdspec.app.recordings import probe

        with self._lock:
            if path in self._scale:
                return self._scale[path][:2]
        rec = probe(path)
        total, rate = rec.duration_s, display_rate(rec.sample_rate_hz)
        values = []
        for frac in np.linspace(0.05, 0.95, SCALE_PROBES):
            start = max(0.0, min(total - 4.0, frac * total))
            wave = audio.load(path, offset_s=start, duration_s=4.0, sample_rate_hz=rate)
            if wave.size:
                values.append(spectrogram_db(wave, duration_s=4.0, width_px=256, frontends=self._frontends,
                                             sample_rate_hz=rate).ravel())
        v = np.concatenate(values) if values else np.zeros(1, dtype=np.float32)
        v = v[np.isfinite(v)]
        lo, hi = (np.percentile(v, RANGE_DB) if v.size else (-100.0, 0.0))
        lo = float(min(lo, hi - MIN_SPAN_DB))
        with self._lock:
            self._scale[path] = (lo, float(hi), rate)
        return lo, float(hi)

    def get(self, key: TileKey) -> bytes:
        """The PNG of ``key`` (rendered now when not cached).

        Raises:
            AudioError: the recording cannot be decoded.
        """
        from birdspec import audio

        with self._lock:
            png = self._png.get(key)
            if png is not None:
                self._png.move_to_end(key)
                return png
        from birdspec.app.recordings import probe

        floor_db, ceiling_db = self.scale(key.path)
        rate = self._scale[key.path][2]
        left_s = min(key.duration_s, probe(key.path).duration_s - key.start_s)  # a cut-off file: what decodes
        wave = (audio.load(key.path, offset_s=key.start_s, duration_s=left_s, sample_rate_hz=rate) if left_s > 0
                else np.zeros(0, dtype=np.float32))
        db = spectrogram_db(wave, duration_s=key.duration_s, width_px=key.width_px, frontends=self._frontends,
                            sample_rate_hz=rate)
        if self._lut is None:
            self._lut = _magma_lut()
        png = to_png(db, floor_db=floor_db, ceiling_db=ceiling_db, lut=self._lut)
        with self._lock:
            if key not in self._png:
                self._png[key] = png
                self._bytes += len(png)
            while self._bytes > self.max_bytes and self._png:
                _k, old = self._png.popitem(last=False)
                self._bytes -= len(old)
        return png

    def warm(self, path: str | Path, *, duration_s: float, first: int = 4, background: bool = True) -> None:
        """Draw the tiles of the level the page opens ``path`` at (:func:`initial_level`): with ``background``,
        all of them on a thread at low priority (``nice`` +10; started when a prediction starts, it uses the
        core the prediction leaves free), else the ``first`` ones now (when the prediction is done)."""
        level = initial_level(duration_s)
        count = int(np.ceil(duration_s / LEVELS_S[level]))
        if background:
            threading.Thread(target=self._warm_rest, args=(str(path), level, range(count)),
                             name="birdspec-tiles", daemon=True).start()
            return
        for index in range(min(first, count)):
            self.tile(path, level=level, index=index)

    def _warm_rest(self, path: str, level: int, indices: range) -> None:
        import os

        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        for index in indices:
            key = TileKey(path, start_s=index * LEVELS_S[level], duration_s=LEVELS_S[level])
            if self._bytes > self.max_bytes // 2:
                return  # the cache is for the tiles the page asks for
            try:
                if key not in self._png:
                    self.get(key)
            except Exception:  # noqa: BLE001 - the page will ask again and show the error
                log.debug("background tile %s failed", key, exc_info=True)
                return

    def tile(self, path: str | Path, *, level: int, index: int) -> bytes:
        """Tile ``index`` of zoom level ``level`` (an index into :data:`LEVELS_S`)."""
        level_s = LEVELS_S[level]
        return self.get(TileKey(str(path), start_s=index * level_s, duration_s=level_s))
