"""The log-mel frontend: raw 32 kHz waveforms -> log-mel spectrograms.

The frontend is an ``nn.Module`` and the first stage of every birdspec model,
so a checkpoint maps raw audio to scores with exactly the features it was
trained with, spectrograms are computed on the GPU when training runs there,
and an ONNX export carries the whole pipeline.

It matches ``librosa.feature.melspectrogram`` (Slaney mel scale and
normalisation, Hann window, centered frames) followed by
``librosa.power_to_db(ref=1.0, top_db=...)``, except that the ``top_db``
floor is taken per example (per channel of each sample), not over a batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from birdspec.config import FrontendConfig


def hz_to_mel(freqs_hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    f = np.asanyarray(freqs_hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_band_edges_hz(*, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """``n_mels + 2`` band edges in Hz; band ``i`` spans edges ``[i, i + 2]`` and peaks at ``i + 1``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2))


def mel_filterbank(*, sample_rate_hz: int, n_fft: int, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``.

    Same construction as ``librosa.filters.mel(norm="slaney", htk=False)``.
    """
    fft_freqs = np.linspace(0, sample_rate_hz / 2, 1 + n_fft // 2)
    edges = mel_band_edges_hz(n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz)
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (edges[2 : n_mels + 2] - edges[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


def mel_band_of(freq_hz: float, *, n_mels: int, fmin_hz: float, fmax_hz: float) -> int:
    """Index of the mel band whose centre is closest to ``freq_hz`` (for known-answer checks)."""
    centres = mel_band_edges_hz(n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz)[1:-1]
    return int(np.argmin(np.abs(hz_to_mel(centres) - hz_to_mel(freq_hz))))


class LogMelFrontend(nn.Module):
    """Waveforms ``(..., num_samples)`` -> log-mel ``(..., n_mels, num_frames)`` in dB.

    Any leading dimensions are kept: ``(B, C, T) -> (B, C, n_mels, frames)``.
    A 5 s window at 32 kHz gives ``128 x 321`` with the default config.
    Runs on CPU and GPU, batched; always computes in float32 (also under
    autocast), because dB of a half-precision power spectrum loses the floor.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        super().__init__()
        self.config = config or FrontendConfig()
        c = self.config
        win_length = c.win_length or c.n_fft
        window = torch.hann_window(win_length, periodic=True, dtype=torch.float32)
        if win_length < c.n_fft:  # centre the window in the FFT frame, as librosa does
            left = (c.n_fft - win_length) // 2
            window = nn.functional.pad(window, (left, c.n_fft - win_length - left))
        self.register_buffer("window", window, persistent=False)
        fb = mel_filterbank(
            sample_rate_hz=c.sample_rate_hz, n_fft=c.n_fft, n_mels=c.n_mels, fmin_hz=c.fmin_hz, fmax_hz=c.fmax_hz
        )
        self.register_buffer("mel_fb", torch.from_numpy(fb), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        return self.config.num_frames(num_samples)

    def power_spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """``(..., T) -> (..., n_fft // 2 + 1, frames)`` |STFT|^power."""
        c = self.config
        lead = wave.shape[:-1]
        x = wave.reshape(-1, wave.shape[-1]).float()
        spec = torch.stft(
            x,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            window=self.window,
            center=c.center,
            pad_mode=c.pad_mode,
            return_complex=True,
        )
        mag = spec.real.square() + spec.imag.square()
        if c.power != 2.0:
            mag = mag.pow(c.power / 2.0)
        return mag.reshape(*lead, mag.shape[-2], mag.shape[-1])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.config
        with torch.autocast(device_type=wave.device.type, enabled=False):
            power = self.power_spectrogram(wave)
            mel = torch.matmul(self.mel_fb, power)
            db = 10.0 * torch.log10(torch.clamp(mel, min=c.amin))
            if c.top_db is not None:
                peak = db.amax(dim=(-2, -1), keepdim=True)
                db = torch.maximum(db, peak - c.top_db)
        return db

    def extra_repr(self) -> str:
        c = self.config
        return f"sr={c.sample_rate_hz}, n_fft={c.n_fft}, hop={c.hop_length}, n_mels={c.n_mels}, fmin={c.fmin_hz}, fmax={c.fmax_hz}"


def build_frontend(config: FrontendConfig | None = None) -> nn.Module:
    """The frontend module for ``config`` (log-mel is the only kind so far)."""
    return LogMelFrontend(config)
