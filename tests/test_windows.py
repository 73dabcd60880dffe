"""Windowing rules (pure functions) and the streaming windower that must follow them."""

from __future__ import annotations

import numpy as np
import pytest

from birdspec.errors import ConfigError
from birdspec.prediction.windower import Chunk, End, Short, Windower
from birdspec.windowing import (
    PARTIAL_SOURCES,
    WindowGeometry,
    clip_times,
    context_starts,
    fit_window,
    frame,
    full_window_starts,
    num_sample_windows,
    partial_audio_start,
    sample_window_starts,
    window_bounds,
)


def _times(df):
    return [(round(a, 6), round(b, 6), bool(p)) for a, b, p in zip(df["start_s"], df["end_s"], df["partial"], strict=True)]


# --------------------------------------------------------------------------- training / embedding windows


def test_full_windows_at_every_hop():
    assert full_window_starts(num_samples=10, window_samples=4, hop_samples=3).tolist() == [0, 3, 6]
    assert full_window_starts(num_samples=3, window_samples=4, hop_samples=3).tolist() == []
    assert full_window_starts(num_samples=8, window_samples=4, hop_samples=4).tolist() == [0, 4]


@pytest.mark.parametrize("n, policy, starts", [
    (12, "pad", [0, 5]),      # the trailing 2 samples are dropped for training
    (12, "drop", [0, 5]),
    (3, "pad", [0]),          # shorter than a window: one filled window...
    (3, "tile", [0]),
    (3, "drop", []),          # ...unless the policy drops it
    (0, "pad", []),
    (5, "drop", [0]),
])
def test_sample_windows_rule(n, policy, starts):
    assert sample_window_starts(num_samples=n, window_samples=5, short_policy=policy).tolist() == starts
    assert num_sample_windows(num_samples=n, window_samples=5, short_policy=policy) == len(starts)


def test_frame_fills_short_audio_by_policy():
    wave = np.arange(1, 4, dtype=np.float32)
    np.testing.assert_array_equal(frame(wave, window_samples=5)[0], [[1, 2, 3, 0, 0]])
    np.testing.assert_array_equal(frame(wave, window_samples=5, short_policy="tile")[0], [[1, 2, 3, 1, 2]])
    assert frame(wave, window_samples=5, short_policy="drop")[0].shape == (0, 5)
    windows, starts = frame(np.arange(10, dtype=np.float32), window_samples=4, hop_samples=3)
    assert starts.tolist() == [0, 3, 6] and windows[2].tolist() == [6, 7, 8, 9]
    assert frame(np.zeros(0, np.float32), window_samples=4)[0].shape == (1, 4)  # empty audio: one silent window


def test_fit_window_from_a_start():
    wave = np.arange(1, 4, dtype=np.float32)
    assert fit_window(wave, length=4, fill="tile", start=2).tolist() == [3, 1, 2, 3]
    assert fit_window(wave, length=4, fill="pad", start=1).tolist() == [2, 3, 0, 0]
    assert fit_window(np.arange(10, dtype=np.float32), length=3, fill="pad", start=4).tolist() == [4, 5, 6]


# --------------------------------------------------------------------------- prediction windows


def test_full_windows_and_partial_tail_kept():
    assert _times(clip_times(duration_s=12.3, window_s=5)) == [(0, 5, False), (5, 10, False), (10, 12.3, True)]


def test_short_tail_dropped_and_exact_fit():
    assert _times(clip_times(duration_s=10.6, window_s=5)) == [(0, 5, False), (5, 10, False)]
    assert _times(clip_times(duration_s=10.0, window_s=5)) == [(0, 5, False), (5, 10, False)]
    assert _times(clip_times(duration_s=11.0, window_s=5)) == [(0, 5, False), (5, 10, False), (10, 11, True)]


def test_recording_shorter_than_a_window():
    assert _times(clip_times(duration_s=3.0, window_s=5)) == [(0, 3, True)]
    assert _times(clip_times(duration_s=0.5, window_s=5)) == []
    assert _times(clip_times(duration_s=0.0, window_s=5)) == []
    assert _times(clip_times(duration_s=0.5, window_s=5, min_partial_s=0.25)) == [(0, 0.5, True)]


def test_hop_shorter_than_window():
    # full windows at 0, 2.5, 5; the next (7.5) runs past 12 s and reaches new audio -> kept, ends at 12
    assert _times(clip_times(duration_s=12, window_s=5, hop_s=2.5)) == [
        (0, 5, False), (2.5, 7.5, False), (5, 10, False), (7.5, 12, True)
    ]
    # the last full window ends exactly at the end: the partial one would add no audio
    assert _times(clip_times(duration_s=10, window_s=5, hop_s=2.5)) == [(0, 5, False), (2.5, 7.5, False), (5, 10, False)]


def test_hop_longer_than_window():
    assert _times(clip_times(duration_s=12, window_s=2, hop_s=5)) == [(0, 2, False), (5, 7, False), (10, 12, False)]
    assert _times(clip_times(duration_s=11.5, window_s=2, hop_s=5)) == [(0, 2, False), (5, 7, False), (10, 11.5, True)]


def test_bad_arguments():
    with pytest.raises(ConfigError):
        clip_times(duration_s=10, window_s=0)
    with pytest.raises(ConfigError):
        clip_times(duration_s=10, window_s=5, hop_s=-1)
    with pytest.raises(ConfigError):
        clip_times(duration_s=-1, window_s=5)


def test_fit_window():
    x = np.arange(1, 4, dtype=np.float32)
    assert fit_window(x, length=7, fill="pad").tolist() == [1, 2, 3, 0, 0, 0, 0]
    assert fit_window(x, length=7, fill="tile").tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert fit_window(x, length=2, fill="pad").tolist() == [1, 2]
    assert fit_window(np.zeros(0, np.float32), length=3, fill="tile").tolist() == [0, 0, 0]


def test_context_starts_centre_and_trailing():
    # 12 windows, 10 per context: window i sits 5th (centre) unless the edges push the context inside
    assert context_starts(num_windows=12, context_windows=10, stride=1).tolist() == [0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2]
    assert context_starts(num_windows=12, context_windows=10, stride=1, position="trailing").tolist() == [0] * 10 + [1, 2]
    assert context_starts(num_windows=10, context_windows=10, stride=1).tolist() == [0] * 10
    # hop = window / 2: contexts take every 2nd grid window, spanning 18 grid steps
    s = context_starts(num_windows=25, context_windows=10, stride=2)
    assert s.tolist() == np.clip(np.arange(25) - 8, 0, 6).tolist()
    with pytest.raises(ConfigError):
        context_starts(num_windows=9, context_windows=10, stride=1)


def _stream(num_samples: int, block: int, g: WindowGeometry, hold: int = 0):
    rng = np.random.default_rng(num_samples)
    wave = rng.standard_normal(num_samples).astype(np.float32)
    w = Windower(0, g, hold_samples=hold)
    items = []
    for i in range(0, num_samples, block):
        items += w.push(wave[i : i + block])
    items += w.finish()
    return wave, items


@pytest.mark.parametrize("source", PARTIAL_SOURCES)
@pytest.mark.parametrize("hop", [5, 3, 7])
@pytest.mark.parametrize("num_samples", [0, 4, 5, 12, 13, 33, 50, 51])
@pytest.mark.parametrize("block", [1, 4, 6, 100])
def test_streaming_windower_matches_window_bounds(hop, num_samples, block, source):
    g = WindowGeometry(window_samples=5, hop_samples=hop, min_partial_samples=2, fill="pad", partial_source=source)
    wave, items = _stream(num_samples, block, g)
    chunks = [i for i in items if isinstance(i, Chunk)]
    assert isinstance(items[-1], End) and items[-1].num_samples == num_samples
    starts = np.concatenate([c.starts for c in chunks]) if chunks else np.zeros(0, int)
    ends = np.concatenate([c.ends for c in chunks]) if chunks else np.zeros(0, int)
    expected = window_bounds(num_samples=num_samples, geometry=g)
    assert starts.tolist() == expected[:, 0].tolist()
    assert ends.tolist() == expected[:, 1].tolist()
    waves = np.concatenate([c.waves for c in chunks]) if chunks else np.zeros((0, 5))
    for (a, b), row in zip(expected, waves, strict=True):
        if b - a < 5:  # the partial window
            a = partial_audio_start(num_samples=num_samples, tail_start=int(a), geometry=g)
        assert np.array_equal(row, fit_window(wave[a:b], length=5, fill="pad"))


def test_a_partial_window_is_scored_on_the_recordings_last_window_length_of_audio():
    """12 samples, windows of 5: [0, 5), [5, 10), then [10, 12) scored on the audio [7, 12) (``end``, the default),
    or on its own 2 samples and 3 zeros (``own``); a recording shorter than a window is always its own, padded."""
    wave = np.arange(1, 13, dtype=np.float32)
    for source, last in (("end", [8, 9, 10, 11, 12]), ("own", [11, 12, 0, 0, 0])):
        g = WindowGeometry(window_samples=5, hop_samples=5, min_partial_samples=2, partial_source=source)
        w = Windower(0, g)
        chunks = [i for i in [*w.push(wave[:7]), *w.push(wave[7:]), *w.finish()] if isinstance(i, Chunk)]
        assert (chunks[-1].starts.tolist(), chunks[-1].ends.tolist()) == ([10], [12])  # reported with its true times
        assert chunks[-1].waves[0].tolist() == last
    assert partial_audio_start(num_samples=3, tail_start=0, geometry=WindowGeometry(5, 5, 2)) == 0
    with pytest.raises(ConfigError, match="partial_source"):
        WindowGeometry(5, 5, 2, partial_source="shift")


def test_streaming_windower_holds_short_stack_files():
    g = WindowGeometry(window_samples=5, hop_samples=5, min_partial_samples=2)
    wave, items = _stream(23, 4, g, hold=50)  # shorter than a 10-window context
    assert isinstance(items[0], Short) and np.array_equal(items[0].wave, wave)
    assert items[0].bounds.tolist() == [[0, 5], [5, 10], [10, 15], [15, 20], [20, 23]]
    wave, items = _stream(57, 4, g, hold=50)  # long enough: plain windows
    assert not any(isinstance(i, Short) for i in items)
    assert sum(len(i.starts) for i in items if isinstance(i, Chunk)) == 12  # 11 full + a 2-sample tail
