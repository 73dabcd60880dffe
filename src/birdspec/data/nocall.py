"""Audio without a bird of the classes: quiet stretches, backgrounds, no-bird samples, mixing at an SNR.

- :func:`quiet_stretches` owns the rule for "no call here" inside a recording
  (energy relative to the recording's own noise floor and loud level; optionally a
  :class:`BandCheck` on top, for a stricter rule).
- :func:`load_backgrounds` reads a folder of background recordings (their
  content counts as "none of the classes", whatever else they hold).
- :class:`NoCallSource` draws no-bird crops from quiet stretches, background recordings and the
  built-in synthetic backgrounds (:mod:`birdspec.data.backgrounds`: silence, noise, wind, rain,
  hum); :class:`WithNoCall` appends such samples to a dataset; :class:`BackgroundMixer` mixes a
  background recording or a no-bird crop under a sample at an SNR drawn from a range (:func:`mix_at_snr`).

Training draws come from a NumPy generator seeded from torch's global generator (which Lightning
seeds per data-loader worker and a resumed run restores); fixed samples (validation, thresholds)
from a generator seeded by the sample's index, so they are the same in every epoch and process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from birdspec.config import SAMPLE_RATE_HZ
from birdspec.errors import AudioError, ConfigError, DataError
from birdspec.windowing import fit_window

if TYPE_CHECKING:
    from birdspec.data.prepared import PreparedDataset
    from birdspec.data.store import WaveformStore

log = logging.getLogger(__name__)

MAX_BACKGROUND_S = 600.0
"""At most this much of every background recording is read (memory)."""


@dataclass(frozen=True)
class QuietRule:
    """When a stretch of a recording counts as holding no call.

    A frame (``frame_s`` long) is quiet when its RMS level is within ``margin_db`` of the
    recording's noise floor (the ``floor_percentile`` percentile of the frame levels) **and**
    at least ``min_snr_db`` below its loud level (the 95th percentile): a recording without
    that contrast (a call everywhere, or noise only) gives no quiet frame. Runs of quiet frames
    of at least ``min_duration_s`` (after trimming ``guard_s`` at both ends, for call onsets and
    tails) are the stretches.
    """

    frame_s: float = 0.1
    margin_db: float = 6.0
    floor_percentile: float = 10.0
    min_snr_db: float = 15.0
    min_duration_s: float = 1.0
    guard_s: float = 0.1

    def __post_init__(self) -> None:
        if not (self.frame_s > 0 and self.margin_db >= 0 and 0 <= self.floor_percentile < 95
                and self.min_snr_db >= 0 and self.min_duration_s > 0 and self.guard_s >= 0):
            raise ConfigError(f"invalid quiet-stretch rule {self}")


@dataclass(frozen=True)
class BandCheck:
    """A stricter "no call here": a frame the energy rule calls quiet is not quiet when one of its
    third-octave bands from ``low_hz`` to ``high_hz`` stands more than ``margin_db`` above that band's
    own floor (the rule's ``floor_percentile`` percentile of that band's frame levels).

    Faint song barely moves a broadband level that low-frequency noise dominates: on the reed warblers
    the energy rule alone calls 11.6 % of the audio quiet, with faint song in most of the stretches
    looked at; with this check 2.8 %. Not part of the training defaults (measured: no-bird samples
    without the faint song lowered the CNN's soundscape F1, benchmarks/README.md); benchmarks/no_bird.py
    uses it to report a no-bird corpus cleaned of faint song.
    """

    margin_db: float = 8.0
    low_hz: float = 1000.0
    high_hz: float = 12000.0

    def __post_init__(self) -> None:
        if not (self.margin_db >= 0 and 0 < self.low_hz < self.high_hz):
            raise ConfigError(f"invalid band check {self}")


BAND_FRAMES_PER_BLOCK = 2048
"""Frames transformed at a time by :func:`band_levels_db` (bounds its memory on long recordings)."""


def frame_levels_db(wave: np.ndarray, frame_samples: int) -> np.ndarray:
    """RMS level in dB of consecutive ``frame_samples`` frames (a last partial frame is dropped)."""
    n = (wave.size // frame_samples) * frame_samples
    frames = np.asarray(wave[:n], dtype=np.float64).reshape(-1, frame_samples)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def band_levels_db(wave: np.ndarray, frame_samples: int, *, sample_rate_hz: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Level in dB of the third-octave bands from ``low_hz`` up to ``high_hz`` (or 0.95 x Nyquist) in
    consecutive ``frame_samples`` frames (Hann-windowed; a last partial frame is dropped): ``(frames, bands)``."""
    n_frames = wave.size // frame_samples
    freqs = np.fft.rfftfreq(frame_samples, 1.0 / sample_rate_hz)
    top = min(high_hz, 0.95 * sample_rate_hz / 2)
    edges = low_hz * 2.0 ** (np.arange(0, 64) / 3.0)
    edges = edges[edges <= top]
    bins = [np.flatnonzero((freqs >= lo) & (freqs < hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    bins = [b for b in bins if b.size]
    out = np.zeros((n_frames, len(bins)))
    hann = np.hanning(frame_samples)
    for a in range(0, n_frames, BAND_FRAMES_PER_BLOCK):
        b = min(n_frames, a + BAND_FRAMES_PER_BLOCK)
        frames = np.asarray(wave[a * frame_samples:b * frame_samples], dtype=np.float64).reshape(b - a, frame_samples)
        power = np.abs(np.fft.rfft(frames * hann, axis=1)) ** 2
        out[a:b] = 10.0 * np.log10(np.stack([power[:, idx].sum(axis=1) for idx in bins], axis=1) + 1e-20)
    return out


def quiet_stretches(wave: np.ndarray, sample_rate_hz: int, rule: QuietRule = QuietRule(), *,
                    band_check: BandCheck | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges of ``wave`` that hold no call under ``rule`` (see :class:`QuietRule`),
    and under ``band_check`` too when given (:class:`BandCheck`)."""
    frame = max(1, int(round(rule.frame_s * sample_rate_hz)))
    wave = np.asarray(wave).reshape(-1)
    levels = frame_levels_db(wave, frame)
    if levels.size == 0:
        return []
    floor = np.percentile(levels, rule.floor_percentile)
    loud = np.percentile(levels, 95)
    quiet = (levels <= floor + rule.margin_db) & (levels <= loud - rule.min_snr_db)
    if band_check is not None and quiet.any():
        bands = band_levels_db(wave, frame, sample_rate_hz=sample_rate_hz, low_hz=band_check.low_hz, high_hz=band_check.high_hz)
        if bands.shape[1]:
            active = (bands > np.percentile(bands, rule.floor_percentile, axis=0) + band_check.margin_db).any(axis=1)
            quiet &= ~active
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    guard = int(round(rule.guard_s * sample_rate_hz))
    min_len = int(round(rule.min_duration_s * sample_rate_hz))
    out = []
    for a, b in zip(edges[0::2], edges[1::2], strict=True):
        start, end = int(a) * frame + guard, int(b) * frame - guard
        if end - start >= min_len:
            out.append((start, end))
    return out


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` with ``g`` such that power(signal) / power(g * noise) is ``snr_db``.

    A silent signal gets the noise at its own level; silent noise leaves the signal as it is.
    """
    ps = float(np.mean(np.square(signal, dtype=np.float64)))
    pn = float(np.mean(np.square(noise, dtype=np.float64)))
    if pn <= 0:
        return signal.astype(np.float32, copy=True)
    gain = 1.0 if ps <= 0 else float(np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0))))
    return (signal + gain * noise).astype(np.float32)


def load_backgrounds(folder: str | Path, *, sample_rate_hz: int) -> list[np.ndarray]:
    """Every audio file under ``folder`` (sorted; at most :data:`MAX_BACKGROUND_S` each), mono at the rate.

    Raises:
        DataError: no readable audio file there.
    """
    from birdspec.audio import is_audio_file, load

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give a folder of background recordings (wav, flac, ogg, mp3)")
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p)):
        try:
            wave = load(path, sample_rate_hz=sample_rate_hz, duration_s=MAX_BACKGROUND_S)
        except AudioError as exc:
            log.warning("skipping background %s: %s", path, exc)
            continue
        if wave.size:
            out.append(wave.astype(np.float32))
    if not out:
        raise DataError(f"{root}: no readable audio file; give a folder of background recordings (wav, flac, ogg, mp3)")
    log.info("%d background recordings (%.1f min) from %s", len(out), sum(w.size for w in out) / sample_rate_hz / 60, root)
    return out


def torch_seeded_rng() -> np.random.Generator:
    """A NumPy generator seeded from torch's global generator (seeded per worker; restored on resume)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def _crop_of(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length`` crop of ``wave`` (tiled when shorter)."""
    if wave.size >= length:
        start = int(rng.integers(wave.size - length + 1))
        return np.asarray(wave[start:start + length], dtype=np.float32)
    return fit_window(np.asarray(wave, dtype=np.float32), length=length, fill="tile", start=int(rng.integers(max(1, wave.size))))


class NoCallSource:
    """No-bird crops: quiet stretches of prepared recordings, background recordings, synthetic backgrounds.

    Every crop first picks a source kind (uniformly among the kinds there are), then a stretch /
    recording with probability proportional to its length and a random position (a shorter one is
    tiled to the crop length), or a synthetic background of a random kind and level
    (:func:`~birdspec.data.backgrounds.random_background`).

    Args:
        store: the prepared dataset's waveform store (``read(offset, n, start=, length=)``).
        stretches: ``(offset, num_samples, start, end)`` per quiet stretch of a stored recording.
        backgrounds: background recordings (arrays).
        synthetic: draw from the built-in synthetic backgrounds too.
        calls: draw synthetic call-like sounds that are none of the classes too
            (:func:`~birdspec.data.synthetic.other_calls`).
        sample_rate_hz: of the store and the backgrounds.
    """

    def __init__(self, store: WaveformStore, stretches: Sequence[tuple[int, int, int, int]],
                 backgrounds: Sequence[np.ndarray] = (), *, synthetic: bool = False, calls: bool = False,
                 sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.store = store
        self.stretches = np.asarray(stretches, dtype=np.int64).reshape(-1, 4)
        self.backgrounds = list(backgrounds)
        self.synthetic = bool(synthetic)
        self.sample_rate_hz = int(sample_rate_hz)
        if not len(self.stretches) and not self.backgrounds and not self.synthetic and not calls:
            raise DataError(
                "found no quiet stretch in the training recordings and no background recording for no-bird crops; "
                "give --background DIR (recordings without the classes' birds), or keep the synthetic backgrounds on"
            )
        self._stretch_p = self._weights(self.stretches[:, 3] - self.stretches[:, 2])
        self._bg_p = self._weights([w.size for w in self.backgrounds])
        self.kinds = [k for k, on in (("stretch", self._stretch_p is not None), ("background", self._bg_p is not None),
                                      ("synthetic", self.synthetic), ("calls", bool(calls))) if on]

    @staticmethod
    def _weights(lengths: Sequence[int] | np.ndarray) -> np.ndarray | None:
        lengths = np.asarray(lengths, dtype=np.float64)
        return lengths / lengths.sum() if lengths.size and lengths.sum() > 0 else None

    def crop(self, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """One no-bird crop of ``length`` samples, float32 (``rng`` None: seeded from torch's generator)."""
        rng = rng if rng is not None else torch_seeded_rng()
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        if kind == "synthetic":
            from birdspec.data.backgrounds import random_background

            return random_background(num_samples=length, rng=rng, sample_rate_hz=self.sample_rate_hz)[0]
        if kind == "calls":
            from birdspec.data.synthetic import other_calls

            return other_calls(num_samples=length, rng=rng, sample_rate_hz=self.sample_rate_hz)
        if kind == "background":
            return _crop_of(self.backgrounds[int(rng.choice(len(self.backgrounds), p=self._bg_p))], length, rng)
        offset, n, start, end = (int(v) for v in self.stretches[int(rng.choice(len(self.stretches), p=self._stretch_p))])
        return _crop_of(self.store.read(offset, n, start=start, length=end - start), length, rng)


class WithNoCall(Dataset):
    """A dataset's ``(x, y)`` samples followed by ``count`` no-bird samples ``(crop, nocall_target)``.

    Args:
        base: yields ``(x, y)`` and has ``sample_shape`` (e.g. a
            :class:`~birdspec.data.dataset.RecordingDataset`, possibly wrapped); its other attributes
            (``sample_rows``, ``labels``, ``data``, ...) are this dataset's too.
        source: where no-bird crops come from; None with ``count`` 0.
        count: no-bird samples added after the base samples.
        nocall_target: their target: the no-bird class id K (single-label) or a ``(K,)`` zero vector.
        seed: None (training): a new crop every time; an int: sample ``i`` is always the same crop
            (validation and threshold windows).
        mixer: a :class:`BackgroundMixer` applied to every sample (training only).
    """

    def __init__(self, base: Any, source: NoCallSource | None, count: int, nocall_target: Any, *,
                 seed: int | None = None, mixer: BackgroundMixer | None = None) -> None:
        if count and source is None:
            raise DataError("no-bird samples need a source of no-bird audio")
        self.base = base
        self.source = source
        self.count = int(count)
        self.nocall_target = nocall_target
        self.seed = seed
        self.mixer = mixer
        self._shape = tuple(base.sample_shape)

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base) + self.count

    @property
    def num_nocall(self) -> int:
        return self.count

    def nocall_crop(self, i: int) -> np.ndarray:
        """No-bird sample ``i`` (``0 <= i < count``) as ``sample_shape`` float32."""
        rng = np.random.default_rng([int(self.seed), int(i)]) if self.seed is not None else None
        return self.source.crop(int(np.prod(self._shape)), rng).reshape(self._shape)  # type: ignore[union-attr]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        n_base = len(self.base)
        if index < n_base:
            x, y = self.base[index]
        else:
            x = torch.from_numpy(self.nocall_crop(index - n_base))
            y = self.nocall_target  # as the base dataset's: a label id (int) or a target vector (tensor)
            y = torch.from_numpy(np.array(y, dtype=np.float32)) if isinstance(y, np.ndarray) else int(y)
        if self.mixer is not None:
            x = torch.from_numpy(self.mixer.mix(x.numpy()))
        return x, y


def find_stretches(data: PreparedDataset, rows: Sequence[int], rule: QuietRule = QuietRule()) -> list[tuple[int, int, int, int]]:
    """Quiet stretches of manifest ``rows`` of a prepared dataset as ``(offset, num_samples, start, end)``."""
    m = data.manifest
    out = []
    for row in rows:
        offset, n = int(m["offset"].iloc[row]), int(m["num_samples"].iloc[row])
        for start, end in quiet_stretches(data.store.read(offset, n), data.sample_rate_hz, rule):
            out.append((offset, n, start, end))
    total = sum(e - s for _, _, s, e in out) / max(1, data.sample_rate_hz)
    log.info("no-bird crops: %d quiet stretches (%.1f s) in %d recordings", len(out), total, len(rows))
    return out


class BackgroundMixer:
    """Mixes a random background crop under a sample with probability ``probability``, at an SNR
    uniform in ``snr_db`` (signal = the sample, all channels together).

    The crop comes from one of ``backgrounds`` (recordings) or from ``source`` (no-bird audio: quiet
    stretches, synthetic backgrounds; :class:`NoCallSource`), each as likely when both are given.
    """

    def __init__(self, backgrounds: Sequence[np.ndarray] = (), *, snr_db: tuple[float, float], probability: float = 1.0,
                 source: NoCallSource | None = None) -> None:
        if not backgrounds and source is None:
            raise DataError("no background recordings to mix; give a folder of recordings with --background-mix")
        self.backgrounds = list(backgrounds)
        self.source = source
        self.snr_db = (float(snr_db[0]), float(snr_db[1]))
        self.probability = float(probability)

    def mix(self, x: np.ndarray) -> np.ndarray:
        rng = torch_seeded_rng()
        if float(rng.random()) >= self.probability:
            return x
        if self.source is not None and (not self.backgrounds or float(rng.random()) < 0.5):
            bg = self.source.crop(int(x.size), rng).reshape(x.shape)
        else:
            bg = _crop_of(self.backgrounds[int(rng.integers(len(self.backgrounds)))], int(x.size), rng).reshape(x.shape)
        lo, hi = self.snr_db
        return mix_at_snr(x, bg, lo + (hi - lo) * float(rng.random()))
