"""`birdspec evaluate`: files, metrics recomputed from predictions.csv, recording-level aggregation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    roc_auc_score,
)

from birdspec.cli.main import main
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import DataError
from birdspec.evaluation.evaluate import evaluate_run

from helpers import make_run

EVAL_FILES = ("metrics.json", "per_class.csv", "predictions.csv", "confusion_matrix.png", "per_class.png", "reliability.png")




@pytest.fixture(scope="module")
def window_run(tiny_window_dataset, tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("wrun") / "run", tiny_window_dataset)


@pytest.fixture(scope="module")
def window_eval(window_run):
    return evaluate_run(window_run, device="cpu")


def _recompute(pred: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    y = pred["label_id"].to_numpy()
    p = pred[[f"prob_{c}" for c in classes]].to_numpy()
    yhat = p.argmax(1)
    onehot = np.eye(len(classes))[y]
    present = np.unique(y)
    return {
        "accuracy": accuracy_score(y, yhat),
        "balanced_accuracy": balanced_accuracy_score(y, yhat),
        "macro_f1": f1_score(y, yhat, average="macro"),
        "micro_f1": f1_score(y, yhat, average="micro"),
        "roc_auc_macro": roc_auc_score(onehot[:, present], p[:, present], average="macro"),
        "cmap": average_precision_score(onehot[:, present], p[:, present], average="macro"),
        "log_loss": log_loss(y, p / p.sum(1, keepdims=True), labels=range(len(classes))),
        "n": len(y),
    }


def test_evaluate_writes_all_files(window_run, window_eval):
    out = window_run / "eval_val"
    assert window_eval.out_dir == out
    for name in EVAL_FILES:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for level in ("recording", "sample"):
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "roc_auc_macro", "cmap", "log_loss", "n",
                    "top_k_accuracy"):
            assert key in metrics[level], (level, key)
    assert metrics["split"] == "val" and metrics["rows_source"] == "run"
    assert metrics["classes"] == ["synth0", "synth1", "synth2"]
    assert metrics["checkpoint"].endswith("best.pt")
    per_class = pd.read_csv(out / "per_class.csv")
    assert set(per_class["level"]) == {"recording", "sample"}
    assert {"label", "scientific_name", "common_name", "precision", "recall", "f1", "support"} <= set(per_class.columns)


def test_metrics_recompute_from_predictions(window_run, window_eval):
    out = window_run / "eval_val"
    metrics = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    for level in ("recording", "sample"):
        expected = _recompute(pred[pred["level"] == level], metrics["classes"])
        for key, value in expected.items():
            assert metrics[level][key] == pytest.approx(value, abs=1e-5), (level, key)


def test_window_recordings_aggregate_mean_probabilities(window_run, window_eval, tiny_window_dataset):
    pred = pd.read_csv(window_run / "eval_val" / "predictions.csv")
    samples, recs = pred[pred["level"] == "sample"], pred[pred["level"] == "recording"]
    data = PreparedDataset(tiny_window_dataset)
    n_val = len(data.select(split="val"))
    assert len(recs) == n_val and recs["id"].is_unique
    assert len(samples) == 3 * n_val  # 3 s recordings, 1 s windows
    prob_cols = [c for c in pred.columns if c.startswith("prob_")]
    mean = samples.groupby("id")[prob_cols].mean()
    np.testing.assert_allclose(recs.set_index("id").loc[mean.index, prob_cols].to_numpy(), mean.to_numpy(), atol=1e-5)
    assert window_eval.metrics["recording"]["n"] == n_val
    assert window_eval.metrics["sample"]["n"] == 3 * n_val


def test_stack_levels_coincide(tiny_stack_dataset, tmp_path):
    run = make_run(tmp_path / "srun", tiny_stack_dataset)
    result = evaluate_run(run, split="all", checkpoint="last", out_dir=tmp_path / "ev", device="cpu", plots=False)
    rec, smp = result.metrics["recording"], result.metrics["sample"]
    assert rec["n"] == smp["n"] == 24
    assert rec["accuracy"] == smp["accuracy"] and rec["log_loss"] == pytest.approx(smp["log_loss"])
    assert result.metrics["split"] == "all" and result.metrics["checkpoint"].endswith("last.pt")
    assert not (tmp_path / "ev" / "confusion_matrix.png").exists()


def test_train_split_uses_the_runs_rows(window_run, tmp_path):
    result = evaluate_run(window_run, split="train", out_dir=tmp_path / "tr", device="cpu", plots=False)
    cfg = json.loads((window_run / "config.json").read_text())
    assert sorted(result.recordings.ids) == sorted(cfg["rows"]["train"])


def test_moved_dataset_needs_data(window_run, tmp_path, tiny_window_dataset):
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("config.json", "summary.json", "metrics.csv"):
        (moved / name).write_text((window_run / name).read_text().replace(str(Path(tiny_window_dataset).resolve()), "/nowhere/ds"))
    (moved / "checkpoints").symlink_to(window_run / "checkpoints")
    with pytest.raises(DataError, match="--data"):
        evaluate_run(moved, device="cpu")
    result = evaluate_run(moved, data=tiny_window_dataset, device="cpu", plots=False)
    assert result.metrics["recording"]["n"] == 6


def test_cli_evaluate(window_run, tmp_path, capsys):
    assert main(["evaluate", str(window_run), "--device", "cpu", "--out", str(tmp_path / "cli"), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "macro F1" in text and "recording" in text and "synth1" in text
    assert "calibration: ECE 0." in text and "(top-label, 18 windows)" in text
    assert main(["evaluate", str(window_run), "--device", "cpu", "--out", str(tmp_path / "cli2"), "--json", "--no-plots"]) == 0
    assert json.loads(capsys.readouterr().out)["recording"]["n"] == 6
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "not a birdspec run directory" in capsys.readouterr().err
