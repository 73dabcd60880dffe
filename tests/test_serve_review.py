"""`birdspec serve`'s Review API (issue 28): the queue shows each window's top choice at or above the model's
thresholds (or a minimum score), species by count or name, a page at a time with a way to the rest; "other
species" is one of the model's classes or the species list, never free text; the suggested threshold needs
enough verdicts and a lower confidence bound at the target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serve_fixtures import wait_job

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from birdspec.app import review as rv  # noqa: E402

CKPT = "runs/synth/checkpoints/best.pt"


def busy_table(path: Path) -> Path:
    """A `birdspec predict` table of 720 windows: Zebra Finch (zzz1) tops 670 of them, Marsh Warbler (mmm1) 50,
    and Alpine Swift (aaa1, first by code) is every window's runner-up at 0.12."""
    rows = []
    for i in range(720):
        top = ("mmm1", "Marsh Warbler") if i < 50 else ("zzz1", "Zebra Finch")
        rows.append({"file": "song.flac", "start_s": 5.0 * i, "end_s": 5.0 * i + 5, "label": top[0], "common_name": top[1],
                     "scientific_name": "", "confidence": round(0.3 + 0.6 * ((i * 37) % 720) / 720, 4), "rank": 1})
        rows.append({"file": "song.flac", "start_s": 5.0 * i, "end_s": 5.0 * i + 5, "label": "aaa1", "common_name": "Alpine Swift",
                     "scientific_name": "", "confidence": 0.12, "rank": 2})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture()
def setup(serve_client, tmp_path):
    busy_table(tmp_path / "recs" / "busy.csv")
    species = tmp_path / "species.csv"
    species.write_text("label,scientific_name,common_name\nsedwar1,Acrocephalus schoenobaenus,Sedge Warbler\n"
                       "reewar1,Acrocephalus scirpaceus,Eurasian Reed Warbler\n")
    return serve_client(recordings={"song.flac": 30.0}, species_list=species)


def review(client, ref, **params):
    r = client.get("/api/review", params={"prediction": ref, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_queue_shows_top_choices_by_count_or_name_a_page_at_a_time(setup):
    client, _ = setup
    page = review(client, "recs/busy.csv")
    assert [(g["label"], g["total"], g["shown"]) for g in page["groups"]] == [("zzz1", 670, 300), ("mmm1", 50, 50)]
    assert {c["label"] for c in page["cards"]} == {"zzz1", "mmm1"} and all(c["rank"] == 1 for c in page["cards"])
    assert page["cards"][0]["label"] == "zzz1" and page["cards"][0]["confidence"] == max(c["confidence"] for c in page["cards"])
    by_name = review(client, "recs/busy.csv", order="name")
    assert [g["name"] for g in by_name["groups"]] == ["Marsh Warbler", "Zebra Finch"]
    everything = review(client, "recs/busy.csv", choices="all")
    assert [(g["label"], g["total"]) for g in everything["groups"]] == [("aaa1", 720), ("zzz1", 670), ("mmm1", 50)]
    high = review(client, "recs/busy.csv", min_score="0.75")
    assert all(c["confidence"] >= 0.75 for c in high["cards"]) and high["groups"][0]["total"] < 670
    # the rest of a species, 300 at a time
    rest = review(client, "recs/busy.csv", species="zzz1", offset=300)
    assert [(g["label"], g["offset"], g["shown"]) for g in rest["groups"]] == [("zzz1", 300, 300)]
    last = review(client, "recs/busy.csv", species="zzz1", offset=600)
    assert last["groups"][0]["shown"] == 70
    keys = [c["key"] for p in (page, rest, last) for c in p["cards"] if c["label"] == "zzz1"]
    assert len(keys) == len(set(keys)) == 670
    for bad in ({"min_score": "2"}, {"order": "code"}, {"choices": "some"}):
        assert client.get("/api/review", params={"prediction": "recs/busy.csv", **bad}).status_code == 400


def test_the_queue_starts_at_the_models_thresholds(setup):
    from birdspec.app.predictions import META_FILE

    client, config = setup
    job = wait_job(client, client.post("/api/predict", json={"recording": "recs/song.flac", "checkpoint": CKPT}).json())
    ref = job["result"]["prediction"]
    page = review(client, ref)
    thresholds = page["thresholds"]
    assert thresholds and set(thresholds) == {"synth0", "synth1", "synth2"} and page["min_score"] == "model"
    assert all(c["confidence"] >= thresholds[c["label"]] - 1e-4 and c["rank"] == 1 for c in page["cards"])  # cards round to 4 places
    assert len(page["cards"]) == 6  # the fixture's thresholds keep every top choice the app wrote: one per window
    # the thresholds stored with the prediction decide: one species' threshold raised above its best top choice
    label = page["cards"][0]["label"]
    meta_path = config.predictions_dir / Path(ref).parent.name / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["thresholds"][label] = page["cards"][0]["confidence"] + 0.01
    meta_path.write_text(json.dumps(meta))
    raised = review(client, ref)
    assert raised["thresholds"][label] == meta["thresholds"][label]
    assert [c for c in raised["cards"] if c["label"] == label] == []
    assert len(raised["cards"]) == sum(c["label"] != label for c in page["cards"])
    below = review(client, ref, min_score="0", choices="all")["cards"]
    assert len(below) >= len(page["cards"]) and any(c["confidence"] < meta["thresholds"][c["label"]] for c in below)


def test_other_species_is_a_class_or_from_the_species_list(setup):
    client, config = setup
    page = review(client, "recs/busy.csv")
    names = {s["label"]: s["common_name"] for s in page["species"]}
    assert names["sedwar1"] == "Sedge Warbler" and names["zzz1"] == "Zebra Finch"
    card = page["cards"][0]
    det = {k: card[k] for k in ("file", "start_s", "end_s", "label", "confidence")}

    def other(name):
        return client.post("/api/verdict", json={"prediction": "recs/busy.csv", "detection": det, "verdict": "other", "species": name})

    r = other("Sedge")
    assert r.status_code == 400 and "Sedge Warbler (sedwar1)" in r.json()["error"] and "species list" in r.json()["error"]
    assert other("Nightingale").status_code == 400
    assert other("sedge warbler").status_code == 200
    assert other("Marsh Warbler").status_code == 200  # a class of the model, by its name
    verdicts = pd.read_csv(config.recording_dirs[0] / "busy.verdicts.csv")
    assert verdicts["species"].tolist() == ["mmm1"]
    other("Acrocephalus schoenobaenus")
    assert pd.read_csv(config.recording_dirs[0] / "busy.verdicts.csv")["species"].tolist() == ["sedwar1"]


def _summary(n_by_bin: dict[float, tuple[int, int]], detections_per_bin: int = 50) -> dict:
    """precision_summary of one species: ``{bin low: (verified, correct)}``, every bin holding detections."""
    rows, verdicts = [], {}
    for low in rv.BIN_EDGES[:-1]:
        verified, correct = n_by_bin.get(low, (0, 0))
        for j in range(detections_per_bin):
            key = f"f|{low}|{j}"
            rows.append({"label": "sp", "confidence": low + 0.05, "key": key})
            if j < verified:
                verdicts[key] = {"verdict": "correct" if j < correct else "wrong", "species": ""}
    return rv.precision_summary(pd.DataFrame(rows), verdicts, target=0.9)[0]


def test_the_suggested_threshold_needs_enough_verdicts():
    top = rv.BIN_EDGES[-2]
    everyone = {low: (0, 0) for low in rv.BIN_EDGES[:-1]}
    # two correct windows in the top bin: no suggestion (it was 0.9)
    two = _summary({**everyone, top: (2, 2)})
    assert two["suggested_threshold"] is None
    assert two["bins"][-1]["precision_above"] == 1.0 and two["bins"][-1]["lower_above"] < 0.5
    # every bin verified, all correct, but a few each: the lower bound says from where it is sure enough
    few = _summary({low: (3, 3) for low in rv.BIN_EDGES[:-1]})
    assert few["bins"][0]["precision_above"] == pytest.approx(1.0) and few["suggested_threshold"] is not None
    assert few["suggested_threshold"] == 0.1  # 27 correct verdicts over equal bins: lower bound 0.905
    one_each = _summary({low: (1, 1) for low in rv.BIN_EDGES[:-1]})
    assert one_each["suggested_threshold"] is None  # 9 verdicts: fewer than MIN_VERDICTS
    # many verdicts, 1 wrong in 30 at the top, half wrong below: the threshold is the top bin
    mixed = _summary({**{low: (10, 5) for low in rv.BIN_EDGES[:-2]}, top: (30, 29)})
    assert mixed["suggested_threshold"] is None or mixed["suggested_threshold"] >= top
    sure = _summary({**{low: (10, 5) for low in rv.BIN_EDGES[:-2]}, top: (50, 50)})
    assert sure["suggested_threshold"] == top
    assert all(b["lower_above"] is None or b["lower_above"] <= b["precision_above"] for b in sure["bins"])
    assert np.isclose(rv.wilson_lower(1.0, 2), 0.4251, atol=1e-3)
