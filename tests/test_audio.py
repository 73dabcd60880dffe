"""Decoding every format, any rate and channel count, windows and streaming (synthetic audio)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from birdspec import audio
from birdspec.errors import AudioError, ConfigError

from helpers import tone, write_audio

FORMATS = ["wav", "flac", "ogg", "mp3"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sample_rate_hz,channels", [(32000, 1), (48000, 2), (44100, 1), (22050, 2)])
def test_load_any_format_rate_channels(tmp_path, fmt, sample_rate_hz, channels):
    mono = tone(1000.0, duration_s=2.0, sample_rate_hz=sample_rate_hz)
    wave = mono if channels == 1 else np.stack([mono, mono], axis=1)
    path = write_audio(tmp_path / f"a.{fmt}", wave, sample_rate_hz)
    out = audio.load(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - 64_000) <= 1200  # mp3 encoder delay/padding
    spectrum = np.abs(np.fft.rfft(out[4000:36000]))
    assert abs(np.argmax(spectrum) * 32000 / 32000 - 1000.0) < 5.0  # 32000-sample slice: 1 Hz bins
    assert 0.1 < np.abs(out).max() < 0.5
    same, header = audio.load_with_header(path, offset_s=0.5, duration_s=1.0)  # the header read on the same open
    assert header == audio.info(path) and header.channels == channels and header.sample_rate_hz == sample_rate_hz
    np.testing.assert_array_equal(same, audio.load(path, offset_s=0.5, duration_s=1.0))


def test_window_read_decodes_only_the_window(tmp_path):
    sr = 48000
    t = np.arange(sr * 6) / sr
    wave = np.where(t < 3.0, np.sin(2 * np.pi * 500 * t), np.sin(2 * np.pi * 3000 * t)).astype(np.float32) * 0.3
    path = write_audio(tmp_path / "b.flac", wave, sr)
    seg = audio.load(path, offset_s=4.0, duration_s=1.0)
    assert seg.size == 32000
    assert np.argmax(np.abs(np.fft.rfft(seg))) == 3000  # 1 Hz bins over 1 s
    tail = audio.load(path, offset_s=5.5, duration_s=2.0)
    assert tail.size == 16000


def test_iter_blocks_concatenate_to_load(tmp_path):
    path = write_audio(tmp_path / "c.flac", tone(700.0, duration_s=7.3, sample_rate_hz=44100), 44100)
    blocks = list(audio.iter_blocks(path, block_s=2.0))
    assert all(b.size == 64000 for b in blocks[:-1])
    joined = np.concatenate(blocks)
    whole = audio.load(path)
    assert abs(joined.size - whole.size) <= 2
    n = min(joined.size, whole.size)
    np.testing.assert_allclose(joined[1000 : n - 1000], whole[1000 : n - 1000], atol=2e-3)


def test_one_second_file(tmp_path):
    path = write_audio(tmp_path / "short.wav", tone(1000.0, duration_s=1.0), 32000)
    assert audio.load(path).size == 32000
    assert audio.info(path).duration_s == pytest.approx(1.0)


def test_empty_and_corrupt_files_raise_audio_error(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    for p in (empty, corrupt, tmp_path / "missing.flac"):
        with pytest.raises(AudioError):
            audio.load(p)


def test_zero_frame_wav_is_an_error(tmp_path):
    path = tmp_path / "noframes.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 32000)
    with pytest.raises(AudioError):
        audio.load(path)


def test_mp3_with_trailing_junk_decodes(tmp_path):
    path = write_audio(tmp_path / "junk.mp3", tone(1000.0, duration_s=3.0, sample_rate_hz=44100), 44100)
    with open(path, "ab") as f:
        f.write(np.random.default_rng(1).bytes(6000))
    out = audio.load(path)
    assert out.size > 90_000


def test_bad_arguments_are_config_errors(tmp_path):
    path = write_audio(tmp_path / "x.wav", tone(1000.0, duration_s=1.0), 32000)
    with pytest.raises(ConfigError):
        audio.load(path, offset_s=-1)
    with pytest.raises(ConfigError):
        list(audio.iter_blocks(path, block_s=0))
