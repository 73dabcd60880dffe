"""The BirdCLEF 2021 row-wise micro F1 and its threshold search, on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdspec.cli.main import main
from birdspec.errors import ConfigError, DataError
from birdspec.evaluation.scoring import (
    birdclef_f1,
    parse_birds,
    parse_thresholds,
    row_f1,
    score_soundscapes,
)

TRUTH = pd.DataFrame({"row_id": ["s1_5", "s1_10", "s1_15"], "birds": ["a", "nocall", "a b"]})
# scores per class for the three rows
SCORES = pd.DataFrame({"row_id": ["s1_5", "s1_10", "s1_15"], "a": [0.9, 0.2, 0.6], "b": [0.4, 0.1, 0.5]})


def test_row_f1_by_hand():
    assert row_f1({"a", "b"}, {"a"}) == pytest.approx(2 / 3)  # 2*1 / (2+1)
    assert row_f1({"nocall"}, {"nocall"}) == 1.0
    assert row_f1(set(), {"nocall"}) == 1.0  # empty prediction = nocall
    assert row_f1({"b"}, {"a", "b"}) == pytest.approx(2 / 3)
    assert row_f1({"nocall"}, {"a"}) == 0.0
    assert parse_birds("a  b") == {"a", "b"} and parse_birds(float("nan")) == {"nocall"} and parse_birds("") == {"nocall"}


def test_submission_f1_by_hand(tmp_path):
    truth = tmp_path / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    sub = tmp_path / "sub.csv"
    pd.DataFrame({"row_id": ["s1_5", "s1_10", "s1_15"], "birds": ["a b", "nocall", "b"]}).to_csv(sub, index=False)
    r = score_soundscapes(sub, truth)
    assert r.f1 == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)  # 7/9
    assert r.threshold is None and r.rows == 3 and r.missing == 0
    # a missing row counts as nocall: s1_10 (truth nocall) still scores 1
    pd.DataFrame({"row_id": ["s1_5", "s1_15", "other_5"], "birds": ["a b", "b", "a"]}).to_csv(sub, index=False)
    r = score_soundscapes(sub, truth)
    assert r.f1 == pytest.approx(7 / 9) and r.missing == 1 and r.extra == 1


def test_threshold_search_by_hand(tmp_path):
    truth = tmp_path / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    wide = tmp_path / "wide.csv"
    SCORES.to_csv(wide, index=False)
    r = score_soundscapes(wide, truth, thresholds="0.3,0.45,0.55,0.95")
    # t=0.3: {a,b} {nocall} {a,b} -> 2/3, 1, 1; t=0.45: {a} {nocall} {a,b} -> 1, 1, 1
    # t=0.55: {a} {nocall} {a} -> 1, 1, 2/3;     t=0.95: nocall everywhere -> 0, 1, 0
    assert r.curve["f1"].tolist() == pytest.approx([8 / 9, 1.0, 8 / 9, 1 / 3])
    assert r.f1 == 1.0 and r.threshold == 0.45


def test_predict_tables_as_scores(tmp_path):
    truth = tmp_path / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    files = ["/x/s1.ogg"] * 3
    ends = [5.0, 10.0, 15.0]
    # the wide table of `birdspec predict --scores all`
    wide = pd.DataFrame({"file": files, "window": [0, 1, 2], "start_s": [0.0, 5.0, 10.0], "end_s": ends, "a": SCORES["a"], "b": SCORES["b"]})
    wide.to_csv(tmp_path / "wide.csv", index=False)
    # the long table of `birdspec predict --top-k 0 --min-conf 0`
    long = pd.DataFrame(
        [{"file": f, "window": i, "start_s": e - 5, "end_s": e, "rank": 1, "label": lab, "confidence": s}
         for i, (f, e) in enumerate(zip(files, ends, strict=True)) for lab, s in (("a", SCORES["a"][i]), ("b", SCORES["b"][i]))]
    )
    long.to_csv(tmp_path / "long.csv", index=False)
    for name in ("wide.csv", "long.csv"):
        r = score_soundscapes(tmp_path / name, truth, thresholds="0.3,0.45,0.55,0.95")
        assert r.curve["f1"].tolist() == pytest.approx([8 / 9, 1.0, 8 / 9, 1 / 3]), name


def test_kaggle_row_ids_from_file_names():
    truth = {"7019_COR_5": {"a"}, "7019_COR_10": {"nocall"}}
    wide = pd.DataFrame({"file": ["7019_COR_20190904.ogg"] * 2, "end_s": [5.0, 10.0], "a": [0.8, 0.1]})
    r = score_soundscapes(wide, truth, thresholds="0.5")
    assert r.f1 == 1.0


def test_thresholds_and_errors(tmp_path):
    assert parse_thresholds("0.05:0.95:0.05").tolist() == pytest.approx(np.arange(1, 20) * 0.05)
    assert parse_thresholds("0.5").tolist() == [0.5]
    for bad in ("0.9:0.1:0.1", "a:b:c", "2", "0.1:0.5:0"):
        with pytest.raises(ConfigError):
            parse_thresholds(bad)
    with pytest.raises(DataError):
        birdclef_f1({}, {})
    with pytest.raises(DataError):
        score_soundscapes(pd.DataFrame({"row_id": ["zz_5"], "birds": ["a"]}), {"s1_5": {"a"}})


def test_cli(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    SCORES.to_csv(tmp_path / "wide.csv", index=False)
    assert main(["score-soundscapes", str(tmp_path / "wide.csv"), str(truth), "--thresholds", "0.45", "--curve", str(tmp_path / "c.csv")]) == 0
    assert "1.0000 at threshold 0.45" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "c.csv")["f1"].tolist() == [1.0]
    assert main(["score-soundscapes", str(tmp_path / "wide.csv"), str(truth), "--thresholds", "x"]) == 2
    assert main(["score-soundscapes", str(tmp_path / "missing.csv"), str(truth)]) == 2


def test_cli_says_when_the_best_threshold_is_at_the_grid_edge(tmp_path, capsys, caplog):
    truth = tmp_path / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    SCORES.to_csv(tmp_path / "wide.csv", index=False)
    assert main(["score-soundscapes", str(tmp_path / "wide.csv"), str(truth), "--thresholds", "0.45,0.55,0.95"]) == 0
    said = capsys.readouterr().err + caplog.text
    assert "the best threshold is the lowest one tried (0.45)" in said and "widen --thresholds" in said
    caplog.clear()
    assert main(["score-soundscapes", str(tmp_path / "wide.csv"), str(truth), "--thresholds", "0.3,0.45,0.55"]) == 0
    assert "widen --thresholds" not in capsys.readouterr().err + caplog.text
