"""`birdspec serve`'s Analyze API (issue 28): a cut-off recording is uploaded, analysed, drawn and played where it
decodes, as `birdspec predict` scores it; a job that fails leaves no prediction behind; downloads honour the
minimum score (a number, or the model's per-class thresholds)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serve_fixtures import wait_job

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


def cut_flac(path: Path, *, duration_s: float = 30.0, keep: float = 0.55) -> Path:
    """A 48 kHz FLAC of ``duration_s`` whose file is cut after ``keep`` of its bytes: libsndfile decodes the
    first part and then refuses to seek past the damage."""
    sr = 48000
    t = np.arange(int(sr * duration_s)) / sr
    wave = (0.3 * np.sin(2 * np.pi * (1500 + 500 * np.sin(t)) * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="FLAC")
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture()
def setup(serve_client, tmp_path):
    cut_flac(tmp_path / "recs" / "cut.flac")
    return serve_client()


CKPT = "runs/synth/checkpoints/best.pt"


def test_cut_off_recordings_are_used_where_they_decode(setup, tmp_path):
    from birdspec import audio

    client, config = setup
    declared = audio.info(config.recording_dirs[0] / "cut.flac").duration_s
    with pytest.raises(Exception, match="cannot seek"):
        audio.load(config.recording_dirs[0] / "cut.flac", offset_s=declared - 1.0)  # the damage the app meets

    r = client.post("/api/upload?name=field.flac", content=cut_flac(tmp_path / "up.flac").read_bytes())
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["ref"] == "uploads/field.flac" and 5.0 < up["duration_s"] < up["declared_s"] - 5.0
    assert "truncated" in up["warning"]

    rec = client.get("/api/recording", params={"ref": "recs/cut.flac"}).json()
    assert rec["duration_s"] < rec["declared_s"] and "truncated" in rec["warning"]
    job = wait_job(client, client.post("/api/predict", json={"recording": "recs/cut.flac", "checkpoint": CKPT}).json())
    assert job["status"] == "done", job
    pred = client.get("/api/prediction", params={"ref": job["result"]["prediction"]}).json()
    assert max(pred["end_s"]) <= rec["duration_s"] + 1e-3 and pred["meta"]["warning"].startswith("truncated")
    assert pred["meta"]["duration_s"] == pytest.approx(rec["duration_s"], abs=0.05)
    # every tile of the declared length is drawn (past the end: empty), clips end where the audio does
    for level in (0, 3):
        last = int(np.ceil(declared / [5.0, 10.0, 20.0, 60.0][level])) - 1
        for index in (0, last):
            tile = client.get("/api/tile", params={"ref": "recs/cut.flac", "level": level, "index": index})
            assert tile.status_code == 200 and tile.content[:4] == b"\x89PNG", (level, index, tile.text)
    spec = client.get("/api/spectrogram", params={"ref": "recs/cut.flac", "start_s": rec["duration_s"] - 2, "duration_s": 5})
    assert spec.status_code == 200
    clip = client.get("/api/clip", params={"ref": "recs/cut.flac", "start_s": rec["duration_s"] - 2, "end_s": rec["duration_s"] + 3})
    assert clip.status_code == 200
    assert sf.info(io.BytesIO(clip.content)).duration == pytest.approx(2.0, abs=0.05)


def test_a_failed_job_is_never_listed_as_a_prediction(setup, monkeypatch):
    from birdspec.app import tiles

    client, config = setup
    bad = config.recording_dirs[0] / "noise.flac"
    bad.write_bytes(b"fLaC" + np.random.default_rng(0).bytes(20000))  # undecodable: even predict skips it
    job = wait_job(client, client.post("/api/predict", json={"recording": "recs/noise.flac", "checkpoint": CKPT}).json())
    assert job["status"] == "failed" and "internal error" not in job["message"]

    def broken(_self, _path, *, duration_s, background=True, **_kw):
        if not background:  # the tiles drawn after scoring
            raise RuntimeError("no tiles today")

    monkeypatch.setattr(tiles.TileCache, "warm", broken)  # a step after scoring fails: the prediction still stands
    done = wait_job(client, client.post("/api/predict", json={"recording": "recs/cut.flac", "checkpoint": CKPT}).json())
    assert done["status"] == "done", done
    listed = [p["ref"] for p in client.get("/api/predictions").json()["predictions"]]
    assert listed == [done["result"]["prediction"]]
    assert sorted(p.name for p in config.predictions_dir.iterdir()) == [Path(listed[0]).parent.name]


def test_downloads_hold_the_rows_at_or_above_the_minimum_score(setup):
    client, config = setup
    from serve_fixtures import synthetic_recording

    synthetic_recording(config.recording_dirs[0] / "song.flac", duration_s=30.0)
    job = wait_job(client, client.post("/api/predict", json={"recording": "recs/song.flac", "checkpoint": CKPT}).json())
    ref = job["result"]["prediction"]
    thresholds = client.get("/api/prediction", params={"ref": ref}).json()["meta"]["thresholds"]
    everything = pd.read_csv(io.StringIO(client.get("/api/download", params={"ref": ref, "format": "csv"}).text))
    assert everything["confidence"].min() < 0.3  # the file as written: down to the app's 0.1
    for min_score in ("0.3", "0.9"):
        r = client.get("/api/download", params={"ref": ref, "format": "csv", "min_score": min_score})
        rows = pd.read_csv(io.StringIO(r.text))
        assert list(rows.columns) == list(everything.columns) and (rows["confidence"] >= float(min_score)).all()
        assert len(rows) == int((everything["confidence"] >= float(min_score)).sum())
        assert f"min{float(min_score):.2f}" in r.headers["content-disposition"]
        raven = pd.read_csv(io.StringIO(client.get("/api/download", params={"ref": ref, "format": "raven", "min_score": min_score}).text), sep="\t")
        assert (raven["Confidence"] >= float(min_score)).all() and raven["Selection"].tolist() == list(range(1, len(raven) + 1))
    model = pd.read_csv(io.StringIO(client.get("/api/download", params={"ref": ref, "format": "csv", "min_score": "model"}).text))
    assert len(model) == int(sum(c >= thresholds[lab] for lab, c in zip(everything["label"], everything["confidence"], strict=True)))
    assert all(c >= thresholds[lab] for lab, c in zip(model["label"], model["confidence"], strict=True))
    assert client.get("/api/download", params={"ref": ref, "min_score": "high"}).status_code == 400
    labels = client.get("/api/download", params={"ref": ref, "format": "audacity", "min_score": "0.3"})
    assert labels.status_code == 200 and "song.BirdSpec.labels.txt" in labels.headers["content-disposition"]
    lines = [ln.split("\t") for ln in labels.text.splitlines()]
    assert len(lines) == int((everything["confidence"] >= 0.3).sum())
    assert all(float(c.split()[1]) >= 0.3 and float(s) < float(e) for s, e, c in lines)


def test_a_folder_is_analysed_as_one_run_that_review_reads(setup):
    """Issue 28, item 10: every recording of a folder scored with one model, progress per recording, a prediction
    per recording (Analyze opens each) and one table over the folder for Review; what cannot be scored is skipped
    and said so."""
    from serve_fixtures import synthetic_recording

    client, config = setup
    night = config.recording_dirs[0] / "night"
    synthetic_recording(night / "a.flac", duration_s=20.0)
    synthetic_recording(night / "sub" / "b.flac", duration_s=15.0)
    cut_flac(night / "c.flac", duration_s=20.0)
    (night / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    assert "recs/night" in client.get("/api/folders").json()["folders"]
    assert client.post("/api/predict-folder", json={"folder": "recs/nothing", "checkpoint": CKPT}).status_code == 404
    started = client.post("/api/predict-folder", json={"folder": "recs/night", "checkpoint": CKPT}).json()
    assert "4 recordings" in started["title"]
    job = wait_job(client, started, timeout_s=300)
    assert job["status"] == "done", job
    result = job["result"]
    assert sorted(m["recording"] for m in result["members"]) == ["recs/night/a.flac", "recs/night/c.flac", "recs/night/sub/b.flac"]
    assert [f["recording"] for f in result["failed"]] == ["recs/night/broken.wav"]
    cut = next(m for m in result["members"] if m["recording"].endswith("c.flac"))
    assert cut["warning"].startswith("truncated")
    listed = {p["ref"]: p for p in client.get("/api/predictions").json()["predictions"]}
    run = listed[result["prediction"]]
    assert run["folder"] == "recs/night" and run["recordings"] == 3 and run["recording"] is None
    for m in result["members"]:
        assert listed[m["prediction"]]["batch"] == result["id"]
        one = client.get("/api/prediction", params={"ref": m["prediction"]}).json()
        assert one["meta"]["recording"] == m["recording"] and one["start_s"]
    cards = client.get("/api/review", params={"prediction": result["prediction"], "min_score": "0"}).json()["cards"]
    assert {c["audio"] for c in cards} == {m["recording"] for m in result["members"]}
    det = {k: cards[0][k] for k in ("file", "start_s", "end_s", "label", "confidence")}
    r = client.post("/api/verdict", json={"prediction": result["prediction"], "detection": det, "verdict": "correct"})
    assert r.status_code == 200
