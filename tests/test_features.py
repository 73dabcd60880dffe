"""The log-mel frontend: shapes, known answers, agreement with librosa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birdspec.config import FrontendConfig
from birdspec.errors import ConfigError
from birdspec.features import Frontend, mel_band_of, mel_filterbank

from helpers import tone


def test_five_seconds_give_128_by_321():
    fe = Frontend()
    out = fe(torch.zeros(2, 10, 160_000))
    assert out.shape == (2, 10, 128, 321)
    assert FrontendConfig().num_frames(160_000) == 321


@pytest.mark.parametrize("freq_hz", [300.0, 1000.0, 2500.0, 5000.0, 9000.0, 13000.0])
def test_tone_peaks_in_its_mel_band(freq_hz):
    cfg = FrontendConfig()
    spec = Frontend(cfg)(torch.from_numpy(tone(freq_hz, duration_s=1.0)))
    peak_band = int(spec[:, 5:-5].mean(dim=1).argmax())
    expected = mel_band_of(freq_hz, n_mels=cfg.n_mels, fmin_hz=cfg.fmin_hz, fmax_hz=cfg.fmax_hz)
    assert abs(peak_band - expected) <= 1


def test_band_edges_respect_fmin_fmax():
    cfg = FrontendConfig()
    fb = mel_filterbank(sample_rate_hz=cfg.sample_rate_hz, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                        fmin_hz=cfg.fmin_hz, fmax_hz=cfg.fmax_hz)
    freqs = np.linspace(0, cfg.sample_rate_hz / 2, cfg.n_fft // 2 + 1)
    used = freqs[fb.sum(axis=0) > 0]
    assert used.min() >= cfg.fmin_hz - freqs[1] and used.max() <= cfg.fmax_hz + freqs[1]


def test_matches_librosa():
    librosa = pytest.importorskip("librosa")
    cfg = FrontendConfig()
    rng = np.random.default_rng(0)
    wave = (tone(2000.0, duration_s=2.0) + 0.05 * rng.standard_normal(64_000)).astype(np.float32)
    ref = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=wave, sr=cfg.sample_rate_hz, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.fmin_hz, fmax=cfg.fmax_hz, center=True, pad_mode="constant", power=2.0,
        ),
        ref=1.0, amin=cfg.amin, top_db=cfg.top_db,
    )
    ours = Frontend(cfg)(torch.from_numpy(wave)).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-2, rtol=0)


def test_batch_equals_single_and_top_db_floor():
    fe = Frontend()
    a = torch.from_numpy(tone(1000.0, duration_s=1.0))
    b = torch.from_numpy(tone(3000.0, duration_s=1.0, amplitude=0.01))
    both = fe(torch.stack([a, b]))
    torch.testing.assert_close(both[0], fe(a))
    torch.testing.assert_close(both[1], fe(b))
    for spec in both:
        assert float(spec.max() - spec.min()) <= 80.0 + 1e-3


def test_frontend_ignores_autocast():
    fe = Frontend()
    x = torch.from_numpy(tone(1000.0, duration_s=0.5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fe(x)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("bad", [dict(fmin_hz=20000.0), dict(n_mels=0), dict(top_db=-1.0), dict(win_length=4096)])
def test_bad_config_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        FrontendConfig(**bad)
