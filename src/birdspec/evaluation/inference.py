"""Run a model over a :class:`~birdspec.data.dataset.RecordingDataset` and keep its probabilities.

Two levels of predictions:

- **sample**: one row per model input (a stack10 sample is a whole recording;
  a ``window`` sample is one window of a recording).
- **recording**: one row per recording. Window probabilities are aggregated
  by the **mean of the per-window softmax probabilities** of the recording
  (then arg-max). For stack10 the two levels coincide.

Mean-of-probabilities is the usual, calibration-preserving choice: every
window votes with its confidence, a single confident window cannot dominate
as it would with max-pooling, and the result is still a probability vector,
so log loss and ROC-AUC stay meaningful at the recording level.

:meth:`Predictions.to_frame` / :func:`predictions_from_frame` round-trip the
``predictions.csv`` layout: ``level, id, row, window, label_id, label,
predicted_id, predicted, correct, prob_<class>...``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from birdspec.data.dataset import RecordingDataset
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError
from birdspec.formats import PROB_PREFIX
from birdspec.models.activation import scores_torch
from birdspec.models.checkpoint import Checkpoint, CheckpointInfo
from birdspec.runtime import resolve_device, use_fast_cpu_math

log = logging.getLogger(__name__)

PREDICTION_LEVELS = ("sample", "recording")


@dataclass(frozen=True)
class Predictions:
    """Probabilities of one level (``'sample'`` or ``'recording'``).

    Attributes:
        level: 'sample' or 'recording'.
        ids: recording id of every row.
        rows: manifest row of every row.
        windows: window index within the recording (``-1`` at the recording level;
            0 for stack10 samples).
        y_true: true label ids in the model's class order, ``(n,)``.
        probs: softmax probabilities ``(n, K)`` in the model's class order.
        classes: the K labels (the model's output order).
    """

    level: str
    ids: tuple[str, ...]
    rows: np.ndarray
    windows: np.ndarray
    y_true: np.ndarray
    probs: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y_true.shape[0])

    @property
    def y_pred(self) -> np.ndarray:
        """Arg-max class ids ``(n,)``."""
        return self.probs.argmax(axis=1) if len(self) else np.zeros(0, dtype=np.int64)

    def to_frame(self) -> pd.DataFrame:
        """The ``predictions.csv`` rows of this level."""
        pred = self.y_pred
        df = pd.DataFrame({
            "level": self.level,
            "id": list(self.ids),
            "row": self.rows.astype(np.int64),
            "window": self.windows.astype(np.int64),
            "label_id": self.y_true.astype(np.int64),
            "label": [self.classes[i] for i in self.y_true],
            "predicted_id": pred.astype(np.int64),
            "predicted": [self.classes[i] for i in pred],
            "correct": (pred == self.y_true),
        })
        probs = pd.DataFrame(self.probs, columns=[PROB_PREFIX + c for c in self.classes])
        return pd.concat([df, probs], axis=1)


def predictions_from_frame(df: pd.DataFrame, *, level: str | None = None) -> Predictions:
    """Rebuild :class:`Predictions` from ``predictions.csv`` rows (of one ``level``).

    Raises:
        DataError: when the frame has no ``prob_`` columns or mixes levels without ``level``.
    """
    if level is not None and "level" in df:
        df = df[df["level"] == level]
    levels = set(df["level"]) if "level" in df else {level or "sample"}
    if len(levels) > 1:
        raise DataError(f"predictions hold several levels {sorted(levels)}; pass level=")
    prob_cols = [c for c in df.columns if str(c).startswith(PROB_PREFIX)]
    if not prob_cols:
        raise DataError("no prob_<class> columns in these predictions; write them with Predictions.to_frame")
    classes = tuple(c[len(PROB_PREFIX):] for c in prob_cols)
    return Predictions(
        level=next(iter(levels)) if levels else (level or "sample"),
        ids=tuple(df["id"].astype(str)),
        rows=df["row"].to_numpy(np.int64) if "row" in df else np.arange(len(df)),
        windows=df["window"].to_numpy(np.int64) if "window" in df else np.zeros(len(df), np.int64),
        y_true=df["label_id"].to_numpy(np.int64),
        probs=df[prob_cols].to_numpy(np.float64),
        classes=classes,
    )


def label_map(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> np.ndarray:
    """Index array mapping dataset label ids to the model's class ids.

    Raises:
        DataError: when the dataset has labels the model was not trained on.
    """
    index = {c: i for i, c in enumerate(model_classes)}
    unknown = [c for c in dataset_classes if c not in index]
    if unknown:
        raise DataError(
            f"the dataset has {len(unknown)} classes the model does not know ({', '.join(unknown[:5])}); "
            "evaluate on a dataset prepared with the same species as the training data"
        )
    return np.asarray([index[c] for c in dataset_classes], dtype=np.int64)


def checkpoint_dataset(data: PreparedDataset, ckpt: CheckpointInfo, *, rows: Sequence[int] | np.ndarray) -> Any:
    """The dataset the checkpoint's model reads over ``rows`` (waveforms with its encoding,
    or cached embeddings for embedding heads; see :mod:`birdspec.data.inputs`).

    Raises:
        DataError: when the sample rate does not fit the checkpoint.
    """
    from birdspec.data.inputs import model_dataset

    if ckpt.input != "waveform":
        return model_dataset(data, model_input=ckpt.input, rows=rows)
    if ckpt.frontend.sample_rate_hz != data.sample_rate_hz:
        raise DataError(
            f"{data.root} is at {data.sample_rate_hz} Hz but the model expects {ckpt.frontend.sample_rate_hz} Hz; "
            "prepare the data again"
        )
    return RecordingDataset(data, rows=rows, features="waveform", encoding=ckpt.encoding)


@torch.no_grad()
def predict_samples(
    model: nn.Module,
    dataset: RecordingDataset,
    *,
    classes: Sequence[str],
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    workers: int = 0,
    activation: str = "softmax",
    temperature: float = 1.0,
) -> Predictions:
    """Per-sample softmax probabilities of ``model`` over ``dataset`` (raw waveforms in);
    ``activation='sigmoid'``: per-class sigmoid scores (multi-label checkpoints); any activation of
    :mod:`birdspec.models.activation`, its logits divided by the checkpoint's ``temperature``.

    Labels are mapped from the dataset's class order to ``classes`` (the model's).

    Args:
        model: raw waveforms ``(B, C, T)`` -> logits ``(B, K)``, ``K = len(classes)``.
        dataset: a ``features='waveform'`` :class:`RecordingDataset`.
        classes: the model's output labels.
        batch_size / workers: the DataLoader settings.
        device: where the forward passes run.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if getattr(dataset, "features", "waveform") == "logmel":
        raise ConfigError("predict_samples needs a features='waveform' dataset (the model computes its spectrograms)")
    dev = torch.device(resolve_device(str(device))) if not isinstance(device, torch.device) else device
    use_fast_cpu_math()
    mapping = label_map(dataset.classes, classes)
    was_training = model.training
    model.eval().to(dev)
    outs = []
    from birdspec.data.inputs import model_collate

    collate = model_collate("embedding") if getattr(dataset, "features", "waveform") == "embedding" else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    started = time.perf_counter()
    for x, _ in loader:
        logits = model(x.to(dev, non_blocking=True)).float()
        if logits.ndim != 2 or logits.shape[1] != len(classes):
            raise DataError(f"the model returns logits of shape {tuple(logits.shape)} for {len(classes)} classes")
        scores = scores_torch(logits, activation, temperature=temperature)
        outs.append(scores.cpu().numpy().astype(np.float64))
    if was_training:
        model.train()
    probs = np.concatenate(outs) if outs else np.zeros((0, len(classes)))
    log.debug("predicted %d samples in %.1f s", len(probs), time.perf_counter() - started)
    manifest_ids = dataset.data.manifest["id"].astype(str).to_numpy()
    rows = np.asarray(dataset.sample_rows, dtype=np.int64)
    windows = np.asarray(getattr(dataset, "sample_windows", np.zeros(len(rows))), dtype=np.int64)
    return Predictions(
        level="sample",
        ids=tuple(manifest_ids[rows]),
        rows=rows,
        windows=windows,
        y_true=mapping[np.asarray(dataset.labels, dtype=np.int64)],
        probs=probs,
        classes=tuple(classes),
    )


def aggregate_recordings(samples: Predictions) -> Predictions:
    """Recording-level predictions: the **mean of the window probabilities** of each recording.

    Recordings keep the order of their first sample. The result's ``windows``
    are all ``-1``.
    """
    if len(samples) == 0:
        return Predictions("recording", (), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                           np.zeros((0, len(samples.classes))), samples.classes)
    rows = samples.rows
    uniq, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    sums = np.zeros((uniq.size, samples.probs.shape[1]))
    np.add.at(sums, inverse, samples.probs)
    counts = np.bincount(inverse, minlength=uniq.size)[:, None]
    mean = sums / counts
    labels = np.zeros(uniq.size, dtype=np.int64)
    labels[inverse] = samples.y_true
    order = np.argsort(first, kind="stable")
    ids = np.asarray(samples.ids, dtype=object)[first]
    return Predictions(
        level="recording",
        ids=tuple(str(i) for i in ids[order]),
        rows=uniq[order],
        windows=np.full(uniq.size, -1, dtype=np.int64),
        y_true=labels[order],
        probs=mean[order],
        classes=samples.classes,
    )


def predict_checkpoint(
    checkpoint: str | Path | Checkpoint,
    data: PreparedDataset | str | Path,
    *,
    rows: Sequence[int] | np.ndarray,
    batch_size: int = 16,
    device: str = "cpu",
    workers: int = 0,
) -> tuple[Predictions, Predictions, CheckpointInfo]:
    """Load a checkpoint (file, run folder or :class:`~birdspec.models.checkpoint.Checkpoint`) and
    predict ``rows`` of a prepared dataset.

    Returns:
        ``(sample_predictions, recording_predictions, checkpoint_info)``.
    """
    from birdspec.models.checkpoint import read_checkpoint

    data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
    dev = torch.device(resolve_device(device))
    ckpt = read_checkpoint(checkpoint)
    model = ckpt.build_model(device=dev)
    dataset = checkpoint_dataset(data, ckpt, rows=rows)
    if len(dataset) == 0:
        raise DataError(f"{data.root}: the selected recordings give no samples under the model's encoding")
    samples = predict_samples(model, dataset, classes=list(ckpt.classes), batch_size=batch_size, device=dev, workers=workers,
                              activation=ckpt.activation, temperature=getattr(ckpt, "temperature", 1.0))
    return samples, aggregate_recordings(samples), ckpt.info
