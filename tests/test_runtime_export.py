"""The fast CPU path from a fresh checkpoint: training writes the ONNX runtime export beside it, predict uses it
without importing PyTorch (first run included); stale and corrupt exports are detected and rebuilt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdspec.models.checkpoint import make_checkpoint, read_checkpoint, save_checkpoint
from birdspec.prediction import onnx_runtime as ox
from birdspec.prediction.predictor import Predictor
from birdspec.training import TrainConfig, train

from helpers import class_signal, write_audio

SR = 32000


@pytest.fixture(scope="module")
def trained_run(fast_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("rt") / "run"
    cfg = TrainConfig(model="mobilenetv2-seed", epochs=1, batch_size=8, device="cpu", workers=0, progress_bar=False,
                      encoding_override="window")
    train(fast_dataset, run, cfg, export=ox.export_beside)  # as `birdspec train` does
    return run


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    wave = np.concatenate([class_signal(k % 3, duration_s=2.0, seed=k) for k in range(4)])
    return write_audio(tmp_path_factory.mktemp("wav") / "rec.wav", wave, SR)


def _scores(df: pd.DataFrame, classes) -> np.ndarray:
    return df[list(classes)].to_numpy()


def test_training_writes_runtime_exports(trained_run):
    for which in ("best", "last"):
        entry = trained_run / "checkpoints" / f"{which}.runtime"
        meta = json.loads((entry / "info.json").read_text())
        assert meta["checkpoint_sha256"] == ox.file_sha256(trained_run / "checkpoints" / f"{which}.pt")
        assert meta["checkpoint"]["classes"] == list(read_checkpoint(trained_run).classes)
        assert (entry / "model.onnx").stat().st_size > 10_000


def test_first_predict_of_a_fresh_run_needs_no_torch(trained_run, wav, tmp_path):
    """The whole command, first run, empty cache: the run folder's export is used and PyTorch never loads."""
    code = (
        "import sys\n"
        "from birdspec.cli.main import main\n"
        f"code = main(['predict', {str(trained_run)!r}, {str(wav)!r}, '--scores', 'all', '--out', {str(tmp_path / 'p.csv')!r}, '--no-progress'])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "BIRDSPEC_CACHE_DIR": str(tmp_path / "empty-cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 False"
    assert not (tmp_path / "empty-cache").exists()
    classes = read_checkpoint(trained_run).classes
    fast = _scores(pd.read_csv(tmp_path / "p.csv"), classes)
    ref = _scores(Predictor(trained_run, backend="torch", scores="all").predict_file(wav), classes)
    np.testing.assert_allclose(fast, ref, atol=2e-4)


def test_stale_export_is_not_used(trained_run, wav, tmp_path):
    """A retrained best.pt beside an old export: the export's hash no longer matches, the new weights are used."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    ckpt = read_checkpoint(run / "checkpoints" / "best.pt")
    model = ckpt.build_model()
    for p in model.backbone.parameters():
        p.data.mul_(1.5)
    raw = make_checkpoint(model, model_config=dict(ckpt.model), classes=list(ckpt.classes), frontend=ckpt.frontend,
                          encoding=ckpt.encoding)
    save_checkpoint(raw, run / "checkpoints" / "best.pt")
    assert ox.find_export(run / "checkpoints" / "best.pt", cache_dir=tmp_path / "cache") is None
    p = Predictor(run, scores="all", cache_dir=tmp_path / "cache")
    assert p.backend == "onnx"
    got = _scores(p.predict_file(wav), ckpt.classes)
    ref = _scores(Predictor(run, backend="torch", scores="all").predict_file(wav), ckpt.classes)
    np.testing.assert_allclose(got, ref, atol=2e-4)


@pytest.mark.parametrize("damage", ["model.onnx", "frontend.npz", "info.json"])
def test_corrupt_export_is_rebuilt(trained_run, wav, tmp_path, damage, caplog):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "checkpoints" / "best.runtime" / damage).write_bytes(b"\x00garbage")
    classes = read_checkpoint(run).classes
    with caplog.at_level("WARNING"):
        got = _scores(Predictor(run, scores="all", cache_dir=tmp_path / "cache").predict_file(wav), classes)
    assert "corrupt" in caplog.text
    ref = _scores(Predictor(trained_run, scores="all").predict_file(wav), classes)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # and the next predict finds a good export again (rebuilt into the cache)
    assert ox.find_export(run / "checkpoints" / "best.pt", cache_dir=tmp_path / "cache") is not None


def test_export_in_a_child_process_keeps_torch_out(trained_run, wav, tmp_path):
    """A checkpoint without an export, predicted from a process without PyTorch: a child process exports it."""
    import shutil

    lone = tmp_path / "lone.pt"
    shutil.copy(trained_run / "checkpoints" / "best.pt", lone)
    cache = tmp_path / "cache"
    code = (
        "import sys\n"
        "from birdspec.prediction.predictor import Predictor\n"
        f"p = Predictor({str(lone)!r}, cache_dir={str(cache)!r})\n"
        f"assert len(p.predict_file({str(wav)!r})) > 0 and p.backend == 'onnx'\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert ox.find_export(lone, cache_dir=cache) is not None


def test_checkpoints_with_the_same_weights_share_one_export(trained_run, tmp_path, monkeypatch):
    """A 1-epoch run: best.pt and last.pt hold the same weights, so the ONNX model is made once and copied."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    calls = []
    real = ox._export_model_files
    monkeypatch.setattr(ox, "_export_model_files", lambda ckpt, folder: (calls.append(folder), real(ckpt, folder)))
    best, last = run / "checkpoints" / "best.pt", run / "checkpoints" / "last.pt"
    ox.export_beside(best, last)
    assert len(calls) == 1
    assert (run / "checkpoints" / "last.runtime" / "model.onnx").read_bytes() == (run / "checkpoints" / "best.runtime" / "model.onnx").read_bytes()
    assert ox.find_export(last) == run / "checkpoints" / "last.runtime"
    assert ox.find_export(best) == run / "checkpoints" / "best.runtime"
