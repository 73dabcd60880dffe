"""The agile loop over an embedding index (issue 31 item 3): verdicts -> classifier -> every window scored -> the next
windows to verify; the classifier as a checkpoint; the CLI. Known answers on a synthetic index whose call windows
lie near one direction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdspec.errors import CheckpointError, ConfigError, DataError
from birdspec.similarity.agile import next_windows, run_agile
from birdspec.similarity.agile_config import AgileConfig
from birdspec.similarity.index_store import IndexInfo, SimilarityIndex, quantise

N, DIM, CALLS = 1200, 1024, 60


def fake_index(folder, *, backbone="birdnet", seed=0):
    """An index of 4 recordings x 300 windows of 3 s: windows 0-59 of every 20th (``CALLS`` in all) hold the call
    (their vectors lie near one direction); the rest are noise. Returns (folder, is_call)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    is_call = np.zeros(N, dtype=bool)
    is_call[::20] = True
    direction = rng.standard_normal(DIM).astype(np.float32)
    x[is_call] = 0.6 * x[is_call] + 3.0 * direction
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    folder.mkdir(parents=True)
    np.save(folder / "vectors.npy", quantise(x, "float16"))
    rec = np.repeat([f"site{k % 2}/r{k}.flac" for k in range(4)], N // 4)
    start = np.tile(np.arange(N // 4) * 3.0, 4)
    pd.DataFrame({"recording": rec, "deployment": [r.split("/")[0] for r in rec], "start_s": start,
                  "end_s": start + 3.0}).to_csv(folder / "windows.csv", index=False)
    IndexInfo(backbone=backbone, window_s=3.0, hop_s=3.0, min_partial_s=1.0, dim=DIM, dtype="float16", num_vectors=N,
              num_recordings=4, audio_hours=N * 3 / 3600, archive=str(folder.parent / "archive")).write(folder)
    return folder, is_call


def verdicts(path, index_dir, rows, called, *, column="recording"):
    w = SimilarityIndex(index_dir).windows.iloc[rows]
    pd.DataFrame({column: w["recording"].to_numpy(), "start_s": w["start_s"].to_numpy(),
                  "verdict": np.where(called, "yes", "no")}).to_csv(path, index=False)
    return path


@pytest.fixture()
def index(tmp_path):
    return fake_index(tmp_path / "idx")


def test_a_few_verdicts_rank_the_calls_first_and_offer_the_next_windows(index, tmp_path):
    folder, is_call = index
    calls, others = np.flatnonzero(is_call), np.flatnonzero(~is_call)
    v = verdicts(tmp_path / "round0.csv", folder, np.r_[calls[:5], others[:5]], np.r_[[True] * 5, [False] * 5])
    res = run_agile(folder, [v], species=["sedwar1"], out=tmp_path / "r1", config=AgileConfig(next_count=10))
    scores = pd.read_csv(res.scores)
    assert list(scores.columns) == ["file", "start_s", "end_s", "deployment", "sedwar1"] and len(scores) == N
    top = np.argsort(-scores["sedwar1"].to_numpy())[:CALLS]
    assert is_call[top].mean() >= 0.95  # the calls come first
    assert (scores["sedwar1"].to_numpy()[is_call] >= 0.5).mean() >= 0.9
    assert (scores["sedwar1"].to_numpy()[~is_call] >= 0.5).mean() <= 0.02
    nxt = pd.read_csv(res.next_windows)
    assert list(nxt.columns) == ["file", "start_s", "end_s", "label", "confidence", "verdict"] and len(nxt) == 10
    assert nxt["file"].str.startswith(str(tmp_path / "archive")).all()  # full paths: the Review app opens them
    s = res.summary["species"][0]
    assert (s["positives"], s["negatives"], s["random_negatives"]) == (5, 5, 200)
    assert s["cv_recall"] is not None and res.model is not None and res.model.is_file()


def test_the_next_round_reads_the_filled_in_next_table_and_the_scores_feed_call_density(index, tmp_path):
    """next.csv (full paths) filled in -> round 2; scores.csv is what call-density sample reads."""
    from birdspec.evaluation.call_density_io import read_scores

    folder, is_call = index
    calls, others = np.flatnonzero(is_call), np.flatnonzero(~is_call)
    v = verdicts(tmp_path / "round0.csv", folder, np.r_[calls[:3], others[:3]], np.r_[[True] * 3, [False] * 3])
    first = run_agile(folder, [v], species=["sedwar1"], out=tmp_path / "r1", config=AgileConfig(strategy="top"))
    nxt = pd.read_csv(first.next_windows)
    rows = SimilarityIndex(folder).windows
    key = rows["recording"] + "|" + rows["start_s"].map("{:.3f}".format)
    row_of = pd.Series(np.arange(len(rows)), index=key)
    picked = row_of.loc[[f"{f.split('archive/')[1]}|{s:.3f}" for f, s in zip(nxt["file"], nxt["start_s"], strict=True)]]
    nxt["verdict"] = np.where(is_call[picked.to_numpy()], "correct", "wrong")  # Review's spelling
    nxt.to_csv(tmp_path / "r1" / "next.csv", index=False)
    second = run_agile(folder, [v, tmp_path / "r1" / "next.csv"], species=["sedwar1"], out=tmp_path / "r2")
    s = second.summary["species"][0]
    assert s["positives"] + s["negatives"] == 6 + 20
    windows, name = read_scores(second.scores, "sedwar1")
    assert name == "sedwar1" and len(windows) == N


def test_the_checkpoint_scores_the_index_vectors_as_the_round_did(index, tmp_path):
    import torch

    from birdspec.models.checkpoint import load_model

    folder, is_call = index
    calls, others = np.flatnonzero(is_call), np.flatnonzero(~is_call)
    v = verdicts(tmp_path / "v.csv", folder, np.r_[calls[:4], others[:4]], np.r_[[True] * 4, [False] * 4])
    res = run_agile(folder, [v], species=["sedwar1"], out=tmp_path / "r", config=AgileConfig(threshold=0.4))
    head, ckpt = load_model(res.model)
    assert list(ckpt.classes) == ["sedwar1"] and ckpt.activation == "sigmoid" and ckpt.detection.thresholds == (0.4,)
    x = SimilarityIndex(folder).vectors[:50].astype(np.float32) * 7.0  # raw embeddings: any length, the head normalises
    with torch.no_grad():
        p = torch.sigmoid(head(torch.as_tensor(x)[:, None, :])).numpy()[:, 0]
    assert np.allclose(p, pd.read_csv(res.scores)["sedwar1"].to_numpy()[:50], atol=2e-3)


def test_verdicts_must_be_windows_of_the_index_and_name_a_call(index, tmp_path):
    folder, _ = index
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"recording": ["elsewhere.wav"], "start_s": [0.0], "verdict": ["yes"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="not windows of the index"):
        run_agile(folder, [bad], species=["x"], out=tmp_path / "o")
    only_no = verdicts(tmp_path / "no.csv", folder, np.arange(3), np.zeros(3, dtype=bool))
    with pytest.raises(DataError, match="at least one"):
        run_agile(folder, [only_no], species=["x"], out=tmp_path / "o")


def test_a_round_never_overwrites_the_verdicts_it_reads_nor_writes_into_the_index(index, tmp_path):
    """--verdicts R/next.csv --out R would replace the filled-in next.csv with the new one: refused, file intact."""
    folder, is_call = index
    (tmp_path / "r").mkdir()
    filled = verdicts(tmp_path / "r" / "next.csv", folder, np.r_[np.flatnonzero(is_call)[:3], 1], np.r_[[True] * 3, False])
    before = filled.read_bytes()
    with pytest.raises(ConfigError, match="never overwrites"):
        run_agile(folder, [filled], species=["x"], out=tmp_path / "r")
    assert filled.read_bytes() == before
    with pytest.raises(ConfigError, match="inside the input"):
        run_agile(folder, [filled], species=["x"], out=folder / "round1")


def test_a_run_index_round_gives_the_runs_network_with_the_classifier_as_its_last_layer(tmp_path):
    """An index of a birdspec run's features: the round's model.pt is that run's network whose final Linear is the
    classifier (on unit-length features); predict scores the index's windows as the round scored them."""
    from test_similarity_index import make_archive

    from birdspec.cli.main import main
    from birdspec.config import EncodingConfig
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.similarity.build import build_index

    from conftest import FAST_FRONTEND
    from helpers import make_run, write_prepared

    data = write_prepared(tmp_path / "ds", duration_s=2.0, frontend=FAST_FRONTEND,
                          encoding=EncodingConfig(name="window", window_s=1.0, short_policy="pad"))
    run = make_run(tmp_path / "run", data)
    archive = make_archive(tmp_path / "archive", {"x/a.wav": (0, 4.0), "y/b.wav": (2, 4.0)})
    build_index(archive, tmp_path / "index", backbone=str(run), jobs=1, approximate="never")
    v = verdicts(tmp_path / "v.csv", tmp_path / "index", np.array([0, 1, 5, 6]), np.array([True, True, False, False]))
    res = run_agile(tmp_path / "index", [v], species=["tone"], out=tmp_path / "r", config=AgileConfig(random_negatives=0))
    ckpt = read_checkpoint(res.model)
    assert ckpt.classes == ("tone",) and ckpt.activation == "sigmoid" and ckpt.model["feature_norm"] == "unit"
    assert ckpt.encoding.window_s == 1.0 and ckpt.detection is not None
    out = tmp_path / "pred.csv"
    assert main(["predict", str(res.model), str(archive / "x" / "a.wav"), "--scores", "all", "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    ours = pd.read_csv(res.scores)
    ours = ours[ours["file"].str.endswith("x/a.wav")]
    assert pred["start_s"].tolist() == ours["start_s"].tolist()
    assert np.allclose(pred["tone"].to_numpy(), ours["tone"].to_numpy(), atol=2e-3)  # the index keeps float16 vectors
    assert set(ckpt.detection.per_class[0]) >= {"precision", "recall", "f1"}  # what `birdspec info` shows
    onnx = tmp_path / "r" / "model.onnx"  # the unit-length features survive the export
    assert main(["export", str(res.model), "--out", str(onnx)]) == 0
    assert main(["predict", str(res.model), str(archive / "x" / "a.wav"), "--scores", "all", "--backend", "onnx",
                 "--out", str(tmp_path / "onnx.csv")]) == 0
    assert np.allclose(pd.read_csv(tmp_path / "onnx.csv")["tone"], pred["tone"], atol=1e-4)
    (tmp_path / "run").joinpath("checkpoints", "best.pt").write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="changed since"):
        run_agile(tmp_path / "index", [v], species=["tone"], out=tmp_path / "r2")


def test_next_windows_by_score_bins_cover_the_range():
    s = np.linspace(0, 1, 1000) ** 3
    rows, bins = next_windows(s, np.array([], dtype=np.int64), strategy="bins", count=20, threshold=0.5)
    assert bins is not None and len(set(bins.tolist())) >= 4 and s[rows].max() > 0.5 and s[rows].min() < 0.01


def test_cli_round_and_usage_errors(index, tmp_path, capsys):
    from birdspec.cli.main import main

    folder, is_call = index
    v = verdicts(tmp_path / "v.csv", folder, np.r_[np.flatnonzero(is_call)[:3], 1, 2], np.r_[[True] * 3, False, False])
    assert main(["agile", str(folder), "--species", "sedwar1", "--verdicts", str(v), "--out", str(tmp_path / "r"),
                 "--next", "5"]) == 0
    out = capsys.readouterr().out
    assert "sedwar1: 3 yes, 2 no" in out and "model -> " in out
    assert len(pd.read_csv(tmp_path / "r" / "next.csv")) == 5
    assert main(["agile", str(tmp_path / "nope"), "--species", "a", "--verdicts", str(v), "--out", str(tmp_path / "x")]) == 2
    assert main(["agile", str(folder), "--species", "a", "--verdicts", str(v), "--out", str(tmp_path / "x"),
                 "--threshold", "1.5"]) == 2


def test_a_birdnet_round_gives_a_checkpoint_that_predict_runs(tmp_path):
    """Real BirdNET (skipped without it): index 2 recordings, verdicts on their windows, and the round's model.pt
    scores the same 3 s windows in `birdspec predict` as the round scored them in the index."""
    from birdspec.birdnet import birdnet_available

    if not birdnet_available():
        pytest.skip("BirdNET not installed (pip install 'birdspec[birdnet]')")
    from test_similarity_index import make_archive

    from birdspec.cli.main import main
    from birdspec.similarity.build import build_index

    archive = make_archive(tmp_path / "archive", {"x/a.wav": (0, 9.0), "y/b.wav": (2, 9.0)})
    build_index(archive, tmp_path / "index", backbone="birdnet", jobs=1)
    v = verdicts(tmp_path / "v.csv", tmp_path / "index", np.array([0, 1, 3, 4]), np.array([True, True, False, False]))
    res = run_agile(tmp_path / "index", [v], species=["tone"], out=tmp_path / "r", config=AgileConfig(random_negatives=0))
    assert res.model is not None
    out = tmp_path / "pred.csv"
    assert main(["predict", str(res.model), str(archive / "x" / "a.wav"), "--scores", "all", "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    ours = pd.read_csv(res.scores)
    ours = ours[ours["file"].str.endswith("x/a.wav")]
    assert pred["start_s"].tolist() == ours["start_s"].tolist() == [0.0, 3.0, 6.0]
    assert np.allclose(pred["tone"].to_numpy(), ours["tone"].to_numpy(), atol=0.05)  # BirdNET's resampling differs a little
