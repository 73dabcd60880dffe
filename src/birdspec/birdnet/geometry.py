"""How BirdNET's 3 s windows map onto birdspec's output windows: one owner for prediction and the cache.

Prediction (:mod:`birdspec.birdnet.predict`, what ``birdspec predict`` runs for a ``birdnet-*`` head):

1. The recording (32 kHz) is resampled to 48 kHz and cut into BirdNET
   windows of 3 s starting every ``embed_hop_s`` (:data:`EMBED_HOP_S`, 1 s)
   seconds, fully inside the recording (a recording shorter than 3 s gives one
   zero-padded window).
2. Output window ``[t, t + window_s)`` (its end clipped to the recording)
   gets the head applied to the embeddings of the BirdNET windows **fully
   inside it**, pooled like in training (mean and max over windows). With
   5 s output windows and a 1 s embedding hop that is 3 windows:
   ``[t, t+3), [t+1, t+4), [t+2, t+5)``.
3. An output window holding no full BirdNET window (shorter than 3 s: a
   trailing partial window, or ``window_s < 3``) uses the one BirdNET window
   that overlaps it most.

The no-bird clips of the embedding cache (:mod:`birdspec.data.embed_nocall`) are embedded the same way, so
a head trains on what it will see on a 5 s window without a bird: a clip is :func:`nocall_clip_s` long
(the output window, at least one BirdNET window: the 3 s window of a shorter output window holds audio
around it, no-bird audio too) and :func:`clip_windows` gives its BirdNET windows (3 for 5 s).

No PyTorch here.
"""

from __future__ import annotations

import numpy as np

from birdspec.birdnet.backend import BIRDNET_SAMPLE_RATE_HZ, WINDOW_S, WINDOW_SAMPLES, to_birdnet_rate
from birdspec.config import SAMPLE_RATE_HZ as STORE_RATE_HZ
from birdspec.errors import ConfigError

EMBED_HOP_S = 1.0
"""Hop of the BirdNET windows at prediction (and of the cache's no-bird clips)."""
_EPS_S = 1e-6


def output_windows(duration_s: float, *, window_s: float = 5.0, hop_s: float = 5.0, min_partial_s: float = 1.0) -> np.ndarray:
    """Default output windows ``(M, 2)`` (start, end) in seconds: :func:`birdspec.windowing.window_bounds`'s
    rule, and one window over the whole recording when that rule gives none (a very short recording)."""
    from birdspec.windowing import WindowGeometry, window_bounds

    if window_s <= 0 or hop_s <= 0:
        raise ConfigError(f"window_s and hop_s must be positive, got {window_s} and {hop_s}")
    n = max(0, int(round(duration_s * STORE_RATE_HZ)))
    g = WindowGeometry.from_seconds(window_s=window_s, hop_s=hop_s, min_partial_s=min_partial_s, sample_rate_hz=STORE_RATE_HZ)
    bounds = window_bounds(num_samples=n, geometry=g) / STORE_RATE_HZ
    return bounds if bounds.shape[0] else np.array([[0.0, max(duration_s, 0.0)]])


def assign_windows(embed_starts_s: np.ndarray, bounds_s: np.ndarray, *, duration_s: float, embed_window_s: float = WINDOW_S) -> list[np.ndarray]:
    """Indices of the embedding windows pooled for each output window (see the module docs)."""
    starts = np.asarray(embed_starts_s, dtype=np.float64)
    ends = np.minimum(starts + embed_window_s, max(duration_s, embed_window_s))
    out = []
    for a, b in np.asarray(bounds_s, dtype=np.float64).reshape(-1, 2):
        b = min(b, max(duration_s, embed_window_s)) if duration_s > 0 else b
        inside = np.flatnonzero((starts >= a - _EPS_S) & (starts + embed_window_s <= b + _EPS_S))
        if inside.size == 0:
            overlap = np.minimum(ends, b) - np.maximum(starts, a)
            inside = np.array([int(np.argmax(overlap))])
        out.append(inside)
    return out


def embed_window_starts(num_samples_48k: int, *, embed_hop_s: float = EMBED_HOP_S) -> np.ndarray:
    """Start samples (48 kHz) of the BirdNET windows of audio of that length (step 1 of the module doc)."""
    from birdspec.windowing import sample_window_starts

    if embed_hop_s <= 0:
        raise ConfigError(f"embed_hop_s must be positive, got {embed_hop_s}")
    hop = int(round(embed_hop_s * BIRDNET_SAMPLE_RATE_HZ))
    return sample_window_starts(num_samples=max(int(num_samples_48k), 1), window_samples=WINDOW_SAMPLES, hop_samples=hop)


def nocall_clip_s(window_s: float) -> float:
    """Length of a no-bird clip for output windows of ``window_s``: the window, at least one BirdNET window."""
    return max(float(window_s), WINDOW_S)


def clip_windows(clip: np.ndarray, *, sample_rate_hz: int = STORE_RATE_HZ, embed_hop_s: float = EMBED_HOP_S) -> np.ndarray:
    """The BirdNET windows a clip that is one whole output window is scored from: ``(n,)`` -> ``(N, 144000)``
    float32 at 48 kHz (the clip resampled, windows every ``embed_hop_s``, those inside the clip)."""
    from birdspec.windowing import fit_window

    x = to_birdnet_rate(np.asarray(clip, dtype=np.float32).reshape(-1), sample_rate_hz=sample_rate_hz)
    starts = embed_window_starts(x.shape[0], embed_hop_s=embed_hop_s)
    duration_s = clip.shape[0] / sample_rate_hz
    keep = assign_windows(starts / BIRDNET_SAMPLE_RATE_HZ, np.array([[0.0, duration_s]]), duration_s=duration_s)[0]
    return np.stack([fit_window(x, length=WINDOW_SAMPLES, fill="pad", start=int(starts[i])) for i in keep])
