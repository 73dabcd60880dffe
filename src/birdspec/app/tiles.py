"""Spectrogram tiles of a recording, rendered on demand as small PNGs (never one giant image).

A tile is :data:`TILE_WIDTH_PX` columns covering ``level_s`` seconds starting at ``index * level_s``;
:data:`LEVELS_S` are the zoom levels, from minutes per tile down to seconds. Each tile decodes only
its own stretch (:func:`birdspec.audio.load` seeks), computes a log-mel or a linear STFT up to the
recording's Nyquist frequency (:data:`AXES`) with the NumPy spectrogram path
(:class:`~birdspec.features.numpy_frontend.NumpyFrontend`, the one the CPU predictor uses), pools its
frames to the tile's width (max, so short calls stay visible when zoomed out) and maps dB to colours
with a per-recording scale (or the floor and ceiling the page asks for: brightness and contrast), so
neighbouring tiles join without seams. Finished PNGs are kept in an LRU cache (:class:`TileCache`).
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
AXES = ("mel", "linear")
"""Frequency axes of a tile: mel bands (low frequencies wide) or linear STFT bins, both up to the Nyquist frequency."""
DISPLAY_N_MELS = 128
DISPLAY_N_FFT = 1024
LINEAR_N_FFT = 512
"""The linear axis's STFT: 256 bins above 0 Hz, one row each."""
DISPLAY_FMIN_HZ = 50.0
MAX_DISPLAY_RATE_HZ = 96_000
"""Tiles of files recorded faster are computed at this rate (48 kHz shown, the cost bounded)."""
MIN_HOP = 160
"""Finest frame step (5 ms at 32 kHz): zoomed-out tiles compute more frames than columns and max-pool them."""
SCALE_PROBES = 5
"""Stretches of 4 s sampled over the recording to fix its colour scale (dB floor and ceiling)."""
RANGE_DB = (5.0, 99.9)
"""Percentiles of the probes' dB mapped to the bottom and top of the colour map."""
MIN_SPAN_DB = 40.0
SPLIT_SAMPLES = 1 << 22
"""A tile that decodes at least this many samples (87 s at 48 kHz) is drawn in parts on several threads."""
MAX_TILE_PARTS = 4


def tile_parts(samples: float, *, width_px: int, cores: int | None = None) -> int:
    """How many stretches of whole columns a tile of ``samples`` decoded samples is drawn in: 1 below
    :data:`SPLIT_SAMPLES`, else the cores (at most :data:`MAX_TILE_PARTS`) rounded down to a divisor of ``width_px``.

    >>> tile_parts(48_000 * 60, width_px=512, cores=2), tile_parts(48_000 * 300, width_px=512, cores=2)
    (1, 2)
    >>> tile_parts(48_000 * 300, width_px=512, cores=16), tile_parts(48_000 * 300, width_px=511, cores=2)
    (4, 1)
    """
    from birdspec.runtime import cpu_count

    if samples < SPLIT_SAMPLES:
        return 1
    n = min(MAX_TILE_PARTS, cores or cpu_count())
    while n > 1 and width_px % n:
        n -= 1
    return n


@dataclass(frozen=True)
class TileKey:
    """What a tile shows: a recording, a start and a length in seconds, a width in pixels, the frequency axis,
    and the dB at the bottom and top of the colour map (None: the recording's own scale)."""

    path: str
    start_s: float
    duration_s: float
    width_px: int = TILE_WIDTH_PX
    axis: str = "mel"
    floor_db: float | None = None
    ceiling_db: float | None = None


def display_config(hop_length: int, sample_rate_hz: int = SAMPLE_RATE_HZ, axis: str = "mel") -> FrontendConfig:
    """The spectrogram the page shows at ``sample_rate_hz``: a log-mel from 50 Hz, or a linear STFT from its first
    bin, both up to the Nyquist frequency (wider and finer than the models')."""
    nyquist = sample_rate_hz / 2.0
    if axis == "linear":
        return FrontendConfig.for_kind("linear", sample_rate_hz=int(sample_rate_hz), n_fft=LINEAR_N_FFT,
                                       hop_length=int(min(hop_length, LINEAR_N_FFT)), fmin_hz=sample_rate_hz / LINEAR_N_FFT,
                                       fmax_hz=nyquist, top_db=None)
    return FrontendConfig.for_kind("logmel", sample_rate_hz=int(sample_rate_hz), n_fft=DISPLAY_N_FFT, hop_length=int(hop_length),
                                   n_mels=DISPLAY_N_MELS, fmin_hz=DISPLAY_FMIN_HZ, fmax_hz=nyquist, top_db=None)


def display_rate(native_hz: int) -> int:
    """The rate a tile is computed at: the file's own (its whole band is shown), at most :data:`MAX_DISPLAY_RATE_HZ`."""
    return int(min(int(native_hz), MAX_DISPLAY_RATE_HZ))


def initial_level(duration_s: float) -> int:
    """The zoom level the page opens a recording at (the job that predicts it draws those tiles first)."""
    return 4 if duration_s > 600 else 3 if duration_s > 120 else 1


def rows_hz(sample_rate_hz: int, axis: str) -> list[float]:
    """The frequency of each tile row, bottom to top (what the pointer readout and the axis read)."""
    from birdspec.features import tables

    centres, _unit = tables.frequency_axis(display_config(MIN_HOP, sample_rate_hz, axis))
    return [round(float(f), 1) for f in centres]


def frequency_ticks(sample_rate_hz: int, axis: str) -> list[dict[str, float]]:
    """Where round frequencies sit on a tile, as a fraction of its height from the bottom, up to the Nyquist frequency."""
    centres = np.asarray(rows_hz(sample_rate_hz, axis))
    nyquist_khz = sample_rate_hz / 2000.0
    if axis == "mel":
        candidates = [0.5, 1, 2, 4, 8, 12, 16, 24, 32, 48]
    else:
        step = next(s for s in (1, 2, 4, 5, 10, 20) if nyquist_khz / s <= 8)
        candidates = list(np.arange(step, nyquist_khz + 1e-9, step))
    n = len(centres)
    return [{"khz": float(k), "fraction": float(np.interp(k * 1000.0, centres, np.arange(n)) + 0.5) / n}
            for k in candidates if centres[0] <= k * 1000.0 <= centres[-1] + 1.0]


def magma_lut() -> np.ndarray:
    """``(256, 3)`` uint8: the colour map of the tiles, from the floor (0) to the ceiling (255)."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def colormap_hex() -> list[str]:
    """The colour map as 256 ``#rrggbb`` strings (the page's colour bar and pointer readout)."""
    return ["#{:02x}{:02x}{:02x}".format(*(int(v) for v in c)) for c in magma_lut()]


class _Frontends:
    """One :class:`NumpyFrontend` per frame step (the tables are built once)."""

    def __init__(self) -> None:
        self._made: dict[tuple[int, int, str], Any] = {}  # NumpyFrontend by (hop, sample rate, axis)
        self._lock = threading.Lock()

    def __call__(self, hop: int, sample_rate_hz: int, axis: str = "mel"):
        from birdspec.features import tables
        from birdspec.features.numpy_frontend import NumpyFrontend

        with self._lock:
            if (hop, sample_rate_hz, axis) not in self._made:
                cfg = display_config(hop, sample_rate_hz, axis)
                self._made[hop, sample_rate_hz, axis] = NumpyFrontend(cfg, window=tables.analysis_window(cfg),
                                                                      filterbank=tables.filterbank(cfg))
            return self._made[hop, sample_rate_hz, axis]


def tile_db(wave: np.ndarray, *, duration_s: float, width_px: int, frontends: _Frontends,
                   sample_rate_hz: int = SAMPLE_RATE_HZ, axis: str = "mel") -> np.ndarray:
    """``(rows, width_px)`` dB of ``wave`` (mono at ``sample_rate_hz``) laid over ``duration_s`` seconds (rows:
    :data:`DISPLAY_N_MELS` mel bands, or :data:`LINEAR_N_FFT` / 2 linear bins).

    Frames step by the samples per pixel (at most ``n_fft``: zoomed out, frames touch without overlap,
    so every sample is seen at the least cost). Audio shorter than ``duration_s`` (the end of a
    recording) fills the left part; the rest is NaN.
    """
    samples_per_px = duration_s * sample_rate_hz / width_px
    n_fft = LINEAR_N_FFT if axis == "linear" else DISPLAY_N_FFT
    hop = int(max(MIN_HOP * sample_rate_hz // SAMPLE_RATE_HZ, min(samples_per_px, n_fft)))
    rows = display_config(hop, sample_rate_hz, axis).num_bins()
    out = np.full((rows, width_px), np.nan, dtype=np.float32)
    if wave.size == 0:
        return out
    db = frontends(hop, sample_rate_hz, axis)(wave.reshape(1, -1))[0]  # (rows, frames)
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
        self._scale: dict[tuple[str, str], tuple[float, float, int]] = {}  # (path, axis) -> (floor dB, ceiling dB, rate)
        self._bytes = 0
        self._lock = threading.Lock()
        self._frontends = _Frontends()
        self._lut: np.ndarray | None = None
        self._pool: Any = None  # ThreadPoolExecutor of the tiles drawn in parts (made on the first one)

    def scale(self, path: str, axis: str = "mel") -> tuple[float, float]:
        """``(floor_db, ceiling_db)`` of a recording on ``axis``, from :data:`SCALE_PROBES` short stretches of what decodes."""
        from birdspec import audio
        from birdspec.app.recordings import probe

        with self._lock:
            if (path, axis) in self._scale:
                return self._scale[path, axis][:2]
        rec = probe(path)
        total, rate = rec.duration_s, display_rate(rec.sample_rate_hz)
        values = []
        for frac in np.linspace(0.05, 0.95, SCALE_PROBES):
            start = max(0.0, min(total - 4.0, frac * total))
            wave = audio.load(path, offset_s=start, duration_s=4.0, sample_rate_hz=rate)
            if wave.size:
                values.append(tile_db(wave, duration_s=4.0, width_px=256, frontends=self._frontends,
                                             sample_rate_hz=rate, axis=axis).ravel())
        v = np.concatenate(values) if values else np.zeros(1, dtype=np.float32)
        v = v[np.isfinite(v)]
        lo, hi = (np.percentile(v, RANGE_DB) if v.size else (-100.0, 0.0))
        lo = float(min(lo, hi - MIN_SPAN_DB))
        with self._lock:
            self._scale[path, axis] = (lo, float(hi), rate)
        return lo, float(hi)

    def display(self, path: str, axis: str = "mel") -> dict[str, object]:
        """What the page needs to draw a recording's axes and read its tiles: rate, row frequencies, ticks and
        the colour scale (dB at the bottom and top of the colour map) on ``axis``."""
        from birdspec.app.recordings import probe

        floor_db, ceiling_db = self.scale(path, axis)
        rate = display_rate(probe(path).sample_rate_hz)
        return {"axis": axis, "rate_hz": rate, "nyquist_hz": rate / 2, "rows_hz": rows_hz(rate, axis),
                "ticks": frequency_ticks(rate, axis), "floor_db": round(floor_db, 1), "ceiling_db": round(ceiling_db, 1)}

    def get(self, key: TileKey) -> bytes:
        """The PNG of ``key`` (rendered now when not cached).

        Raises:
            AudioError: the recording cannot be decoded.
        """
        from birdspec.app.recordings import probe

        with self._lock:
            png = self._png.get(key)
            if png is not None:
                self._png.move_to_end(key)
                return png
        floor_db, ceiling_db = self.scale(key.path, key.axis)
        floor_db = floor_db if key.floor_db is None else key.floor_db
        ceiling_db = ceiling_db if key.ceiling_db is None else key.ceiling_db
        rate = self._scale[key.path, key.axis][2]
        left_s = min(key.duration_s, probe(key.path).duration_s - key.start_s)  # a cut-off file: what decodes
        db = self._db(key, rate=rate, left_s=left_s)
        if self._lut is None:
            self._lut = magma_lut()
        png = to_png(db, floor_db=floor_db, ceiling_db=ceiling_db, lut=self._lut)
        with self._lock:
            if key not in self._png:
                self._png[key] = png
                self._bytes += len(png)
            while self._bytes > self.max_bytes and self._png:
                _k, old = self._png.popitem(last=False)
                self._bytes -= len(old)
        return png

    def _db(self, key: TileKey, *, rate: int, left_s: float) -> np.ndarray:
        """``(rows, width_px)`` dB of ``key``: a tile that decodes much audio (the widest zooms) is cut into
        :func:`tile_parts` stretches of whole columns, decoded and analysed on as many threads (decoding and the
        FFTs release the GIL), so one cold tile uses every core."""
        from birdspec import audio

        parts = tile_parts(left_s * rate, width_px=key.width_px)
        part_s, part_px = key.duration_s / parts, key.width_px // parts

        def one(i: int) -> np.ndarray:
            left = min(part_s, left_s - i * part_s)
            wave = (audio.load(key.path, offset_s=key.start_s + i * part_s, duration_s=left, sample_rate_hz=rate)
                    if left > 0 else np.zeros(0, dtype=np.float32))
            return tile_db(wave, duration_s=part_s, width_px=part_px, frontends=self._frontends, sample_rate_hz=rate,
                           axis=key.axis)

        if parts == 1:
            return one(0)
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=MAX_TILE_PARTS, thread_name_prefix="birdspec-tile")
        return np.concatenate(list(self._pool.map(one, range(parts))), axis=1)

    def warm(self, path: str | Path, *, duration_s: float, first: int = 4, background: bool = True) -> threading.Thread | None:
        """Draw the tiles of the level the page opens ``path`` at (:func:`initial_level`): with ``background``,
        all of them on a thread at low priority (``nice`` +10; started when a prediction starts, it uses the
        cores beside the prediction), then those of the widest zoom (a cold one decodes 300 s of audio: ~0.3 s
        of a core at 48 kHz, more than the rest), and returns the thread; else the ``first`` ones of the
        opening level now (when the prediction is done)."""
        level = initial_level(duration_s)
        count = int(np.ceil(duration_s / LEVELS_S[level]))
        if background:
            widest = len(LEVELS_S) - 1
            keys = [(level, i) for i in range(count)]
            if widest != level:
                keys += [(widest, i) for i in range(int(np.ceil(duration_s / LEVELS_S[widest])))]
            thread = threading.Thread(target=self._warm_rest, args=(str(path), keys), name="birdspec-tiles", daemon=True)
            thread.start()
            return thread
        for index in range(min(first, count)):
            self.tile(path, level=level, index=index)
        return None

    def _warm_rest(self, path: str, keys: list[tuple[int, int]]) -> None:
        import os

        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        for level, index in keys:
            key = TileKey(path, start_s=index * LEVELS_S[level], duration_s=LEVELS_S[level])
            if self._bytes > self.max_bytes // 2:
                return  # the cache is for the tiles the page asks for
            try:
                if key not in self._png:
                    self.get(key)
            except Exception:  # noqa: BLE001 - the page will ask again and show the error
                log.debug("background tile %s failed", key, exc_info=True)
                return

    def tile(self, path: str | Path, *, level: int, index: int, axis: str = "mel", floor_db: float | None = None,
             ceiling_db: float | None = None) -> bytes:
        """Tile ``index`` of zoom level ``level`` (an index into :data:`LEVELS_S`) on ``axis``, with the recording's
        colour scale or the ``floor_db`` / ``ceiling_db`` given (the page's brightness and contrast)."""
        level_s = LEVELS_S[level]
        return self.get(TileKey(str(path), start_s=index * level_s, duration_s=level_s, axis=axis,
                                floor_db=floor_db, ceiling_db=ceiling_db))
