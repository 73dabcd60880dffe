"""The prepared-dataset format, read without PyTorch: file names, :class:`PreparedDataset`.

A prepared dataset directory (written by :func:`birdspec.data.prepare.prepare`)
holds ``dataset.json`` (settings, class list, encoding, frontend),
``manifest.csv`` (one row per kept recording), ``skipped.csv`` (every file
left out, with the reason) and ``waveforms.f16`` (all recordings, 32 kHz
mono; :mod:`birdspec.data.store`). The file names and the format marker are
defined here only; the writer (:mod:`birdspec.data.prepare`) and every reader
import them. Samples of a dataset (torch Datasets) are in
:mod:`birdspec.data.dataset`.
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

from birdspec.config import EncodingConfig, FrontendConfig, from_dict
from birdspec.data.store import STORE_FILE, WaveformStore
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
SKIPPED_FILE = "skipped.csv"
PARTIAL_SUFFIX = ".partial"
"""A dataset being written lives in ``OUT.partial`` until it is complete."""
DATASET_FORMAT = "birdspec-dataset"
DATASET_FORMAT_VERSION = 1


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


def with_encoding(data: PreparedDataset, **changes) -> EncodingConfig:
    """The dataset's encoding with ``changes`` applied (e.g. ``name='window'``)."""
    return replace(data.encoding, **changes)
