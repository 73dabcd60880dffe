"""Resumable prediction over many recordings: one part per recording, a ledger, one merge at the end.

A folder ``--out`` of ``birdspec predict`` (``birdspec predict CKPT ARCHIVE/ --out DIR``) is a run
folder::

    DIR/run.json              what decides the scores (checkpoint SHA-256, windowing, activation)
    DIR/parts/<key>.npz       windows and scores of one recording (written atomically)
    DIR/parts/<key>.json      its ledger entry (path, size, mtime, duration, error, the boot that wrote
                              it), written last: its presence means the recording is done
    DIR/predictions.csv       the merged output (predictions.parquet, submission.csv, or one table
                              per recording for raven/audacity), written when every recording is done
    DIR/failed.csv            recordings that could not be scored, with the reason
    DIR/summary.json          hours, recordings, detections per species, wall time, workers

Running the same command again skips every recording whose entry exists and whose file has the same
size and modification time (a changed file is scored again), so a run killed at hour 9,000 goes on
from there. Parts are not flushed to the disk one by one (that made scoring short recordings 2x
slower): a part written by another boot of the machine (or another machine: Dask workers), which a
power cut may have damaged, is read whole before it is trusted, and scored again if it does not
read back (:func:`pending`). The merge reads the parts in input order, so the merged output is the
same, row for row, whichever worker scored which recording and in what order (``--jobs``,
``--engine dask``). Reporting
options (``--min-conf``, ``--top-k``, ``--format``, ``--scores``) only change the merge: rerunning
with others re-merges without scoring anything again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import BirdspecError, ConfigError
from birdspec.fileio import read_json, this_boot, write_json, write_with
from birdspec.formats import SINGLE_FILE_NAMES
from birdspec.prediction.sources import FileResult, collect_audio_paths, empty_windows

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
PARTS_DIR = "parts"
ARCHIVE_SUMMARY_FILE = "summary.json"
ARCHIVE_RUN_FORMAT = "birdspec-predict-run"


@dataclass(frozen=True)
class Item:
    """One recording of an archive run (picklable: sent to workers)."""

    path: str
    name: str
    key: str
    size: int
    mtime_ns: int
    duration_s: float


def plan_items(paths: Iterable[str | Path]) -> list[Item]:
    """The recordings under ``paths`` in input order, with their identity and header duration."""
    from birdspec import audio

    items = []
    for p, name in collect_audio_paths(paths):
        st = p.stat()
        try:
            duration = audio.info(p).duration_s
        except BirdspecError:
            duration = 0.0  # scored (and failed) like any other: the reason goes to the failed list
        key = hashlib.sha1(str(p.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:20]
        items.append(Item(str(p), name, key, int(st.st_size), int(st.st_mtime_ns), float(duration)))
    return items


def is_out_folder(out: str | Path, fmt: str) -> bool:
    """True when ``out`` names a run folder: raven/audacity, an existing folder, a trailing slash, or no suffix."""
    text = str(out)
    if text == "-":
        return False
    return fmt in ("raven", "audacity") or Path(text).is_dir() or text.endswith(("/", os.sep)) or not Path(text).suffix


def merged_path(out: Path, fmt: str) -> Path:
    """Where the merged output of a run folder goes (the folder itself for per-recording formats)."""
    return out / SINGLE_FILE_NAMES[fmt] if fmt in SINGLE_FILE_NAMES else out


# --------------------------------------------------------------------------- the run folder


def open_run(out: Path, settings: Mapping[str, Any], *, overwrite: bool, run_format: str = ARCHIVE_RUN_FORMAT,
             what: str = "predictions") -> Path:
    """Create or reopen the run folder ``out`` (the caller holds its lock); its parts folder.

    Temporary files of killed workers are removed; finished parts are kept. ``run_format`` names the kind
    of run in RUN_FILE (another command's runs, e.g. ``birdspec index``, use this ledger with their own);
    ``what`` is what its parts hold, for the messages.

    Raises:
        ConfigError: ``out`` holds a run with other score settings (another checkpoint, hop,
            context, ...) and ``overwrite`` is false; or ``out`` holds something else.
    """
    parts = out / PARTS_DIR
    stored = read_json(out / RUN_FILE)
    wanted = {"format": run_format, **settings}
    if stored is not None and stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if not overwrite:
            raise ConfigError(f"{out} holds {what} made with other settings ({', '.join(changed)}); "
                              "choose another --out, or pass --overwrite to discard them")
        log.warning("%s: discarding the parts made with other settings (%s)", out, ", ".join(changed))
        shutil.rmtree(parts, ignore_errors=True)
    elif stored is None and out.is_dir() and any(out.iterdir()) and not parts.is_dir():
        names = sorted(p.name for p in out.iterdir())[:3]
        log.info("%s already holds %s; adding a prediction run beside them", out, ", ".join(names))
    parts.mkdir(parents=True, exist_ok=True)
    for stale in parts.glob("*.tmp-*"):  # left by killed workers (the caller holds the folder's lock)
        stale.unlink(missing_ok=True)
    write_json(out / RUN_FILE, wanted)
    return parts


def pending(items: Sequence[Item], parts: Path) -> list[Item]:
    """The items without an entry matching their file (new, changed, or never finished), or whose part,
    written by another boot or machine, does not read back whole."""
    todo = []
    for it in items:
        entry = read_json(parts / f"{it.key}.json")
        if entry is None or entry.get("size") != it.size or entry.get("mtime_ns") != it.mtime_ns:
            todo.append(it)
        elif entry.get("written_on") != this_boot() and not _reads_back(it, parts, entry):
            log.warning("%s: its part in %s is damaged (written before a restart?); scoring it again", it.path, parts)
            todo.append(it)
    return todo


def _reads_back(item: Item, parts: Path, entry: Mapping[str, Any]) -> bool:
    """Whether the part of ``item`` reads whole (its zip checksums) with the windows its entry counts."""
    try:
        result = read_part(item, parts)
    except Exception:  # noqa: BLE001 - any damage means: score it again
        return False
    return bool(entry.get("error")) or len(result.windows) == int(entry.get("windows", -1))


def write_part(result: FileResult, item: Item, parts: Path, *, dtype: Any = np.float32) -> dict[str, Any]:
    """Store one recording's result: its ``.npz`` (windows, scores as ``dtype``), then its ledger entry; the entry."""
    if result.ok:
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                # Any: NumPy's savez stub would take an array named allow_pickle for its bool argument
                columns: dict[str, Any] = {f"w_{c}": result.windows[c].to_numpy() for c in result.windows.columns}
                np.savez(f, scores=np.asarray(result.scores, dtype=dtype), **columns)

        write_with(parts / f"{item.key}.npz", save, durable=this_boot() is None)
    entry = {**asdict(item), "decoded_s": float(result.duration_s), "windows": int(len(result.windows)),
             "error": None if result.ok else str(result.error), "warning": result.warning, "written_on": this_boot()}
    write_json(parts / f"{item.key}.json", entry, indent=None, durable=this_boot() is None)
    return entry


def read_part(item: Item, parts: Path) -> FileResult:
    """The :class:`FileResult` of a finished item, from its part files."""
    entry = read_json(parts / f"{item.key}.json") or {}
    if entry.get("error"):
        return FileResult(item.path, item.name, 0.0, empty_windows(False), np.zeros((0, 0), np.float32),
                          error=entry["error"])
    with np.load(io.BytesIO((parts / f"{item.key}.npz").read_bytes())) as z:
        windows = pd.DataFrame({k[2:]: z[k] for k in z.files if k.startswith("w_")})
        scores = z["scores"]
    return FileResult(item.path, item.name, float(entry.get("decoded_s", 0.0)), windows, scores,
                      warning=entry.get("warning"))


def merge(items: Sequence[Item], parts: Path, writer: Any, *, min_conf: float | np.ndarray,
          classes: Sequence[str]) -> dict[str, Any]:
    """Feed every item's result to ``writer`` in input order; totals and detections per species.

    A detection is a window whose best class scores at least ``min_conf`` (one number, or its class's
    threshold of ``(K,)`` thresholds).
    """
    limit = np.asarray(min_conf)
    detections = np.zeros(len(classes), dtype=np.int64)
    hours = 0.0
    ok = failed = 0
    for it in items:
        result = read_part(it, parts)
        writer.write(result)
        if not result.ok:
            failed += 1
            continue
        ok += 1
        hours += result.duration_s / 3600.0
        if len(result.scores):
            best = result.scores.argmax(axis=1)
            keep = result.scores[np.arange(len(best)), best] >= (limit[best] if limit.ndim else min_conf)
            detections += np.bincount(best[keep], minlength=len(classes))
    per_species = {c: int(n) for c, n in zip(classes, detections, strict=True) if n}
    return {"recordings": ok, "failed": failed, "audio_hours": round(hours, 4),
            "detections_per_species": dict(sorted(per_species.items(), key=lambda kv: -kv[1]))}


# --------------------------------------------------------------------------- the task (any engine)


_WORKER: dict[str, Any] = {}


def init_worker(checkpoint: str, options: Mapping[str, Any]) -> None:
    """Build this worker process's :class:`~birdspec.prediction.predictor.Predictor` once."""
    from birdspec.prediction.predictor import Predictor

    _WORKER["predictor"] = Predictor(checkpoint, **options)


def score_item(item: Item, parts: str, predictor: Any = None) -> dict[str, Any]:
    """Score one recording and write its part files; its ledger entry."""
    p = predictor if predictor is not None else _WORKER["predictor"]
    result = next(iter(p.predict_paths([item.path], strict=False)))
    return write_part(dataclasses.replace(result, name=item.name), item, Path(parts))
