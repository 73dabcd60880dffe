"""``birdspec learning-curve``: draws grouped by recording, resumable cells, the CSVs and the figure (fake BirdNET)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_birdnet_prior import FakeEmbedder, install_fake_birdnet

from birdspec.data.embed import embed_dataset
from birdspec.errors import ConfigError
from birdspec.experiments.learning_curve import (
    CURVE_CSV,
    CURVE_PNG,
    SUMMARY_CSV,
    draw_rows,
    parse_per_class,
    run_learning_curve,
)


def test_parse_per_class():
    assert parse_per_class("8,1,2,all,4") == (1, 2, 4, 8, None)
    assert parse_per_class("3") == (3,) and parse_per_class(["all"]) == (None,)
    for bad in ("0", "two", ",", "-1"):
        with pytest.raises(ConfigError, match="per-class"):
            parse_per_class(bad)


def test_draw_rows_takes_whole_recordings_per_species():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 1)
    pool = np.arange(9)
    rows = draw_rows(pool, labels, 2, np.random.default_rng(0))
    assert sorted(np.bincount(labels[rows]).tolist()) == [1, 2, 2]  # the species with one recording gives it
    assert len(set(rows.tolist())) == len(rows) and set(rows) <= set(pool)
    assert draw_rows(pool, labels, None, np.random.default_rng(0)).tolist() == list(range(9))
    again = draw_rows(pool, labels, 2, np.random.default_rng(0))
    assert again.tolist() == rows.tolist()  # seeded
    others = {tuple(draw_rows(pool, labels, 2, np.random.default_rng(s))) for s in range(6)}
    assert len(others) > 1


@pytest.fixture()
def fake_birdnet(monkeypatch):
    return install_fake_birdnet(monkeypatch)


@pytest.fixture()
def embedded(tiny_window_dataset, tmp_path) -> Path:
    ds = Path(shutil.copytree(tiny_window_dataset, tmp_path / "ds"))
    embed_dataset(ds, model=FakeEmbedder(), progress=False, hop_s=1.0)
    return ds


def test_learning_curve_writes_tables_and_figure_and_resumes(fake_birdnet, embedded, tmp_path):
    from birdspec.training import TrainConfig

    out = tmp_path / "lc"
    configs = [TrainConfig(model=m, epochs=2, device="cpu", workers=0, progress_bar=False)
               for m in ("birdnet-closed", "birdnet-linear")]
    result = run_learning_curve(embedded, out, configs, per_class=(1, None), draws=2, folds=[0, 1])
    # closed: trained once per fold (2), reused for the 2 draws of k=1 and for k=all; linear: 2 x 2 + 2 cells
    assert result.trained == 2 + 6 and result.skipped == 3 * 2 - 2
    table = pd.read_csv(out / CURVE_CSV, dtype={"k": str})
    assert len(table) == 2 * 3 and set(table["k"]) == {"1", "all"}
    assert (table["n"] == 12).all() and (table["folds"] == 2).all()  # 2 test folds of 6 recordings
    linear = table[table["model"] == "birdnet-linear"].set_index(["k", "draw"])
    assert linear.loc[("1", 0), "n_train_mean"] == 3 and linear.loc[("all", 0), "n_train_mean"] == 18
    closed = table[table["model"] == "birdnet-closed"]
    assert closed["correct"].nunique() == 1 and (closed["n_train_mean"] == 0).all()  # nothing trained: one result
    summary = pd.read_csv(out / SUMMARY_CSV, dtype={"k": str})
    assert len(summary) == 4 and summary.loc[summary["k"] == "1", "draws"].tolist() == [2, 2]
    assert ((summary["accuracy_min"] <= summary["accuracy_mean"]) & (summary["accuracy_mean"] <= summary["accuracy_max"])).all()
    assert (out / CURVE_PNG).stat().st_size > 10_000
    again = run_learning_curve(embedded, out, configs, per_class=(1, None), draws=2, folds=[0, 1])
    assert again.trained == 0 and again.table.equals(result.table)
    with pytest.raises(ConfigError, match="other settings"):
        run_learning_curve(embedded, out, configs[1:], per_class=(1,), draws=3, folds=[0, 1])
    with pytest.raises(ConfigError, match="early-stopping"):
        run_learning_curve(embedded, tmp_path / "es", [TrainConfig(model="birdnet-linear", early_stopping_patience=2)])


def test_learning_curve_command(fake_birdnet, embedded, tmp_path, capsys):
    from birdspec.cli.main import main

    out = tmp_path / "cli"
    argv = ["learning-curve", str(embedded), "--model", "birdnet-closed", "--per-class", "1,all", "--draws", "1",
            "--folds", "0", "--out", str(out), "--device", "cpu", "--workers", "0", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "birdnet-closed" in text and "learning_curve.csv" in text
    assert (out / CURVE_PNG).is_file()
    assert main(["learning-curve", str(embedded), "--out", str(out)]) == 2  # no model named
    assert "--model" in capsys.readouterr().err


def test_few_shot_benchmark_keeps_cells_and_resumes_in_a_fresh_work_folder(fake_birdnet, embedded, tmp_path):
    """benchmarks/few_shot.py keeps each finished cell's small files; a new checkout's run trains nothing again."""
    from test_benchmarks import _benchmark

    from birdspec.training import TrainConfig

    few_shot = _benchmark("few_shot")
    kept = tmp_path / "kept"
    configs = [TrainConfig(model=m, epochs=2, device="cpu", workers=0, progress_bar=False)
               for m in ("birdnet-closed", "birdnet-linear")]

    def run(out: Path):
        ds = few_shot.encoding_dir(out, few_shot.ENCODING)
        if not ds.exists():
            shutil.copytree(embedded, ds)
        results = []
        for cfg in configs:
            seen = []
            results.append(run_learning_curve(
                ds, few_shot.curves_dir(out, cfg.model), [cfg], per_class=(1, None), draws=2, folds=[0, 1],
                on_cell=lambda model_dir, cell, result, seen=seen: seen.append(few_shot.keep_cell(out, kept, model_dir, cell))))
            assert len(seen) == 3 * 2  # every cell, trained or reused
        return results

    first = run(tmp_path / "one")
    assert sum(r.trained for r in first) == 8
    files = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())
    assert all(f.endswith(("result.json", "settings.json", "predictions.csv.gz")) for f in files)
    assert sum(f.endswith("result.json") for f in files) == 12
    assert '"dataset": "OUT/data-window"' in next(kept.rglob("settings.json")).read_text()  # no checkout's path

    fresh = tmp_path / "two"
    assert few_shot.restore_cells(kept, fresh) == len(files)
    again = run(fresh)
    assert sum(r.trained for r in again) == 0
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a.table, b.table)
    assert few_shot.restore_cells(kept, fresh) == 0  # what the work folder holds is never overwritten
