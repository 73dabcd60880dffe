"""Synthetic soundscapes with known truth (issue 17, part 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdspec.config import EncodingConfig
from birdspec.data.soundscape import CALLS_FILE, TRUTH_FILE, SoundscapeConfig, make_soundscapes, truth_table
from birdspec.errors import ConfigError

from helpers import write_prepared


def test_truth_table_known_answer():
    calls = pd.DataFrame({
        "audio_id": ["s", "s", "s", "s"],
        "label": ["a", "b", "a", "c"],
        "start_s": [3.0, 9.7, 12.0, 19.6],
        "end_s": [6.0, 12.0, 13.0, 20.0],
    })
    truth = truth_table(calls, {"s": 20.0, "quiet": 5.0}, window_s=5.0, min_overlap_s=0.5)
    assert truth["row_id"].tolist() == ["s_5", "s_10", "s_15", "s_20", "quiet_5"]
    # a: [3, 6) overlaps 0-5 by 2 s and 5-10 by 1 s; b: [9.7, 12) overlaps 5-10 by only 0.3 s; c: 0.4 s < 0.5 s
    assert truth["birds"].tolist() == ["a", "a", "a b", "nocall", "nocall"]
    assert truth_table(calls, {"s": 20.0}, min_overlap_s=0.3)["birds"].tolist() == ["a", "a b", "a b", "c"]


def _brute_force_truth(calls: pd.DataFrame, stem: str, duration_s: float, min_overlap_s: float) -> list[str]:
    out = []
    for k in range(int(duration_s // 5)):
        birds = set()
        for c in calls[calls["audio_id"] == stem].itertuples():
            if min(c.end_s, 5 * k + 5) - max(c.start_s, 5 * k) >= min_overlap_s:
                birds.add(c.label)
        out.append(" ".join(sorted(birds)) or "nocall")
    return out


def test_soundscapes_of_one_fold_match_their_placed_calls(tmp_path):
    from birdspec.data.prepared import PreparedDataset
    from birdspec.evaluation.scoring import score_soundscapes

    ds = write_prepared(tmp_path / "ds", duration_s=4.0, folds=3, per_class=6,
                        encoding=EncodingConfig(name="window", window_s=1.0, short_policy="pad"))
    cfg = SoundscapeConfig(duration_s=30.0, event_s=(1.0, 3.0), gap_s=(0.0, 9.0), overlap_probability=0.5, seed=3)
    made = make_soundscapes(ds, tmp_path / "ss", fold=1, count=3, config=cfg, progress=False)
    truth = pd.read_csv(tmp_path / "ss" / TRUTH_FILE)
    calls = pd.read_csv(tmp_path / "ss" / CALLS_FILE)
    assert len(truth) == 3 * 6 and len(calls) > 6
    for path in made.audio:
        assert path.suffix == ".flac" and sf.info(str(path)).frames == 30 * 32000
        rows = truth[truth["audio_id"] == path.stem]
        assert rows["birds"].tolist() == _brute_force_truth(calls, path.stem, 30.0, cfg.min_overlap_s)
    m = PreparedDataset(ds).manifest
    assert set(calls["source_id"]) <= set(m.loc[m["fold"] == 1, "id"])  # honest: only fold 1's recordings
    assert (calls["snr_db"].between(-5, 20)).all() and (calls["end_s"] - calls["start_s"] >= cfg.min_overlap_s).all()
    starts = calls.sort_values("start_s")
    assert (starts["start_s"].to_numpy()[1:] < starts["end_s"].to_numpy()[:-1]).any()  # some calls overlap
    assert {"nocall"} < set(truth["birds"])  # windows without a call, and windows with one
    perfect = score_soundscapes(truth[["row_id", "birds"]], tmp_path / "ss" / TRUTH_FILE)
    assert perfect.f1 == 1.0 and perfect.missing == 0
    again = make_soundscapes(ds, tmp_path / "ss2", fold=1, count=1, config=cfg, progress=False)
    assert again.calls.equals(made.calls[made.calls["audio_id"] == "fold1-000"].reset_index(drop=True))  # seeded


def test_soundscape_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="multiple"):
        SoundscapeConfig(duration_s=12.0)
    with pytest.raises(ConfigError):
        SoundscapeConfig(snr_db=(20.0, -5.0))
    ds = write_prepared(tmp_path / "ds", duration_s=2.0, per_class=3)
    with pytest.raises(ConfigError, match="no folds"):
        make_soundscapes(ds, tmp_path / "ss", fold=0, count=1, progress=False)


def test_soundscape_cli(tmp_path, capsys):
    from birdspec.cli.main import main

    ds = write_prepared(tmp_path / "ds", duration_s=4.0, folds=2, per_class=4,
                        encoding=EncodingConfig(name="window", window_s=1.0, short_policy="pad"))
    code = main(["soundscape", "make", str(ds), "--fold", "0", "--out", str(tmp_path / "ss"), "--count", "1",
                 "--duration-s", "20", "--event-s", "1,3", "--no-progress"])
    assert code == 0 and "1 soundscapes" in capsys.readouterr().out
    assert main(["soundscape", "make", str(ds), "--fold", "0", "--out", str(tmp_path / "x"), "--duration-s", "7"]) == 2
    assert np.isfinite(sf.read(str(tmp_path / "ss" / "audio" / "fold0-000.flac"))[0]).all()
