"""Calibration: reliability bins and ECE on known answers, temperature fitting, the diagram, `birdspec evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from birdspec.cli.main import main
from birdspec.errors import ConfigError, DataError
from birdspec.evaluation.calibration import (
    Reliability,
    calibration_line,
    calibration_of,
    fit_temperature,
    plot_reliability,
    reliability,
)
from birdspec.models.activation import ACTIVATIONS, scores_numpy

from helpers import make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_hand_made_bins_counts_and_errors():
    conf = [0.0, 0.1, 0.25, 0.5, 0.99, 1.0]
    right = [False, True, True, False, True, True]
    rel = reliability(conf, right, n_bins=4)
    assert np.allclose(rel.edges, [0, 0.25, 0.5, 0.75, 1.0])
    assert rel.counts.tolist() == [2, 1, 1, 2]  # 0.25 opens bin 1, 0.5 bin 2; 1.0 is in the last bin
    assert np.allclose(rel.confidence, [0.05, 0.25, 0.5, 0.995])
    assert np.allclose(rel.frequency, [0.5, 1.0, 0.0, 1.0])
    assert rel.ece == pytest.approx((2 * 0.45 + 0.75 + 0.5 + 2 * 0.005) / 6)
    assert rel.mce == pytest.approx(0.75)
    assert (rel.n, rel.n_bins, rel.kind) == (6, 4, "top-label")


def test_empty_bins_are_left_out():
    rel = reliability([0.95, 0.95], [True, False], n_bins=10)
    assert rel.counts.sum() == 2 and rel.counts[9] == 2
    assert np.isnan(rel.frequency[:9]).all()
    assert rel.ece == pytest.approx(0.45) and rel.mce == pytest.approx(0.45)
    empty = reliability([], [], n_bins=5)
    assert empty.n == 0 and np.isnan(empty.ece) and empty.summary()["ece"] is None


def test_perfectly_calibrated_set_has_zero_ece():
    centers = np.arange(0.05, 1.0, 0.1)  # one confidence per bin of 10, right exactly that often
    conf = np.repeat(centers, 100)
    right = np.concatenate([np.arange(100) < round(c * 100) for c in centers])
    assert reliability(conf, right, n_bins=10).ece == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)  # sampled: right with probability = confidence
    conf = rng.uniform(0, 1, 50_000)
    assert reliability(conf, rng.uniform(0, 1, conf.size) < conf).ece < 0.02


def test_over_confident_set_has_the_known_gap():
    conf = np.full(100, 0.9)
    right = np.arange(100) < 70  # 90 % sure, 70 % right
    rel = reliability(conf, right)
    assert rel.ece == pytest.approx(0.2) and rel.mce == pytest.approx(0.2)
    conf2 = np.concatenate([conf, np.full(100, 0.55)])
    right2 = np.concatenate([np.arange(100) < 60, np.arange(100) < 55])
    rel2 = reliability(conf2, right2)
    assert rel2.ece == pytest.approx(0.15) and rel2.mce == pytest.approx(0.3)


def test_calibration_of_each_activation():
    soft = calibration_of(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]), [0, 2], activation="softmax", n_bins=10)
    assert soft.kind == "top-label" and soft.n == 2
    assert soft.counts[7] == 1 and soft.frequency[7] == 1.0 and soft.counts[6] == 1 and soft.frequency[6] == 0.0
    # softmax-background: id K (= 2) is "no bird": its top score counts, and it is never right
    bg = calibration_of(np.array([[0.1, 0.05], [0.8, 0.1]]), np.array([2, 0]), activation="softmax-background", n_bins=10)
    assert bg.counts[1] == 1 and bg.frequency[1] == 0.0 and bg.counts[8] == 1 and bg.frequency[8] == 1.0
    # sigmoid: every (window, class) pair; a soft target > 0 is a positive
    sig = calibration_of(np.array([[0.9, 0.2], [0.3, 0.1]]), np.array([[1, 0], [0.3, 0]]), activation="sigmoid", n_bins=10)
    assert sig.kind == "per-class" and sig.n == 4
    assert sig.frequency[9] == 1.0 and sig.frequency[2] == 0.0 and sig.frequency[3] == 1.0 and sig.frequency[1] == 0.0


@pytest.mark.parametrize(
    ("probs", "y_true", "activation", "error", "words"),
    [
        (np.ones(3) / 3, [0], "softmax", DataError, "(windows, classes)"),
        (np.full((2, 3), 1 / 3), [0, 1, 2], "softmax", DataError, "shape (2,)"),
        (np.full((2, 3), 1 / 3), np.eye(3)[:2], "softmax", DataError, "sigmoid"),
        (np.full((2, 3), 1 / 3), [0, 3], "softmax", DataError, "[0, 2]"),
        (np.full((2, 3), 0.2), [0, 4], "softmax-background", DataError, "no bird"),
        (np.full((2, 3), 1 / 3), [0.5, 1], "softmax", DataError, "whole numbers"),
        (np.full((2, 3), 0.5), [0, 1], "sigmoid", DataError, "target matrix"),
        (np.full((2, 3), 0.5), np.full((2, 3), 2.0), "sigmoid", DataError, "[0, 1]"),
        (np.full((2, 3), 1.5), [0, 1], "softmax", DataError, "not logits"),
        (np.full((2, 3), 1 / 3), [0, 1], "tanh", ConfigError, "unknown activation"),
    ],
)
def test_shape_and_value_errors(probs, y_true, activation, error, words):
    with pytest.raises(error) as info:
        calibration_of(probs, y_true, activation=activation)
    assert words in str(info.value)


def test_reliability_argument_errors():
    with pytest.raises(ConfigError, match="n_bins"):
        reliability([0.5], [True], n_bins=0)
    with pytest.raises(DataError, match="one length"):
        reliability([0.5, 0.6], [True])
    with pytest.raises(DataError, match="shape"):
        fit_temperature(np.zeros((4, 3)), [0, 1], activation="softmax")
    with pytest.raises(DataError, match="finite"):
        fit_temperature(np.full((2, 2), np.inf), [0, 1], activation="softmax")


def _sample_truth(rng: np.random.Generator, z: np.ndarray, activation: str) -> np.ndarray:
    """Labels (or targets) drawn from the scores of ``z`` at temperature 2."""
    if activation == "sigmoid":
        return (rng.uniform(size=z.shape) < scores_numpy(z, "sigmoid", temperature=2.0)).astype(float)
    p = scores_numpy(z, activation, temperature=2.0).astype(np.float64)
    if activation == "softmax-background":
        p = np.concatenate([p, 1.0 - p.sum(axis=1, keepdims=True)], axis=1)
    p /= p.sum(axis=1, keepdims=True)
    return np.minimum((rng.uniform(size=(len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1), p.shape[1] - 1)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fit_temperature_recovers_a_known_temperature(activation):
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 4.0, size=(8000, 5))
    y = _sample_truth(rng, z, activation)
    t = fit_temperature(z, y, activation=activation)
    assert t == pytest.approx(2.0, rel=0.1)

    def nll(temp: float) -> float:  # the objective, through the scores birdspec reports
        p = scores_numpy(z, activation, temperature=temp).astype(np.float64)
        if activation == "sigmoid":
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
        if activation == "softmax-background":
            p = np.concatenate([p, 1.0 - p.sum(axis=1, keepdims=True)], axis=1)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y.astype(int)], 1e-300, None))))

    assert nll(t) <= min(nll(t * 1.2), nll(t / 1.2))
    # fitting the scaled logits gives T near 1; too few windows give 1
    assert fit_temperature(z / 2.0, y, activation=activation) == pytest.approx(1.0, rel=0.1)
    assert fit_temperature(z[:1], y[:1], activation=activation) == 1.0


def test_plot_reliability_writes_a_png(tmp_path):
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.5, 1.0, 300)
    rel = reliability(conf, rng.uniform(size=300) < conf - 0.1)
    out = plot_reliability(rel, tmp_path / "r.png", title="synthetic")
    assert out == tmp_path / "r.png" and out.read_bytes()[:8] == PNG_MAGIC
    empty = plot_reliability(reliability([], []), tmp_path / "e.png", title="nothing")
    assert empty.read_bytes()[:8] == PNG_MAGIC


def test_calibration_line():
    entry = {"ece": 0.0312, "mce": 0.1, "n": 120, "n_bins": 15, "kind": "top-label", "activation": "softmax",
             "temperature": 1.0}
    assert calibration_line(entry) == "calibration: ECE 0.031 (top-label, 120 windows)"
    assert "temperature 1.5" in calibration_line({**entry, "temperature": 1.5})


@pytest.fixture(scope="module")
def cal_run(tiny_window_dataset, tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("calrun") / "run", tiny_window_dataset)


def test_evaluate_writes_reliability_and_calibration(cal_run, capsys):
    assert main(["evaluate", str(cal_run), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    out = cal_run / "eval_val"
    assert (out / "reliability.png").read_bytes()[:8] == PNG_MAGIC
    metrics = json.loads((out / "metrics.json").read_text())
    cal = metrics["sample"]["calibration"]
    assert set(cal) == {"ece", "mce", "n", "n_bins", "kind", "activation", "temperature"}
    assert cal["kind"] == "top-label" and cal["activation"] == "softmax" and cal["temperature"] == 1.0
    assert cal["n"] == metrics["n_samples"] == metrics["sample"]["n"]
    assert f"calibration: ECE {cal['ece']:.3f} (top-label, {cal['n']} windows)" in text
    # it recomputes from predictions.csv
    import pandas as pd

    from birdspec.evaluation.inference import predictions_from_frame

    pred = predictions_from_frame(pd.read_csv(out / "predictions.csv"), level="sample")
    again = calibration_of(pred.probs, pred.y_true, activation="softmax", n_bins=cal["n_bins"])
    assert isinstance(again, Reliability) and again.ece == pytest.approx(cal["ece"], abs=1e-9)


def test_predict_samples_applies_activation_and_temperature(cal_run, tiny_window_dataset):
    from birdspec.data.prepared import PreparedDataset
    from birdspec.evaluation.inference import checkpoint_dataset, predict_samples
    from birdspec.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(cal_run / "checkpoints" / "best.pt")
    data = PreparedDataset(tiny_window_dataset)
    dataset = checkpoint_dataset(data, ckpt, rows=data.select(split="val")[:2])
    model = ckpt.build_model()
    kw = {"classes": list(ckpt.classes), "batch_size": 8}
    plain = predict_samples(model, dataset, **kw).probs
    hot = predict_samples(model, dataset, temperature=0.25, **kw).probs
    bg = predict_samples(model, dataset, activation="softmax-background", **kw).probs
    assert np.allclose(plain.sum(1), 1.0, atol=1e-5) and (hot.max(1) >= plain.max(1) - 1e-6).all()
    assert (bg.sum(1) < 1.0).all() and np.array_equal(bg.argmax(1), plain.argmax(1))


def test_evaluate_a_sigmoid_checkpoint_is_per_class(tiny_window_dataset, tmp_path):
    import torch

    from birdspec.data.prepared import PreparedDataset
    from birdspec.evaluation.evaluate import evaluate_checkpoint
    from birdspec.models.checkpoint import make_checkpoint, save_checkpoint
    from birdspec.models.registry import build_model

    data = PreparedDataset(tiny_window_dataset)
    torch.manual_seed(0)
    net = build_model("mobilenetv2-seed", in_channels=data.encoding.in_channels, num_classes=len(data.classes),
                      frontend=data.frontend)
    path = save_checkpoint(make_checkpoint(net, model_config=net.config, classes=data.classes, frontend=data.frontend,
                                           encoding=data.encoding, train_config={"multi_label": True}), tmp_path / "ml.pt")
    ev = evaluate_checkpoint(path, data, rows=data.select(split="val")[:2], out_dir=None, plots=False)
    cal = ev.level("sample")["calibration"]
    assert cal["kind"] == "per-class" and cal["activation"] == "sigmoid"
    assert cal["n"] == len(ev.samples) * len(data.classes)
    truth = np.eye(len(data.classes))[ev.samples.y_true]  # no secondary labels in this dataset: one-hot
    assert calibration_of(ev.samples.probs, truth, activation="sigmoid").ece == pytest.approx(cal["ece"])
