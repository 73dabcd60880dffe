"""prepare --annotations: windows labelled from box overlap, secondary labels, no-bird windows with --complete,
splits and folds per recording, the report, reuse; and the real spinetail labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdspec.cli.main import main
from birdspec.data.annotation_windows import OverlapRule, annotation_settings, window_spans
from birdspec.data.prepare import prepare
from birdspec.errors import ConfigError

HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\n"


def _wav(path: Path, seconds: float, *, sr: int = 32000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.01 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 3000 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    sf.write(path, wave.astype(np.float32), sr)
    return path


def _raven(path: Path, rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{i}\tSpectrogram 1\t1\t{a}\t{b}\t1000\t8000\t{s}\n"
                                     for i, (a, b, s) in enumerate(rows, 1)))
    return path


@pytest.fixture()
def site(tmp_path) -> tuple[Path, Path]:
    """Three recordings (one at 44.1 kHz in a sub-folder) and their Raven tables (two for rec_a, one bad row)."""
    audio, tables = tmp_path / "audio", tmp_path / "tables"
    _wav(audio / "rec_a.wav", 30)
    _wav(audio / "rec_b.wav", 30, seed=1)
    _wav(audio / "north" / "rec_c.wav", 20, sr=44100, seed=2)
    _raven(tables / "rec_a.Table.1.selections.txt", [(1, 4, "sedwar1"), (3.5, 7, "Marsh Warbler"), (14.8, 15.1, "sedwar1")])
    _raven(tables / "rec_a.Table.2.selections.txt", [(12, 11, "sedwar1")])  # ends before it begins
    _raven(tables / "rec_b.Table.1.selections.txt", [(0, 30, "marwar3")])
    _raven(tables / "north" / "rec_c.Table.1.selections.txt", [(2, 8, "sedwar1"), (12, 13, "reewar1")])
    (tables / "species.csv").write_text("label,scientific_name,common_name\nmarwar3,Acrocephalus palustris,Marsh Warbler\n"
                                        "sedwar1,Acrocephalus schoenobaenus,Sedge Warbler\n"
                                        "reewar1,Acrocephalus scirpaceus,Eurasian Reed Warbler\n")
    return audio, tables


def _prep(audio: Path, tables: Path, out: Path, **kw):
    opts = {k: kw.pop(k) for k in ("complete", "hop_s", "min_overlap_s", "min_overlap_fraction", "species_table")
            if k in kw}
    opts.setdefault("species_table", str(tables / "species.csv"))
    from birdspec.config import EncodingConfig

    settings = annotation_settings([tables / "rec_a.Table.1.selections.txt", tables / "rec_a.Table.2.selections.txt",
                                    tables / "rec_b.Table.1.selections.txt", tables / "north"], **opts)
    return prepare(audio, out, annotations=settings, encoding=EncodingConfig(name="window"), workers=1,
                   progress=False, **kw)


def test_window_spans_cover_the_tail_and_short_recordings():
    assert window_spans(12.0, window_s=5, hop_s=5).tolist() == [[0, 5], [5, 10], [7, 12]]
    assert window_spans(10.0, window_s=5, hop_s=2.5).tolist() == [[0, 5], [2.5, 7.5], [5, 10]]
    assert window_spans(3.0, window_s=5, hop_s=5).tolist() == [[0, 3]]


def test_overlap_rule_seconds_or_fraction_of_the_box():
    starts, ends = np.array([1.0, 4.8, 4.0]), np.array([4.0, 5.1, 9.0])
    ov, lab = OverlapRule(0.5, 0.5).overlap(starts, ends, np.array([0.0, 5.0]), np.array([5.0, 10.0]))
    assert np.allclose(ov, [[3.0, 0.2, 1.0], [0.0, 0.1, 4.0]])
    assert lab.tolist() == [[True, True, True], [False, False, True]]  # 0.2 of a 0.3 s call is 2/3 of it
    _, lab = OverlapRule(0.5, None).overlap(starts, ends, np.array([0.0]), np.array([5.0]))
    assert lab.tolist() == [[True, False, True]]
    with pytest.raises(ConfigError):
        OverlapRule(0.0)


def test_windows_labelled_from_boxes_with_secondary_labels_and_the_report(site, tmp_path):
    audio, tables = site
    out = _prep(audio, tables, tmp_path / "ds", min_overlap_s=0.5)
    m = pd.read_csv(out / "manifest.csv")
    got = {(r.filename, r.start_s): (r.label, json.loads(r.secondary_labels)) for r in m.itertuples()}
    assert got[("rec_a.wav", 0.0)] == ("sedwar1", ["marwar3"])  # 3 s of sedwar1, 1.5 s of "Marsh Warbler"
    assert got[("rec_a.wav", 5.0)] == ("marwar3", [])
    assert got[("rec_a.wav", 10.0)] == ("sedwar1", [])  # 0.2 s, two thirds of a 0.3 s call
    assert ("rec_a.wav", 15.0) not in got  # 0.1 s of it: ambiguous, left out
    assert [got[("rec_b.wav", float(a))][0] for a in range(0, 30, 5)] == ["marwar3"] * 6
    assert got[("north/rec_c.wav", 0.0)] == ("sedwar1", []) and got[("north/rec_c.wav", 10.0)] == ("reewar1", [])
    assert (m["num_samples"] == 160000).all()  # 5 s at 32 kHz, the 44.1 kHz file too
    for _, grp in m.groupby("source_path"):
        assert grp["split"].nunique() == 1  # a recording is on one side
    assert not (out / "nobird.csv").exists()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["layout"] == "annotations" and meta["classes"] == ["marwar3", "reewar1", "sedwar1"]
    assert meta["annotations"]["ambiguous_windows"] == 1 and meta["annotations"]["unannotated_windows"] > 0
    assert {c["label"]: c["common_name"] for c in meta["class_info"]}["sedwar1"] == "Sedge Warbler"
    report = (out / "annotation_report.txt").read_text()
    assert "rec_a.Table.2.selections.txt:2: ends before it begins" in report


def test_complete_makes_no_bird_audio_by_split_and_species_choose_what_counts(site, tmp_path):
    audio, tables = site
    out = _prep(audio, tables, tmp_path / "ds", complete=True, species=["sedwar1", "Marsh Warbler"], val_fraction=0.4,
                seed=3)
    m = pd.read_csv(out / "manifest.csv")
    nob = pd.read_csv(out / "nobird.csv")
    assert set(m["label"]) == {"marwar3", "sedwar1"}
    assert (m["filename"] != "north/rec_c.wav").any()
    rec_a = nob[nob["filename"] == "rec_a.wav"]
    assert rec_a[["start_s", "end_s", "windows"]].values.tolist() == [[20.0, 30.0, 2]]  # 15-20 ambiguous, 20-30 free
    rec_c = nob[nob["filename"] == "north/rec_c.wav"]
    assert rec_c[["start_s", "end_s"]].values.tolist() == [[10.0, 20.0]]  # reewar1 not chosen: no bird of the classes
    side = m.drop_duplicates("source_path").set_index("source_path")["split"]
    for row in nob.itertuples():
        assert row.split == side[row.source_path]
        wave, sr = sf.read(out / row.file)
        assert sr == 32000 and abs(len(wave) / sr - (row.end_s - row.start_s)) < 1e-3
    meta = json.loads((out / "dataset.json").read_text())["annotations"]
    assert meta["complete"] and meta["nobird_windows"] == int(nob["windows"].sum())


def test_folds_keep_each_recording_whole(tmp_path):
    audio, tables = tmp_path / "audio", tmp_path / "tables"
    for i in range(6):
        _wav(audio / f"r{i}.wav", 15, seed=i)
        _raven(tables / f"r{i}.Table.1.selections.txt", [(0, 15, "ab"[i % 2])])
    from birdspec.config import EncodingConfig

    out = prepare(audio, tmp_path / "ds", annotations=annotation_settings([tables]), folds=3,
                  encoding=EncodingConfig(name="window"), workers=1, progress=False)
    m = pd.read_csv(out / "manifest.csv")
    assert len(m) == 18 and sorted(set(m["fold"])) == [0, 1, 2]
    assert (m.groupby("source_path")["fold"].nunique() == 1).all()


def test_reuse_and_edited_tables_are_other_settings(site, tmp_path):
    audio, tables = site
    out = _prep(audio, tables, tmp_path / "ds")
    stamp = (out / "dataset.json").stat().st_mtime_ns
    _prep(audio, tables, tmp_path / "ds")
    assert (out / "dataset.json").stat().st_mtime_ns == stamp  # reused
    _raven(tables / "rec_b.Table.1.selections.txt", [(0, 20, "marwar3")])
    with pytest.raises(ConfigError, match="annotations"):
        _prep(audio, tables, tmp_path / "ds")


def test_cli_prepare_with_annotations_and_usage_errors(site, tmp_path, capsys):
    audio, tables = site
    out = tmp_path / "ds"
    assert main(["-q", "prepare", str(audio), "--annotations", str(tables), "--out", str(out), "--complete",
                 "--species-table", str(tables / "species.csv"), "--workers", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "From annotations:" in text and "no-bird windows" in text and "annotation_report.txt" in text
    assert (out / "nobird").is_dir()
    assert main(["prepare", str(audio), "--out", str(tmp_path / "x"), "--complete"]) == 2
    assert "--complete only apply with --annotations" in capsys.readouterr().err
    assert main(["prepare", str(audio), "--annotations", str(tables), "--out", str(tmp_path / "y"),
                 "--encoding", "stack10"]) == 2
    assert "use --encoding window" in capsys.readouterr().err
    assert main(["prepare", str(audio), "--annotations", str(tmp_path / "nope"), "--out", str(tmp_path / "z")]) == 2
    assert "no such file or folder of annotation tables" in capsys.readouterr().err


def test_real_spinetail_labels_prepare(shared_data, tmp_path):
    rec = shared_data / "recordings" / "maad-spinetail.flac"
    labels = shared_data / "recordings" / "maad-spinetail.txt"
    if not (rec.is_file() and labels.is_file()):
        pytest.skip("maad-spinetail not in the shared data")
    from birdspec.config import EncodingConfig

    out = prepare(rec, tmp_path / "ds", annotations=annotation_settings([labels], min_overlap_s=0.5),
                  encoding=EncodingConfig(name="window"), workers=1, progress=False)
    m = pd.read_csv(out / "manifest.csv")
    assert m["start_s"].tolist() == [0.0, 5.0, 10.0, 14.541]  # 19.54 s: the last window ends with the file
    assert set(m["label"]) <= {"CRER", "SP"} and "SP" in {s for v in m["secondary_labels"] for s in json.loads(v)} | set(m["label"])
    assert (m["num_samples"] == 160000).all()
