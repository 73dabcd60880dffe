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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import soundfile as sf

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


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Brown-ish noise with slow level changes, peak-normalised to 1."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / 32000)
    spec /= np.maximum(freqs, 100.0) ** 0.8
    noise = np.fft.irfft(spec, n)
    return noise / (np.abs(noise).max() + 1e-9)


def synth_recording(
    cls_index: int,
    *,
    duration_s: float,
    sample_rate_hz: int = 32000,
    seed: int = 0,
    distractor_p: float = 0.3,
) -> tuple[np.ndarray, list[str]]:
    """One synthetic recording of class ``cls_index``: ``((n,) float32, secondary labels)``."""
    if not 0 <= cls_index < len(CLASSES):
        raise ConfigError(f"class index must be in [0, {len(CLASSES)}), got {cls_index}")
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
        call = CLASSES[cls_index].make_call(rng, sample_rate_hz) * call_amp * rng.uniform(0.6, 1.0)
        i = int(t * sample_rate_hz)
        seg = call[: max(0, n - i)]
        out[i : i + seg.size] += seg
        t += call.size / sample_rate_hz + rng.exponential(rate_s)
    secondary: list[str] = []
    if rng.random() < distractor_p:
        other = int(rng.choice([k for k in range(len(CLASSES)) if k != cls_index]))
        secondary.append(CLASSES[other].label)
        for _ in range(int(rng.integers(1, 3))):
            call = CLASSES[other].make_call(rng, sample_rate_hz) * call_amp * rng.uniform(0.1, 0.3)
            i = int(rng.uniform(0, max(0.1, duration_s - 1)) * sample_rate_hz)
            seg = call[: max(0, n - i)]
            out[i : i + seg.size] += seg
    return np.clip(out, -1, 1).astype(np.float32), secondary


def write_ogg(path: Path, wave: np.ndarray, sample_rate_hz: int) -> None:
    """Ogg Vorbis written in 1 s blocks (one long write crashes libsndfile)."""
    with sf.SoundFile(str(path), "w", sample_rate_hz, 1, format="OGG", subtype="VORBIS") as f:
        for i in range(0, wave.size, sample_rate_hz):
            f.write(wave[i : i + sample_rate_hz])


def make_synthetic_birdclef(
    root: str | Path,
    *,
    per_class: int = 16,
    min_duration_s: float = 12.0,
    max_duration_s: float = 30.0,
    num_classes: int = len(CLASSES),
    sample_rate_hz: int = 32000,
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
            rows.append({
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
            })
    pd.DataFrame(rows).to_csv(root / "train_metadata.csv", index=False)
    log.info("wrote %d synthetic recordings of %d classes to %s", len(rows), num_classes, root)
    return root
