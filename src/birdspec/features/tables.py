"""The numbers every spectrogram type is built from, in NumPy (no PyTorch): one definition each.

- the mel scale and filterbank (Slaney, as ``librosa.filters.mel(norm="slaney", htk=False)``);
- the analysis window (periodic Hann, centred in the FFT frame when shorter);
- :func:`filterbank`: the ``(rows, n_fft // 2 + 1)`` matrix a type applies to the power spectrum
  (mel filters; for ``linear`` the identity over the bins from ``fmin_hz`` to ``fmax_hz``);
- :func:`dct_matrix`: orthonormal DCT-II (MFCC);
- :func:`pcen_smoother`: the first-order IIR smoother of PCEN as a ``(frames, frames)`` matrix;
- :func:`frequency_axis`: what the rows of a type mean (Hz or coefficient index), for figures.

The torch module (:mod:`birdspec.features.torch_frontend`), the ONNX export and the NumPy CPU
path (:mod:`birdspec.features.numpy_frontend`) all take their tables from here.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from birdspec.config import FrontendConfig

_F_SP = 200.0 / 3  # Slaney: Hz per mel below 1 kHz (linear part)
_MIN_LOG_HZ = 1000.0  # where the log part starts
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freqs_hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    f = np.asanyarray(freqs_hz, dtype=np.float64)
    mels = f / _F_SP
    return np.where(f >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_band_edges_hz(*, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """``n_mels + 2`` band edges in Hz; band ``i`` spans edges ``[i, i + 2]`` and peaks at ``i + 1``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2))


def mel_filterbank(*, sample_rate_hz: int, n_fft: int, n_mels: int, fmin_hz: float, fmax_hz: float) -> npt.NDArray[np.float32]:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``.

    Same construction as ``librosa.filters.mel(norm="slaney", htk=False)``.
    """
    fft_freqs = np.linspace(0, sample_rate_hz / 2, 1 + n_fft // 2)
    edges = mel_band_edges_hz(n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz)
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights: npt.NDArray[np.float64] = np.maximum(0.0, np.minimum(lower, upper))
    enorm: npt.NDArray[np.float64] = 2.0 / (edges[2 : n_mels + 2] - edges[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


def mel_band_of(freq_hz: float, *, n_mels: int, fmin_hz: float, fmax_hz: float) -> int:
    """Index of the mel band whose centre is closest to ``freq_hz`` (for known-answer checks)."""
    centres = mel_band_edges_hz(n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz)[1:-1]
    return int(np.argmin(np.abs(hz_to_mel(centres) - hz_to_mel(freq_hz))))


def analysis_window(config: FrontendConfig) -> np.ndarray:
    """``(n_fft,)`` float32 periodic Hann window of ``win_length`` (default ``n_fft``), centred in the frame."""
    win_length = config.win_length or config.n_fft
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    if win_length < config.n_fft:  # centre the window in the FFT frame, as librosa does
        left = (config.n_fft - win_length) // 2
        window = np.pad(window, (left, config.n_fft - win_length - left))
    return window.astype(np.float32)


def filterbank(config: FrontendConfig) -> np.ndarray:
    """``(rows, n_fft // 2 + 1)`` float32: what the type sums from the power spectrum.

    Mel filters for logmel, pcen, mfcc and learnable-mel (its initial value); for linear the
    identity over the STFT bins between ``fmin_hz`` and ``fmax_hz``.
    """
    c = config
    if c.type.rows == "linear":
        lo, hi = c.linear_bins()
        fb = np.zeros((hi - lo, c.n_fft // 2 + 1), dtype=np.float32)
        fb[np.arange(hi - lo), np.arange(lo, hi)] = 1.0
        return fb
    return mel_filterbank(sample_rate_hz=c.sample_rate_hz, n_fft=c.n_fft, n_mels=c.n_mels, fmin_hz=c.fmin_hz, fmax_hz=c.fmax_hz)


def dct_matrix(n_out: int, n_in: int) -> npt.NDArray[np.float32]:
    """``(n_out, n_in)`` orthonormal DCT-II (as ``scipy.fft.dct(type=2, norm="ortho")``), float32."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis: npt.NDArray[np.float64] = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def pcen_coefficient(config: FrontendConfig) -> float:
    """The smoother's ``b`` for ``pcen_time_constant_s`` (as ``librosa.pcen``)."""
    t_frames = config.pcen_time_constant_s * config.sample_rate_hz / config.hop_length
    return float((np.sqrt(1.0 + 4.0 * t_frames**2) - 1.0) / (2.0 * t_frames**2))


def pcen_smoother(config: FrontendConfig, num_frames: int) -> np.ndarray:
    """``(T, T)`` float32 ``K`` with ``M = E @ K``: PCEN's smoother ``M[t] = b E[t] + (1 - b) M[t - 1]``.

    Started in its steady state on the first frame (``M[-1] = E[0]``, librosa's ``lfilter_zi``), so
    ``M[t] = (1 - b)^(t + 1) E[0] + sum_k<=t b (1 - b)^(t - k) E[k]``. As a matrix it is exact, runs as one
    product in NumPy and PyTorch, and exports to ONNX.
    """
    b = pcen_coefficient(config)
    t = np.arange(num_frames)
    lag = t[None, :] - t[:, None]  # [k, t] = t - k
    k = np.where(lag >= 0, b * (1.0 - b) ** np.maximum(lag, 0), 0.0)
    k[0] += (1.0 - b) ** (t + 1)
    return k.astype(np.float32)


def frequency_axis(config: FrontendConfig) -> tuple[np.ndarray, str]:
    """The value of each row and its unit: mel-band centres or bin frequencies in Hz, or coefficient index."""
    c = config
    if c.type.rows == "coefficients":
        return np.arange(c.n_mfcc, dtype=np.float64), "coefficient"
    if c.type.rows == "linear":
        lo, hi = c.linear_bins()
        return np.arange(lo, hi) * c.sample_rate_hz / c.n_fft, "Hz"
    return mel_band_edges_hz(n_mels=c.n_mels, fmin_hz=c.fmin_hz, fmax_hz=c.fmax_hz)[1:-1], "Hz"
