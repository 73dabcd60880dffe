"""`birdspec sweep`: a real 2 x 2 sweep, resuming without retraining, failed trials, Optuna mode."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from birdspec.cli.main import main
from birdspec.errors import ConfigError, TrainingError
from birdspec.experiments.sweep import Trial, grid_trials, parse_list, run_sweep
from birdspec.training import TrainConfig

FAST = {"epochs": 1, "batch_size": 8, "device": "cpu", "workers": 0, "progress_bar": False}
SWEEP_KEYS = ("optimizer", "lr", "best_val_acc", "best_val_loss", "best_epoch", "train_time_s", "run_dir", "status")


class FakeTrain:
    """Stands in for `train`: writes config.json and summary.json; counts calls; fails chosen trials."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail = set(fail)

    def __call__(self, dataset_dir, out_dir, config, *, rows_train=None, rows_val=None, resume=False):
        out = Path(out_dir)
        name = Trial(config.optimizer, config.lr).name
        self.calls.append((name, resume))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"train_config": config.to_dict()}))
        if name in self.fail:
            raise TrainingError(f"non-finite training loss nan at lr {config.lr}")
        acc = 0.5 + 0.1 * (config.optimizer == "adamw") + config.lr
        (out / "summary.json").write_text(json.dumps(
            {"best_val_acc": acc, "best_val_loss": 1 - acc, "best_epoch": 1, "epochs_run": 1, "train_time_s": 0.1}))


def test_parse_and_grid():
    assert parse_list("adamw, sgd,adamw") == ["adamw", "sgd"]
    assert parse_list("0.1,1e-3", kind=float) == [0.1, 0.001]
    with pytest.raises(ConfigError):
        parse_list("0.1,x", kind=float, what="learning rates")
    with pytest.raises(ConfigError, match="unknown optimizer"):
        grid_trials(["adamw", "lion"], [0.1])
    assert [t.name for t in grid_trials(["sgd"], [0.1, 1e-5])] == ["sgd_lr0.1", "sgd_lr1e-05"]


def test_real_sweep_2x2_and_resume(fast_dataset, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", str(fast_dataset), "--model", "mobilenetv2-seed", "--optimizers", "adamw,sgd",
            "--lrs", "0.01,0.001", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--workers", "0",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert "best" in capsys.readouterr().out
    table = pd.read_csv(out / "sweep.csv")
    for key in SWEEP_KEYS:
        assert key in table.columns, key
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert set(zip(table["optimizer"], table["lr"], strict=True)) == {("adamw", 0.01), ("adamw", 0.001), ("sgd", 0.01), ("sgd", 0.001)}
    assert (out / "sweep.png").stat().st_size > 10_000
    for run_dir in table["run_dir"]:
        run = Path(run_dir)
        assert run.parent == out / "trials" and (run / "summary.json").is_file() and (run / "checkpoints" / "best.pt").is_file()
        cfg = json.loads((run / "config.json").read_text())["train_config"]
        assert f"{cfg['optimizer']}_lr{cfg['lr']:g}" == run.name
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/summary.json")}

    # re-running trains nothing: summaries untouched, the counter stays at 0
    counter = FakeTrain()
    config = TrainConfig(model="mobilenetv2-seed", **FAST)
    result = run_sweep(fast_dataset, out, config, optimizers=["adamw", "sgd"], lrs=[0.01, 0.001], train_fn=counter)
    assert counter.calls == [] and result.trained == 0 and result.skipped == 4
    assert {p: p.stat().st_mtime_ns for p in out.glob("trials/*/summary.json")} == mtimes
    pd.testing.assert_frame_equal(pd.read_csv(out / "sweep.csv"), table)
    assert result.table["trial"].tolist() == table["trial"].tolist()

    # other settings are refused, extending the grid trains only the new trials
    with pytest.raises(ConfigError, match="other settings"):
        run_sweep(fast_dataset, out, replace(config, epochs=2), optimizers=["adamw"], lrs=[0.01], train_fn=counter)
    result = run_sweep(fast_dataset, out, config, optimizers=["adamw", "sgd"], lrs=[0.01, 0.001, 0.1], train_fn=counter)
    assert sorted(c[0] for c in counter.calls) == ["adamw_lr0.1", "sgd_lr0.1"]
    assert len(result.table) == 6


def test_failed_trial_is_recorded_and_sweep_continues(fast_dataset, tmp_path):
    config = TrainConfig(model="mobilenetv2-seed", **FAST)
    fake = FakeTrain(fail={"sgd_lr0.1"})
    result = run_sweep(fast_dataset, tmp_path / "s", config, optimizers=["adamw", "sgd"], lrs=[0.1, 0.01], train_fn=fake)
    table = pd.read_csv(tmp_path / "s" / "sweep.csv")
    failed = table[table["status"] == "failed"]
    assert failed["trial"].tolist() == ["sgd_lr0.1"] and "non-finite" in failed["error"].iloc[0]
    assert (table["status"] == "ok").sum() == 3 and len(fake.calls) == 4
    assert result.best["trial"] == "adamw_lr0.1"
    assert (tmp_path / "s" / "sweep.png").is_file()
    # keep failed ones failed, or retry them (continuing the failed run directory)
    keep = FakeTrain()
    run_sweep(fast_dataset, tmp_path / "s", config, optimizers=["adamw", "sgd"], lrs=[0.1, 0.01], train_fn=keep,
              retry_failed=False)
    assert keep.calls == []
    retry = FakeTrain()
    result = run_sweep(fast_dataset, tmp_path / "s", config, optimizers=["adamw", "sgd"], lrs=[0.1, 0.01], train_fn=retry)
    assert retry.calls == [("sgd_lr0.1", True)] and (result.table["status"] == "ok").all()


def test_optuna_search_resumes(fast_dataset, tmp_path):
    pytest.importorskip("optuna")
    config = TrainConfig(model="mobilenetv2-seed", **FAST)
    grid = {"optimizers": ["adamw", "sgd"], "lrs": [0.1, 0.01, 0.001]}
    fake = FakeTrain()
    result = run_sweep(fast_dataset, tmp_path / "o", config, trials=3, train_fn=fake, **grid)
    assert result.mode == "optuna" and len(fake.calls) == len(result.table) <= 3
    assert all(0.001 <= lr <= 0.1 for lr in result.table["lr"])
    again = FakeTrain()
    result2 = run_sweep(fast_dataset, tmp_path / "o", config, trials=3, train_fn=again, **grid)
    assert again.calls == [] and result2.table["trial"].tolist() == result.table["trial"].tolist()
    more = FakeTrain()
    result3 = run_sweep(fast_dataset, tmp_path / "o", config, trials=5, train_fn=more, **grid)
    assert len(more.calls) <= 2 and result3.table["trial"].tolist()[: len(result.table)] == result.table["trial"].tolist()
    # trials >= grid size runs the plain grid
    full = FakeTrain()
    assert run_sweep(fast_dataset, tmp_path / "g", config, trials=6, train_fn=full, **grid).mode == "grid"
    assert len(full.calls) == 6


def test_spectrogram_types_as_a_sweep_dimension(fast_dataset, tmp_path):
    seen = []

    def fake(dataset_dir, out_dir, config, *, rows_train=None, rows_val=None, resume=False):
        seen.append((Path(out_dir).name, config.frontend))
        FakeTrain()(dataset_dir, out_dir, config, rows_train=rows_train, rows_val=rows_val, resume=resume)

    config = TrainConfig(model="mobilenetv2-seed", **FAST)
    result = run_sweep(fast_dataset, tmp_path / "s", config, optimizers=["adamw"], lrs=[0.01, 0.001],
                       frontends=["logmel", "pcen"], train_fn=fake)
    assert seen == [("logmel_adamw_lr0.01", "logmel"), ("logmel_adamw_lr0.001", "logmel"),
                    ("pcen_adamw_lr0.01", "pcen"), ("pcen_adamw_lr0.001", "pcen")]
    assert result.table["frontend"].tolist() == ["logmel", "logmel", "pcen", "pcen"]
    assert (tmp_path / "s" / "sweep.png").is_file()
    with pytest.raises(ConfigError, match="unknown spectrogram type"):
        grid_trials(["adamw"], [0.1], ["cqt"])
