"""Building an embedding index of an archive (``birdspec index``): resumable, on ``--jobs`` processes.

The run uses ``birdspec predict``'s archive ledger (:mod:`birdspec.prediction.archive`): the recordings are
planned once (:func:`plan_items`), each one is embedded into its own part (windows and float16 vectors,
written atomically, then its ledger entry with the file's size and mtime), and a rerun embeds only what has
no matching entry: a recording added to the archive, a changed one (another size or mtime), or one a killed run
did not finish. ``--jobs N`` runs N worker processes (:func:`~birdspec.prediction.archive_run.run_pool`, each
with ``cores / N`` threads), longest recordings first; ``--engine dask`` runs the same task on a Dask cluster
(predict's runner, :func:`~birdspec.prediction.dask_engine.run_dask`: a run's checkpoint is shipped to every worker
once, BirdNET is each worker's installed ``birdspec[birdnet]``). Then the parts are consolidated, one recording in memory
at a time (:func:`~birdspec.similarity.index_store.consolidate`), and the approximate index over the stored vectors
(:mod:`birdspec.similarity.ann`, when usearch is installed) is updated in place: the windows of added recordings
inserted, those of changed or removed ones removed; it is built whole only on the first run or when most of its
vectors are gone (:mod:`birdspec.similarity.ann_update`). When nothing changed since the last consolidation,
nothing is rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdspec.errors import BirdspecError, ConfigError, DataError

if TYPE_CHECKING:  # the archive module imports pandas: `birdspec index --help` stays light
    from birdspec.prediction.archive import Item

log = logging.getLogger(__name__)

APPROXIMATE_CHOICES = ("auto", "always", "never")
"""Whether ``birdspec index`` builds the approximate index: when usearch is installed, always (fails without it), never."""
_WORKER: dict[str, Any] = {}


def worker_embedder(backbone: str, hop_s: float | None, threads: int | None) -> Any:
    """A worker's backbone (:func:`~birdspec.similarity.embedders.open_embedder`), malloc arenas capped first."""
    from birdspec.runtime import limit_malloc_arenas
    from birdspec.similarity.embedders import open_embedder

    limit_malloc_arenas()
    return open_embedder(backbone, hop_s=hop_s, threads=threads)


def init_embed_worker(backbone: str, hop_s: float | None, threads: int | None) -> None:
    """Load this worker process's backbone once (``--jobs N``)."""
    _WORKER["embedder"] = worker_embedder(backbone, hop_s, threads)


def embed_on_worker(item: Item, parts: str, payload: Mapping[str, Any] | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The Dask task of ``birdspec index``: one recording -> its part files, with this worker thread's backbone
    (BirdNET when ``payload`` is None, else the shipped checkpoint: :func:`~birdspec.prediction.dask_engine.model_payload`)."""
    from birdspec.prediction.dask_engine import cached_on_worker, materialise
    from birdspec.similarity.embedders import BIRDNET

    def build() -> Any:
        return worker_embedder(BIRDNET if payload is None else str(materialise(payload)), options["hop_s"], options["threads"])

    key = ("embed", None if payload is None else payload["sha256"], repr(sorted(options.items())))
    return embed_item(item, parts, cached_on_worker(key, build))


def embed_item(item: Item, parts: str, embedder: Any = None) -> dict[str, Any]:
    """Embed one recording into its part files (a recording that fails gets an entry with its error); its entry."""
    import pandas as pd

    from birdspec.prediction.archive import write_part
    from birdspec.prediction.sources import FileResult, empty_windows
    from birdspec.similarity.embedders import embed_file
    from birdspec.similarity.index_store import PART_DTYPE

    e = embedder if embedder is not None else _WORKER["embedder"]
    try:
        rec = embed_file(e, item.path)
    except Exception as exc:  # noqa: BLE001 - a bad recording is listed in failed.csv, never fatal
        msg = str(exc) if isinstance(exc, BirdspecError) else f"{type(exc).__name__}: {exc}"
        log.warning("skipped %s: %s", item.path, msg)
        result = FileResult(item.path, item.name, 0.0, empty_windows(False), np.zeros((0, e.dim), np.float32), error=msg)
    else:
        windows = pd.DataFrame({"window": np.arange(len(rec.starts_s), dtype=np.int64), "start_s": rec.starts_s,
                                "end_s": rec.ends_s})
        result = FileResult(item.path, item.name, rec.duration_s, windows, rec.vectors, warning=rec.warning)
    return write_part(result, item, Path(parts), dtype=PART_DTYPE)


def _contents_key(items: Sequence[Item], settings: Mapping[str, Any]) -> str:
    """What the consolidated files depend on: the recordings (path, size, mtime) and the settings."""
    h = hashlib.sha1(repr(sorted(settings.items())).encode())
    for it in items:
        h.update(f"{it.key}:{it.size}:{it.mtime_ns}\n".encode())
    return h.hexdigest()


def _embed(todo: Sequence[Item], parts: Path, embedder: Any, *, backbone: str, hop_s: float | None, jobs: int,
           threads: int | None, engine: str, scheduler: str | None, progress: bool) -> None:
    """Embed ``todo`` here (``jobs == 1``, with ``embedder``), on ``jobs`` worker processes, or on Dask."""
    from birdspec.prediction.archive_run import run_pool
    from birdspec.prediction.sources import tqdm_progress

    callback, close = (tqdm_progress([(Path(it.path), it.name) for it in todo], total_s=sum(it.duration_s for it in todo))
                       if progress else (None, None))
    try:
        if engine == "dask":
            from birdspec.models.checkpoint import resolve_checkpoint_path
            from birdspec.prediction.dask_engine import model_payload, run_dask
            from birdspec.similarity.embedders import BIRDNET

            payload = None if backbone == BIRDNET else model_payload(resolve_checkpoint_path(backbone), export=False)
            run_dask(todo, parts, task=embed_on_worker, payload=payload, options={"hop_s": hop_s, "threads": threads},
                     scheduler=scheduler, workers=jobs, progress=callback, label="embed")
        elif jobs <= 1:
            for it in todo:
                entry = embed_item(it, str(parts), embedder)
                if callback is not None:
                    callback(float(entry.get("decoded_s") or 0.0), 1)
        else:
            run_pool(todo, parts, initializer=init_embed_worker, initargs=(backbone, hop_s, threads), task=embed_item,
                     jobs=jobs, progress=callback)
    finally:
        if close is not None:
            close()


def build_index(archive: str | Path, out: str | Path, *, backbone: str = "birdnet", hop_s: float | None = None,
                dtype: str | None = None, jobs: int | None = None, threads: int | None = None, engine: str = "local",
                scheduler: str | None = None, approximate: str = "auto", overwrite: bool = False,
                progress: bool = False) -> dict[str, Any]:
    """Embed every window of every recording under the folder ``archive`` into the index folder ``out``
    (creating, resuming or extending it; see the module doc); the summary.

    Args:
        backbone: 'birdnet' or a run folder / checkpoint file of a window model.
        hop_s: seconds between window starts (None: the window length: 3 s for BirdNET).
        dtype: 'float16' or 'int8' vectors (None: the index's, else float16).
        jobs: worker processes (None: one per core, at most one per recording to embed).
        threads: backbone threads per worker (None: cores / jobs).
        engine: 'local' (this process or ``jobs`` processes) or 'dask' (``scheduler``'s cluster, or a LocalCluster of
            ``jobs`` workers; the archive and ``out`` on storage every worker sees).
        approximate: build the approximate index 'auto' (when usearch is installed), 'always', 'never'.

    Raises:
        DataError: ``archive`` is not a folder of recordings. ConfigError: bad options, or ``out`` holds an
        index made with other settings (another backbone, checkpoint or hop) and ``overwrite`` is false.
        DependencyError: BirdNET, usearch with ``approximate='always'``, or dask.distributed with ``engine='dask'``, is
        not installed.
    """
    from birdspec.locks import output_lock
    from birdspec.prediction.archive import open_run, pending, plan_items
    from birdspec.prediction.archive_run import default_jobs
    from birdspec.prediction.choices import check_engine
    from birdspec.runtime import cpu_count
    from birdspec.similarity.embedders import open_embedder
    from birdspec.similarity.index_store import DEFAULT_DTYPE, INDEX_RUN_FORMAT, VECTOR_DTYPES

    root, out = Path(archive), Path(out)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; an index is made of a folder of recordings (ARCHIVE/DEPLOYMENT/...)")
    if dtype is not None and dtype not in VECTOR_DTYPES:
        raise ConfigError(f"unknown --dtype {dtype!r}; use one of {', '.join(VECTOR_DTYPES)}")
    if approximate not in APPROXIMATE_CHOICES:
        raise ConfigError(f"unknown --approximate {approximate!r}; use one of {', '.join(APPROXIMATE_CHOICES)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    check_engine(engine, scheduler)
    t0 = time.perf_counter()
    items = plan_items([root])
    with output_lock(out):
        embedder = open_embedder(backbone, hop_s=hop_s, threads=threads)
        try:
            settings = {**embedder.settings, "dim": embedder.dim}
            parts = open_run(out, settings, overwrite=overwrite, run_format=INDEX_RUN_FORMAT, what="embeddings")
            todo = pending(items, parts)
            n_jobs = jobs or default_jobs(len(todo))
            log.info("%d recording(s), %d embedded earlier, %d to embed (%s, %d-d, %g s windows every %g s; %s engine, "
                     "%d worker(s))", len(items), len(items) - len(todo), len(todo), embedder.settings["backbone"],
                     embedder.dim, embedder.window_s, embedder.hop_s, engine, n_jobs)
            if n_jobs > 1 or engine == "dask":
                embedder.close()  # each worker loads its own
            worker_threads = threads or max(1, cpu_count() // n_jobs)
            if todo:
                _embed(todo, parts, embedder, backbone=backbone, hop_s=hop_s, jobs=n_jobs, threads=worker_threads,
                       engine=engine, scheduler=scheduler, progress=progress)
        finally:
            embedder.close()
        left = pending(items, parts)
        if left:
            raise BirdspecError(f"{len(left)} recording(s) were not embedded (e.g. {left[0].path}); run the command again")
        previous = _previous_info(out)
        dtype = dtype or (previous.dtype if previous is not None else DEFAULT_DTYPE)
        summary = _publish(items, parts, out, settings=settings, dtype=dtype, approximate=approximate, previous=previous,
                           root=root, backbone=backbone, progress=progress)
    summary.update({"embedded_now": len(todo), "engine": engine, "workers": n_jobs, "wall_s": round(time.perf_counter() - t0, 3)})
    return summary


def _previous_info(out: Path) -> Any:
    from birdspec.similarity.index_store import IndexInfo

    try:
        return IndexInfo.read(out)
    except (DataError, TypeError):
        return None


def _publish(items: Sequence[Item], parts: Path, out: Path, *, settings: Mapping[str, Any], dtype: str, approximate: str,
             previous: Any, root: Path, backbone: str, progress: bool) -> dict[str, Any]:
    """Consolidate the parts and build the approximate index (unless nothing changed); write index.json last."""
    import pandas as pd

    from birdspec.fileio import read_json, write_csv
    from birdspec.formats import FAILED_FILE
    from birdspec.similarity.ann import ANN_INSTALL_HINT, usearch_available
    from birdspec.similarity.ann_update import publish_graph
    from birdspec.similarity.index_store import SIMILARITY_INDEX_FILE, IndexInfo, consolidate, now_utc, read_recordings

    want_ann = approximate == "always" or (approximate == "auto" and usearch_available())
    if approximate == "always" and not usearch_available():
        from birdspec.errors import DependencyError

        raise DependencyError(f"--approximate always: {ANN_INSTALL_HINT}")
    key = _contents_key(items, {**settings, "dtype": dtype, "ann": want_ann})
    if previous is not None and previous.extra.get("contents") == key:
        log.info("%s: up to date (%d vectors); nothing rewritten", out, previous.num_vectors)
        return {**{k: getattr(previous, k) for k in ("num_vectors", "num_recordings", "audio_hours", "dtype")},
                "failed": int(previous.extra.get("failed", 0)), "approximate": previous.ann is not None, "ann_update": None,
                "rewritten": False, "index": str(out)}
    (out / SIMILARITY_INDEX_FILE).unlink(missing_ok=True)  # readers see no index until the new one is whole
    counts, recordings = consolidate(items, parts, out, dtype=dtype, dim=int(settings["dim"]))
    entries = [read_json(parts / f"{it.key}.json") or {} for it in items]
    failed = [{"path": it.path, "error": e["error"]} for it, e in zip(items, entries, strict=True) if e.get("error")]
    write_csv(out / FAILED_FILE, pd.DataFrame(failed, columns=["path", "error"]), float_format=None)
    ann, how = publish_graph(out, recordings, dtype=dtype, want=want_ann, previous_ann=None if previous is None else previous.ann,
                             old=None if previous is None else read_recordings(out), progress=progress)
    if not want_ann and counts["num_vectors"] > _exact_max():
        log.warning("%s: %d vectors and no approximate index: searches compare every vector (slow); %s",
                    out, counts["num_vectors"], ANN_INSTALL_HINT)
    info = IndexInfo(
        backbone=str(settings["backbone"]), window_s=float(settings["window_s"]), hop_s=float(settings["hop_s"]),
        min_partial_s=float(settings["min_partial_s"]), dim=int(settings["dim"]), dtype=dtype,
        num_vectors=int(counts["num_vectors"]), num_recordings=int(counts["num_recordings"]),
        audio_hours=float(counts["audio_hours"]), archive=str(root.resolve()),
        backbone_version=str(settings.get("backbone_version") or ""),
        checkpoint=None if settings["backbone"] == "birdnet" else str(Path(backbone).resolve()),
        checkpoint_sha256=settings.get("checkpoint_sha256"), ann=ann, created_utc=now_utc(),
        extra={"contents": key, "failed": int(counts["failed"])},
    )
    info.write(out)
    return {**counts, "dtype": dtype, "approximate": ann is not None, "ann_update": how, "rewritten": True, "index": str(out)}


def _exact_max() -> int:
    from birdspec.similarity.query import EXACT_MAX_VECTORS

    return EXACT_MAX_VECTORS
