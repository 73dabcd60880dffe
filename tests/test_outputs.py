"""Prediction tables and writers, on hand-made results (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdspec.errors import ConfigError
from birdspec.formats import RAVEN_COLUMNS, birdclef_row_id
from birdspec.prediction.outputs import PredictionWriter, audacity_lines, birdclef_rows, raven_table, scores_table
from birdspec.prediction.predictor import FileResult
from birdspec.prediction.selection import topk_indices

INFO = [
    {"label": "a", "scientific_name": "Avis a", "common_name": "Bird A"},
    {"label": "b", "scientific_name": "Avis b", "common_name": "Bird B"},
    {"label": "c", "scientific_name": "", "common_name": ""},
]


def result(path="/data/site1_rec.ogg", scores=None, stacked=False) -> FileResult:
    scores = np.asarray(scores if scores is not None else [[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [0.4, 0.35, 0.25]], dtype=np.float32)
    n = len(scores)
    windows = pd.DataFrame({"window": np.arange(n), "start_s": 5.0 * np.arange(n), "end_s": 5.0 * np.arange(n) + 5})
    windows.loc[n - 1, "end_s"] = 5.0 * (n - 1) + 2.5  # a partial last window
    if stacked:
        windows["context_start_s"] = 0.0
        windows["context_end_s"] = windows["end_s"].max()
    return FileResult(path, Path(path).name, float(windows["end_s"].max()), windows, scores)


def test_topk_indices():
    s = np.array([[0.1, 0.6, 0.3], [0.5, 0.5, 0.0]], dtype=np.float32)
    rows, ranks, cls = topk_indices(s, min_conf=0.2, top_k=2)
    assert rows.tolist() == [0, 0, 1, 1] and ranks.tolist() == [1, 2, 1, 2] and cls.tolist() == [1, 2, 0, 1]
    rows, ranks, cls = topk_indices(s, min_conf=0.0, top_k=0)
    assert len(rows) == 6
    assert len(topk_indices(np.zeros((0, 3), np.float32), min_conf=0.1, top_k=3)[0]) == 0


def test_long_and_wide_tables():
    long = scores_table(result(), class_info=INFO, mode="topk", min_conf=0.3, top_k=2)
    assert list(long.columns) == ["file", "window", "start_s", "end_s", "rank", "label", "scientific_name", "common_name", "confidence"]
    assert long[["window", "label"]].values.tolist() == [[0, "a"], [1, "c"], [2, "a"], [2, "b"]]
    assert long["confidence"].tolist() == pytest.approx([0.7, 0.9, 0.4, 0.35])
    assert long["common_name"].tolist() == ["Bird A", "", "Bird A", "Bird B"]
    wide = scores_table(result(stacked=True), class_info=INFO, mode="all")
    assert list(wide.columns) == ["file", "window", "start_s", "end_s", "context_start_s", "context_end_s", "a", "b", "c"]
    assert wide["end_s"].tolist() == [5.0, 10.0, 12.5]
    with pytest.raises(ConfigError):
        scores_table(result(), class_info=INFO, mode="nope")


def test_raven_audacity_birdclef():
    r = raven_table(result(), class_info=INFO, min_conf=0.3, top_k=2, low_freq_hz=50, high_freq_hz=14000)
    assert tuple(r.columns) == RAVEN_COLUMNS
    assert r["Selection"].tolist() == [1, 2, 3, 4]
    assert r["Common Name"].tolist() == ["Bird A", "c", "Bird A", "Bird B"]  # falls back to the code
    assert r["End Time (s)"].tolist() == [5.0, 10.0, 12.5, 12.5]
    lines = audacity_lines(result(), class_info=INFO, min_conf=0.3, top_k=1)
    assert lines == ["0.000000\t5.000000\ta 0.700", "5.000000\t10.000000\tc 0.900", "10.000000\t12.500000\ta 0.400"]
    sub = birdclef_rows(result(), class_info=INFO, min_conf=0.5, top_k=0)
    assert sub.values.tolist() == [["site1_rec_5", "a"], ["site1_rec_10", "c"], ["site1_rec_12", "nocall"]]
    assert birdclef_row_id("7019_COR_20190904", 600.0) == "7019_COR_600"
    assert birdclef_row_id("osm-1min", 60.0) == "osm-1min_60"


def test_writers(tmp_path, capsys):
    ok, bad = result(), FileResult("/x/bad.wav", "bad.wav", 0.0, result().windows.iloc[:0], np.zeros((0, 3), np.float32), "bad.wav: corrupt")
    w = PredictionWriter("csv", tmp_path / "p.csv", class_info=INFO, min_conf=0.3, top_k=2)
    for r in (ok, bad, result(path="/y/other.wav")):
        w.write(r)
    failed = w.close()
    df = pd.read_csv(tmp_path / "p.csv")
    assert len(df) == 8 and failed == tmp_path / "p.csv.failed.csv"
    assert pd.read_csv(failed).values.tolist() == [["/x/bad.wav", "bad.wav: corrupt"]]

    w = PredictionWriter("raven", tmp_path / "raven", class_info=INFO, min_conf=0.3, top_k=2, freq_band_hz=(50, 14000))
    w.write(result(path="/a/rec.wav"))
    w.write(FileResult("/b/rec.wav", "rec.wav", 12.5, result().windows, result().scores))  # same stem
    w.write(bad)
    assert w.close() == tmp_path / "raven" / "failed.csv"
    assert sorted(p.name for p in (tmp_path / "raven").glob("*.txt")) == ["rec.BirdSpec.selection.table.txt", "rec_2.BirdSpec.selection.table.txt"]

    w = PredictionWriter("birdclef", "-", class_info=INFO, min_conf=0.5, top_k=0)
    w.write(ok)
    assert w.close() is None
    assert capsys.readouterr().out.splitlines()[:2] == ["row_id,birds", "site1_rec_5,a"]

    w = PredictionWriter("parquet", tmp_path / "p.parquet", class_info=INFO, min_conf=0.0, top_k=0, scores="all")
    w.write(ok)
    w.write(result(path="/z/z.wav"))
    w.close()
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 6

    w = PredictionWriter("csv", tmp_path / "empty.csv", class_info=INFO, min_conf=0.3, top_k=2)
    w.write(bad)
    w.close()
    assert "label" in pd.read_csv(tmp_path / "empty.csv").columns

    with pytest.raises(ConfigError):
        PredictionWriter("raven", "-", class_info=INFO, min_conf=0.1, top_k=1)
    with pytest.raises(ConfigError):
        PredictionWriter("audacity", tmp_path / "x", class_info=INFO, min_conf=0.1, top_k=1, scores="all")
