"""Data for training: the train/validation :class:`RecordingDataset` pair and their loaders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader, Dataset

from birdspec.config import EncodingConfig
from birdspec.data.inputs import model_collate, model_dataset
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Data-loader workers when not given: min(8, CPU cores - 1)."""
    from birdspec.runtime import cpu_count

    return max(0, min(8, cpu_count() - 1))


def resolve_encoding(data: PreparedDataset, override: str | None) -> EncodingConfig:
    """The encoding to train with: the dataset's, or the dataset's with ``name=override``."""
    if override is None or override == data.encoding.name:
        return data.encoding
    from birdspec.data.prepared import with_encoding

    return with_encoding(data, name=override)


def select_rows(
    data: PreparedDataset, rows_train: Sequence[int] | np.ndarray | None, rows_val: Sequence[int] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Manifest rows for training and validation (default: the dataset's train/val split).

    Raises:
        DataError: when a side is empty, rows are out of range, or the sides overlap.
    """
    n = len(data.manifest)
    if (rows_train is None) != (rows_val is None):
        raise ConfigError("pass both rows_train and rows_val (or neither, for the dataset's train/val split)")
    train = np.asarray(data.select(split="train") if rows_train is None else rows_train, dtype=np.int64)
    val = np.asarray(data.select(split="val") if rows_val is None else rows_val, dtype=np.int64)
    for name, rows in (("training", train), ("validation", val)):
        if rows.size == 0:
            raise DataError(f"{data.root}: no {name} recordings; prepare the dataset with a validation split (--val-fraction)")
        if rows.min() < 0 or rows.max() >= n:
            raise DataError(f"{name} rows must be manifest rows in [0, {n}), got {rows.min()}..{rows.max()}")
    overlap = np.intersect1d(train, val)
    if overlap.size:
        raise DataError(f"{overlap.size} recordings are in both the training and the validation rows; they must be disjoint")
    return train, val


class BirdspecDataModule(pl.LightningDataModule):
    """Train/validation loaders of what the model reads (see :mod:`birdspec.data.inputs`).

    For the CNNs, batches are raw waveforms ``(B, C, window_samples)`` (the model
    computes the spectrograms) with label ids ``(B,)`` (or target vectors, and no-bird samples:
    :mod:`birdspec.training.samples`); ``val_set`` is the validation recordings' samples,
    ``val_fit_set`` those plus the fixed no-bird ones (what validation runs on); for embedding heads,
    zero-padded window embeddings ``(B, W, D)``. The last training batch is
    dropped only when it would hold a single sample (BatchNorm cannot train on it).
    """

    def __init__(
        self,
        data: PreparedDataset,
        *,
        rows_train: np.ndarray,
        rows_val: np.ndarray,
        encoding: EncodingConfig,
        batch_size: int,
        workers: int,
        random_crop: bool,
        pin_memory: bool = False,
        model_input: str = "waveform",
        crops_per_recording: int = 0,
        crop_samples: int | None = None,
        wrap: Any = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.workers = workers
        self.pin_memory = pin_memory
        self.collate_fn = model_collate(model_input)
        self.train_set = model_dataset(
            data, model_input=model_input, rows=rows_train, encoding=encoding, random_crop=random_crop,
            crops_per_recording=crops_per_recording, crop_samples=crop_samples,
        )
        self.val_set = model_dataset(data, model_input=model_input, rows=rows_val, encoding=encoding, random_crop=False)
        self.val_fit_set = self.val_set
        if wrap is not None:  # targets, no-bird samples, mixing: birdspec.training.samples.sample_sets
            sets = wrap(self.train_set, self.val_set)
            self.train_set, self.val_set, self.val_fit_set = sets.train, sets.val, sets.val_fit
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise DataError(f"{data.root}: the training or validation rows give no samples under encoding {encoding.name}")

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        """A loader whose workers start anew every epoch (not persistent): their random generators are seeded
        from the main process's at the start of each epoch, which a resumed run restores, so crops, gains
        and no-bird draws after a resume are those of a run never stopped (persistent workers carried their
        generators over from epoch to epoch, which no resume state holds)."""
        n = len(dataset)  # type: ignore[arg-type]  # a map-style dataset: torch's Dataset does not declare __len__
        drop_last = train and n % self.batch_size == 1 and n > 1
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=drop_last,
            num_workers=self.workers,
            persistent_workers=False,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        """The validation samples and, for runs with no-bird samples, the fixed no-bird ones."""
        return self._loader(self.val_fit_set, train=False)
