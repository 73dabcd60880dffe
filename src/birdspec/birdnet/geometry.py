"""How BirdNET's 3 s windows map onto birdspec's output windows: one owner for prediction and the cache.

Prediction (:mod:`birdspec.birdnet.predict`, what ``birdspec predict`` runs for a ``birdnet-*`` head):

1. The recording (32 kHz) is resampled to 48 kHz and cut into BirdNET
   windows of 3 s starting every ``embed_hop_s`` (:data:`EMBED_HOP_S`, 1 s)
   seconds, fully inside the recording (a recording shorter than 3 s gives one
   zero-padded window).
2. Output window ``[t, t + window_s)`` (its end clipped to the recording) gets the head applied to
   the embeddings of the BirdNET windows its **window rule** (:data:`WINDOW_RULES`) gives it,
   pooled like in training (mean and max over windows):

   ``centre`` (:data:`WINDOW_RULE`, heads trained since 2026-12-07)
       the BirdNET windows whose **centre** lies in ``[t, t + window_s)``. With 5 s output windows
       and a 1 s hop that is 5 windows, ``[t-1, t+2) ... [t+3, t+6)``: every BirdNET window belongs to
       exactly one output window (none is computed and dropped), and a call crossing the boundary
       is heard whole by the window it mostly falls in.
   ``inside`` (:data:`LEGACY_WINDOW_RULE`, heads saved before: they keep predicting as trained)
       the BirdNET windows **fully inside** it: 3 windows, ``[t, t+3), [t+1, t+4), [t+2, t+5)``;
       the windows starting at ``t+3`` and ``t+4`` belong to no output window.

   Measured on the reed warblers' synthetic soundscapes (benchmarks/README.md, soundscapes.py, five
   folds): BirdNET as it is scores row-wise micro F1 0.692 at its default confidence with ``centre``,
   0.637 with ``inside``.
3. An output window to which the rule gives no BirdNET window (shorter than 3 s: a trailing
   partial window, or ``window_s`` under the hop) uses the one BirdNET window that overlaps it most.

A head records its rule in its model config (``window_rule``; :func:`window_rule` reads it, and a
config without one is ``inside``). The no-bird clips of the embedding cache
(:mod:`birdspec.data.embed_nocall`) are embedded the same way, so a head trains on what it will see on
an output window without a bird: a clip is the audio an output window's BirdNET windows cover
(:func:`nocall_clip_s`: 7 s for a 5 s window under ``centre``, the window itself under ``inside``, at
least one BirdNET window) and :func:`clip_windows` gives those windows (5, or 3, for 5 s).

No PyTorch here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from birdspec.birdnet.backend import BIRDNET_SAMPLE_RATE_HZ, WINDOW_S, WINDOW_SAMPLES, to_birdnet_rate
from birdspec.config import SAMPLE_RATE_HZ as STORE_RATE_HZ
from birdspec.errors import ConfigError

EMBED_HOP_S = 1.0
"""Hop of the BirdNET windows at prediction (and of the cache's no-bird clips)."""
CENTRE_RULE, INSIDE_RULE = "centre", "inside"
WINDOW_RULES = (CENTRE_RULE, INSIDE_RULE)
"""Which BirdNET windows an output window pools (see the module doc)."""
WINDOW_RULE = CENTRE_RULE
"""The rule of new heads and of new no-bird clips."""
LEGACY_WINDOW_RULE = INSIDE_RULE
"""The rule of heads (and caches) that record none: saved before rules were recorded."""
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


def window_rule(model_config: dict[str, Any] | Any) -> str:
    """The window rule a head's model config records (:data:`LEGACY_WINDOW_RULE` when it records none).

    Raises:
        ConfigError: an unknown rule (a checkpoint from a newer birdspec).
    """
    rule = str((model_config or {}).get("window_rule", LEGACY_WINDOW_RULE))
    return check_window_rule(rule)


def check_window_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`WINDOW_RULES` (else ConfigError)."""
    if rule not in WINDOW_RULES:
        raise ConfigError(f"unknown BirdNET window rule {rule!r}; one of {', '.join(WINDOW_RULES)} (a newer birdspec's?)")
    return rule


def assign_windows(embed_starts_s: np.ndarray, bounds_s: np.ndarray, *, duration_s: float, embed_window_s: float = WINDOW_S,
                   rule: str = WINDOW_RULE) -> list[np.ndarray]:
    """Indices of the embedding windows pooled for each output window under ``rule`` (see the module doc)."""
    check_window_rule(rule)
    starts = np.asarray(embed_starts_s, dtype=np.float64)
    ends = np.minimum(starts + embed_window_s, max(duration_s, embed_window_s))
    centres = starts + embed_window_s / 2
    out = []
    for a, b in np.asarray(bounds_s, dtype=np.float64).reshape(-1, 2):
        b = min(b, max(duration_s, embed_window_s)) if duration_s > 0 else b
        if rule == CENTRE_RULE:
            inside = np.flatnonzero((centres >= a - _EPS_S) & (centres < b - _EPS_S))
        else:
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


def _context_s(rule: str, embed_hop_s: float) -> float:
    """Audio an output window's BirdNET windows cover on each side of it (``centre``: half a window less half a hop)."""
    return max(0.0, (WINDOW_S - embed_hop_s) / 2) if check_window_rule(rule) == CENTRE_RULE else 0.0


def nocall_clip_s(window_s: float, *, rule: str = WINDOW_RULE, embed_hop_s: float = EMBED_HOP_S) -> float:
    """Length of a no-bird clip for output windows of ``window_s``: the audio the window's BirdNET windows
    cover (the window and :func:`_context_s` on each side), at least one BirdNET window."""
    return max(float(window_s) + 2 * _context_s(rule, embed_hop_s), WINDOW_S)


def clip_windows(clip: np.ndarray, *, sample_rate_hz: int = STORE_RATE_HZ, embed_hop_s: float = EMBED_HOP_S,
                 rule: str = WINDOW_RULE) -> np.ndarray:
    """The BirdNET windows a clip of :func:`nocall_clip_s` (one output window and its context) is scored
    from: ``(n,)`` -> ``(N, 144000)`` float32 at 48 kHz (the clip resampled, windows every ``embed_hop_s``,
    those ``rule`` gives the output window in the middle of the clip)."""
    from birdspec.windowing import fit_window

    x = to_birdnet_rate(np.asarray(clip, dtype=np.float32).reshape(-1), sample_rate_hz=sample_rate_hz)
    starts = embed_window_starts(x.shape[0], embed_hop_s=embed_hop_s)
    duration_s = clip.shape[0] / sample_rate_hz
    margin = _context_s(rule, embed_hop_s)
    keep = assign_windows(starts / BIRDNET_SAMPLE_RATE_HZ, np.array([[margin, duration_s - margin]]), duration_s=duration_s,
                          rule=rule)[0]
    return np.stack([fit_window(x, length=WINDOW_SAMPLES, fill="pad", start=int(starts[i])) for i in keep])
