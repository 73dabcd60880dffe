"""Folder predictions (issue 18): resumable, parallel (--jobs) and on Dask; the merged output equals
a single uninterrupted run row for row, after kills of the command or of a Dask worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from birdspec.cli.main import main

from helpers import class_signal, make_run, write_audio

SR = 48000


@pytest.fixture(scope="module")
def archive(tmp_path_factory, fast_dataset):
    """A run and a small archive: recordings of 1-40 s in two folders, and one file that is not audio."""
    root = tmp_path_factory.mktemp("archive")
    run = make_run(root / "run", fast_dataset)
    for k, seconds in enumerate([3, 40, 12, 0.3, 25, 8, 30, 5]):
        write_audio(root / "rec" / f"site{k % 2}" / f"r{k}.flac", class_signal(k % 3, duration_s=seconds, sample_rate_hz=SR, seed=k), SR)
    (root / "rec" / "notes.wav").write_text("field notes")
    reference = root / "reference.csv"
    assert main(["predict", str(run), str(root / "rec"), "--out", str(reference), "--no-progress", "--min-conf", "0"]) == 0
    return root, run, reference


def _predict(run, rec, out, *extra):
    return main(["predict", str(run), str(rec), "--out", str(out), "--no-progress", "--min-conf", "0", *extra])


def test_a_folder_run_equals_the_single_run_resumes_and_remerges(archive, tmp_path, capsys):
    root, run, reference = archive
    out = tmp_path / "out"
    assert _predict(run, root / "rec", str(out) + "/", "--jobs", "1") == 0
    assert (out / "predictions.csv").read_bytes() == reference.read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recordings"] == 7 and summary["failed"] == 2 and summary["scored_now"] == 9
    assert sum(summary["detections_per_species"].values()) > 0
    failed = (out / "failed.csv").read_text()
    assert "notes.wav" in failed and "r3.flac" in failed
    capsys.readouterr()

    assert _predict(run, root / "rec", out) == 0  # everything done: nothing scored again
    assert json.loads((out / "summary.json").read_text())["scored_now"] == 0
    changed = root / "rec" / "site1" / "r5.flac"
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))  # a changed file is scored again
    assert _predict(run, root / "rec", out) == 0
    assert json.loads((out / "summary.json").read_text())["scored_now"] == 1
    assert (out / "predictions.csv").read_bytes() == reference.read_bytes()

    assert _predict(run, root / "rec", out, "--format", "birdclef") == 0  # reporting options: a re-merge only
    assert json.loads((out / "summary.json").read_text())["scored_now"] == 0 and (out / "submission.csv").is_file()
    capsys.readouterr()
    assert _predict(run, root / "rec", out, "--hop-s", "0.5") == 2  # other scores: refused without --overwrite
    assert "other settings (hop_s)" in capsys.readouterr().err
    assert _predict(run, root / "rec", out, "--strict") == 2  # failures are an error under --strict
    assert _predict(run, root / "rec", tmp_path / "x.csv", "--jobs", "2") == 2
    assert "need a folder --out" in capsys.readouterr().err


@pytest.mark.slow
def test_jobs_2_and_a_killed_command_rerun_give_the_single_run(archive, tmp_path):
    root, run, reference = archive
    out = tmp_path / "jobs2"
    assert _predict(run, root / "rec", out, "--jobs", "2") == 0
    assert (out / "predictions.csv").read_bytes() == reference.read_bytes()

    for after in (1, 4):  # kill the whole command (and its workers) once `after` recordings are done
        out = tmp_path / f"killed-{after}"
        proc = subprocess.Popen([sys.executable, "-m", "birdspec", "predict", str(run), str(root / "rec"), "--out", str(out),
                                 "--no-progress", "--min-conf", "0", "--jobs", "2"],
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list((out / "parts").glob("*.json"))) >= after:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait()
        assert not (out / "predictions.csv").exists() or proc.returncode == 0
        assert _predict(run, root / "rec", out, "--jobs", "2") == 0
        assert (out / "predictions.csv").read_bytes() == reference.read_bytes(), after
        assert not list(out.rglob("*.tmp-*"))


@pytest.mark.slow
def test_dask_local_cluster_survives_a_killed_worker(archive, tmp_path):
    pytest.importorskip("distributed")
    import psutil

    root, run, reference = archive
    out = tmp_path / "dask"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:  # the LocalCluster's worker processes (its nannies live in this process and restart them)
                workers = [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
            except psutil.Error:
                workers = []
            if workers and len(list((out / "parts").glob("*.json"))) >= 1:
                workers[0].kill()
                killed.append(workers[0].pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    assert _predict(run, str((root / "rec").resolve()), out.resolve(), "--engine", "dask", "--jobs", "2") == 0
    killer.join(timeout=5)
    assert killed, "no Dask worker was found to kill"
    expected = reference.read_text().replace("\nsite", f"\n{(root / 'rec').resolve()}/site")
    assert (out / "predictions.csv").read_text() == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recordings"] == 7 and summary["failed"] == 2 and summary["engine"] == "dask"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_dask_worker_malloc_setting_stops_page_faults_per_block():
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc map and fault every
    164 kB block anew; restore_dynamic_mmap_threshold (called by each worker) keeps such blocks in the heap."""
    code = ("import resource, sys, numpy as np\n"
            "from birdspec.runtime import restore_dynamic_mmap_threshold\n"
            "if sys.argv[1] == '1': restore_dynamic_mmap_threshold()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(500):\n    a = np.ones(41984, np.float32); del a\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    faults = [int(subprocess.run([sys.executable, "-c", code, fix], env=env, capture_output=True, text=True, check=True).stdout)
              for fix in ("0", "1")]
    assert faults[0] > 500 * 30  # ~41 pages a block without the setting
    assert faults[1] < faults[0] / 20


def test_a_run_begun_under_the_padded_partial_window_rule_is_not_resumed_under_the_new_one(archive, tmp_path, capsys):
    """The run's settings record where a last partial window's audio comes from (this stack10 run: 'own'; window
    models 'end' since 2026-12-07): a run folder begun before (its settings lack it) would otherwise mix padded and
    shifted last windows."""
    from birdspec.models.checkpoint import peek_checkpoint, run_checkpoint
    from birdspec.prediction.archive import RUN_FILE
    from birdspec.windowing import partial_source_for

    root, run, _ = archive
    out = tmp_path / "old"
    assert _predict(run, root / "rec" / "site0", out, "--jobs", "1") == 0
    settings = json.loads((out / RUN_FILE).read_text())
    assert settings["partial_source"] == partial_source_for(peek_checkpoint(run_checkpoint(run, "best")).encoding.name)
    del settings["partial_source"]
    (out / RUN_FILE).write_text(json.dumps(settings))
    capsys.readouterr()
    assert _predict(run, root / "rec" / "site0", out) == 2
    assert "other settings (partial_source)" in capsys.readouterr().err
    assert _predict(run, root / "rec" / "site0", out, "--overwrite") == 0
    assert json.loads((out / "summary.json").read_text())["scored_now"] == 4
