"""Multi-label training: targets from secondary labels, losses, no-bird crops, metrics (issue 17, parts 1-2)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from birdspec.config import EncodingConfig
from birdspec.data.multilabel import label_targets
from birdspec.data.nocall import BandCheck, QuietRule, mix_at_snr, quiet_stretches
from birdspec.errors import ConfigError, DataError
from birdspec.evaluation.multilabel import choose_threshold, multilabel_metrics
from birdspec.models.checkpoint_info import _activation
from birdspec.training.config import TrainConfig
from birdspec.training.multilabel import asymmetric_loss, focal_loss, top1_hits

from conftest import FAST_FRONTEND
from helpers import write_audio, write_prepared

SR = 32000


def _manifest() -> pd.DataFrame:
    return pd.DataFrame({
        "label": ["a", "b", "c", "a"],
        "secondary_labels": ['["b", "zzz"]', "['b', 'a']", "[]", '["c", "zzz", "yyy", "b"]'],
    })


def test_targets_from_secondary_labels_known_answer():
    found = label_targets(_manifest(), ["a", "b", "c"], secondary_weight=0.5)
    expected = np.array([[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1], [1, 0.5, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(found.targets, expected)
    assert dict(found.ignored) == {"zzz": 2, "yyy": 1}  # outside the classes: ignored and counted
    assert found.secondary_used == 4  # b, a (row 1; its own 'b' is the primary), c and b (row 3)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_secondary_weight_extremes(weight):
    t = label_targets(_manifest(), ["a", "b", "c"], secondary_weight=weight).targets
    assert t[0].tolist() == [1.0, weight, 0.0] and t[2].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="secondary-weight"):
        label_targets(_manifest(), ["a", "b", "c"], secondary_weight=1.5)


def test_config_label_modes_and_checkpoint_activation():
    primary, multi = TrainConfig(nocall_fraction=0.0), TrainConfig(labels="multi")
    assert (primary.loss, multi.loss) == ("ce", "bce")
    assert _activation({"train_config": primary.to_dict()}) == "softmax"
    # no-bird samples of a single-label run: the implicit no-bird class (a trained "nothing here")
    assert _activation({"train_config": TrainConfig(nocall_fraction=0.1).to_dict()}) == "softmax-background"
    assert TrainConfig().for_samples("window").activation == "softmax-background"
    assert TrainConfig().for_samples("stack10").activation == "softmax"  # the study's recording classifier
    with pytest.raises(ConfigError, match="stack10 samples are whole recordings"):
        TrainConfig(nocall_fraction=0.1).for_samples("stack10")
    for loss in ("bce", "focal", "asl"):  # every multi-label loss gives sigmoid scores at prediction
        assert _activation({"train_config": TrainConfig(labels="multi", loss=loss).to_dict()}) == "sigmoid"
    assert TrainConfig.from_dict(multi.to_dict()) == multi
    with pytest.raises(ConfigError, match="--labels multi"):
        TrainConfig(loss="focal")
    with pytest.raises(ConfigError, match="LO <= HI"):
        TrainConfig(labels="multi", background_snr_db=(10, 0))
    assert TrainConfig(labels="multi").architecture_changes(TrainConfig()) == ["labels"]


def test_losses_reduce_to_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g)
    y = (torch.rand(6, 4, generator=g) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(logits, y)
    assert torch.allclose(focal_loss(logits, y, gamma=0.0), bce, atol=1e-6)
    asl = asymmetric_loss(logits, y, gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    assert torch.allclose(asl, bce * 4, atol=1e-5)  # summed over the 4 classes
    assert asymmetric_loss(logits, y) < asl  # focusing and the margin lower the loss of easy negatives


def test_top1_hits_label_ids_vectors_and_nocall():
    logits = torch.tensor([[3.0, -1.0, -2.0], [-1.0, 2.0, 0.0], [-5.0, -4.0, -6.0], [1.0, -4.0, -6.0]])
    assert top1_hits(logits, torch.tensor([0, 2, 0, 0])).tolist() == [1, 0, 0, 1]
    y = torch.tensor([[1.0, 0, 0], [0, 0, 0.5], [0, 0, 0], [0, 0, 0]])
    assert top1_hits(logits, y).tolist() == [1, 0, 1, 0]  # rows 3-4: no bird; right when every sigmoid < 0.5


def test_multilabel_metrics_known_answer():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.1], [0.8, 0.6, 0.1], [0.3, 0.2, 0.1], [0.1, 0.7, 0.2]])
    m = multilabel_metrics(truth, scores, threshold=0.5, classes=["a", "b", "c"])
    assert m["micro_f1"] == 1.0 and m["average_precision"] == {"a": 1.0, "b": 1.0, "c": None}
    assert m["cmap"] == 1.0 and m["lrap"] == 1.0 and m["n_with_labels"] == 3
    assert choose_threshold(truth, scores) == 0.35  # the lowest threshold with micro F1 = 1
    m2 = multilabel_metrics(truth, scores, threshold=0.05, classes=["a", "b", "c"])
    assert m2["micro_precision"] == pytest.approx(4 / 12) and m2["micro_recall"] == 1.0


def _bursts(duration_s: float, calls: list[tuple[float, float]], *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SR)) / SR
    x = 0.01 * rng.standard_normal(t.size)
    for a, b in calls:
        on = (t >= a) & (t < b)
        x[on] += 0.3 * np.sin(2 * np.pi * 3000 * t[on])
    return x.astype(np.float32)


def test_quiet_stretches_on_synthetic_audio_with_known_silences():
    wave = _bursts(12.0, [(2.0, 4.0), (7.0, 9.5)])
    exact = QuietRule(guard_s=0.0)
    assert quiet_stretches(wave, SR, exact) == [(0, 2 * SR), (4 * SR, 7 * SR), (int(9.5 * SR), 12 * SR)]
    guarded = quiet_stretches(wave, SR, QuietRule(guard_s=0.1))
    assert guarded[1] == (int(4.1 * SR), int(6.9 * SR))
    short = quiet_stretches(_bursts(12.0, [(2.0, 4.0), (4.5, 9.5)]), SR, QuietRule(guard_s=0.0, min_duration_s=1.0))
    assert (4 * SR, int(4.5 * SR)) not in short and len(short) == 2  # the 0.5 s gap is too short
    assert quiet_stretches(_bursts(12.0, []), SR) == []  # noise only: no contrast, nothing trusted as quiet
    assert quiet_stretches(_bursts(12.0, [(0.0, 12.0)]), SR) == []  # a call everywhere


def test_faint_song_under_low_rumble_passes_the_energy_rule_not_the_band_check():
    """Known answer: a 3 kHz song 25 dB under a 100 Hz rumble hardly moves the broadband level (the energy rule
    calls it quiet); its third-octave band stands far above that band's floor, so the band check does not."""
    rng = np.random.default_rng(3)
    t = np.arange(20 * SR) / SR
    x = 0.05 * np.sin(2 * np.pi * 100 * t) + 0.0002 * rng.standard_normal(t.size)
    loud, faint = (t >= 2) & (t < 4), (t >= 10) & (t < 13)
    x[loud] += 0.6 * np.sin(2 * np.pi * 3000 * t[loud])
    x[faint] += 0.05 * 10 ** (-25 / 20) * np.sin(2 * np.pi * 3000 * t[faint])
    x = x.astype(np.float32)

    def covered(stretches, a_s, b_s):
        return sum(max(0, min(b, b_s * SR) - max(a, a_s * SR)) for a, b in stretches) / ((b_s - a_s) * SR)

    rule = QuietRule(guard_s=0.0)
    energy = quiet_stretches(x, SR, rule)
    strict = quiet_stretches(x, SR, rule, band_check=BandCheck())
    assert covered(energy, 2, 4) == 0 and covered(strict, 2, 4) == 0  # the loud song: never quiet
    assert covered(energy, 10, 13) == 1.0  # the faint song, by energy alone: "quiet"
    assert covered(strict, 10, 13) == 0  # with the band check: not quiet
    assert covered(strict, 5, 9) == 1.0 and covered(strict, 14, 19) == 1.0  # the rumble alone stays quiet
    with pytest.raises(ConfigError):
        BandCheck(low_hz=5000.0, high_hz=1000.0)


def test_mix_at_snr_sets_the_power_ratio():
    rng = np.random.default_rng(1)
    s, n = rng.standard_normal(32000).astype(np.float32), 3 * rng.standard_normal(32000).astype(np.float32)
    for snr in (-5.0, 0.0, 20.0):
        added = mix_at_snr(s, n, snr) - s
        assert 10 * np.log10(np.mean(s.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2)) == pytest.approx(snr, abs=1e-3)
    np.testing.assert_allclose(mix_at_snr(np.zeros(10, np.float32), np.ones(10, np.float32), 10.0), 1.0)


def test_train_multi_label_with_nocall_and_background(tmp_path, caplog):
    from birdspec.evaluation.evaluate import evaluate_run
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.training import train

    ds = write_prepared(tmp_path / "ds", duration_s=2.0, frontend=FAST_FRONTEND, folds=4,
                        encoding=EncodingConfig(name="window", window_s=1.0, short_policy="pad"))
    m = pd.read_csv(ds / "manifest.csv")
    m.loc[m["split"] == "train", "secondary_labels"] = '["synth1", "notaclass"]'
    m.to_csv(ds / "manifest.csv", index=False)
    write_audio(tmp_path / "bg" / "noise.wav", 0.05 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32), SR)
    cfg = TrainConfig(labels="multi", loss="asl", nocall_fraction=0.25, background_dir=str(tmp_path / "bg"),
                      background_mix_dir=str(tmp_path / "bg"), background_snr_db=(0.0, 10.0), epochs=1, batch_size=8,
                      workers=0, progress_bar=False, device="cpu")
    with caplog.at_level(logging.INFO, logger="birdspec.data.nocall"):
        result = train(ds, tmp_path / "run", cfg)
    assert sum("background recordings" in r.getMessage() for r in caplog.records) == 1  # one folder, read once for both uses
    ckpt = read_checkpoint(result.best_checkpoint)
    assert ckpt.activation == "sigmoid" and ckpt.train_config["multi_label"] is True
    probs = pd.read_csv(tmp_path / "run" / "predictions_val.csv").filter(like="prob_").to_numpy()
    assert probs.shape[1] == 3 and not np.allclose(probs.sum(axis=1), 1.0)  # sigmoid scores, not softmax
    ev = evaluate_run(tmp_path / "run", split="train", plots=False)
    section = ev.metrics["multilabel"]
    assert section["threshold_source"].startswith("the validation split")
    assert section["recording"]["mean_labels_per_sample"] == pytest.approx(5 / 3)  # primary + synth1 (synth1 rows: 1)


def test_mix_nocall_mixes_the_training_sides_no_bird_audio_under_training_samples_only(tiny_window_dataset):
    """--mix-nocall, even with no no-bird samples: a training sample comes back with a no-bird crop at an SNR of
    the range (known answer: the crops of a source of constant ones); validation samples are never mixed."""
    from birdspec.data.inputs import model_dataset
    from birdspec.data.nocall import BackgroundMixer, WithNoCall
    from birdspec.data.prepared import PreparedDataset
    from birdspec.training.samples import sample_sets

    class Ones:
        def crop(self, length, rng):
            return np.ones(length, np.float32)

    torch.manual_seed(0)
    mixer = BackgroundMixer(snr_db=(10.0, 10.0), source=Ones())
    x = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    added = mixer.mix(x) - x
    np.testing.assert_allclose(added, added[0], rtol=1e-4)  # the source's crop, scaled
    assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2)) == pytest.approx(10.0, abs=1e-3)
    with pytest.raises(DataError):
        BackgroundMixer(snr_db=(0.0, 20.0))

    data = PreparedDataset(tiny_window_dataset)
    train_rows, val_rows = data.select(split="train"), data.select(split="val")
    cfg = TrainConfig(mix_nocall=True, nocall_fraction=0.0, background_mix_probability=1.0, workers=0, device="cpu")
    sets = sample_sets(cfg, data, model_input="waveform")(
        model_dataset(data, model_input="waveform", rows=train_rows, random_crop=True),
        model_dataset(data, model_input="waveform", rows=val_rows))
    assert isinstance(sets.train, WithNoCall) and sets.train.count == 0 and sets.train.mixer.source is not None
    assert sets.train.mixer.source.kinds[-1] == "synthetic" and sets.val_fit is sets.val
    plain = model_dataset(data, model_input="waveform", rows=val_rows)
    np.testing.assert_array_equal(sets.val[0][0].numpy(), plain[0][0].numpy())
    with pytest.raises(ConfigError, match="--mix-nocall"):
        sample_sets(TrainConfig(model="birdnet-linear", mix_nocall=True), data, model_input="embedding")
