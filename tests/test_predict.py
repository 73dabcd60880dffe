"""Prediction: the fast runtime against the PyTorch model, streaming, stack10 contexts, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from birdspec import audio
from birdspec.cli.main import main
from birdspec.config import EncodingConfig, FrontendConfig
from birdspec.errors import AudioError, ConfigError, DataError
from birdspec.features import Frontend
from birdspec.features.numpy_frontend import NumpyFrontend
from birdspec.formats import RAVEN_COLUMNS
from birdspec.models.checkpoint import make_checkpoint, read_checkpoint, save_checkpoint
from birdspec.models.registry import build_model
from birdspec.prediction import predictor as predictor_mod
from birdspec.prediction.predictor import Predictor
from birdspec.windowing import clip_times, context_starts, fit_window

from helpers import class_signal, write_audio

SR = 32000
W = 5 * SR
CLASSES = ["grrwar1", "blrwar1", "marwar3", "sedwar1"]
CLASS_INFO = [
    {"label": "grrwar1", "scientific_name": "Acrocephalus arundinaceus", "common_name": "Great Reed Warbler"},
    {"label": "blrwar1", "scientific_name": "Acrocephalus dumetorum", "common_name": "Blyth's Reed Warbler"},
    {"label": "marwar3", "scientific_name": "Acrocephalus palustris", "common_name": "Marsh Warbler"},
    {"label": "sedwar1", "scientific_name": "Acrocephalus schoenobaenus", "common_name": "Sedge Warbler"},
]


def calibrated_model(
    encoding: EncodingConfig, *, name: str = "mobilenetv2-seed", seed: int = 0, input_norm: str = "instance"
) -> nn.Module:
    """An untrained model whose batch norms are calibrated on synthetic audio, so scores depend on the input."""
    torch.manual_seed(seed)
    opts = {"width_mult": 0.5} if name.startswith("mobilenet") else {}
    model = build_model(name, in_channels=encoding.in_channels, num_classes=len(CLASSES), options=opts, input_norm=input_norm)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    rng = np.random.default_rng(seed)
    t = np.arange(W) / SR
    cal = np.stack(
        [0.1 * (k % 3) * rng.standard_normal(W) + 0.3 * np.sin(2 * np.pi * (1000 + 700 * k) * t) for k in range(8)]
    ).astype(np.float32)
    x = torch.from_numpy(np.repeat(cal[:, None], encoding.in_channels, axis=1))
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data *= 20.0  # spread the softmax
    return model


def write_checkpoint(path: Path, encoding: EncodingConfig, **kw) -> Path:
    model = calibrated_model(encoding, **kw)
    ckpt = make_checkpoint(
        model, model_config=model.config, classes=CLASSES, class_info=CLASS_INFO, frontend=FrontendConfig(), encoding=encoding
    )
    return save_checkpoint(ckpt, path)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def window_ckpt(tmp_path_factory) -> Path:
    enc = EncodingConfig(name="window", window_s=5.0, short_policy="pad")
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "window.pt", enc)


@pytest.fixture(scope="session")
def band_ckpt(tmp_path_factory) -> Path:
    enc = EncodingConfig(name="window", window_s=5.0, short_policy="pad")
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "band.pt", enc, seed=2, input_norm="band")


@pytest.fixture(scope="session")
def stack_ckpt(tmp_path_factory) -> Path:
    enc = EncodingConfig(name="stack10", num_windows=10, window_s=5.0, short_policy="tile")
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "stack.pt", enc, seed=1)


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch, cache_dir):
    monkeypatch.setenv("BIRDSPEC_CACHE_DIR", str(cache_dir))


def reference_scores(ckpt_path: Path, inputs: np.ndarray) -> np.ndarray:
    """Softmax of the PyTorch model (torch.stft frontend) on ``inputs`` (B, C, T)."""
    model = read_checkpoint(ckpt_path).build_model()
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(inputs)), dim=1).numpy()


def synthetic(duration_s: float, seed: int = 0) -> np.ndarray:
    parts = [class_signal(k % 4, duration_s=duration_s / 4, seed=seed + k) for k in range(4)]
    return np.concatenate(parts)[: int(round(duration_s * SR))]


# --------------------------------------------------------------------------- runtime pieces


@pytest.mark.parametrize(
    "cfg",
    [
        FrontendConfig(),
        FrontendConfig(pad_mode="reflect", win_length=1600, top_db=None),
        FrontendConfig(power=1.0, n_mels=64, fmax_hz=16000.0, hop_length=320),
    ],
)
def test_numpy_logmel_matches_torch_frontend(cfg):
    fe = Frontend(cfg)
    x = synthetic(3.0).reshape(3, SR)
    fast = NumpyFrontend(cfg, window=fe.window.numpy(), filterbank=fe.full_filterbank(), threads=2)
    with torch.no_grad():
        ref = fe(torch.from_numpy(x)).numpy()
    got = fast(x)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-3)  # dB; typically ~1e-5


@pytest.mark.parametrize("kind", ["instance", "band", "level", "none"])
def test_input_norm_numpy_matches_torch(kind):
    """One definition (birdspec.features.input_norm), two array libraries: the same numbers."""
    from birdspec.config import FrontendConfig
    from birdspec.features.input_norm import NUMPY_NORM_OPS, fit_level, norm_settings, normalise
    from birdspec.models.registry import InputNorm

    x = np.random.default_rng(0).standard_normal((3, 128, 321)).astype(np.float32) * 20 - 30
    x += np.linspace(-20, 20, 128, dtype=np.float32)[:, None]  # a coloured background
    settings = fit_level(norm_settings(kind, FrontendConfig()), x, what="test")
    ref = InputNorm(settings)(torch.from_numpy(x)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(normalise(NUMPY_NORM_OPS, x.copy(), settings), ref, atol=1e-5)
    if kind in ("band", "level"):  # every band's median over time is the same value (its noise floor removed)
        med = np.median(ref, axis=2)
        np.testing.assert_allclose(med, med[:, :1].repeat(128, axis=1), atol=1e-5)
    if kind == "level":  # fitted to these maps: about zero mean and unit variance on them
        assert abs(float(ref.mean())) < 1e-3 and float(ref.std()) == pytest.approx(1.0, rel=1e-3)


# --------------------------------------------------------------------------- window encoding


@pytest.mark.parametrize("ckpt_fixture", ["window_ckpt", "band_ckpt"])
def test_window_scores_match_pytorch_model(ckpt_fixture, cache_dir, request):
    window_ckpt = request.getfixturevalue(ckpt_fixture)
    wave = synthetic(23.4)  # 4 full windows + a 3.4 s tail, scored on the last 5 s of audio
    windows = np.stack([wave[a : a + W] for a in [*range(0, 4 * W, W), len(wave) - W]])
    ref = reference_scores(window_ckpt, windows[:, None])
    for backend in ("onnx", "torch"):
        p = Predictor(window_ckpt, backend=backend, scores="all", cache_dir=cache_dir)
        assert p.backend == backend
        df = p.predict_array(wave, SR)
        assert df["start_s"].tolist() == [0, 5, 10, 15, 20]
        assert df["end_s"].tolist() == pytest.approx([5, 10, 15, 20, 23.4])
        np.testing.assert_allclose(df[CLASSES].to_numpy(), ref, atol=1e-4)
        np.testing.assert_allclose(df[CLASSES].sum(axis=1), 1.0, atol=1e-5)  # softmax
    assert ref.std(axis=0).max() > 1e-3  # the scores do depend on the audio


def test_topk_rows(window_ckpt, cache_dir):
    wave = synthetic(20.0)
    p = Predictor(window_ckpt, top_k=2, min_conf=0.2, cache_dir=cache_dir)
    df = p.predict_array(wave, SR, name="x.wav")
    assert list(df.columns) == ["file", "window", "start_s", "end_s", "rank", "label", "scientific_name", "common_name", "confidence"]
    assert (df["confidence"] >= 0.2).all()
    assert df.groupby("window").size().max() <= 2
    for _w, g in df.groupby("window"):
        assert g["rank"].tolist() == list(range(1, len(g) + 1))
        assert g["confidence"].is_monotonic_decreasing
    row = df.iloc[0]
    assert row["common_name"] == next(c["common_name"] for c in CLASS_INFO if c["label"] == row["label"])
    wide = Predictor(window_ckpt, scores="all", cache_dir=cache_dir).predict_array(wave, SR)
    best = wide[CLASSES].to_numpy().argmax(axis=1)
    top1 = df[df["rank"] == 1].set_index("window")["label"]
    assert all(CLASSES[best[w]] == lab for w, lab in top1.items())


def test_streaming_equals_predict_array(window_ckpt, cache_dir, tmp_path, monkeypatch):
    wave = synthetic(47.3, seed=3)
    path = write_audio(tmp_path / "rec.flac", wave, SR)
    decoded = audio.load(path)
    monkeypatch.setattr(predictor_mod, "DECODE_BLOCK_S", 3.3)  # windows straddle decode blocks
    p = Predictor(window_ckpt, scores="all", cache_dir=cache_dir, batch_size=3)
    streamed = p.predict_file(path)
    whole = p.predict_array(decoded, SR)
    assert len(streamed) == len(clip_times(duration_s=47.3)) == 10
    np.testing.assert_allclose(streamed[CLASSES].to_numpy(), whole[CLASSES].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(streamed["end_s"], whole["end_s"])


def test_streaming_equals_predict_array_on_real_audio(shared_data, window_ckpt, cache_dir, monkeypatch):
    monkeypatch.setattr(predictor_mod, "DECODE_BLOCK_S", 7.0)
    p = Predictor(window_ckpt, scores="all", cache_dir=cache_dir)
    path = shared_data / "recordings" / "osm-1min.flac"  # 32 kHz: the very same samples
    np.testing.assert_allclose(
        p.predict_file(path)[CLASSES].to_numpy(), p.predict_array(audio.load(path), SR)[CLASSES].to_numpy(), atol=1e-6
    )
    toad = shared_data / "recordings" / "osm-great_plains_toad.flac"  # 44.1 kHz: streamed vs one-shot resampling
    a, b = p.predict_file(toad), p.predict_array(audio.load(toad), SR)
    assert len(a) == len(b)
    np.testing.assert_allclose(a[CLASSES].to_numpy(), b[CLASSES].to_numpy(), atol=1e-3)


def test_predict_array_resamples(window_ckpt, cache_dir):
    wave32 = synthetic(12.0)
    wave16 = audio.resample(wave32, orig_sample_rate_hz=SR, sample_rate_hz=16000)
    p = Predictor(window_ckpt, scores="all", cache_dir=cache_dir)
    a = p.predict_array(wave16, 16000)
    b = p.predict_array(audio.resample(wave16, orig_sample_rate_hz=16000, sample_rate_hz=SR), SR)
    np.testing.assert_allclose(a[CLASSES].to_numpy(), b[CLASSES].to_numpy(), atol=1e-6)
    stereo = p.predict_array(np.stack([wave32, wave32]), SR)
    np.testing.assert_allclose(stereo[CLASSES].to_numpy(), p.predict_array(wave32, SR)[CLASSES].to_numpy(), atol=1e-6)


# --------------------------------------------------------------------------- stack10


def test_stack10_centred_context_matches_model(stack_ckpt, cache_dir):
    wave = synthetic(62.0, seed=5)  # 12 full windows + a 2 s tail (tiled: the checkpoint's short_policy)
    n = 13
    grid = [fit_window(wave[k * W : (k + 1) * W], length=W, fill="tile") for k in range(n)]
    starts = context_starts(num_windows=n, context_windows=10, stride=1)
    assert starts.tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3]
    ref = reference_scores(stack_ckpt, np.stack([np.stack(grid[s : s + 10]) for s in starts]))
    for backend in ("onnx", "torch"):
        p = Predictor(stack_ckpt, backend=backend, scores="all", cache_dir=cache_dir, batch_size=4)
        df = p.predict_array(wave, SR)
        assert len(df) == n
        np.testing.assert_allclose(df[CLASSES].to_numpy(), ref, atol=1e-4)
        assert df["context_start_s"].tolist() == [5.0 * s for s in starts]
        assert df["context_end_s"].tolist() == pytest.approx([min(5.0 * s + 50, 62.0) for s in starts])
    trailing = Predictor(stack_ckpt, scores="all", context="trailing", cache_dir=cache_dir).predict_array(wave, SR)
    assert trailing["context_start_s"].tolist() == [5.0 * s for s in context_starts(num_windows=n, context_windows=10, stride=1, position="trailing")]
    long = Predictor(stack_ckpt, cache_dir=cache_dir, top_k=1, min_conf=0.0).predict_array(wave, SR)
    assert {"context_start_s", "context_end_s", "window"} <= set(long.columns)


def test_stack10_short_recording_scored_as_one_context(stack_ckpt, cache_dir):
    wave = synthetic(23.0, seed=7)
    ctx = fit_window(wave, length=10 * W, fill="tile").reshape(10, W)
    ref = reference_scores(stack_ckpt, ctx[None])
    df = Predictor(stack_ckpt, scores="all", cache_dir=cache_dir).predict_array(wave, SR)
    assert df["end_s"].tolist() == [5, 10, 15, 20, 23]
    np.testing.assert_allclose(df[CLASSES].to_numpy(), np.repeat(ref, 5, axis=0), atol=1e-4)
    assert df["context_start_s"].tolist() == [0.0] * 5 and df["context_end_s"].tolist() == [23.0] * 5


def test_stack10_half_hop(stack_ckpt, cache_dir):
    wave = synthetic(57.5, seed=9)
    p = Predictor(stack_ckpt, scores="all", hop_s=2.5, cache_dir=cache_dir)
    df = p.predict_array(wave, SR)
    expected = clip_times(duration_s=57.5, window_s=5, hop_s=2.5)
    assert df["start_s"].tolist() == expected["start_s"].tolist()
    span = df["context_end_s"] - df["context_start_s"]
    assert (span <= 50 + 1e-9).all() and (span >= 47.5).all()
    # window 10 (25-30 s): grid start clip(10 - 8, 0, ...) = 2 -> windows 2, 4, ..., 20
    grid = lambda k: fit_window(wave[k * W // 2 : k * W // 2 + W], length=W, fill="tile")  # noqa: E731
    ref = reference_scores(stack_ckpt, np.stack([grid(2 + 2 * j) for j in range(10)])[None])
    np.testing.assert_allclose(df[CLASSES].to_numpy()[10], ref[0], atol=1e-4)
    with pytest.raises(ConfigError):
        Predictor(stack_ckpt, hop_s=2.0, cache_dir=cache_dir)


# --------------------------------------------------------------------------- files, failures, CLI


def test_predict_every_shared_recording(shared_data, window_ckpt, stack_ckpt, cache_dir):
    recs = shared_data / "recordings"
    for ckpt in (window_ckpt, stack_ckpt):
        p = Predictor(ckpt, scores="all", cache_dir=cache_dir)
        results = list(p.predict_paths([recs]))
        assert len(results) == 5 and all(r.ok for r in results)
        for r in results:
            assert len(r.windows) == len(clip_times(duration_s=r.duration_s)) > 0
            assert np.isfinite(r.scores).all()


def _good_and_bad(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    write_audio(d / "good.wav", synthetic(7.0), SR)
    (d / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    (d / "empty.flac").write_bytes(b"")
    write_audio(d / "sub" / "good2.ogg", synthetic(6.0, seed=2), SR)
    return d


def test_corrupt_files_reported_and_skipped(window_ckpt, tmp_path):
    d = _good_and_bad(tmp_path)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(window_ckpt), str(d), "--out", str(out), "--no-progress", "--min-conf", "0"]) == 0
    df = pd.read_csv(out)
    assert sorted({Path(f).name for f in df["file"]}) == ["good.wav", "good2.ogg"]
    failed = pd.read_csv(tmp_path / "pred.csv.failed.csv")
    assert sorted(Path(p).name for p in failed["path"]) == ["bad.wav", "empty.flac"]
    assert failed["error"].str.len().min() > 0
    code = main(["predict", str(window_ckpt), str(d), "--out", str(tmp_path / "strict.csv"), "--no-progress", "--strict"])
    assert code == 2


def test_predict_paths_api_reports_failures_in_order(window_ckpt, cache_dir, tmp_path):
    d = _good_and_bad(tmp_path)
    p = Predictor(window_ckpt, cache_dir=cache_dir)
    results = list(p.predict_paths([d]))
    assert [Path(r.path).name for r in results] == ["bad.wav", "empty.flac", "good.wav", "good2.ogg"]
    assert [r.ok for r in results] == [False, False, True, True]
    assert results[3].name == str(Path("sub") / "good2.ogg")
    with pytest.raises(AudioError):
        list(p.predict_paths([d], strict=True))
    with pytest.raises(AudioError):
        p.predict_file(d / "bad.wav")
    with pytest.raises(DataError):
        list(p.predict_paths([tmp_path / "nope.wav"]))


def test_usage_errors_exit_2(window_ckpt, tmp_path, capsys):
    wav = write_audio(tmp_path / "a.wav", synthetic(6.0), SR)
    assert main(["predict", str(window_ckpt), str(wav), "--window-s", "3", "--no-progress"]) == 2
    assert "5 s windows" in capsys.readouterr().err
    assert main(["predict", str(window_ckpt), str(tmp_path / "missing.wav"), "--no-progress"]) == 2
    assert main(["predict", str(tmp_path / "none.pt"), str(wav), "--no-progress"]) == 2
    assert main(["predict", str(window_ckpt), str(wav), "--format", "raven", "--scores", "all"]) == 2


def test_cli_every_format_on_shared_recordings(shared_data, window_ckpt, tmp_path):
    recs = shared_data / "recordings"
    base = ["predict", str(window_ckpt), str(recs), "--no-progress", "--min-conf", "0.05"]
    expected_windows = {}
    for f in sorted(recs.iterdir()):
        if audio.is_audio_file(f):
            expected_windows[f.stem] = len(clip_times(duration_s=audio.info(f).duration_s))

    assert main(base + ["--out", str(tmp_path / "p.csv")]) == 0
    csv_df = pd.read_csv(tmp_path / "p.csv")
    assert {Path(f).stem for f in csv_df["file"]} == set(expected_windows)
    assert (csv_df.groupby(["file", "window"]).size() <= 3).all()

    assert main(base + ["--format", "raven", "--out", str(tmp_path / "raven")]) == 0
    tables = sorted((tmp_path / "raven").glob("*.BirdSpec.selection.table.txt"))
    assert {t.name.split(".BirdSpec")[0] for t in tables} == set(expected_windows)
    for t in tables:
        r = pd.read_csv(t, sep="\t")
        assert tuple(r.columns) == RAVEN_COLUMNS
        assert r["Selection"].tolist() == list(range(1, len(r) + 1))
        assert (r["View"] == "Spectrogram 1").all() and (r["Channel"] == 1).all()
        assert (r["Low Freq (Hz)"] == 50.0).all() and (r["High Freq (Hz)"] == 14000.0).all()
        assert set(r["Species Code"]) <= set(CLASSES)
        assert (r["End Time (s)"] > r["Begin Time (s)"]).all()

    assert main(base + ["--format", "audacity", "--out", str(tmp_path / "aud")]) == 0
    for f in (tmp_path / "aud").glob("*.txt"):
        for line in f.read_text().splitlines():
            start, end, text = line.split("\t")
            label, conf = text.rsplit(" ", 1)
            assert float(end) > float(start) and label in CLASSES and 0 <= float(conf) <= 1

    assert main(base + ["--format", "birdclef", "--out", str(tmp_path / "sub.csv")]) == 0
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert list(sub.columns) == ["row_id", "birds"]
    assert len(sub) == sum(expected_windows.values())
    assert "osm-1min_60" in set(sub["row_id"])
    assert all(set(b.split()) <= set(CLASSES) | {"nocall"} for b in sub["birds"])

    assert main(base + ["--format", "parquet", "--scores", "all", "--out", str(tmp_path / "p.parquet")]) == 0
    pq = pd.read_parquet(tmp_path / "p.parquet")
    assert len(pq) == sum(expected_windows.values()) and set(CLASSES) <= set(pq.columns)


def test_warm_cache_runs_without_torch(window_ckpt, cache_dir, tmp_path):
    wav = write_audio(tmp_path / "a.wav", synthetic(6.0), SR)
    Predictor(window_ckpt, backend="onnx", cache_dir=cache_dir)  # fills the cache
    code = (
        "import sys\n"
        "from birdspec.prediction.predictor import Predictor\n"
        f"p = Predictor({str(window_ckpt)!r}, backend='onnx', cache_dir={str(cache_dir)!r})\n"
        f"assert len(p.predict_file({str(wav)!r})) > 0\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_checkpoint_dict_and_run_folder(window_ckpt, cache_dir, tmp_path):
    import shutil

    wave = synthetic(11.0)
    from_dict = Predictor(torch.load(window_ckpt, weights_only=True), scores="all", cache_dir=tmp_path / "c").predict_array(wave, SR)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(window_ckpt, run / "best.pt")
    from_run = Predictor(run, scores="all", cache_dir=cache_dir).predict_array(wave, SR)
    np.testing.assert_allclose(from_dict[CLASSES].to_numpy(), from_run[CLASSES].to_numpy(), atol=1e-6)


def test_too_short_recording_is_listed_with_its_reason(window_ckpt, cache_dir, tmp_path, capsys):
    from birdspec.cli.main import main

    short = write_audio(tmp_path / "short.wav", synthetic(0.59), SR)
    ok = write_audio(tmp_path / "ok.wav", synthetic(6.0), SR)
    assert Predictor(window_ckpt, cache_dir=cache_dir).predict_array(synthetic(0.59), SR).empty
    assert main(["predict", str(window_ckpt), str(short), str(ok), "--out", str(tmp_path / "p.csv"), "--no-progress"]) == 0
    failed = pd.read_csv(tmp_path / "p.csv.failed.csv")
    assert failed["path"].tolist() == [str(short)] and "shorter than the 1.00 s" in failed["error"].iloc[0]
    assert "too short" in capsys.readouterr().err


def test_a_read_checkpoint_object_predicts_like_its_file(window_ckpt, cache_dir):
    wave = synthetic(11.0)
    from_file = Predictor(window_ckpt, scores="all", cache_dir=cache_dir).predict_array(wave, SR)
    from_object = Predictor(read_checkpoint(window_ckpt), scores="all", cache_dir=cache_dir).predict_array(wave, SR)
    np.testing.assert_allclose(from_file[CLASSES].to_numpy(), from_object[CLASSES].to_numpy(), atol=1e-6)


def test_predict_into_writes_several_outputs_whole_and_refuses_nothing_scored(window_ckpt, tmp_path):
    """The library loop of `birdspec predict` (and the API's): every result to each writer, one summary; when no
    recording can be scored it is an error and an existing output keeps what it held."""
    from birdspec.errors import AudioError
    from birdspec.prediction import PredictionWriter, predict_into

    rng = np.random.default_rng(0)
    good = write_audio(tmp_path / "a.wav", (0.1 * rng.standard_normal(12 * SR)).astype(np.float32), SR)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not audio")
    with Predictor(window_ckpt, backend="torch", min_conf=0.0, top_k=1) as p:
        kw = dict(class_info=p.class_info, min_conf=p.min_conf, top_k=p.top_k)
        csv_out, raven_out = tmp_path / "p.csv", tmp_path / "raven"
        s = predict_into(p, [good, bad], [PredictionWriter("csv", csv_out, **kw), PredictionWriter("raven", raven_out, **kw)])
        assert (s.recordings, s.failed) == (1, 1) and s.audio_s == pytest.approx(12.0) and s.failed_file is not None
        assert len(pd.read_csv(csv_out)) == 3 and len(list(raven_out.glob("*.txt"))) == 1
        before = csv_out.read_bytes()
        with pytest.raises(AudioError, match="nothing was scored"):
            predict_into(p, [bad], [PredictionWriter("csv", csv_out, **kw)], guard=csv_out)
        assert csv_out.read_bytes() == before


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_predictor_gives_back_the_thread_count_it_found(window_ckpt, cache_dir, backend):
    """``threads`` is PyTorch's process-wide count while a torch-backend Predictor is open (the ONNX backend keeps
    its threads in its session); closed, the caller's count is back (sums differ with it: a caller's later training
    would otherwise change)."""
    import torch

    torch.set_num_threads(2)
    with Predictor(window_ckpt, backend=backend, threads=1, cache_dir=cache_dir) as p:
        assert torch.get_num_threads() == (1 if backend == "torch" else 2)
        p.predict_array(np.zeros(SR, np.float32), SR)
    assert torch.get_num_threads() == 2
