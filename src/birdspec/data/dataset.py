"""Reading a prepared dataset: its metadata, and torch Datasets per encoding.

A prepared dataset directory (written by :func:`birdspec.data.prepare.prepare`)
holds ``dataset.json`` (settings, class list, encoding, frontend),
``manifest.csv`` (one row per kept recording) and ``waveforms.f16`` (all
recordings, 32 kHz mono). :class:`PreparedDataset` reads the metadata;
:class:`RecordingDataset` yields samples of the chosen encoding:

- ``stack10``: one sample per recording, ``num_windows`` consecutive windows
  as channels: waveform ``(10, 160000)`` or log-mel ``(10, 128, 321)``.
- ``window``: one sample per full 5 s window: ``(1, 160000)`` or ``(1, 128, 321)``.

Evaluation samples are deterministic (stack10: the first ``num_windows``
windows); with ``random_crop=True`` (training) crops start at random
positions of longer recordings, so every epoch sees other audio.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from birdspec.config import EncodingConfig, FrontendConfig, from_dict
from birdspec.data.store import STORE_FILE, WaveformStore
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
SKIPPED_FILE = "skipped.csv"
FEATURES = ("logmel", "waveform")


class PreparedDataset:
    """The metadata of a prepared dataset directory.

    Attributes:
        root: the directory.
        meta: the parsed ``dataset.json``.
        manifest: one row per recording (``manifest.csv``), index 0..n-1.
        classes: the class labels; ``label_id`` indexes this list.
        encoding / frontend: the configs the dataset was prepared with.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta_path = self.root / DATASET_FILE
        if not meta_path.is_file():
            hint = " (an interrupted prepare? run it again)" if self.root.with_name(self.root.name + ".partial").exists() else ""
            raise DataError(f"{self.root}: not a prepared dataset (no {DATASET_FILE}){hint}; create one with `birdspec prepare`")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}: corrupt ({exc}); prepare the dataset again") from exc
        if self.meta.get("format") != "birdspec-dataset":
            raise DataError(f"{meta_path}: not a birdspec dataset description")
        self.classes: list[str] = list(self.meta["classes"])
        self.encoding = from_dict(EncodingConfig, self.meta["encoding"])
        self.frontend = from_dict(FrontendConfig, self.meta.get("frontend", {}))
        self.sample_rate_hz = int(self.meta.get("sample_rate_hz", self.frontend.sample_rate_hz))

    @cached_property
    def manifest(self) -> pd.DataFrame:
        path = self.root / MANIFEST_FILE
        if not path.is_file():
            raise DataError(f"{path}: missing; prepare the dataset again")
        df = pd.read_csv(path, dtype={"id": str, "label": str, "filename": str}, keep_default_na=False, na_values=[""])
        for col in ("label_id", "offset", "num_samples", "fold"):
            if col in df:
                df[col] = df[col].astype(np.int64)
        return df

    @cached_property
    def store(self) -> WaveformStore:
        return WaveformStore(self.root / self.meta.get("store", {}).get("file", STORE_FILE))

    @property
    def class_info(self) -> list[dict]:
        return list(self.meta.get("class_info") or [{"label": c} for c in self.classes])

    @property
    def num_folds(self) -> int | None:
        return self.meta.get("folds")

    def select(
        self,
        *,
        split: str | None = None,
        folds: Iterable[int] | None = None,
        exclude_folds: Iterable[int] | None = None,
    ) -> np.ndarray:
        """Row indices of the manifest in ``split`` ('train', 'val' or None/'all') and/or folds."""
        df = self.manifest
        mask = np.ones(len(df), dtype=bool)
        if split not in (None, "all"):
            if split not in ("train", "val"):
                raise ConfigError(f"unknown split {split!r}; use train, val or all")
            mask &= (df["split"] == split).to_numpy()
        if folds is not None or exclude_folds is not None:
            if (df["fold"] < 0).all():
                raise ConfigError(f"{self.root} has no folds; prepare it with --folds K (or a --fold-column)")
            if folds is not None:
                mask &= df["fold"].isin(list(folds)).to_numpy()
            if exclude_folds is not None:
                mask &= ~df["fold"].isin(list(exclude_folds)).to_numpy()
        return np.flatnonzero(mask)

    def rows_for_ids(self, ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Manifest rows of recording ``ids`` (in their order) and the ids this dataset does not hold."""
        index = {rid: i for i, rid in enumerate(self.manifest["id"].astype(str))}
        found = [index[str(i)] for i in ids if str(i) in index]
        missing = [str(i) for i in ids if str(i) not in index]
        return np.asarray(found, dtype=np.int64), missing

    def waveform(self, row: int) -> np.ndarray:
        """The whole stored recording of manifest row ``row``, float32 ``(num_samples,)``."""
        r = self.manifest.iloc[row]
        return self.store.read(int(r["offset"]), int(r["num_samples"]))

    def __repr__(self) -> str:
        return f"PreparedDataset({str(self.root)!r}, {len(self.manifest)} recordings, {len(self.classes)} classes, {self.encoding.name})"


def _fit_length(wave: np.ndarray, length: int, policy: str, start: int = 0) -> np.ndarray:
    """``length`` samples from ``wave`` beginning at ``start``; short audio is tiled or zero-padded."""
    n = wave.shape[0]
    if n == 0:
        return np.zeros(length, dtype=np.float32)
    if n >= length + start:
        return wave[start : start + length]
    if policy == "tile":
        reps = -(-(length + start) // n)
        return np.tile(wave, reps)[start : start + length]
    out = np.zeros(length, dtype=np.float32)
    piece = wave[start : start + length]
    out[: piece.shape[0]] = piece
    return out


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
            counts = np.maximum(1, self._lengths[self.rows] // self.window_samples)
            self.sample_rows = np.repeat(self.rows, counts)
            self.sample_windows = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
        self.labels = self._label_ids[self.sample_rows]
        self._frontend = None

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
        return (c, fe.n_mels, fe.num_frames(length))

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
                wave = _fit_length(store.read(offset, n), need, self.policy, start)
            return wave.reshape(self.encoding.num_windows, w)
        if self.crops_per_recording or self.crop_samples:
            return self._crop(offset, n)
        k = int(self.sample_windows[index])
        start = k * w
        if self.random_crop and n > w:
            start = int(np.clip(start + self._rand(w + 1) - w // 2, 0, n - w))
        wave = store.read(offset, n, start=start, length=w)
        if wave.shape[0] < w:
            wave = _fit_length(store.read(offset, n), w, self.policy, min(start, max(0, n - 1)) if self.policy == "tile" else 0)
        return wave.reshape(1, w)

    def _crop(self, offset: int, n: int) -> np.ndarray:
        """One training crop ``(1, crop length)`` at a random position (anywhere when ``crops_per_recording``)."""
        length = self.crop_samples or self.window_samples
        store = self.data.store
        if n < length:
            return _fit_length(store.read(offset, n), length, self.policy, self._rand(n) if self.policy == "tile" else 0).reshape(1, length)
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


def load_dataset(root: str | Path, *, split: str | None = None, features: str = "logmel", **kwargs) -> RecordingDataset:
    """A :class:`RecordingDataset` over a prepared directory (the public shortcut)."""
    return RecordingDataset(root, split=split, features=features, **kwargs)


def with_encoding(data: PreparedDataset, **changes) -> EncodingConfig:
    """The dataset's encoding with ``changes`` applied (e.g. ``name='window'``)."""
    return replace(data.encoding, **changes)
