"""Annotation tables in: Raven, Audacity, BirdNET-Analyzer and birdspec tables read as boxes, bad rows reported,
tables matched to recordings, and every table birdspec or BirdNET-Analyzer writes read back with the same boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdspec.data.annotation_formats import Box
from birdspec.data.annotations import (
    AnnotationReport,
    find_recordings,
    match_recordings,
    read_table,
    read_tables,
    table_recording,
)

CLASSES = [
    {"label": "marwar3", "scientific_name": "Acrocephalus palustris", "common_name": "Marsh Warbler"},
    {"label": "sedwar1", "scientific_name": "Acrocephalus schoenobaenus", "common_name": "Sedge Warbler"},
    {"label": "reewar1", "scientific_name": "Acrocephalus scirpaceus", "common_name": "Eurasian Reed Warbler"},
]


def _raven(path: Path, rows: list[list], header: list[str]) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(str(v) for v in r) + "\n" for r in rows))
    return path


RAVEN_HEADER = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                "Species", "Notes"]


def test_raven_table_reads_boxes_once_per_selection_and_reports_bad_rows(tmp_path):
    table = _raven(tmp_path / "site1_0600.Table.1.selections.txt", [
        [1, "Waveform 1", 1, 1.5, 3.25, 2000, 6000, "sedwar1", ""],
        [1, "Spectrogram 1", 1, 1.5, 3.25, 2000, 6000, "sedwar1", ""],
        [2, "Spectrogram 1", 1, 10, 12.5, 1500.5, 4000, "Marsh Warbler", "faint"],
        [3, "Spectrogram 1", 1, 8, 7, 1000, 2000, "sedwar1", "end before begin"],
        [4, "Spectrogram 1", 1, "x", 7, 1000, 2000, "sedwar1", "not a number"],
        [5, "Spectrogram 1", 1, 4, 5, 1000, 2000, "", "no species"],
        [6, "Spectrogram 1", 1, 20, 21, 9000, 3000, "sedwar1", "low above high"],
    ], RAVEN_HEADER)
    parsed = read_table(table)
    assert parsed.format == "raven"
    assert [(b.start_s, b.end_s, b.low_hz, b.high_hz, b.label, b.line) for b in parsed.boxes] == [
        (1.5, 3.25, 2000.0, 6000.0, "sedwar1", 2), (10.0, 12.5, 1500.5, 4000.0, "Marsh Warbler", 4),
        (20.0, 21.0, None, None, "sedwar1", 8)]
    assert all(b.recording == "site1_0600" and b.confidence is None for b in parsed.boxes)
    lines = {p.line: p.message for p in parsed.problems}
    assert "read once" in lines[3] and "ends before it begins" in lines[5] and "not a number" in lines[6]
    assert "no species" in lines[7] and "band is ignored" in lines[8]
    assert parsed.rows == 6  # the repeated view is a note, not a row


def test_raven_species_column_by_name_and_a_missing_one_is_one_report_line(tmp_path):
    header = ["Selection", "Begin Time (s)", "End Time (s)", "Common Name", "Species Code", "Annotation"]
    table = _raven(tmp_path / "a.Table.1.selections.txt", [[1, 0, 1, "Sedge Warbler", "sedwar1", "song"]], header)
    (box,) = read_table(table).boxes
    assert (box.label, box.names) == ("sedwar1", ("Sedge Warbler",))  # "Species Code" before "Annotation"
    (box,) = read_table(table, species_column="annotation").boxes
    assert box.label == "song"
    parsed = read_table(table, species_column="Call Type")
    assert not parsed.boxes and [p.kind for p in parsed.problems] == ["table"]
    assert "no column 'Call Type'" in parsed.problems[0].message and "Species Code" in parsed.problems[0].message


def test_audacity_plain_and_spectral_labels(tmp_path):
    table = tmp_path / "rec.txt"
    table.write_text("0.5\t1.25\tsedwar1\n\\\t2000.5\t7000\n3\t4\tmarwar3\n5\t4\tbad\n6.0\t6.0\tpoint\n"
                     "7\t8\tspectral unset\n\\\t-1\t-1\nnot a label\n")
    parsed = read_table(table)
    assert parsed.format == "audacity"
    assert [(b.start_s, b.end_s, b.low_hz, b.high_hz, b.label, b.line) for b in parsed.boxes] == [
        (0.5, 1.25, 2000.5, 7000.0, "sedwar1", 1), (3.0, 4.0, None, None, "marwar3", 3),
        (7.0, 8.0, None, None, "spectral unset", 6)]
    assert {p.line for p in parsed.problems} == {4, 5, 8}


def test_real_audacity_labels_of_the_spinetail_read_with_their_frequencies(shared_data):
    labels = shared_data / "recordings" / "maad-spinetail.txt"
    if not labels.is_file():
        pytest.skip("maad-spinetail.txt not in the shared data")
    tables = read_tables([labels])
    assert len(tables.boxes) == 18 and not tables.report.problems
    assert {b.label for b in tables.boxes} == {"SP", "CRER"}
    assert all(b.low_hz is not None and b.high_hz is not None and b.low_hz < b.high_hz for b in tables.boxes)
    first = tables.boxes[0]
    assert (first.start_s, first.end_s, first.low_hz, first.high_hz) == (0.101385, 0.367520, 6441.064453, 12296.577148)
    matched = match_recordings(tables, find_recordings(labels.parent / "maad-spinetail.flac"))
    assert len(next(iter(matched.values()))) == 18


@pytest.mark.parametrize("name, expected", [
    ("XC1.Table.1.selections.txt", "XC1"), ("XC1.wav.Table.2.selections.txt", "XC1"),
    ("XC1.BirdSpec.selection.table.txt", "XC1"), ("XC1.BirdSpec.labels.txt", "XC1"),
    ("XC1.BirdNET.results.csv", "XC1"), ("XC1.BirdNET.selection.table.txt", "XC1"),
    ("XC1.BirdNET.results.kaleidoscope.csv", "XC1"), ("XC1.BirdNET.results.txt", "XC1"), ("XC1.txt", "XC1"),
    ("XC1.flac.txt", "XC1"),
])
def test_table_names_give_their_recording(name, expected):
    assert table_recording(name) == expected


def _wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * 8000), dtype=np.float32), 8000)
    return path


def test_matching_by_name_several_tables_per_recording_same_names_in_site_folders_and_a_report(tmp_path):
    audio, tables = tmp_path / "audio", tmp_path / "tables"
    _wav(audio / "siteA" / "0600.wav", 30)
    _wav(audio / "siteB" / "0600.wav", 30)
    _wav(audio / "lonely.wav", 10)
    header = ["Selection", "Begin Time (s)", "End Time (s)", "Species"]
    (tables / "siteA").mkdir(parents=True)
    (tables / "siteB").mkdir()
    _raven(tables / "siteA" / "0600.Table.1.selections.txt", [[1, 1, 2, "a"], [2, 29, 31, "a"], [3, 40, 41, "a"]], header)
    _raven(tables / "siteA" / "0600.Table.2.selections.txt", [[1, 5, 6, "b"]], header)
    _raven(tables / "siteB" / "0600.Table.1.selections.txt", [[1, 3, 4, "b"]], header)
    _raven(tables / "missing.Table.1.selections.txt", [[1, 3, 4, "b"]], header)
    found = read_tables([tables])
    matched = match_recordings(found, find_recordings(audio, found.report))
    by_name = {Path(p).parent.name: sorted((b.start_s, b.end_s, b.label) for b in boxes) for p, boxes in matched.items()}
    assert by_name == {"siteA": [(1.0, 2.0, "a"), (5.0, 6.0, "b"), (29.0, 30.0, "a")], "siteB": [(3.0, 4.0, "b")]}
    text = "\n".join(found.report.lines())
    assert "after the end of siteA/0600.wav (30 s): left out" in text  # 40-41 s
    assert "cut there" in text  # 29-31 s
    assert "recording 'missing': matches no recording" in text
    assert "lonely.wav: no annotation table names this recording" in text
    assert found.report.count("unmatched") == 1


def test_bad_files_are_report_lines_not_tracebacks(tmp_path):
    (tmp_path / "notes.txt").write_text("just some words\n")
    (tmp_path / "weird.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "short.csv").write_text("file,start_s,end_s,label\nx.wav,1,2,a\nx.wav,1\n")
    (tmp_path / "empty.Table.1.selections.txt").write_text("")
    report = AnnotationReport()
    found = read_tables([tmp_path], report=report)
    assert [(b.recording, b.label) for b in found.boxes] == [("x.wav", "a")]
    kinds = {(Path(p.source).name, p.kind) for p in report.problems}
    assert {("notes.txt", "table"), ("weird.csv", "table"), ("short.csv", "bad row")} <= kinds
    assert "empty" in found.empty  # read whole, no box: annotated with nothing
    assert "3 field" not in report.summary() and "report lines" in report.summary()


# --------------------------------------------------------------------------- round trips: birdspec's own tables


def _results(tmp_path: Path):
    from birdspec.prediction.sources import FileResult

    rng = np.random.default_rng(0)
    out = []
    for name, n in (("rec one.wav", 4), ("sub/rec2.flac", 3)):
        windows = pd.DataFrame({"window": np.arange(n), "start_s": np.arange(n) * 5.0, "end_s": np.arange(n) * 5.0 + 5})
        windows.loc[n - 1, "end_s"] = (n - 1) * 5.0 + 3.25  # a short last window
        out.append(FileResult(str(tmp_path / "audio" / name), name, float(windows["end_s"].iloc[-1]), windows,
                              rng.random((n, 3)).astype(np.float32)))
    return out


def _expected(results, *, min_conf: float, top_k: int) -> dict:
    """(recording, start, end, label) -> confidence of every score the writer keeps."""
    from birdspec.prediction.selection import topk_indices

    out = {}
    for r in results:
        rows, _, cls = topk_indices(r.scores, min_conf=min_conf, top_k=top_k)
        for i, c in zip(rows, cls, strict=True):
            key = (Path(r.name).stem, float(r.windows["start_s"][i]), float(r.windows["end_s"][i]), CLASSES[c]["label"])
            out[key] = float(r.scores[i, c])
    return out


def _same_boxes(boxes, want: dict, *, tol: float) -> None:
    got = {(Path(b.recording.replace("\\", "/")).stem, b.start_s, b.end_s, b.label): b.confidence for b in boxes}
    assert len(got) == len(boxes) and set(got) == set(want)
    worst = max(abs(got[k] - want[k]) for k in want)
    assert worst <= tol, worst


@pytest.mark.parametrize("fmt, tol", [("csv", 5e-6), ("raven", 5e-5), ("audacity", 5e-4), ("parquet", 1e-7)])
def test_predict_tables_read_back_with_the_same_boxes(tmp_path, fmt, tol):
    from birdspec.prediction.outputs import PredictionWriter

    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    results = _results(tmp_path)
    out = tmp_path / ("out" if fmt in ("raven", "audacity") else f"p.{fmt}")
    writer = PredictionWriter(fmt, out, class_info=CLASSES, min_conf=0.3, top_k=2, freq_band_hz=(150.0, 15000.0))
    for r in results:
        writer.write(r)
    writer.close()
    found = read_tables([out])
    assert not [p for p in found.report.problems if p.kind != "note"], found.report.lines()
    _same_boxes(found.boxes, _expected(results, min_conf=0.3, top_k=2), tol=tol)
    if fmt == "raven":
        assert {(b.low_hz, b.high_hz) for b in found.boxes} == {(150.0, 15000.0)}
        assert {b.names for b in found.boxes if b.label == "sedwar1"} == {("Sedge Warbler",)}


def test_predict_scores_all_reads_back_every_score(tmp_path):
    from birdspec.prediction.outputs import PredictionWriter

    results = _results(tmp_path)
    writer = PredictionWriter("csv", tmp_path / "all.csv", class_info=CLASSES, min_conf=0.0, top_k=0, scores="all")
    for r in results:
        writer.write(r)
    writer.close()
    found = read_tables([tmp_path / "all.csv"])
    assert not found.report.problems
    _same_boxes(found.boxes, _expected(results, min_conf=0.0, top_k=0), tol=5e-6)


# --------------------------------------------------------------------------- round trips: BirdNET-Analyzer's tables

BIRDNET = [  # (file, start, end, scientific, common, code, confidence)
    ("/data/site/a.wav", 0.0, 3.0, "Acrocephalus palustris", "Marsh Warbler", "marwar3", 0.8123),
    ("/data/site/a.wav", 6.0, 9.0, "Acrocephalus schoenobaenus", "Sedge Warbler", "sedwar1", 0.2501),
    ("/data/site/b.wav", 3.0, 6.0, "Acrocephalus scirpaceus", "Eurasian Reed Warbler", "reewar1", 0.5),
]
DURATION = {"/data/site/a.wav": 12.0, "/data/site/b.wav": 9.0}


def _birdnet_v20(out: Path, fmt: str) -> list[Path]:
    """Per-file tables as BirdNET-Analyzer 2.0 writes them (birdnet_analyzer/analyze/utils.py)."""
    paths = []
    for f in sorted(DURATION):
        rows = [r for r in BIRDNET if r[0] == f]
        stem = Path(f).stem
        if fmt == "table":
            text = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tCommon Name\t"
                    "Species Code\tConfidence\tBegin Path\tFile Offset (s)\n")
            text += "".join(f"{i}\tSpectrogram 1\t1\t{s}\t{e}\t0\t15000\t{c}\t{code}\t{p:.4f}\t{f}\t{s}\n"
                            for i, (_, s, e, _sci, c, code, p) in enumerate(rows, 1))
            path = out / f"{stem}.BirdNET.selection.table.txt"
        elif fmt == "audacity":
            text = "".join(f"{s}\t{e}\t{sci}, {c}\t{p:.4f}\n" for _, s, e, sci, c, _code, p in rows)
            path = out / f"{stem}.BirdNET.results.txt"
        elif fmt == "kaleidoscope":
            text = "INDIR,FOLDER,IN FILE,OFFSET,DURATION,scientific_name,common_name,confidence,lat,lon,week,overlap,sensitivity\n"
            text += "".join(f"/data,site,{Path(f).name},{s},{e - s},{sci},{c},{p:.4f},-1.0000,-1.0000,-1,0.0,1.0\n"
                            for f, s, e, sci, c, _code, p in rows)
            path = out / f"{stem}.BirdNET.results.kaleidoscope.csv"
        else:
            text = "Start (s),End (s),Scientific name,Common name,Confidence,File\n"
            text += "".join(f"{s},{e},{sci},{c},{p:.4f},{f}\n" for f, s, e, sci, c, _code, p in rows)
            path = out / f"{stem}.BirdNET.results.csv"
        path.write_text(text)
        paths.append(path)
    return paths


def _birdnet_v24(out: Path, fmt: str) -> Path:
    """Combined tables as the pandas writers after 2.0 write them (analyze/core.py save_as_*)."""
    df = pd.DataFrame({"input": [r[0] for r in BIRDNET], "start_time": [r[1] for r in BIRDNET],
                       "end_time": [r[2] for r in BIRDNET], "species_name": [f"{r[3]}_{r[4]}" for r in BIRDNET],
                       "confidence": [r[6] for r in BIRDNET]})
    if fmt == "table":  # begin/end times add up over the files; File Offset (s) is the time in the file
        acc = df["input"].map({"/data/site/a.wav": 0.0, "/data/site/b.wav": DURATION["/data/site/a.wav"]})
        t = pd.DataFrame({"Selection": range(1, len(df) + 1), "Begin Time (s)": df["start_time"] + acc,
                          "End Time (s)": df["end_time"] + acc, "Common Name": [r[4] for r in BIRDNET],
                          "Scientific Name": [r[3] for r in BIRDNET], "Species Code": [r[5] for r in BIRDNET],
                          "Confidence": df["confidence"], "View": "Spectrogram 1", "Channel": 1,
                          "File Offset (s)": df["start_time"], "Low Freq (Hz)": 0, "High Freq (Hz)": 15000,
                          "Begin Path": df["input"]})
        path = out / "BirdNET_SelectionTable.txt"
        t.to_csv(path, sep="\t", index=False)
    elif fmt == "kaleidoscope":
        t = pd.DataFrame({"OFFSET": df["start_time"], "confidence": df["confidence"],
                          "INDIR": "/data", "FOLDER": "site", "IN FILE": df["input"].map(lambda p: Path(p).name),
                          "DURATION": df["end_time"] - df["start_time"], "TOP1MATCH": [r[4] for r in BIRDNET]})
        path = out / "BirdNET_Kaleidoscope.csv"
        t.to_csv(path, index=False)
    elif fmt == "audacity":  # one file per recording, no header, Scientific_Common
        for f, grp in df.groupby("input"):
            grp[["start_time", "end_time", "species_name", "confidence"]].to_csv(
                out / f"{Path(f).stem}.BirdNET.results.txt", index=False, header=False, sep="\t")
        path = out
    else:
        t = df.rename(columns={"input": "File", "start_time": "Start (s)", "end_time": "End (s)", "confidence": "Confidence"})
        t[["Scientific name", "Common name"]] = df["species_name"].str.split("_", n=1, expand=True)
        path = out / "BirdNET_CombinedTable.csv"
        t[["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"]].to_csv(path, index=False)
    return path


@pytest.mark.parametrize("version", ["2.0", "2.4"])
@pytest.mark.parametrize("fmt", ["table", "csv", "audacity", "kaleidoscope"])
def test_birdnet_analyzer_outputs_read_back_with_the_same_boxes(tmp_path, version, fmt):
    from birdspec.data.annotation_windows import box_species

    out = tmp_path / "birdnet"
    out.mkdir()
    if version == "2.0":
        _birdnet_v20(out, fmt)
    else:
        _birdnet_v24(out, fmt)
    found = read_tables([out])
    assert not found.report.problems, found.report.lines()
    got = sorted((Path(b.recording).stem, b.start_s, b.end_s, round(b.confidence, 4)) for b in found.boxes)
    assert got == sorted((Path(f).stem, s, e, p) for f, s, e, _sci, _c, _code, p in BIRDNET)
    # every name form (code, scientific, common) maps to the model's classes through the one species lookup
    labels = box_species(found.boxes, pd.DataFrame(CLASSES), AnnotationReport())
    by_time = {(Path(b.recording).stem, b.start_s): lab for b, lab in zip(found.boxes, labels, strict=True)}
    assert by_time == {("a", 0.0): "marwar3", ("a", 6.0): "sedwar1", ("b", 3.0): "reewar1"}


def test_birdnet_placeholder_row_is_a_note_not_a_box(tmp_path):
    path = tmp_path / "quiet.BirdNET.selection.table.txt"
    path.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tCommon Name\t"
                    "Species Code\tConfidence\tBegin Path\tFile Offset (s)\n"
                    "1\tSpectrogram 1\t1\t0\t3\t0\t15000\tnocall\tnocall\t1.0\t/x/quiet.wav\t0\n")
    found = read_tables([path])
    assert not found.boxes and [p.kind for p in found.report.problems] == ["note"]
    assert found.empty == ["quiet"]  # BirdNET found nothing there: annotated with nothing


def test_box_is_a_plain_frozen_record():
    b = Box("r", 1.0, 2.5, None, None, "x", None, "t.txt", 3)
    assert b.duration_s == 1.5
    with pytest.raises(AttributeError):
        b.label = "y"  # type: ignore[misc]


def test_serve_verdicts_and_verified_manifest_read_back_as_the_reviewed_boxes(tmp_path):
    from birdspec.app import review as rv
    from birdspec.prediction.outputs import PredictionWriter

    results = _results(tmp_path)
    csv = tmp_path / "pred.csv"
    writer = PredictionWriter("csv", csv, class_info=CLASSES, min_conf=0.3, top_k=1)
    for r in results:
        writer.write(r)
    writer.close()
    det = pd.read_csv(csv)
    verdicts = [("correct", ""), ("wrong", ""), ("other", "reewar1")]
    for (verdict, species), row in zip(verdicts, det.to_dict("records"), strict=False):  # the first 3 detections
        rv.save_verdict(csv, row, verdict, species)
    found = read_tables([rv.verdicts_path(csv)])
    want = {(Path(row["file"]).stem, row["start_s"], row["end_s"], species or row["label"])
            for (verdict, species), row in zip(verdicts, det.to_dict("records"), strict=False) if verdict != "wrong"}
    assert {(Path(b.recording).stem, b.start_s, b.end_s, b.label) for b in found.boxes} == want
    assert [p.kind for p in found.report.problems] == ["note"]  # the rejected one, said
    manifest = rv.manifest_rows(det, rv.read_verdicts(rv.verdicts_path(csv)), CLASSES,
                                resolve_file=lambda f: tmp_path / f, source=str(csv))
    manifest.to_csv(tmp_path / "verified.csv", index=False)
    found = read_tables([tmp_path / "verified.csv"])
    assert {(Path(b.recording).stem, b.start_s, b.end_s, b.label) for b in found.boxes} == want
