"""The BirdNET heads learn "no bird": the embedding cache's no-bird clips and training with them.

A fake backbone (spectral bins, as in tests/test_birdnet.py) writes the caches; the last test runs
BirdNET itself and skips without ``birdspec[birdnet]``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_birdnet import FakeEmbedder, needs_birdnet
from test_birdnet_prior import install_fake_birdnet

from birdspec.config import EncodingConfig
from birdspec.data.embed import embed_dataset
from birdspec.data.embedding_dataset import EmbeddingCache, EmbeddingDataset, collate_embeddings
from birdspec.data.embeddings import (
    EMBEDDINGS_FILE,
    EMBEDDINGS_META_FILE,
    NOCALL_EMBEDDINGS_FILE,
    NOCALL_INDEX_FILE,
    embedding_dir,
    nocall_partial_dir,
    read_nocall_index,
)
from birdspec.data.prepared import PreparedDataset
from birdspec.data.store import STORE_FILE
from birdspec.errors import ConfigError, DataError

from helpers import class_signal, write_audio, write_prepared

SR = 32000
SYNTH = 20  # synthetic clips in these caches: 16 training + 4 validation ones (every 5th)


def quiet_dataset(out: Path) -> Path:
    """3 classes x 4 recordings of 12 s, 5 s windows; every recording is quiet (-60 dB noise) from 2 s to 10 s."""
    ds = write_prepared(out, num_classes=3, per_class=4, duration_s=12.0, folds=2,
                        encoding=EncodingConfig(name="window", window_s=5.0, short_policy="pad"))
    data = PreparedDataset(ds)
    store = np.memmap(ds / STORE_FILE, dtype="<f2", mode="r+")
    rng = np.random.default_rng(0)
    for off in data.manifest["offset"].astype(int):
        store[off + 2 * SR : off + 10 * SR] = (1e-3 * rng.standard_normal(8 * SR)).astype("<f2")
    store.flush()
    return ds


@pytest.fixture(scope="module")
def quiet_template(tmp_path_factory) -> Path:
    return quiet_dataset(tmp_path_factory.mktemp("quiet") / "ds")


@pytest.fixture()
def quiet_ds(quiet_template, tmp_path) -> Path:
    return Path(shutil.copytree(quiet_template, tmp_path / "ds"))


@pytest.fixture(scope="module")
def embedded_template(quiet_template, tmp_path_factory) -> Path:
    ds = Path(shutil.copytree(quiet_template, tmp_path_factory.mktemp("embedded") / "ds"))
    embed_dataset(ds, model=FakeEmbedder(), progress=False, synthetic_clips=SYNTH)
    return ds


@pytest.fixture()
def embedded(embedded_template, tmp_path) -> Path:
    return Path(shutil.copytree(embedded_template, tmp_path / "emb"))


def _nocall_bytes(ds: Path) -> bytes:
    return (embedding_dir(ds) / NOCALL_EMBEDDINGS_FILE).read_bytes()


# ------------------------------------------------------------------------------ embed


def test_embed_writes_the_nocall_part(quiet_ds):
    fake = FakeEmbedder()
    report = embed_dataset(quiet_ds, model=fake, progress=False, synthetic_clips=SYNTH)
    d = embedding_dir(quiet_ds)
    meta = json.loads((d / EMBEDDINGS_META_FILE).read_text())
    idx = read_nocall_index(d / NOCALL_INDEX_FILE)
    # 20 synthetic clips, one quiet-stretch clip per recording (8 s of quiet hold one 7 s clip: a 5 s output
    # window and the 1 s each side its BirdNET windows cover), 5 windows each
    assert meta["format_version"] == 2 and meta["nocall"]["num_clips"] == 20 + 12 == len(idx) == report.nocall_clips
    assert meta["nocall"]["clips"] == {"synthetic_train": 16, "synthetic_val": 4, "stretch": 12}
    assert (idx["num_windows"] == 5).all() and meta["nocall"]["total_windows"] == 160 == report.computed_nocall_windows
    assert (d / NOCALL_EMBEDDINGS_FILE).stat().st_size == 160 * 1024 * 2
    assert fake.windows == 12 * 4 + 160  # recordings: 4 windows of 3 s in 12 s (hop 3 s)
    synth = idx[idx["kind"] == "synthetic"]
    assert synth["part"].tolist() == ["val" if i % 5 == 4 else "train" for i in range(SYNTH)]
    assert synth["source"].str.contains("dBFS").all() and (synth["row"] == -1).all()
    stretch = idx[idx["kind"] == "stretch"]
    m = PreparedDataset(quiet_ds).manifest
    assert stretch["row"].tolist() == list(range(12)) and stretch["id"].tolist() == m["id"].tolist()
    assert np.allclose(stretch["start_s"], 2.1, atol=0.05) and (stretch["part"] == "").all()
    settings = meta["nocall"]["settings"]
    assert settings["clip_s"] == 7.0 and settings["embed_hop_s"] == 1.0 and settings["window_rule"] == "centre"
    assert EmbeddingCache(quiet_ds).window_rule == "centre"

    # a clip is embedded as prediction embeds a 5 s output window: the BirdNET windows centred in it, at 0-4 s of the clip
    from birdspec.birdnet.predict import BirdnetAudioClassifier
    from birdspec.models.birdnet_head import build_head

    cache = EmbeddingCache(quiet_ds)
    clf = BirdnetAudioClassifier(build_head("birdnet-linear", num_classes=3), backbone=FakeEmbedder())
    row = 5
    a = int(round(float(stretch["start_s"].iloc[row]) * SR))
    wave = PreparedDataset(quiet_ds).store.read(int(m["offset"].iloc[row]), int(m["num_samples"].iloc[row]))
    emb, starts = clf.embed(wave[a : a + 7 * SR])
    assert starts.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(cache.nocall_clip(SYNTH + row), emb, rtol=2e-3, atol=1e-3)

    # the same settings again: nothing to do; a fresh cache of a copy: the same bytes
    again = FakeEmbedder()
    assert embed_dataset(quiet_ds, model=again, progress=False, synthetic_clips=SYNTH).computed_nocall_clips == 0
    assert again.calls == 0
    fresh = Path(shutil.copytree(quiet_ds, quiet_ds.with_name("fresh")))
    shutil.rmtree(embedding_dir(fresh))
    embed_dataset(fresh, model=FakeEmbedder(), progress=False, synthetic_clips=SYNTH)
    assert _nocall_bytes(fresh) == _nocall_bytes(quiet_ds)
    # more synthetic clips: only the new ones are embedded, the others are kept
    more = FakeEmbedder()
    report = embed_dataset(quiet_ds, model=more, progress=False, synthetic_clips=SYNTH + 5)
    assert report.computed_nocall_clips == 5 and more.windows == 25 and report.nocall_clips == 37


def test_embed_background_clips_are_added_and_kept(embedded, tmp_path):
    rng = np.random.default_rng(1)
    bg = tmp_path / "bg"
    write_audio(bg / "a_long.wav", (0.01 * rng.standard_normal(42 * SR)).astype(np.float32), SR)  # 6 clips of 7 s
    write_audio(bg / "b_short.wav", (0.01 * rng.standard_normal(2 * SR)).astype(np.float32), SR)  # 1 clip, repeated
    fake = FakeEmbedder()
    report = embed_dataset(embedded, model=fake, progress=False, synthetic_clips=SYNTH, background_dir=bg)
    assert report.computed_recordings == 0 and report.computed_nocall_clips == 7 and fake.windows == 7 * 5
    idx = read_nocall_index(embedding_dir(embedded) / NOCALL_INDEX_FILE)
    b = idx[idx["kind"] == "background"]
    assert b["source"].tolist() == ["a_long.wav"] * 6 + ["b_short.wav"]
    assert b["start_s"].tolist() == [0.0, 7.0, 14.0, 21.0, 28.0, 35.0, 0.0]
    assert b["part"].tolist() == ["train"] * 4 + ["val", "train", "train"]
    meta = json.loads((embedding_dir(embedded) / EMBEDDINGS_META_FILE).read_text())
    assert meta["nocall"]["settings"]["background"]["dir"] == str(bg.resolve())
    # a later embed without --background (or a synthetic count) keeps them
    again = FakeEmbedder()
    assert embed_dataset(embedded, model=again, progress=False).nocall_clips == 32 + 7
    assert again.calls == 0
    # training draws them only with --background (the folder the cache embedded)
    from birdspec.data.nocall_embeddings import NoCallClips

    cache = EmbeddingCache(embedded)
    assert NoCallClips(cache, rows=[0], part="train", background_dir=bg).kinds == ["stretch", "background", "synthetic"]
    assert NoCallClips(cache, rows=[0], part="val").kinds == ["stretch", "synthetic"]
    with pytest.raises(ConfigError, match=r"birdspec embed .* --background"):
        NoCallClips(cache, rows=[0], part="train", background_dir=tmp_path)


def test_embed_resumes_the_nocall_part(quiet_ds):
    # recordings: 48 windows in 6 calls (2 recordings of 4 windows each); then 2 clips (10 windows) per chunk: 3 calls
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(quiet_ds, model=FakeEmbedder(fail_after_calls=9), progress=False, chunk_windows=6, synthetic_clips=SYNTH)
    partial = nocall_partial_dir(quiet_ds)
    assert partial.is_dir() and EmbeddingCache(quiet_ds).nocall_meta is None  # the recordings are published
    assert len(read_nocall_index(partial / NOCALL_INDEX_FILE)) == 6
    with open(partial / NOCALL_EMBEDDINGS_FILE, "ab") as f:  # a crash between data and index rows
        f.write(b"\0" * 1024 * 2 * 2)
    resumed = FakeEmbedder()
    report = embed_dataset(quiet_ds, model=resumed, progress=False, chunk_windows=6, synthetic_clips=SYNTH)
    assert report.computed_recordings == 0 and report.computed_nocall_clips == 32 - 6 and resumed.windows == 26 * 5
    assert not partial.exists()
    fresh = Path(shutil.copytree(quiet_ds, quiet_ds.with_name("fresh")))
    shutil.rmtree(embedding_dir(fresh))
    embed_dataset(fresh, model=FakeEmbedder(), progress=False, synthetic_clips=SYNTH)
    assert _nocall_bytes(fresh) == _nocall_bytes(quiet_ds)


def _make_old(ds: Path) -> None:
    """Make a cache look like one written before the no-bird clips (format version 1)."""
    d = embedding_dir(ds)
    meta = json.loads((d / EMBEDDINGS_META_FILE).read_text())
    meta.pop("nocall")
    meta["format_version"] = 1
    (d / EMBEDDINGS_META_FILE).write_text(json.dumps(meta))
    (d / NOCALL_EMBEDDINGS_FILE).unlink()
    (d / NOCALL_INDEX_FILE).unlink()


def test_an_old_cache_says_to_embed_again_and_embed_adds_the_part(embedded, tmp_path):
    from birdspec.training import TrainConfig, train

    before = _nocall_bytes(embedded)
    recordings = (embedding_dir(embedded) / EMBEDDINGS_FILE).read_bytes()
    _make_old(embedded)
    cfg = TrainConfig(model="birdnet-linear", epochs=1, device="cpu", workers=0, progress_bar=False)
    with pytest.raises(DataError, match=r"no no-bird clips.*run `birdspec embed .* --backbone birdnet` again.*--nocall-fraction 0"):
        train(embedded, tmp_path / "run", cfg)
    from birdspec.cli.main import main

    assert main(["train", str(embedded), "--model", "birdnet-linear", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "cli")]) == 2  # the CLI's status for a user error
    closed_world = train(embedded, tmp_path / "closed", TrainConfig(model="birdnet-linear", epochs=1, nocall_fraction=0.0,
                                                                     device="cpu", workers=0, progress_bar=False))
    assert closed_world.config.activation == "softmax"
    fake = FakeEmbedder()
    report = embed_dataset(embedded, model=fake, progress=False, synthetic_clips=SYNTH)
    assert report.computed_recordings == 0 and report.computed_nocall_clips == 32 and fake.windows == 160
    assert _nocall_bytes(embedded) == before
    assert (embedding_dir(embedded) / EMBEDDINGS_FILE).read_bytes() == recordings


# --------------------------------------------------------------------------- training


def test_sample_sets_draw_each_sides_clips(embedded):
    from birdspec.training import TrainConfig
    from birdspec.training.samples import embedding_threshold_sets, nocall_count, sample_sets

    data = PreparedDataset(embedded)
    cfg = TrainConfig(model="birdnet-linear", seed=3).for_samples("window", model_input="embedding")
    assert cfg.nocall_fraction == 0.2 and cfg.activation == "softmax-background"
    assert TrainConfig(model="birdnet-linear").for_samples("stack10", model_input="embedding").nocall_fraction == 0.2
    train_rows, val_rows = data.select(split="train"), data.select(split="val")
    sets = sample_sets(cfg, data, model_input="embedding")(
        EmbeddingDataset(data, rows=train_rows, random_crop=True), EmbeddingDataset(data, rows=val_rows))
    assert sets.train.num_nocall == nocall_count(9, 0.2) == 2 and len(sets.val) == 3
    assert sets.val_fit.num_nocall == 32 and len(sets.val_fit) == 35
    idx = EmbeddingCache(embedded).nocall_index
    for dataset, rows, part in ((sets.train, train_rows, "train"), (sets.val_fit, val_rows, "val")):
        pools = dataset.clips.pools
        assert set(idx.loc[pools["stretch"], "row"]) == set(rows.tolist())
        assert set(idx.loc[pools["synthetic"], "part"]) == {part}
    x, y = sets.val_fit[34]
    assert x.shape == (5, 1024) and y == 3  # the implicit no-bird class K
    torch.testing.assert_close(sets.val_fit[34][0], x)  # fixed validation samples
    torch.manual_seed(0)
    draws = {tuple(sets.train[10][0][0, :4].tolist()) for _ in range(8)}
    assert len(draws) > 1  # training draws anew
    # a batch of recordings and no-bird clips: zero padding is masked, a clip scores as it does alone
    from birdspec.models.birdnet_head import build_head

    head = build_head("birdnet-linear", num_classes=3).eval()
    xb, yb = collate_embeddings([sets.val_fit[0], sets.val_fit[34]])
    assert xb.shape == (2, 5, 1024) and (xb[0, 4] == 0).all() and yb.tolist() == [int(sets.val.labels[0]), 3]
    with torch.no_grad():
        torch.testing.assert_close(head(xb)[1], head(x[None])[0])
        torch.testing.assert_close(head(xb)[0], head(xb[:1, :4])[0])
    thresholds = embedding_threshold_sets(cfg, data, train_rows)
    assert thresholds.num_nocall == 32 and thresholds.seed != sets.val_fit.seed
    multi = TrainConfig(model="birdnet-linear", labels="multi").for_samples("window", model_input="embedding")
    msets = sample_sets(multi, data, model_input="embedding")(EmbeddingDataset(data, rows=train_rows),
                                                                EmbeddingDataset(data, rows=val_rows))
    assert msets.val_fit[34][1].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="background-mix"):
        sample_sets(TrainConfig(model="birdnet-linear", background_mix_dir=str(embedded)), data, model_input="embedding")


def test_training_a_head_learns_no_bird_and_stores_thresholds(embedded, tmp_path, capsys):
    from birdspec.cli.main import main
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.training import TrainConfig, train

    cfg = TrainConfig(model="birdnet-linear", epochs=20, lr=0.01, device="cpu", workers=0, progress_bar=False)
    result = train(embedded, tmp_path / "run", cfg)
    assert result.config.nocall_fraction == 0.2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]
    assert saved["nocall_fraction"] == 0.2 and saved["activation"] == "softmax-background"
    ckpt = read_checkpoint(result.best_checkpoint)
    assert ckpt.info.activation == "softmax-background"
    det = ckpt.info.detection
    assert det is not None and len(det.thresholds) == 3 and all(0.05 <= t <= 0.99 for t in det.thresholds)
    assert "+ 32 no-bird samples" in det.chosen_on
    # the head says "no bird" on the validation part's synthetic clips
    cache, head = EmbeddingCache(embedded), ckpt.build_model().eval()
    idx = cache.nocall_index
    val_synth = np.flatnonzero((idx["kind"] == "synthetic") & (idx["part"] == "val"))
    from birdspec.models.activation import scores_numpy

    with torch.no_grad():
        logits = head(torch.from_numpy(np.stack([cache.nocall_clip(i) for i in val_synth]))).numpy()
    assert (scores_numpy(logits, "softmax-background") < np.asarray(det.thresholds)).all(axis=1).mean() >= 0.75
    assert main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "softmax-background" in out and "chosen on validation" in out and "no-bird samples" in out
    assert len([line for line in out.splitlines() if line.strip().startswith("synth")]) == 3
    # the head predicts under the window rule its no-bird clips were embedded with; a cache that records
    # none (embedded before the rule was recorded: 3 windows inside a 5 s window) gives heads that keep it
    from birdspec.birdnet.predict import BirdnetAudioClassifier

    assert ckpt.model["window_rule"] == "centre"
    assert BirdnetAudioClassifier.from_checkpoint(ckpt, backbone=FakeEmbedder()).rule == "centre"
    meta_path = embedding_dir(embedded) / EMBEDDINGS_META_FILE
    meta = json.loads(meta_path.read_text())
    meta["nocall"]["settings"].pop("window_rule")
    meta_path.write_text(json.dumps(meta))
    old = train(embedded, tmp_path / "old", TrainConfig(model="birdnet-linear", epochs=1, device="cpu", workers=0,
                                                         progress_bar=False))
    old_ckpt = read_checkpoint(old.best_checkpoint)
    assert old_ckpt.model["window_rule"] == "inside"
    assert BirdnetAudioClassifier.from_checkpoint(old_ckpt, backbone=FakeEmbedder()).rule == "inside"


def test_birdnet_closed_and_prior_with_no_bird_samples(embedded, tmp_path, monkeypatch):
    """birdnet-closed scores BirdNET as it is with the no-bird class (logit 0); birdnet-prior's L2-SP choice sees
    no-bird validation samples and still compares against it."""
    from birdspec.data.embedding_dataset import collate_embeddings
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.training import TrainConfig, train
    from birdspec.training.module import fit_logits, validation_loss
    from birdspec.training.samples import sample_sets

    install_fake_birdnet(monkeypatch)
    closed = train(embedded, tmp_path / "closed", TrainConfig(model="birdnet-closed", device="cpu", workers=0, progress_bar=False))
    ckpt = read_checkpoint(closed.best_checkpoint)
    assert ckpt.info.activation == "softmax-background" and ckpt.info.detection is not None
    data = PreparedDataset(embedded)
    cfg = closed.config
    sets = sample_sets(cfg, data, model_input="embedding")(EmbeddingDataset(data, rows=data.select(split="train")),
                                                            EmbeddingDataset(data, rows=data.select(split="val")))
    x, y = collate_embeddings([sets.val_fit[i] for i in range(len(sets.val_fit))])
    with torch.no_grad():
        want = validation_loss(fit_logits(ckpt.build_model()(x), "softmax-background"), y)
    assert closed.best_val_loss == pytest.approx(float(want), rel=1e-4)

    prior = train(embedded, tmp_path / "prior", TrainConfig(model="birdnet-prior", epochs=2, device="cpu", workers=0,
                                                            progress_bar=False))
    chosen = json.loads((tmp_path / "prior" / "l2sp.json").read_text())
    assert len(chosen["scores"]) == 4 and all(np.isfinite(s["val_loss"]) for s in chosen["scores"])
    inner = json.loads((tmp_path / "prior" / "l2sp" / "prior_only" / "config.json").read_text())["train_config"]
    assert inner["nocall_fraction"] == 0.2  # BirdNET as it is is scored on no-bird samples too
    assert prior.config.nocall_fraction == 0.2
    assert read_checkpoint(prior.best_checkpoint).info.activation == "softmax-background"


# ---------------------------------------------------------------- with BirdNET itself


def test_birdnet_linear_head_detects_nothing_on_silence_and_noise(tmp_path):
    """A birdnet-linear head trained (default settings) on a tiny synthetic dataset with real BirdNET embeddings
    writes no detection on 20 s of digital silence and of white noise at -40 dBFS, at its stored thresholds."""
    needs_birdnet()
    from birdspec.cli.main import main
    from birdspec.training import TrainConfig, train

    ds = write_prepared(tmp_path / "ds", num_classes=2, per_class=5, duration_s=10.0, val_fraction=0.4,
                        encoding=EncodingConfig(name="window", window_s=5.0, short_policy="pad"))
    embed_dataset(ds, num_threads=1, progress=False, synthetic_clips=60)
    result = train(ds, tmp_path / "run", TrainConfig(model="birdnet-linear", epochs=40, device="cpu", workers=0,
                                                     progress_bar=False))
    assert result.config.activation == "softmax-background"
    rng = np.random.default_rng(0)
    silence = write_audio(tmp_path / "audio" / "silence.wav", np.zeros(20 * SR, np.float32), SR)
    noise = write_audio(tmp_path / "audio" / "noise.wav", (0.01 * rng.standard_normal(20 * SR)).astype(np.float32), SR)
    call = write_audio(tmp_path / "audio" / "call.wav", class_signal(1, duration_s=10.0, seed=99), SR)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "run"), str(silence), str(noise), str(call), "--out", str(out),
                 "--threads", "1", "--no-progress"]) == 0
    table = pd.read_csv(out)
    files = table["file"].astype(str)
    assert not files.str.contains("silence").any() and not files.str.contains("noise").any(), table
    assert (table.loc[files.str.contains("call"), "label"] == "synth1").any(), table  # the head still hears a bird
