"""`birdspec serve` API: refusals (traversal, symlinks out, oversize and corrupt uploads, unknown and damaged
checkpoints), the prediction job, tiles, verdicts kept across "tabs", precision summary, and the exported
manifest that `birdspec prepare` reads as windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import write_audio
from serve_fixtures import synthetic_recording, wait_job

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from birdspec.app.server import create_app  # noqa: E402


@pytest.fixture()
def setup(serve_client, serve_run, tmp_path):
    """The run copied as runs/synth-copy and linked as runs/synth (a symlink out of --runs: refused); a symlink
    in the recordings folder to a file outside it; uploads up to 0.5 MB."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "synth").symlink_to(serve_run, target_is_directory=True)
    synthetic_recording(tmp_path / "recs" / "song.flac", duration_s=20.0)
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "recs" / "escape.wav").symlink_to(tmp_path / "secret.txt")
    return serve_client(runs=("synth-copy",), max_upload_mb=0.5)


@pytest.mark.parametrize("ref", ["../secret.txt", "recs/../../secret.txt", "/etc/passwd", "recs/escape.wav",
                                 "nosuchfolder/song.flac", "C:/Windows/win.ini"])
@pytest.mark.parametrize("endpoint", ["/api/recording?ref={}", "/api/audio?ref={}", "/api/tile?level=0&index=0&ref={}",
                                      "/api/file?ref={}"])
def test_paths_outside_the_served_folders_are_refused(setup, ref, endpoint):
    client, _ = setup
    r = client.get(endpoint.format(ref))
    assert r.status_code == 403, (ref, r.text)
    assert "secret" not in r.text or "served" in r.json()["error"]


def test_listings_leave_out_symlinks_out_of_the_folders(setup):
    client, _ = setup
    files = [f for folder in client.get("/api/recordings").json()["folders"] for f in folder["files"]]
    assert files == ["recs/song.flac"]
    refs = [c["ref"] for c in client.get("/api/checkpoints").json()["checkpoints"]]
    assert refs and all(r.startswith("runs/synth-copy/") for r in refs)


def test_uploads_oversize_and_corrupt_are_refused_with_a_message(setup, tmp_path):
    client, config = setup
    r = client.post("/api/upload?name=big.wav", content=b"\0" * (600 * 1024))
    assert r.status_code == 413 and "larger than the limit of 0.5 MB" in r.json()["error"]
    r = client.post("/api/upload?name=broken.flac", content=b"fLaC" + bytes(range(256)) * 40)
    assert r.status_code == 400 and "not audio birdspec can decode" in r.json()["error"]
    r = client.post("/api/upload?name=notes.txt", content=b"hello")
    assert r.status_code == 400 and "upload an audio file" in r.json()["error"]
    assert not list(config.uploads_dir.iterdir())  # nothing refused is kept
    good = write_audio(tmp_path / "ok.wav", np.zeros(16000, dtype=np.float32) + 0.01, 16000)
    r = client.post("/api/upload?name=../../ok.wav", content=good.read_bytes())
    assert r.status_code == 200 and r.json()["ref"] == "uploads/ok.wav"
    assert (config.uploads_dir / "ok.wav").is_file()


def test_unknown_and_damaged_checkpoints(setup):
    client, config = setup
    body = {"recording": "recs/song.flac", "checkpoint": "runs/nope/checkpoints/best.pt"}
    r = client.post("/api/predict", json=body)
    assert r.status_code == 404 and "unknown checkpoint" in r.json()["error"]
    r = client.post("/api/predict", json={**body, "checkpoint": "recs/song.flac"})
    assert r.status_code == 404 and "runs folder" in r.json()["error"]
    bad = config.runs_dir / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    job = wait_job(client, client.post("/api/predict", json={**body, "checkpoint": "runs/bad.pt"}).json())
    assert job["status"] == "failed" and "bad.pt" in job["message"] and "internal error" not in job["message"]
    assert client.get("/api/jobs/nope").status_code == 404


def test_jobs_outlive_a_restart_of_the_server(setup):
    """A restarted server (same work folder) answers for the jobs of its earlier life: a finished one with its
    result, one the stop cut short as failed with a message that says so; new jobs get new ids."""
    import json

    from birdspec.app.jobs import INTERRUPTED

    client, config = setup
    body = {"recording": "recs/song.flac", "checkpoint": "runs/synth-copy/checkpoints/best.pt"}
    done = wait_job(client, client.post("/api/predict", json=body).json())
    assert done["status"] == "done", done
    journal = json.loads(config.jobs_file.read_text())
    run = str(config.runs_dir / "verified-1")
    cut = {**journal["jobs"][-1], "id": "train-7", "kind": "train", "status": "running", "finished_s": None,
           "result": {"run": "runs/verified-1", "run_path": run}}
    config.jobs_file.write_text(json.dumps({**journal, "jobs": journal["jobs"] + [cut]}))

    again = TestClient(create_app(config))  # the server started again
    same = again.get(f"/api/jobs/{done['id']}").json()
    assert {k: same[k] for k in ("status", "result", "title")} == {k: done[k] for k in ("status", "result", "title")}
    assert again.get("/api/prediction", params={"ref": same["result"]["prediction"]}).status_code == 200
    lost = again.get("/api/jobs/train-7").json()
    assert lost["status"] == "failed" and lost["message"].startswith(INTERRUPTED)
    assert f"birdspec train --resume {run}" in lost["message"]
    new = wait_job(again, again.post("/api/predict", json=body).json())
    assert new["id"] == "predict-8" and new["status"] == "done"
    assert [j["id"] for j in again.get("/api/jobs").json()["jobs"]] == [done["id"], "train-7", "predict-8"]

    config.jobs_file.write_text("{ damaged")  # a damaged journal: the server starts with no earlier jobs
    assert TestClient(create_app(config)).get("/api/jobs").json() == {"jobs": []}


def test_predict_review_and_export(setup, tmp_path):
    client, config = setup
    ckpt = "runs/synth-copy/checkpoints/best.pt"
    job = wait_job(client, client.post("/api/predict", json={"recording": "recs/song.flac", "checkpoint": ckpt}).json())
    assert job["status"] == "done", job
    ref = job["result"]["prediction"]
    pred = client.get("/api/prediction", params={"ref": ref}).json()
    assert pred["start_s"][:2] == [0.0, 5.0] and set(pred["scores"]) == {"synth0", "synth1", "synth2"}
    assert client.get("/api/download", params={"ref": ref, "format": "csv"}).text.startswith("file,window,start_s")
    assert "Begin Time (s)" in client.get("/api/download", params={"ref": ref, "format": "raven"}).text
    tile = client.get("/api/tile", params={"ref": "recs/song.flac", "level": 0, "index": 1})
    assert tile.status_code == 200 and tile.content[:4] == b"\x89PNG"
    assert client.get("/api/tile", params={"ref": "recs/song.flac", "level": 9, "index": 0}).status_code == 400

    cards = client.get("/api/review", params={"prediction": ref}).json()["cards"]
    assert cards and all(c["audio"] == "recs/song.flac" for c in cards)
    assert len(client.get("/api/review", params={"prediction": ref, "mode": "sample", "per_bin": 1}).json()["cards"]) <= len(cards)
    det = lambda c: {k: c[k] for k in ("file", "start_s", "end_s", "label", "confidence")}  # noqa: E731
    # two "tabs" give verdicts one after the other: both are kept
    for c, verdict, species in ((cards[0], "correct", ""), (cards[1], "other", "Synthetic synth2"), (cards[2], "wrong", "")):
        r = client.post("/api/verdict", json={"prediction": ref, "detection": det(c), "verdict": verdict, "species": species})
        assert r.status_code == 200, r.text
    r = client.post("/api/verdict", json={"prediction": ref, "detection": det(cards[0]), "verdict": "other"})
    assert r.status_code == 400 and "needs the species" in r.json()["error"]
    r = client.post("/api/verdict", json={"prediction": ref, "detection": {**det(cards[0]), "start_s": 999}, "verdict": "wrong"})
    assert r.status_code == 404
    again = {c["key"]: c["verdict"] for c in client.get("/api/review", params={"prediction": ref}).json()["cards"]}
    assert [again[cards[i]["key"]] for i in range(3)] == ["correct", "other", "wrong"]
    verdicts = pd.read_csv(config.predictions_dir / Path(ref).parent.name / "detections.verdicts.csv")
    assert len(verdicts) == 3
    summary = client.get("/api/summary", params={"prediction": ref, "target": 0.5}).json()["species"]
    assert sum(s["verified"] for s in summary) == 3

    out = client.post("/api/export", json={"prediction": ref}).json()
    manifest = pd.read_csv(out["path"])
    assert list(manifest.columns[:4]) == ["path", "start_s", "end_s", "label"] and len(manifest) == 2
    assert set(manifest["label"]) == {cards[0]["label"], "synth2"}

    from birdspec.data.catalog_layouts import load_catalog

    catalog, layout = load_catalog(out["path"])
    assert layout == "csv" and catalog["start_s"].tolist() == manifest["start_s"].tolist()


def test_prepare_reads_window_columns(tmp_path):
    """A CSV manifest with start_s/end_s: each row is that window of its file (several rows per file)."""
    from birdspec.config import EncodingConfig
    from birdspec.data.prepare import prepare
    from birdspec.data.prepared import PreparedDataset

    rec = synthetic_recording(tmp_path / "a.flac", duration_s=30.0)
    rows = [("a.flac", 0.0, 5.0, "x"), ("a.flac", 5.0, 10.0, "y"), ("a.flac", 10.0, 15.0, "x"), ("a.flac", 20.0, 25.0, "y")]
    csv = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["path", "start_s", "end_s", "label"]).to_csv(csv, index=False)
    out = prepare(csv, tmp_path / "ds", encoding=EncodingConfig(name="window", short_policy="tile"), workers=1, progress=False)
    ds = PreparedDataset(out)
    assert sorted(ds.manifest["duration_s"].round(3)) == [5.0] * 4
    assert sorted(ds.manifest["start_s"]) == [0.0, 5.0, 10.0, 20.0] and ds.manifest["id"].is_unique
    from birdspec import audio

    wave = audio.load(rec, offset_s=20.0, duration_s=5.0)
    row = ds.manifest.index[ds.manifest["start_s"] == 20.0][0]
    np.testing.assert_allclose(np.asarray(ds.waveform(row), dtype=np.float32)[: wave.size], wave, atol=2e-3)
    pd.DataFrame([("a.flac", 5.0, 2.0, "x")], columns=["path", "start_s", "end_s", "label"]).to_csv(csv, index=False)
    from birdspec.errors import DataError

    with pytest.raises(DataError, match="bad window"):
        prepare(csv, tmp_path / "ds2", encoding=EncodingConfig(name="window", short_policy="tile"), workers=1, progress=False)


def test_serve_cli_usage_errors(tmp_path, capsys):
    from birdspec.cli.main import main

    assert main(["serve", "--recordings", str(tmp_path / "missing"), "--work", str(tmp_path / "w")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_runs_pages_and_train_refusal(setup):
    client, config = setup
    listed = {r["ref"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed["runs/synth-copy"]["model"] == "mobilenetv2-seed" and listed["runs/synth-copy"]["status"] == "completed"
    assert listed["runs/synth-copy"]["metric"]["name"] == "best val acc" and listed["runs/synth-copy"]["date"]
    run = client.get("/api/run", params={"ref": "runs/synth-copy"}).json()
    assert run["curves"]["epoch"] == [1] and run["summary"]["model"] == "mobilenetv2-seed"
    assert run["figures"] == [] and run["level"] == "recording"  # the page draws the curves: not curves.png too
    assert run["val_check"]["nobird_samples"] >= 32 and "fixed no-bird samples" in run["val_check"]["text"]
    folder = config.runs_dir / "synth-copy"
    kept = (folder / "metrics.csv").read_text()
    curves = pd.read_csv(folder / "metrics.csv").assign(val_acc_nobird=float("nan"))  # a part the run has not: empty
    curves.to_csv(folder / "metrics.csv", index=False)
    run = client.get("/api/run", params={"ref": "runs/synth-copy"}).json()  # JSON has no NaN: null
    assert run["curves"]["val_acc_nobird"] == [None] and run["val_check"]["acc_nobird"] is None
    (folder / "metrics.csv").write_text(kept)
    (folder / "metrics.csv").rename(folder / "metrics.csv.away")  # nothing to draw: curves.png instead
    (folder / "verified_split.json").write_text('{"mode": "recordings"}')  # trained in the app, from verified windows
    run = client.get("/api/run", params={"ref": "runs/synth-copy"}).json()
    assert run["curves"] == {} and run["figures"] == ["runs/synth-copy/curves.png"] and run["level"] == "window"
    (folder / "metrics.csv.away").rename(folder / "metrics.csv")
    (folder / "verified_split.json").unlink()
    assert client.get("/api/file", params={"ref": "runs/synth-copy/curves.png"}).content[:4] == b"\x89PNG"
    r = client.get("/api/file", params={"ref": "runs/synth-copy/checkpoints/best.pt"})
    assert r.status_code == 403  # checkpoints and audio are never served as files
    one = config.exports_dir / "one.verified.csv"
    pd.DataFrame([("x.flac", 0.0, 5.0, "a")], columns=["path", "start_s", "end_s", "label"]).to_csv(one, index=False)
    r = client.post("/api/train", json={"manifest": "exports/one.verified.csv", "epochs": 1})
    assert r.status_code == 400 and "at least 2 species" in r.json()["error"]
    r = client.post("/api/train", json={"manifest": "exports/none.verified.csv", "epochs": 1})
    assert r.status_code == 404
    job = wait_job(client, client.post("/api/compare", json={"runs": ["runs/synth-copy"]}).json(), timeout_s=300)
    assert job["status"] == "done", job
    report = client.get("/api/file", params={"ref": job["result"]["report"]})
    assert report.status_code == 200 and "<html" in report.text.lower()


def test_review_reads_parquet_predictions(setup, tmp_path):
    """An archive run's predictions.parquet (or any --format parquet output) in a served folder is reviewable."""
    pytest.importorskip("pyarrow")
    from birdspec.cli.main import main

    client, config = setup
    out = config.recording_dirs[0] / "night" / "predictions.parquet"
    out.parent.mkdir()
    assert main(["predict", str(config.runs_dir / "synth-copy"), str(config.recording_dirs[0] / "song.flac"),
                 "--format", "parquet", "--min-conf", "0", "--out", str(out), "--no-progress"]) == 0
    listed = [p["ref"] for p in client.get("/api/predictions").json()["predictions"]]
    assert "recs/night/predictions.parquet" in listed
    cards = client.get("/api/review", params={"prediction": "recs/night/predictions.parquet"}).json()["cards"]
    assert cards and all(c["audio"] == "recs/song.flac" for c in cards)
    det = {k: cards[0][k] for k in ("file", "start_s", "end_s", "label", "confidence")}
    r = client.post("/api/verdict", json={"prediction": "recs/night/predictions.parquet", "detection": det, "verdict": "correct"})
    assert r.status_code == 200, r.text
    assert len(pd.read_csv(out.with_name("predictions.verdicts.csv"))) == 1
    r = client.get("/api/review", params={"prediction": "recs/song.flac"})
    assert r.status_code in (400, 403) and "prediction table" in r.text
