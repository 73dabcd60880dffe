"""Synthetic bird-like recordings in the BirdCLEF 2021 layout (for the demo and tests).

Four clearly synthetic classes of calls, each with varied pitch, tempo and
length, placed in recordings with background noise, silent stretches, and
sometimes a quieter call of another class (listed as a secondary label):

- ``syntril``  (Synthetic Trill): fast series of short notes at one pitch;
- ``synwhis``  (Synthetic Whistle): a pure tone slurred downwards;
- ``synharm``  (Synthetic Harmonic): a low note with a stack of harmonics;
- ``synbuzz``  (Synthetic Buzz): a band of noise, amplitude-modulated.

Recording length, call loudness and noise level are drawn from the same
distributions for every class, so loudness or duration alone cannot tell the
classes apart; pitch ranges overlap too. The names are never real species.

:func:`make_soundscape` builds a longer recording from the same call
synthesizer (bouts of calls of several classes over background noise, with
silent gaps) and returns the exact time of every call it placed, so a
trained model's detections can be checked against the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.audio import write_blocks
from birdspec.config import SAMPLE_RATE_HZ
from birdspec.data.catalog_layouts import BIRDCLEF_METADATA_FILES
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticClass:
    label: str
    scientific_name: str
    common_name: str
    make_call: Callable[[np.random.Generator, int], np.ndarray]


def _envelope(n: int, attack: float = 0.1) -> np.ndarray:
    a = max(1, int(n * attack))
    env = np.ones(n)
    env[:a] = np.linspace(0, 1, a)
    env[-a:] = np.linspace(1, 0, a)
    return env


def _trill(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.5, 1.4)
    f = rng.uniform(2500, 6500)
    rate = rng.uniform(12, 28)
    t = np.arange(int(dur * sr)) / sr
    gate = (np.sin(2 * np.pi * rate * t) > 0.3).astype(float)
    return gate * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * _envelope(t.size)


def _whistle(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.3, 0.9)
    f0 = rng.uniform(3000, 7000)
    f1 = f0 * rng.uniform(0.5, 0.75)
    t = np.arange(int(dur * sr)) / sr
    freq = f0 + (f1 - f0) * (t / dur) ** rng.uniform(0.6, 1.5)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return np.sin(phase) * _envelope(t.size, 0.2)


def _harmonic(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.2, 0.6)
    f0 = rng.uniform(700, 1600)
    t = np.arange(int(dur * sr)) / sr
    vib = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 8) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
    out = sum(np.sin(k * phase) / k**0.7 for k in range(1, rng.integers(4, 8)) if k * f0 < sr / 2 - 1000)
    return out / 2.0 * _envelope(t.size, 0.15)


def _buzz(rng: np.random.Generator, sr: int) -> np.ndarray:
    dur = rng.uniform(0.3, 0.9)
    n = int(dur * sr)
    centre = rng.uniform(3000, 7000)
    width = rng.uniform(800, 2000)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec *= np.exp(-0.5 * ((freqs - centre) / (width / 2)) ** 2)
    band = np.fft.irfft(spec, n)
    band /= np.abs(band).max() + 1e-9
    t = np.arange(n) / sr
    am = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(60, 140) * t)
    return band * am * _envelope(n)


CLASSES = (
    SyntheticClass("syntril", "Synthetica trillans", "Synthetic Trill", _trill),
    SyntheticClass("synwhis", "Synthetica sibilans", "Synthetic Whistle", _whistle),
    SyntheticClass("synharm", "Synthetica harmonica", "Synthetic Harmonic", _harmonic),
    SyntheticClass("synbuzz", "Synthetica bombilans", "Synthetic Buzz", _buzz),
)


def _fast_len(n: int) -> int:
    """The smallest 5-smooth number (factors 2, 3, 5 only) >= n: a fast FFT length."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Brown-ish noise with slow level changes, peak-normalised to 1.

    Shaped in the frequency domain at a fast FFT length, then cut to ``n``
    (an FFT of an awkward length, e.g. a large prime, is many times slower).
    """
    m = _fast_len(max(1, n))
    white = rng.standard_normal(m)
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(m, 1 / SAMPLE_RATE_HZ)
    spec /= np.maximum(freqs, 100.0) ** 0.8
    noise = np.fft.irfft(spec, m)[:n]
    return noise / (np.abs(noise).max() + 1e-9)


def _add_call(out: np.ndarray, call: np.ndarray, start: int) -> int:
    """Add ``call`` into ``out`` from sample ``start`` (cut at the end); return the samples placed."""
    seg = call[: max(0, out.size - start)]
    out[start : start + seg.size] += seg
    return int(seg.size)


def synth_recording(
    cls_index: int,
    *,
    duration_s: float,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    seed: int = 0,
    distractor_p: float = 0.3,
    classes: Sequence[SyntheticClass] = CLASSES,
) -> tuple[np.ndarray, list[str]]:
    """One synthetic recording of class ``cls_index`` of ``classes``: ``((n,) float32, secondary labels)``."""
    if not 0 <= cls_index < len(classes):
        raise ConfigError(f"class index must be in [0, {len(classes)}), got {cls_index}")
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate_hz)
    out = _background(rng, n) * rng.uniform(0.005, 0.05)
    call_amp = rng.uniform(0.05, 0.5)
    t = rng.uniform(0, 1.5)
    rate_s = rng.uniform(0.8, 2.5)  # mean gap between calls (tempo)
    while t < duration_s - 0.2:
        if rng.random() < 0.15:  # a silent stretch
            t += rng.uniform(2, 5)
            continue
        call = classes[cls_index].make_call(rng, sample_rate_hz) * call_amp * rng.uniform(0.6, 1.0)
        _add_call(out, call, int(t * sample_rate_hz))
        t += call.size / sample_rate_hz + rng.exponential(rate_s)
    secondary: list[str] = []
    if rng.random() < distractor_p:
        other = int(rng.integers(len(classes) - 1))
        other += other >= cls_index  # any class but cls_index, uniformly
        secondary.append(classes[other].label)
        for _ in range(int(rng.integers(1, 3))):
            call = classes[other].make_call(rng, sample_rate_hz) * call_amp * rng.uniform(0.1, 0.3)
            _add_call(out, call, int(rng.uniform(0, max(0.1, duration_s - 1)) * sample_rate_hz))
    return np.clip(out, -1, 1).astype(np.float32), secondary


def write_ogg(path: Path, wave: np.ndarray, sample_rate_hz: int) -> None:
    """Ogg Vorbis, as the BirdCLEF recordings are (:func:`birdspec.audio.write_blocks`: 1 s blocks, atomic)."""
    write_blocks(path, wave, sample_rate_hz, format="OGG", subtype="VORBIS")


def metadata_row(cls: SyntheticClass, name: str, secondary: list[str], i: int, rng: np.random.Generator) -> dict:
    """The ``train_metadata.csv`` row (BirdCLEF 2021 columns) of the ``i``-th recording ``name`` of ``cls``."""
    return {
        "primary_label": cls.label,
        "secondary_labels": repr(secondary),
        "type": "['song']",
        "latitude": round(float(rng.uniform(-40, 60)), 4),
        "longitude": round(float(rng.uniform(-120, 30)), 4),
        "scientific_name": cls.scientific_name,
        "common_name": cls.common_name,
        "date": f"2021-0{1 + i % 9}-1{i % 10}",
        "filename": name,
        "license": "Synthetic (generated by birdspec)",
        "rating": float(rng.choice([3.0, 3.5, 4.0, 4.5, 5.0])),
        "time": f"0{6 + i % 4}:00",
        "url": "",
    }


def make_synthetic_birdclef(
    root: str | Path,
    *,
    per_class: int = 16,
    min_duration_s: float = 12.0,
    max_duration_s: float = 30.0,
    num_classes: int = len(CLASSES),
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    seed: int = 0,
) -> Path:
    """Write a BirdCLEF-2021-layout dataset of synthetic calls under ``root``.

    ``root/train_metadata.csv`` + ``root/train_short_audio/<label>/XC<id>.ogg``
    with the 2021 columns. Returns ``root``. Deterministic for a given seed.
    """
    if not 2 <= num_classes <= len(CLASSES):
        raise ConfigError(f"num_classes must be in [2, {len(CLASSES)}], got {num_classes}")
    if per_class < 2 or not 0 < min_duration_s <= max_duration_s:
        raise ConfigError("need per_class >= 2 and 0 < min_duration_s <= max_duration_s")
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    next_id = 900000
    for k in range(num_classes):
        cls = CLASSES[k]
        folder = root / "train_short_audio" / cls.label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            duration = float(rng.uniform(min_duration_s, max_duration_s))
            wave, secondary = synth_recording(k, duration_s=duration, sample_rate_hz=sample_rate_hz,
                                              seed=int(rng.integers(1 << 31)))
            name = f"XC{next_id}.ogg"
            next_id += 1
            write_ogg(folder / name, wave, sample_rate_hz)
            rows.append(metadata_row(cls, name, secondary, i, rng))
    pd.DataFrame(rows).to_csv(root / BIRDCLEF_METADATA_FILES[0], index=False)
    log.info("wrote %d synthetic recordings of %d classes to %s", len(rows), num_classes, root)
    return root


def other_calls(*, num_samples: int, rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``(num_samples,)`` float32 of call-like sounds that are none of a user's species: calls of the four
    synthetic types, each pitch- and time-scaled by 0.5-1.6x (resampled), at -45 to -10 dBFS peak, one
    after another with random gaps, over a quiet noise bed (-70 to -35 dBFS RMS). As no-bird samples
    (``--synthetic-calls``) they teach a model that a trill, whistle, harmonic stack or buzz that is not
    one of its classes is "no bird" (e.g. a toad's trill); never use them when the classes are these calls.
    """
    import soxr

    from birdspec.data.backgrounds import random_background

    n, sr = int(num_samples), int(sample_rate_hz)
    bed = random_background(num_samples=n, rng=rng, sample_rate_hz=sr, level_range_dbfs=(-70.0, -35.0),
                            kinds=("white", "pink", "brown", "wind"))[0]
    out = bed.astype(np.float64)
    t = int(rng.integers(0, max(1, sr // 2)))
    while t < n:
        call = CLASSES[int(rng.integers(len(CLASSES)))].make_call(rng, sr).astype(np.float32)
        scale = float(rng.uniform(0.5, 1.6))  # resampled as if recorded at another rate: pitch and tempo scale
        if abs(scale - 1.0) > 0.02:
            call = soxr.resample(call, sr, int(round(sr * scale)))
        take = min(call.size, n - t)
        out[t : t + take] += 10 ** (rng.uniform(-45, -10) / 20) * call[:take] / (np.abs(call).max() + 1e-9)
        t += take + int(rng.exponential(rng.uniform(0.1, 1.5)) * sr)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


SOUNDSCAPE_CALL_COLUMNS = ("label", "start_s", "end_s", "peak_amplitude")


@dataclass(frozen=True, eq=False)
class Soundscape:
    """A synthetic soundscape and the calls placed in it.

    Attributes:
        wave: ``(n,)`` float32 mono audio.
        sample_rate_hz: its sample rate.
        calls: one row per placed call, in time order: ``label``, ``start_s``,
            ``end_s`` (exact sample positions / rate) and ``peak_amplitude``.
        quiet: ``(start_s, end_s)`` of the silent gaps between bouts (background noise only).
    """

    wave: np.ndarray
    sample_rate_hz: int
    calls: pd.DataFrame
    quiet: tuple[tuple[float, float], ...]

    @property
    def duration_s(self) -> float:
        return self.wave.size / self.sample_rate_hz


def make_soundscape(
    duration_s: float = 60.0,
    *,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    seed: int = 0,
    num_classes: int = len(CLASSES),
    noise_level: float | None = None,
    bout_s: tuple[float, float] = (4.0, 9.0),
    gap_s: tuple[float, float] = (1.0, 4.0),
) -> Soundscape:
    """A longer recording of bouts of calls of several synthetic classes, with the truth.

    Bouts (``bout_s`` long, uniform) of one class each follow each other with
    ``gap_s`` of background noise between them (sometimes a longer silence);
    within a bout, calls come at the tempo and loudness ranges of the training
    recordings. Every class appears before any repeats (a shuffled cycle).
    Deterministic for a given seed; use a seed that the training data does not.

    Args:
        noise_level: peak level of the background noise (None: drawn like the
            training recordings'; 0: none, e.g. to check the truth in tests).

    Raises:
        ConfigError: a too short soundscape or bad ranges.
    """
    if not duration_s >= 5.0:
        raise ConfigError(f"a soundscape needs duration_s >= 5, got {duration_s}")
    if not 2 <= num_classes <= len(CLASSES):
        raise ConfigError(f"num_classes must be in [2, {len(CLASSES)}], got {num_classes}")
    if not (0 < bout_s[0] <= bout_s[1] and 0 <= gap_s[0] <= gap_s[1]):
        raise ConfigError(f"need 0 < bout_s[0] <= bout_s[1] and 0 <= gap_s[0] <= gap_s[1], got {bout_s}, {gap_s}")
    rng = np.random.default_rng(seed)
    n = round(duration_s * sample_rate_hz)
    level = float(rng.uniform(0.005, 0.03)) if noise_level is None else float(noise_level)
    out = _background(rng, n) * level if level > 0 else np.zeros(n)
    rows: list[dict[str, Any]] = []
    quiet: list[tuple[float, float]] = []
    order: list[int] = []
    t = round(float(rng.uniform(0.3, 1.5)) * sample_rate_hz) / sample_rate_hz  # on the sample grid
    if t > 0:
        quiet.append((0.0, t))
    while t < duration_s - 0.5:
        if not order:
            order = [int(k) for k in rng.permutation(num_classes)]
        k = order.pop()
        bout_end = min(duration_s, t + float(rng.uniform(*bout_s)))
        amp = float(rng.uniform(0.1, 0.5))
        rate_s = float(rng.uniform(0.3, 1.0))
        while t < bout_end - 0.2:
            call = CLASSES[k].make_call(rng, sample_rate_hz) * amp * rng.uniform(0.6, 1.0)
            start = round(t * sample_rate_hz)
            placed = _add_call(out, call, start)
            if placed:
                rows.append({
                    "label": CLASSES[k].label,
                    "start_s": start / sample_rate_hz,
                    "end_s": (start + placed) / sample_rate_hz,
                    "peak_amplitude": float(np.abs(call[:placed]).max()),
                })
            t = (start + call.size) / sample_rate_hz + float(rng.exponential(rate_s))
        gap = float(rng.uniform(*gap_s)) * (2.0 if rng.random() < 0.2 else 1.0)
        last_end = rows[-1]["end_s"] if rows else 0.0
        quiet_end = round(min(duration_s, max(t, float(last_end)) + gap) * sample_rate_hz) / sample_rate_hz
        quiet.append((float(last_end), quiet_end))
        t = quiet_end
    calls = pd.DataFrame(rows, columns=list(SOUNDSCAPE_CALL_COLUMNS))
    wave = np.clip(out, -1, 1).astype(np.float32)
    return Soundscape(wave, sample_rate_hz, calls, tuple((a, b) for a, b in quiet if b > a))
