"""Synthetic no-bird backgrounds: shape, level, spectrum and texture of every kind, with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from birdspec.data.backgrounds import BACKGROUND_KINDS, LEVEL_RANGE_DBFS, random_background, synth_background
from birdspec.errors import ConfigError

SR = 32_000
N = 5 * SR
LOUD_KINDS = [k for k in BACKGROUND_KINDS if k != "silence"]


def _make(kind: str, seed: int = 0, level: float = -30.0, n: int = N, sr: int = SR) -> np.ndarray:
    return synth_background(kind, num_samples=n, level_dbfs=level, sample_rate_hz=sr, rng=np.random.default_rng(seed))


def _dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-30))


def _psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return welch(x.astype(np.float64), fs=SR, nperseg=4096)


def _slope_db_per_octave(x: np.ndarray) -> float:
    f, p = _psd(x)
    band = (f >= 100) & (f <= 8000)
    return float(np.polyfit(np.log2(f[band]), 10 * np.log10(p[band]), 1)[0])


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_every_kind_is_float32_finite_bounded_and_deterministic(kind):
    x = _make(kind, seed=3, level=-20.0)
    assert x.dtype == np.float32 and x.shape == (N,)
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
    assert np.array_equal(x, _make(kind, seed=3, level=-20.0))
    if kind == "silence":  # a quarter of the silences are exact zeros: some seed among a few differs
        assert any(not np.array_equal(x, _make(kind, seed=s)) for s in range(4, 10))
    else:
        assert not np.array_equal(x, _make(kind, seed=4, level=-20.0))


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
@pytest.mark.parametrize("n", [0, 1, 37, 1001, 32_003])
def test_odd_lengths_and_rates(kind, n):
    x = _make(kind, n=n, sr=22_050, level=-20.0)
    assert x.dtype == np.float32 and x.shape == (n,)
    assert np.all(np.isfinite(x)) and (n == 0 or np.max(np.abs(x)) <= 1.0)


@pytest.mark.parametrize("kind", LOUD_KINDS)
@pytest.mark.parametrize("level", [-90.0, -50.0, -20.0])
def test_rms_equals_the_level(kind, level):
    for seed in range(2):
        assert abs(_dbfs(_make(kind, seed=seed, level=level)) - level) < 0.5


def test_silence_is_dither_or_zeros_far_below_any_level():
    draws = [_make("silence", seed=s, level=-20.0) for s in range(12)]
    zeros = sum(not np.any(x) for x in draws)
    assert 0 < zeros < len(draws)  # both happen (p = 0.25)
    for x in draws:
        assert _dbfs(x) < -85.0
        assert np.allclose(x * 32768, np.rint(x * 32768))  # 16-bit steps
        assert np.max(np.abs(x)) <= 1 / 32768


@pytest.mark.parametrize("kind, slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_colored_noise_slopes(kind, slope):
    for seed in range(2):
        x = _make(kind, seed=seed)
        assert abs(_slope_db_per_octave(x) - slope) < 1.0
        assert abs(float(np.mean(x))) < 1e-3 * np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-6  # no DC


def test_colored_noise_is_stationary():
    for kind in ("white", "pink", "brown"):
        halves = np.split(_make(kind, seed=5), 2)
        assert abs(_dbfs(halves[0]) - _dbfs(halves[1])) < 1.5


def test_wind_is_low_and_gusty():
    for seed in range(4):
        x = _make("wind", seed=seed).astype(np.float64)
        f, p = _psd(x)
        assert p[f < 500].sum() / p.sum() >= 0.8
        frames = x[: x.size // 3200 * 3200].reshape(-1, 3200)  # 100 ms
        rms = np.sqrt(np.mean(frames ** 2, axis=1))
        assert 20 * np.log10(np.percentile(rms, 90) / np.percentile(rms, 10)) > 6.0


def test_hum_peaks_at_the_mains_frequency_or_a_harmonic():
    fundamentals = set()
    for seed in range(6):
        x = _make("hum", seed=seed)
        f, p = _psd(x)
        peak_hz = f[np.argmax(p)]
        f0 = min((50.0, 60.0), key=lambda m: abs(peak_hz / m - round(peak_hz / m)))
        assert peak_hz < 1000 and abs(peak_hz - f0 * round(peak_hz / f0)) < 2 * (f[1] - f[0])
        near_f0 = p[np.abs(f - f0) < 2 * (f[1] - f[0])].max()
        assert 10 * np.log10(near_f0 / np.median(p)) > 30  # the fundamental stands far above the floor
        assert p[f > 1500].sum() / p.sum() < 1e-3  # nothing much above 1 kHz
        fundamentals.add(f0)
    assert fundamentals == {50.0, 60.0}


def test_rain_is_impulsive():
    for seed in range(4):
        for level in (-50.0, -20.0):
            x = _make("rain", seed=seed, level=level).astype(np.float64)
            assert np.max(np.abs(x)) / np.sqrt(np.mean(x ** 2)) > 5.0


def test_chorus_is_a_steady_pulse_train():
    """A frog or insect chorus: its envelope is modulated at a pulse rate of 4-80 Hz, far above the
    envelope's faster fluctuations (white noise's envelope has no such peak)."""
    def peak_ratio(x: np.ndarray) -> tuple[float, float]:
        env = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(64) / 64, mode="same"))[::32]  # 1 kHz
        power = np.abs(np.fft.rfft(env - env.mean())) ** 2
        f = np.fft.rfftfreq(env.size, 1 / 1000)
        pulses, fast = (f >= 3.5) & (f <= 85), (f > 85) & (f < 400)
        return float(f[pulses][power[pulses].argmax()]), float(power[pulses].max() / np.median(power[fast]))

    for seed in range(6):
        rate, ratio = peak_ratio(_make("chorus", seed=seed))
        assert 3.5 <= rate <= 85 and ratio > 1000, (seed, rate, ratio)
    assert peak_ratio(_make("white"))[1] < 100


def test_random_background_covers_every_kind_within_the_range():
    rng = np.random.default_rng(11)
    seen, levels = set(), []
    for _ in range(80):
        x, kind, level = random_background(num_samples=800, rng=rng)
        assert x.shape == (800,) and x.dtype == np.float32 and kind in BACKGROUND_KINDS
        seen.add(kind)
        levels.append(level)
        if kind != "silence":
            assert abs(_dbfs(x) - level) < 0.5
    assert seen == set(BACKGROUND_KINDS)
    assert LEVEL_RANGE_DBFS[0] <= min(levels) and max(levels) <= LEVEL_RANGE_DBFS[1]
    x, kind, level = random_background(num_samples=10, rng=rng, kinds=["hum"], level_range_dbfs=(-40.0, -40.0))
    assert (kind, level) == ("hum", -40.0)
    a = random_background(num_samples=500, rng=np.random.default_rng(2), level_range_dbfs=(-60.0, -30.0))
    b = random_background(num_samples=500, rng=np.random.default_rng(2), level_range_dbfs=(-60.0, -30.0))
    assert a[1:] == b[1:] and np.array_equal(a[0], b[0]) and -60.0 <= a[2] <= -30.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "thunder"}, "silence, white, pink"),
        ({"num_samples": -1}, "num_samples"),
        ({"num_samples": 2.5}, "num_samples"),
        ({"level_dbfs": float("nan")}, "level_dbfs"),
        ({"level_dbfs": float("inf")}, "level_dbfs"),
        ({"level_dbfs": 3.0}, "level_dbfs"),
        ({"sample_rate_hz": 0}, "sample_rate_hz"),
        ({"rng": 0}, "Generator"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    args = {"kind": "white", "num_samples": 100, "level_dbfs": -30.0, "rng": np.random.default_rng(0)} | kwargs
    kind = args.pop("kind")
    with pytest.raises(ConfigError, match=match):
        synth_background(kind, **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kinds": ["white", "fog"]}, "choose one of"),
        ({"kinds": []}, "non-empty"),
        ({"level_range_dbfs": (-20.0, -40.0)}, "low <= high"),
        ({"level_range_dbfs": (-40.0, float("nan"))}, "level_range_dbfs"),
        ({"level_range_dbfs": (-40.0,)}, "level_range_dbfs"),
        ({"num_samples": -5}, "num_samples"),
    ],
)
def test_random_background_bad_arguments(kwargs, match):
    args = {"num_samples": 100, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ConfigError, match=match):
        random_background(**args)
