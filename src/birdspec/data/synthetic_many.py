"""Many synthetic call types (up to 408) for scale tests: a 397-class BirdCLEF-2021-layout dataset.

The demo's four call types (:mod:`birdspec.data.synthetic`) become a grid of
*families* x *pitches* x *patterns*, each cell one class:

- family (6): trill (gated tone), down-slurred whistle, up-slurred whistle,
  harmonic stack, noise buzz, chirp series (short up-sweeps);
- pitch (17): a base frequency on a log grid from 1.5 to 9 kHz, 12 % apart
  (harmonic stacks use a quarter of it); each call jitters by at most 4 %,
  so neighbouring pitches never overlap;
- pattern (4): the family's tempo / modulation setting (trill and chirp
  rate, slur depth, vibrato rate and number of harmonics, buzz modulation).

Class ``k`` is family ``k % 6``, pitch ``(k // 6) % 17``, pattern ``k // 102``;
its code is a BirdCLEF-style 6-letter code (``sy`` + 4 letters, unique per
``k``). Recordings are made by :func:`birdspec.data.synthetic.synth_recording`
(background noise, silences, tempo, loudness, a quieter call of another class
listed as a secondary label for ~30 % of them). Not real species.
"""

from __future__ import annotations

import logging
import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdspec.config import SAMPLE_RATE_HZ
from birdspec.data.catalog_layouts import BIRDCLEF_METADATA_FILES
from birdspec.data.synthetic import SyntheticClass, _envelope, metadata_row, synth_recording, write_ogg
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

FAMILIES = ("trill", "downslur", "upslur", "harmonic", "buzz", "chirps")
PITCHES = 17
PATTERNS = 4
MAX_CLASSES = len(FAMILIES) * PITCHES * PATTERNS
PITCH_LOW_HZ = 1500.0
PITCH_HIGH_HZ = 9000.0
JITTER = 0.04


@dataclass(frozen=True)
class ManyCall:
    """One call type: ``call(rng, sample_rate_hz) -> (n,) float`` (picklable, for worker processes)."""

    family: str
    pitch_hz: float
    pattern: int

    def __call__(self, rng: np.random.Generator, sr: int) -> np.ndarray:
        f = self.pitch_hz * rng.uniform(1 - JITTER, 1 + JITTER)
        p = self.pattern
        if self.family == "trill":
            dur, rate = rng.uniform(0.5, 1.2), (8, 15, 24, 38)[p]
            t = np.arange(int(dur * sr)) / sr
            return (np.sin(2 * np.pi * rate * t) > 0.3) * np.sin(2 * np.pi * f * t) * _envelope(t.size)
        if self.family in ("downslur", "upslur"):
            dur = rng.uniform(0.3, 0.8)
            depth = (0.85, 0.7, 0.55, 0.4)[p]
            t = np.arange(int(dur * sr)) / sr
            a, b = (f, f * depth) if self.family == "downslur" else (f * depth, f)
            phase = 2 * np.pi * np.cumsum(a + (b - a) * t / dur) / sr
            return np.sin(phase) * _envelope(t.size, 0.2)
        if self.family == "harmonic":
            dur, f0 = rng.uniform(0.2, 0.6), f / 4
            t = np.arange(int(dur * sr)) / sr
            phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * (3, 6, 10, 16)[p] * t))) / sr
            ks = [k for k in range(1, 3 + 2 * (p % 2) + 2) if k * f0 < sr / 2 - 1000]
            return sum(np.sin(k * phase) / k**0.7 for k in ks) / 2.0 * _envelope(t.size, 0.15)
        if self.family == "buzz":
            dur = rng.uniform(0.3, 0.8)
            n = int(dur * sr)
            spec = np.fft.rfft(rng.standard_normal(n))
            freqs = np.fft.rfftfreq(n, 1 / sr)
            spec *= np.exp(-0.5 * ((freqs - f) / (0.05 * f)) ** 2)
            band = np.fft.irfft(spec, n)
            band /= np.abs(band).max() + 1e-9
            t = np.arange(n) / sr
            return band * (0.6 + 0.4 * np.sin(2 * np.pi * (30, 60, 110, 180)[p] * t)) * _envelope(n)
        # chirps: a series of short up-sweeps
        count, note_s = (2, 3, 5, 8)[p], 0.06
        note = np.arange(int(note_s * sr)) / sr
        sweep = np.sin(2 * np.pi * np.cumsum(f * (0.8 + 0.4 * note / note_s)) / sr) * _envelope(note.size, 0.2)
        gap = np.zeros(int(rng.uniform(0.04, 0.07) * sr))
        return np.concatenate([np.concatenate([sweep, gap]) for _ in range(count)])


def class_code(k: int) -> str:
    """A unique 6-letter code for class ``k`` (``sy`` + 4 letters), e.g. ``syaaaa``."""
    n = (k * 7919) % 26**4  # 7919 is prime, so k -> n is one-to-one for k < 26**4
    letters = []
    for _ in range(4):
        n, r = divmod(n, 26)
        letters.append(string.ascii_lowercase[r])
    return "sy" + "".join(reversed(letters))


def many_classes(num_classes: int) -> tuple[SyntheticClass, ...]:
    """The first ``num_classes`` call types of the grid (see the module doc)."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"num_classes must be in [2, {MAX_CLASSES}], got {num_classes}")
    out = []
    for k in range(num_classes):
        fam, pitch, pattern = FAMILIES[k % len(FAMILIES)], (k // len(FAMILIES)) % PITCHES, k // (len(FAMILIES) * PITCHES)
        hz = PITCH_LOW_HZ * (PITCH_HIGH_HZ / PITCH_LOW_HZ) ** (pitch / (PITCHES - 1))
        out.append(SyntheticClass(class_code(k), f"Synthetica {fam} {k:03d}",
                                  f"Synthetic {fam} {round(hz)} Hz pattern {pattern}", ManyCall(fam, hz, pattern)))
    return tuple(out)


def _write_class(args: tuple) -> list[dict]:
    root, k, num_classes, durations, seeds, first_id, sample_rate_hz = args
    classes = many_classes(num_classes)
    folder = Path(root) / "train_short_audio" / classes[k].label
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (duration, seed) in enumerate(zip(durations, seeds, strict=True)):
        name = f"XC{first_id + i}.ogg"
        path = folder / name
        rng = np.random.default_rng(seed)
        wave, secondary = synth_recording(k, duration_s=duration, sample_rate_hz=sample_rate_hz, seed=seed, classes=classes)
        if not path.exists():
            write_ogg(path, wave, sample_rate_hz)  # atomic
        rows.append(metadata_row(classes[k], name, secondary, i, rng))
    return rows


def make_many_birdclef(
    root: str | Path,
    *,
    num_classes: int = 397,
    per_class: int = 3,
    min_duration_s: float = 10.0,
    max_duration_s: float = 30.0,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    seed: int = 0,
    workers: int = 1,
) -> Path:
    """Write ``root/train_metadata.csv`` + ``root/train_short_audio/<code>/XC<id>.ogg`` for ``num_classes`` call types.

    Deterministic for a given seed (whatever ``workers``); recordings already written are kept
    (an interrupted run resumes), the metadata is written last.
    """
    if per_class < 1 or not 0 < min_duration_s <= max_duration_s:
        raise ConfigError("need per_class >= 1 and 0 < min_duration_s <= max_duration_s")
    many_classes(num_classes)  # validates num_classes
    root = Path(root)
    rng = np.random.default_rng(seed)
    durations = rng.uniform(min_duration_s, max_duration_s, size=(num_classes, per_class))
    seeds = rng.integers(1 << 31, size=(num_classes, per_class))
    jobs = [(str(root), k, num_classes, [float(d) for d in durations[k]], [int(s) for s in seeds[k]],
             900000 + k * per_class, sample_rate_hz) for k in range(num_classes)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_write_class, jobs, chunksize=4))
    else:
        parts = [_write_class(j) for j in jobs]
    rows = [r for part in parts for r in part]
    pd.DataFrame(rows).to_csv(root / BIRDCLEF_METADATA_FILES[0], index=False)
    log.info("wrote %d synthetic recordings of %d classes to %s", len(rows), num_classes, root)
    return root
