"""The on-disk embedding index of an archive (``birdspec index``): its layout, writing and reading.

An index folder::

    INDEX/index.json        what the vectors are: backbone (and the checkpoint's SHA-256 for a run), window_s,
                            hop_s, dim, dtype, metric (cosine), the archive, counts, the vector index's settings
    INDEX/windows.csv       one row per vector, in vector order: recording (path relative to ARCHIVE),
                            deployment (the top folder under ARCHIVE; '' for a file directly in it), start_s, end_s
    INDEX/vectors.npy       (N, D) L2-normalised vectors, float16 (default) or int8 (each row scaled by
                            127 / its largest magnitude: cosine is scale-free), NumPy format (memory-mapped)
    INDEX/recordings.csv    one row per recording, in row order: recording, windows, digest (of its stored
                            vectors), first_key (its windows' keys in the graph are first_key, first_key + 1, ...:
                            stable while the recording is unchanged, :mod:`birdspec.similarity.ann_update`)
    INDEX/vectors.usearch   the approximate (HNSW) vector index over those rows, under their keys
                            (absent when usearch is not installed: exact search only)
    INDEX/run.json, parts/  the resumable ledger of :mod:`birdspec.prediction.archive`: one part per recording
                            (its windows and float16 vectors) and its ledger entry (size, mtime), kept so a
                            later run embeds only new or changed recordings
    INDEX/failed.csv        recordings that could not be embedded, with the reason

The consolidated files are rewritten from the parts (one recording in memory at a time) and ``index.json`` is
written last: a reader checks its counts against the other files (:func:`open_index`).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import ConfigError, DataError
from birdspec.fileio import read_json, write_json, write_with

log = logging.getLogger(__name__)

SIMILARITY_INDEX_FILE = "index.json"
WINDOWS_FILE = "windows.csv"
VECTORS_FILE = "vectors.npy"
ANN_FILE = "vectors.usearch"
RECORDINGS_FILE = "recordings.csv"
RECORDING_COLUMNS = ("recording", "windows", "digest", "first_key")
INDEX_FORMAT = "birdspec-similarity-index"
INDEX_RUN_FORMAT = "birdspec-index-run"
"""The ``format`` of the index's ledger (run.json), beside predict's."""
INDEX_FORMAT_VERSION = 1
INDEX_WINDOW_COLUMNS = ("recording", "deployment", "start_s", "end_s")
VECTOR_DTYPES = ("float16", "int8")
DEFAULT_DTYPE = "float16"
"""Chosen by measurement (benchmarks/README.md, "agile.py (index and search part)"): int8 halves the vectors
but loses recall against float32 exact search; float16 keeps it."""
PART_DTYPE = np.float16
"""How the per-recording parts keep their vectors (a part is rewritten to ``dtype`` on consolidation)."""
_INT8_MAX = 127.0
_ROWS = 65_536


@dataclass(frozen=True)
class IndexInfo:
    """``index.json``: what an index holds.

    Attributes:
        backbone: 'birdnet' or 'run'; ``checkpoint`` / ``checkpoint_sha256`` for a run.
        window_s / hop_s / min_partial_s: the windows (``birdspec predict``'s rules).
        dim / dtype: vector size and storage ('float16' or 'int8'); metric: 'cosine'.
        num_vectors / num_recordings / audio_hours: what is in it.
        ann: the approximate index's settings (library, version, connectivity, expansion_add,
            expansion_search, dtype), or None when there is none.
    """

    backbone: str
    window_s: float
    hop_s: float
    min_partial_s: float
    dim: int
    dtype: str
    num_vectors: int
    num_recordings: int
    audio_hours: float
    archive: str
    backbone_version: str = ""
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    metric: str = "cosine"
    ann: dict[str, Any] | None = None
    created_utc: str = ""
    format: str = INDEX_FORMAT
    format_version: int = INDEX_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> IndexInfo:
        """The ``index.json`` of ``folder``.

        Raises:
            DataError: no index there, or another kind of file.
        """
        raw = read_json(folder / SIMILARITY_INDEX_FILE)
        if raw is None:
            hint = " (an unfinished `birdspec index` run: run it again)" if (folder / "parts").is_dir() else ""
            raise DataError(f"{folder}: not an embedding index (no {SIMILARITY_INDEX_FILE}){hint}; make one with `birdspec index`")
        if raw.get("format") != INDEX_FORMAT:
            raise DataError(f"{folder / SIMILARITY_INDEX_FILE}: not a birdspec embedding index")
        if int(raw.get("format_version", 0)) > INDEX_FORMAT_VERSION:
            raise DataError(f"{folder}: made by a newer birdspec (index format {raw['format_version']}); upgrade birdspec")
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in names})

    def write(self, folder: Path) -> None:
        write_json(folder / SIMILARITY_INDEX_FILE, {k: getattr(self, k) for k in self.__dataclass_fields__})


def deployment_of(name: str) -> str:
    """The top folder of an archive-relative path (``'siteA/2024/r.wav'`` -> ``'siteA'``; ``'r.wav'`` -> ``''``)."""
    parts = Path(name).parts
    return parts[0] if len(parts) > 1 else ""


def quantise(vectors: np.ndarray, dtype: str) -> np.ndarray:
    """Normalised float vectors ``(N, D)`` -> their stored form (float16, or int8 scaled per row to +-127)."""
    x = np.asarray(vectors, dtype=np.float32)
    if dtype == "float16":
        return x.astype(np.float16)
    if dtype == "int8":
        peak = np.abs(x).max(axis=1, keepdims=True)
        scale = np.divide(_INT8_MAX, peak, out=np.zeros_like(peak), where=peak > 0)
        return np.rint(x * scale).astype(np.int8)
    raise ConfigError(f"unknown vector dtype {dtype!r}; use one of {', '.join(VECTOR_DTYPES)}")


def as_unit_float32(stored: np.ndarray) -> np.ndarray:
    """Stored vectors ``(n, D)`` (float16 or int8) -> float32 rows of unit length (zero rows stay zero)."""
    x = np.asarray(stored, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def consolidate(items: Sequence[Any], parts: Path, out: Path, *, dtype: str, dim: int) -> tuple[dict[str, int | float], Any]:
    """Write ``windows.csv`` and ``vectors.npy`` from the finished parts of ``items`` (in their order), one
    recording in memory at a time; the counts (``num_vectors``, ``num_recordings``, ``failed``, ``audio_hours``) and
    the recordings (DataFrame ``recording, windows, digest`` in row order: digest = SHA-1 of its stored vectors).

    ``items`` are :class:`~birdspec.prediction.archive.Item` s whose ``name`` is relative to the archive.
    """
    import pandas as pd

    from birdspec.prediction.archive import read_part

    entries = [read_json(parts / f"{it.key}.json") or {} for it in items]
    ok = [(it, e) for it, e in zip(items, entries, strict=True) if not e.get("error")]
    total = sum(int(e.get("windows", 0)) for _it, e in ok)
    hours = sum(float(e.get("decoded_s") or 0.0) for _it, e in ok) / 3600.0
    digests: list[str] = []
    counts: list[int] = []

    def write_vectors(tmp: Path) -> None:
        store = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(total, dim))
        row = 0
        for it, _e in ok:
            v = np.asarray(read_part(it, parts).scores)
            if v.shape[1:] != (dim,):
                raise DataError(f"{it.path}: its part holds {v.shape[1:]} vectors, the index {dim}-d; rerun with --overwrite")
            stored = np.ascontiguousarray(quantise(v, dtype))
            store[row : row + len(v)] = stored
            digests.append(hashlib.sha1(stored.tobytes()).hexdigest()[:20])
            counts.append(len(v))
            row += len(v)
        store.flush()
        del store

    def write_windows(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(INDEX_WINDOW_COLUMNS)
            for it, _e in ok:
                windows = read_part(it, parts).windows
                rel, dep = Path(it.name).as_posix(), deployment_of(it.name)
                w.writerows((rel, dep, f"{a:.6g}", f"{b:.6g}") for a, b in zip(windows["start_s"], windows["end_s"], strict=True))

    write_with(out / WINDOWS_FILE, write_windows)
    write_with(out / VECTORS_FILE, write_vectors)
    recordings = pd.DataFrame({"recording": [Path(it.name).as_posix() for it, _e in ok], "windows": counts, "digest": digests})
    return ({"num_vectors": total, "num_recordings": len(ok), "failed": len(items) - len(ok), "audio_hours": round(hours, 4)},
            recordings)


def read_recordings(folder: Path) -> Any:
    """The recordings table of an index (``recording, windows, digest, first_key``), or None for an index made
    before it existed (its graph's keys are row numbers)."""
    import pandas as pd

    path = folder / RECORDINGS_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype={"recording": str, "digest": str, "windows": np.int64, "first_key": np.uint64},
                            keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); run `birdspec index` again") from exc
    return table


def write_recordings(folder: Path, table: Any) -> None:
    from birdspec.fileio import write_csv

    write_csv(folder / RECORDINGS_FILE, table[list(RECORDING_COLUMNS)], float_format=None)


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimilarityIndex:
    """An index folder opened for search: its :class:`IndexInfo`, windows table and memory-mapped vectors.

    Attributes:
        folder / info: where and what.
        windows: DataFrame ``recording, deployment, start_s, end_s`` (row i = vector i).
        vectors: ``(N, D)`` memory-mapped stored vectors (float16 or int8).
    """

    def __init__(self, folder: str | Path) -> None:
        import pandas as pd

        self.folder = Path(folder)
        if not self.folder.exists():
            raise DataError(f"{self.folder}: no such index folder; make one with `birdspec index ARCHIVE --out {self.folder}`")
        self.info = IndexInfo.read(self.folder)
        try:
            self.windows = pd.read_csv(self.folder / WINDOWS_FILE, dtype={"recording": str, "deployment": str},
                                       keep_default_na=False)
            self.vectors = np.load(self.folder / VECTORS_FILE, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.folder}: the index is incomplete or damaged ({exc}); run `birdspec index` again") from exc
        n = self.info.num_vectors
        if len(self.windows) != n or self.vectors.shape != (n, self.info.dim):
            raise DataError(f"{self.folder}: {SIMILARITY_INDEX_FILE} counts {n} vectors, {WINDOWS_FILE} has {len(self.windows)} rows and "
                            f"{VECTORS_FILE} {self.vectors.shape[0]}: the index is being rebuilt or damaged; run `birdspec index` again")
        self._unit: np.ndarray | None = None
        self._ann: Any = None
        self._key_map: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.info.num_vectors

    @property
    def ann_path(self) -> Path | None:
        """The approximate index file, or None when this index has none."""
        p = self.folder / ANN_FILE
        return p if self.info.ann is not None and p.is_file() else None

    def ann(self) -> Any:
        """The approximate index (:class:`~birdspec.similarity.ann.AnnIndex`), opened once and kept.

        Raises:
            DataError: this index has none. DependencyError: usearch is not installed.
        """
        if self._ann is None:
            from birdspec.similarity.ann import AnnIndex

            path = self.ann_path
            if path is None or self.info.ann is None:
                raise DataError(f"{self.folder} has no approximate index (usearch was not installed when it was built); "
                                "run `birdspec index` again to add it, or search with --mode exact")
            self._ann = AnnIndex(path, self.info.ann)
        return self._ann

    def rows_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """The rows of the windows with graph keys ``keys`` (``recordings.csv``; keys no window has are dropped)."""
        keys = np.asarray(keys, dtype=np.uint64)
        if self._key_map is None:
            table = read_recordings(self.folder)
            if table is None:  # an index made before stable keys: the graph's keys are row numbers
                self._key_map = (np.zeros(1, np.uint64), np.zeros(1, np.int64), np.array([len(self)], np.int64))
            else:
                n = table["windows"].to_numpy(np.int64)
                if int(n.sum()) != len(self):
                    raise DataError(f"{self.folder}: {RECORDINGS_FILE} counts {int(n.sum())} windows, the index {len(self)}; "
                                    "run `birdspec index` again")
                first = table["first_key"].to_numpy(np.uint64)
                order = np.argsort(first, kind="stable")
                starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
                self._key_map = (first[order], starts[order], n[order])
        first, starts, n = self._key_map
        j = np.searchsorted(first, keys, side="right") - 1
        jj = np.maximum(j, 0)
        offset = keys.astype(np.int64) - first[jj].astype(np.int64)
        ok = (j >= 0) & (offset >= 0) & (offset < n[jj])
        return (starts[jj] + offset)[ok]

    def unit_rows(self, rows: np.ndarray) -> np.ndarray:
        """Float32 unit vectors ``(len(rows), D)`` of some rows."""
        return as_unit_float32(self.vectors[np.asarray(rows, dtype=np.int64)])

    def unit_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, float32 unit vectors (n, D))`` of every block of at most 65,536 rows, in order: the whole
        index streamed with flat memory."""
        for a in range(0, len(self), _ROWS):
            yield a, as_unit_float32(self.vectors[a : a + _ROWS])

    def unit_matrix(self) -> np.ndarray:
        """All vectors as float32 unit rows ``(N, D)``, computed once and kept (small indexes)."""
        if self._unit is None:
            out = np.empty((len(self), self.info.dim), np.float32)
            for a, block in self.unit_blocks():
                out[a : a + len(block)] = block
            self._unit = out
        return self._unit


def file_size_mb(folder: Path, names: Sequence[str]) -> float:
    return round(sum(os.path.getsize(folder / n) for n in names if (folder / n).is_file()) / 1e6, 3)
