"""Embedding indexes of archives and search by example (issue 31 items 1-2): known answers, resume, extension,
exact vs approximate search, a run's penultimate features, BirdNET (skipped without it)."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from birdspec.config import EncodingConfig
from birdspec.errors import DataError, DependencyError
from birdspec.similarity.build import build_index
from birdspec.similarity.index_store import SimilarityIndex, deployment_of
from birdspec.similarity.query import exact_search, search, search_vector

from conftest import FAST_FRONTEND
from helpers import class_signal, make_run, write_audio, write_prepared

SR = 32000
RECORDINGS = {"siteA/r0.wav": (0, 6.0), "siteA/deep/r1.wav": (1, 5.0), "siteB/r2.wav": (2, 7.0), "loose.wav": (1, 3.2)}


@pytest.fixture(scope="module")
def window_run(tmp_path_factory):
    """An untrained mobilenetv2-seed window model on 1 s windows (a small log-mel): a fast RUN backbone."""
    root = tmp_path_factory.mktemp("simrun")
    data = write_prepared(root / "ds", duration_s=2.0, frontend=FAST_FRONTEND,
                          encoding=EncodingConfig(name="window", window_s=1.0, short_policy="pad"))
    return make_run(root / "run", data)


def make_archive(root, recordings=RECORDINGS):
    for k, (name, (cls, seconds)) in enumerate(recordings.items()):
        write_audio(root / name, class_signal(cls, duration_s=seconds, sample_rate_hz=SR, seed=10 + k), SR)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory, window_run):
    """An archive and its index (run backbone, 1 s windows every 0.5 s)."""
    root = tmp_path_factory.mktemp("sim")
    archive = make_archive(root / "archive")
    summary = build_index(archive, root / "index", backbone=str(window_run), hop_s=0.5, jobs=1)
    return archive, root / "index", summary


def test_the_index_holds_every_window_with_its_recording_and_deployment(built):
    archive, index_dir, summary = built
    assert summary["num_recordings"] == 4 and summary["failed"] == 0 and summary["embedded_now"] == 4
    idx = SimilarityIndex(index_dir)
    w = idx.windows
    assert set(w["recording"]) == set(RECORDINGS)
    assert dict(zip(w["recording"], w["deployment"], strict=True)) == {n: deployment_of(n) for n in RECORDINGS}
    assert deployment_of("loose.wav") == "" and deployment_of("siteA/deep/r1.wav") == "siteA"
    r0 = w[w["recording"] == "siteA/r0.wav"]
    assert r0["start_s"].tolist() == [i * 0.5 for i in range(11)] and r0["end_s"].max() == 6.0
    loose = w[w["recording"] == "loose.wav"]  # 3.2 s: full windows to 2.0-3.0, then no partial (its audio is covered)
    assert loose["end_s"].max() == pytest.approx(3.0)
    assert idx.info.dim == 1280 and idx.info.dtype == "float16" and idx.info.window_s == 1.0 and idx.info.hop_s == 0.5
    assert idx.info.checkpoint_sha256 and len(idx.info.checkpoint_sha256) == 64
    norms = np.linalg.norm(idx.vectors.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)


def test_a_query_cut_from_a_recording_finds_that_window_first(built):
    archive, index_dir, _ = built
    res = search(index_dir, archive / "siteB" / "r2.wav", start_s=3.0, end_s=4.0, top=5, mode="exact")
    first = res.table.iloc[0]
    assert (first["recording"], first["deployment"], first["start_s"], first["end_s"]) == ("siteB/r2.wav", "siteB", 3.0, 4.0)
    assert first["similarity"] == pytest.approx(1.0, abs=2e-3)
    assert res.table["similarity"].is_monotonic_decreasing and res.mode == "exact"
    assert list(res.table.columns[:6]) == ["rank", "recording", "deployment", "start_s", "end_s", "similarity"]


def test_penultimate_features_are_the_input_of_the_final_layer(window_run):
    """features @ W.T + b of the last Linear are the logits: softmax of them equals predict's scores."""
    import torch

    from birdspec.prediction.predictor import Predictor

    wave = class_signal(0, duration_s=3.0, sample_rate_hz=SR, seed=3)
    with Predictor(window_run, backend="torch", scores="all", top_k=0) as p:
        windows = wave.reshape(3, SR)
        feats = p.penultimate(windows)
        last = [m for m in p.runtime.model.backbone.modules() if isinstance(m, torch.nn.Linear)][-1]
        logits = feats @ last.weight.detach().numpy().T + last.bias.detach().numpy()
        table = p.predict_array(wave, SR)
    scores = table[[c for c in table.columns if c.startswith("synth")]].to_numpy()
    assert feats.shape == (3, 1280)
    np.testing.assert_allclose(p.runtime.info.scores(logits), scores, atol=1e-4)


def test_resume_after_a_killed_run_redoes_only_the_missing_parts(tmp_path, built, window_run):
    archive, reference, _ = built
    out = tmp_path / "index"
    shutil.copytree(reference, out)
    parts = sorted((out / "parts").glob("*.json"))
    for p in parts[1:]:  # a run killed after its first recording: one part present
        p.unlink()
        p.with_suffix(".npz").unlink()
    (out / "index.json").unlink()
    with pytest.raises(DataError, match="unfinished"):
        SimilarityIndex(out)
    summary = build_index(archive, out, backbone=str(window_run), hop_s=0.5, jobs=1)
    assert summary["embedded_now"] == 3 and summary["rewritten"]
    assert summary["ann_update"] in ("build", None)  # an unfinished run's graph is never updated: built whole
    assert (out / "windows.csv").read_bytes() == (reference / "windows.csv").read_bytes()
    np.testing.assert_array_equal(np.load(out / "vectors.npy"), np.load(reference / "vectors.npy"))
    again = build_index(archive, out, backbone=str(window_run), hop_s=0.5, jobs=1)
    assert again["embedded_now"] == 0 and not again["rewritten"]


def test_a_changed_recording_is_redone_an_added_one_extends_the_index_a_deleted_one_leaves(tmp_path, window_run):
    archive = make_archive(tmp_path / "archive", {"siteA/a.wav": (0, 3.0), "siteB/b.wav": (2, 3.0)})
    out = tmp_path / "index"
    assert build_index(archive, out, backbone=str(window_run), jobs=1)["num_vectors"] == 6
    write_audio(archive / "siteB" / "b.wav", class_signal(1, duration_s=4.0, sample_rate_hz=SR, seed=99), SR)
    os.utime(archive / "siteB" / "b.wav", ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = build_index(archive, out, backbone=str(window_run), jobs=1)
    assert changed["embedded_now"] == 1 and changed["num_vectors"] == 7
    make_archive(archive, {"siteC/new.wav": (2, 2.0)})
    added = build_index(archive, out, backbone=str(window_run), jobs=1)
    assert added["embedded_now"] == 1 and added["num_recordings"] == 3 and added["num_vectors"] == 9
    idx = SimilarityIndex(out)
    assert idx.windows["deployment"].tolist() == ["siteA"] * 3 + ["siteB"] * 4 + ["siteC"] * 2
    res = search(out, archive / "siteC" / "new.wav", start_s=1.0, end_s=2.0, top=1)
    assert res.table.iloc[0]["recording"] == "siteC/new.wav" and res.table.iloc[0]["start_s"] == 1.0
    (archive / "siteA" / "a.wav").unlink()  # a deleted recording drops out
    deleted = build_index(archive, out, backbone=str(window_run), jobs=1)
    assert deleted["embedded_now"] == 0 and deleted["num_recordings"] == 2 and deleted["num_vectors"] == 6


def test_exact_and_approximate_search_agree_on_a_small_index(built):
    pytest.importorskip("usearch")
    _, index_dir, summary = built
    assert summary["approximate"]
    idx = SimilarityIndex(index_dir)
    assert idx.info.ann is not None and idx.info.ann["library"] == "usearch"
    for row in (0, 7, len(idx) - 1):
        q = idx.unit_rows([row])[0]
        exact, mode_e = search_vector(idx, q, top=10, mode="exact")
        approx, mode_a = search_vector(idx, q, top=10, mode="approximate")
        assert (mode_e, mode_a) == ("exact", "approximate")
        assert exact["row"].tolist() == approx["row"].tolist()
        np.testing.assert_allclose(exact["similarity"], approx["similarity"])
        assert exact.iloc[0]["row"] == row


def test_int8_vectors_keep_the_known_answer(tmp_path, window_run):
    archive = make_archive(tmp_path / "archive", {"s/a.wav": (0, 3.0), "s/b.wav": (1, 3.0), "t/c.wav": (2, 3.0)})
    build_index(archive, tmp_path / "index", backbone=str(window_run), dtype="int8", approximate="never", jobs=1)
    idx = SimilarityIndex(tmp_path / "index")
    assert idx.vectors.dtype == np.int8 and idx.info.dtype == "int8" and idx.ann_path is None
    rows, sims = exact_search(idx, idx.unit_rows([4])[0], 3)
    assert rows[0] == 4 and sims[0] == pytest.approx(1.0, abs=1e-5)


def test_approximate_search_without_usearch_says_what_to_install(built, monkeypatch):
    from birdspec.similarity import ann

    _, index_dir, _ = built
    monkeypatch.setattr(ann, "usearch_available", lambda: False)
    idx = SimilarityIndex(index_dir)
    with pytest.raises(DependencyError, match=r"pip install 'birdspec\[index\]'"):
        search_vector(idx, idx.unit_rows([0])[0], top=3, mode="approximate")
    table, mode = search_vector(idx, idx.unit_rows([0])[0], top=3, mode="auto")  # small: exact, no library needed
    assert mode == "exact" and table.iloc[0]["row"] == 0


def test_a_birdnet_index_finds_the_query_window(tmp_path):
    from birdspec.birdnet import birdnet_available

    if not birdnet_available():
        pytest.skip("BirdNET not installed (pip install 'birdspec[birdnet]')")
    archive = make_archive(tmp_path / "archive", {"x/a.wav": (0, 3.0), "y/b.wav": (2, 3.0)})
    summary = build_index(archive, tmp_path / "index", backbone="birdnet", jobs=1)
    assert summary["num_vectors"] == 2
    idx = SimilarityIndex(tmp_path / "index")
    assert idx.info.dim == 1024 and idx.info.window_s == 3.0 and idx.info.backbone == "birdnet"
    res = search(tmp_path / "index", archive / "y" / "b.wav", top=2)
    assert res.table.iloc[0]["recording"] == "y/b.wav" and res.table.iloc[0]["similarity"] == pytest.approx(1.0, abs=2e-3)


def test_two_worker_processes_give_the_same_index(tmp_path, built, window_run):
    archive, reference, _ = built
    summary = build_index(archive, tmp_path / "index", backbone=str(window_run), hop_s=0.5, jobs=2, approximate="never")
    assert summary["workers"] == 2 and summary["embedded_now"] == 4
    assert (tmp_path / "index" / "windows.csv").read_bytes() == (reference / "windows.csv").read_bytes()
    np.testing.assert_array_equal(np.load(tmp_path / "index" / "vectors.npy"), np.load(reference / "vectors.npy"))


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_same_index_and_resumes_on_its_ledger(tmp_path, built, window_run, capsys):
    """`birdspec index --engine dask`: predict's Dask runner with the run checkpoint shipped to 2 LocalCluster workers."""
    pytest.importorskip("distributed")
    from birdspec.cli.main import main

    archive, reference, _ = built
    out = (tmp_path / "index").resolve()
    argv = ["index", str(archive.resolve()), "--backbone", str(window_run), "--hop-s", "0.5", "--out", str(out),
            "--engine", "dask", "--jobs", "2", "--approximate", "never", "--no-progress"]
    assert main(argv) == 0
    assert "4 embedded now" in capsys.readouterr().out
    assert (out / "windows.csv").read_text() == (reference / "windows.csv").read_text()
    np.testing.assert_array_equal(np.load(out / "vectors.npy"), np.load(reference / "vectors.npy"))
    first = sorted((out / "parts").glob("*.json"))[0]
    first.unlink()  # a recording the cluster did not finish: the rerun embeds only it
    again = build_index(archive.resolve(), out, backbone=str(window_run), hop_s=0.5, jobs=1, engine="dask", approximate="never")
    assert again["embedded_now"] == 1 and again["engine"] == "dask"
    np.testing.assert_array_equal(np.load(out / "vectors.npy"), np.load(reference / "vectors.npy"))
    local = [a for a in argv if a not in ("--engine", "dask")]
    assert main([*local, "--scheduler", "tcp://localhost:1"]) == 2
    assert "--scheduler is for --engine dask" in capsys.readouterr().err


def _copy_ledger(index_dir, to):
    """A fresh index folder holding only ``index_dir``'s ledger: building it makes every file (the graph whole) from
    the same parts, embedding nothing."""
    to.mkdir()
    shutil.copy2(index_dir / "run.json", to / "run.json")
    shutil.copytree(index_dir / "parts", to / "parts")
    return to


def test_added_changed_and_removed_recordings_update_the_graph_in_place(tmp_path, window_run):
    """The graph keeps the keys of unchanged recordings, drops a changed or removed one's and inserts the new windows;
    its approximate top 10 equal those of a graph built from scratch (and exact search); most vectors gone: built whole."""
    pytest.importorskip("usearch")
    from birdspec.similarity.index_store import read_recordings

    recordings = {"siteA/a.wav": (0, 4.0), "siteA/b.wav": (1, 4.0), "siteB/c.wav": (2, 4.0), "siteB/d.wav": (0, 3.0),
                  "siteC/e.wav": (1, 3.0)}
    archive = make_archive(tmp_path / "archive", recordings)
    out = tmp_path / "index"

    def build(folder):
        return build_index(archive, folder, backbone=str(window_run), hop_s=0.5, approximate="always", jobs=1)

    first = build(out)
    assert first["ann_update"] == "build" and first["num_vectors"] == 3 * 7 + 2 * 5
    before = read_recordings(out).set_index("recording")
    assert before["first_key"].tolist() == [0, 7, 14, 21, 26]  # built whole: keys are rows
    write_audio(archive / "siteA" / "b.wav", class_signal(2, duration_s=5.0, sample_rate_hz=SR, seed=77), SR)
    os.utime(archive / "siteA" / "b.wav", ns=(time.time_ns(), time.time_ns() + 10**9))
    make_archive(archive, {"siteA/aa.wav": (2, 3.0)})  # sorts between a.wav and b.wav: later rows move
    second = build(out)
    assert second["embedded_now"] == 2 and second["ann_update"] == "incremental" and second["num_vectors"] == 38
    after = read_recordings(out).set_index("recording")
    for same in ("siteA/a.wav", "siteB/c.wav", "siteB/d.wav", "siteC/e.wav"):
        assert after.loc[same, "first_key"] == before.loc[same, "first_key"]
    assert after.loc["siteA/b.wav", "digest"] != before.loc["siteA/b.wav", "digest"]
    assert min(after.loc["siteA/b.wav", "first_key"], after.loc["siteA/aa.wav", "first_key"]) == 31  # fresh keys
    info = SimilarityIndex(out).info
    assert info.ann["last_update"] == {"removed": 7, "added": 9 + 5, "seconds": info.ann["last_update"]["seconds"]}

    scratch = _copy_ledger(out, tmp_path / "scratch")
    assert build(scratch)["ann_update"] == "build"
    updated, whole = SimilarityIndex(out), SimilarityIndex(scratch)
    assert (out / "windows.csv").read_bytes() == (scratch / "windows.csv").read_bytes()
    assert len(updated.ann()) == len(updated) == 38  # the changed recording's old windows are gone from the graph
    for row in range(0, len(updated), 3):
        q = updated.unit_rows([row])[0]
        approx, _ = search_vector(updated, q, top=10, mode="approximate", expansion_search=512)
        fresh, _ = search_vector(whole, q, top=10, mode="approximate", expansion_search=512)
        exact, _ = search_vector(updated, q, top=10, mode="exact")
        assert approx["row"].tolist() == fresh["row"].tolist() == exact["row"].tolist(), row
        np.testing.assert_array_equal(approx["similarity"], fresh["similarity"])

    assert build(out)["ann_update"] is None  # nothing changed: nothing rewritten
    (archive / "siteC" / "e.wav").unlink()
    removed = build(out)
    assert removed["ann_update"] == "incremental" and len(SimilarityIndex(out).ann()) == 33
    for name in ("siteA/a.wav", "siteA/aa.wav", "siteA/b.wav"):
        (archive / name).unlink()
    most = build(out)  # 7 + 5 + 21 removed since the build, 12 kept
    assert most["ann_update"] == "build" and most["num_vectors"] == 12
    assert read_recordings(out)["first_key"].tolist() == [0, 7] and SimilarityIndex(out).info.ann["removed_since_build"] == 0


def test_a_small_graph_finds_every_vector_as_its_own_query_whatever_the_threads(tmp_path):
    """usearch's concurrent insertion can strand a node no search reaches (usearch #735; 8 threads on 300 clustered
    vectors left several): a small graph is built by one thread, so every window is found by its own vector."""
    pytest.importorskip("usearch")
    from birdspec.similarity.ann import AnnIndex, build_ann

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 256)).astype(np.float32)
    vectors = centres[rng.integers(0, 4, 300)] + 0.3 * rng.standard_normal((300, 256)).astype(np.float32)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    settings = build_ann(vectors, tmp_path / "graph.usearch", dtype="float16", threads=8)
    graph = AnnIndex(tmp_path / "graph.usearch", settings)
    found = [graph.search(v, 1, expansion_search=512)[0] for v in vectors]
    assert found == list(range(len(vectors)))
