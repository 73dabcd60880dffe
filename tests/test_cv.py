"""`birdspec cv`: per-fold training with an inner validation split, no test-fold leakage, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdspec.cli.main import main
from birdspec.data.prepared import PreparedDataset
from birdspec.data.splits import inner_split
from birdspec.errors import ConfigError, DataError
from birdspec.experiments.cv import run_cv
from birdspec.training import TrainConfig, train

FAST = {"model": "mobilenetv2-seed", "epochs": 1, "batch_size": 8, "device": "cpu", "workers": 0, "progress_bar": False}
CV_KEYS = ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "folds", "model", "encoding", "protocol")
FOLD_KEYS = ("fold", "accuracy", "macro_f1", "n", "run_dir", "train_time_s")


@pytest.fixture(scope="module")
def cv_dir(fast_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cv") / "cv"
    argv = ["cv", str(fast_dataset), "--model", "mobilenetv2-seed", "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--workers", "0", "--no-progress", "--inner-val-fraction", "0.25"]
    assert main(argv) == 0
    return out


def test_inner_split_is_stratified_and_seeded():
    rows = np.arange(30)
    labels = np.repeat([0, 1, 2], 10)
    tr, va = inner_split(rows, labels, fraction=0.2, seed=3)
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).tolist() == rows.tolist()
    assert np.bincount(labels[va]).tolist() == [2, 2, 2]
    assert inner_split(rows, labels, fraction=0.2, seed=3)[1].tolist() == va.tolist()
    assert inner_split(rows, labels, fraction=0.2, seed=4)[1].tolist() != va.tolist()
    with pytest.raises(ConfigError):
        inner_split(rows, labels, fraction=1.0, seed=0)
    with pytest.raises(DataError, match="fixed-epochs"):
        inner_split(np.arange(3), np.array([0, 1, 2]), fraction=0.2, seed=0)


def test_cv_writes_summary(cv_dir, capsys):
    summary = json.loads((cv_dir / "cv.json").read_text())
    for key in CV_KEYS:
        assert key in summary, key
    assert summary["protocol"] == "inner-val" and summary["num_folds"] == 4
    assert [f["fold"] for f in summary["folds"]] == [0, 1, 2, 3]
    for f in summary["folds"]:
        for key in FOLD_KEYS:
            assert key in f, key
        assert f["n"] == 6
    accs = [f["accuracy"] for f in summary["folds"]]
    assert summary["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert summary["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    pooled = pd.read_csv(cv_dir / "cv_predictions.csv")
    assert len(pooled) == 24 and pooled["id"].is_unique and set(pooled["fold"]) == {0, 1, 2, 3}
    assert summary["pooled"]["n"] == 24
    assert (cv_dir / "cv_confusion_matrix.png").is_file() and (cv_dir / "cv_folds.png").is_file()


def test_test_fold_never_in_training_rows(cv_dir, fast_dataset):
    data = PreparedDataset(fast_dataset)
    ids = data.manifest["id"].astype(str).to_numpy()
    for k in range(4):
        cfg = json.loads((cv_dir / f"fold_{k}" / "config.json").read_text())
        test_ids = set(ids[data.select(folds=[k])])
        train_ids, val_ids = set(cfg["rows"]["train"]), set(cfg["rows"]["val"])
        assert not test_ids & train_ids and not test_ids & val_ids
        assert train_ids | val_ids == set(ids[data.select(exclude_folds=[k])])
        per_class_val = pd.Series([i.split("_")[0] for i in val_ids]).value_counts()
        assert len(per_class_val) == 3  # stratified: every class in the inner validation split
        evaluated = pd.read_csv(cv_dir / f"fold_{k}" / "eval_test" / "predictions.csv")
        assert set(evaluated["id"]) == test_ids


def test_cv_resumes_without_training(cv_dir, fast_dataset):
    before = {p: p.stat().st_mtime_ns for p in cv_dir.glob("fold_*/summary.json")}
    calls = []
    result = run_cv(fast_dataset, cv_dir, TrainConfig(**FAST), inner_val_fraction=0.25,
                    train_fn=lambda *a, **k: calls.append(a))
    assert calls == [] and result.skipped == 4 and result.trained == 0
    assert {p: p.stat().st_mtime_ns for p in cv_dir.glob("fold_*/summary.json")} == before
    with pytest.raises(ConfigError, match="other settings"):
        run_cv(fast_dataset, cv_dir, TrainConfig(**{**FAST, "epochs": 2}), inner_val_fraction=0.25)


def test_fixed_epochs_uses_all_training_folds_and_last_checkpoint(fast_dataset, tmp_path):
    result = run_cv(fast_dataset, tmp_path / "fx", TrainConfig(**FAST), fixed_epochs=True, folds=[1])
    data = PreparedDataset(fast_dataset)
    ids = data.manifest["id"].astype(str).to_numpy()
    cfg = json.loads((tmp_path / "fx" / "fold_1" / "config.json").read_text())
    assert set(cfg["rows"]["train"]) == set(ids[data.select(exclude_folds=[1])])
    fold = result.summary["folds"][0]
    assert fold["checkpoint"].endswith("last.pt") and result.summary["protocol"] == "fixed-epochs"
    assert result.summary["accuracy_std"] == 0.0
    with pytest.raises(ConfigError, match="early-stopping"):
        run_cv(fast_dataset, tmp_path / "fx2", TrainConfig(**FAST, early_stopping_patience=2), fixed_epochs=True)


def test_dataset_without_folds(tmp_path):
    from helpers import write_prepared

    ds = write_prepared(tmp_path / "nofolds", per_class=2, duration_s=2.0)
    with pytest.raises(ConfigError, match="--folds"):
        run_cv(ds, tmp_path / "cv", TrainConfig(**FAST), train_fn=train)


def test_a_cv_written_before_new_training_fields_still_resumes(tmp_path):
    """A cv_settings.json written by an older birdspec lacks the TrainConfig fields added since (e.g.
    the multi-label ones): they take their defaults and the CV resumes instead of being refused."""
    import json

    from birdspec.errors import ConfigError
    from birdspec.experiments.cv import _claim
    from birdspec.experiments.settings import comparable_config
    from birdspec.training import TrainConfig

    cfg = TrainConfig(model="mobilenetv2-seed", epochs=3).resolved()
    now = comparable_config(cfg.to_dict())
    settings = {"format": "birdspec-cv", "dataset": "/data", "protocol": "fixed-epochs", "inner_val_fraction": None,
                "train_config": now}
    older = dict(now)
    for key in ("labels", "secondary_weight", "multi_label", "synthetic_nocall", "synthetic_calls"):
        older.pop(key, None)
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "cv_settings.json").write_text(json.dumps({**settings, "train_config": older}))
    _claim(tmp_path / "cv", settings)  # no error
    changed = {**settings, "train_config": {**now, "epochs": 4}}
    with pytest.raises(ConfigError, match="epochs 3 -> 4"):
        _claim(tmp_path / "cv", changed)


@pytest.mark.parametrize("fixed", [False, True])
def test_multi_label_cv_never_chooses_its_threshold_on_the_test_fold(fast_dataset, tmp_path, fixed):
    cfg = TrainConfig(**{**FAST, "labels": "multi"})
    run_cv(fast_dataset, tmp_path / "ml", cfg, folds=[0], fixed_epochs=fixed, inner_val_fraction=0.25)
    metrics = json.loads((tmp_path / "ml" / "fold_0" / "eval_test" / "metrics.json").read_text())
    run = json.loads((tmp_path / "ml" / "fold_0" / "config.json").read_text())
    source = metrics["multilabel"]["threshold_source"]
    side = "train" if fixed else "val"
    assert source == (f"the training folds (in-sample: --fixed-epochs has no validation split) ({len(run['rows'][side])} recordings)"
                      if fixed else f"the inner validation split ({len(run['rows']['val'])} recordings)")
