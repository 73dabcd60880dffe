"""Search by example and the agile loop in the app (issue 31): "find similar" and agile rounds on the indexes of
``birdspec serve --index``.

Both write a *table* the Review page lists and opens as it does a prediction: ``WORK/predictions/<id>/`` with
``detections.csv`` (``file`` = the full path of the window's recording in the index's archive, ``start_s``,
``end_s``, ``label`` = the species searched for, ``confidence``) and ``prediction.json`` whose ``similar`` entry
says what made it (:data:`SEARCH` or :data:`ROUND`, the index's key, the species). Verdicts are given in Review
and kept beside the table (``detections.verdicts.csv``), as for any prediction.

- a search (:func:`find_similar`): the ``top`` windows of the index most similar to a query, a window of a
  recording (a box drawn in Analyze, a card in Review); ``confidence`` is the cosine similarity. A query that is
  a window of the index uses its stored vector; any other is embedded by the index's backbone (as ``birdspec
  search``).
- a round (:func:`run_round`): :func:`~birdspec.similarity.agile.run_agile` on every verdict file of that index's
  searches and rounds so far; its folder holds ``agile.json`` and ``scores.csv`` as the CLI writes them, and its
  next windows (the CLI's ``next.csv``) as ``detections.csv``, the table Review opens; a BirdNET index's
  classifier goes to ``RUNS/<round id>/model.pt``, where Analyze lists checkpoints.

The archive of each index is served to read (:meth:`~birdspec.app.paths.Roots.add_folder`: the cards play and
draw its recordings), never listed.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.app import predictions as preds
from birdspec.app import review as rv
from birdspec.app.paths import NotFound, Roots, ServeConfig
from birdspec.errors import ConfigError, DataError
from birdspec.fileio import read_json, safe_name, write_json

log = logging.getLogger(__name__)

SEARCH = "search"
ROUND = "agile"
META_KEY = "similar"
"""The entry of ``prediction.json`` that marks a search or round table."""
MAX_TOP = 1000
"""The most windows one search returns (a Review page shows 300 a species)."""


def discover(dirs: Sequence[Path]) -> list[Path]:
    """The index folders of ``--index`` arguments: each one an index (``index.json``), or a folder of them.

    Raises:
        ConfigError: a folder that is neither.
    """
    from birdspec.similarity.index_store import SIMILARITY_INDEX_FILE

    out: list[Path] = []
    for d in map(Path, dirs):
        if (d / SIMILARITY_INDEX_FILE).is_file():
            out.append(d)
            continue
        found = sorted(p.parent for p in d.glob(f"*/{SIMILARITY_INDEX_FILE}")) if d.is_dir() else []
        if not found:
            raise ConfigError(f"--index {d}: neither an embedding index nor a folder of them (no {SIMILARITY_INDEX_FILE}); "
                              "make one with `birdspec index ARCHIVE --out DIR`")
        out.extend(found)
    return out


@dataclass(frozen=True)
class ServedIndex:
    """An index the app searches: its key, folder, what ``index.json`` says, its archive's served key (None when
    the archive folder is gone: its cards then cannot play)."""

    key: str
    folder: Path
    backbone: str
    windows: int
    window_s: float
    archive: str
    archive_key: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "folder": str(self.folder), "backbone": self.backbone, "windows": self.windows,
                "window_s": self.window_s, "archive": self.archive, "archive_key": self.archive_key}


class Indexes:
    """The served indexes by key, each opened once (and again when ``birdspec index`` rewrote it)."""

    def __init__(self, dirs: Sequence[Path], roots: Roots) -> None:
        from birdspec.similarity.index_store import IndexInfo

        self.items: dict[str, ServedIndex] = {}
        self._open: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        for folder in discover(dirs):
            info = IndexInfo.read(folder)
            key = safe_name(folder.resolve().name) or "index"
            while key in self.items:
                key += "_"
            archive = Path(info.archive)
            archive_key = roots.add_folder(archive, "archive-" + archive.name) if archive.is_dir() else None
            if archive_key is None:
                log.warning("%s: its archive %s is not there; its windows are searched but cannot be played", folder, archive)
            self.items[key] = ServedIndex(key, folder, info.backbone, info.num_vectors, info.window_s, info.archive, archive_key)

    def get(self, key: str) -> ServedIndex:
        """Raises: NotFound: no index ``key`` (the message lists the served ones)."""
        found = self.items.get(str(key or ""))
        if found is None:
            served = ", ".join(self.items) or "none: start birdspec serve with --index DIR"
            raise NotFound(f"unknown index {key!r}; the served indexes are {served}")
        return found

    def open(self, key: str) -> Any:
        """The :class:`~birdspec.similarity.index_store.SimilarityIndex` of ``key`` (kept while its files stay)."""
        from birdspec.similarity.index_store import SIMILARITY_INDEX_FILE, SimilarityIndex

        item = self.get(key)
        stamp = (item.folder / SIMILARITY_INDEX_FILE).stat().st_mtime
        with self._lock:
            kept = self._open.get(key)
            if kept is None or kept[0] != stamp:
                kept = (stamp, SimilarityIndex(item.folder))
                self._open[key] = kept
            return kept[1]


def check_species(species: str) -> str:
    """The species a table is for: any name but an empty one (it becomes the tables' ``label``)."""
    name = str(species or "").strip()
    if not name or "," in name or "\n" in name:
        raise ConfigError("name the species to look for (the box's species, or the card's): a code or a name without commas")
    return name


def query_vector(index: Any, path: Path, start_s: float, end_s: float) -> tuple[np.ndarray, str]:
    """``(unit vector, how)`` of the query ``path`` from ``start_s`` to ``end_s``: the stored vector of that window
    of the index, else the clip embedded by the index's backbone."""
    from birdspec.similarity.embedders import embed_clip
    from birdspec.similarity.query import query_embedder, read_query

    root = Path(index.info.archive).resolve()
    real = path.resolve()
    if root in real.parents:
        w = index.windows
        rel = real.relative_to(root).as_posix()
        hit = np.flatnonzero((w["recording"].to_numpy() == rel) & (np.abs(w["start_s"].to_numpy() - start_s) < 1e-3)
                             & (np.abs(w["end_s"].to_numpy() - end_s) < 1e-3))
        if hit.size:
            return index.unit_rows(hit[:1])[0], "the index's vector of this window"
    wave = read_query(real, start_s=start_s, end_s=end_s)
    with query_embedder(index) as embedder:
        return embed_clip(embedder, wave), f"embedded by the index's backbone ({index.info.backbone})"


def _meta(pid: str, species: str, similar: dict[str, Any]) -> dict[str, Any]:
    """``prediction.json`` of a table: no recording or checkpoint (Analyze does not open it), the one species."""
    return {"id": pid, "recording": None, "checkpoint": None, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "classes": [species], "class_info": [{"label": species, "scientific_name": "", "common_name": ""}],
            "thresholds": None, META_KEY: similar}


def find_similar(job: Any, state: Any, *, index_key: str, recording: str, start_s: float, end_s: float,
                 species: str, top: int = 50) -> dict[str, Any]:
    """Search index ``index_key`` for the windows most like ``recording`` (a reference) from ``start_s`` to
    ``end_s``; publish them as a table for ``species`` (a job's work). Returns its reference."""
    from birdspec.similarity.agile import archive_path
    from birdspec.similarity.query import search_vector

    roots, config = state.roots, state.config
    item = state.indexes.get(index_key)
    path = roots.resolve(recording)
    job.update(message=f"opening {item.key}")
    index = state.indexes.open(item.key)
    job.update(progress=0.2, message="embedding the query")
    vector, how = query_vector(index, path, start_s, end_s)
    job.update(progress=0.7, message=f"searching {len(index)} windows")
    table, mode = search_vector(index, vector, top=top)
    rows = table.assign(file=[archive_path(index, r) for r in table["recording"]], label=species,
                        confidence=table["similarity"])[["file", "start_s", "end_s", "label", "confidence", "deployment"]]
    pid = f"similar-{safe_name(species)}-{item.key}-{time.strftime('%Y%m%d-%H%M%S')}-{job.id}"
    similar = {"kind": SEARCH, "index": item.key, "species": species, "mode": mode, "query_vector": how,
               "query": {"recording": recording, "start_s": round(start_s, 3), "end_s": round(end_s, 3)}, "top": top}

    def fill(folder: Path) -> None:
        from birdspec.fileio import write_csv

        write_csv(folder / preds.DETECTIONS_FILE, rows, float_format=None)
        write_json(folder / preds.META_FILE, _meta(pid, species, similar))

    csv = preds.publish_folder(config, pid, fill)
    return {"prediction": roots.ref(csv), "windows": int(len(rows)), "query_vector": how}


def tables_of(config: ServeConfig, index_key: str, species: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The search and round tables of an index (of one species, when given), oldest first, with their ``similar``
    entry."""
    out = []
    folders = [d for d in config.predictions_dir.iterdir() if d.is_dir() and not d.name.endswith(".partial")] \
        if config.predictions_dir.is_dir() else []
    for d in sorted(folders, key=lambda d: d.stat().st_mtime):
        info = (preds.read_meta(d) or {}).get(META_KEY) or {}
        if info.get("index") == index_key and (species is None or info.get("species") == species):
            out.append((d / preds.DETECTIONS_FILE, info))
    return out


def verdict_counts(files: Sequence[Path], species: str) -> dict[str, int]:
    """How many windows of ``species`` the verdict files call correct, wrong or other species."""
    counts = {v: 0 for v in rv.VERDICTS}
    for f in files:
        df = rv.read_verdicts(f)
        for v, n in df.loc[df["label"].astype(str) == species, "verdict"].value_counts().items():
            if v in counts:
                counts[str(v)] += int(n)
    return counts


def table_info(state: Any, ref: str) -> dict[str, Any]:
    """What Review shows of a table: a search's query or a round's figures (``agile.json``), and the verdicts given
    so far on the index's tables of its species; ``{"kind": None}`` for any other prediction."""
    csv = preds.prediction_csv(state.roots, ref)
    info = (preds.read_meta(csv.parent) or {}).get(META_KEY) if csv.name == preds.DETECTIONS_FILE else None
    if not info:
        return {"kind": None}
    files = [rv.verdicts_path(t) for t, _i in tables_of(state.config, info["index"], info["species"])]
    out = {**info, "verdicts": verdict_counts([f for f in files if f.is_file()], info["species"])}
    if info["kind"] == ROUND:
        from birdspec.similarity.agile_config import AGILE_SUMMARY_FILE

        summary = read_json(csv.parent / AGILE_SUMMARY_FILE) or {}
        out["summary"] = (summary.get("species") or [{}])[0]
    return out


def start_round(state: Any, ref: str, *, next_count: int = 20, strategy: str = "margin") -> dict[str, Any]:
    """Check a round's request now (the table, its index, the settings) and start it as a job."""
    from birdspec.similarity.agile_config import AgileConfig

    csv = preds.prediction_csv(state.roots, ref)
    info = (preds.read_meta(csv.parent) or {}).get(META_KEY) if csv.name == preds.DETECTIONS_FILE else None
    if not info:
        raise ConfigError(f"{ref} is not a search or agile table: find similar windows first (f on a card or a box)")
    item = state.indexes.get(info["index"])
    species = check_species(info["species"])
    settings = AgileConfig(next_count=max(1, min(int(next_count), MAX_TOP)), strategy=strategy)
    return state.jobs.start("agile", f"agile round: {species} on {item.key}",
                            lambda job: run_round(job, state, item.key, species, settings)).as_dict()


def run_round(job: Any, state: Any, index_key: str, species: str, settings: Any) -> dict[str, Any]:
    """One agile round of ``species`` on index ``index_key`` from every verdict file of its tables (a job's work)."""
    from birdspec.similarity.agile import run_agile
    from birdspec.similarity.agile_config import AGILE_MODEL_FILE, AGILE_NEXT_FILE, AGILE_SUMMARY_FILE

    roots, config = state.roots, state.config
    tables = tables_of(config, index_key)
    files = [f for f in (rv.verdicts_path(t) for t, _i in tables) if f.is_file()]
    if not files:
        raise DataError(f"no verdicts on {index_key}'s tables yet: mark some cards correct (c) and wrong (x) first")
    number = 1 + sum(1 for _t, i in tables if i.get("kind") == ROUND and i.get("species") == species)
    pid = f"agile-{safe_name(species)}-{index_key}-r{number}-{time.strftime('%Y%m%d-%H%M%S')}-{job.id}"
    index = state.indexes.open(index_key)
    job.update(progress=0.1, message=f"training on the verdicts of {len(files)} tables, scoring {len(index)} windows")
    model_ref: list[str | None] = [None]

    def fill(folder: Path) -> None:
        result = run_agile(index.folder, files, species=[species], out=folder, config=settings)
        os.replace(folder / AGILE_NEXT_FILE, folder / preds.DETECTIONS_FILE)
        summary = dict(result.summary, next=str(config.predictions_dir / pid / preds.DETECTIONS_FILE))
        if result.model is not None:  # where Analyze lists checkpoints
            target = config.runs_dir / pid / AGILE_MODEL_FILE
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(result.model), target)
            summary["model"] = str(target)
            model_ref[0] = roots.ref(target)
        write_json(folder / AGILE_SUMMARY_FILE, summary)
        similar = {"kind": ROUND, "index": index_key, "species": species, "round": number, "model": model_ref[0],
                   "verdict_tables": [roots.ref(f) for f in files], "strategy": settings.strategy}
        write_json(folder / preds.META_FILE, _meta(pid, species, similar))

    csv = preds.publish_folder(config, pid, fill)
    summary = (read_json(csv.parent / AGILE_SUMMARY_FILE) or {}).get("species", [{}])[0]
    return {"prediction": roots.ref(csv), "round": number, "summary": summary, "model": model_ref[0]}
