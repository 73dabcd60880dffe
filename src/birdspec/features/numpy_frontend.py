"""The spectrogram in NumPy/SciPy, for fast CPU prediction without PyTorch.

:class:`NumpyFrontend` computes the same numbers as :class:`~birdspec.features.Frontend`
(to ~1e-5 dB, every spectrogram type; a test checks it against the torch module). The input
normalisation that follows is :func:`birdspec.features.input_norm.normalise` with NumPy's operations.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import math
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.config import FrontendConfig
from birdspec.errors import ConfigError
from birdspec.features import tables
from birdspec.features.definition import NUMPY_OPS, finish

FRAMES_PER_STEP = 128
"""STFT frames transformed together: ~0.5 MB per work buffer, so the windowed frames, their
spectrum and its squares stay in a core's L2 cache (measured on a 2-core AMD EPYC, AVX2:
64 frames is ~25 % faster than a whole 5 s window of 321 frames at a time)."""

_GROUP_COST = 1024
"""Multiply-adds per frame one more mel-product call is worth (its overhead), for :func:`_mel_groups`."""



_POCKETFFT: list[Any] = []  # [module or None], filled on first use


def _pocketfft() -> Any | None:
    """SciPy's pocketfft extension (``scipy.fft``'s engine), loaded without importing ``scipy.fft``.

    ``import scipy.fft`` costs 0.2-0.4 s of start-up (it pulls in ``scipy.special``), which is
    most of what a short recording takes to score; the extension alone loads in ~1 ms and
    gives bit-identical transforms. None when it cannot be found or loaded (then ``scipy.fft``).
    """
    if _POCKETFFT:
        return _POCKETFFT[0]
    mod = None
    name = "scipy.fft._pocketfft.pypocketfft"
    try:
        mod = sys.modules.get(name)
        if mod is None:
            spec = importlib.util.find_spec("scipy")  # locates the package without importing it
            where = list(spec.submodule_search_locations or []) if spec is not None else []
            for suffix in importlib.machinery.EXTENSION_SUFFIXES if where else []:
                f = Path(where[0]) / "fft" / "_pocketfft" / f"pypocketfft{suffix}"
                if f.is_file():
                    loader = importlib.machinery.ExtensionFileLoader(name, str(f))
                    ext_spec = importlib.util.spec_from_file_location(name, str(f), loader=loader)
                    if ext_spec is None:  # not with an explicit loader; then scipy.fft
                        break
                    mod = importlib.util.module_from_spec(ext_spec)
                    loader.exec_module(mod)
                    break
        if mod is not None:  # the call convention of scipy.fft._pocketfft.basic.r2c: (x, axes, forward, norm, out, workers)
            probe = mod.r2c(np.ones((2, 8), dtype=np.float32), (1,), True, 0, None, 1)
            if probe.dtype != np.complex64 or probe.shape != (2, 5) or not np.allclose(probe[:, 0], 8.0):
                mod = None
    except Exception:  # noqa: BLE001 - any problem: use scipy.fft
        mod = None
    _POCKETFFT.append(mod)
    return mod


def _rfft_function() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``rfft(frames (k, n_fft) float32, out (k, n_fft//2+1) complex64) -> complex64 spectrum``."""
    pf = _pocketfft()
    if pf is not None:
        return lambda a, out: pf.r2c(a, (1,), True, 0, out, 1)
    try:
        import scipy.fft as sfft  # vectorised single-precision FFT (numpy.fft's float32 path is ~5x slower)

        return lambda a, out: sfft.rfft(a, axis=-1)
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return lambda a, out: np.fft.rfft(a, axis=-1).astype(np.complex64)


def _mel_groups(weights: np.ndarray) -> list[tuple[int, int, int, int, np.ndarray]]:
    """Split the filterbank ``(n_mels, rows)`` into consecutive mel-row groups with the rows each touches.

    Returns ``[(m0, m1, a, b, w)]``: mels ``m0:m1`` are ``w @ x[a:b]`` with ``w = weights[m0:m1, a:b]``
    (C-contiguous). Every mel belongs to exactly one group, so each group's product is written straight
    into its rows of the output (no accumulation). The split minimises the multiply-adds of the
    products plus :data:`_GROUP_COST` per group (dynamic programming over the group edges).
    """
    n_mels, rows = weights.shape
    nz = np.abs(weights) > 0
    has = nz.any(axis=1)
    first = np.where(has, nz.argmax(axis=1), rows).tolist()
    last = np.where(has, rows - nz[:, ::-1].argmax(axis=1), 0).tolist()
    best = [0.0] + [math.inf] * n_mels
    cut = [0] * (n_mels + 1)
    for m1 in range(1, n_mels + 1):
        a, b = rows, 0
        for m0 in range(m1 - 1, -1, -1):
            a, b = min(a, first[m0]), max(b, last[m0])
            cost = best[m0] + (m1 - m0) * max(0, b - a) + _GROUP_COST
            if cost < best[m1]:
                best[m1], cut[m1] = cost, m0
    edges = [n_mels]
    while edges[-1] > 0:
        edges.append(int(cut[edges[-1]]))
    edges.reverse()
    out = []
    for m0, m1 in zip(edges[:-1], edges[1:], strict=True):
        a, b = min(first[m0:m1]), max(last[m0:m1])
        if b <= a:  # mels without any weight (an empty band): a zero product
            a, b = 0, 1
        out.append((m0, m1, a, b, np.ascontiguousarray(weights[m0:m1, a:b], dtype=np.float32)))
    return out


class NumpyFrontend:
    """:class:`~birdspec.features.Frontend` in NumPy/SciPy for the CPU, without PyTorch, for every type.

    ``(n, T) float32 -> (n, rows, frames) float32``: ``energies = filterbank @ |STFT|^power`` computed
    here, then the type's :func:`~birdspec.features.definition.finish` with NumPy (the one definition
    the torch module uses too); the same numbers as the torch frontend to ~1e-5 dB (tests check every
    type). Faster on a CPU because it

    - transforms :data:`FRAMES_PER_STEP` frames at a time in reused buffers (they stay in cache),
    - keeps only the FFT bins the filterbank uses (bins up to ``fmax_hz``) and takes
      ``re^2 + im^2`` and the mel sum in one product (the filterbank rows are interleaved
      to match the real/imaginary interleave of the complex spectrum),
    - multiplies by the filterbank in mel-row groups that each touch only their own bins
      (each FFT bin feeds at most two mel filters), writing ``(n_mels, frames)`` directly
      into the output (no transpose),
    - takes the vectorised natural log for ``10 log10``.

    Args:
        config: the checkpoint's frontend.
        window: ``(n_fft,)`` analysis window (:func:`~birdspec.features.tables.analysis_window`).
        filterbank: ``(rows, n_fft // 2 + 1)`` (the torch frontend's effective filterbank: learned for
            ``learnable-mel``).
        chunk_windows: windows per task of the worker threads (1 is fastest).
        threads: worker threads over chunks (NumPy, SciPy and BLAS release the GIL).
    """

    def __init__(self, config: FrontendConfig, *, window: np.ndarray, filterbank: np.ndarray, chunk_windows: int = 1, threads: int = 1) -> None:
        self._rfft = _rfft_function()
        self.config = config
        self.window = np.ascontiguousarray(window, dtype=np.float32)
        if self.window.shape != (config.n_fft,):
            raise ConfigError(f"the analysis window has shape {self.window.shape}; expected ({config.n_fft},)")
        fb = np.asarray(filterbank, dtype=np.float32)
        used = np.nonzero(np.abs(fb).sum(axis=0) > 0)[0]
        if used.size == 0:
            raise ConfigError("the filterbank is empty; check fmin_hz/fmax_hz of the frontend")
        self.lo, self.hi = int(used[0]), int(used[-1]) + 1
        self.rows = fb.shape[0]
        self.num_bins = config.num_bins()
        self._dct = tables.dct_matrix(config.n_mfcc, config.n_mels) if config.type.rows == "coefficients" else None
        self._smoothers: dict[int, np.ndarray] = {}
        fbr = fb[:, self.lo : self.hi]  # (n_mels, nb)
        self._interleaved = config.power == 2.0  # |X|^2 = re^2 + im^2: interleaved weights take both squares at once
        self._groups = _mel_groups(np.repeat(fbr, 2, axis=1) if self._interleaved else fbr)
        self.chunk_windows = max(1, int(chunk_windows))
        self.threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        # BLAS must stay single-threaded here: the mel products are small, and a
        # multi-threaded OpenBLAS inside our worker threads is ~5x slower.
        try:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        except ImportError:  # pragma: no cover - comes with scikit-learn
            self._blas = None

    def num_frames(self, num_samples: int) -> int:
        return self.config.num_frames(num_samples)

    def _buffers(self, num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This thread's work buffers: the padded window, windowed frames, spectrum, squared spectrum."""
        c = self.config
        padded = num_samples + (2 * (c.n_fft // 2) if c.center else 0)
        bufs = getattr(self._local, "bufs", None)
        if bufs is None or bufs[0].shape[0] != padded:
            steps = min(FRAMES_PER_STEP, max(1, self.num_frames(num_samples)))
            cols = 2 * (self.hi - self.lo) if self._interleaved else self.hi - self.lo
            bufs = (
                np.zeros(padded, dtype=np.float32),
                np.empty((steps, c.n_fft), dtype=np.float32),
                np.empty((steps, c.n_fft // 2 + 1), dtype=np.complex64),
                np.empty((steps, cols), dtype=np.float32),
            )
            self._local.bufs = bufs
        return bufs

    def _one(self, x: np.ndarray, out: np.ndarray) -> None:
        """One window ``x (T,)`` -> ``out (num_bins, frames)``."""
        c = self.config
        xp, frames_buf, spec_buf, sq_buf = self._buffers(x.shape[0])
        energies = np.empty((self.rows, out.shape[1]), dtype=np.float32) if self.rows != self.num_bins else out
        if c.center:
            half = c.n_fft // 2
            xp[half : half + x.shape[0]] = x
            if c.pad_mode == "reflect":
                xp[:half] = x[half:0:-1]
                xp[half + x.shape[0] :] = x[-2 : -half - 2 : -1]
            # constant: the edges were zeroed when the buffer was made and are never written
        else:
            xp[:] = x
        nf = out.shape[1]
        frames = np.lib.stride_tricks.sliding_window_view(xp, c.n_fft)[:: c.hop_length][:nf]
        step = frames_buf.shape[0]
        for f0 in range(0, nf, step):
            f1 = min(nf, f0 + step)
            fw = np.multiply(frames[f0:f1], self.window, out=frames_buf[: f1 - f0])
            spec = self._rfft(fw, spec_buf[: f1 - f0])  # (k, n_fft//2+1) complex64
            if self._interleaved:
                sq = np.square(spec.view(np.float32)[:, 2 * self.lo : 2 * self.hi], out=sq_buf[: f1 - f0])
            else:  # as torch: (re^2 + im^2) ** (power / 2)
                re_im = np.square(spec.view(np.float32)[:, 2 * self.lo : 2 * self.hi])
                sq = np.add(re_im[:, 0::2], re_im[:, 1::2], out=sq_buf[: f1 - f0])
                np.power(sq, c.power / 2.0, out=sq)
            for m0, m1, a, b, w in self._groups:
                np.matmul(w, sq[:, a:b].T, out=energies[m0:m1, f0:f1])
        smoother = self._smoother(out.shape[1]) if c.kind == "pcen" else None
        out[...] = finish(NUMPY_OPS, energies, c, dct=self._dct, smoother=smoother)

    def _smoother(self, num_frames: int) -> np.ndarray:
        if num_frames not in self._smoothers:
            self._smoothers[num_frames] = tables.pcen_smoother(self.config, num_frames)
        return self._smoothers[num_frames]

    def _chunk(self, x: np.ndarray, out: np.ndarray) -> None:
        for j in range(x.shape[0]):
            self._one(x[j], out[j])

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(waves, dtype=np.float32)
        if x.ndim != 2:
            raise ConfigError(f"expected waveforms (n, samples), got shape {x.shape}")
        n = x.shape[0]
        out = np.empty((n, self.num_bins, self.num_frames(x.shape[1])), dtype=np.float32)
        step = self.chunk_windows
        spans = [(i, min(n, i + step)) for i in range(0, n, step)]
        with self._blas.limit(limits=1, user_api="blas") if self._blas is not None else contextlib.nullcontext():
            if self.threads > 1 and len(spans) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="birdspec-logmel")
                list(self._pool.map(lambda s: self._chunk(x[s[0] : s[1]], out[s[0] : s[1]]), spans))
            else:
                for a, b in spans:
                    self._chunk(x[a:b], out[a:b])
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
