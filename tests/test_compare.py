"""`birdspec compare`: table, figures and a self-contained HTML report for two runs."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from birdspec.cli.main import main
from birdspec.evaluation.compare import compare_runs, run_names
from birdspec.evaluation.evaluate import evaluate_run

from helpers import make_run

PNGS = ("compare_curves.png", "compare_metrics.png", "compare_confusion.png")


@pytest.fixture(scope="module")
def two_runs(tiny_stack_dataset, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("cmp")
    return [
        make_run(root / "mnv2", tiny_stack_dataset, model="mobilenetv2-seed", epochs=5, train_time_s=30.0),
        make_run(root / "resnet18", tiny_stack_dataset, model="resnet18", seed=1, epochs=4, train_time_s=90.0),
    ]


def test_compare_two_runs(two_runs, tmp_path):
    evaluate_run(two_runs[0], device="cpu")  # an up-to-date RUN_DIR/eval_val is reused
    out = tmp_path / "cmp"
    result = compare_runs(two_runs, out_dir=out, device="cpu", timing_batch_size=2, timing_repeats=1)
    for name in ("comparison.md", "comparison.csv", "report.html", *PNGS):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "comparison.csv")
    assert table["run"].tolist() == ["mnv2", "resnet18"]
    assert table["model"].tolist() == ["mobilenetv2-seed", "resnet18"]
    for col in ("encoding", "num_parameters", "multiply_adds_per_sample", "best_val_acc", "macro_f1", "train_time_s",
                "inference_ms_per_sample"):
        assert table[col].notna().all(), col
    assert table["num_parameters"][1] > 10 * table["num_parameters"][0]
    assert table["multiply_adds_per_sample"][1] > table["multiply_adds_per_sample"][0]
    assert not (out / "runs" / "mnv2").exists() and (out / "runs" / "resnet18" / "eval_val" / "metrics.json").is_file()
    md = (out / "comparison.md").read_text()
    assert "| run | model |" in md and "compare_curves.png" in md and "resnet18" in md
    html = (out / "report.html").read_text()
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', html)
    assert len(images) >= 3 + 2 * 2  # three comparison figures, curves.png and per_class.png per run
    assert sum("curves.png" in a for a in images) == 2
    assert "<table>" in html and "mobilenetv2-seed" in html
    assert result.report == out / "report.html"


def test_cli_compare(two_runs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", *map(str, two_runs), "--out", str(out), "--device", "cpu", "--no-timing"]) == 0
    text = capsys.readouterr().out
    assert "report" in text and "resnet18" in text
    assert pd.read_csv(out / "comparison.csv")["inference_ms_per_sample"].isna().all()
    assert main(["compare", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_run_names_are_unique():
    assert run_names([Path("a/run"), Path("b/run"), Path("c/x")]) == ["a/run", "b/run", "x"]
    assert run_names([Path("a/run"), Path("a/run")]) == ["a/run", "a/run (2)"]
