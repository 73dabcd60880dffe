"""The spectrogram types as one PyTorch module: raw waveforms -> spectrograms, on CPU or GPU.

:class:`Frontend` is the first layer of every birdspec CNN, so a checkpoint maps raw audio to
scores with exactly the features it was trained with, spectrograms are computed on the GPU when
training runs there, and an ONNX export carries the whole pipeline. Its numbers come from
:mod:`~birdspec.features.tables` and :func:`~birdspec.features.definition.finish`; the power
spectrum is ``torch.stft`` (``stft="torch"``, training) or a DFT as a strided ``conv1d``
(``stft="dft"``: the TorchScript ONNX exporter cannot export a complex STFT, and ONNX Runtime's own
STFT kernel is ~4x slower), computing only the FFT bins the filterbank uses.

The log-mel matches ``librosa.feature.melspectrogram`` (Slaney mel scale and normalisation,
periodic Hann window, centred frames) followed by ``librosa.power_to_db(ref=1.0, top_db=...)``,
except that the ``top_db`` floor is taken per example (per channel of each sample).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from birdspec.config import FrontendConfig
from birdspec.features import tables
from birdspec.features.definition import finish


class TorchOps:
    def log(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)

    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)

    def clamp_min(self, x: torch.Tensor, value: float) -> torch.Tensor:
        return torch.clamp(x, min=value)

    def maximum(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.maximum(x, y)

    def peak(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(-2, -1), keepdim=True)

    def matmul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


TORCH_OPS = TorchOps()


class TorchNormOps:
    """:class:`~birdspec.features.input_norm.NormOps` in PyTorch (``sort``: the ONNX exporter expresses it)."""

    def lower_median_last(self, x: torch.Tensor) -> torch.Tensor:
        k = (x.shape[-1] - 1) // 2
        return x.sort(dim=-1).values[..., k : k + 1]

    def mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.mean(dim=(-2, -1), keepdim=True), x.std(dim=(-2, -1), keepdim=True)

    def clamp_min(self, x: torch.Tensor, value: float) -> torch.Tensor:
        return torch.clamp(x, min=value)


TORCH_NORM_OPS = TorchNormOps()
STFT_MODES = ("torch", "dft")


class Frontend(nn.Module):
    """Waveforms ``(..., num_samples)`` -> spectrograms ``(..., num_bins, num_frames)`` of ``config.kind``.

    Any leading dimensions are kept: ``(B, C, T) -> (B, C, rows, frames)``; a 5 s window at 32 kHz
    gives ``128 x 321`` with the default log-mel. Always computes in float32 (also under autocast):
    dB of a half-precision power spectrum loses the floor.

    Attributes:
        lo / hi: the FFT bins ``[lo, hi)`` the filterbank uses.
        weights: the filterbank over those bins ``(rows, hi - lo)``; a trained parameter for
            ``learnable-mel`` (stored in checkpoints), a buffer otherwise (rebuilt from the config).
    """

    # registered in __init__ (buffers or a parameter): declared here for the type checker
    window: torch.Tensor
    weights: torch.Tensor
    dct: torch.Tensor | None
    dft: torch.Tensor

    def __init__(self, config: FrontendConfig | None = None, *, stft: str = "torch") -> None:
        super().__init__()
        if stft not in STFT_MODES:
            raise ValueError(f"stft must be one of {STFT_MODES}, got {stft!r}")
        self.config = config or FrontendConfig()
        self.stft = stft
        c = self.config
        fb = tables.filterbank(c)
        used = np.nonzero(np.abs(fb).sum(axis=0) > 0)[0]
        self.lo, self.hi = int(used[0]), int(used[-1]) + 1
        self.register_buffer("window", torch.from_numpy(tables.analysis_window(c)), persistent=False)
        weights = torch.from_numpy(np.ascontiguousarray(fb[:, self.lo : self.hi]))
        if c.type.learnable:
            self.weights = nn.Parameter(weights)
        else:
            self.register_buffer("weights", weights, persistent=False)
        if c.type.rows == "coefficients":
            self.register_buffer("dct", torch.from_numpy(tables.dct_matrix(c.n_mfcc, c.n_mels)), persistent=False)
        else:
            self.dct = None
        if stft == "dft":
            n = torch.arange(c.n_fft, dtype=torch.float64)
            k = torch.arange(self.lo, self.hi, dtype=torch.float64)
            angle = 2.0 * math.pi * torch.outer(k, n) / c.n_fft
            win = self.window.to(torch.float64)
            bases = torch.cat([torch.cos(angle) * win, -torch.sin(angle) * win])  # (2 nb, n_fft)
            self.register_buffer("dft", bases.to(torch.float32).unsqueeze(1), persistent=False)
        self._smoothers: dict[tuple[int, str], torch.Tensor] = {}

    def num_frames(self, num_samples: int) -> int:
        return self.config.num_frames(num_samples)

    def filterbank(self) -> torch.Tensor:
        """The effective filterbank over bins ``[lo, hi)`` (non-negative for the learnable type)."""
        return self.weights.abs() if isinstance(self.weights, nn.Parameter) else self.weights

    def full_filterbank(self) -> np.ndarray:
        """``(rows, n_fft // 2 + 1)`` float32: the effective filterbank over all bins (for exports)."""
        out = np.zeros((self.weights.shape[0], self.config.n_fft // 2 + 1), dtype=np.float32)
        out[:, self.lo : self.hi] = self.filterbank().detach().cpu().numpy()
        return out

    def power_spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """``(..., T) -> (..., hi - lo, frames)``: ``|STFT|^power`` of the bins the filterbank uses."""
        c = self.config
        lead = wave.shape[:-1]
        x = wave.reshape(-1, wave.shape[-1]).float()
        if self.stft == "torch":
            spec = torch.stft(x, n_fft=c.n_fft, hop_length=c.hop_length, window=self.window, center=c.center,
                              pad_mode=c.pad_mode, return_complex=True)[:, self.lo : self.hi]
            mag = spec.real.square() + spec.imag.square()
        else:
            y = x.unsqueeze(1)
            if c.center:
                half = c.n_fft // 2
                y = F.pad(y, (half, half), mode="constant" if c.pad_mode == "constant" else "reflect")
            y = F.conv1d(y, self.dft, stride=c.hop_length)  # (N, 2 nb, frames)
            nb = self.hi - self.lo
            mag = y[:, :nb] * y[:, :nb] + y[:, nb:] * y[:, nb:]
        if c.power != 2.0:
            mag = mag.pow(c.power / 2.0)
        return mag.reshape(*lead, mag.shape[-2], mag.shape[-1])

    def smoother(self, num_frames: int, device: torch.device) -> torch.Tensor:
        key = (num_frames, str(device))
        if key not in self._smoothers:
            self._smoothers[key] = torch.from_numpy(tables.pcen_smoother(self.config, num_frames)).to(device)
        return self._smoothers[key]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            energies = torch.matmul(self.filterbank(), self.power_spectrogram(wave))
            smoother: Any = self.smoother(energies.shape[-1], energies.device) if self.config.kind == "pcen" else None
            spec: torch.Tensor = finish(TORCH_OPS, energies, self.config, dct=self.dct, smoother=smoother)  # finish: any array type
            return spec

    def extra_repr(self) -> str:
        c = self.config
        return f"kind={c.kind}, sr={c.sample_rate_hz}, n_fft={c.n_fft}, hop={c.hop_length}, rows={c.num_bins()}, stft={self.stft}"


def build_frontend(config: FrontendConfig | None = None, *, stft: str = "torch") -> Frontend:
    """The frontend module of ``config`` (default: the study's log-mel)."""
    return Frontend(config, stft=stft)
