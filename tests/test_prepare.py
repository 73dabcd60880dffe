"""prepare(): decoding, cleaning, splits/folds, the on-disk format, atomicity; and the CLI."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold

from birdspec import audio
from birdspec.cli.main import main
from birdspec.config import EncodingConfig, FrontendConfig, to_dict
from birdspec.data import decode
from birdspec.data.prepare import prepare
from birdspec.data.prepared import MANIFEST_COLUMNS, count_samples, describe, partial_dir, reason_kind
from birdspec.data.splits import num_val, stratified_folds, train_val_split
from birdspec.data.store import WaveformStore
from birdspec.errors import ConfigError, DataError

from data_fixtures import (
    Rec,
    basic_recordings,
    make_birdclef2021,
    make_birdclef2022,
    make_csv,
    make_folders,
    messy_recordings,
)

SMALL = EncodingConfig(name="stack10", num_windows=2, window_s=0.5, short_policy="drop")
"""A 1 s stack: the 50 s study setting scaled down for 1.5 s test files."""


def run(source, out, **kwargs) -> Path:
    kwargs.setdefault("encoding", SMALL)
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("progress", False)
    return prepare(source, out, **kwargs)


def read_manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype={"id": str, "label": str}, keep_default_na=False, na_values=[""])


def skipped_by_name(out: Path) -> dict[str, str]:
    df = pd.read_csv(out / "skipped.csv", keep_default_na=False)
    return {Path(p).name: r for p, r in zip(df["path"], df["reason"], strict=True)}


# --------------------------------------------------------------------------- splits (pure)


def test_num_val():
    assert [num_val(n, 0.3) for n in (0, 1, 2, 3, 4, 10, 24, 27)] == [0, 0, 1, 1, 1, 3, 7, 8]
    assert num_val(5, 0.0) == 0
    assert num_val(3, 0.9) == 2  # never all of a class


def test_train_val_split_stratified_and_deterministic():
    labels = ["a"] * 10 + ["b"] * 7 + ["c"] * 1 + ["d"] * 2
    files = [f"{lab}{i:02d}.wav" for i, lab in enumerate(labels)]
    split = train_val_split(files, labels, val_fraction=0.3, seed=0)
    df = pd.DataFrame({"label": labels, "split": split})
    val = df[df["split"] == "val"].groupby("label").size().to_dict()
    assert val == {"a": 3, "b": 2, "d": 1}
    assert set(split) == {"train", "val"}
    # deterministic, independent of row order and of the other species
    perm = np.random.default_rng(1).permutation(len(files))
    again = train_val_split([files[i] for i in perm], [labels[i] for i in perm], val_fraction=0.3, seed=0)
    assert list(again) == [split[i] for i in perm]
    only_a = train_val_split(files[:10], labels[:10], val_fraction=0.3, seed=0)
    assert list(only_a) == list(split[:10])
    assert list(train_val_split(files, labels, val_fraction=0.3, seed=1)) != list(split)
    with pytest.raises(ConfigError):
        train_val_split(files, labels, val_fraction=1.0)


def test_stratified_folds_exact_recipe():
    rng = np.random.default_rng(0)
    labels = list(rng.choice(["x", "y", "z"], size=40))
    files = [f"XC{rng.integers(1e6):07d}.ogg" for _ in labels]
    folds = stratified_folds(files, labels, n_folds=4, seed=3)
    df = pd.DataFrame({"filename": files, "label": labels}).sort_values("filename")
    expected = pd.Series(-1, index=df.index)
    skf = StratifiedKFold(n_splits=4, shuffle=True, random_state=3)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(df)), df["label"])):
        expected.iloc[test] = k
    assert list(folds) == list(expected.sort_index())
    with pytest.raises(ConfigError):
        stratified_folds(files, labels, n_folds=1)
    with pytest.raises(ConfigError, match="cannot make 50 folds"):
        stratified_folds(files, labels, n_folds=50)


def test_count_samples():
    window = EncodingConfig(name="window", window_s=5.0)
    assert count_samples(32000 * 23, encoding=window) == 4
    assert count_samples(32000 * 3, encoding=window) == 0
    assert count_samples(32000 * 3, encoding=EncodingConfig(name="window", short_policy="pad")) == 1
    assert count_samples(32000 * 49, encoding=EncodingConfig()) == 0
    assert count_samples(32000 * 49, encoding=EncodingConfig(short_policy="tile")) == 1
    assert count_samples(32000 * 120, encoding=EncodingConfig()) == 1


def test_reason_kind():
    assert reason_kind("too short (31.2 s < 50 s, policy drop)") == "too short"
    assert reason_kind("unreadable: Format not recognised.") == "unreadable"
    assert reason_kind("rating 2 < min 3") == "rating"
    assert reason_kind("duration 3.1 s < min 5 s") == "duration"
    assert reason_kind("all silent") == "all silent"


# --------------------------------------------------------------------------- one messy BirdCLEF 2021 source


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[Path, Path]:
    root = make_birdclef2021(tmp_path_factory.mktemp("messy") / "bc21", messy_recordings())
    out = run(root, root.parent / "out", folds=2)
    return root, out


def test_messy_skips_bad_files_with_reasons(messy):
    _, out = messy
    reasons = skipped_by_name(out)
    assert reasons["XC0201.wav"] == "too short (0.4 s < 1 s, policy drop)"
    assert reasons["XC0202.ogg"] == "empty"
    assert reasons["XC0203.ogg"].startswith("unreadable: ")
    assert reasons["XC0204.wav"] == "all silent"
    assert len(reasons) == 4
    m = read_manifest(out)
    assert sorted(m["filename"]) == sorted(
        r.name for r in messy_recordings() if r.name not in reasons
    )  # every format, stereo 48 kHz, mp3 with trailing junk all kept


def test_messy_manifest_format(messy):
    _, out = messy
    m = read_manifest(out)
    assert tuple(m.columns[: len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert {"type", "latitude", "longitude", "date", "license", "time", "url"} <= set(m.columns)
    assert m["id"].is_unique
    assert list(m["label_id"]) == [sorted(set(m["label"])).index(lab) for lab in m["label"]]
    assert json.loads(m.loc[m["filename"] == "XC0001.wav", "secondary_labels"].iloc[0]) == ["eurwre1", "comcuc"]
    assert set(m["split"]) <= {"train", "val"}
    assert set(m["fold"]) == {0, 1}
    # every recording is 1.5 s, whatever its rate and channels: 48 000 samples at 32 kHz
    assert (m["num_samples"] == 48000).all()
    assert np.allclose(m["duration_s"], 1.5)
    assert list(m["offset"]) == list(np.cumsum([0] + list(m["num_samples"][:-1])))


def test_messy_store_holds_the_decoded_audio(messy):
    _, out = messy
    m = read_manifest(out)
    store = WaveformStore(out / "waveforms.f16")
    assert len(store) == m["num_samples"].sum()
    for _, row in m.iterrows():
        stored = store.read(int(row["offset"]), int(row["num_samples"]))
        expected = audio.load(row["source_path"])
        assert stored.shape == expected.shape
        np.testing.assert_allclose(stored, expected, atol=1e-3)


def test_messy_dataset_json(messy):
    root, out = messy
    meta = json.loads((out / "dataset.json").read_text())
    m = read_manifest(out)
    assert meta["format"] == "birdspec-dataset" and meta["format_version"] == 1
    assert meta["layout"] == "birdclef2021" and meta["source"] == str(root)
    assert meta["classes"] == ["blrwar1", "grrwar1", "marwar3"]
    assert [c["label"] for c in meta["class_info"]] == meta["classes"]
    assert meta["class_info"][2] == {
        "label": "marwar3",
        "scientific_name": "Acrocephalus palustris",
        "common_name": "Marsh Warbler",
    }
    assert meta["encoding"] == to_dict(SMALL)
    assert meta["frontend"] == to_dict(FrontendConfig())
    assert meta["sample_rate_hz"] == 32000
    assert meta["num_recordings"] == len(m) == meta["num_samples"]
    assert meta["splits"] == {"train": int((m["split"] == "train").sum()), "val": int((m["split"] == "val").sum())}
    assert meta["folds"] == 2 and meta["skipped"] == 4
    assert meta["store"] == {"file": "waveforms.f16", "dtype": "float16", "total_samples": int(m["num_samples"].sum())}
    assert (out / "waveforms.f16").stat().st_size == 2 * meta["store"]["total_samples"]
    settings = meta["settings"]
    assert settings["folds"] == 2 and settings["val_fraction"] == 0.3 and settings["seed"] == 0
    assert "workers" not in settings and "progress" not in settings
    assert not partial_dir(out).exists() and not (out / "chunks").exists()


def test_messy_describe(messy):
    _, out = messy
    d = describe(out)
    assert d["num_recordings"] == 10 and d["num_samples"] == 10
    assert d["per_class"] == {"blrwar1": 4, "grrwar1": 4, "marwar3": 2}
    assert d["sample_shape"] == [2, 128, 33]
    assert d["skipped"] == 4
    assert d["skipped_reasons"] == {"too short": 1, "empty": 1, "unreadable": 1, "all silent": 1}
    assert set(d["folds"]) == {0, 1} and sum(d["folds"].values()) == 10
    assert sum(d["splits"].values()) == 10
    json.dumps(d)  # JSON-ready
    with pytest.raises(DataError, match="not a prepared dataset"):
        describe(out.parent)


def test_folds_before_cleaning_split_among_kept(messy):
    root, out = messy
    meta = pd.read_csv(root / "train_metadata.csv").sort_values("filename")
    skf = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    fold = {}
    for k, (_, test) in enumerate(skf.split(np.zeros(len(meta)), meta["primary_label"])):
        fold.update({f: k for f in meta["filename"].iloc[test]})
    m = read_manifest(out)
    # folds follow the metadata rows, whatever was skipped
    assert {f: fold[f] for f in m["filename"]} == dict(zip(m["filename"], m["fold"], strict=True))
    # the split is drawn among the kept recordings
    split = train_val_split(list(m["filename"]), list(m["label"]), seed=0)
    assert list(split) == list(m["split"])


# --------------------------------------------------------------------------- other layouts


def test_birdclef2022_layout(tmp_path):
    root = make_birdclef2022(tmp_path / "bc22", basic_recordings(per_class=3))
    out = run(root, tmp_path / "out", species="grrwar1,Marsh Warbler")
    m = read_manifest(out)
    assert json.loads((out / "dataset.json").read_text())["layout"] == "birdclef2022"
    assert sorted(set(m["label"])) == ["grrwar1", "marwar3"] and len(m) == 6
    assert m["filename"].str.startswith(("grrwar1/", "marwar3/")).all()


def test_folders_layout_with_corrupt_file(tmp_path):
    recs = basic_recordings(per_class=3) + [Rec("sedwar1", "broken.ogg", kind="corrupt")]
    root = make_folders(tmp_path / "f", recs)
    (root / "sedwar1" / "UPPER.WAV").write_bytes(next((root / "sedwar1").rglob("XC0300.wav")).read_bytes())
    out = run(root, tmp_path / "out", top_n=2)
    m = read_manifest(out)
    assert set(m["label"]) == {"sedwar1", "blrwar1"}  # sedwar1 has 5 files, then ties by label
    assert "sedwar1/UPPER.WAV" in set(m["filename"])
    assert skipped_by_name(out)["broken.ogg"].startswith("unreadable")


def test_csv_layout_with_fold_column(tmp_path):
    recs = basic_recordings(per_class=4)
    folds = [["A", "B", "C"][i % 3] for i in range(len(recs))]
    csv = make_csv(tmp_path / "c", recs, folds=folds)
    out = run(csv, tmp_path / "out", fold_column="split_id", folds=5)
    m = read_manifest(out)
    assert list(m["fold"]) == [{"A": 0, "B": 1, "C": 2}[v] for v in m["split_id"]]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["folds"] == 3 and meta["layout"] == "csv"
    assert "site" in m.columns


# --------------------------------------------------------------------------- options


def test_min_rating_and_durations(tmp_path):
    recs = basic_recordings(per_class=5) + [Rec("grrwar1", "long.wav", duration_s=3.0)]
    root = make_birdclef2021(tmp_path / "bc", recs)
    out = run(root, tmp_path / "r", min_rating=3)
    reasons = skipped_by_name(out)
    assert reasons["XC0000.wav"] == "rating 1 < min 3" and reasons["XC0001.wav"] == "rating 2 < min 3"
    assert len(reasons) == 8  # ratings 1 and 2 in each of 4 species
    out = run(root, tmp_path / "d", min_duration_s=2.0)
    assert read_manifest(out)["filename"].tolist() == ["long.wav"]
    assert skipped_by_name(out)["XC0000.wav"] == "duration 1.5 s < min 2 s"
    out = run(root, tmp_path / "x", max_duration_s=1.2)
    m = read_manifest(out)
    assert (m["num_samples"] == int(1.2 * 32000)).all()
    with pytest.raises(ConfigError, match="max-duration-s"):
        run(root, tmp_path / "y", max_duration_s=0.5)


def test_window_encoding_and_short_policies(tmp_path):
    recs = [Rec("grrwar1", f"a{i}.wav", duration_s=d) for i, d in enumerate((0.3, 1.0, 1.7, 2.4))]
    recs += [Rec("sedwar1", "b.wav", duration_s=1.2)]
    root = make_birdclef2021(tmp_path / "bc", recs)
    window = EncodingConfig(name="window", window_s=0.5, short_policy="drop")
    out = run(root, tmp_path / "w", encoding=window)
    assert skipped_by_name(out) == {"a0.wav": "too short (0.3 s < 0.5 s, policy drop)"}
    d = describe(out)
    assert d["num_samples"] == 2 + 3 + 4 + 2 == json.loads((out / "dataset.json").read_text())["num_samples"]
    assert d["per_class_samples"] == {"grrwar1": 9, "sedwar1": 2}
    assert d["sample_shape"] == [1, 128, 33]
    out = run(
        root, tmp_path / "t", encoding=EncodingConfig(name="stack10", num_windows=4, window_s=0.5, short_policy="tile")
    )
    assert len(read_manifest(out)) == 5 and describe(out)["skipped"] == 0


def test_missing_and_truncated_files(tmp_path):
    recs = basic_recordings(per_class=2) + [Rec("grrwar1", "long.ogg", duration_s=3.0)]
    root = make_birdclef2021(tmp_path / "bc", recs)
    (root / "train_short_audio" / "blrwar1" / "XC0100.wav").unlink()
    long = root / "train_short_audio" / "grrwar1" / "long.ogg"
    long.write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    out = run(root, tmp_path / "out")
    reasons = skipped_by_name(out)
    assert reasons["XC0100.wav"] == "missing: no such file"
    m = read_manifest(out)
    assert ("long.ogg" in reasons) != ("long.ogg" in set(m["filename"]))  # kept (partly) or skipped, never both


def test_no_usable_recording(tmp_path):
    root = make_birdclef2021(
        tmp_path / "bc", [Rec("grrwar1", "a.wav", kind="silent"), Rec("grrwar1", "b.ogg", kind="corrupt")]
    )
    with pytest.raises(DataError, match="no usable recordings.*skipped.csv"):
        run(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_options(tmp_path):
    root = make_birdclef2021(tmp_path / "bc", basic_recordings(per_class=2))
    for kwargs in (
        {"val_fraction": 1.5},
        {"folds": 1},
        {"top_n": 0},
        {"workers": 0},
        {"layout": "nope"},
        {"min_duration_s": -1},
    ):
        with pytest.raises(ConfigError):
            run(root, tmp_path / "out", **kwargs)
    with pytest.raises(ConfigError, match="did you mean"):
        run(root, tmp_path / "out", species="Acrocephalus nonexistens")
    with pytest.raises(ConfigError, match="only apply to the csv layout"):
        run(root, tmp_path / "out", path_column="x")


# --------------------------------------------------------------------------- atomicity, reuse, workers


class _Crash(Exception):
    pass


def test_interrupted_run_resumes_from_partial(tmp_path, monkeypatch):
    root = make_birdclef2021(tmp_path / "bc", basic_recordings(per_class=3))
    out = tmp_path / "out"
    real_append = decode.ChunkConcatenator.append_chunk
    calls = {"append": 0, "load": 0}

    def crashing_append(self, *args, **kwargs):
        calls["append"] += 1
        if calls["append"] == 5:
            raise _Crash()
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(decode.ChunkConcatenator, "append_chunk", crashing_append)
    with pytest.raises(_Crash):
        run(root, out)
    assert not out.exists()
    assert len(list((partial_dir(out) / "chunks").glob("*.json"))) == 5
    monkeypatch.setattr(decode.ChunkConcatenator, "append_chunk", real_append)

    real_load = audio.load_with_header

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(audio, "load_with_header", counting_load)
    run(root, out)
    assert calls["load"] == 12 - 5
    assert len(read_manifest(out)) == 12
    assert not partial_dir(out).exists()
    fresh = run(root, tmp_path / "fresh")
    assert (fresh / "waveforms.f16").read_bytes() == (out / "waveforms.f16").read_bytes()


def test_complete_output_is_reused_or_protected(tmp_path, monkeypatch, caplog):
    root = make_birdclef2021(tmp_path / "bc", basic_recordings(per_class=2))
    out = run(root, tmp_path / "out", species="grrwar1, sedwar1")
    stamp = (out / "dataset.json").read_text()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(audio, "load", no_decoding)
    with caplog.at_level(logging.INFO, logger="birdspec"):
        assert run(root, out, species="sedwar1,grrwar1", workers=2) == out
    assert "already prepared, reusing" in caplog.text
    assert (out / "dataset.json").read_text() == stamp
    with pytest.raises(ConfigError, match="other settings .*seed.*--overwrite"):
        run(root, out, species="grrwar1, sedwar1", seed=1)
    monkeypatch.undo()
    run(root, out, species="grrwar1, sedwar1", seed=1, overwrite=True)
    assert json.loads((out / "dataset.json").read_text())["settings"]["seed"] == 1
    assert not list(tmp_path.glob("out.*"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a prepared dataset"):
        run(root, other)


def test_workers_give_identical_output(tmp_path):
    root = make_birdclef2021(tmp_path / "bc", messy_recordings())
    one = run(root, tmp_path / "one", workers=1)
    two = run(root, tmp_path / "two", workers=2)
    assert (one / "waveforms.f16").read_bytes() == (two / "waveforms.f16").read_bytes()
    assert read_manifest(one).equals(read_manifest(two))
    assert (one / "skipped.csv").read_text() == (two / "skipped.csv").read_text()


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="patching a worker needs fork")
def test_a_crashing_decoder_does_not_stop_the_run(tmp_path, monkeypatch):
    root = make_birdclef2021(tmp_path / "bc", basic_recordings(per_class=3))
    real = decode.load_audio

    def crash_on_one(task):
        if task.path.endswith("XC0101.wav"):
            os._exit(1)  # what a segfaulting decoder does to the worker
        return real(task)

    monkeypatch.setattr(decode, "load_audio", crash_on_one)
    out = run(root, tmp_path / "out", workers=2)
    assert skipped_by_name(out) == {"XC0101.wav": "unreadable: the decoder crashed on this file"}
    assert len(read_manifest(out)) == 11


# --------------------------------------------------------------------------- CLI


def test_cli_prepare(tmp_path, capsys):
    root = make_birdclef2021(tmp_path / "bc", messy_recordings())
    out = tmp_path / "out"
    args = ["prepare", str(root), "--out", str(out), "--num-windows", "2", "--window-s", "0.5", "--workers", "1"]
    assert main(args + ["--folds", "2", "--species", "grrwar1,Acrocephalus palustris"]) == 0
    text = capsys.readouterr().out
    assert "Prepared" in text and "grrwar1 4" in text and "marwar3 2" in text
    assert "Skipped 4" in text and str(out / "skipped.csv") in text
    assert describe(out)["folds"] is not None
    assert main(args + ["--species", "Acrocephalus nonexistens"]) == 2
    err = capsys.readouterr().err
    assert "unknown species 'Acrocephalus nonexistens'; did you mean" in err
    assert main(args + ["--folds", "2", "--species", "grrwar1,Acrocephalus palustris", "--seed", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_write_f16_in_blocks(tmp_path):
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 600_001).astype(np.float32)
    wave[555_555] = -0.9
    peak = decode.write_f16(wave, str(tmp_path / "x.f16"))
    assert peak == pytest.approx(0.9)
    assert np.array_equal(np.fromfile(tmp_path / "x.f16", dtype="<f2"), wave.astype(np.float16))
    wave[10] = np.nan
    assert np.isnan(decode.write_f16(wave, str(tmp_path / "y.f16")))


def test_non_finite_audio_is_skipped(tmp_path, monkeypatch):
    root = make_birdclef2021(tmp_path / "bc", basic_recordings(per_class=2))
    real = decode.load_audio

    def nan_on_one(task):
        wave, header = real(task)
        if task.path.endswith("XC0001.wav"):
            wave[100] = np.inf
        return wave, header

    monkeypatch.setattr(decode, "load_audio", nan_on_one)
    out = run(root, tmp_path / "out")
    assert skipped_by_name(out) == {"XC0001.wav": "unreadable: non-finite samples"}
