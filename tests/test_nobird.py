"""Models that know when nothing is there: the demo's model, trained with birdspec's defaults, in CI.

Known answers: no detection (at the model's stored thresholds) on digital and dithered silence, white and
pink noise from -80 to -20 dBFS and wind rumble; a call window scaled by 0.01 scores lower than at full
level; the thresholds travel from the checkpoint through the ONNX runtime export and the standalone export
to ``predict``; a checkpoint written before any of this predicts exactly as it was trained. (The demo's
classes are synthetic trills, whistles, harmonic stacks and buzzes, so a real toad's trill is one of them
to it: the toad is checked with the reed warbler model, tests/test_nobird_real.py.)
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from birdspec.data.backgrounds import synth_background
from birdspec.models.checkpoint import read_checkpoint, run_checkpoint
from birdspec.prediction.predictor import Predictor

SR = 32000
NOBIRD_S = 30


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """The demo's MobileNetV2 trained as ``birdspec demo`` trains it (defaults for new runs)."""
    from birdspec.demo import DEMO_MODELS, DemoConfig, prepare_demo_data, train_demo_model

    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(workers=0)
    dataset = prepare_demo_data(out, cfg)
    run = train_demo_model(DEMO_MODELS[0], dataset, out, cfg)
    return run, dataset


@pytest.fixture(scope="session")
def predictor(demo_model):
    with Predictor(run_checkpoint(demo_model[0], "best")) as p:
        yield p


def _detections(predictor: Predictor, wave: np.ndarray) -> pd.DataFrame:
    return predictor.predict_array(wave.astype(np.float32), SR)


def test_demo_model_learned_no_bird_and_stores_its_thresholds(demo_model, predictor):
    run, _ = demo_model
    ckpt = read_checkpoint(run_checkpoint(run, "best"))
    assert ckpt.activation == "softmax-background"
    assert ckpt.input_norm["kind"] == "level" and ckpt.input_norm["scale_db"] > 1.0
    assert ckpt.detection is not None and len(ckpt.thresholds) == len(ckpt.classes)
    assert all(0.05 <= t <= 0.99 for t in ckpt.thresholds)
    assert "validation" in ckpt.detection.chosen_on and "no-bird samples" in ckpt.detection.chosen_on
    assert predictor.thresholds_from_model and np.allclose(predictor.min_conf, ckpt.thresholds, atol=1e-6)
    config = json.loads((run / "config.json").read_text())
    assert config["num_samples"]["train_nocall"] > 0 and config["num_samples"]["val_nocall"] >= 32


@pytest.mark.parametrize("kind,levels", [
    ("silence", [None]),
    ("white", [-80, -60, -40, -20]),
    ("pink", [-80, -60, -40, -20]),
    ("wind", [-60, -40, -20]),
])
def test_no_detection_on_silence_noise_and_wind(predictor, kind, levels):
    rng = np.random.default_rng(2026)  # not a seed training or validation drew from
    for level in levels:
        wave = (np.zeros(NOBIRD_S * SR, np.float32) if level is None
                else synth_background(kind, num_samples=NOBIRD_S * SR, level_dbfs=level, rng=rng))
        found = _detections(predictor, wave)
        assert found.empty, f"{kind} at {level} dBFS: {found[['start_s', 'label', 'confidence']].to_dict('records')}"
    dithered = synth_background("silence", num_samples=NOBIRD_S * SR, level_dbfs=-90, rng=rng)
    assert _detections(predictor, dithered).empty


def _window_scores(demo_model, waves: list[np.ndarray]) -> np.ndarray:
    """Scores ``(n, K)`` of 5 s windows, as ``predict`` computes them."""
    with Predictor(run_checkpoint(demo_model[0], "best"), scores="all") as p:
        return np.stack([p.predict_array(w, SR)[list(p.classes)].to_numpy()[0] for w in waves])


def test_a_window_scaled_by_001_scores_lower(demo_model, predictor):
    from birdspec.data.prepared import PreparedDataset

    data = PreparedDataset(demo_model[1])
    windows = []
    for row in data.select(split="val")[:8]:
        wave = data.store.read(int(data.manifest["offset"].iloc[row]), int(data.manifest["num_samples"].iloc[row]))
        windows += [np.asarray(wave[a:a + 5 * SR], dtype=np.float32) for a in range(0, wave.size - 5 * SR + 1, 5 * SR)]
    full = _window_scores(demo_model, windows)
    i = int(full.max(axis=1).argmax())  # the validation window the model is surest of
    k = int(full[i].argmax())
    assert full[i, k] >= predictor.min_conf[k]  # detected at full level
    quiet = _window_scores(demo_model, [0.01 * windows[i]])[0]
    assert quiet[k] < full[i, k] - 0.05 and quiet.max() < full[i].max()


def test_thresholds_round_trip_through_exports_and_predict(demo_model, predictor, tmp_path):
    from birdspec.prediction.export import export_checkpoint
    from birdspec.prediction.onnx_runtime import OnnxRuntime

    run, _ = demo_model
    best = run_checkpoint(run, "best")
    ckpt = read_checkpoint(best)
    runtime_export = best.with_name("best.runtime")
    rt = OnnxRuntime(runtime_export, threads=1, device="cpu")  # the export `birdspec train` wrote beside best.pt
    assert rt.info.thresholds == ckpt.thresholds and rt.info.activation == ckpt.activation
    assert rt.info.input_norm == ckpt.input_norm
    res = export_checkpoint(best, fmt="onnx", out=tmp_path / "m.onnx")
    sidecar = json.loads(res.sidecar.read_text())
    assert sidecar["detection"]["thresholds"] == list(ckpt.thresholds) and sidecar["activation"] == "softmax-background"
    # the ONNX model's scores are the checkpoint's activation of its logits
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 1, 5 * SR)).astype(np.float32) * 0.05
    logits, scores = ort.InferenceSession(str(res.path)).run(["logits", "scores"], {"waveform": x})
    np.testing.assert_allclose(scores, ckpt.scores(logits), atol=1e-5)
    # predict: the model's thresholds by default, --min-conf instead when given; silence is nocall
    silence = tmp_path / "silence.wav"
    import soundfile as sf

    sf.write(silence, np.zeros(10 * SR, np.float32), SR)
    from birdspec.cli.main import main

    assert main(["-q", "predict", str(best), str(silence), "--format", "birdclef", "--out", str(tmp_path / "sub.csv")]) == 0
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert list(sub["birds"]) == ["nocall", "nocall"]  # a window where no class reaches its threshold
    assert main(["-q", "predict", str(best), str(silence), "--min-conf", "0", "--top-k", "1",
                 "--out", str(tmp_path / "all.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == 2  # --min-conf 0 overrides: the top class of every window


def test_a_checkpoint_from_before_predicts_as_it_was_trained(tiny_window_dataset, tmp_path):
    """No activation key, no detection, no input-norm settings (an older birdspec's checkpoint): softmax over
    the classes, the instance norm of then, predict's old default of 0.1."""
    from birdspec.config import FrontendConfig
    from birdspec.data.prepared import PreparedDataset
    from birdspec.models.checkpoint import make_checkpoint, save_checkpoint
    from birdspec.models.registry import build_model

    data = PreparedDataset(tiny_window_dataset)
    torch.manual_seed(0)
    for kind in ("instance", "band"):
        model = build_model("mobilenetv2-seed", in_channels=1, num_classes=3, frontend=FrontendConfig(), input_norm=kind)
        config = {k: v for k, v in model.config.items() if k != "input_norm_settings"}  # written before they existed
        raw = make_checkpoint(model.eval(), model_config=config, classes=list(data.classes), frontend=FrontendConfig(),
                              encoding=data.encoding, train_config={"loss": "ce", "input_norm": kind})
        path = save_checkpoint(raw, tmp_path / f"old-{kind}.pt")
        ckpt = read_checkpoint(path)
        assert ckpt.activation == "softmax" and ckpt.detection is None and ckpt.input_norm["kind"] == kind
        wave = np.random.default_rng(1).standard_normal(32000).astype(np.float32) * 0.1
        with torch.no_grad():
            spec = model.frontend(torch.from_numpy(wave)[None, None])
            x = spec - spec.sort(dim=-1).values[..., (spec.shape[-1] - 1) // 2:][..., :1] if kind == "band" else spec
            old = (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1.0)  # the old norm
            expected = torch.softmax(model.backbone(old), dim=1).numpy()
        with Predictor(path, backend="torch", scores="all") as p:
            assert np.allclose(p.min_conf, 0.1)  # the default of checkpoints without thresholds
            got = p.predict_array(wave, SR)[list(data.classes)].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
