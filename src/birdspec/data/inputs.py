"""What a model reads, in one place: the dataset and collate function for a model's input kind.

- ``waveform`` models (the CNNs, frontend inside) read raw audio from the
  waveform store: :class:`~birdspec.data.dataset.RecordingDataset`.
- ``embedding`` models (heads over BirdNET embeddings) read the embedding
  cache written by ``birdspec embed``: one sample per recording, all its
  window embeddings, zero-padded per batch (no-bird samples, the cache's no-bird clips, are added by
  :mod:`birdspec.training.samples`).

Training, evaluation and cross-validation call :func:`model_dataset` and
:func:`model_collate`, so a new input kind is added here only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from birdspec.config import EncodingConfig
from birdspec.data.dataset import RecordingDataset
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError
from birdspec.models.checkpoint_info import MODEL_INPUTS

if TYPE_CHECKING:
    from birdspec.data.embedding_dataset import EmbeddingDataset


def model_dataset(
    data: PreparedDataset,
    *,
    model_input: str,
    rows: Sequence[int] | np.ndarray,
    encoding: EncodingConfig | None = None,
    random_crop: bool = False,
    crops_per_recording: int = 0,
    crop_samples: int | None = None,
) -> RecordingDataset | EmbeddingDataset:
    """The dataset a model of ``model_input`` reads over manifest ``rows``.

    Every returned dataset yields ``(x, label_id)`` and has ``sample_rows``,
    ``sample_windows``, ``labels``, ``classes``, ``in_channels`` and ``data``.
    ``crops_per_recording`` and ``crop_samples`` (training crops, see
    :class:`~birdspec.data.dataset.RecordingDataset`) apply to waveform models.
    """
    if model_input == "waveform":
        return RecordingDataset(
            data, rows=rows, features="waveform", encoding=encoding, random_crop=random_crop,
            crops_per_recording=crops_per_recording, crop_samples=crop_samples,
        )
    if crops_per_recording or crop_samples:
        raise ConfigError("training crops (--crops-per-recording, --crop-s) apply to waveform models only")
    if model_input == "embedding":
        from birdspec.data.embedding_dataset import EmbeddingDataset

        return EmbeddingDataset(data, rows=rows, level="recording", random_crop=random_crop)
    raise ConfigError(f"unknown model input {model_input!r}; one of {', '.join(MODEL_INPUTS)}")


def model_collate(model_input: str) -> Callable[[Any], Any] | None:
    """The DataLoader ``collate_fn`` for ``model_input`` (None: the default one)."""
    if model_input == "embedding":
        from birdspec.data.embedding_dataset import collate_embeddings

        return collate_embeddings
    return None
