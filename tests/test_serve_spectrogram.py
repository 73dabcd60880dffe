"""`birdspec serve`'s spectrogram view (issue 28, item 7): mel or linear frequency axis up to the Nyquist frequency,
a colour scale in dB that brightness and contrast move, and boxes drawn on a recording, kept as a Raven selection
table beside it and trained on as strong labels."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from birdspec.app import boxes as bx  # noqa: E402


@pytest.fixture()
def setup(serve_client, tmp_path):
    species = tmp_path / "species.txt"
    species.write_text("Acrocephalus schoenobaenus_Sedge Warbler\n")  # BirdNET's label format
    return serve_client(recordings={"song.flac": 30.0}, species_list=species)  # 48 kHz


def _png(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def test_frequency_axes_reach_nyquist_and_the_colour_scale_moves(setup):
    client, _ = setup
    config = client.get("/api/config").json()
    assert config["axes"] == ["mel", "linear"] and len(config["colormap"]) == 256
    mel = client.get("/api/display", params={"ref": "recs/song.flac", "axis": "mel"}).json()
    linear = client.get("/api/display", params={"ref": "recs/song.flac", "axis": "linear"}).json()
    assert mel["nyquist_hz"] == linear["nyquist_hz"] == 24000
    assert mel["rows_hz"][-1] > 20000 and linear["rows_hz"][-1] == 24000 and len(linear["rows_hz"]) == 256
    assert 16.0 in [t["khz"] for t in mel["ticks"]] and 20.0 in [t["khz"] for t in linear["ticks"]]  # past the old 14 kHz
    assert mel["floor_db"] < mel["ceiling_db"]
    tile = {"ref": "recs/song.flac", "level": 1, "index": 0}
    assert _png(client.get("/api/tile", params=tile)).shape[0] == 128
    lin = _png(client.get("/api/tile", params={**tile, "axis": "linear"}))
    assert lin.shape[0] == 256
    own = _png(client.get("/api/tile", params=tile))
    darker = _png(client.get("/api/tile", params={**tile, "floor_db": mel["floor_db"] + 20, "ceiling_db": mel["ceiling_db"] + 20}))
    assert darker.mean() < own.mean()
    for bad in ({"axis": "bark"}, {"floor_db": -80}, {"floor_db": 0, "ceiling_db": -10}):
        assert client.get("/api/tile", params={**tile, **bad}).status_code == 400
    card = client.get("/api/spectrogram", params={"ref": "recs/song.flac", "start_s": 0, "duration_s": 5, "axis": "linear"})
    assert _png(card).shape[0] == 256


def test_boxes_are_a_raven_table_beside_the_recording_and_strong_labels(setup):
    client, config = setup
    from serve_fixtures import wait_job

    job = wait_job(client, client.post("/api/predict", json={"recording": "recs/song.flac", "checkpoint": "runs/synth/checkpoints/best.pt"}).json())
    pred = job["result"]["prediction"]
    got = client.get("/api/boxes", params={"recording": "recs/song.flac", "prediction": pred}).json()
    assert got["boxes"] == [] and got["table"] is None
    assert {"synth0", "Acrocephalus schoenobaenus"} <= {s["label"] for s in got["species"]}
    boxes = [{"start_s": 6.2, "end_s": 7.0, "low_hz": 2000, "high_hz": 6000, "species": "Synthetic synth1"},
             {"start_s": 1.0, "end_s": 12.5, "low_hz": 500, "high_hz": 22000, "species": "sedge warbler"}]
    r = client.post("/api/boxes", json={"recording": "recs/song.flac", "prediction": pred, "boxes": boxes})
    assert r.status_code == 200, r.text
    saved = r.json()
    table = config.recording_dirs[0] / "song.Table.1.selections.txt"
    assert saved["table"] == "recs/song.Table.1.selections.txt" and table.is_file()
    raven = pd.read_csv(table, sep="\t")
    assert list(raven.columns) == list(bx.BOX_TABLE_COLUMNS) and raven["Selection"].tolist() == [1, 2]
    assert raven["Species"].tolist() == ["Acrocephalus schoenobaenus", "synth1"]  # by start time; labels, not names
    assert raven["High Freq (Hz)"].tolist() == [22000.0, 6000.0]
    again = client.get("/api/boxes", params={"recording": "recs/song.flac"}).json()
    assert [b["species"] for b in again["boxes"]] == ["Acrocephalus schoenobaenus", "synth1"]
    for bad, words in (({**boxes[0], "species": "Sedge"}, "Sedge Warbler"), ({**boxes[0], "end_s": 99}, "not a stretch"),
                       ({**boxes[0], "high_hz": 30000}, "not a band")):
        r = client.post("/api/boxes", json={"recording": "recs/song.flac", "prediction": pred, "boxes": [bad]})
        assert r.status_code == 400 and words in r.json()["error"], r.text
    assert len(pd.read_csv(table, sep="\t")) == 2  # a refused request changes nothing

    sources = {s["ref"]: s for s in client.get("/api/train-sources").json()["sources"]}
    assert sources["recs/song.Table.1.selections.txt"]["kind"] == "boxes" and sources["recs/song.Table.1.selections.txt"]["verified"] == 2
    rows = bx.box_rows(table, config.recording_dirs[0] / "song.flac", duration_s=30.0)
    short = rows[rows["label"] == "synth1"]
    assert short[["start_s", "end_s"]].values.tolist() == [[4.1, 9.1]]  # one window centred on the 0.8 s box
    long = rows[rows["label"] == "Acrocephalus schoenobaenus"]
    assert len(long) == 3 and long["start_s"].min() < 1.0 and long["end_s"].max() > 12.5  # 11.5 s: 3 windows
    assert (rows["end_s"] - rows["start_s"]).round(3).eq(5.0).all()
    r = client.post("/api/boxes", json={"recording": "recs/song.flac", "boxes": []})
    assert r.status_code == 200 and not table.exists()  # the last box deleted: no table left


def test_box_answers_name_tables_by_reference_never_by_server_path(setup, tmp_path):
    """Saving, reading and listing boxes, and a damaged table's error, say ``recs/...``: no answer holds the
    server's absolute path (the box panel said "saved 1 box to /tmp/.../song.Table.1.selections.txt")."""
    client, config = setup
    served = str(config.recording_dirs[0].resolve())
    box = {"start_s": 1.0, "end_s": 2.0, "low_hz": 1000, "high_hz": 4000, "species": "sedge warbler"}
    answers = [client.post("/api/boxes", json={"recording": "recs/song.flac", "boxes": [box]}),
               client.get("/api/boxes", params={"recording": "recs/song.flac"}), client.get("/api/train-sources")]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert answers[0].json()["table"] == answers[1].json()["table"] == "recs/song.Table.1.selections.txt"
    assert set(answers[0].json()) == {"recording", "boxes", "table"}
    (config.recording_dirs[0] / "song.Table.1.selections.txt").write_text("Selection\tView\n1\tSpectrogram 1\n")
    damaged = [client.get("/api/boxes", params={"recording": "recs/song.flac"}), client.get("/api/train-sources"),
               client.post("/api/train", json={"sources": ["recs/song.Table.1.selections.txt"]})]
    for r in damaged:
        assert r.status_code == 400 and "recs/song.Table.1.selections.txt: not a selection table" in r.json()["error"], r.text
    for r in answers + damaged:
        assert served not in r.text and str(tmp_path) not in r.text, r.text


def test_background_warm_draws_the_opening_zoom_then_the_widest(tmp_path, monkeypatch):
    """While a long recording is analysed, the tiles of the zoom the page opens at are drawn first, then those of
    the widest zoom (the costliest cold tiles); nothing else."""
    from birdspec.app import tiles

    drawn: list[tuple[float, float]] = []
    cache = tiles.TileCache()
    monkeypatch.setattr(cache, "get", lambda key: drawn.append((key.duration_s, key.start_s)) or b"png")
    duration_s = 700.0  # > 600 s: opens at 120 s per tile
    thread = cache.warm(tmp_path / "long.flac", duration_s=duration_s, background=True)
    assert thread is not None
    thread.join(timeout=10)
    opening = tiles.LEVELS_S[tiles.initial_level(duration_s)]
    widest = tiles.LEVELS_S[-1]
    assert drawn == [(opening, i * opening) for i in range(6)] + [(widest, i * widest) for i in range(3)]


def test_a_tile_drawn_in_parts_on_threads_matches_one_drawn_whole(tmp_path, monkeypatch):
    """The widest zooms decode minutes of audio per tile: they are drawn as stretches of whole columns on several
    threads. The parts join into the tile drawn in one piece (same columns, a call in the same place, the end of a
    recording blank in both)."""
    import soundfile as sf

    from birdspec.app import tiles

    rate = 48_000
    t = np.arange(25 * rate) / rate
    wave = 0.01 * np.random.default_rng(0).standard_normal(t.size)
    call = (t >= 17.0) & (t < 18.0)
    wave[call] += 0.5 * np.sin(2 * np.pi * 6000 * t[call])
    path = tmp_path / "rec.wav"
    sf.write(path, wave.astype(np.float32), rate)
    key = tiles.TileKey(str(path), start_s=10.0, duration_s=20.0)  # 15 s of audio, then past the end
    cache = tiles.TileCache()
    whole = cache._db(key, rate=rate, left_s=15.0)
    monkeypatch.setattr(tiles, "tile_parts", lambda samples, *, width_px: 4)  # 4 stretches of 128 columns
    parts = cache._db(key, rate=rate, left_s=15.0)
    assert parts.shape == whole.shape == (128, 512)
    assert np.array_equal(np.isnan(parts), np.isnan(whole))  # columns past the end: blank in both
    both = ~np.isnan(whole)
    assert np.median(np.abs(parts[both] - whole[both])) < 1.5  # each part's frames start on its own grid: noise shifts
    loud = lambda db: np.flatnonzero(np.nanmax(db[:, :384], axis=0) > np.nanmax(db) - 6)  # noqa: E731
    assert np.array_equal(loud(parts), loud(whole)) and loud(whole).min() >= 179 and loud(whole).max() <= 205  # 7-8 s in
