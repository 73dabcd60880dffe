"""Spectrogram types: one definition each, known answers, librosa agreement, and every path agreeing
(torch.stft, the ONNX DFT, the NumPy CPU path), through training, prediction and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birdspec.config import FRONTENDS, FrontendConfig
from birdspec.errors import ConfigError
from birdspec.features import Frontend, tables
from birdspec.features.numpy_frontend import NumpyFrontend

from helpers import tone

SR = 32000
SHAPES_5S = {"logmel": (128, 321), "pcen": (128, 321), "linear": (224, 321), "mfcc": (40, 321), "learnable-mel": (128, 321)}
"""Rows x frames of one 5 s window per type, with the defaults (documented in FrontendConfig)."""
TOLERANCE = {"logmel": 2e-3, "learnable-mel": 2e-3, "linear": 5e-3, "mfcc": 5e-3, "pcen": 1e-3}


def field_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (3000 + 1500 * np.sin(2 * np.pi * 0.7 * t)) * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (chirp + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("kind", FRONTENDS)
def test_shape_of_a_5s_window(kind):
    cfg = FrontendConfig.for_kind(kind)
    out = Frontend(cfg)(torch.zeros(2, 1, 5 * SR))
    assert tuple(out.shape[-2:]) == SHAPES_5S[kind] == (cfg.num_bins(), cfg.num_frames(5 * SR))


@pytest.mark.parametrize("kind", FRONTENDS)
def test_every_path_agrees(kind):
    """torch.stft (training), the DFT convolution (ONNX export) and NumPy (CPU prediction): one definition."""
    cfg = FrontendConfig.for_kind(kind)
    x = field_like(3.0).reshape(3, SR)
    fe = Frontend(cfg)
    with torch.no_grad():
        ref = fe(torch.from_numpy(x)).numpy()
        dft = Frontend(cfg, stft="dft")(torch.from_numpy(x)).numpy()
    fast = NumpyFrontend(cfg, window=fe.window.numpy(), filterbank=fe.full_filterbank(), threads=2)(x)
    assert ref.shape == dft.shape == fast.shape == (3, cfg.num_bins(), cfg.num_frames(SR))
    assert np.abs(dft - ref).max() < TOLERANCE[kind]
    assert np.abs(fast - ref).max() < TOLERANCE[kind]


def test_linear_tone_lands_in_its_bin():
    cfg = FrontendConfig.for_kind("linear")
    spec = Frontend(cfg)(torch.from_numpy(tone(4000.0, duration_s=1.0)))
    lo, _hi = cfg.linear_bins()
    freqs, unit = tables.frequency_axis(cfg)
    peak = int(spec.mean(dim=-1).argmax())
    assert unit == "Hz" and freqs[peak] == pytest.approx(4000.0) and peak + lo == round(4000 * cfg.n_fft / SR)


def test_pcen_tone_onset_band_and_stationary_noise_flattened():
    cfg = FrontendConfig.for_kind("pcen")
    rng = np.random.default_rng(0)
    white = 0.05 * rng.standard_normal(2 * SR).astype(np.float32)
    wave = white.copy()
    wave[SR:] += tone(2500.0, duration_s=1.0)
    spec = Frontend(cfg)(torch.from_numpy(wave)).numpy()
    band = tables.mel_band_of(2500.0, n_mels=cfg.n_mels, fmin_hz=cfg.fmin_hz, fmax_hz=cfg.fmax_hz)
    onset = spec[:, 64:72].mean(axis=1)  # just after the tone starts at 1 s (frame 64)
    assert abs(int(onset.argmax()) - band) <= 1
    # stationary coloured noise: dB keeps its slope, PCEN's adaptive gain makes every band about equal
    brown = np.cumsum(rng.standard_normal(2 * SR)).astype(np.float32)
    brown = 0.05 * brown / np.abs(brown).max()
    pcen = Frontend(cfg)(torch.from_numpy(brown)).numpy()[:, 20:-20].mean(axis=1)
    db = Frontend(FrontendConfig())(torch.from_numpy(brown)).numpy()[:, 20:-20].mean(axis=1)
    assert db.max() - db.min() > 30.0
    assert pcen.std() < 0.2 * pcen.mean()


def test_mfcc_of_a_flat_log_mel_is_its_first_coefficient():
    from birdspec.features.definition import NUMPY_OPS, finish

    cfg = FrontendConfig.for_kind("mfcc", top_db=None)
    energies = np.full((cfg.n_mels, 7), 1e-3, dtype=np.float32)  # -30 dB in every band
    coef = finish(NUMPY_OPS, energies, cfg, dct=tables.dct_matrix(cfg.n_mfcc, cfg.n_mels))
    assert coef[0] == pytest.approx(np.full(7, -30.0 * np.sqrt(cfg.n_mels)), rel=1e-5)
    assert np.abs(coef[1:]).max() < 1e-3


def test_pcen_matches_librosa():
    librosa = pytest.importorskip("librosa")
    cfg = FrontendConfig.for_kind("pcen")
    fe = Frontend(cfg)
    x = torch.from_numpy(field_like(2.0))
    with torch.no_grad():
        energies = torch.matmul(fe.filterbank(), fe.power_spectrogram(x)).numpy().astype(np.float64)
        ours = fe(x).numpy()
    scipy_signal = pytest.importorskip("scipy.signal")
    e = energies * cfg.pcen_input_scale
    b = tables.pcen_coefficient(cfg)
    zi = scipy_signal.lfilter_zi([b], [1, b - 1]) * e[:, :1]  # the smoother starts in its steady state on frame 0
    ref = librosa.pcen(e, sr=SR, hop_length=cfg.hop_length, gain=cfg.pcen_gain, bias=cfg.pcen_bias,
                       power=cfg.pcen_power, time_constant=cfg.pcen_time_constant_s, eps=cfg.pcen_eps, zi=zi)
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=2e-3)


def test_mfcc_matches_librosa():
    librosa = pytest.importorskip("librosa")
    cfg = FrontendConfig.for_kind("mfcc")
    x = field_like(2.0)
    ours = Frontend(cfg)(torch.from_numpy(x)).numpy()
    mel = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=SR, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                         n_mels=cfg.n_mels, fmin=cfg.fmin_hz, fmax=cfg.fmax_hz, center=True,
                                         pad_mode="constant", power=2.0)
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=cfg.top_db), n_mfcc=cfg.n_mfcc,
                               dct_type=2, norm="ortho")
    np.testing.assert_allclose(ours, ref, atol=0.05)  # dB-scale coefficients; ~1e-3 typical


def test_linear_matches_librosa_stft():
    librosa = pytest.importorskip("librosa")
    cfg = FrontendConfig.for_kind("linear")
    x = field_like(2.0)
    ours = Frontend(cfg)(torch.from_numpy(x)).numpy()
    lo, hi = cfg.linear_bins()
    power = np.abs(librosa.stft(x.astype(np.float64), n_fft=cfg.n_fft, hop_length=cfg.hop_length, center=True,
                                pad_mode="constant")) ** 2
    ref = librosa.power_to_db(power[lo:hi], ref=1.0, amin=cfg.amin, top_db=None)
    ref = np.maximum(ref, ref.max() - cfg.top_db)
    np.testing.assert_allclose(ours, ref, atol=0.02)


def test_learnable_filterbank_trains_and_stays_non_negative():
    fe = Frontend(FrontendConfig.for_kind("learnable-mel"))
    assert [n for n, _ in fe.named_parameters()] == ["weights"] and "weights" in fe.state_dict()
    with torch.no_grad():  # starts as the log-mel
        x = torch.from_numpy(field_like(1.0))
        assert torch.allclose(fe(x), Frontend(FrontendConfig())(x), atol=1e-4)
    loss = fe(x).mean()
    loss.backward()
    assert fe.weights.grad is not None and fe.weights.grad.abs().sum() > 0
    with torch.no_grad():
        fe.weights.mul_(-1.0)
    assert (fe.filterbank() >= 0).all()
    assert "weights" not in Frontend(FrontendConfig()).state_dict()  # fixed types keep checkpoints unchanged


def test_options_and_errors():
    assert FrontendConfig.for_kind("pcen", pcen_gain=0.9).pcen_gain == 0.9
    assert FrontendConfig().with_kind("linear").n_fft == 512 and FrontendConfig().with_kind("linear", n_fft=1024).n_fft == 1024
    with pytest.raises(ConfigError, match="unknown frontend option"):
        FrontendConfig.for_kind("pcen", pcen_gian=0.9)
    with pytest.raises(ConfigError, match="unknown frontend"):
        FrontendConfig.for_kind("cqt")
    with pytest.raises(ConfigError, match="n_mfcc"):
        FrontendConfig.for_kind("mfcc", n_mfcc=500)


@pytest.mark.parametrize("kind", FRONTENDS)
def test_train_predict_export_every_type(kind, fast_dataset, tmp_path):
    """`birdspec train --frontend KIND`, then predict and export with no further flag; ONNX matches PyTorch."""
    import json

    import pandas as pd

    from birdspec.cli.main import main
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.prediction.predictor import Predictor

    from helpers import class_signal, write_audio

    run = tmp_path / "run"
    opts = ["--frontend-option", "n_mfcc=20"] if kind == "mfcc" else []
    assert main(["-q", "train", str(fast_dataset), "--model", "mobilenetv2-seed", "--frontend", kind, *opts, "--epochs", "1",
                 "--batch-size", "8", "--device", "cpu", "--workers", "0", "--encoding-override", "window",
                 "--no-progress", "--out", str(run)]) == 0
    ckpt = read_checkpoint(run)
    assert ckpt.frontend.kind == kind and (kind != "mfcc" or ckpt.frontend.n_mfcc == 20)
    wav = write_audio(tmp_path / "r.wav", np.concatenate([class_signal(k, duration_s=2.0, seed=k) for k in range(3)]), SR)
    assert main(["-q", "predict", str(run), str(wav), "--scores", "all", "--out", str(tmp_path / "p.csv"), "--no-progress"]) == 0
    fast = pd.read_csv(tmp_path / "p.csv")[list(ckpt.classes)].to_numpy()
    ref = Predictor(run, backend="torch", scores="all").predict_file(wav)[list(ckpt.classes)].to_numpy()
    np.testing.assert_allclose(fast, ref, atol=2e-3)
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["frontend"]["kind"] == kind and side["check"]["max_abs_logit_diff"] <= 1e-4
