"""Models that know when nothing is there, on real recordings: a reed warbler model trained with the defaults.

``birdspec train --model mobilenetv2-seed --recipe small-data`` (the level input and no-bird samples are the
defaults) on the 98 xeno-canto reed warbler recordings of ../shared/data (skipped when absent; about 5 minutes
of 2 CPU cores, once per session; 2 threads always: sums differ with the thread count, and the tests before
this one set it). Known answers at the model's stored thresholds: no detection on digital silence,
white and pink noise from -80 to -20 dBFS, wind rumble, and the shared Great Plains toad recording (a real
animal that is not a bird: a known gap, xfail, not strict: some training runs pass it); a window of warbler
song scaled by 0.01 scores lower than at full level. (The demo model's tests, tests/test_nobird.py, check the
same on synthetic calls in every CI run.)
"""

from __future__ import annotations

import numpy as np
import pytest

from birdspec.audio import load
from birdspec.cli.main import main
from birdspec.config import SAMPLE_RATE_HZ
from birdspec.data.backgrounds import synth_background
from birdspec.models.checkpoint import run_checkpoint
from birdspec.prediction.predictor import Predictor

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SR = SAMPLE_RATE_HZ
NOBIRD_S = 30
TOAD = "recordings/osm-great_plains_toad.flac"


@pytest.fixture(scope="module")
def reed_model(reed_warblers, tmp_path_factory):
    """Best checkpoint of mobilenetv2-seed trained on the reed warblers with birdspec's small-data recipe."""
    out = tmp_path_factory.mktemp("reed")
    assert main(["-q", "prepare", str(reed_warblers), "--encoding", "window", "--out", str(out / "data")]) == 0
    assert main(["-q", "train", str(out / "data"), "--model", "mobilenetv2-seed", "--recipe", "small-data",
                 "--seed", "0", "--workers", "0", "--threads", "2", "--out", str(out / "run")]) == 0
    return run_checkpoint(out / "run", "best")


@pytest.fixture(scope="module")
def predictor(reed_model):
    with Predictor(reed_model) as p:
        yield p


@pytest.fixture(scope="module")
def all_scores(reed_model):
    with Predictor(reed_model, scores="all") as p:
        yield p


def _found(predictor: Predictor, wave: np.ndarray) -> list[dict]:
    table = predictor.predict_array(wave.astype(np.float32), SR)
    return table[["start_s", "label", "confidence"]].to_dict("records")


def test_reed_model_has_thresholds_and_a_level_input(predictor):
    assert predictor.thresholds_from_model and predictor.activation == "softmax-background"


@pytest.mark.parametrize("kind,levels", [
    ("silence", [None, -90]),
    ("white", [-80, -60, -40, -20]),
    ("pink", [-80, -60, -40, -20]),
    ("wind", [-60, -40, -20]),
])
def test_no_detection_on_silence_noise_and_wind(predictor, kind, levels):
    rng = np.random.default_rng(2026)
    for level in levels:
        wave = (np.zeros(NOBIRD_S * SR, np.float32) if level is None
                else synth_background(kind, num_samples=NOBIRD_S * SR, level_dbfs=level, rng=rng))
        assert _found(predictor, wave) == [], f"{kind} at {level} dBFS"


@pytest.mark.xfail(strict=False, reason="known gap (issue 27, open): with crops where the calls are, the defaults' model "
                   "names Great Reed Warbler in the toad's last window (where the trill stops and a distant chorus goes "
                   "on) in 4 of 5 trainings: with --threads 2 seeds 0, 1, 2 at 0.43, 0.76, 0.75 against 0.31, 0.56, "
                   "0.68; one earlier run 0.42 against 0.54); not strict: another CPU's arithmetic may pass it")
def test_no_detection_on_the_toad(predictor, shared_data):
    """Before crops where the calls are: Great Reed Warbler in 7 of the 9 windows (0.69-0.89); with them in 1 (the last,
    44.6 s, then zero-padded: 0.61-0.62); scored on the recording's last 5 s of real audio, lower (0.57, 0.42)."""
    path = shared_data / TOAD
    if not path.is_file():
        pytest.skip(f"{TOAD} not in shared data")
    assert predictor.predict_file(path).empty


def test_quiet_song_scores_lower_than_loud_song(all_scores, reed_warblers):
    """The loudest 5 s of a training recording, and the same audio at -40 dB: the top score drops."""
    path = sorted((reed_warblers / "train_short_audio").rglob("*.ogg"))[0]
    wave = load(path, sample_rate_hz=SR)
    n = 5 * SR
    energy = np.convolve(wave.astype(np.float64) ** 2, np.ones(SR), mode="valid")[: max(1, len(wave) - n + 1)]
    start = int(np.argmax(energy[::SR // 10])) * (SR // 10)
    window = wave[start:start + n]
    loud, quiet = (all_scores.predict_array(w.astype(np.float32), SR)[list(all_scores.classes)].to_numpy()[0]
                   for w in (window, window * 0.01))
    k = int(loud.argmax())
    assert quiet[k] < loud[k] - 0.05 and quiet.max() < loud.max()
