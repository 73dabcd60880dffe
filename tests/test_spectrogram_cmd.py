"""`birdspec spectrogram`: one stretch of a recording under each spectrogram type."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from birdspec.cli.main import main
from birdspec.config import SAMPLE_RATE_HZ

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

TONE_HZ = 4000.0


def _tone(path, *, seconds=3.0, freq_hz=TONE_HZ, sample_rate_hz=SAMPLE_RATE_HZ):
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    rng = np.random.default_rng(0)
    wave = 0.5 * np.sin(2 * np.pi * freq_hz * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, wave.astype(np.float32), sample_rate_hz)
    return path


def test_cli_writes_a_png_for_all_four_types(tmp_path, capsys):
    wav = _tone(tmp_path / "tone.wav", sample_rate_hz=44_100)  # resampled to 32 kHz on load
    out = tmp_path / "fig.png"
    code = main(["spectrogram", str(wav), "--start-s", "0.5", "--duration-s", "2",
                 "--frontend", "logmel,pcen,linear,mfcc", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "logmel, pcen, linear, mfcc" in capsys.readouterr().out


def test_frontend_option_applies_to_every_type(tmp_path):
    wav = _tone(tmp_path / "tone.wav", seconds=1.0)
    out = tmp_path / "fig.png"
    assert main(["spectrogram", str(wav), "--frontend", "logmel,mfcc", "--frontend-option", "n_mels=64",
                 "--frontend-option", "n_mfcc=20", "--out", str(out)]) == 0
    assert out.is_file()


def test_tone_is_brightest_in_its_mel_band():
    from birdspec.evaluation.spectrogram_plot import compute_spectrograms
    from birdspec.features.tables import mel_band_of

    t = np.arange(2 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    wave = (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    panels = {p.kind: p for p in compute_spectrograms(wave, ["logmel", "linear", "mfcc"], start_s=3.0)}
    logmel = panels["logmel"]
    c = logmel.config
    assert int(np.argmax(logmel.values.mean(axis=1))) == mel_band_of(TONE_HZ, n_mels=c.n_mels, fmin_hz=c.fmin_hz, fmax_hz=c.fmax_hz)
    assert logmel.row_unit == "Hz" and logmel.value_label == "dB"
    assert logmel.values.shape == (c.num_bins(), c.num_frames(wave.size))
    assert logmel.times_s[0] == 3.0 and np.isclose(logmel.times_s[1] - logmel.times_s[0], c.hop_length / c.sample_rate_hz)
    linear = panels["linear"]
    assert abs(linear.row_values[np.argmax(linear.values.mean(axis=1))] - TONE_HZ) <= SAMPLE_RATE_HZ / linear.config.n_fft
    mfcc = panels["mfcc"]
    assert mfcc.row_unit == "coefficient" and mfcc.values.shape[0] == mfcc.config.n_mfcc


def test_frequency_ticks_sit_at_the_true_band_centres():
    from birdspec.config import FrontendConfig
    from birdspec.evaluation.spectrogram_plot import _frequency_ticks
    from birdspec.features.tables import frequency_axis

    hz, _ = frequency_axis(FrontendConfig.for_kind("logmel"))
    positions, labels = _frequency_ticks(hz)
    assert "4" in labels
    pos = positions[labels.index("4")]
    assert np.isclose(np.interp(pos, np.arange(len(hz)), hz), 4000.0)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frontend", "logmel,spectral"], "unknown spectrogram type"),
        (["--start-s", "60"], "beyond the end"),
        (["--frontend-option", "no_such=1"], "unknown frontend option"),
        (["--frontend-option", "n_fft"], "KEY=VALUE"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, extra, message):
    wav = _tone(tmp_path / "tone.wav", seconds=1.0)
    assert main(["spectrogram", str(wav), "--out", str(tmp_path / "f.png"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_missing_file_and_folder_out_exit_2(tmp_path, capsys):
    assert main(["spectrogram", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "f.png")]) == 2
    assert "no such file" in capsys.readouterr().err
    wav = _tone(tmp_path / "tone.wav", seconds=1.0)
    assert main(["spectrogram", str(wav), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_parser_needs_out(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["spectrogram", "x.wav"])
    assert exc.value.code == 2
