"""Issue 32: fault and bad-input probes that gave a traceback, a silent success or lost data.

Each test simulates the fault (a full disk by a write that fails with ENOSPC, a bad recording, a
held lock) and checks the clear message, the exit status and that nothing older is lost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from birdspec.cli.main import main

from helpers import write_audio

SR = 32000

TRAIN = ["--epochs", "1", "--device", "cpu", "--workers", "0", "--no-progress"]


def _one_error_line(err: str, command: str) -> str:
    """The one ``birdspec COMMAND: error:`` line of ``err`` (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"birdspec {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ 2: a full disk while training
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_naming_it(tmp_path, fast_dataset, monkeypatch, capsys):
    """The checkpoint's temporary file is /dev/full (every write fails with ENOSPC): PyTorch's zip writer
    turned that into `RuntimeError: unexpected pos` (exit 1, tracebacks); now exit 2, one line naming best.pt."""
    from birdspec import fileio

    full = tmp_path / "full-disk"
    full.symlink_to("/dev/full")
    real = fileio.temp_path_for
    monkeypatch.setattr(fileio, "temp_path_for", lambda target: full if target.suffix == ".pt" else real(target))
    assert main(["train", str(fast_dataset), "--out", str(tmp_path / "run"), *TRAIN]) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "the disk is full" in line and str(tmp_path / "run" / "checkpoints") in line
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert Path("/dev/full").exists() and not full.exists()  # only the link beside the target was removed


def test_a_full_disk_while_saving_the_resume_state_is_one_line_naming_it(tmp_path, fast_dataset, monkeypatch, capsys):
    """Lightning's resume state: a write that fails without naming a file says which file it was."""
    import lightning.pytorch as pl

    def full_disk(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", full_disk)
    run = tmp_path / "run"
    assert main(["train", str(fast_dataset), "--out", str(run), *TRAIN]) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "the disk is full" in line and str(run / "lightning" / "last.ckpt") in line
    assert not [p for p in (run / "lightning").iterdir() if p.is_file()]  # no half resume state


def test_a_failed_write_names_the_target_not_the_temporary_file(tmp_path):
    from birdspec.fileio import atomic_path

    target = tmp_path / "table.csv"
    target.write_text("old")
    for code, copy in ((errno.ENOSPC, False), (errno.EDQUOT, True)):
        with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
            tmp.write_text("new, half")
            if copy:  # shutil's copy names its source and destination
                raise OSError(code, os.strerror(code), "/tmp/src", None, str(tmp))
            raise OSError(code, os.strerror(code))  # a write() names nothing
        assert caught.value.errno == code and caught.value.filename == str(target)
        assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with pytest.raises(FileNotFoundError) as missing, atomic_path(target):  # reading an input keeps its name
        open(tmp_path / "input.wav", "rb")
    assert missing.value.filename == str(tmp_path / "input.wav")


# ------------------------------------------------------------------ 3: a full disk during export
@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("torchscript", "m.pt")])
def test_a_failed_export_leaves_the_old_model_and_sidecar(tmp_path, fast_dataset, monkeypatch, capsys, fmt, name):
    """The export is written beside its target and renamed into place after its check: a full disk half-way
    (or an export that fails its check) leaves the older model and sidecar byte for byte, and no temporary file."""
    import torch

    from helpers import make_run

    ckpt = make_run(tmp_path / "run", fast_dataset) / "checkpoints" / "best.pt"
    out = tmp_path / "models" / name
    argv = ["export", str(ckpt), "--format", fmt, "--out", str(out)]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    capsys.readouterr()

    def half_written(_module, *args, **_kwargs):  # 100 kB reach the disk, then it is full
        target = next(a for a in args if isinstance(a, (str, Path)) or hasattr(a, "write"))
        with (open(target, "wb") if isinstance(target, (str, Path)) else contextlib.nullcontext(target)) as f:
            f.write(b"\0" * 102_400)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx if fmt == "onnx" else torch.jit, "export" if fmt == "onnx" else "save", half_written)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err, "export")
    assert "the disk is full" in line and str(out) in line
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
    monkeypatch.undo()

    assert main(argv + ["--tolerance=-1"]) == 2  # no export can pass: it is not published
    assert "nothing was written" in _one_error_line(capsys.readouterr().err, "export")
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


# ------------------------------------------------------------------ 4: predict where nothing could be scored
def test_predict_with_nothing_scored_fails_and_keeps_the_old_table(tmp_path, fast_dataset, capsys):
    """A recording that does not decode was exit 0 and an old table replaced by a header-only one; now exit 2,
    one line naming the file and the cause, and the old table (and no failed list) as it was."""
    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    good = write_audio(tmp_path / "good.wav", (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run), str(good), "--out", str(out), "--no-progress"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    for paths in ([bad], [bad, tmp_path / "bad2.wav"]):
        (tmp_path / "bad2.wav").write_bytes(b"")
        assert main(["predict", str(run), *map(str, paths), "--out", str(out), "--no-progress"]) == 2
        line = _one_error_line(capsys.readouterr().err, "predict")
        assert f"{bad}: " in line and "not audio" in line and "nothing was written" in line
        assert line.count(str(bad)) == 1 and (len(paths) == 1 or "none of the 2 recordings" in line)
        assert out.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["bad.wav", "bad2.wav", "good.wav", "preds.csv"]
    assert main(["predict", str(run), str(bad), str(good), "--out", str(out), "--no-progress"]) == 0  # one scored: success
    assert (tmp_path / "preds.csv.failed.csv").is_file()


# ------------------------------------------------------------------ 5: non-finite samples in predict
def test_non_finite_samples_are_scored_as_silence_with_one_warning(tmp_path, fast_dataset, capsys):
    """NaN/Inf samples gave windows with empty score cells and only numpy's RuntimeWarning, and an all-NaN file
    0 rows and no warning. The rule: they are scored as silence (0) with one warning per file (count and time
    range, also in the result's warning); a file with no finite sample fails like one that does not decode."""
    import warnings

    import pandas as pd
    import soundfile as sf

    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    wave = (0.1 * np.random.default_rng(0).standard_normal(12 * SR)).astype(np.float32)
    wave[3 * SR : 4 * SR] = np.nan
    wave[7 * SR + 5] = np.inf
    some = tmp_path / "in" / "some_nan.wav"
    some.parent.mkdir()
    sf.write(str(some), wave, SR, subtype="FLOAT")  # float samples keep NaN and Inf
    sf.write(str(tmp_path / "in" / "all_nan.wav"), np.full(6 * SR, np.nan, np.float32), SR, subtype="FLOAT")
    out = tmp_path / "p.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["predict", str(run), str(some), "--out", str(out), "--no-progress", "--scores", "all", "--min-conf", "0"]) == 0
    err = capsys.readouterr().err
    table = pd.read_csv(out)
    assert len(table) == 12 and np.isfinite(table[["synth0", "synth1", "synth2"]].to_numpy()).all()
    notes = [line for line in err.splitlines() if "non-finite" in line]
    assert notes == [f"{some}: {SR + 1} non-finite sample(s) (NaN or infinite) between 3.00 s and 7.00 s were scored as silence"]

    assert main(["predict", str(run), str(tmp_path / "in" / "all_nan.wav"), "--out", str(out), "--no-progress"]) == 2
    assert "no finite samples: all 192000 decoded samples are NaN or infinite" in _one_error_line(capsys.readouterr().err, "predict")

    folder = tmp_path / "archive"
    assert main(["predict", str(run), str(tmp_path / "in"), "--out", f"{folder}/", "--no-progress", "--jobs", "1"]) == 0
    failed = pd.read_csv(folder / "failed.csv")
    assert failed["path"].tolist() == [str(tmp_path / "in" / "all_nan.wav")] and "no finite samples" in failed["error"][0]


def test_the_non_finite_rule_on_blocks():
    from birdspec.errors import AudioError
    from birdspec.prediction.windower import NonFinite

    rule = NonFinite()
    clean = np.ones(4, np.float32)
    assert rule.clean(clean) is clean  # no copy of a finite block
    got = rule.clean(np.array([1, np.nan, -np.inf, 1], np.float32))
    assert got.tolist() == [1, 0, 0, 1] and rule.note(sample_rate_hz=4) == (
        "2 non-finite sample(s) (NaN or infinite) between 1.25 s and 1.75 s were scored as silence")
    everything = NonFinite()
    everything.clean(np.full(3, np.nan, np.float32))
    with pytest.raises(AudioError, match="no finite samples"):
        everything.note()


# ------------------------------------------------------------------ 6: a float WAV beyond float16's range
def test_a_float_wav_beyond_the_store_range_is_scaled_with_a_warning(tmp_path, capsys):
    """sigma 1e6: most samples became inf in waveforms.f16, silently. Now the recording is scaled by a power
    of two to full scale (its shape kept), no stored sample is infinite, and manifest.csv's warning says so."""
    import pandas as pd
    import soundfile as sf

    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for k in range(2):
            write_audio(src / label / f"{label}{k}.wav", (0.1 * rng.standard_normal(2 * SR)).astype(np.float32), SR)
    loud = (1e6 * rng.standard_normal(6 * SR)).astype(np.float32)
    sf.write(str(src / "a" / "loud.wav"), loud, SR, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]) == 0
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    store = np.fromfile(out / "waveforms.f16", dtype="<f2")
    assert np.isfinite(store).all()
    row = manifest[manifest["filename"].str.endswith("loud.wav")].iloc[0]
    exponent = int(np.ceil(np.log2(np.abs(loud).max())))
    assert row["warning"].startswith("scaled: samples reach") and f"2^-{exponent}" in row["warning"]
    kept = store[int(row["offset"]) : int(row["offset"]) + int(row["num_samples"])].astype(np.float32)
    np.testing.assert_allclose(kept, (loud * 2.0**-exponent).astype(np.float16).astype(np.float32))
    assert 0.5 < np.abs(kept).max() <= 1.0
    assert (manifest["warning"] != "").sum() == 1
    assert "1 recording(s) have samples beyond the float16 store's range" in capsys.readouterr().err


# ------------------------------------------------------------------ 7: a manifest listing a recording again
def _prepare_csv(tmp_path, rows: list[dict], name: str):
    import pandas as pd

    csv = tmp_path / f"{name}.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / name
    assert main(["prepare", str(csv), "--out", str(out), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]) == 0
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False, dtype=str)
    skipped = pd.read_csv(out / "skipped.csv", keep_default_na=False)
    return manifest, skipped


def test_a_manifest_row_listing_a_recording_again_is_skipped_with_a_reason(tmp_path, capsys):
    """One recording three times (ids -2, -3 in training) and one under two labels were kept silently.
    Now the repeats of the same audio and label are skipped as duplicates of the first, and audio listed under
    two labels is skipped altogether (one primary label per recording), each with its reason in skipped.csv."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for k in range(3):
            write_audio(tmp_path / "audio" / f"{label}{k}.wav", (0.1 * rng.standard_normal(SR)).astype(np.float32), SR)
    rows = [{"path": f"audio/{label}{k}.wav", "label": label} for label in ("a", "b") for k in range(3)]
    rows += [{"path": "audio/a0.wav", "label": "a"}] * 2 + [{"path": "audio/b2.wav", "label": "a"}]  # b2 is also 'a'
    manifest, skipped = _prepare_csv(tmp_path, rows, "whole")
    assert sorted(manifest["id"]) == ["a1", "a2", "audio_a0", "b0", "b1"]  # the first of a0's ids: audio_a0, -2, -3
    reasons = sorted(zip(skipped["path"].map(lambda p: Path(p).name), skipped["label"], skipped["reason"], strict=True))
    conflict = ("conflicting labels: the same audio is listed as a and b (one primary label per recording; "
                "list other species in secondary_labels)")
    assert reasons == [("a0.wav", "a", "duplicate of audio_a0 (the same audio and label)")] * 2 + [
        ("b2.wav", "a", conflict), ("b2.wav", "b", conflict)]
    assert "4 row(s) list a recording again" in capsys.readouterr().err
    # windows: other windows of one file are other audio; the same window again is a duplicate
    rows = [{"path": "audio/a0.wav", "label": "a", "start_s": s, "end_s": s + 0.5} for s in (0.0, 0.5)]
    rows += [{"path": "audio/b0.wav", "label": "b", "start_s": 0.0, "end_s": 1.0}] * 2
    rows += [{"path": "audio/b1.wav", "label": "b", "start_s": 0.0, "end_s": 1.0}]
    manifest, skipped = _prepare_csv(tmp_path, rows, "windows")
    assert len(manifest) == 4 and (manifest["filename"] == "audio/a0.wav").sum() == 2
    assert skipped["reason"].tolist() == [f"duplicate of {manifest['id'][manifest['filename'] == 'audio/b0.wav'].item()} "
                                          "(the same audio and label)"]


# ------------------------------------------------------------------ 8: a NUL byte in a web-app path
@pytest.mark.parametrize("method, url, body", [
    ("get", "/api/recording?ref=recs/a%00.wav", None), ("get", "/api/audio?ref=recs/a%00.wav", None),
    ("get", "/api/tile?level=0&index=0&ref=recs/a%00.wav", None), ("get", "/api/file?ref=recs/a%00.wav", None),
    ("get", "/api/spectrogram?ref=recs/a%00.wav&start_s=0&duration_s=1", None),
    ("get", "/api/clip?ref=recs/a%00.wav&start_s=0&end_s=1", None),
    ("get", "/api/prediction?ref=predictions/a%00.csv", None), ("get", "/api/review?prediction=predictions/a%00.csv", None),
    ("post", "/api/predict", {"recording": "recs/a\0.wav", "checkpoint": "runs/x.pt"}),
    ("post", "/api/verdict", {"prediction": "predictions/a\0.csv"}),
])
def test_a_nul_byte_in_an_app_path_is_a_bad_request(tmp_path, method, url, body):
    """`ValueError: embedded null byte` was HTTP 500 with a traceback; now 400 saying what is wrong."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from birdspec.app.paths import ServeConfig
    from birdspec.app.server import create_app

    for d in ("runs", "recs"):
        (tmp_path / d).mkdir()
    config = ServeConfig(runs_dir=tmp_path / "runs", recording_dirs=(tmp_path / "recs",), work_dir=tmp_path / "work")
    client = TestClient(create_app(config), raise_server_exceptions=False)
    r = client.post(url, json=body) if method == "post" else client.get(url)
    assert r.status_code == 400, r.text
    assert "cannot hold a NUL byte" in r.json()["error"]


# ------------------------------------------------------------------ 9: the output lock cannot be stolen
def _small_source(root: Path) -> Path:
    for label in ("a", "b"):
        for k in range(3):
            write_audio(root / label / f"{label}{k}.wav", (0.1 * np.random.default_rng(k).standard_normal(SR)).astype(np.float32), SR)
    return root


def test_a_lock_taken_but_not_yet_noted_is_not_stolen(tmp_path, capsys):
    """Between taking OUT.lock and writing its note, the lock file is empty: it was taken over. Now the OS lock
    (flock, held for the command's life) decides, and the second writer is refused."""
    import signal
    import subprocess
    import sys

    src, out = _small_source(tmp_path / "src"), tmp_path / "out"
    code = ("import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.lock")], stdout=subprocess.PIPE, text=True)
    argv = ["prepare", str(src), "--out", str(out), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(argv) == 2
        line = _one_error_line(capsys.readouterr().err, "prepare")
        assert "is being written by another process (that has not written its note yet)" in line
        assert not out.exists() and (tmp_path / "out.lock").read_text() == ""
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(argv) == 0 and not (tmp_path / "out.lock").exists()  # its process is gone: the lock is free


def test_a_lock_noted_by_another_host_is_refused_with_how_to_remove_it(tmp_path, capsys):
    """A lock from another host (shared storage: the Dask case) cannot be checked from here: it was taken over
    as '(no longer running)'. Now it is refused, naming the host and the file to remove, and left as it was."""
    import json
    import socket

    src, out = _small_source(tmp_path / "src"), tmp_path / "out"
    lock = tmp_path / "out.lock"
    note = {"pid": os.getpid(), "host": socket.gethostname() + "-elsewhere", "started": "2025-01-01 00:00:00",
            "command": "birdspec predict run /shared/archive --out /shared/out/ --engine dask"}
    lock.write_text(json.dumps(note))
    argv = ["prepare", str(src), "--out", str(out), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err, "prepare")
    assert f"on host {note['host']}, which cannot be checked" in line and f"remove {lock} and run again" in line
    assert note["command"] in line and json.loads(lock.read_text()) == note and not out.exists()
    lock.unlink()  # what the message says to do
    assert main(argv) == 0


@pytest.mark.parametrize("argv0", ["/venv/bin/birdspec", "/src/birdspec/__main__.py"])
def test_the_lock_names_its_holder_and_command(tmp_path, monkeypatch, argv0):
    import json
    import socket
    import sys

    from birdspec.locks import output_lock

    monkeypatch.setattr(sys, "argv", [argv0, "prepare", "src", "--out", str(tmp_path / "out")])
    with output_lock(tmp_path / "out") as lock:
        note = json.loads(lock.read_text())
        assert note["pid"] == os.getpid() and note["host"] == socket.gethostname()
        assert note["command"] == f"birdspec prepare src --out {tmp_path / 'out'}"
    assert not lock.exists()


def test_os_lock_waiters_end_up_on_the_file_at_the_path(tmp_path):
    """A waiter whose lock file was removed by the holder before it got the lock locks the file now at the
    path instead (never an orphan), so the file can be removed after each use."""
    import threading
    import time

    from birdspec.locks import os_lock

    lock = tmp_path / "x.lock"
    inside, seen = threading.Event(), []

    def waiter() -> None:
        inside.wait()
        with os_lock(lock, wait=True) as held:
            st = os.stat(lock)
            seen.append((st.st_ino, st.st_dev) == (os.fstat(held.fd).st_ino, os.fstat(held.fd).st_dev))

    thread = threading.Thread(target=waiter)
    thread.start()
    with os_lock(lock, wait=True):
        inside.set()
        time.sleep(0.3)  # the waiter opened this file and waits for its lock
        with pytest.raises(BlockingIOError):
            with os_lock(lock, wait=False):
                pass
    thread.join(10)
    assert seen == [True] and not lock.exists()


def test_verdicts_leave_no_lock_file_beside_the_table(tmp_path):
    """`*.verdicts.csv.lock` files stayed in --recordings folders; the verdicts lock is now the same OS lock
    as the output lock, and its file is removed after each verdict."""
    from birdspec.app import review

    table = tmp_path / "recs" / "song.csv"
    table.parent.mkdir()
    table.write_text("file,start_s,end_s,label,confidence\nsong.wav,0,5,a,0.9\n")
    detection = {"file": "song.wav", "start_s": 0.0, "end_s": 5.0, "label": "a", "confidence": 0.9}
    review.save_verdict(table, detection, "correct")
    assert sorted(p.name for p in table.parent.iterdir()) == ["song.csv", "song.verdicts.csv"]


# ------------------------------------------------------------------ durability: fsync, and caches after a restart
def _record_flushes(monkeypatch) -> list[tuple[str, ...]]:
    """os.fsync and os.replace calls, in order: ``("fsync", path)`` and ``("replace", src, dst)``."""
    events: list[tuple[str, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        events.append(("replace", str(src), str(dst)))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc (Linux)")
def test_atomic_writes_flush_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Whole or nothing after a power cut too, not only for a killed process; caches opt out (durable=False)."""
    from birdspec.fileio import write_text

    events = _record_flushes(monkeypatch)
    target = write_text(tmp_path / "a.txt", "x")
    assert len(events) == 3 and events[1][2] == str(target)
    tmp = events[1][1]
    assert events == [("fsync", tmp), ("replace", tmp, str(target)), ("fsync", str(tmp_path))]
    events.clear()
    write_text(tmp_path / "b.txt", "x", durable=False)
    assert [e[0] for e in events] == ["replace"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc (Linux)")
def test_prepare_flushes_what_it_publishes_not_each_cached_chunk(tmp_path, monkeypatch):
    from birdspec.fileio import this_boot

    src, out = _small_source(tmp_path / "src"), tmp_path / "out"
    events = _record_flushes(monkeypatch)
    assert main(["prepare", str(src), "--out", str(out), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]) == 0
    flushed = {Path(e[1]).name for e in events if e[0] == "fsync"}
    assert {"waveforms.f16", "out.partial", tmp_path.name} <= flushed  # the store, the dataset folder, its parent
    assert any(name.startswith("manifest.tmp-") for name in flushed) and any(name.startswith("dataset.tmp-") for name in flushed)
    chunk_flushes = [e for e in events if e[0] == "fsync" and "/chunks/" in e[1] and "/chunks/boot." not in e[1]]
    if this_boot() is not None:  # a flush per cached chunk made prepare up to 5x slower; a restart drops them
        assert not chunk_flushes


def test_chunks_cached_by_another_boot_are_decoded_again(tmp_path, monkeypatch, capsys):
    """Chunks skip the flush, so the ones a past boot wrote (a power cut may have damaged them) are not reused;
    the dataset is the same as one never interrupted."""
    from birdspec.data import decode

    src = _small_source(tmp_path / "src")
    argv = ["prepare", str(src), "--workers", "1", "--encoding", "window", "--short-policy", "pad"]
    real_append, calls = decode.ChunkConcatenator.append_chunk, {"append": 0, "load": 0}

    def crashing_append(self, *args, **kwargs):
        calls["append"] += 1
        if calls["append"] == 4:
            raise KeyboardInterrupt
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(decode, "this_boot", lambda: "host/boot-1")
    monkeypatch.setattr(decode.ChunkConcatenator, "append_chunk", crashing_append)
    assert main(argv + ["--out", str(tmp_path / "out")]) == 130  # interrupted
    chunks = tmp_path / "out.partial" / "chunks"
    assert (chunks / "boot.txt").read_text() == "host/boot-1" and len(list(chunks.glob("*.json"))) == 4
    monkeypatch.setattr(decode.ChunkConcatenator, "append_chunk", real_append)
    real_load = decode.load_audio

    def counting_load(task):
        calls["load"] += 1
        return real_load(task)

    monkeypatch.setattr(decode, "load_audio", counting_load)
    monkeypatch.setattr(decode, "this_boot", lambda: "host/boot-2")  # the machine restarted
    capsys.readouterr()
    assert main(argv + ["--out", str(tmp_path / "out")]) == 0
    assert calls["load"] == 6 and "decoding those recordings again" in capsys.readouterr().err
    assert main(argv + ["--out", str(tmp_path / "fresh")]) == 0
    assert (tmp_path / "out" / "waveforms.f16").read_bytes() == (tmp_path / "fresh" / "waveforms.f16").read_bytes()


def test_archive_parts_of_another_boot_are_read_back_before_reuse(tmp_path, fast_dataset, monkeypatch, capsys):
    """Parts skip the flush: a part written before a restart (or on another machine) that does not read back
    whole is scored again, and the merged table is the one a run never interrupted gives."""
    import json

    from birdspec.prediction import archive

    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    rng = np.random.default_rng(0)
    for k in range(3):
        write_audio(tmp_path / "in" / f"r{k}.wav", (0.1 * rng.standard_normal(4 * SR)).astype(np.float32), SR)
    out = tmp_path / "preds"
    argv = ["predict", str(run), str(tmp_path / "in"), "--out", f"{out}/", "--jobs", "1", "--no-progress"]
    monkeypatch.setattr(archive, "this_boot", lambda: "host/boot-1")
    assert main(argv) == 0
    table = (out / "predictions.csv").read_bytes()
    npz = sorted((out / "parts").glob("*.npz"))
    npz[1].write_bytes(npz[1].read_bytes()[:100])  # lost in a power cut
    monkeypatch.setattr(archive, "this_boot", lambda: "host/boot-2")
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().err.count("is damaged (written before a restart?); scoring it again") == 1
    assert (out / "predictions.csv").read_bytes() == table
    assert json.loads((out / "summary.json").read_text())["scored_now"] == 1


# ------------------------------------------------------------------ a full disk names the path (README Safety)
@pytest.mark.parametrize("folder", [False, True])
def test_a_full_disk_while_predict_writes_names_the_output_and_keeps_the_old_one(tmp_path, fast_dataset, monkeypatch,
                                                                                 capsys, folder):
    """Single-file and folder (merge) outputs: exit 2 with one line naming the output, the older output as it
    was, and no temporary file left behind (a failure while closing the table left one)."""
    from birdspec.prediction import outputs

    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    rec = write_audio(tmp_path / "in" / "r.wav", (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    out = tmp_path / ("preds" if folder else "preds.csv")
    argv = ["predict", str(run), str(rec), "--out", f"{out}/" if folder else str(out), "--no-progress", "--min-conf", "0"]
    assert main(argv + (["--jobs", "1"] if folder else [])) == 0
    table = out / "predictions.csv" if folder else out
    before = table.read_bytes()
    capsys.readouterr()
    for where in ("write", "close"):
        def full_disk(*args, where=where, **kwargs):  # half a row reaches the table, or its last flush fails
            if where == "write":
                args[0].write("half a row")
            raise OSError(errno.ENOSPC, "No space left on device")

        if where == "write":
            monkeypatch.setattr(outputs, "write_csv_text", full_disk)
        else:
            monkeypatch.setattr(outputs.PredictionWriter, "close", full_disk)
        assert main(argv + ["--top-k", "2"] + (["--jobs", "1"] if folder else [])) == 2, where
        line = _one_error_line(capsys.readouterr().err, "predict")
        assert f"{table}: the disk is full" in line, where
        assert table.read_bytes() == before and not list(tmp_path.rglob("*.tmp-*")), where
        monkeypatch.undo()


def test_a_full_disk_while_taking_the_lock_names_the_lock_file(tmp_path, monkeypatch, capsys):
    src, out = _small_source(tmp_path / "src"), tmp_path / "out"

    def full_disk(*_a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    assert main(["prepare", str(src), "--out", str(out), "--workers", "1"]) == 2
    assert f"{tmp_path / 'out.lock'}: the disk is full" in _one_error_line(capsys.readouterr().err, "prepare")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_folder_predict_takes_the_same_lock(tmp_path, fast_dataset, capsys):
    import json

    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    rec = write_audio(tmp_path / "in" / "r.wav", (0.1 * np.random.default_rng(0).standard_normal(4 * SR)).astype(np.float32), SR)
    (tmp_path / "preds.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "?", "command": "birdspec predict"}))
    assert main(["predict", str(run), str(rec), "--out", f"{tmp_path / 'preds'}/", "--jobs", "1", "--no-progress"]) == 2
    assert "on host elsewhere, which cannot be checked" in _one_error_line(capsys.readouterr().err, "predict")


def test_train_threads_sets_the_training_process_threads_and_refuses_zero(tmp_path, fast_dataset, capsys):
    """``birdspec train --threads N`` trains with N PyTorch threads (a job beside others leaves them cores)."""
    import torch

    from birdspec.cli.main import main

    before = torch.get_num_threads()
    try:
        assert main(["-q", "train", str(fast_dataset), "--model", "mobilenetv2-seed", "--epochs", "1", "--threads", "0",
                     "--out", str(tmp_path / "bad")]) == 2
        assert "--threads must be at least 1" in capsys.readouterr().err
        assert main(["-q", "train", str(fast_dataset), "--model", "mobilenetv2-seed", "--epochs", "1", "--threads", "1",
                     "--workers", "0", "--out", str(tmp_path / "run")]) == 0
        assert torch.get_num_threads() == 1
        assert json.loads((tmp_path / "run" / "config.json").read_text())["runtime"]["cpu_threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_a_scoped_thread_count_is_given_back_after_the_block_even_when_it_fails():
    """``runtime.cpu_threads``: N threads inside the block, the count found before after it (also after an error);
    None and 0 leave the count as it is; below 0 is refused."""
    import torch

    from birdspec.errors import ConfigError
    from birdspec.evaluation.profile import time_inference
    from birdspec.runtime import cpu_threads

    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with cpu_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(other):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    for leave in (None, 0):
        with cpu_threads(leave):
            assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="at least 1"), cpu_threads(-1):
        pass
    assert time_inference(torch.nn.Linear(4, 2), torch.zeros(2, 4), repeats=1, warmup=0, threads=other) > 0
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("given,want", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_cli_lets_idle_openmp_threads_sleep_unless_told_otherwise(given, want):
    """The CLI sets OMP_WAIT_POLICY=PASSIVE before PyTorch loads (its OpenMP runtime reads it once); a policy given is kept."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os, sys; from birdspec.cli.main import main; main(['-q', 'models']); "
            "import torch; print(os.environ['OMP_WAIT_POLICY'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == want
