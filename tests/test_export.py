"""`birdspec export`: the waveform-to-logits model as ONNX / TorchScript matches PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_predict import CLASSES, write_checkpoint

from birdspec.cli.main import main
from birdspec.config import EncodingConfig, FrontendConfig
from birdspec.features import Frontend
from birdspec.models.checkpoint import read_checkpoint
from birdspec.prediction.export import check_waveforms, export_checkpoint

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def window_ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("exp") / "w.pt", EncodingConfig(name="window", window_s=5.0, short_policy="pad"))


def _real_or_none():
    from helpers import shared_data_dir

    d = shared_data_dir()
    p = d / "recordings" / "XC563936-soundscape.mp3" if d else None
    return p if p is not None and p.is_file() else None


@pytest.mark.parametrize(
    "cfg",
    [FrontendConfig(), FrontendConfig(pad_mode="reflect", win_length=1536, power=1.0, top_db=None, fmax_hz=16000.0)],
)
def test_dft_frontend_matches_stft(cfg):
    fe = Frontend(cfg)
    x, _ = check_waveforms(channels=1, window_samples=32000, audio=_real_or_none(), batch=2)
    x = torch.from_numpy(x[:, 0])
    with torch.no_grad():
        ref = fe(x)
        got = Frontend(cfg, stft="dft")(x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-3  # dB


@pytest.fixture(scope="module")
def band_ckpt(tmp_path_factory):
    enc = EncodingConfig(name="window", window_s=5.0, short_policy="pad")
    return write_checkpoint(tmp_path_factory.mktemp("exp") / "b.pt", enc, seed=2, input_norm="band")


@pytest.mark.parametrize("ckpt_fixture", ["window_ckpt", "band_ckpt"])
def test_onnx_export_matches_torch(ckpt_fixture, tmp_path, request):
    window_ckpt = request.getfixturevalue(ckpt_fixture)
    audio = _real_or_none()
    out = tmp_path / "model.onnx"
    res = export_checkpoint(window_ckpt, fmt="onnx", out=out, check_audio=audio)
    assert res.max_abs_diff <= 1e-4
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["classes"] == CLASSES and meta["encoding"]["name"] == "window"
    assert meta["frontend"]["n_mels"] == 128 and meta["input"]["shape"] == ["batch", 1, 160000]
    assert meta["class_info"][0]["common_name"] == "Great Reed Warbler"
    # independent check: dynamic batch of 3, against the PyTorch model with torch.stft
    x, _ = check_waveforms(channels=1, window_samples=160000, audio=audio, batch=3)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits, scores = session.run(["logits", "scores"], {"waveform": x})
    model = read_checkpoint(window_ckpt).build_model()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert logits.shape == (3, len(CLASSES))
    assert np.abs(logits - ref).max() <= 1e-4
    assert np.abs(ref).max() > 0.1  # not a trivially tiny output
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_stack10_onnx_and_torchscript_via_cli(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "s.pt", EncodingConfig(name="stack10", num_windows=3, window_s=1.0, short_policy="pad"))
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "s.onnx")]) == 0
    assert "max |logit difference|" in capsys.readouterr().out
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["input"]["shape"] == ["batch", 3, 32000] and meta["check"]["max_abs_logit_diff"] <= 1e-4
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "s.pt2")]) == 0
    loaded = torch.jit.load(str(tmp_path / "s.pt2"))
    x = torch.from_numpy(check_waveforms(channels=3, window_samples=32000, batch=4)[0])
    model = read_checkpoint(ckpt).build_model()
    with torch.no_grad():
        assert (loaded(x)[0] - model(x)).abs().max().item() <= 1e-4
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
