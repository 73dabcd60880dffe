"""Cut-off recordings (issue 15): what decodes is kept, the report says the file is truncated with the
decoded length, and duration rules apply to the decoded audio. Format-parametrized, synthetic audio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdspec import audio
from birdspec.cli.main import main
from birdspec.truncation import truncation

from helpers import class_signal, write_audio

SR = 32000


def _cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_a_cut_off_file_decodes_what_it_has_and_says_so(tmp_path, ext):
    whole = write_audio(tmp_path / f"whole.{ext}", class_signal(0, duration_s=12.0, sample_rate_hz=SR), SR)
    cut = _cut(write_audio(tmp_path / f"cut.{ext}", class_signal(0, duration_s=12.0, sample_rate_hz=SR), SR), 0.4)
    assert truncation(whole, decoded_s=audio.load(whole).size / SR) is None
    wave = audio.load(cut)
    decoded_s = wave.size / SR
    assert 1.0 < decoded_s < 11.0  # FLAC: the frames before the damage, not an error
    note = truncation(cut, decoded_s=decoded_s)
    assert note is not None and note.startswith("truncated:") and f"{decoded_s:.2f} s" in note
    # a crop shorter than what decodes is not a truncation
    assert truncation(cut, decoded_s=1.0, max_duration_s=1.0) is None


def test_prepare_keeps_a_cut_off_recording_with_a_warning_and_applies_rules_to_its_decoded_length(tmp_path, capsys):
    src = tmp_path / "src"
    for label in ("a", "b"):
        for k in range(3):
            write_audio(src / label / f"{label}{k}.ogg", class_signal(ord(label) % 3, duration_s=8.0, sample_rate_hz=SR, seed=k), SR)
    _cut(src / "a" / "a0.ogg", 0.5)
    _cut(src / "b" / "b0.ogg", 0.3)  # leaves under 2 s
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out), "--workers", "1", "--encoding", "window",
                 "--short-policy", "pad", "--min-duration-s", "2", "--no-progress"]) == 0
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    row = manifest[manifest["source_path"].str.endswith("a0.ogg")].iloc[0]
    assert row["warning"].startswith("truncated:") and 2.0 < float(row["duration_s"]) < 7.5
    assert f"{float(row['duration_s']):.2f} s" in row["warning"]
    assert (manifest["warning"] != "").sum() == 1  # the whole files carry none
    skipped = pd.read_csv(out / "skipped.csv")
    reason = skipped[skipped["path"].str.endswith("b0.ogg")]["reason"].iloc[0]
    assert reason.startswith("duration") and "< min 2 s" in reason and "truncated" in reason
    captured = capsys.readouterr()
    assert "look cut off" in captured.err and "1 kept recording(s) look cut off" in captured.out


@pytest.mark.parametrize("content, words", [
    (b"hello, this is a text file\n", "a text file, not audio"),
    (bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8)), "not audio in a format birdspec reads"),
])
def test_a_file_that_is_not_audio_is_named_so_and_decoder_notes_stay_off_the_terminal(tmp_path, capfd, content, words):
    """Issue 15: a text file named .mp3 was "File does not exist or is not a regular file (possibly a
    pipe?)", and libmpg123 printed its notes straight to the terminal."""
    fake = tmp_path / "song.mp3"
    fake.write_bytes(content)
    with pytest.raises(audio.AudioError, match=words):
        audio.load(fake)
    captured = capfd.readouterr()
    assert "Note:" not in captured.err and "possibly a pipe" not in captured.err
    assert main(["prepare", str(tmp_path), "--out", str(tmp_path.parent / f"out-{tmp_path.name}"), "--workers", "1"]) == 2
    assert "Note:" not in capfd.readouterr().err


def test_predict_scores_what_decodes_of_a_cut_off_file_and_warns(tmp_path, fast_dataset, capsys):
    from birdspec.prediction.predictor import Predictor

    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    cut = _cut(write_audio(tmp_path / "cut.flac", class_signal(0, duration_s=12.0, sample_rate_hz=SR), SR), 0.4)
    whole = write_audio(tmp_path / "whole.flac", class_signal(0, duration_s=6.0, sample_rate_hz=SR), SR)
    with Predictor(run) as predictor:
        results = {r.name: r for r in predictor.predict_paths([cut, whole])}
    assert results["cut.flac"].ok and results["cut.flac"].warning.startswith("truncated: decoded")
    assert 1.0 < results["cut.flac"].duration_s < 11.0 and len(results["cut.flac"].windows) > 0
    assert results["whole.flac"].warning is None
    assert main(["predict", str(run), str(cut), "--out", str(tmp_path / "p.csv"), "--no-progress"]) == 0
    assert "its scores cover what decodes" in capsys.readouterr().err
