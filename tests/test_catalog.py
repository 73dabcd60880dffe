"""Catalogs: layout detection and the readers of every source layout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from birdspec.data.catalog import CATALOG_COLUMNS, fold_codes, parse_label_list, unique_ids
from birdspec.data.catalog_layouts import detect_layout, load_catalog, read_birdclef, read_csv_manifest, scan_folders
from birdspec.errors import ConfigError, DataError

from data_fixtures import Rec, basic_recordings, make_birdclef2021, make_birdclef2022, make_csv, make_folders


@pytest.mark.parametrize(
    "text, expected",
    [
        ("['amecro', 'rewbla']", ["amecro", "rewbla"]),
        ('["amecro"]', ["amecro"]),
        ("[]", []),
        ("['']", []),
        ("", []),
        (None, []),
        (float("nan"), []),
        ("amecro rewbla", ["amecro", "rewbla"]),
        ("amecro;rewbla, amecro", ["amecro", "rewbla"]),
        ("['amecro', 'rewbla'", ["amecro", "rewbla"]),  # cut-off list
        ("'amecro'", ["amecro"]),
        (["x", "y"], ["x", "y"]),
    ],
)
def test_parse_label_list(text, expected):
    assert parse_label_list(text) == expected


def test_unique_ids():
    assert unique_ids(["a", "b"], ["x/a.wav", "x/b.wav"]) == ["a", "b"]
    assert unique_ids(["a", "a"], ["x/a.wav", "y/a.ogg"]) == ["x_a", "y_a"]
    ids = unique_ids(["a", "a", "a"], ["x/a.wav", "x/a.ogg", "y/a.wav"])
    assert len(set(ids)) == 3


def test_birdclef2021(tmp_path):
    recs = basic_recordings(per_class=2)
    root = make_birdclef2021(tmp_path / "bc21", recs)
    assert detect_layout(root) == "birdclef2021"
    cat, layout = load_catalog(root)
    assert layout == "birdclef2021"
    assert tuple(cat.columns[: len(CATALOG_COLUMNS)]) == CATALOG_COLUMNS
    assert len(cat) == len(recs)
    row = cat.iloc[0]
    assert row["id"] == "XC0000"
    assert row["filename"] == "XC0000.wav"  # as in the metadata
    assert row["source_path"] == str(root / "train_short_audio" / "grrwar1" / "XC0000.wav")
    assert row["secondary_labels"] == ["eurwre1", "comcuc"]
    assert cat.iloc[1]["secondary_labels"] == []
    assert row["scientific_name"] == "Acrocephalus arundinaceus"
    assert row["common_name"] == "Great Reed Warbler"
    assert cat["rating"].dtype == np.float64
    assert (cat["fold"] == -1).all()
    for extra in ("type", "latitude", "longitude", "date", "license", "time", "url"):
        assert extra in cat.columns


def test_birdclef2022_and_2025_names(tmp_path):
    recs = basic_recordings(per_class=2)
    root = make_birdclef2022(tmp_path / "bc22", recs)
    assert detect_layout(root) == "birdclef2022"
    cat, _ = load_catalog(root)
    assert cat.iloc[0]["filename"] == "grrwar1/XC0000.wav"
    assert cat.iloc[0]["source_path"] == str(root / "train_audio" / "grrwar1" / "XC0000.wav")
    root25 = make_birdclef2022(tmp_path / "bc25", recs, metadata_name="train.csv")
    assert len(read_birdclef(root25, layout="birdclef2022")) == len(recs)


def test_numeric_labels_stay_strings(tmp_path):
    root = make_birdclef2022(tmp_path / "bc", [Rec("0123", "a.wav"), Rec("1139490", "b.wav")])
    cat, _ = load_catalog(root)
    assert sorted(cat["label"]) == ["0123", "1139490"]


def test_birdclef_errors(tmp_path):
    (tmp_path / "meta").mkdir()
    pd.DataFrame({"primary_label": ["a"], "filename": ["x.ogg"]}).to_csv(tmp_path / "meta" / "train_metadata.csv")
    with pytest.raises(DataError, match="neither train_short_audio"):
        detect_layout(tmp_path / "meta")
    (tmp_path / "meta" / "train_short_audio").mkdir()
    pd.DataFrame({"label": ["a"], "filename": ["x.ogg"]}).to_csv(tmp_path / "meta" / "train_metadata.csv")
    with pytest.raises(DataError, match="primary_label"):
        load_catalog(tmp_path / "meta")


def test_nothing_matches(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no train_metadata.csv and no class folders with audio under .*--layout"):
        load_catalog(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file"):
        load_catalog(tmp_path / "missing")
    with pytest.raises(ConfigError, match="unknown layout"):
        load_catalog(tmp_path / "empty", layout="kaggle")


def test_folders(tmp_path):
    recs = basic_recordings(per_class=3)
    root = make_folders(tmp_path / "f", recs)
    (root / "grrwar1" / "UPPER.WAV").write_bytes(b"x")
    (root / "grrwar1" / ".hidden.wav").write_bytes(b"x")
    (root / "grrwar1" / "readme.txt").write_text("not audio")
    (root / ".git").mkdir()
    (root / ".git" / "x.wav").write_bytes(b"x")
    (root / "loose.wav").write_bytes(b"x")
    (root / "blrwar1" / "site_b").mkdir()
    (root / "blrwar1" / "site_b" / "XC0100.wav").write_bytes(b"x")  # same stem as another file
    assert detect_layout(root) == "folders"
    cat, layout = load_catalog(root)
    assert layout == "folders"
    assert len(cat) == len(recs) + 2
    assert set(cat["label"]) == {"grrwar1", "blrwar1", "marwar3", "sedwar1"}
    assert "grrwar1/UPPER.WAV" in set(cat["filename"])
    assert "grrwar1/site_a/XC0001.wav" in set(cat["filename"])
    assert cat["id"].is_unique
    assert not cat["filename"].str.contains("hidden|loose|readme|.git", regex=True).any()
    assert (cat["scientific_name"] == "").all()
    assert cat["rating"].isna().all()


def test_csv_auto_columns_and_relative_paths(tmp_path):
    recs = basic_recordings(per_class=2)
    csv = make_csv(tmp_path / "c", recs)
    assert detect_layout(csv) == "csv"
    cat, layout = load_catalog(csv)
    assert layout == "csv"
    assert list(cat["label"]) == [r.label for r in recs]
    assert cat.iloc[0]["source_path"] == str(tmp_path / "c" / "audio" / "grrwar1" / "XC0000.wav")
    assert cat.iloc[0]["filename"] == "../audio/grrwar1/XC0000.wav"
    assert "site" in cat.columns
    assert (cat["fold"] == -1).all()


def test_csv_explicit_columns_and_folds(tmp_path):
    recs = basic_recordings(per_class=2)
    folds = ["10", "2", "1", "2", "10", "1", "2", "1"]
    csv = make_csv(tmp_path / "c", recs, folds=folds)
    cat = read_csv_manifest(csv, path_column="path", label_column="species", fold_column="split_id")
    # numeric values sort numerically: 1 -> 0, 2 -> 1, 10 -> 2
    assert list(cat["fold"]) == [2, 1, 0, 1, 2, 0, 1, 0]
    assert list(cat["split_id"]) == folds  # the original value is kept
    with pytest.raises(DataError, match="no fold column 'nope'"):
        read_csv_manifest(csv, fold_column="nope")
    with pytest.raises(DataError, match="no label column"):
        read_csv_manifest(csv, label_column="nope")
    with pytest.raises(ConfigError, match="only apply to the csv layout"):
        load_catalog(tmp_path / "c" / "audio", fold_column="split_id")


def test_csv_fold_column_named_fold(tmp_path):
    csv = tmp_path / "list.csv"
    pd.DataFrame({"file": ["a.wav", "b.wav", "c.wav"], "label": ["x", "y", "x"], "fold": ["b", "a", "c"]}).to_csv(
        csv, index=False
    )
    cat = read_csv_manifest(csv, fold_column="fold")
    assert list(cat["fold"]) == [1, 0, 2]
    assert list(cat["source_fold"]) == ["b", "a", "c"]


def test_csv_cannot_guess(tmp_path):
    csv = tmp_path / "list.csv"
    pd.DataFrame({"where": ["a.wav"], "what": ["x"]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match="--path-column"):
        read_csv_manifest(csv)
    cat = read_csv_manifest(csv, path_column="where", label_column="what")
    assert cat.iloc[0]["label"] == "x"
    assert math.isnan(cat.iloc[0]["rating"])


def test_fold_codes():
    codes, distinct = fold_codes(["b", "a", "b", "c"])
    assert list(codes) == [1, 0, 1, 2] and distinct == ["a", "b", "c"]
    codes, distinct = fold_codes(["3", "10", "3"])
    assert list(codes) == [0, 1, 0] and distinct == ["3", "10"]


def test_scan_folders_without_audio(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="no class folders with audio"):
        scan_folders(tmp_path)
