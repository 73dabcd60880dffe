"""Cutting recordings into analysis windows: one family of pure functions on lengths.

Every stage that cuts audio into windows uses these functions, so the rules
are written once: the dataset reader (training and evaluation samples), the
predictor (long recordings), the BirdNET backbone and the embedding cache.

**Full windows** (:func:`full_window_starts`): windows of ``window`` samples
start at ``0, hop, 2 * hop, ...`` and lie inside the recording
(``start + window <= length``).

**Training and embedding windows** (:func:`sample_window_starts`,
:func:`frame`): the full windows only; a trailing partial window is dropped.
A recording shorter than one window gives one window at 0, filled to the
window length by its short policy (``pad``: zeros, ``tile``: repeated), or
none under ``drop``.

**Prediction windows** (:func:`window_bounds`, :func:`clip_times` and the
streaming windower of the predictor, which must agree): the full windows,
then **the last partial window**: after the last full window, the next window
(one hop later) runs past the end of the recording. It is kept when it holds
at least ``min_partial`` of audio *and* reaches audio no full window
covered, and is reported with its *true* times (it ends at the end of the
recording). Its audio (:data:`PARTIAL_SOURCES`, :func:`partial_audio_start`):
by default (``end``) the last full window's length of the recording, the
window shifted back to end where the recording ends, so the model scores real
audio only, as in training (whose windows are all full: a window ending in
zeros is one it never saw; two reed warbler models named a toad chorus in its
padded last window at 0.61 and 0.62, in the same tail as real audio at 0.42
and 0.57); in a recording shorter than one window, and with ``own`` (a stack10
context's last channel, which must not overlap the one before it, as in
training; similarity indexes, whose vectors predate the rule), its own audio
filled to the window length (zero-padded, or tiled for checkpoints trained
with ``short_policy='tile'``). Later windows, which would only hold a subset
of its audio, are never made. A partial window shorter than ``min_partial``
(default 1 s) is dropped. A recording shorter than one window gives that one
partial window (when at least ``min_partial`` long) or no window at all.

Example (window 5 s, hop 5 s, 12.3 s of audio): ``[0, 5)``, ``[5, 10)``,
``[10, 12.3)``, the last scored on the audio ``[7.3, 12.3)`` (``own``: its 2.3 s
+ 2.7 s of padding). With 10.6 s: only two windows (the 0.6 s tail is dropped).
For training, 12.3 s gives two windows.

**Context of stack models** (``stack10``: ``num_windows`` consecutive
windows as channels, 50 s): output window ``i`` is scored from the
``num_windows`` grid windows ``s, s + r, ..., s + (num_windows - 1) * r``
(``r = window / hop`` grid steps, so the channels do not overlap, as in
training), with ``s`` chosen so that window ``i`` sits at position
``(num_windows - 1) // 2`` (*centred*: 4 windows before, 5 after) or last
(*trailing*), then clamped into the recording: near the start and the end
the context is shifted to stay inside the audio, never padded. Files shorter
than the context are handled by the caller (one context for the whole file,
tiled or padded by the checkpoint's ``short_policy``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from birdspec.config import SAMPLE_RATE_HZ, SHORT_POLICIES
from birdspec.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_MIN_PARTIAL_S = 1.0
"""A trailing partial window needs at least this much audio to be scored."""

CONTEXT_POSITIONS = ("centre", "trailing")
PARTIAL_END, PARTIAL_OWN = "end", "own"
PARTIAL_SOURCES = (PARTIAL_END, PARTIAL_OWN)
"""Where the audio of a trailing partial prediction window comes from (see the module doc): ``end``, the
recording's last window length (the default since 2026-12-07), or ``own``, its own audio filled by ``fill``."""


def partial_source_for(encoding_name: str) -> str:
    """The partial source a checkpoint of the encoding ``encoding_name`` is scored with: ``own`` for stack10
    (a context's last channel, as trained), ``end`` for every other encoding. One rule for the predictor and
    the archive run's settings (a run resumed under another rule would mix the two)."""
    return PARTIAL_OWN if encoding_name == "stack10" else PARTIAL_END


@dataclass(frozen=True)
class WindowGeometry:
    """Window layout in samples (all positive except ``min_partial_samples`` >= 1).

    Attributes:
        window_samples: samples the model sees per window.
        hop_samples: distance between consecutive window starts.
        min_partial_samples: the least audio a trailing partial window must hold.
        fill: how a partial window is filled to ``window_samples``: 'pad' (zeros) or 'tile'.
        partial_source: where a trailing partial window's audio comes from (:data:`PARTIAL_SOURCES`).
    """

    window_samples: int
    hop_samples: int
    min_partial_samples: int
    fill: str = "pad"
    partial_source: str = PARTIAL_END

    def __post_init__(self) -> None:
        if self.window_samples <= 0 or self.hop_samples <= 0:
            raise ConfigError(f"window and hop must be positive, got {self.window_samples} and {self.hop_samples} samples")
        if self.min_partial_samples < 1:
            raise ConfigError(f"min_partial_samples must be >= 1, got {self.min_partial_samples}")
        if self.fill not in ("pad", "tile"):
            raise ConfigError(f"fill must be 'pad' or 'tile', got {self.fill!r}")
        if self.partial_source not in PARTIAL_SOURCES:
            raise ConfigError(f"partial_source must be one of {', '.join(PARTIAL_SOURCES)}, got {self.partial_source!r}")

    @classmethod
    def from_seconds(
        cls,
        *,
        window_s: float,
        hop_s: float | None = None,
        min_partial_s: float = DEFAULT_MIN_PARTIAL_S,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        fill: str = "pad",
        partial_source: str = PARTIAL_END,
    ) -> WindowGeometry:
        """Geometry from seconds (``hop_s=None``: hop = window)."""
        if window_s is None or not window_s > 0:
            raise ConfigError(f"window_s must be positive, got {window_s}")
        hop_s = window_s if hop_s is None else hop_s
        if not hop_s > 0:
            raise ConfigError(f"hop_s must be positive, got {hop_s}")
        if not min_partial_s > 0:
            raise ConfigError(f"min_partial_s must be positive, got {min_partial_s}; use a tiny value to keep every tail")
        w = int(round(window_s * sample_rate_hz))
        h = int(round(hop_s * sample_rate_hz))
        m = max(1, int(math.ceil(min_partial_s * sample_rate_hz - 1e-9)))
        return cls(window_samples=w, hop_samples=h, min_partial_samples=m, fill=fill, partial_source=partial_source)


def num_full_windows(*, num_samples: int, window_samples: int, hop_samples: int) -> int:
    """How many windows fit entirely inside ``num_samples``."""
    if num_samples < window_samples:
        return 0
    return (num_samples - window_samples) // hop_samples + 1


def full_window_starts(*, num_samples: int, window_samples: int, hop_samples: int) -> np.ndarray:
    """``(n,)`` int64 start samples of the full windows: ``0, hop, 2 * hop, ...``."""
    n = num_full_windows(num_samples=num_samples, window_samples=window_samples, hop_samples=hop_samples)
    return np.arange(n, dtype=np.int64) * hop_samples


def sample_window_starts(*, num_samples: int, window_samples: int, hop_samples: int | None = None,
                         short_policy: str = "pad") -> np.ndarray:
    """Start samples of the training / embedding windows of a recording (see the module rules).

    The full windows; a recording shorter than one window (and not empty) gives one window
    at 0 unless ``short_policy`` is ``'drop'``.
    """
    if short_policy not in SHORT_POLICIES:
        raise ConfigError(f"unknown short policy {short_policy!r}; use one of {', '.join(SHORT_POLICIES)}")
    starts = full_window_starts(num_samples=num_samples, window_samples=window_samples,
                                hop_samples=hop_samples or window_samples)
    if starts.size == 0 and num_samples > 0 and short_policy != "drop":
        return np.zeros(1, dtype=np.int64)
    return starts


def num_sample_windows(*, num_samples: int, window_samples: int, hop_samples: int | None = None,
                       short_policy: str = "pad") -> int:
    """How many windows :func:`sample_window_starts` gives (without making them)."""
    n = num_full_windows(num_samples=num_samples, window_samples=window_samples, hop_samples=hop_samples or window_samples)
    return n if n or num_samples <= 0 or short_policy == "drop" else 1


def frame(wave: np.ndarray, *, window_samples: int, hop_samples: int | None = None,
          short_policy: str = "pad") -> tuple[np.ndarray, np.ndarray]:
    """Cut ``wave`` ``(n,)`` into its training / embedding windows (see the module rules).

    Returns:
        ``(windows (N, window_samples) float32, starts (N,) int64)``; empty audio gives one
        zero window unless ``short_policy`` is ``'drop'``.
    """
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    starts = sample_window_starts(num_samples=x.shape[0], window_samples=window_samples, hop_samples=hop_samples,
                                  short_policy=short_policy)
    if x.shape[0] == 0 and short_policy != "drop":
        starts = np.zeros(1, dtype=np.int64)
    if starts.size == 0:
        return np.zeros((0, window_samples), dtype=np.float32), starts
    if x.shape[0] < window_samples:
        fill = "tile" if short_policy == "tile" else "pad"
        return fit_window(x, length=window_samples, fill=fill)[None], starts
    view = np.lib.stride_tricks.sliding_window_view(x, window_samples)[starts]
    return np.ascontiguousarray(view), starts


def partial_window(*, num_samples: int, geometry: WindowGeometry) -> tuple[int, int] | None:
    """``(start, end)`` of the kept trailing partial window, or None (see the module rules)."""
    g = geometry
    n_full = num_full_windows(num_samples=num_samples, window_samples=g.window_samples, hop_samples=g.hop_samples)
    start = n_full * g.hop_samples
    if start >= num_samples or num_samples - start < g.min_partial_samples:
        return None
    if n_full and num_samples <= (n_full - 1) * g.hop_samples + g.window_samples:
        return None  # its audio is already inside the last full window
    return start, num_samples


def partial_audio_start(*, num_samples: int, tail_start: int, geometry: WindowGeometry) -> int:
    """First sample of the audio the kept trailing partial window ``[tail_start, num_samples)`` is scored on
    (see the module rules): ``num_samples - window_samples`` under ``end`` when the recording holds a full
    window, else ``tail_start`` (the window's own audio, to be filled)."""
    if geometry.partial_source == PARTIAL_END and num_samples >= geometry.window_samples:
        return num_samples - geometry.window_samples
    return tail_start


def window_bounds(*, num_samples: int, geometry: WindowGeometry) -> np.ndarray:
    """``(n, 2)`` int64 ``[start, end)`` sample bounds of every window; ``end`` is the true end.

    A window with ``end - start < window_samples`` is the partial last one.
    """
    if num_samples < 0:
        raise ConfigError(f"num_samples must be >= 0, got {num_samples}")
    g = geometry
    starts = full_window_starts(num_samples=num_samples, window_samples=g.window_samples, hop_samples=g.hop_samples)
    bounds = np.stack([starts, starts + g.window_samples], axis=1) if starts.size else np.zeros((0, 2), np.int64)
    tail = partial_window(num_samples=num_samples, geometry=g)
    if tail is not None:
        bounds = np.concatenate([bounds, np.asarray([tail], dtype=np.int64)])
    return bounds


def clip_times(
    *,
    duration_s: float,
    window_s: float = 5.0,
    hop_s: float | None = None,
    min_partial_s: float = DEFAULT_MIN_PARTIAL_S,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> pd.DataFrame:
    """Windows of a recording of ``duration_s`` seconds (like opensoundscape's ``generate_clip_times_df``).

    Returns:
        DataFrame with one row per window: ``start_s``, ``end_s`` (true end,
        clipped to the recording) and ``partial`` (True for the last partial window).
    """
    import pandas as pd

    if duration_s < 0:
        raise ConfigError(f"duration_s must be >= 0, got {duration_s}")
    g = WindowGeometry.from_seconds(window_s=window_s, hop_s=hop_s, min_partial_s=min_partial_s, sample_rate_hz=sample_rate_hz)
    n = int(round(duration_s * sample_rate_hz))
    b = window_bounds(num_samples=n, geometry=g)
    windows: pd.DataFrame = pd.DataFrame(
        {
            "start_s": b[:, 0] / sample_rate_hz,
            "end_s": b[:, 1] / sample_rate_hz,
            "partial": (b[:, 1] - b[:, 0]) < g.window_samples,
        }
    )
    return windows


def fit_window(samples: np.ndarray, *, length: int, fill: str, start: int = 0) -> np.ndarray:
    """``length`` samples of ``samples`` ``(n,)`` from ``start``, float32; what is missing is filled.

    ``fill='pad'``: zeros after the audio; ``'tile'``: the recording repeated (``start`` is then a
    position in the repeated signal, so a random crop of a short recording may start anywhere).
    """
    n = samples.shape[0]
    if n >= start + length:
        return np.ascontiguousarray(samples[start : start + length], dtype=np.float32)
    if fill == "tile" and n > 0:
        reps = -(-(length + start) // n)
        return np.tile(samples, reps)[start : start + length].astype(np.float32, copy=False)
    out = np.zeros(length, dtype=np.float32)
    piece = samples[start : start + length]
    out[: piece.shape[0]] = piece
    return out


def context_offset(*, context_windows: int, stride: int, position: str = "centre") -> int:
    """Grid steps from the first context window to the output window (before clamping)."""
    if position not in CONTEXT_POSITIONS:
        raise ConfigError(f"context position must be one of {', '.join(CONTEXT_POSITIONS)}, got {position!r}")
    before = (context_windows - 1) // 2 if position == "centre" else context_windows - 1
    return before * stride


def context_starts(*, num_windows: int, context_windows: int, stride: int, position: str = "centre") -> np.ndarray:
    """First grid index of the context of every output window, ``(num_windows,)`` int64.

    Context of window ``i``: grid windows ``s[i] + j * stride`` for ``j < context_windows``.

    Raises:
        ConfigError: fewer than ``(context_windows - 1) * stride + 1`` windows (the caller
            must treat such a recording as shorter than the context).
    """
    span = (context_windows - 1) * stride
    if num_windows < span + 1:
        raise ConfigError(f"{num_windows} windows cannot hold a context of {context_windows} windows at stride {stride}")
    off = context_offset(context_windows=context_windows, stride=stride, position=position)
    return np.clip(np.arange(num_windows, dtype=np.int64) - off, 0, num_windows - 1 - span)
