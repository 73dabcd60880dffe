"""The prepared-dataset format, read without PyTorch: file names, :class:`PreparedDataset`, :func:`describe`.

A prepared dataset directory (written by :func:`birdspec.data.prepare.prepare`)
holds ``dataset.json`` (settings, class list, encoding, frontend),
``manifest.csv`` (one row per kept recording, :data:`MANIFEST_COLUMNS` first),
``skipped.csv`` (every file left out, with the reason: :data:`SKIPPED_COLUMNS`)
and ``waveforms.f16`` (all recordings, 32 kHz mono; :mod:`birdspec.data.store`).

This module owns that format: the file names, the format marker, the table
columns, how many samples (model inputs) a recording gives under an encoding
(:func:`count_samples`, from the window rules of :mod:`birdspec.windowing`)
and the readers (:class:`PreparedDataset`, :func:`describe`). The writer
(:mod:`birdspec.data.prepare`) and every reader import them from here.
Samples of a dataset (torch Datasets) are in :mod:`birdspec.data.dataset`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.config import SAMPLE_RATE_HZ, EncodingConfig, FrontendConfig, from_dict, to_dict
from birdspec.data.store import STORE_FILE, WaveformStore
from birdspec.errors import ConfigError, DataError
from birdspec.windowing import num_sample_windows

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
SKIPPED_FILE = "skipped.csv"
PARTIAL_SUFFIX = ".partial"
"""A dataset being written lives in ``OUT.partial`` until it is complete."""
DATASET_FORMAT = "birdspec-dataset"
DATASET_FORMAT_VERSION = 1

MANIFEST_COLUMNS = (
    "id",
    "source_path",
    "filename",
    "label",
    "label_id",
    "secondary_labels",
    "scientific_name",
    "common_name",
    "rating",
    "duration_s",
    "offset",
    "num_samples",
    "split",
    "fold",
    "warning",
)
"""The first columns of ``manifest.csv`` (then the source's extra metadata columns)."""
SKIPPED_COLUMNS = ("path", "label", "reason")
"""The columns of ``skipped.csv``."""


def partial_dir(out_dir: str | Path) -> Path:
    """The sibling work directory ``OUT.partial`` of ``OUT``."""
    out = Path(out_dir)
    return out.with_name(out.name + PARTIAL_SUFFIX)


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
            hint = " (an interrupted prepare? run it again)" if partial_dir(self.root).exists() else ""
            raise DataError(f"{self.root}: not a prepared dataset (no {DATASET_FILE}){hint}; create one with `birdspec prepare`")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}: corrupt ({exc}); prepare the dataset again") from exc
        if self.meta.get("format") != DATASET_FORMAT:
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


def with_encoding(data: PreparedDataset, **changes) -> EncodingConfig:
    """The dataset's encoding with ``changes`` applied (e.g. ``name='window'``)."""
    return replace(data.encoding, **changes)


# --------------------------------------------------------------------------- samples per recording


def min_samples_kept(encoding: EncodingConfig, *, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Fewest samples a recording needs to give one sample under ``short_policy='drop'``.

    ``num_windows * window`` for stack10 (1 600 000 = 50 s at 32 kHz by
    default), one window for window encoding.
    """
    w = encoding.window_samples(sample_rate_hz)
    return w * encoding.num_windows if encoding.name == "stack10" else w


def count_samples(num_samples: int, *, encoding: EncodingConfig, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Samples (model inputs) a recording of ``num_samples`` audio samples gives.

    stack10: 1 (0 when too short under ``drop``). window: one per full window,
    ``num_samples // window_samples``; a recording shorter than one window
    gives 1 under ``tile``/``pad`` and 0 under ``drop``. Empty audio gives 0.
    The rule is :func:`birdspec.windowing.num_sample_windows` (for stack10 with
    the whole stack as the window, capped at one sample).
    """
    if encoding.name == "stack10":
        need = min_samples_kept(encoding, sample_rate_hz=sample_rate_hz)
        return min(1, num_sample_windows(num_samples=num_samples, window_samples=need, short_policy=encoding.short_policy))
    return num_sample_windows(
        num_samples=num_samples, window_samples=encoding.window_samples(sample_rate_hz), short_policy=encoding.short_policy
    )


# --------------------------------------------------------------------------- describe


def reason_kind(reason: str) -> str:
    """The kind of a skip reason: its words before the first number, ``(`` or ``:``.

    >>> reason_kind("too short (31.2 s < 50 s, policy drop)"), reason_kind("rating 2 < min 3")
    ('too short', 'rating')
    """
    return re.split(r"[(:\d]", str(reason), maxsplit=1)[0].strip() or str(reason)


def _read_tables(root: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(dataset.json, manifest, skipped)`` of ``root`` for :func:`describe` (DataError when unusable)."""
    meta_path = root / DATASET_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = " (an interrupted prepare? run it again)" if partial_dir(root).exists() else ""
        raise DataError(f"{root}: not a prepared dataset (no {DATASET_FILE}){hint}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta_path}: unreadable ({exc}); prepare the dataset again") from exc
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        raise DataError(f"{meta_path}: not a birdspec dataset description")
    try:
        manifest = pd.read_csv(root / MANIFEST_FILE, dtype={"id": str, "label": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{root / MANIFEST_FILE}: unreadable ({exc}); prepare the dataset again") from exc
    skipped_path = root / SKIPPED_FILE
    skipped = (
        pd.read_csv(skipped_path, dtype=str, keep_default_na=False)
        if skipped_path.is_file() and skipped_path.stat().st_size
        else pd.DataFrame(columns=list(SKIPPED_COLUMNS))
    )
    return meta, manifest, skipped


def describe(dataset_dir: str | Path) -> dict[str, Any]:
    """Summary of a prepared dataset (what ``birdspec info`` prints).

    Returns:
        A JSON-ready dict: ``path``, ``source``, ``layout``, ``created_utc``,
        ``num_recordings``, ``num_samples`` (model inputs under the encoding:
        recordings for stack10, windows for window), ``duration_s`` (stored
        audio), ``classes``, ``per_class`` (label -> recordings),
        ``per_class_samples`` (label -> samples), ``splits`` (split ->
        recordings), ``folds`` (fold -> recordings, or None), ``encoding``,
        ``frontend``, ``sample_shape`` (``[channels, n_mels, frames]``, e.g.
        ``[10, 128, 321]``), ``truncated`` (kept recordings that look cut off: the
        ``warning`` column of the manifest), ``skipped`` (count), ``skipped_reasons``
        (reason kind -> count), ``settings``.

    Raises:
        DataError: ``dataset_dir`` is not a complete prepared dataset.
    """
    root = Path(dataset_dir)
    meta, manifest, skipped = _read_tables(root)
    encoding = from_dict(EncodingConfig, meta["encoding"])
    frontend = from_dict(FrontendConfig, meta.get("frontend", {}))
    sr = int(meta.get("sample_rate_hz", SAMPLE_RATE_HZ))
    lengths = manifest["num_samples"].to_numpy(np.int64)
    samples = np.array([count_samples(int(n), encoding=encoding, sample_rate_hz=sr) for n in lengths], dtype=np.int64)
    labels = manifest["label"].astype(str)
    classes = list(meta["classes"])
    folds = None
    if meta.get("folds"):
        fold_col = manifest["fold"].astype(np.int64)
        folds = {int(k): int((fold_col == k).sum()) for k in range(int(meta["folds"]))}
    window = encoding.window_samples(sr)
    return {
        "path": str(root.absolute()),
        "source": meta.get("source"),
        "layout": meta.get("layout"),
        "created_utc": meta.get("created_utc"),
        "num_recordings": int(len(manifest)),
        "num_samples": int(samples.sum()),
        "duration_s": float(lengths.sum() / sr),
        "classes": classes,
        "per_class": {c: int((labels == c).sum()) for c in classes},
        "per_class_samples": {c: int(samples[(labels == c).to_numpy()].sum()) for c in classes},
        "splits": {s: int((manifest["split"] == s).sum()) for s in ("train", "val")},
        "folds": folds,
        "encoding": to_dict(encoding),
        "frontend": to_dict(frontend),
        "sample_shape": [encoding.in_channels, frontend.num_bins(), frontend.num_frames(window)],
        "truncated": int(manifest["warning"].fillna("").astype(str).str.startswith("truncated").sum())
        if "warning" in manifest else 0,
        "skipped": int(len(skipped)),
        "skipped_reasons": {str(k): int(v) for k, v in skipped["reason"].map(reason_kind).value_counts().items()},
        "settings": meta.get("settings"),
    }
