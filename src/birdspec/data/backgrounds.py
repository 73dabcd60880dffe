"""Synthetic "no bird" backgrounds: audio that holds no bird, made from nothing but a random generator.

A classifier that must name a species in every 5 s window learns to call silence, wind or a
humming recorder a bird. These backgrounds exist without any extra data, so training can draw
them as no-bird samples and tests can check that a model writes no detection on them. Each kind
models a sound real recordings are full of:

- ``silence``: digital silence, the quiet start or end of a file or a recorder's gap: TPDF dither
  quantized to 16-bit steps (values of 0 and +-1/32768), or exact zeros (a quarter of the draws).
  ``level_dbfs`` is ignored; its RMS is about -96 dBFS.
- ``white``, ``pink``, ``brown``: stationary Gaussian noise with a power spectral density flat,
  ~1/f (-3 dB/octave) and ~1/f^2 (-6 dB/octave): electronic self-noise, distant traffic, surf,
  a river. Shaped in the frequency domain; no DC (pink and brown level off below 20 Hz).
- ``wind``: wind on a microphone: low-frequency rumble (most energy below ~300 Hz, almost all below
  500 Hz) whose level moves in gusts (a smoothed random envelope with 0.1-2 Hz content and about 10-20 dB
  between calm and gusts), with occasional low-frequency buffeting thumps.
- ``rain``: rain on leaves or the recorder: Poisson droplets (20-300 per second, drawn per clip),
  each a 1-10 ms decaying broadband burst of random (heavy-tailed) amplitude, over a faint hiss;
  a high crest factor (peak / RMS).
- ``hum``: mains hum from a recorder's power: 50 or 60 Hz (drawn) and its harmonics up to 1 kHz,
  amplitudes decaying with harmonic number with slight random amplitude and phase per harmonic,
  over noise about 45 dB below it.
- ``chorus``: a frog or insect chorus: 1-6 callers, each a **sustained** pulsed trill in bouts of 2-30 s
  or without a pause, at levels up to 20 dB apart, over pink noise 30 dB below. A caller's pulses
  (4-80 a second) carry a tone of 0.4-8 kHz with up to 2 harmonics and a slight pitch wander (duty
  cycle 0.2-0.7), a band of noise 0.2-1 octave wide around such a frequency (0.2-0.7), or a broadband
  click (1-3 octaves, duty 0.05-0.25) as a toad's rough trill. What sets it apart from a bird's song
  is that it does not change: the same pulse at the same pitch for seconds on end.

Every kind but silence is scaled so that its RMS equals ``level_dbfs`` (dB re full scale, a full-scale
sine is -3 dBFS); peaks are clipped to [-1, 1] only when needed (and the level restored), which at
-20 dBFS happens to rain's loudest drops only. Pure NumPy (no PyTorch): 5 s at 32 kHz takes
10-20 ms (the chorus, with its several callers, up to about 0.1 s).
The same generator state gives the same array.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

from birdspec.config import SAMPLE_RATE_HZ
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

BACKGROUND_KINDS = ("silence", "white", "pink", "brown", "wind", "rain", "hum", "chorus")
"""The synthetic no-bird background kinds, in the order :func:`random_background` lists them."""

LEVEL_RANGE_DBFS = (-90.0, -20.0)
"""Default range of random background levels (RMS, dB re full scale)."""

_LSB = 1.0 / 32768.0  # one 16-bit quantization step
_SILENCE_ZEROS_P = 0.25  # share of silences that are exact zeros rather than dithered
_SHAPED_CORNER_HZ = 20.0  # pink and brown level off below this (no drift, no DC)


def _fft_length(n: int) -> int:
    """The smallest 5-smooth number (factors 2, 3, 5 only) >= ``n``: a fast FFT length.

    Noise is made at this length and cut to ``n`` (an FFT of an awkward length, e.g. a large
    prime, is ten times slower); cutting stationary noise keeps it stationary.
    """
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


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _shaped_noise(rng: np.random.Generator, n: int, sample_rate_hz: int,
                  gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``n`` samples of Gaussian noise whose amplitude spectrum is ``gain(freqs_hz)`` (DC removed), float32.

    ``gain`` maps the rfft frequencies (Hz, float32 array) to amplitude gains (the PSD is its square).
    """
    m = _fft_length(max(2, n))
    # a white Gaussian spectrum drawn directly (the rfft of white noise, without computing it)
    spec = rng.standard_normal((m // 2 + 1, 2), dtype=np.float32).view(np.complex64)[:, 0]
    freqs = np.fft.rfftfreq(m, 1.0 / sample_rate_hz).astype(np.float32)
    spec *= gain(freqs)
    spec[0] = 0.0
    return np.fft.irfft(spec, m)[:n]


def _colored(rng: np.random.Generator, n: int, sample_rate_hz: int, exponent: float) -> np.ndarray:
    """Noise with PSD ~ 1/f**exponent above 20 Hz (flat below it); exponent 0 is white."""
    if exponent == 0:
        x = rng.standard_normal(n, dtype=np.float32)
        return x - x.mean() if n else x
    corner2 = np.float32(_SHAPED_CORNER_HZ ** 2)
    return _shaped_noise(rng, n, sample_rate_hz, lambda f: (f * f + corner2) ** np.float32(-exponent / 4))


def _smooth_random(rng: np.random.Generator, n: int, sample_rate_hz: int, *, low_hz: float, high_hz: float,
                   control_rate_hz: float = 16.0) -> np.ndarray:
    """A slowly varying random curve of ``n`` samples, band-limited to ``low_hz``-``high_hz``, mean 0, std 1.

    Made at ``control_rate_hz`` points per second and linearly interpolated (cheap at any length).
    """
    duration_s = n / sample_rate_hz
    points = max(4, int(math.ceil(duration_s * control_rate_hz)) + 2)
    spec = np.fft.rfft(rng.standard_normal(points))
    freqs = np.fft.rfftfreq(points, 1.0 / control_rate_hz)
    spec[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    curve = np.fft.irfft(spec, points)
    if not np.any(curve):  # a clip too short to hold a 0.1-2 Hz swing: the lowest frequency it holds
        curve = np.cos(2 * np.pi * rng.uniform() + np.arange(points) * (2 * np.pi / points))
    curve = (curve - curve.mean()) / (curve.std() + 1e-12)
    t = np.arange(n, dtype=np.float64) * (control_rate_hz / sample_rate_hz)
    return np.interp(t, np.arange(points, dtype=np.float64), curve).astype(np.float32)


def _silence(rng: np.random.Generator, n: int, sample_rate_hz: int) -> np.ndarray:
    if rng.uniform() < _SILENCE_ZEROS_P:
        return np.zeros(n, dtype=np.float32)
    # TPDF dither (the sum of two uniform draws, +-1 step) of a zero signal, quantized to 16 bits
    tpdf = rng.uniform(-0.5, 0.5, n) + rng.uniform(-0.5, 0.5, n)
    return (np.rint(tpdf) * _LSB).astype(np.float32)


def _wind(rng: np.random.Generator, n: int, sample_rate_hz: int) -> np.ndarray:
    corner_hz = np.float32(rng.uniform(60.0, 200.0))  # rumble roll-off (4th order above it)
    rumble = _shaped_noise(
        rng, n, sample_rate_hz,
        lambda f: 1.0 / np.sqrt((1.0 + (f / corner_hz) ** 8) * (1.0 + (np.float32(8.0) / (f + 1e-3)) ** 4)))
    rumble /= _rms(rumble) or 1.0
    depth = rng.uniform(0.6, 0.9)  # log-amplitude swing: 90th/10th percentile of 100 ms RMS about 11-22 dB
    gusts = np.exp(depth * _smooth_random(rng, n, sample_rate_hz, low_hz=0.1, high_hz=2.0))
    out = rumble * gusts
    # buffeting: a few thumps (a Hann-windowed 15-60 Hz swing of 40-200 ms), stronger where gusts are
    for _ in range(rng.poisson(0.4 * n / sample_rate_hz)):
        length = int(rng.uniform(0.04, 0.2) * sample_rate_hz)
        if length < 2 or length >= n:
            continue
        start = int(rng.integers(0, n - length))
        t = np.arange(length) / sample_rate_hz
        thump = np.hanning(length) * np.sin(2 * np.pi * rng.uniform(15.0, 60.0) * t + rng.uniform(0, 2 * np.pi))
        out[start:start + length] += (rng.uniform(1.5, 3.0) * gusts[start + length // 2] * thump).astype(np.float32)
    return out


def _rain(rng: np.random.Generator, n: int, sample_rate_hz: int) -> np.ndarray:
    rate_per_s = math.exp(rng.uniform(math.log(20.0), math.log(300.0)))
    count = int(rng.poisson(rate_per_s * n / sample_rate_hz))
    max_len = max(1, int(0.010 * sample_rate_hz))
    env = np.zeros(n + max_len, dtype=np.float64)
    if count:
        starts = rng.integers(0, n, count)
        lengths = np.maximum(1, (rng.uniform(0.001, 0.010, count) * sample_rate_hz).astype(np.int64))
        amps = (10.0 ** (rng.uniform(-30.0, 0.0, count) / 20.0)).astype(np.float32)  # log-uniform: a few loud drops
        k = np.arange(max_len)
        for b in range(0, count, 4096):  # in batches: bounded memory for long clips
            s, ln, a = starts[b:b + 4096, None], lengths[b:b + 4096, None], amps[b:b + 4096, None]
            # each drop decays by 40 dB over its length and stops there
            decay = a * np.exp(np.float32(-4.6) * k[None, :].astype(np.float32) / ln.astype(np.float32))
            decay *= k[None, :] < ln
            env += np.bincount((s + k[None, :]).ravel(), weights=decay.ravel(), minlength=env.size)
    env = env[:n]
    # the hiss rides on the drops' broadband carrier, 25 dB below them
    env += (_rms(env) or 1.0) * 10.0 ** (-25.0 / 20.0)
    return env.astype(np.float32) * rng.standard_normal(n, dtype=np.float32)


def _hum(rng: np.random.Generator, n: int, sample_rate_hz: int) -> np.ndarray:
    f0 = float(rng.choice([50.0, 60.0])) * (1.0 + rng.uniform(-0.001, 0.001))  # the grid drifts a little
    top_hz = min(1000.0, 0.45 * sample_rate_hz)
    harmonics = np.arange(1, int(top_hz // f0) + 1)
    slope = rng.uniform(0.7, 1.5)
    amps = harmonics ** -slope * 10.0 ** (rng.normal(0.0, 2.0, harmonics.size) / 20.0)
    amps[1::2] *= rng.uniform(0.3, 1.0)  # even harmonics weaker (a rectifier's odd ones dominate)
    phases = rng.uniform(0.0, 2 * np.pi, harmonics.size)
    # one period as a table, read at the running phase: cheap at any length
    grid = np.arange(2049) / 2048.0  # 0 to 1 inclusive: the table wraps around
    table = (amps[:, None] * np.sin(2 * np.pi * harmonics[:, None] * grid[None, :] + phases[:, None])).sum(axis=0)
    phase = np.arange(n, dtype=np.float64)
    phase *= f0 / sample_rate_hz
    phase += rng.uniform()
    phase -= np.floor(phase)
    hum = np.interp(phase, grid, table).astype(np.float32)
    noise = rng.standard_normal(n, dtype=np.float32)
    noise *= np.float32((_rms(hum) or 1.0) * 10.0 ** (-45.0 / 20.0))
    return hum + noise


def _bouts(rng: np.random.Generator, n: int, sample_rate_hz: int) -> np.ndarray:
    """A caller's on/off gate ``(n,)`` float32: continuous (a third of the callers) or bouts of 2-30 s with
    pauses of 0.2-5 s, 50 ms ramps at the bout edges."""
    if rng.uniform() < 1 / 3:
        return np.ones(n, dtype=np.float32)
    gate = np.zeros(n, dtype=np.float32)
    ramp = max(1, int(0.05 * sample_rate_hz))
    t = -int(rng.uniform(0.0, 30.0) * sample_rate_hz)  # the first bout may have begun before the clip
    while t < n:
        length = int(math.exp(rng.uniform(math.log(2.0), math.log(30.0))) * sample_rate_hz)
        a, b = max(t, 0), min(t + length, n)
        if b > a:
            edge = np.minimum(np.arange(a - t, b - t) + 1, length - np.arange(a - t, b - t)) / ramp
            gate[a:b] = np.minimum(edge, 1.0)
        t += length + int(rng.uniform(0.2, 5.0) * sample_rate_hz)
    return gate


def _log_band(freqs_hz: np.ndarray, *, centre: float, width: float) -> np.ndarray:
    """Amplitude gains of a band ``width`` octaves wide (Gaussian in log frequency) around ``2**centre`` Hz."""
    return np.exp(-0.5 * ((np.log2(freqs_hz + 1.0) - centre) / (width / 2)) ** 2).astype(np.float32)


def _chorus(rng: np.random.Generator, n: int, sample_rate_hz: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / sample_rate_hz
    out = np.zeros(n, dtype=np.float64)
    nyquist = 0.45 * sample_rate_hz
    for _ in range(int(rng.integers(1, 7))):
        f0 = math.exp(rng.uniform(math.log(400.0), math.log(min(8000.0, nyquist))))
        carrier = rng.choice(["tone", "band", "click"], p=[0.4, 0.3, 0.3])
        duty = rng.uniform(0.05, 0.25) if carrier == "click" else rng.uniform(0.2, 0.7)
        if carrier == "tone":
            wander = 1.0 + rng.uniform(0.0, 0.03) * _smooth_random(rng, n, sample_rate_hz, low_hz=0.05, high_hz=1.0)
            phase = 2 * np.pi * np.cumsum(f0 * wander) / sample_rate_hz + rng.uniform(0, 2 * np.pi)
            tone = np.sin(phase)
            for h, amp in ((2, rng.uniform(0.1, 0.6)), (3, rng.uniform(0.0, 0.3))):
                if rng.uniform() < 0.6 and h * f0 < nyquist:
                    tone += amp * np.sin(h * phase)
        else:  # a Gaussian bump in log frequency around f0, `width` octaves wide
            width = float(rng.uniform(0.2, 1.0) if carrier == "band" else rng.uniform(1.0, 3.0))
            centre = math.log2(f0)
            tone = _shaped_noise(rng, n, sample_rate_hz, functools.partial(_log_band, centre=centre, width=width))
            tone = tone.astype(np.float64)
            tone /= _rms(tone) or 1.0
        rate_hz = math.exp(rng.uniform(math.log(4.0), math.log(80.0)))
        cycle = (rate_hz * t + rng.uniform()) % 1.0
        pulses = np.where(cycle < duty, np.sin(np.pi * np.minimum(cycle / duty, 1.0)) ** 2, 0.0)
        gain = 10.0 ** (rng.uniform(-20.0, 0.0) / 20.0)
        out += gain * tone * pulses * _bouts(rng, n, sample_rate_hz)
    bed = _colored(rng, n, sample_rate_hz, 1.0).astype(np.float64)
    out += bed * ((_rms(out) or 1.0) * 10.0 ** (-30.0 / 20.0) / (_rms(bed) or 1.0))
    return out.astype(np.float32)


_MAKERS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "white": lambda rng, n, sr: _colored(rng, n, sr, 0.0),
    "pink": lambda rng, n, sr: _colored(rng, n, sr, 1.0),
    "brown": lambda rng, n, sr: _colored(rng, n, sr, 2.0),
    "wind": _wind,
    "rain": _rain,
    "hum": _hum,
    "chorus": _chorus,
}


def _at_level(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """``x`` scaled to an RMS of ``level_dbfs``; peaks clipped to [-1, 1] if needed, then rescaled (a few rounds)."""
    x = x.astype(np.float64)
    target = 10.0 ** (level_dbfs / 20.0)
    for _ in range(8):
        rms = _rms(x)
        if rms == 0.0:
            break
        x *= target / rms
        if np.max(np.abs(x)) <= 1.0:
            break
        np.clip(x, -1.0, 1.0, out=x)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _check_common(num_samples: object, sample_rate_hz: object, rng: object) -> None:
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
        raise ConfigError(f"num_samples must be a whole number >= 0, got {num_samples!r}")
    if isinstance(sample_rate_hz, bool) or not isinstance(sample_rate_hz, (int, np.integer)) or sample_rate_hz <= 0:
        raise ConfigError(f"sample_rate_hz must be a whole number > 0 (birdspec uses {SAMPLE_RATE_HZ}), "
                          f"got {sample_rate_hz!r}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                          f"got {type(rng).__name__}")


def _check_kind(kind: object) -> None:
    if kind not in BACKGROUND_KINDS:
        raise ConfigError(f"unknown background kind {kind!r}; choose one of {', '.join(BACKGROUND_KINDS)}")


def _check_level(level_dbfs: object, what: str = "level_dbfs") -> float:
    try:
        level = float(level_dbfs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number of dB re full scale (e.g. -40), got {level_dbfs!r}") from None
    if not math.isfinite(level) or level > 0.0:
        raise ConfigError(f"{what} must be a finite RMS level <= 0 dBFS (e.g. -40), got {level_dbfs!r}")
    return level


def synth_background(kind: str, *, num_samples: int, level_dbfs: float, sample_rate_hz: int = SAMPLE_RATE_HZ,
                     rng: np.random.Generator) -> np.ndarray:
    """``num_samples`` of the background ``kind`` (one of :data:`BACKGROUND_KINDS`) at an RMS of ``level_dbfs``.

    Returns a ``(num_samples,)`` float32 array, finite, within [-1, 1]. The RMS is ``level_dbfs`` within
    0.5 dB for levels up to -20 dBFS (above that, clipping the peaks may lower it); ``silence`` ignores
    the level. The same ``rng`` state gives the same array.

    Raises:
        ConfigError: an unknown kind, ``num_samples < 0``, a level that is not finite or above 0 dBFS,
            ``sample_rate_hz <= 0``, or ``rng`` not a ``numpy.random.Generator``.
    """
    _check_kind(kind)
    _check_common(num_samples, sample_rate_hz, rng)
    level = _check_level(level_dbfs)
    n, sr = int(num_samples), int(sample_rate_hz)
    if kind == "silence":
        return _silence(rng, n, sr)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    return _at_level(_MAKERS[kind](rng, n, sr), level)


def random_background(*, num_samples: int, rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ,
                      level_range_dbfs: tuple[float, float] = LEVEL_RANGE_DBFS,
                      kinds: Sequence[str] = BACKGROUND_KINDS) -> tuple[np.ndarray, str, float]:
    """A background of a kind drawn uniformly from ``kinds`` at a level drawn uniformly (in dB) in the range.

    Returns ``(audio, kind, level_dbfs)``: audio ``(num_samples,)`` float32 as :func:`synth_background`
    makes it (for ``silence`` the drawn level is returned but not applied).

    Raises:
        ConfigError: an empty or unknown ``kinds``, a range that is not two finite levels ``low <= high <= 0``,
            or a bad ``num_samples``, ``sample_rate_hz`` or ``rng``.
    """
    _check_common(num_samples, sample_rate_hz, rng)
    if isinstance(kinds, str) or len(kinds) == 0:
        raise ConfigError(f"kinds must be a non-empty sequence of background kinds "
                          f"({', '.join(BACKGROUND_KINDS)}), got {kinds!r}")
    for kind in kinds:
        _check_kind(kind)
    try:
        low, high = level_range_dbfs
    except (TypeError, ValueError):
        raise ConfigError(f"level_range_dbfs must be (low, high) in dBFS, e.g. {LEVEL_RANGE_DBFS}, "
                          f"got {level_range_dbfs!r}") from None
    low, high = _check_level(low, "level_range_dbfs low"), _check_level(high, "level_range_dbfs high")
    if low > high:
        raise ConfigError(f"level_range_dbfs must be (low, high) with low <= high, got {level_range_dbfs!r}")
    kind = str(kinds[int(rng.integers(len(kinds)))])
    level = float(rng.uniform(low, high)) if high > low else low
    audio = synth_background(kind, num_samples=num_samples, level_dbfs=level, sample_rate_hz=sample_rate_hz, rng=rng)
    return audio, kind, level
