"""Nothing a command reads is overwritten: an --out that is (or is inside) an input is refused with exit 2."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from birdspec.cli.main import main

from helpers import make_run, write_audio

SR = 32000


HOLD_LOCK = ("import sys, time\nfrom birdspec.fileio import output_lock\nwith output_lock(sys.argv[1]):\n"
             "    print('held', flush=True)\n    time.sleep(60)\n")
"""A child that holds the output lock of ``sys.argv[1]`` for a minute."""


def test_outputs_never_replace_inputs(tmp_path, fast_dataset, capsys):
    run = make_run(tmp_path / "run", fast_dataset)
    ckpt = run / "checkpoints" / "best.pt"
    rec = write_audio(tmp_path / "rec.wav", (0.1 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32), SR)
    before = {p: p.read_bytes() for p in (ckpt, rec)}
    cases = [
        ["predict", str(ckpt), str(rec), "--out", str(rec)],
        ["predict", str(ckpt), str(tmp_path), "--out", str(tmp_path / "preds.csv")],  # inside an input folder
        ["export", str(ckpt), "--out", str(ckpt)],
        ["export", str(ckpt), "--out", str(rec.with_suffix(".onnx")), "--check-audio", str(rec.with_suffix(".onnx"))],
        ["train", str(fast_dataset), "--out", str(fast_dataset)],
        ["train", str(fast_dataset), "--out", str(fast_dataset / "runs" / "a")],
        ["prepare", str(tmp_path), "--out", str(tmp_path / "prepared")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "never overwrites what it reads" in err and "Traceback" not in err, argv
    assert {p: p.read_bytes() for p in (ckpt, rec)} == before


def test_outputs_beside_inputs_are_fine(tmp_path, fast_dataset):
    run = make_run(tmp_path / "run", fast_dataset)
    rec = write_audio(tmp_path / "rec.wav", (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    assert main(["predict", str(run), str(rec), "--format", "raven", "--out", str(run / "selections"), "--no-progress"]) == 0
    assert main(["predict", str(run), str(rec), "--out", str(tmp_path / "rec.csv"), "--no-progress"]) == 0


def test_file_system_faults_are_one_clear_line(tmp_path, fast_dataset, monkeypatch, capsys):
    """A full disk while prepare writes, and an --out below a regular file: exit 2, the path and the cause, nothing published."""

    from birdspec.data import decode

    src = tmp_path / "src"
    for label in ("a", "b"):
        for k in range(3):
            write_audio(src / label / f"{label}{k}.wav", (0.1 * np.random.default_rng(k).standard_normal(SR)).astype(np.float32), SR)

    def full_disk(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.partial" / "waveforms.f16"))

    monkeypatch.setattr(decode, "copy_file", full_disk)
    assert main(["prepare", str(src), "--out", str(tmp_path / "out"), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "waveforms.f16" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["prepare", str(src), "--out", str(blocker / "out"), "--workers", "1"]) == 2
    assert "not a folder" in capsys.readouterr().err
    run = make_run(tmp_path / "run", fast_dataset)
    rec = write_audio(tmp_path / "rec.wav", (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    assert main(["predict", str(run), str(rec), "--out", str(blocker / "p.csv"), "--no-progress"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    """Issue 15, finding 1: a second `prepare` of an --out that another process is writing is refused (exit 2,
    naming the process); when that process is killed, its stale lock is taken over and the dataset is made."""
    import signal
    import subprocess
    import sys

    src = tmp_path / "src"
    for label in ("a", "b"):
        for k in range(3):
            write_audio(src / label / f"{label}{k}.wav", (0.1 * np.random.default_rng(k).standard_normal(6 * SR)).astype(np.float32), SR)
    out = tmp_path / "out"
    code = HOLD_LOCK
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["prepare", str(src), "--out", str(out), "--encoding", "window", "--short-policy", "pad", "--workers", "1"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"is being written by process {holder.pid}" in err and "choose another --out" in err
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "out.lock").exists()  # killed: its lock stays behind
    assert main(argv) == 0
    assert (out / "dataset.json").is_file() and not (tmp_path / "out.lock").exists()


def test_train_cv_and_sweep_folders_have_one_writer(tmp_path, fast_dataset, capsys):
    import signal
    import subprocess
    import sys

    code = HOLD_LOCK
    common = ["--epochs", "1", "--device", "cpu", "--workers", "0", "--no-progress"]
    for cmd in (["train", str(fast_dataset)], ["cv", str(fast_dataset)], ["sweep", str(fast_dataset), "--lrs", "0.01"]):
        out = tmp_path / cmd[0]
        holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            assert main([*cmd, "--out", str(out), *common]) == 2, cmd
            assert f"is being written by process {holder.pid}" in capsys.readouterr().err
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()


def test_prepare_killed_at_any_point_then_rerun_is_byte_identical(tmp_path):
    """SIGKILL during decoding, during writing, after publishing: the rerun's files equal an uninterrupted run's."""
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "src"
    for label in ("a", "b", "c"):
        for k in range(8):
            wave = (0.1 * np.random.default_rng(hash((label, k)) % 2**32).standard_normal(12 * SR)).astype(np.float32)
            write_audio(src / label / f"{label}{k}.flac", wave, SR)

    def cmd(out):
        return [sys.executable, "-m", "birdspec", "-q", "prepare", str(src), "--out", str(out), "--encoding", "window",
                "--short-policy", "pad", "--folds", "3", "--workers", "1"]

    reference = tmp_path / "reference"
    subprocess.run(cmd(reference), check=True, timeout=300)
    files = ("waveforms.f16", "manifest.csv", "skipped.csv")
    for delay in (0.3, 0.8, 1.5, 3.0):
        out = tmp_path / f"killed-{delay}"
        proc = subprocess.Popen(cmd(out))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        subprocess.run(cmd(out), check=True, timeout=300)
        for name in files:
            assert (out / name).read_bytes() == (reference / name).read_bytes(), (delay, name)
        assert not (tmp_path / f"killed-{delay}.partial").exists() and not (tmp_path / f"killed-{delay}.lock").exists()


def test_an_existing_file_of_another_kind_needs_overwrite(tmp_path, fast_dataset, capsys):
    """Issue 15: an --out that is not an input but holds another kind of file (a recording, a checkpoint,
    an image) is refused without --overwrite; a file of the kind the command writes is replaced."""
    run = make_run(tmp_path / "run", fast_dataset)
    ckpt = run / "checkpoints" / "best.pt"
    rec = write_audio(tmp_path / "rec.wav", (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    other_rec = write_audio(tmp_path / "other.wav", np.zeros(SR, np.float32), SR)
    disguised = tmp_path / "old.csv"  # an audio recording under a table's name
    disguised.write_bytes(other_rec.read_bytes())
    ckpt_copy = tmp_path / "copy.pt"
    ckpt_copy.write_bytes(ckpt.read_bytes())
    cases = [
        (["predict", str(run), str(rec), "--out", str(other_rec)], "an audio recording"),
        (["predict", str(run), str(rec), "--out", str(disguised)], "an audio recording"),
        (["predict", str(run), str(rec), "--format", "raven", "--out", str(other_rec)], "not a folder"),
        (["export", str(ckpt), "--out", str(ckpt_copy)], "a zip archive"),
        (["spectrogram", str(rec), "--out", str(other_rec)], "an audio recording"),
    ]
    keep = {p: p.read_bytes() for p in (other_rec, disguised, ckpt_copy)}
    for argv, what in cases:
        assert main(argv + ["--no-progress"] * (argv[0] == "predict")) == 2, argv
        err = capsys.readouterr().err
        assert what in err and "--overwrite" in err and "Traceback" not in err, (argv, err)
    assert {p: p.read_bytes() for p in keep} == keep

    table = tmp_path / "preds.csv"
    table.write_text("file,window\n")  # a table: replaced without a flag
    assert main(["predict", str(run), str(rec), "--out", str(table), "--no-progress"]) == 0
    assert "confidence" in table.read_text()
    assert main(["predict", str(run), str(rec), "--out", str(disguised), "--no-progress", "--overwrite"]) == 0
    assert "confidence" in disguised.read_text()


def test_an_interrupted_predict_leaves_the_old_output(tmp_path, fast_dataset, monkeypatch):
    """A failure in the middle of predict publishes nothing half-written: --out keeps its old content, no temp files."""
    from birdspec.prediction import outputs

    run = make_run(tmp_path / "run", fast_dataset)
    recs = [write_audio(tmp_path / "in" / f"r{k}.wav", (0.1 * np.random.default_rng(k).standard_normal(6 * SR)).astype(np.float32), SR)
            for k in range(3)]
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run), *map(str, recs), "--out", str(out), "--no-progress"]) == 0
    before = out.read_bytes()
    real = outputs.PredictionWriter.write
    calls = []

    def interrupted(self, result):
        calls.append(result)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, result)

    monkeypatch.setattr(outputs.PredictionWriter, "write", interrupted)
    try:
        main(["predict", str(run), str(tmp_path / "in"), "--out", str(out), "--no-progress", "--min-conf", "0"])
    except KeyboardInterrupt:
        pass
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only"),
    (errno.EDQUOT, "the disk quota is exceeded"), (errno.EIO, "check the path and the disk"),
])
def test_a_store_that_cannot_be_written_stops_prepare_with_one_line(tmp_path, monkeypatch, capsys, code, words):
    """Faults of the store being written stop prepare with exit 2 (never a recording quietly skipped as
    damaged); nothing is published and the output of an earlier prepare stays as it was."""
    from birdspec.data import decode

    src = tmp_path / "src"
    for label in ("a", "b"):
        for k in range(2):
            write_audio(src / label / f"{label}{k}.wav", (0.1 * np.random.default_rng(k).standard_normal(SR)).astype(np.float32), SR)
    out = tmp_path / "out"
    argv = ["prepare", str(src), "--out", str(out), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def fault(*_a, **_k):
        raise OSError(code, os.strerror(code), str(tmp_path / "out.partial" / "waveforms.f16"))

    monkeypatch.setattr(decode, "copy_file", fault)
    assert main(argv + ["--overwrite", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert words in err and "waveforms.f16" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_replace_dir_swaps_a_folder_whole(tmp_path):
    """A finished folder replaces an older one whole (no file of the old one survives in it), and no
    side folder is left; a folder that does not exist yet is simply moved into place."""
    from birdspec.fileio import replace_dir

    final = tmp_path / "cache"
    for version, names in (("1", ("a", "b")), ("2", ("a",))):
        partial = tmp_path / f"cache.partial-{version}"
        partial.mkdir()
        for name in names:
            (partial / name).write_text(version)
        assert replace_dir(partial, final) == final
        assert sorted(p.name for p in final.iterdir()) == list(names)
        assert {p.read_text() for p in final.iterdir()} == {version}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_replace_dir_that_fails_keeps_the_old_folder(tmp_path, monkeypatch):
    """When the finished folder cannot be moved into place, the old one is back where it was and nothing
    is left aside."""
    from birdspec import fileio

    final, partial = tmp_path / "cache", tmp_path / "cache.partial"
    for folder, text in ((final, "old"), (partial, "new")):
        folder.mkdir()
        (folder / "a").write_text(text)
    real_replace = os.replace

    def refuse_partial(src, dst):
        if Path(src) == partial:
            raise OSError(errno.EIO, "I/O error", str(src))
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", refuse_partial)
    with pytest.raises(OSError):
        fileio.replace_dir(partial, final)
    assert (final / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "cache.partial"]
