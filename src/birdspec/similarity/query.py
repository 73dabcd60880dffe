"""Search by example (``birdspec search``): the windows of an index most similar to a query clip.

The query clip (a recording, or ``start_s``-``end_s`` of it) is cut into the index's windows and embedded by the
index's backbone; its vector is the normalised mean of its windows' vectors (:func:`embed_clip`). Similarity is
cosine (the dot product of unit vectors), from -1 to 1 (BirdNET's embeddings are non-negative: 0 to 1).

Two ways to find the top N (``mode``):

- ``exact``: every vector is compared (NumPy, no extra library): exact, and fast enough up to
  :data:`EXACT_MAX_VECTORS` vectors (about 80 hours of audio at a 3 s hop).
- ``approximate``: the HNSW graph (:mod:`birdspec.similarity.ann`, ``birdspec[index]``) gives candidates
  whose similarities are then computed exactly from the stored vectors; recall@100 against exact search
  is measured in benchmarks/README.md ("agile.py (index and search part)").
- ``auto`` (default): approximate above :data:`EXACT_MAX_VECTORS` when the index has its graph, else exact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import ConfigError, DataError, DependencyError
from birdspec.similarity.index_store import SimilarityIndex, quantise

log = logging.getLogger(__name__)

SEARCH_MODES = ("auto", "exact", "approximate")
EXACT_MAX_VECTORS = 100_000
"""Above this many vectors ``auto`` searches the approximate index. Exact search of 100,000 1024-d float16 vectors
took 0.38 s a query (mean of the first three; the first one converts them to float32 once and keeps them) on 2 busy
cores; of 1,000,000 (streamed), 9 s (benchmarks/README.md, search_speed.py)."""
RESULT_COLUMNS = ("rank", "recording", "deployment", "start_s", "end_s", "similarity")


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found.

    Attributes:
        table: DataFrame ``rank, recording, deployment, start_s, end_s, similarity`` (best first; ``row`` is
            the window's row in the index).
        mode: 'exact' or 'approximate' (what ran).
        query_s: the query clip's length; seconds: the search's wall time (embedding the query included).
    """

    table: Any
    mode: str
    query_s: float
    seconds: float


def _top(scores: np.ndarray, k: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best of ``scores`` ``(n,)``, best first (ties: lower row first)."""
    k = min(k, scores.size)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    order = part[np.lexsort((part, -scores[part]))]
    return order.astype(np.int64) + offset, scores[order].astype(np.float32)


def exact_search(index: SimilarityIndex, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (k,), similarities (k,))`` of the ``k`` windows most similar to the unit vector ``query`` ``(D,)``,
    comparing every vector (kept in memory as float32 up to :data:`EXACT_MAX_VECTORS`, else streamed)."""
    q = np.asarray(query, dtype=np.float32)
    if len(index) <= EXACT_MAX_VECTORS:
        return _top(index.unit_matrix() @ q, k)
    rows, sims = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for a, block in index.unit_blocks():
        r, s = _top(block @ q, k, offset=a)
        merged_s, merged_r = np.concatenate([sims, s]), np.concatenate([rows, r])
        keep, _ = _top(merged_s, k)
        rows, sims = merged_r[keep], merged_s[keep]
    return rows, sims


def approximate_search(index: SimilarityIndex, query: np.ndarray, k: int, *,
                       expansion_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`exact_search`, from the HNSW graph's candidates rescored exactly.

    Raises:
        DependencyError: usearch is not installed. DataError: the index has no graph.
    """
    from birdspec.similarity.ann import ANN_INSTALL_HINT, usearch_available

    if not usearch_available():
        raise DependencyError(f"{index.folder}: {ANN_INSTALL_HINT}")
    stored = quantise(np.asarray(query, dtype=np.float32)[None], index.info.dtype)[0]
    rows = index.rows_of_keys(index.ann().search(stored, k, expansion_search=expansion_search))
    sims = index.unit_rows(rows) @ np.asarray(query, dtype=np.float32)
    order = np.lexsort((rows, -sims))
    return rows[order], sims[order].astype(np.float32)


def choose_mode(index: SimilarityIndex, mode: str) -> str:
    """'exact' or 'approximate' for ``mode`` ('auto': see the module doc)."""
    from birdspec.similarity.ann import usearch_available

    if mode not in SEARCH_MODES:
        raise ConfigError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    if mode != "auto":
        return mode
    if len(index) <= EXACT_MAX_VECTORS:
        return "exact"
    if index.ann_path is not None and usearch_available():
        return "approximate"
    log.warning("%s: %d vectors searched exactly (slow); for fast approximate search pip install 'birdspec[index]' "
                "and run `birdspec index` again", index.folder, len(index))
    return "exact"


def search_vector(index: SimilarityIndex, query: np.ndarray, *, top: int = 20, mode: str = "auto",
                  expansion_search: int | None = None) -> tuple[Any, str]:
    """The ``top`` windows most similar to a unit vector ``query`` ``(D,)``: ``(table, mode used)`` (the table
    as :class:`SearchResult`'s, with the index ``row``)."""
    import pandas as pd

    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    if query.shape != (index.info.dim,):
        raise ConfigError(f"the query vector has shape {query.shape}; this index holds {index.info.dim}-d vectors")
    used = choose_mode(index, mode)
    if used == "exact":
        rows, sims = exact_search(index, query, top)
    else:
        rows, sims = approximate_search(index, query, top, expansion_search=expansion_search)
    w = index.windows.iloc[rows]
    table = pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "recording": w["recording"].to_numpy(),
                          "deployment": w["deployment"].to_numpy(), "start_s": w["start_s"].to_numpy(),
                          "end_s": w["end_s"].to_numpy(), "similarity": np.round(sims.astype(np.float64), 4),
                          "row": rows})
    return table, used


def query_embedder(index: SimilarityIndex, *, checkpoint: str | Path | None = None) -> Any:
    """The backbone that made ``index`` (a run's checkpoint from ``index.json``, or ``checkpoint``), checked.

    Raises:
        ConfigError: the checkpoint is missing or is not the one the index was built with.
    """
    from birdspec.similarity.embedders import BIRDNET, open_embedder

    info = index.info
    if info.backbone == BIRDNET:
        return open_embedder(BIRDNET, hop_s=info.hop_s)
    ckpt = checkpoint or info.checkpoint
    if ckpt is None or not Path(ckpt).exists():
        raise ConfigError(f"{index.folder} was built with the checkpoint {info.checkpoint}, which is not there; "
                          "pass --checkpoint PATH (the same checkpoint, moved)")
    embedder = open_embedder(str(ckpt), hop_s=info.hop_s)
    if embedder.settings["checkpoint_sha256"] != info.checkpoint_sha256:
        embedder.close()
        raise ConfigError(f"{ckpt} is not the checkpoint {index.folder} was built with (another SHA-256); "
                          "search with that checkpoint, or index the archive again with this one")
    return embedder


def read_query(path: str | Path, *, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
    """The query clip ``(n,)`` float32 at 32 kHz: ``path`` from ``start_s`` (default 0) to ``end_s`` (default: its end).

    Raises:
        AudioError / DataError: the file is missing or does not decode; ConfigError: a bad time range.
    """
    from birdspec import audio

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such query recording")
    start = float(start_s or 0.0)
    if start < 0 or (end_s is not None and end_s <= start):
        raise ConfigError(f"the query range must have 0 <= --start-s < --end-s, got {start_s} .. {end_s}")
    wave = audio.load(p, offset_s=start, duration_s=None if end_s is None else end_s - start)
    if wave.size == 0:
        raise DataError(f"{p}: no audio between {start:g} s and {end_s if end_s is not None else 'the end'}")
    return wave


def search(index_dir: str | Path, query_path: str | Path, *, start_s: float | None = None, end_s: float | None = None,
           top: int = 20, mode: str = "auto", checkpoint: str | Path | None = None,
           expansion_search: int | None = None) -> SearchResult:
    """The ``top`` windows of the index ``index_dir`` most similar to a query clip (see the module doc).

    Raises:
        DataError: no index there, or an unreadable query. ConfigError: bad options.
        DependencyError: approximate search without usearch (pip install 'birdspec[index]').
    """
    from birdspec.config import SAMPLE_RATE_HZ
    from birdspec.similarity.embedders import embed_clip

    t0 = time.perf_counter()
    index = SimilarityIndex(index_dir)
    choose_mode(index, mode)  # a bad mode fails before the backbone loads
    wave = read_query(query_path, start_s=start_s, end_s=end_s)
    with query_embedder(index, checkpoint=checkpoint) as embedder:
        vector = embed_clip(embedder, wave)
    table, used = search_vector(index, vector, top=top, mode=mode, expansion_search=expansion_search)
    return SearchResult(table, used, wave.size / SAMPLE_RATE_HZ, time.perf_counter() - t0)
