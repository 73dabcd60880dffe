"""Samples of a prepared dataset as torch Datasets: :class:`RecordingDataset`, one encoding per dataset.

This module owns how a prepared dataset (read by
:class:`~birdspec.data.prepared.PreparedDataset`) becomes model inputs under
its encoding:

- ``stack10``: one sample per recording, ``num_windows`` consecutive windows
  as channels: waveform ``(10, 160000)`` or log-mel ``(10, 128, 321)``.
- ``window``: one sample per full 5 s window: ``(1, 160000)`` or ``(1, 128, 321)``.

Which windows a recording gives, and how a short one is filled, are the rules
of :mod:`birdspec.windowing`. Evaluation samples are deterministic (stack10:
the first ``num_windows`` windows); with ``random_crop=True`` (training)
crops start at random positions of longer recordings, so every epoch sees
other audio.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from birdspec.config import EncodingConfig
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError
from birdspec.windowing import fit_window, num_sample_windows

if TYPE_CHECKING:
    from birdspec.features.torch_frontend import Frontend

log = logging.getLogger(__name__)

FEATURES = ("logmel", "waveform")
"""What a :class:`RecordingDataset` yields: log-mel spectrograms or raw audio."""
CROP_GRID_S = 0.1
"""Grid of the crop starts :meth:`RecordingDataset.avoid_quiet` checks (a crop starts within a step of one)."""


class RecordingDataset(Dataset):
    """Samples of a prepared dataset under its encoding, as ``(x, label_id)``.

    Args:
        data: a :class:`PreparedDataset` or its directory.
        rows: manifest rows to use (default: all, or those of ``split``).
        split: 'train', 'val' or 'all' (ignored when ``rows`` is given).
        features: 'logmel' yields spectrograms ``(C, n_mels, frames)`` computed
            on the CPU by the dataset's frontend; 'waveform' yields raw audio
            ``(C, window_samples)`` for models that carry the frontend.
        encoding: override the dataset's encoding (e.g. read a stack10-prepared
            dataset per window); ``short_policy`` 'drop' falls back to 'pad'
            for recordings that are too short.
        random_crop: training-time crops at random positions.
        crops_per_recording: 0 (default) = every window of a recording is one
            sample; K > 0 = every recording gives K samples, each a crop at a
            random position anywhere in it (needs ``random_crop``), so an epoch
            weighs recordings equally whatever their length.
        crop_samples: training crop length in samples for the window encoding
            (None = the window length); shorter crops train faster and the
            convolutional models still score full windows at evaluation.

    Attributes:
        sample_rows: manifest row of every sample (to aggregate windows per recording).
        labels: label id of every sample.
    """

    def __init__(
        self,
        data: PreparedDataset | str | Path,
        *,
        rows: Sequence[int] | np.ndarray | None = None,
        split: str | None = None,
        features: str = "logmel",
        encoding: EncodingConfig | None = None,
        random_crop: bool = False,
        crops_per_recording: int = 0,
        crop_samples: int | None = None,
    ) -> None:
        self.data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
        if features not in FEATURES:
            raise ConfigError(f"unknown features {features!r}; use one of {', '.join(FEATURES)}")
        self.features = features
        self.encoding = encoding or self.data.encoding
        self.random_crop = random_crop
        self.rows = np.asarray(self.data.select(split=split) if rows is None else rows, dtype=np.int64)
        m = self.data.manifest
        self._offsets = m["offset"].to_numpy(np.int64)
        self._lengths = m["num_samples"].to_numpy(np.int64)
        self._label_ids = m["label_id"].to_numpy(np.int64)
        self.window_samples = self.encoding.window_samples(self.data.sample_rate_hz)
        self.policy = self.encoding.short_policy if self.encoding.short_policy != "drop" else "pad"
        if crops_per_recording < 0:
            raise ConfigError(f"crops_per_recording must be >= 0, got {crops_per_recording}")
        if crops_per_recording and not random_crop:
            raise ConfigError("crops_per_recording draws random crops; it needs random_crop=True")
        if crop_samples is not None:
            if self.encoding.name != "window":
                raise ConfigError("a training crop length applies to the window encoding only")
            if not 0 < crop_samples <= self.window_samples:
                raise ConfigError(f"crop length must be in (0, {self.window_samples}] samples, got {crop_samples}")
        self.crops_per_recording = int(crops_per_recording)
        self.crop_samples = int(crop_samples) if crop_samples is not None else None
        if self.crops_per_recording:
            self.sample_rows = np.repeat(self.rows, self.crops_per_recording)
            self.sample_windows = np.zeros(len(self.sample_rows), dtype=np.int64)
        elif self.encoding.name == "stack10":
            self.sample_rows = self.rows.copy()
            self.sample_windows = np.zeros(len(self.rows), dtype=np.int64)
        else:
            counts = np.array(
                [
                    num_sample_windows(num_samples=int(n), window_samples=self.window_samples, short_policy=self.policy)
                    for n in self._lengths[self.rows]
                ],
                dtype=np.int64,
            )
            self.sample_rows = np.repeat(self.rows, counts)
            self.sample_windows = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
        self.labels = self._label_ids[self.sample_rows]
        self._frontend: Frontend | None = None
        self._crop_starts: dict[int, np.ndarray] = {}

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    @property
    def in_channels(self) -> int:
        return self.encoding.in_channels

    @property
    def sample_shape(self) -> tuple[int, ...]:
        c = self.in_channels
        length = self.crop_samples or self.window_samples
        if self.features == "waveform":
            return (c, length)
        fe = self.data.frontend
        return (c, fe.num_bins(), fe.num_frames(length))

    def __len__(self) -> int:
        return len(self.sample_rows)

    def _rand(self, high: int) -> int:
        return int(torch.randint(0, high, (1,)).item()) if high > 1 else 0

    def waveform(self, index: int) -> np.ndarray:
        """Raw audio of sample ``index``: ``(C, window_samples)`` float32."""
        row = int(self.sample_rows[index])
        offset, n = int(self._offsets[row]), int(self._lengths[row])
        w = self.window_samples
        store = self.data.store
        if self.encoding.name == "stack10":
            need = w * self.encoding.num_windows
            start = 0
            if self.random_crop:
                start = self._rand(n - need + 1) if n >= need else (self._rand(n) if self.policy == "tile" else 0)
            if n >= start + need:
                wave = store.read(offset, n, start=start, length=need)
            else:
                wave = fit_window(store.read(offset, n), length=need, fill=self.policy, start=start)
            return wave.reshape(self.encoding.num_windows, w)
        if self.crops_per_recording or self.crop_samples:
            return self._crop(offset, n)
        k = int(self.sample_windows[index])
        start = k * w
        if self.random_crop and n > w:
            start = int(np.clip(start + self._rand(w + 1) - w // 2, 0, n - w))
        wave = store.read(offset, n, start=start, length=w)
        if wave.shape[0] < w:
            tile_start = min(start, max(0, n - 1)) if self.policy == "tile" else 0
            wave = fit_window(store.read(offset, n), length=w, fill=self.policy, start=tile_start)
        return wave.reshape(1, w)

    def avoid_quiet(self, stretches: Sequence[tuple[int, int, int, int]], *, max_quiet_share: float = 0.5) -> None:
        """Random crops of a recording start only where at most ``max_quiet_share`` of the crop lies in its
        quiet ``stretches`` (``(offset, num_samples, start, end)``, as
        :func:`~birdspec.data.nocall.find_stretches` gives them); starts on a :data:`CROP_GRID_S` grid plus a
        random shift within it. A recording where no crop qualifies keeps crops anywhere."""
        length, step = self.crop_samples or self.window_samples, self._crop_step()
        spans: dict[int, list[tuple[int, int, int]]] = {}
        for offset, n, a, b in stretches:
            spans.setdefault(int(offset), []).append((int(n), int(a), int(b)))
        self._crop_starts = {}
        for offset, parts in spans.items():
            n = parts[0][0]
            if n <= length:
                continue
            starts = np.arange(0, n - length + 1, step, dtype=np.int64)
            lo, hi = np.array([p[1] for p in parts]), np.array([p[2] for p in parts])
            quiet = np.clip(np.minimum(hi[None, :], starts[:, None] + length) - np.maximum(lo[None, :], starts[:, None]), 0, None)
            ok = starts[quiet.sum(axis=1) <= max_quiet_share * length]
            if ok.size:
                self._crop_starts[offset] = ok

    def _crop_step(self) -> int:
        """Samples between the crop starts :meth:`avoid_quiet` checks (:data:`CROP_GRID_S`)."""
        return max(1, int(round(CROP_GRID_S * self.data.sample_rate_hz)))

    def _crop(self, offset: int, n: int) -> np.ndarray:
        """One training crop ``(1, crop length)`` at a random position (anywhere when ``crops_per_recording``,
        or where :meth:`avoid_quiet` allows)."""
        length = self.crop_samples or self.window_samples
        store = self.data.store
        if n < length:
            start = self._rand(n) if self.policy == "tile" else 0
            return fit_window(store.read(offset, n), length=length, fill=self.policy, start=start).reshape(1, length)
        allowed = self._crop_starts.get(offset) if self.random_crop else None
        if allowed is not None:
            start = min(int(allowed[self._rand(allowed.size)]) + self._rand(self._crop_step()), n - length)
        else:
            start = self._rand(n - length + 1) if self.random_crop else 0
        return store.read(offset, n, start=start, length=length).reshape(1, length)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(np.ascontiguousarray(self.waveform(index)))
        if self.features == "logmel":
            if self._frontend is None:
                from birdspec.features import build_frontend

                self._frontend = build_frontend(self.data.frontend)
            with torch.no_grad():
                x = self._frontend(x)
        return x, int(self.labels[index])


