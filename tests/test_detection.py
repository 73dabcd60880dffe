"""Detection thresholds (known answers), the activations, per-class thresholds in outputs, the level input norm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from birdspec.errors import CheckpointError, ConfigError
from birdspec.models.activation import ACTIVATIONS, background_logits, scores_numpy, scores_torch
from birdspec.models.checkpoint_info import Detection, describe_thresholds
from birdspec.prediction.selection import class_thresholds, topk_indices
from birdspec.training.detection import MAX_THRESHOLD, MIN_THRESHOLD, best_f1_threshold, choose_detection, positives


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numpy_and_torch_scores_agree(activation):
    z = np.random.default_rng(0).normal(size=(6, 4)) * 8
    for t in (1.0, 2.5):
        np.testing.assert_allclose(scores_numpy(z, activation, temperature=t),
                                   scores_torch(torch.from_numpy(z), activation, temperature=t).numpy(), atol=1e-6)


def test_background_softmax_leaves_room_for_no_bird():
    z = np.array([[0.0, 0.0], [-10.0, -10.0], [10.0, -10.0]])
    s = scores_numpy(z, "softmax-background")
    np.testing.assert_allclose(s[0], [1 / 3, 1 / 3], atol=1e-6)  # the no-bird logit is 0 too
    assert s[1].max() < 1e-4 and s[2, 0] > 0.999  # nothing there / one class clearly there
    assert background_logits(torch.zeros(2, 3)).shape == (2, 4)
    assert scores_numpy(np.array([[1000.0, -1000.0]]), "softmax-background")[0, 0] == pytest.approx(1.0)  # no overflow
    with pytest.raises(ConfigError, match="temperature"):
        scores_numpy(z, "softmax", temperature=0)


def test_best_f1_threshold_known_answers():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    pos = np.array([1, 1, 0, 1, 0, 0], bool)
    t, stats = best_f1_threshold(s, pos)  # all three positives at the cost of one false: F1 6/7
    assert t == pytest.approx((0.6 + 0.3) / 2) and stats["tp"] == 3 and stats["fp"] == 1 and stats["f1"] == 0.8571
    t, stats = best_f1_threshold(s, pos, np.array([1, 1, 10, 1, 1, 1.0]))  # a heavy negative at 0.7 moves it up
    assert t == pytest.approx(0.75) and stats["fp"] == 0 and stats["tp"] == 2
    t, _ = best_f1_threshold(np.array([0.99, 0.999]), np.array([True, True]))  # nothing to reject: half-way to 0
    assert t == pytest.approx(0.495)
    t, _ = best_f1_threshold(np.array([1.0, 1.0, 0.999]), np.array([True, True, False]))
    assert t == MAX_THRESHOLD
    t, _ = best_f1_threshold(np.array([0.01, 0.0]), np.array([True, False]))
    assert t == MIN_THRESHOLD
    t, stats = best_f1_threshold(np.array([0.7, 0.2]), np.array([False, False]))  # no window of the class
    assert t == pytest.approx(0.71) and stats["n_pos"] == 0
    # scores that do not separate the class: the best F1 accepts every window (a model that learned nothing of it,
    # near-constant scores); the class is never detected rather than everywhere
    flat = np.array([0.31, 0.3, 0.3, 0.29, 0.3, 0.3])
    t, stats = best_f1_threshold(flat, np.array([0, 1, 0, 1, 0, 0], bool))
    assert t == pytest.approx(0.5) and stats["tp"] == stats["fp"] == 0 and stats["fn"] == 2 and stats["not_separated"]
    t, stats = best_f1_threshold(flat + 0.6, np.array([0, 1, 0, 1, 0, 0], bool))
    assert t == pytest.approx(0.92) and stats["tp"] == 0
    inverted = np.array([0.9, 0.8, 0.2, 0.1])  # the class scores lowest: accepting everything is its best F1
    assert best_f1_threshold(inverted, np.array([0, 0, 1, 1], bool))[0] == pytest.approx(0.91)
    # a weak separation is kept: the accepted windows hold a larger share of the class than all the windows
    t, stats = best_f1_threshold(np.array([0.4, 0.35, 0.3, 0.3]), np.array([1, 0, 1, 0], bool))
    assert t < 0.4 and stats["tp"] >= 1 and "not_separated" not in stats


def test_info_says_which_classes_are_never_detected(tiny_stack_dataset, tmp_path, capsys):
    from birdspec.cli.main import main
    from birdspec.models.checkpoint import read_checkpoint, set_detection

    from helpers import make_run

    run = make_run(tmp_path / "run", tiny_stack_dataset)
    k = len(read_checkpoint(run / "checkpoints" / "best.pt").classes)
    flat = best_f1_threshold(np.full(6, 0.3), np.array([0, 1, 0, 1, 0, 0], bool))
    per_class = [flat[1]] + [best_f1_threshold(np.array([0.9, 0.1]), np.array([True, False]))[1]] * (k - 1)
    thresholds = (flat[0],) + (0.5,) * (k - 1)
    set_detection(run / "checkpoints" / "best.pt", Detection(thresholds, 1.0, "validation: test", "rule", tuple(per_class)))
    assert main(["info", str(run)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "(there:" in line]
    assert len(lines) == k and "did not separate it there, so it is never detected" in lines[0]
    assert not any("never detected" in line for line in lines[1:])


def test_choose_detection_counts_no_bird_samples_as_half_the_windows():
    k = 2
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int), np.full(20, k)]  # 80 bird windows, 20 no-bird samples (id K)
    logits = rng.normal(size=(100, k))
    logits[np.arange(80), y[:80]] += 4.0
    logits[80:, 0] += 1.0  # the no-bird samples lean to class 0
    det = choose_detection(logits, y, activation="softmax-background", temperature_scaling=False, chosen_on="test")
    assert len(det.thresholds) == k and det.temperature == 1.0 and det.chosen_on == "test" and "50%" in det.rule
    scores = scores_numpy(logits, "softmax-background")
    assert (scores[80:, 0] >= det.thresholds[0]).sum() == det.per_class[0]["fp_nocall"]
    fitted = choose_detection(logits, y, activation="softmax-background", temperature_scaling=True, chosen_on="test")
    assert fitted.temperature != 1.0
    assert positives(np.array([0, 2, 1]), 2).tolist() == [[True, False], [False, False], [False, True]]


def test_detection_round_trip_and_checks():
    det = Detection((0.2, 0.7), 1.5, "validation", "rule", ({"f1": 0.9}, {"f1": 0.8}))
    assert Detection.from_json(det.to_json(), num_classes=2, source="x") == det
    assert Detection.from_json(None, num_classes=2, source="x") is None
    with pytest.raises(CheckpointError, match="one threshold in \\[0, 1\\] per class"):
        Detection.from_json({"thresholds": [0.5]}, num_classes=2, source="x")
    with pytest.raises(CheckpointError, match="temperature"):
        Detection.from_json({"thresholds": [0.5, 0.5], "temperature": -1}, num_classes=2, source="x")
    assert describe_thresholds([0.3, 0.3]) == "0.3" and describe_thresholds([0.2, 0.64]) == "per class 0.2-0.64"


def test_per_class_thresholds_in_outputs():
    scores = np.array([[0.5, 0.4, 0.1], [0.2, 0.3, 0.5]], dtype=np.float32)
    thr = class_thresholds(None, num_classes=3, model_thresholds=[0.6, 0.3, 0.5])
    rows, ranks, cls = topk_indices(scores, min_conf=thr, top_k=3)
    assert list(zip(rows, cls, strict=True)) == [(0, 1), (1, 2), (1, 1)]  # class 0 at 0.5 is under its own 0.6
    assert class_thresholds(None, num_classes=3).tolist() == pytest.approx([0.1] * 3)  # an older model: 0.1
    assert class_thresholds(0.45, num_classes=3, model_thresholds=[0.6, 0.3, 0.5]).tolist() == pytest.approx([0.45] * 3)
    same = topk_indices(scores, min_conf=0.3, top_k=3)
    assert all((a == b).all() for a, b in zip(same, topk_indices(scores, min_conf=class_thresholds(0.3, num_classes=3), top_k=3), strict=True))
    with pytest.raises(ConfigError):
        class_thresholds([0.5, 0.5], num_classes=3)
    with pytest.raises(ConfigError):
        class_thresholds(1.5, num_classes=3)


def test_level_norm_keeps_level_and_silence_is_nothing():
    """Known answers of the level norm: digital silence and quiet noise under the floor give a flat map; the
    same call 40 dB quieter loses its contrast; stretching per window (instance) would hide both."""
    from birdspec.config import FrontendConfig
    from birdspec.features import build_frontend
    from birdspec.features.input_norm import LEVEL_FLOOR_DBFS, NUMPY_NORM_OPS, norm_settings, normalise, white_noise_db

    fe_cfg = FrontendConfig()
    fe = build_frontend(fe_cfg)
    sr = 32000
    rng = np.random.default_rng(0)
    t = np.arange(5 * sr) / sr
    call = (0.3 * np.sin(2 * np.pi * 3000 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    noise = (10 ** (-80 / 20) * rng.standard_normal(t.size)).astype(np.float32)  # under the -70 dBFS floor

    def spec(w: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return fe(torch.from_numpy(w)[None, None]).numpy()[0]

    white = spec((10 ** (-50 / 20) * rng.standard_normal(t.size)).astype(np.float32))
    assert np.median(white) == pytest.approx(white_noise_db(fe_cfg, dbfs=-50), abs=2.0)  # the floor's definition
    level = norm_settings("level", fe_cfg)
    assert level["floor_dbfs"] == LEVEL_FLOOR_DBFS
    for w in (np.zeros_like(call), noise):
        assert np.abs(normalise(NUMPY_NORM_OPS, spec(w), level)).max() < 1e-6
    loud = normalise(NUMPY_NORM_OPS, spec(call + noise), level)
    quiet = normalise(NUMPY_NORM_OPS, spec(0.01 * call + noise), level)
    assert loud.max() > quiet.max() + 1.0  # 40 dB quieter: the call stands out less
    inst = norm_settings("instance", fe_cfg)
    assert normalise(NUMPY_NORM_OPS, spec(noise), inst).std() > 0.5  # -80 dBFS noise stretched to about unit contrast
    with pytest.raises(ConfigError, match="needs a spectrogram in dB"):
        norm_settings("level", FrontendConfig.for_kind("pcen"))


def test_other_calls_are_deterministic_quiet_and_call_like():
    from birdspec.data.synthetic import other_calls

    a = other_calls(num_samples=5 * 32000, rng=np.random.default_rng(3))
    b = other_calls(num_samples=5 * 32000, rng=np.random.default_rng(3))
    assert a.dtype == np.float32 and a.shape == (160000,) and np.array_equal(a, b)
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
    frames = np.sqrt(np.mean(a[: 160000 // 1600 * 1600].reshape(-1, 1600) ** 2, axis=1))
    assert frames.max() > 10 * np.median(frames)  # calls stand out of the bed


def test_soundscape_summary_checks_stretches_with_per_class_thresholds():
    from birdspec.evaluation.soundscape_plot import summarize_detections

    calls = pd.DataFrame({"label": ["x"], "start_s": [1.0], "end_s": [2.0]})
    starts = np.arange(4) * 5.0
    pred = pd.DataFrame({"start_s": starts, "end_s": starts + 5.0, "x": [0.9, 0.2, 0.5, 0.1], "y": [0.05, 0.1, 0.1, 0.7]})
    s = summarize_detections(calls, pred, min_conf=[0.6, 0.8], duration_s=20.0,
                             stretches=[("silent", 5.0, 10.0), ("noise-only", 10.0, 20.0)])
    assert list(s.windows["outcome"]) == ["correct", "quiet", "quiet", "quiet"]  # y's 0.7 is under its 0.8
    assert s.threshold_text == "per class 0.6-0.8"
    assert "the silent stretch (5 s) and the noise-only stretch (10 s) stayed unlabelled" in s.text()
    s = summarize_detections(calls, pred, min_conf=0.4, stretches=[("noise-only", 10.0, 20.0)])
    assert "the noise-only stretch: 2 window(s) labelled" in s.text()
