"""The demo's parts that run fast: the synthetic soundscape and its truth, detection scoring, the figure, settings.

(The whole ``birdspec demo`` trains two CNNs for over a minute; it is timed by hand, see README.md.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdspec.data.synthetic import CLASSES, make_soundscape
from birdspec.errors import ConfigError, DataError
from birdspec.evaluation.soundscape_plot import (
    plot_soundscape,
    score_columns,
    soundscape_section,
    spectrogram_db,
    summarize_detections,
    window_truth,
)

LABELS = [c.label for c in CLASSES]
SR = 32000


def test_soundscape_truth_matches_the_placed_calls_exactly():
    s = make_soundscape(40.0, seed=11, noise_level=0.0)  # no background: every non-zero sample is a call
    assert s.wave.dtype == np.float32 and s.wave.size == 40 * SR and s.duration_s == 40.0
    calls = s.calls
    assert list(calls.columns) == ["label", "start_s", "end_s", "peak_amplitude"]
    assert set(calls["label"]) == set(LABELS)  # every class before any repeats
    assert (calls["end_s"] > calls["start_s"]).all() and calls["start_s"].is_monotonic_increasing
    assert calls["end_s"].max() <= s.duration_s
    starts = np.rint(calls["start_s"].to_numpy() * SR).astype(int)
    ends = np.rint(calls["end_s"].to_numpy() * SR).astype(int)
    np.testing.assert_allclose(starts / SR, calls["start_s"])  # on the sample grid
    inside = np.zeros(s.wave.size, bool)
    for a, b in zip(starts, ends, strict=True):
        inside[a:b] = True
        edge = min(b - a, SR // 10)
        seg = s.wave[a:b]
        # tight bounds: sound right after the start and right before the end
        assert np.abs(seg[:edge]).max() > 0 and np.abs(seg[-edge:]).max() > 0
    assert not np.any(s.wave[~inside])  # nothing outside the listed calls
    for a, b in s.quiet:
        assert not np.any(s.wave[round(a * SR) : round(b * SR)])
    peaks = [np.abs(s.wave[a:b]).max() for a, b in zip(starts, ends, strict=True)]
    assert np.all(np.asarray(peaks) >= calls["peak_amplitude"].to_numpy() * 0.5)


def test_soundscape_is_deterministic_and_noisy_by_default():
    a, b = make_soundscape(20.0, seed=3), make_soundscape(20.0, seed=3)
    np.testing.assert_array_equal(a.wave, b.wave)
    pd.testing.assert_frame_equal(a.calls, b.calls)
    assert not np.array_equal(a.wave, make_soundscape(20.0, seed=4).wave)
    quiet = a.quiet[1]
    assert np.abs(a.wave[int(quiet[0] * SR) + 10 : int(quiet[1] * SR) - 10]).max() > 0  # background noise
    with pytest.raises(ConfigError):
        make_soundscape(2.0)


def test_window_truth_needs_a_real_overlap():
    calls = pd.DataFrame({"label": ["a", "b", "c"], "start_s": [1.0, 4.95, 7.0], "end_s": [2.0, 5.5, 7.05]})
    truth = window_truth(calls, [0.0, 5.0], [5.0, 10.0])
    # b has only 0.05 s in the first window; c is shorter than the minimum overlap but wholly inside
    assert truth == [{"a"}, {"b", "c"}]


def _predictions(rows: list[list[float]], labels=("x", "y")) -> pd.DataFrame:
    starts = np.arange(len(rows)) * 5.0
    df = pd.DataFrame({"file": "s.ogg", "window": range(len(rows)), "start_s": starts, "end_s": starts + 5.0})
    return pd.concat([df, pd.DataFrame(rows, columns=list(labels))], axis=1)


def test_summarize_detections_outcomes():
    calls = pd.DataFrame({"label": ["x", "y", "x"], "start_s": [1.0, 6.0, 16.0], "end_s": [2.0, 7.0, 17.0]})
    pred = _predictions([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45], [0.4, 0.6]])
    s = summarize_detections(calls, pred, min_conf=0.5, duration_s=25.0)
    assert list(s.windows["outcome"]) == ["correct", "wrong class", "false alarm", "correct", "false alarm"]
    pred2 = _predictions([[0.45, 0.55], [0.5, 0.5], [0.3, 0.7], [0.45, 0.55], [0.41, 0.59]])
    s2 = summarize_detections(calls, pred2, min_conf=0.6)
    assert list(s2.windows["outcome"]) == ["missed", "missed", "false alarm", "missed", "quiet"]
    per = s.per_class.set_index("label")
    assert per.loc["x", "calls"] == 2 and per.loc["x", "windows_with_calls"] == 2
    assert per.loc["x", "detected_windows"] == 3 and per.loc["x", "correct"] == 2
    assert per.loc["x", "precision"] == pytest.approx(2 / 3) and per.loc["x", "recall"] == 1.0
    assert per.loc["y", "correct"] == 0 and per.loc["y", "recall"] == 0.0
    assert s.n_calls == 3
    assert "2 labelled right, 1 wrong class" in s.text() and "2 labelled anyway" in s.text()


def test_score_columns():
    pred = _predictions([[0.9, 0.1]])
    assert score_columns(pred) == ["x", "y"]
    assert score_columns(pred, ["y"]) == ["y"]
    with pytest.raises(DataError):
        score_columns(pred, ["z"])
    with pytest.raises(DataError):
        score_columns(pred[["file", "window", "start_s", "end_s"]])


def test_spectrogram_db_finds_a_tone():
    t = np.arange(SR) / SR
    db, freqs, times = spectrogram_db(np.sin(2 * np.pi * 3000 * t).astype(np.float32), SR)
    assert db.shape == (freqs.size, times.size) and db.max() == 0.0 and db.min() >= -80.0
    assert abs(freqs[db[:, times.size // 2].argmax()] - 3000) < SR / 1024
    assert times[1] - times[0] == pytest.approx(256 / SR)


def test_plot_soundscape_writes_a_png(tmp_path):
    s = make_soundscape(30.0, seed=5)
    starts = np.arange(0, 30, 5.0)
    truth = window_truth(s.calls, starts, starts + 5)
    rng = np.random.default_rng(0)
    rows = []
    for t in truth:
        p = rng.dirichlet(np.ones(len(LABELS)))
        if t:
            p = 0.2 * p
            p[LABELS.index(min(t))] += 0.8
        rows.append(p)
    pred = _predictions(rows, LABELS)
    png = plot_soundscape(s.wave, SR, s.calls, pred, tmp_path / "f" / "soundscape.png", min_conf=0.5, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    no_truth = plot_soundscape(s.wave, SR, None, pred, tmp_path / "no_truth.png")
    assert no_truth.is_file()
    summary = summarize_detections(s.calls, pred, duration_s=s.duration_s)
    assert summary.count("correct") == sum(1 for t in truth if t)
    section = soundscape_section(png, summary, model="m", folder=tmp_path)
    assert section.figures == [png] and len(section.table) == len(LABELS) and "30 s" in section.text


def test_demo_config_rejects_bad_settings():
    from birdspec.demo import DEMO_MODELS, DemoConfig

    assert [m.name for m in DEMO_MODELS] == ["mobilenetv2-seed", "resnet18"]
    DemoConfig(soundscape_s=0)
    for bad in ({"per_class": 2}, {"epochs": 0}, {"soundscape_s": 3}, {"crop_s": 6.0}, {"threads": 0},
                {"min_duration_s": 10.0, "max_duration_s": 5.0}, {"detect_min_conf": 1.5}):
        with pytest.raises(ConfigError):
            DemoConfig(**bad)


def test_demo_cli_flags_parse():
    from birdspec.cli.main import build_parser

    args = build_parser().parse_args(["demo", "--out", "x", "--soundscape-s", "0", "--epochs", "2", "--per-class", "6"])
    assert args.soundscape_s == 0 and args.epochs == 2 and args.per_class == 6
