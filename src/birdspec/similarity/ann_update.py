"""The approximate index (HNSW graph) of a rewritten embedding index: updated in place when recordings were added,
changed or removed since the last run, built whole only when it must be.

**Stable keys.** The windows of a recording have the keys ``first_key, first_key + 1, ...`` in the graph (one per
window, in order); ``recordings.csv`` keeps each recording's ``first_key`` beside its window count and the digest
(SHA-1) of its stored vectors (:func:`~birdspec.similarity.index_store.consolidate`). A graph built whole numbers
the windows in row order, so its keys are the row numbers of ``vectors.npy``: the graph of earlier versions, and
searches of an index built from scratch are unchanged. On a later run a recording whose name and digest are the
same keeps its keys (its rows may move: recordings before it came or went); a new or changed one gets fresh keys
from ``next_key`` (kept in ``index.json``'s ``ann``; a key is never given twice), and the keys of a changed or
removed one are removed from the graph. Searches map keys to rows
(:meth:`~birdspec.similarity.index_store.SimilarityIndex.rows_of_keys`).

**When the graph is built whole** (:func:`plan_graph`; otherwise it is updated: the old keys removed, the new
windows inserted, which costs about what inserting them costs in a build, plus reading the graph):

- there is no graph to update: none yet (the first run, or ``--approximate`` was off), its file is missing, or the
  index was made before stable keys (no ``recordings.csv``);
- it was built with other settings (dtype, connectivity, expansion_add, metric), or its file does not open;
- most of the vectors the graph held are gone: those removed from it since it was last built whole (this run's
  included; a changed recording's old windows count) outnumber those it keeps. Removed vectors stay in the graph
  as deleted nodes until new ones take their places, so a graph mostly of such nodes is built anew. Additions
  alone never rebuild it: an HNSW graph is built by inserting vectors one by one anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BUILD, UPDATE, UNCHANGED = "build", "incremental", "unchanged"
"""How a run made its graph (the summary's ``ann_update``): built whole, updated in place, or left as it was."""


@dataclass(frozen=True)
class GraphPlan:
    """What a run does to the graph.

    Attributes:
        mode: :data:`BUILD`, :data:`UPDATE` or :data:`UNCHANGED`; reason: why (for the log).
        first_keys: ``(R,)`` each recording's first key, in row order (``recordings.csv``).
        next_key: the first key never given; removed_since_build: vectors removed since the last whole build.
        remove: keys to remove from the old graph; add_rows / add_keys: rows of ``vectors.npy`` to insert, and their keys.
    """

    mode: str
    reason: str
    first_keys: np.ndarray
    next_key: int
    removed_since_build: int
    remove: np.ndarray
    add_rows: np.ndarray
    add_keys: np.ndarray


def _ranges(firsts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``firsts[i], firsts[i] + 1, ..., firsts[i] + counts[i] - 1`` for every i, concatenated (int64)."""
    counts = np.asarray(counts, dtype=np.int64)
    if not counts.sum():
        return np.zeros(0, np.int64)
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.asarray(firsts, dtype=np.int64), counts) + within


def plan_graph(recordings: Any, old: Any, old_ann: dict[str, Any] | None, *, dtype: str, graph_file: bool) -> GraphPlan:
    """The keys of ``recordings`` (``recording, windows, digest`` in row order) and what to do to the graph, given the
    previous index's ``old`` recordings table (None: none, or made before stable keys) and graph settings ``old_ann``
    (None: no graph); ``graph_file``: whether its file is there. The rule is in the module doc."""
    from birdspec.similarity.ann import same_graph_settings

    n = recordings["windows"].to_numpy(np.int64)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64) if len(n) else np.zeros(0, np.int64)
    total = int(n.sum())

    def build(reason: str) -> GraphPlan:
        every = np.arange(total, dtype=np.int64)
        return GraphPlan(BUILD, reason, starts.astype(np.uint64), total, 0, np.zeros(0, np.uint64), every, every.astype(np.uint64))

    if old_ann is None or not graph_file:
        return build("no graph to update")
    if old is None:
        return build("the index was made before stable keys")
    if not same_graph_settings(old_ann, dtype=dtype):
        return build("the graph was built with other settings")
    known = {(r, d): (int(k), int(w)) for r, d, k, w in zip(old["recording"], old["digest"], old["first_key"], old["windows"],
                                                             strict=True)}
    ids = list(zip(recordings["recording"], recordings["digest"], strict=True))
    kept = [known.get(i) for i in ids]
    present = set(ids)
    gone = [kw for i, kw in known.items() if i not in present]
    removed = sum(w for _k, w in gone)
    kept_windows = sum(kw[1] for kw in kept if kw is not None)
    removed_total = int(old_ann.get("removed_since_build", 0)) + removed
    if removed_total > kept_windows:
        return build(f"most of its vectors are gone ({removed_total} removed since it was built, {kept_windows} kept)")
    next_key = max([int(old_ann.get("next_key", 0))] + [k + w for k, w in known.values()])
    first_keys = np.zeros(len(n), np.uint64)
    new = np.zeros(len(n), bool)
    for i, k in enumerate(kept):
        if k is None:
            first_keys[i], new[i] = next_key, True
            next_key += int(n[i])
        else:
            first_keys[i] = k[0]
    remove = _ranges(np.array([k for k, _w in gone], np.int64), np.array([w for _k, w in gone], np.int64)).astype(np.uint64)
    add_rows = _ranges(starts[new], n[new])
    add_keys = _ranges(first_keys[new].astype(np.int64), n[new]).astype(np.uint64)
    mode = UPDATE if len(remove) or len(add_rows) else UNCHANGED
    return GraphPlan(mode, f"{len(remove)} vectors to remove, {len(add_rows)} to add, {kept_windows} kept", first_keys,
                     next_key, removed_total, remove, add_rows, add_keys)


def publish_graph(out: Path, recordings: Any, *, dtype: str, want: bool, previous_ann: dict[str, Any] | None, old: Any,
                  progress: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Write ``recordings.csv`` (with the windows' keys) and build, update or drop the graph of the index ``out``
    (whose ``vectors.npy`` is written); ``(its settings for index.json, or None; how it was made, or None)``.

    ``previous_ann`` / ``old``: the graph settings and recordings table of the index as the last run finished it
    (None when there was none or that run did not finish).
    """
    from birdspec.runtime import cpu_count
    from birdspec.similarity.ann import build_ann, update_ann
    from birdspec.similarity.index_store import ANN_FILE, VECTORS_FILE, write_recordings

    graph = out / ANN_FILE
    if not want:
        graph.unlink(missing_ok=True)
        rows = plan_graph(recordings, None, None, dtype=dtype, graph_file=False)  # keys = rows, for a graph built later
        write_recordings(out, recordings.assign(first_key=rows.first_keys))
        return None, None
    plan = plan_graph(recordings, old, previous_ann, dtype=dtype, graph_file=graph.is_file())
    vectors = np.load(out / VECTORS_FILE, mmap_mode="r")
    t0 = time.perf_counter()
    if plan.mode == UPDATE:
        with _progress_bar(len(plan.add_rows), progress) as bar:
            done = update_ann(graph, remove=plan.remove, add_keys=plan.add_keys, vectors=vectors, add_rows=plan.add_rows,
                              threads=cpu_count(), progress=bar)
        if not done:
            plan = plan_graph(recordings, None, None, dtype=dtype, graph_file=False)
    if plan.mode == BUILD:
        log.info("building the approximate index of %d vectors whole (%s)", len(vectors), plan.reason)
        with _progress_bar(len(vectors), progress) as bar:
            settings = build_ann(vectors, graph, dtype=dtype, threads=cpu_count(), progress=bar)
    else:
        settings = dict(previous_ann or {})
    write_recordings(out, recordings.assign(first_key=plan.first_keys))  # index.json, written last, vouches for both
    seconds = round(time.perf_counter() - t0, 3)
    settings.update({"next_key": plan.next_key, "removed_since_build": plan.removed_since_build})
    if plan.mode == BUILD:
        settings["build_s"] = seconds
        log.info("approximate index of %d vectors built in %.1f s", len(vectors), seconds)
    else:
        settings["last_update"] = {"removed": len(plan.remove), "added": len(plan.add_rows), "seconds": seconds}
        log.info("approximate index %s: %s (%d vectors) in %.1f s", "updated in place" if plan.mode == UPDATE else "unchanged",
                 plan.reason, len(vectors), seconds)
    return settings, plan.mode


@contextmanager
def _progress_bar(total: int, show: bool) -> Iterator[Callable[[int], Any] | None]:
    """A tqdm bar of ``total`` vectors on stderr (its ``update`` is the progress callback), or None."""
    if not show:
        yield None
        return
    import sys

    from tqdm import tqdm

    bar = tqdm(total=total, unit="vec", desc="vector index", file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()
