"""`birdspec serve`: training from verified windows (issue 28, item 1). Windows verified in ONE analysed recording
are trained on (pooled from two predictions of it): too few recordings for a split by recording, so the app says
so and splits by time blocks within the recording, records that in the run, and evaluates the run as the CLI
does (metrics, confusion matrix). The split itself is checked on known rows."""

from __future__ import annotations

import pandas as pd
import pytest

from serve_fixtures import verify_windows, wait_job

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from birdspec.app import verified as vf  # noqa: E402
from birdspec.errors import DataError  # noqa: E402


@pytest.fixture()
def setup(serve_client):
    return serve_client(recordings={"minute.flac": 60.0})


def _rows(spec: list[tuple[str, float, str]], window_s: float = 5.0) -> pd.DataFrame:
    return pd.DataFrame([{"path": p, "start_s": s, "end_s": s + window_s, "label": lab} for p, s, lab in spec])


def test_one_recording_is_split_by_time_blocks_and_says_so():
    rows = _rows([("/r/a.flac", 5.0 * i, "sp1" if i % 2 else "sp2") for i in range(20)])
    plan = vf.plan_split(rows)
    assert plan.mode == "time-blocks" and "weaker" in plan.describe()
    assert "Too few recordings for a split by recording" in plan.describe() and "sp1 (1 recording)" in plan.describe()
    for label in ("sp1", "sp2"):
        counts = plan.per_class[label]
        assert counts["train"] >= 1 and counts["val"] == 3 and counts["gap"] == 0, counts
        # the validation windows of a species are one stretch: consecutive among its windows
        starts = sorted(rows.loc[(rows["label"] == label).to_numpy() & (plan.sides == "val"), "start_s"])
        assert starts == [starts[0] + 10.0 * k for k in range(3)], starts
    again = vf.plan_split(rows.iloc[::-1])
    assert sorted(rows.loc[plan.sides == "val", "start_s"]) == sorted(rows.iloc[::-1].reset_index(drop=True).loc[again.sides == "val", "start_s"])


def test_overlapping_windows_next_to_validation_are_left_out():
    rows = _rows([("/r/a.flac", 1.0 * i, "sp1") for i in range(10)] + [("/r/a.flac", 50.0 + 5 * i, "sp2") for i in range(4)])
    plan = vf.plan_split(rows)
    sp1 = rows["label"] == "sp1"
    val = rows.loc[sp1.to_numpy() & (plan.sides == "val")]
    train = rows.loc[sp1.to_numpy() & (plan.sides == "train")]
    assert len(val) == 3 and plan.per_class["sp1"]["gap"] >= 1
    for t in train.itertuples():  # no training window shares audio with a validation window
        assert not ((val["start_s"] < t.end_s) & (val["end_s"] > t.start_s)).any()


def test_enough_recordings_split_by_recording_and_refusals():
    rows = _rows([(f"/r/{lab}{k}.flac", 5.0 * i, lab) for lab in ("sp1", "sp2") for k in range(4) for i in range(3)])
    plan = vf.plan_split(rows)
    assert plan.mode == "recordings" and not plan.weaker
    for rec, sides in pd.Series(plan.sides).groupby(rows["path"]):
        assert sides.nunique() == 1, rec  # a recording's windows stay on one side
    with pytest.raises(DataError, match="at least 2 species"):
        vf.plan_split(_rows([("/r/a.flac", 0.0, "sp1"), ("/r/a.flac", 5.0, "sp1")]))
    with pytest.raises(DataError, match="left for validation"):
        vf.plan_split(_rows([("/r/a.flac", 0.0, "sp1"), ("/r/a.flac", 5.0, "sp2")]))


def test_val_check_says_what_training_val_acc_is():
    """The colleague's run (4 species, 58 validation windows, 32 no-bird samples): val_acc 0.444 = 40 of 90 samples,
    birdspec evaluate's accuracy 0.207 = 12 of 58 windows; the page says on what each was measured."""
    from birdspec.app.runs import val_check

    config = {"num_samples": {"val": 58, "val_nocall": 32}}
    curves = {"epoch": [1, 2, 3], "val_acc": [0.3, 0.4, 40 / 90], "val_acc_species": [0.0, 0.1, 12 / 58],
              "val_acc_nobird": [0.9, 0.95, 28 / 32]}
    check = val_check(config, {"best_epoch": 3, "best_val_acc": 40 / 90}, curves, unit="window")
    assert check is not None
    assert (check["samples"], check["species_samples"], check["nobird_samples"]) == (90, 58, 32)
    assert check["acc_species"] == pytest.approx(12 / 58) and check["acc_nobird"] == pytest.approx(0.875)
    text = check["text"]
    assert "0.444 at its best epoch (3), on 90 samples: the 58 validation windows and 32 fixed no-bird samples" in text
    assert "answers \u201cno bird\u201d to everything scores 0.356" in text
    assert "On the 58 validation windows alone it is 0.207" in text and "on the no-bird samples 0.875" in text
    old = val_check(config, {"best_epoch": 3, "best_val_acc": 40 / 90}, {"epoch": [3], "val_acc": [40 / 90]}, unit="window")
    assert old is not None and old["acc_species"] is None and "alone it is" not in old["text"]  # logged before the parts
    closed = val_check({"num_samples": {"val": 58, "val_nocall": 0}}, {"best_epoch": 1, "best_val_acc": 0.5},
                       {"epoch": [1], "val_acc": [0.5], "val_acc_species": [0.5], "val_acc_nobird": [None]}, unit="window")
    assert closed is not None and "no no-bird samples" in closed["text"]
    assert val_check(config, None, curves) is None  # still training


def test_pooling_merges_repeats_and_leaves_out_disagreements():
    a = _rows([("/r/a.flac", 0.0, "sp1"), ("/r/a.flac", 5.0, "sp2"), ("/r/a.flac", 10.0, "sp1")])
    b = _rows([("/r/a.flac", 0.0, "sp1"), ("/r/a.flac", 5.0, "sp1"), ("/r/b.flac", 0.0, "sp2")])
    rows, conflicts = vf.pool([a, b])
    assert conflicts == 1
    assert sorted(zip(rows["path"], rows["start_s"], rows["label"], strict=True)) == [
        ("/r/a.flac", 0.0, "sp1"), ("/r/a.flac", 10.0, "sp1"), ("/r/b.flac", 0.0, "sp2")]


def test_train_from_two_predictions_of_one_recording(setup):
    """The loop of the issue: analyse one recording (twice), verify windows of 2+ species in both predictions,
    train from them: the job finishes, the run holds its split record (time blocks, weaker) and an evaluation of
    its validation windows with a confusion matrix, as a CLI run evaluated with `birdspec evaluate`."""
    client, config = setup
    body = {"recording": "recs/minute.flac", "checkpoint": "runs/synth/checkpoints/best.pt"}
    refs = []
    for _ in range(2):
        job = wait_job(client, client.post("/api/predict", json=body).json())
        assert job["status"] == "done", job
        refs.append(job["result"]["prediction"])
    truth = lambda start: f"synth{int(start // 5) % 3}"  # noqa: E731 - synthetic_recording's classes, 5 s each
    assert verify_windows(client, refs[0], truth, limit=8) == 8
    assert verify_windows(client, refs[1], truth) == 12  # 8 of them again: pooled once

    sources = {s["ref"]: s for s in client.get("/api/train-sources").json()["sources"]}
    assert sources[refs[0]]["verified"] == 8 and sources[refs[1]]["verified"] == 12
    options = client.get("/api/train-options").json()
    assert options["defaults"]["recipe"] == "small-data" and "mobilenetv2-seed" in [m["name"] for m in options["models"]]
    assert "cpu" in options["devices"] and not any(m["name"].startswith("birdnet") for m in options["models"])

    r = client.post("/api/train", json={"sources": refs, "model": "mobilenetv2-seed", "recipe": "small-data",
                                        "epochs": 1, "device": "cpu", "name": "from-verified"})
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["split"] == "time-blocks" and "Too few recordings" in started["split_notes"]
    assert sum(c["train"] + c["val"] + c["gap"] for c in started["per_class"].values()) == 12
    job = wait_job(client, started, timeout_s=600)
    assert job["status"] == "done", job

    run = config.runs_dir / "from-verified"
    assert (run / "checkpoints" / "best.pt").is_file()
    details = client.get("/api/run", params={"ref": "runs/from-verified"}).json()
    assert details["split"]["mode"] == "time-blocks" and "optimistic" in details["split"]["weaker"]
    assert details["split"]["sources"] == refs
    assert "accuracy" in details["eval_val"]["recording"]
    assert "runs/from-verified/eval_val/confusion_matrix.png" in details["figures"]
    assert "runs/from-verified/curves.png" not in details["figures"]  # the page draws metrics.csv's curves, once
    assert details["level"] == "window"  # each verified window was prepared as its own "recording"
    assert details["eval_val"]["recording"]["n"] == sum(c["val"] for c in started["per_class"].values())  # n = windows
    # training's val_acc also counts its fixed no-bird samples; its part on the validation windows is at most the
    # evaluation's accuracy of the same checkpoint on the same windows, and the page says which number is which
    check, windows = details["val_check"], details["eval_val"]["recording"]["n"]
    assert check["species_samples"] == windows and check["nobird_samples"] >= 32
    assert check["samples"] == windows + check["nobird_samples"]
    assert check["val_acc"] == pytest.approx(details["summary"]["best_val_acc"], abs=1e-5)
    assert check["val_acc"] == pytest.approx((windows * check["acc_species"] + check["nobird_samples"] * check["acc_nobird"])
                                             / check["samples"], abs=1e-5)
    assert details["eval_val"]["sample"]["accuracy"] >= check["acc_species"] - 1e-6
    assert f"on {check['samples']} samples: the {windows} validation windows and {check['nobird_samples']} fixed no-bird" in check["text"]
    listed = {r["ref"]: r for r in client.get("/api/runs").json()["runs"]}
    entry = listed["runs/from-verified"]
    assert entry["split"] == "time-blocks" and entry["status"] == "completed" and entry["model"] == "mobilenetv2-seed"
    assert entry["metric"]["name"] == "val macro F1" and 0 <= entry["metric"]["value"] <= 1
    assert list(listed)[0] == "runs/from-verified"  # newest first
    r = client.post("/api/train", json={"sources": refs, "epochs": 1, "name": "from-verified"})
    assert r.status_code == 400 and "exists" in r.json()["error"]
    r = client.post("/api/train", json={"sources": refs, "model": "nope"})
    assert r.status_code == 400 and "unknown model" in r.json()["error"]
