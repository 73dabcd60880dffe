"""benchmarks/annotations.py: calls.csv become Raven tables that read back as the calls, the table and the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_benchmarks import _benchmark


@pytest.fixture(scope="module")
def bench():
    return _benchmark("annotations")


def test_calls_become_raven_tables_that_read_back(bench, tmp_path, monkeypatch):
    from birdspec.data.annotations import read_tables

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset.json").write_text(json.dumps({"class_info": [
        {"label": "sedwar1", "scientific_name": "Acrocephalus schoenobaenus", "common_name": "Sedge Warbler"}]}))
    scape = tmp_path / "scapes" / "fold2"
    (scape / "audio").mkdir(parents=True)
    for stem in ("fold2-000", "fold2-001"):
        (scape / "audio" / f"{stem}.flac").write_bytes(b"")
    pd.DataFrame({"audio_id": ["fold2-000", "fold2-000"], "label": ["sedwar1", "sedwar1"], "start_s": [1.25, 30.5],
                  "end_s": [4.0, 33.125]}).to_csv(scape / "calls.csv", index=False)
    import birdspec.data.prepared as prepared

    class Fake:
        def __init__(self, root):
            self.meta = json.loads((Path(root) / "dataset.json").read_text())

    monkeypatch.setattr(prepared, "PreparedDataset", Fake)  # only its class_info is read
    dirs = bench.write_tables(ds, {2: scape}, tmp_path / "out")
    found = read_tables([dirs[2]])
    assert sorted((b.recording, b.start_s, b.end_s, b.label, b.names) for b in found.boxes) == [
        ("fold2-000", 1.25, 4.0, "sedwar1", ("Sedge Warbler", "Acrocephalus schoenobaenus")),
        ("fold2-000", 30.5, 33.125, "sedwar1", ("Sedge Warbler", "Acrocephalus schoenobaenus"))]
    assert found.empty == ["fold2-001"]  # a soundscape without calls: annotated, nothing in it


def _row(variant: str, fold: int, f1: float, row: float) -> dict:
    stored = {"micro_f1": f1, "micro_precision": f1, "micro_recall": f1, "event_recall": f1, "false_per_hour": 10.0}
    return {"variant": variant, "fold": fold, "stored": stored, "all_scores": {"mean_ap": f1}, "row_f1_stored": row,
            "row_f1_tuned": row}


def test_table_and_verdict(bench):
    rows = [_row("focal", k, 0.4 + 0.01 * k, 0.5) for k in range(3)] + \
           [_row("annotated", k, 0.6 + 0.02 * k, 0.5 + 0.001 * k) for k in range(3)]
    text = bench.markdown(rows)
    assert "| focal recordings only | 3 | 0.410 ± 0.010 |" in text
    verdict = bench.verdict(rows).splitlines()
    assert "window F1 at the stored thresholds by +0.210" in verdict[0] and "more than the fold spread" in verdict[0]
    assert "not more than the fold spread" in verdict[1]
    assert "one fold" in bench.verdict(rows[:1] + rows[3:4])


def test_annotated_runs_get_the_focal_runs_training_samples(bench, tmp_path):
    """'equal': the recipe's 20 epochs x focal rows / all rows of the training folds (the held-out fold left out)."""
    ds = tmp_path / "ds"
    ds.mkdir()
    rows = [("focal", k % 5) for k in range(50)] + [("soundscape", k % 5) for k in range(150)]
    pd.DataFrame(rows, columns=["origin", "fold"]).to_csv(ds / "manifest.csv", index=False)
    assert bench.annotated_epochs(ds, 0, "equal", None) == 5  # 40 focal of 160 training rows
    assert bench.annotated_epochs(ds, 0, "equal", 2) == 1  # never 0
    assert bench.annotated_epochs(ds, 0, "12", None) == 12


def test_teacher_labels_table_and_missing_teacher(tmp_path):
    """benchmarks/teacher_labels.py: its row, and a missing teacher model says how to make it."""
    from test_benchmarks import _benchmark

    teacher = _benchmark("teacher_labels")
    rows = [{**_row("teacher", k, 0.5 + 0.1 * k, 0.6), "teacher_row_f1": 0.8} for k in range(2)]
    text = teacher.markdown(rows)
    assert "| birdnet-prior's detections (teacher labels) | 2 | 0.800 ± 0.000 | 0.550 ± 0.071 | 10.000 ± 0.000 |" in text
    with pytest.raises(SystemExit, match="--variants birdnet-prior --folds 3"):
        teacher.teacher_checkpoint(tmp_path, 3)
