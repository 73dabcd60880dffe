"""Metrics, window aggregation, the predictions round trip, model profiling and the HTML report builder."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    roc_auc_score,
    top_k_accuracy_score,
)
from torch import nn

from birdspec.errors import DataError
from birdspec.evaluation.inference import (
    Predictions,
    aggregate_recordings,
    label_map,
    predictions_from_frame,
)
from birdspec.evaluation.metrics import (
    classification_metrics,
    confusion_counts,
    mean_std,
    per_class_metrics,
    row_normalise,
    top_k_values,
)


def _random_probs(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] * rng.uniform(0, 1, (n, 1))
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def test_metrics_match_sklearn():
    y, p = _random_probs(60, 4)
    m = classification_metrics(y, p, classes=["a", "b", "c", "d"])
    pred = p.argmax(1)
    assert m["n"] == 60
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["roc_auc_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["cmap"] == pytest.approx(average_precision_score(np.eye(4)[y], p, average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, p, labels=range(4)))
    assert set(m["top_k_accuracy"]) == {"1", "2", "3"}
    assert m["top_k_accuracy"]["2"] == pytest.approx(top_k_accuracy_score(y, p, k=2, labels=range(4)))
    assert m["top_k_accuracy"]["1"] == m["accuracy"]
    assert m["classes_absent"] == []


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[y] * 0.98 + 0.01 / 1.0
    m = classification_metrics(y, p / p.sum(1, keepdims=True))
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "cmap"):
        assert m[key] == pytest.approx(1.0), key


def test_absent_classes_are_reported_and_excluded():
    y, p = _random_probs(40, 3)
    y = np.where(y == 2, 0, y)  # class 2 never occurs
    m = classification_metrics(y, p, classes=["a", "b", "c"])
    assert m["classes_absent"] == ["c"]
    assert m["classes_present"] == ["a", "b"]
    expected = roc_auc_score(np.eye(3)[y][:, :2], p[:, :2], average="macro")
    assert m["roc_auc_macro"] == pytest.approx(expected)
    assert m["cmap"] == pytest.approx(average_precision_score(np.eye(3)[y][:, :2], p[:, :2], average="macro"))
    one = classification_metrics(np.zeros(5, int), p[:5], classes=["a", "b", "c"])
    assert one["roc_auc_macro"] is None and one["cmap"] is not None


def test_top_k_values():
    assert top_k_values(2) == [1]
    assert top_k_values(3) == [1, 2]
    assert top_k_values(10) == [1, 2, 3]


def test_bad_inputs():
    with pytest.raises(DataError):
        classification_metrics([0, 1], np.array([[0.5, 0.5]]))
    with pytest.raises(DataError, match="diverged"):
        classification_metrics([0, 1], np.array([[np.nan, 0.5], [0.5, 0.5]]))
    with pytest.raises(DataError):
        classification_metrics([0, 5], np.full((2, 3), 1 / 3))


def test_per_class_and_confusion():
    y, p = _random_probs(50, 3, seed=3)
    pc = per_class_metrics(y, p, classes=["a", "b", "c"], class_info=[{"label": "a", "common_name": "Alpha"}])
    assert list(pc["label"]) == ["a", "b", "c"]
    assert pc.loc[0, "common_name"] == "Alpha"
    assert pc["support"].sum() == 50
    pred = p.argmax(1)
    assert pc["f1"].tolist() == pytest.approx(f1_score(y, pred, average=None, labels=[0, 1, 2]).tolist())
    cm = confusion_counts(y, pred, num_classes=3)
    assert cm.sum() == 50 and (cm.sum(1) == pc["support"].to_numpy()).all()
    norm = row_normalise(np.array([[2, 2], [0, 0]]))
    assert norm.tolist() == [[0.5, 0.5], [0.0, 0.0]]


def test_mean_std():
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, math.sqrt(0.02)))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([None]) == (None, None)


def _samples() -> Predictions:
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    return Predictions(
        level="sample", ids=("r1", "r1", "r2", "r2", "r2"), rows=np.array([4, 4, 1, 1, 1]),
        windows=np.array([0, 1, 0, 1, 2]), y_true=np.array([0, 0, 1, 1, 1]), probs=probs, classes=("x", "y"),
    )


def test_aggregation_is_mean_of_probabilities():
    rec = aggregate_recordings(_samples())
    assert rec.level == "recording"
    assert rec.ids == ("r1", "r2")  # order of first appearance
    assert rec.rows.tolist() == [4, 1]
    np.testing.assert_allclose(rec.probs, [[0.6, 0.4], [1.3 / 3, 1.7 / 3]])
    assert rec.y_true.tolist() == [0, 1]
    assert rec.y_pred.tolist() == [0, 1]
    assert (rec.windows == -1).all()


def test_predictions_round_trip():
    s = _samples()
    frame = pd.concat([s.to_frame(), aggregate_recordings(s).to_frame()], ignore_index=True)
    assert {"level", "id", "label", "predicted", "prob_x", "prob_y"} <= set(frame.columns)
    back = predictions_from_frame(frame, level="sample")
    np.testing.assert_allclose(back.probs, s.probs)
    assert back.classes == ("x", "y") and back.ids == s.ids
    with pytest.raises(DataError, match="several levels"):
        predictions_from_frame(frame)


def test_label_map():
    assert label_map(["b", "a"], ["a", "b", "c"]).tolist() == [1, 0]
    with pytest.raises(DataError, match="same species"):
        label_map(["a", "z"], ["a", "b"])


def test_multiply_adds_by_hooks():
    from birdspec.evaluation.profile import count_multiply_adds, profile_model

    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 6, 3))
    macs = count_multiply_adds(net, torch.zeros(2, 2, 5, 6))
    assert macs == 4 * 5 * 6 * 2 * 9 + 3 * 120
    prof = profile_model(nn.Sequential(nn.Flatten(), nn.Linear(8, 2)), input_shape=(2, 4), batch_size=2, repeats=1, warmup=0)
    assert prof.multiply_adds_per_sample == 16 and prof.num_parameters == 18
    assert prof.inference_ms_per_sample is not None and prof.inference_ms_per_sample > 0


def test_multiply_adds_match_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from birdspec.evaluation.profile import count_multiply_adds
    from birdspec.models.registry import build_model

    model = build_model("mobilenetv2-seed", in_channels=1, num_classes=3).eval()
    wave = 0.1 * torch.randn(1, 1, 16000)
    macs = count_multiply_adds(model, wave)
    with torch.no_grad():
        spec = model.features(wave)  # the frontend is not counted
        with FlopCounterMode(display=False) as counter:
            model.backbone(spec)
    assert macs == counter.get_total_flops() // 2


def test_report_is_self_contained(tmp_path):
    from birdspec.evaluation.plots import plot_confusion
    from birdspec.evaluation.report import Section, markdown_table, write_report

    png = plot_confusion(np.array([[3, 1], [0, 4]]), ["Reed Warbler", "Sedge Warbler"], tmp_path / "cm.png")
    out = write_report(
        tmp_path / "r.html",
        [Section("Table <b>", text="a & b\n\nsecond", table=pd.DataFrame({"x": [0.123456, None], "y": ["<script>", "ok"]})),
         Section("Figure", figures=[png, png.read_bytes()], captions=["the matrix"])],
        title="T",
    )
    text = out.read_text()
    assert text.count('src="data:image/png;base64,') == 2
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Table &lt;b&gt;" in text and "0.1235" in text
    md = markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1.5]}))
    assert md.splitlines()[0] == "| a | b |" and "x\\|y" in md
