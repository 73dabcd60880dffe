"""`birdspec serve --index` (issue 31): find similar from a card or a box -> a table Review opens with the same
verdicts -> an agile round from every verdict on the index's tables -> its next windows in Review; a BirdNET index's
classifier listed as a checkpoint. A synthetic index whose call windows lie near one direction (tests/test_agile.py)
gives known answers fast; a real index of the session's run checks a drawn box embedded by the index's backbone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_agile import fake_index

from birdspec.errors import ConfigError
from birdspec.similarity.index_store import SimilarityIndex

from helpers import write_audio
from serve_fixtures import serve_index, wait_job  # noqa: F401 - serve_index: a fixture


@pytest.fixture()
def fake(tmp_path):
    """The synthetic index (4 recordings x 300 windows of 3 s; every 20th window a call) with an archive of short
    recordings at its paths (a query that is a window of the index uses its stored vector: the audio is not read)."""
    folder, is_call = fake_index(tmp_path / "indexes" / "birds")
    for name in set(SimilarityIndex(folder).windows["recording"]):
        write_audio(tmp_path / "indexes" / "archive" / name, np.zeros(8000, np.float32), 8000)
    return folder, is_call


def _search(client, **body):
    r = client.post("/api/similar", json=body)
    assert r.status_code == 200, r.text
    job = wait_job(client, r.json())
    assert job["status"] == "done", job
    return job["result"]


def _give(client, ref, cards, truth):
    for c in cards:
        det = {k: c[k] for k in ("file", "start_s", "end_s", "label", "confidence")}
        verdict = "correct" if truth(c) else "wrong"
        r = client.post("/api/verdict", json={"prediction": ref, "detection": det, "verdict": verdict})
        assert r.status_code == 200, r.text


def _is_call(fake_folder, is_call):
    index = SimilarityIndex(fake_folder)
    w = index.windows
    row = {(f"{index.info.archive}/{r}", float(s)): i for i, (r, s) in enumerate(zip(w["recording"], w["start_s"], strict=True))}
    return lambda c: bool(is_call[row[(c["file"], float(c["start_s"]))]])


def test_find_similar_from_a_card_opens_in_review_with_its_verdicts(serve_client, fake):
    folder, is_call = fake
    client, config = serve_client(runs=(), index_dirs=(folder.parent,))  # a folder of indexes
    (idx,) = client.get("/api/indexes").json()["indexes"]
    assert (idx["key"], idx["windows"], idx["backbone"]) == ("birds", 1200, "birdnet") and idx["archive_key"]
    assert idx["archive_key"] not in {f["key"] for f in client.get("/api/recordings").json()["folders"]}  # read, not listed
    query = f"{idx['archive_key']}/site0/r0.flac"  # window 0 of r0: a call
    res = _search(client, index="birds", recording=query, start_s=0.0, end_s=3.0, species="sedwar1", top=30)
    assert res["windows"] == 30 and res["query_vector"].startswith("the index's vector")
    ref = res["prediction"]
    assert ref in [p["ref"] for p in client.get("/api/predictions").json()["predictions"]]
    review = client.get("/api/review", params={"prediction": ref, "min_score": 0}).json()
    cards = review["cards"]
    assert len(cards) == 30 and {c["label"] for c in cards} == {"sedwar1"}
    assert cards[0]["file"] == f"{folder.parent}/archive/site0/r0.flac" and cards[0]["start_s"] == 0.0
    assert cards[0]["confidence"] == pytest.approx(1.0, abs=2e-3) and all(c["audio"] for c in cards)
    truth = _is_call(folder, is_call)
    assert np.mean([truth(c) for c in cards]) >= 0.9  # the calls come first
    _give(client, ref, cards[:3], truth)
    info = client.get("/api/similar/table", params={"prediction": ref}).json()
    assert info["kind"] == "search" and info["index"] == "birds" and info["query"]["recording"] == query
    assert info["verdicts"]["correct"] + info["verdicts"]["wrong"] == 3
    saved = pd.read_csv(config.predictions_dir / ref.split("/")[1] / "detections.verdicts.csv")
    assert len(saved) == 3 and saved["file"].str.startswith(str(folder.parent / "archive")).all()


def test_an_agile_round_trains_on_every_verdict_and_opens_the_next_windows(serve_client, fake):
    folder, is_call = fake
    client, config = serve_client(runs=(), index_dirs=(folder,))
    archive_key = client.get("/api/indexes").json()["indexes"][0]["archive_key"]
    truth = _is_call(folder, is_call)
    first = _search(client, index="birds", recording=f"{archive_key}/site0/r0.flac", start_s=0.0, end_s=3.0, species="sedwar1", top=60)
    cards = client.get("/api/review", params={"prediction": first["prediction"], "min_score": 0}).json()["cards"]
    given = cards[:4] + cards[-4:]
    _give(client, first["prediction"], given, truth)
    r = client.post("/api/agile", json={"prediction": first["prediction"], "next": 12})
    assert r.status_code == 200, r.text
    job = wait_job(client, r.json())
    assert job["status"] == "done", job
    round1 = job["result"]
    s = round1["summary"]
    assert round1["round"] == 1 and s["positives"] + s["negatives"] == len(given) and s["positives"] == sum(map(truth, given))
    assert round1["model"] and round1["model"].startswith("runs/") and round1["model"].endswith("/model.pt")
    assert round1["model"] in [c["ref"] for c in client.get("/api/checkpoints").json()["checkpoints"]]  # Analyze can use it
    nxt = client.get("/api/review", params={"prediction": round1["prediction"], "min_score": 0}).json()["cards"]
    assert len(nxt) == 12 and all(c["audio"] for c in nxt)
    info = client.get("/api/similar/table", params={"prediction": round1["prediction"]}).json()
    assert info["kind"] == "agile" and info["round"] == 1 and info["summary"]["positives"] == s["positives"]
    assert "cv_precision" in info["summary"] and "cv_recall" in info["summary"]
    round_dir = config.predictions_dir / round1["prediction"].split("/")[1]
    assert {"scores.csv", "agile.json", "detections.csv"} <= {p.name for p in round_dir.iterdir()}
    # round 2 from the round's table: the verdicts of both tables
    _give(client, round1["prediction"], nxt[:5], truth)
    job = wait_job(client, client.post("/api/agile", json={"prediction": round1["prediction"]}).json())
    assert job["status"] == "done", job
    assert job["result"]["round"] == 2
    s2 = job["result"]["summary"]
    assert s2["positives"] + s2["negatives"] == len(given) + 5


def test_find_similar_from_a_drawn_box_embeds_it_with_the_index_backbone(serve_client, serve_index, serve_run):  # noqa: F811
    archive, index_dir = serve_index
    client, _config = serve_client(runs=(serve_run.name,), recording_dirs=(archive,), index_dirs=(index_dir,))
    (idx,) = client.get("/api/indexes").json()["indexes"]
    assert idx["backbone"] == "run" and idx["archive_key"] in {f["key"] for f in client.get("/api/recordings").json()["folders"]}
    res = _search(client, index=idx["key"], recording=f"{idx['archive_key']}/site1/r1.flac", start_s=1.2, end_s=4.1,
                  species="synth1", top=5)
    assert res["query_vector"].startswith("embedded") and res["windows"] == 5
    cards = client.get("/api/review", params={"prediction": res["prediction"], "min_score": 0}).json()["cards"]
    assert len(cards) == 5 and all(c["audio"] and c["file"].startswith(str(archive.resolve())) for c in cards)


def test_what_the_similar_api_refuses_and_says(serve_client, fake, tmp_path):
    from birdspec.app.similar import discover

    folder, _ = fake
    client, _config = serve_client(runs=(), recordings={"a.flac": 5.0}, index_dirs=(folder,))
    key = client.get("/api/indexes").json()["indexes"][0]["archive_key"]
    ok = {"index": "birds", "recording": f"{key}/site0/r0.flac", "start_s": 0, "end_s": 3, "species": "sedwar1"}
    r = client.post("/api/similar", json={**ok, "index": "nope"})
    assert r.status_code == 404 and "the served indexes are birds" in r.json()["error"]
    assert client.post("/api/similar", json={**ok, "species": " "}).status_code == 400
    assert client.post("/api/similar", json={**ok, "start_s": 3, "end_s": 1}).status_code == 400
    assert client.post("/api/similar", json={**ok, "recording": f"{key}/../birds/index.json"}).status_code == 403
    r = client.post("/api/agile", json={"prediction": "recs/a.flac"})
    assert r.status_code == 403  # not a table
    res = _search(client, **ok, top=5)
    job = wait_job(client, client.post("/api/agile", json={"prediction": res["prediction"]}).json())
    assert job["status"] == "failed" and "mark some cards correct (c) and wrong (x)" in job["message"]
    assert client.get("/api/similar/table", params={"prediction": res["prediction"]}).json()["verdicts"] == {"correct": 0, "wrong": 0, "other": 0}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="birdspec index"):
        discover([tmp_path / "empty"])
