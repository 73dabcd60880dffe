"""The per-window backbone embedding cache beside a prepared dataset: its format and its writer.

``birdspec embed DIR --backbone birdnet`` (:func:`birdspec.data.embed.embed_dataset`) runs a frozen
backbone over every stored recording once, then over a set of no-bird clips, and writes::

    DIR/embeddings/birdnet/
        embeddings.f16   raw little-endian float16, shape (total_windows, dim), row-major
        index.csv        one row per recording: id, row (manifest row), first_window,
                         num_windows, duration_s, window_starts_s (space-separated seconds)
        nocall.f16       the no-bird clips' windows: float16 (nocall_windows, dim), as embeddings.f16
        nocall.csv       one row per no-bird clip: key, kind, part, row, id, source, start_s,
                         first_window, num_windows (see below)
        embeddings.json  {"format": "birdspec-embeddings", "format_version": 2, "backbone",
                         "backbone_version", "window_s": 3.0, "hop_s", "sample_rate_hz": 48000,
                         "dim": 1024, "dtype": "float16", "num_recordings", "total_windows",
                         "dataset": fingerprint of the manifest, "created_utc", ...,
                         "nocall": {"settings", "num_clips", "total_windows", "clips" (per kind
                         and part), "file", "index", "elapsed_s", "created_utc"}}

This module owns that format (file names, the dataset
fingerprint, :func:`read_index`, :func:`read_nocall_index`, the partial runs' :func:`load_partial` and
:func:`append_embeddings`) (the writers,
:func:`~birdspec.data.embed.embed_dataset` and :mod:`birdspec.data.embed_nocall`, are in
:mod:`birdspec.data`); the readers
(:class:`~birdspec.data.embedding_dataset.EmbeddingCache`,
:class:`~birdspec.data.embedding_dataset.EmbeddingDataset`,
:mod:`birdspec.data.nocall_embeddings`) are in their own modules. No PyTorch here.

Windows (BirdNET: 3 s at 48 kHz, resampled from the stored 32 kHz audio with
soxr) are the training / embedding windows of :func:`birdspec.windowing.frame`:
they start at ``0, hop, 2 * hop, ...`` and lie inside the recording; the
trailing partial window is dropped; a recording shorter than one window
gives one zero-padded window. Recording ``row``'s embeddings are
``embeddings[first_window : first_window + num_windows]``.

No-bird clips (format version 2; a cache without ``"nocall"`` in ``embeddings.json`` (version 1, or
one whose no-bird part was interrupted) has none: running ``birdspec embed`` again adds them without
recomputing the recordings'). A clip is one prediction output window without a bird and the context
its BirdNET windows cover (``settings.clip_s``: 7 s for the dataset's 5 s ``window_s``), embedded exactly
as ``birdspec predict`` embeds an output window (:mod:`birdspec.birdnet.geometry`, ``settings.window_rule``:
3 s windows every 1 s centred in the window, 5 for 5 s; caches that record no rule: those inside it, 3);
clip ``i``'s windows are ``nocall[first_window : first_window + num_windows]``.
``kind`` is one of :data:`NOCALL_KINDS`:

- ``synthetic``: the built-in synthetic backgrounds (:func:`~birdspec.data.backgrounds.random_background`:
  silence, noise, wind, rain, hum, chorus at -90 to -20 dBFS), a fixed seeded set; ``source`` names the kind
  and level; ``part`` is ``train`` or ``val`` (every :data:`NOCALL_VAL_EVERY`-th clip: disjoint).
- ``stretch``: cut from the quiet stretches of a recording (:func:`~birdspec.data.nocall.quiet_stretches`);
  ``row`` / ``id`` are its manifest row and recording id (training uses its training rows' clips,
  validation its validation rows'); ``part`` is empty.
- ``background``: cut from the recordings of ``embed --background DIR`` (``source``: the file, relative
  to DIR; ``part`` as for synthetic clips, over all of them in order).

``start_s`` is where the clip starts in its source (a source shorter than a clip is repeated). ``key``
names a clip uniquely (kind, source, position): a resumed or extended run reuses the clips it has.

Resuming: the work goes to ``DIR/embeddings/birdnet.partial/`` in chunks of
recordings (data appended and flushed first, then their index rows), so an
interrupted run continues where it stopped; the finished folder is renamed
into place at the end; the no-bird clips then go to ``DIR/embeddings/birdnet.nocall.partial/``
the same way and are moved into the cache when all are done. Re-running on a finished cache with the
same settings is a no-op; a cache of a re-prepared dataset (other manifest) is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from birdspec.data.prepared import PARTIAL_SUFFIX, PreparedDataset
from birdspec.errors import DataError
from birdspec.fileio import write_csv

log = logging.getLogger(__name__)

EMBEDDINGS_DIR = "embeddings"
EMBEDDINGS_FILE = "embeddings.f16"
INDEX_FILE = "index.csv"
EMBEDDINGS_META_FILE = "embeddings.json"
EMBED_SETTINGS_FILE = "settings.json"
EMBEDDINGS_FORMAT = "birdspec-embeddings"
EMBEDDINGS_DTYPE = np.dtype("<f2")
INDEX_COLUMNS = ("id", "row", "first_window", "num_windows", "duration_s", "window_starts_s")
EMBEDDINGS_FORMAT_VERSION = 2
"""Version 2 added the no-bird clips (``nocall`` in ``embeddings.json``); version 1 caches have none."""
NOCALL_EMBEDDINGS_FILE = "nocall.f16"
NOCALL_INDEX_FILE = "nocall.csv"
NOCALL_COLUMNS = ("key", "kind", "part", "row", "id", "source", "start_s", "first_window", "num_windows")
NOCALL_KINDS = ("stretch", "background", "synthetic")
"""Where no-bird clips come from (the order :class:`~birdspec.data.nocall.NoCallSource` lists its kinds)."""
NOCALL_VAL_EVERY = 5
"""Every 5th synthetic (and background) clip is a validation clip, the others training clips."""
NOCALL_PARTIAL_SUFFIX = ".nocall" + PARTIAL_SUFFIX


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
        nocall_clips / nocall_windows: the cache's no-bird clips and their windows.
        computed_nocall_clips / computed_nocall_windows / nocall_elapsed_s: embedded by this call, and
            its wall time (planning included).
    """

    path: Path
    num_recordings: int
    num_windows: int
    computed_recordings: int
    computed_windows: int
    audio_s: float
    elapsed_s: float
    nocall_clips: int = 0
    nocall_windows: int = 0
    computed_nocall_clips: int = 0
    computed_nocall_windows: int = 0
    nocall_elapsed_s: float = 0.0

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


def nocall_partial_dir(root: str | Path, backbone: str = "birdnet") -> Path:
    """``root/embeddings/<backbone>.nocall.partial``: where unfinished no-bird clips are written."""
    final = embedding_dir(root, backbone)
    return final.with_name(final.name + NOCALL_PARTIAL_SUFFIX)


def dataset_fingerprint(data: PreparedDataset) -> dict[str, Any]:
    """Identifies the manifest the cache was computed for (recording ids, lengths and store offsets)."""
    m = data.manifest
    h = hashlib.sha1()
    for rid, off, n in zip(m["id"].astype(str), m["offset"].astype(np.int64), m["num_samples"].astype(np.int64), strict=True):
        h.update(f"{rid}:{off}:{n};".encode())
    return {"num_recordings": int(len(m)), "sha1": h.hexdigest(), "sample_rate_hz": int(data.sample_rate_hz)}


def read_index(path: Path) -> pd.DataFrame:
    """``index.csv`` of a cache, with integer ``row``, ``first_window`` and ``num_windows``."""
    df = pd.read_csv(path, dtype={"id": str, "window_starts_s": str}, keep_default_na=False)
    for col in ("row", "first_window", "num_windows"):
        df[col] = df[col].astype(np.int64)
    return df


def read_nocall_index(path: Path) -> pd.DataFrame:
    """``nocall.csv`` of a cache (or of its partial no-bird run), integer ``row``, ``first_window``, ``num_windows``."""
    df = pd.read_csv(path, dtype={c: str for c in ("key", "kind", "part", "id", "source")}, keep_default_na=False)
    for col in ("row", "first_window", "num_windows"):
        df[col] = df[col].astype(np.int64)
    df["start_s"] = df["start_s"].astype(np.float64)
    return df


# ------------------------------------------------------------ the writers' partial runs


def load_partial(partial: Path, dim: int, *, index_file: str = INDEX_FILE, data_file: str = EMBEDDINGS_FILE,
                 reader: Callable[[Path], pd.DataFrame] = read_index) -> pd.DataFrame:
    """The index rows of a usable partial cache (data file trimmed to them; the recordings', or another
    index / data pair of the same layout: the no-bird clips')."""
    index = reader(partial / index_file)
    data_path = partial / data_file
    have = data_path.stat().st_size // (dim * EMBEDDINGS_DTYPE.itemsize) if data_path.exists() else 0
    ends = (index["first_window"] + index["num_windows"]).to_numpy()
    consistent = (index["first_window"].to_numpy() == np.concatenate([[0], ends[:-1]])) if len(index) else np.ones(0, bool)
    ok = np.cumprod(consistent & (ends <= have)).astype(bool)
    index = index[ok].reset_index(drop=True)
    keep = int(index["first_window"].iloc[-1] + index["num_windows"].iloc[-1]) if len(index) else 0
    with open(data_path, "ab") as f:
        f.truncate(keep * dim * EMBEDDINGS_DTYPE.itemsize)
    write_csv(partial / index_file, index, float_format=None)
    return index


def append_embeddings(path: Path, model: WindowEmbedder, windows: np.ndarray) -> np.ndarray:
    """Embed ``windows`` ``(N, samples)`` and append them to the raw data file ``path`` (flushed to disk)."""
    emb = np.asarray(model.embed(windows), dtype=np.float32)
    if emb.shape != (windows.shape[0], model.embedding_dim) or not np.isfinite(emb).all():
        raise DataError(f"the {model.name} backbone returned embeddings of shape {emb.shape} (or non-finite values)")
    with open(path, "ab") as f:
        f.write(np.ascontiguousarray(emb, dtype=EMBEDDINGS_DTYPE).tobytes())
        f.flush()
        os.fsync(f.fileno())
    return emb
