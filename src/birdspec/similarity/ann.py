"""The approximate vector index of an embedding index: an HNSW graph built with usearch (``birdspec[index]``).

Why usearch (measured on 2 busy cores, benchmarks/README.md "agile.py (index and search part)"): on the same
100,000 float16 vectors faiss-cpu's HNSW (HNSWSQ fp16, same M and efConstruction) built in 101 s against 141 s and
answered top-100 queries in 1.5 ms against 2.4 ms at the same recall (0.985 / 0.983): both are far inside the
goal (50 ms at recall 0.95). usearch was kept for what faiss's HNSW lacks or makes harder: removing and
re-adding vectors by key (a rerun of ``birdspec index`` updates the graph in place:
:mod:`birdspec.similarity.ann_update`), opening a saved index memory-mapped (``view=True``: instant, pages read
on demand), float16 and int8 cosine natively; and it installs 13 MB of wheels (usearch + its numkong kernels)
against faiss-cpu's 19 MB. Apache-2.0 (faiss: MIT).

The graph's keys are the windows' stable keys (``recordings.csv``, :mod:`birdspec.similarity.ann_update`; for a
graph built whole they are the row numbers of ``vectors.npy``); its vectors are the stored ones (float16 or int8),
metric cosine. Search returns candidate keys, which the index maps to rows
(:meth:`~birdspec.similarity.index_store.SimilarityIndex.rows_of_keys`); :mod:`birdspec.similarity.query` rescores
them exactly from the stored vectors, so both search modes report the same similarity for the same window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import DependencyError
from birdspec.fileio import write_with

log = logging.getLogger(__name__)

ANN_INSTALL_HINT = "approximate search needs a vector index library: pip install 'birdspec[index]' (usearch)"
CONNECTIVITY = 16
"""HNSW edges per node (usearch's default)."""
EXPANSION_ADD = 128
"""Candidates kept while inserting (usearch's default)."""
EXPANSION_SEARCH = 256
"""Candidates kept while searching: recall@100 0.9998 at 6.7 ms (median) per top-100 query on the synthetic
million-vector index (benchmarks/README.md; 64: 0.998 at 7.6 ms, the same cost there)."""
ADD_ROWS = 16_384
SERIAL_ADD_ROWS = 4_096
"""Fewer vectors than this are inserted by one thread. usearch's concurrent insertion can leave a node that no search
reaches (usearch issue #735, open in 2.26): measured on 300 clustered 1280-d vectors, 8 threads left 8 of them
unfindable even as their own query, 4 threads 6, one thread none; on 38 vectors 4 threads did so in 9 builds of 200.
One thread makes a small graph whole and the same on every machine, in under a few seconds; larger inserts keep
the threads (20,000 random vectors on 2 cores: one thread 66 s with 1 unfindable, 2 threads 26 s with 2, 4 threads
31 s with 36)."""
_USEARCH_DTYPES = {"float16": "f16", "int8": "i8"}


def usearch_available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


def _usearch() -> Any:
    """The ``usearch.index`` module.

    Raises:
        DependencyError: usearch is not installed.
    """
    try:
        import usearch.index as ui
    except ImportError as exc:
        raise DependencyError(ANN_INSTALL_HINT) from exc
    return ui


def _add(index: Any, keys: np.ndarray, vectors: np.ndarray, rows: np.ndarray | None, *, threads: int,
         progress: Callable[[int], None] | None) -> None:
    """Insert ``vectors[rows]`` (all rows when None) under ``keys``, ``ADD_ROWS`` at a time (one thread below
    ``SERIAL_ADD_ROWS``)."""
    n = len(keys)
    if n < SERIAL_ADD_ROWS:
        threads = 1
    for a in range(0, n, ADD_ROWS):
        block = vectors[a : a + ADD_ROWS] if rows is None else vectors[rows[a : a + ADD_ROWS]]
        index.add(np.asarray(keys[a : a + ADD_ROWS], dtype=np.uint64), np.ascontiguousarray(block), threads=threads)
        if progress is not None:
            progress(len(block))


def build_ann(vectors: np.ndarray, path: Path, *, dtype: str, threads: int = 0, expansion_search: int = EXPANSION_SEARCH,
              keys: np.ndarray | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Build the HNSW graph of stored vectors ``(N, D)`` (float16 or int8) under ``keys`` (default: the row numbers)
    into ``path`` (atomically), ``ADD_ROWS`` rows at a time; its settings for ``index.json``.

    Raises:
        DependencyError: usearch is not installed.
    """
    import usearch

    ui = _usearch()
    n, dim = vectors.shape
    index = ui.Index(ndim=dim, metric="cos", dtype=_USEARCH_DTYPES[dtype], connectivity=CONNECTIVITY,
                     expansion_add=EXPANSION_ADD, expansion_search=expansion_search)
    _add(index, np.arange(n, dtype=np.uint64) if keys is None else keys, vectors, None, threads=threads, progress=progress)
    write_with(path, lambda tmp: index.save(str(tmp)))
    return {"library": "usearch", "version": usearch.__version__, "kind": "hnsw", "metric": "cos",
            "dtype": dtype, "connectivity": CONNECTIVITY, "expansion_add": EXPANSION_ADD,
            "expansion_search": int(expansion_search)}


def same_graph_settings(settings: dict[str, Any] | None, *, dtype: str) -> bool:
    """Whether a graph with ``settings`` (``index.json``'s ``ann``) is what :func:`build_ann` would build now."""
    wanted = {"library": "usearch", "kind": "hnsw", "metric": "cos", "dtype": dtype, "connectivity": CONNECTIVITY,
              "expansion_add": EXPANSION_ADD}
    return settings is not None and all(settings.get(k) == v for k, v in wanted.items())


def update_ann(path: Path, *, remove: np.ndarray, add_keys: np.ndarray, vectors: np.ndarray, add_rows: np.ndarray,
               threads: int = 0, progress: Callable[[int], None] | None = None) -> bool:
    """Change the saved graph ``path`` in place: drop the vectors of keys ``remove``, insert ``vectors[add_rows]``
    under ``add_keys``, save it (atomically). False, with nothing changed, when the file does not open as a graph.

    Raises:
        DependencyError: usearch is not installed.
    """
    ui = _usearch()
    try:
        index = ui.Index.restore(str(path))  # in memory: a memory-mapped view cannot change
    except (RuntimeError, ValueError, OSError) as exc:
        log.warning("%s: the graph does not open (%s); building it anew", path, exc)
        return False
    if index is None:
        return False
    if len(remove):
        index.remove(np.asarray(remove, dtype=np.uint64), threads=threads)
    _add(index, add_keys, vectors, np.asarray(add_rows, dtype=np.int64), threads=threads, progress=progress)
    write_with(path, lambda tmp: index.save(str(tmp)))
    return True


class AnnIndex:
    """A saved HNSW graph, memory-mapped (opening is instant; pages are read as the search visits them)."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        ui = _usearch()
        self.index = ui.Index.restore(str(path), view=True)
        if self.index is None:
            from birdspec.errors import DataError

            raise DataError(f"{path}: not a usearch index (damaged?); run `birdspec index` again")
        self.dtype = str(settings.get("dtype", "float16"))
        self.index.expansion_search = int(settings.get("expansion_search", EXPANSION_SEARCH))

    def __len__(self) -> int:
        return len(self.index)

    def search(self, query: np.ndarray, k: int, *, expansion_search: int | None = None, threads: int = 1) -> np.ndarray:
        """Keys of (about) the ``k`` nearest stored vectors to ``query`` ``(D,)``, a unit vector in the stored
        form (:func:`~birdspec.similarity.index_store.quantise`), best first."""
        if expansion_search is not None:
            self.index.expansion_search = int(expansion_search)
        matches = self.index.search(np.ascontiguousarray(query), int(k), threads=threads)
        return np.asarray(matches.keys, dtype=np.int64)
