"""Fixtures of the `birdspec serve` tests: a checkpoint trained here (once per session), recordings, the app's
folders and client, a server. ``serve_run``, ``serve_config`` and ``serve_client`` reach the tests through conftest.py."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest

from birdspec.config import EncodingConfig, FrontendConfig

from helpers import class_signal, shared_data_dir, write_audio, write_prepared

FAST_5S = FrontendConfig(n_fft=512, hop_length=1000, n_mels=32)
SR = 32000


def trained_run(base: Path) -> Path:
    """A mobilenetv2-seed trained for one epoch on synthetic 5 s windows (a real `birdspec train` run folder),
    trained once per session under ``base`` (the session's tmp folder) and shared by the serve tests.

    Its checkpoints' detection thresholds are then set to the least score the app writes (its MIN_CONF): one
    epoch on 4 batches learns next to nothing, and the thresholds training chose on its 11 validation samples
    put the top choices of a window just above or just below them depending on the CPU's arithmetic (an Intel
    runner showed fewer than three cards where an AMD one showed four). The app tests check what the app does with the
    thresholds it is given, so they are given ones that keep every top choice the app writes."""
    from birdspec.app.predictions import MIN_CONF
    from birdspec.models.checkpoint import read_checkpoint, set_detection
    from birdspec.models.checkpoint_info import Detection
    from birdspec.training import TrainConfig, train

    run = base / "serve-trained-run" / "synth-mnv2"
    if (run / "checkpoints" / "best.pt").is_file():
        return run
    ds = write_prepared(base / "serve-trained-ds", duration_s=10.0, frontend=FAST_5S, per_class=6,
                        encoding=EncodingConfig(name="window", window_s=5.0, short_policy="tile"))
    cfg = TrainConfig(model="mobilenetv2-seed", epochs=1, batch_size=8, device="cpu", workers=0, progress_bar=False)
    train(ds, run, cfg)
    for path in (run / "checkpoints").glob("*.pt"):
        info = read_checkpoint(path)
        set_detection(path, Detection((MIN_CONF,) * len(info.classes), info.temperature,
                                      "set by the serve tests' fixture", "the least score the app writes, for every class"))
    return run


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory) -> Path:
    """The run :func:`trained_run` trains once per session."""
    return trained_run(tmp_path_factory.getbasetemp())


@pytest.fixture()
def serve_config(tmp_path, serve_run, monkeypatch):
    """``make(recordings={...}, runs=("synth",), **overrides) -> ServeConfig``: the app's folders in ``tmp_path``.

    Its cache goes to tmp_path/cache; ``runs`` names the copies of ``serve_run`` in tmp_path/runs; ``recordings``
    are synthetic recordings (path in the folder -> seconds) written to tmp_path/recs, the served folder, where a
    test writes any other file before calling ``make``; work goes to tmp_path/work. ``overrides`` are ServeConfig's
    fields (``recording_dirs`` to serve other folders, ``port``, ``species_list``, ...)."""
    monkeypatch.setenv("BIRDSPEC_CACHE_DIR", str(tmp_path / "cache"))

    def make(*, recordings: Mapping[str, float] | None = None, runs: Iterable[str] = ("synth",), **overrides):
        from birdspec.app.paths import ServeConfig

        for name in runs:
            shutil.copytree(serve_run, tmp_path / "runs" / name)
        for name, duration_s in (recordings or {}).items():
            synthetic_recording(tmp_path / "recs" / name, duration_s=duration_s)
        folders = {"runs_dir": tmp_path / "runs", "recording_dirs": (tmp_path / "recs",), "work_dir": tmp_path / "work"}
        return ServeConfig(**{**folders, **overrides})

    return make


@pytest.fixture()
def serve_client(serve_config):
    """``make(...) -> (TestClient, ServeConfig)``: the app on :func:`serve_config`'s ``make(...)``, for its API."""

    def make(**kwargs):
        from fastapi.testclient import TestClient

        from birdspec.app.server import create_app

        config = serve_config(**kwargs)
        return TestClient(create_app(config)), config

    return make


def synthetic_recording(path: Path, *, duration_s: float = 30.0) -> Path:
    """Class signals one after another (each 5 s), at 48 kHz FLAC."""
    parts = [class_signal(k % 3, duration_s=5.0, sample_rate_hz=48000, seed=k) for k in range(int(duration_s // 5))]
    return write_audio(path, np.concatenate(parts), 48000)


def recordings_folder(root: Path) -> tuple[Path, str]:
    """A folder with a recording to analyze: ../shared/data/recordings with its real 60 s field recording
    (the app only reads served folders), else a synthetic recording in ``root``."""
    shared = shared_data_dir()
    if shared is not None and (shared / "recordings" / "osm-1min.flac").is_file():
        return shared / "recordings", "osm-1min.flac"
    folder = root / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_recording(folder / "synthetic.flac")
    return folder, "synthetic.flac"


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(config):
    """The app on a uvicorn server in a thread of this process; yields its URL."""
    import uvicorn

    from birdspec.app.server import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(config), host=config.host, port=config.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_job(client, job: dict, timeout_s: float = 120) -> dict:
    """Poll a job of the app (a TestClient) until it is done or failed."""
    deadline = time.time() + timeout_s
    while job["status"] not in ("done", "failed"):
        assert time.time() < deadline, job
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def verify_windows(client, ref: str, truth, *, limit: int | None = None) -> int:
    """Give each window of prediction ``ref`` (its top detection) the verdict that names ``truth(start_s)``:
    correct when the model's label is that species, else other species; returns how many were given."""
    cards = client.get("/api/review", params={"prediction": ref, "min_score": 0, "choices": "all"}).json()["cards"]
    top = {}
    for c in cards:
        if c["start_s"] not in top or c["confidence"] > top[c["start_s"]]["confidence"]:
            top[c["start_s"]] = c
    given = 0
    for start in sorted(top)[:limit]:
        c = top[start]
        species = truth(start)
        verdict = "correct" if c["label"] == species else "other"
        det = {k: c[k] for k in ("file", "start_s", "end_s", "label", "confidence")}
        r = client.post("/api/verdict", json={"prediction": ref, "detection": det, "verdict": verdict, "species": species})
        assert r.status_code == 200, r.text
        given += 1
    return given


def run_index(base: Path, run: Path) -> tuple[Path, Path]:
    """``(archive, index)``: 3 synthetic recordings of 20 s (in two deployment folders) and their embedding index by
    ``run``'s checkpoint (5 s windows every 2.5 s), built once per session under ``base`` (find similar's tests)."""
    from birdspec.similarity.build import build_index
    from birdspec.similarity.index_store import SIMILARITY_INDEX_FILE

    archive, index = base / "serve-index-archive", base / "serve-index"
    if (index / SIMILARITY_INDEX_FILE).is_file():
        return archive, index
    for k in range(3):
        synthetic_recording(archive / f"site{k % 2}" / f"r{k}.flac", duration_s=20.0)
    build_index(archive, index, backbone=str(run), hop_s=2.5, jobs=1)
    return archive, index


@pytest.fixture(scope="session")
def serve_index(tmp_path_factory, serve_run) -> tuple[Path, Path]:
    """:func:`run_index` of the session's :func:`serve_run`."""
    return run_index(tmp_path_factory.getbasetemp(), serve_run)
