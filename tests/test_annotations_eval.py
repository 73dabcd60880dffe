"""evaluate-detections: known answers (window P/R/F1, AP, event recall, false detections per hour), the report
files, exit status 2 on bad input, and prepare --annotations -> train -> predict -> evaluate-detections end to end
on birdspec's and BirdNET-Analyzer-format tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdspec.cli.main import main
from birdspec.evaluation.detections import DetectionEvalSettings, evaluate_detections

RAVEN = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\n"


def _annotations(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(1, 4, "aaa"), (12, 13, "aaa"), (27, 28, "aaa"), (6, 9, "Bee Eater")]
    (folder / "r1.Table.1.selections.txt").write_text(
        RAVEN + "".join(f"{i}\tSpectrogram 1\t1\t{a}\t{b}\t500\t9000\t{s}\n" for i, (a, b, s) in enumerate(rows, 1)))
    return folder


DETECTIONS = [(0, 5, "aaa", 0.9), (10, 15, "aaa", 0.4), (15, 20, "aaa", 0.7), (5, 10, "bbb", 0.6), (20, 25, "bbb", 0.2)]


def _birdspec_csv(path: Path, recording: str = "audio/r1.wav") -> Path:
    pd.DataFrame([{"file": recording, "window": int(a // 5), "start_s": a, "end_s": b, "rank": 1, "label": lab,
                   "scientific_name": "", "common_name": {"aaa": "Aaa", "bbb": "Bee Eater"}[lab], "confidence": c}
                  for a, b, lab, c in DETECTIONS]).to_csv(path, index=False)
    return path


def _birdnet_table(path: Path) -> Path:
    """The same detections as a BirdNET-Analyzer 2.0 selection table."""
    head = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tCommon Name\t"
            "Species Code\tConfidence\tBegin Path\tFile Offset (s)\n")
    names = {"aaa": "Aaa", "bbb": "Bee Eater"}
    path.write_text(head + "".join(f"{i}\tSpectrogram 1\t1\t{a}\t{b}\t0\t15000\t{names[lab]}\t{lab}\t{c:.4f}\t/x/r1.wav\t{a}\n"
                                   for i, (a, b, lab, c) in enumerate(DETECTIONS, 1)))
    return path


def _audio(folder: Path, seconds: float = 30.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "r1.wav", np.zeros(int(seconds * 8000), dtype=np.float32), 8000)
    return folder


def test_known_answers_at_a_threshold(tmp_path):
    ann = _annotations(tmp_path / "ann")
    det = _birdspec_csv(tmp_path / "det.csv")
    res = evaluate_detections(det, ann, recordings=_audio(tmp_path / "audio"),
                              settings=DetectionEvalSettings(threshold=0.5))
    by = res.per_species.set_index("species")
    a, b = by.loc["aaa"], by.loc["bbb"]  # "Bee Eater" in the annotations is bbb's common name
    assert (a["tp"], a["fp"], a["fn"]) == (1, 1, 2)
    assert math.isclose(a["precision"], 0.5) and math.isclose(a["recall"], 1 / 3) and math.isclose(a["f1"], 0.4)
    assert math.isclose(a["ap"], 13 / 18)  # 0.9 (hit), 0.7 (miss), 0.4 (hit), the last box never scored
    assert math.isclose(a["event_recall"], 1 / 3)  # 12-13 s is only detected at 0.4
    assert math.isclose(a["false_per_hour"], 120.0)  # 15-20 s at 0.7, in 30 s
    assert (b["tp"], b["fp"], b["fn"], b["ap"], b["event_recall"], b["false_per_hour"]) == (1, 0, 0, 1.0, 1.0, 0.0)
    o = res.overall
    assert o["window_s"] == 5.0 and math.isclose(o["hours"], 30 / 3600)
    assert math.isclose(o["micro_precision"], 2 / 3) and math.isclose(o["micro_recall"], 0.5)
    assert math.isclose(o["micro_f1"], 4 / 7) and math.isclose(o["event_recall"], 0.5)


def test_every_detection_counts_without_a_threshold_and_birdnet_tables_score_the_same(tmp_path):
    ann = _annotations(tmp_path / "ann")
    audio = _audio(tmp_path / "audio")
    ours = evaluate_detections(_birdspec_csv(tmp_path / "det.csv"), ann, recordings=audio)
    (tmp_path / "bn").mkdir()
    theirs = evaluate_detections(_birdnet_table(tmp_path / "bn" / "r1.BirdNET.selection.table.txt"), ann,
                                 recordings=audio)
    a = ours.per_species.set_index("species").loc["aaa"]
    assert (a["tp"], a["fp"], a["fn"]) == (2, 1, 1)
    cols = ["species", "tp", "fp", "fn", "ap", "event_recall", "false_per_hour"]
    pd.testing.assert_frame_equal(ours.per_species[cols], theirs.per_species[cols])


def test_unannotated_species_recordings_without_detections_and_missing_durations_are_said(tmp_path):
    ann = _annotations(tmp_path / "ann")
    (ann / "r2.Table.1.selections.txt").write_text(RAVEN)  # annotated: nothing there
    det = tmp_path / "det.csv"
    rows = pd.read_csv(_birdspec_csv(det))
    extra = pd.DataFrame([{**rows.iloc[0].to_dict(), "label": "ccc", "common_name": "Cee"},
                          {**rows.iloc[0].to_dict(), "file": "audio/r9.wav"}])
    pd.concat([rows, extra]).to_csv(det, index=False)
    res = evaluate_detections(det, ann)
    assert res.overall["recordings"] == 2
    assert any("ccc (1)" in n for n in res.notes) and any("no --recordings" in n for n in res.notes)
    lines = "\n".join(res.report.lines())
    assert "r2: no detection names this annotated recording" in lines
    assert "recording 'audio/r9.wav', which has no annotation" in lines
    scored = evaluate_detections(det, ann, settings=DetectionEvalSettings(species=("aaa", "Cee")))
    assert scored.per_species["species"].tolist() == ["aaa", "ccc"]
    assert scored.per_species.set_index("species").loc["ccc", "fp"] == 1


def test_cli_writes_the_report_and_exits_2_on_bad_input(tmp_path, capsys):
    ann = _annotations(tmp_path / "ann")
    det = _birdspec_csv(tmp_path / "det.csv")
    out = tmp_path / "eval"
    assert main(["-q", "evaluate-detections", str(det), str(ann), "--out", str(out), "--threshold", "0.5",
                 "--recordings", str(_audio(tmp_path / "audio"))]) == 0
    text = capsys.readouterr().out
    assert "aaa" in text and "micro precision 0.667" in text
    for name in ("detection_report.html", "detection_report.md", "detection_metrics.csv", "detection_summary.json",
                 "detection_pr.png", "annotation_report.txt"):
        assert (out / name).is_file(), name
    assert "data:image/png;base64," in (out / "detection_report.html").read_text()
    assert json.loads((out / "detection_summary.json").read_text())["threshold"] == 0.5
    cases = [
        ([str(tmp_path / "missing.csv"), str(ann)], "no such file or folder"),
        ([str(det), str(ann), "--threshold", "2"], "--threshold must be in [0, 1]"),
        ([str(det), str(tmp_path / "bad.Table.1.selections.txt")], "no annotation box could be read"),
        ([str(det), str(ann), "--out", str(ann / "x")], "inside"),
    ]
    (tmp_path / "words.csv").write_text("a,b\n1,2\n")
    (tmp_path / "bad.Table.1.selections.txt").write_text(RAVEN + "1\tSpectrogram 1\t1\t5\t4\t0\t1\taaa\n")
    cases.append(([str(det), str(tmp_path / "words.csv")], "no annotation box could be read"))
    for argv, message in cases:
        argv = argv if "--out" in argv else [*argv, "--out", str(tmp_path / "o")]
        assert main(["evaluate-detections", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def _scene(path: Path, events: list[tuple[float, float, float]], seconds: float = 30.0, seed: int = 0) -> None:
    """Noise with tone bursts (start, end, frequency)."""
    sr = 32000
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.003 * rng.standard_normal(t.size)
    for a, b, f in events:
        on = (t >= a) & (t < b)
        x[on] += 0.3 * np.sin(2 * np.pi * f * t[on]) * (np.sin(2 * np.pi * 4 * t[on]) > -0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr)


def test_end_to_end_prepare_train_predict_evaluate(tmp_path, capsys):
    """prepare --annotations -> train -> predict (csv and raven) -> evaluate-detections, and a BirdNET-Analyzer
    csv of the same detections."""
    audio, tables = tmp_path / "audio", tmp_path / "tables"
    species = {"lowtone": 1200.0, "hightone": 5000.0}
    rng = np.random.default_rng(1)
    for i in range(4):
        events, t = [], 0.5
        while t < 26:
            name = ["lowtone", "hightone"][int(rng.integers(2))]
            events.append((t, t + 3.0, name))
            t += 3.0 + float(rng.uniform(2, 6))
        _scene(audio / f"scene{i}.wav", [(a, b, species[s]) for a, b, s in events], seed=i)
        tables.mkdir(exist_ok=True)
        (tables / f"scene{i}.Table.1.selections.txt").write_text(
            RAVEN + "".join(f"{k}\tSpectrogram 1\t1\t{a:.3f}\t{b:.3f}\t800\t6000\t{s}\n" for k, (a, b, s) in enumerate(events, 1)))
    ds, run = tmp_path / "ds", tmp_path / "run"
    assert main(["-q", "prepare", str(audio), "--annotations", str(tables), "--out", str(ds), "--complete",
                 "--val-fraction", "0.25", "--workers", "1", "--no-progress"]) == 0
    assert main(["-q", "train", str(ds), "--out", str(run), "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                 "--workers", "0", "--background", str(ds / "nobird" / "train"), "--no-progress"]) == 0
    csv, raven = tmp_path / "pred.csv", tmp_path / "raven"
    assert main(["-q", "predict", str(run), str(audio), "--top-k", "0", "--min-conf", "0", "--out", str(csv)]) == 0
    assert main(["-q", "predict", str(run), str(audio), "--format", "raven", "--out", str(raven)]) == 0
    capsys.readouterr()
    for det in (csv, raven):
        out = tmp_path / f"eval_{det.stem}"
        assert main(["-q", "evaluate-detections", str(det), str(tables), "--recordings", str(audio),
                     "--out", str(out)]) == 0
        summary = json.loads((out / "detection_summary.json").read_text())
        assert summary["recordings"] == 4 and summary["species"] == 2 and summary["window_s"] == 5.0
        assert summary["report_lines"] == 0, (out / "annotation_report.txt").read_text()
    # the same scores as BirdNET-Analyzer writes its csv (Start (s), End (s), Scientific name, Common name, ...)
    p = pd.read_csv(csv)
    birdnet = pd.DataFrame({"Start (s)": p["start_s"], "End (s)": p["end_s"], "Scientific name": p["label"],
                            "Common name": p["label"], "Confidence": p["confidence"], "File": p["file"]})
    (tmp_path / "bn").mkdir()
    birdnet.to_csv(tmp_path / "bn" / "BirdNET_CombinedTable.csv", index=False)
    ours = evaluate_detections(csv, tables, recordings=audio)
    theirs = evaluate_detections(tmp_path / "bn", tables, recordings=audio)
    assert np.allclose(ours.per_species["ap"], theirs.per_species["ap"], atol=1e-3)
    assert ours.overall["annotation_boxes"] > 10 and ours.overall["detections"] == len(p)


def test_real_spinetail_labels_score_detections(shared_data, tmp_path):
    """The real Audacity labels as annotations: detections on their windows score as found."""
    rec = shared_data / "recordings" / "maad-spinetail.flac"
    labels = shared_data / "recordings" / "maad-spinetail.txt"
    if not (rec.is_file() and labels.is_file()):
        pytest.skip("maad-spinetail not in the shared data")
    det = pd.DataFrame([{"file": "maad-spinetail.flac", "start_s": a, "end_s": a + 5.0, "label": lab, "confidence": c}
                        for a, lab, c in ((0, "CRER", 0.9), (5, "CRER", 0.8), (10, "CRER", 0.7), (15, "CRER", 0.75),
                                          (10, "SP", 0.6), (15, "SP", 0.3))])
    det.to_csv(tmp_path / "det.csv", index=False)
    res = evaluate_detections(tmp_path / "det.csv", labels, recordings=rec, settings=DetectionEvalSettings(threshold=0.5))
    by = res.per_species.set_index("species")
    assert by.loc["CRER", "boxes"] == 4 and by.loc["SP", "boxes"] == 14
    assert by.loc["CRER", "event_recall"] == 1.0 and by.loc["CRER", "fp"] == 0
    assert math.isclose(by.loc["SP", "event_recall"], 3 / 14)  # the SP calls touching 10-15 s (9.97-10.35 too)


def test_detections_of_other_recordings_only_is_a_clear_error(tmp_path, capsys):
    ann = _annotations(tmp_path / "ann")
    det = _birdspec_csv(tmp_path / "det.csv", recording="audio/elsewhere.wav")
    assert main(["evaluate-detections", str(det), str(ann), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no detection names an annotated recording: the detections are of elsewhere, the annotations of r1" in err
