"""The per-window backbone embedding cache beside a prepared dataset: its format and its writer.

``birdspec embed DIR --backbone birdnet`` (:func:`birdspec.data.embed.embed_dataset`) runs a frozen
backbone over every stored recording once and writes::

    DIR/embeddings/birdnet/
        embeddings.f16   raw little-endian float16, shape (total_windows, dim), row-major
        index.csv        one row per recording: id, row (manifest row), first_window,
                         num_windows, duration_s, window_starts_s (space-separated seconds)
        embeddings.json  {"format": "birdspec-embeddings", "backbone", "backbone_version",
                         "window_s": 3.0, "hop_s", "sample_rate_hz": 48000, "dim": 1024,
                         "dtype": "float16", "num_recordings", "total_windows",
                         "dataset": fingerprint of the manifest, "created_utc", ...}

This module owns that format (file names, the dataset
fingerprint, :func:`read_index`) (the writer, :func:`~birdspec.data.embed.embed_dataset`, is in
:mod:`birdspec.data.embed`); the readers
(:class:`~birdspec.data.embedding_dataset.EmbeddingCache`,
:class:`~birdspec.data.embedding_dataset.EmbeddingDataset`) are in
:mod:`birdspec.data.embedding_dataset`. No PyTorch here.

Windows (BirdNET: 3 s at 48 kHz, resampled from the stored 32 kHz audio with
soxr) are the training / embedding windows of :func:`birdspec.windowing.frame`:
they start at ``0, hop, 2 * hop, ...`` and lie inside the recording; the
trailing partial window is dropped; a recording shorter than one window
gives one zero-padded window. Recording ``row``'s embeddings are
``embeddings[first_window : first_window + num_windows]``.

Resuming: the work goes to ``DIR/embeddings/birdnet.partial/`` in chunks of
recordings (data appended and flushed first, then their index rows), so an
interrupted run continues where it stopped; the finished folder is renamed
into place at the end. Re-running on a finished cache with the same settings
is a no-op; a cache of a re-prepared dataset (other manifest) is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from birdspec.data.prepared import PARTIAL_SUFFIX, PreparedDataset

log = logging.getLogger(__name__)

EMBEDDINGS_DIR = "embeddings"
EMBEDDINGS_FILE = "embeddings.f16"
INDEX_FILE = "index.csv"
META_FILE = "embeddings.json"
SETTINGS_FILE = "settings.json"
EMBEDDINGS_FORMAT = "birdspec-embeddings"
EMBEDDINGS_DTYPE = np.dtype("<f2")
INDEX_COLUMNS = ("id", "row", "first_window", "num_windows", "duration_s", "window_starts_s")


class WindowEmbedder(Protocol):
    """What :func:`embed_dataset` needs from a backbone (:class:`~birdspec.birdnet.BirdnetBackbone` is one)."""

    name: str
    sample_rate_hz: int
    window_s: float
    embedding_dim: int

    @property
    def version(self) -> str: ...

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """``(N, window_s * sample_rate_hz)`` float32 -> ``(N, embedding_dim)``."""
        ...


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed_dataset` did.

    Attributes:
        path: the cache folder.
        num_recordings / num_windows: the whole cache.
        computed_recordings / computed_windows: embedded by this call (0 for a no-op).
        audio_s: seconds of audio embedded by this call.
        elapsed_s: wall time of the embedding (excluding model loading).
    """

    path: Path
    num_recordings: int
    num_windows: int
    computed_recordings: int
    computed_windows: int
    audio_s: float
    elapsed_s: float

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio embedded per second of wall time (0 when nothing was computed)."""
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def embedding_dir(root: str | Path, backbone: str = "birdnet") -> Path:
    """``root/embeddings/<backbone>``."""
    return Path(root) / EMBEDDINGS_DIR / backbone


def partial_embedding_dir(root: str | Path, backbone: str = "birdnet") -> Path:
    """``root/embeddings/<backbone>.partial``: where an unfinished cache is written."""
    final = embedding_dir(root, backbone)
    return final.with_name(final.name + PARTIAL_SUFFIX)


def dataset_fingerprint(data: PreparedDataset) -> dict[str, Any]:
    """Identifies the manifest the cache was computed for (recording ids, lengths and store offsets)."""
    m = data.manifest
    h = hashlib.sha1()
    for rid, off, n in zip(m["id"].astype(str), m["offset"].astype(np.int64), m["num_samples"].astype(np.int64)):
        h.update(f"{rid}:{off}:{n};".encode())
    return {"num_recordings": int(len(m)), "sha1": h.hexdigest(), "sample_rate_hz": int(data.sample_rate_hz)}


def read_index(path: Path) -> pd.DataFrame:
    """``index.csv`` of a cache, with integer ``row``, ``first_window`` and ``num_windows``."""
    df = pd.read_csv(path, dtype={"id": str, "window_starts_s": str}, keep_default_na=False)
    for col in ("row", "first_window", "num_windows"):
        df[col] = df[col].astype(np.int64)
    return df
