"""Running a folder prediction (:mod:`birdspec.prediction.archive`): in this process, on ``--jobs N``
local worker processes, or on a Dask cluster (:mod:`birdspec.prediction.dask_engine`), then the merge.

Every engine runs the same task, :func:`score_item` (one recording -> its part files), so what a
worker writes does not depend on where it ran. Recordings are handed out longest first, which keeps
workers busy to the end (a 60-minute file started last would leave the other workers idle).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from birdspec.errors import BirdspecError, ConfigError
from birdspec.fileio import write_csv, write_json, writing
from birdspec.formats import FAILED_FILE
from birdspec.locks import output_lock
from birdspec.prediction.archive import (
    ARCHIVE_SUMMARY_FILE,
    Item,
    init_worker,
    merge,
    merged_path,
    open_run,
    pending,
    plan_items,
    score_item,
    write_part,
)
from birdspec.prediction.choices import check_engine
from birdspec.runtime import cpu_count

log = logging.getLogger(__name__)

SCORE_OPTIONS = ("device", "batch_size", "backend", "window_s", "hop_s", "min_partial_s", "context", "activation")
"""Predictor options a worker needs (reporting options such as min_conf only change the merge)."""
_DECIDES_SCORES = ("window_s", "hop_s", "min_partial_s", "context", "activation")

def ensure_export(checkpoint: Path) -> None:
    """Make the ONNX runtime export of a waveform checkpoint once, before workers start (each would
    otherwise export it at the same time)."""
    from birdspec.models.checkpoint import peek_checkpoint
    from birdspec.prediction import onnx_runtime as ox
    from birdspec.prediction.runtime_types import onnxruntime_available

    info = peek_checkpoint(checkpoint)
    if info is None or info.input != "waveform" or not onnxruntime_available() or ox.find_export(checkpoint) is not None:
        return
    log.info("exporting %s for ONNX Runtime once for all workers", checkpoint)
    ox.export_in_subprocess(checkpoint)


# --------------------------------------------------------------------------- engines


def run_local(items: Sequence[Item], parts: Path, *, checkpoint: Path, options: Mapping[str, Any], jobs: int,
              progress: Callable[[float, int], None] | None) -> None:
    """Score ``items`` here (``jobs == 1``: one engine streams them all) or on ``jobs`` processes."""
    if jobs <= 1:
        from birdspec.prediction.predictor import Predictor

        by_path = {it.path: it for it in items}
        with Predictor(checkpoint, **options) as predictor:
            for result in predictor.predict_paths([it.path for it in items], strict=False, progress=progress):
                it = by_path[result.path]
                write_part(dataclasses.replace(result, name=it.name), it, parts)
        return
    run_pool(items, parts, initializer=init_worker, initargs=(str(checkpoint), dict(options)), task=score_item, jobs=jobs,
             progress=progress)


def run_pool(items: Sequence[Item], parts: Path, *, initializer: Callable[..., None], initargs: tuple[Any, ...],
             task: Callable[[Item, str], Mapping[str, Any]], jobs: int, progress: Callable[[float, int], None] | None) -> None:
    """Run ``task(item, parts)`` (it writes the item's part and returns its ledger entry) for ``items`` on ``jobs``
    spawned processes set up by ``initializer(*initargs)``, longest first; a crashed pool goes on with what the
    ledger still lacks (:func:`~birdspec.prediction.archive.pending`), three crashes stop it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    todo, breaks = list(items), 0
    while todo:
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=initializer, initargs=initargs)
        try:
            futures = [pool.submit(task, it, str(parts)) for it in sorted(todo, key=lambda i: -i.duration_s)]
            for fut in as_completed(futures):
                entry = fut.result()
                if progress is not None:
                    progress(float(entry.get("decoded_s") or 0.0), 1)
            return
        except BrokenProcessPool:
            breaks += 1
            todo = pending(todo, parts)
            if breaks >= 3:
                raise BirdspecError(f"worker processes died {breaks} times ({len(todo)} recordings left); "
                                    "rerun with --jobs 1 to find the recording that crashes the decoder") from None
            log.warning("a worker process died; going on with the %d recordings left", len(todo))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def default_jobs(n_items: int) -> int:
    """Worker processes when --jobs is not given: one per core, one thread each (measured on 2 cores:
    see benchmarks/README.md, predict_archive.py), never more than there are recordings."""
    return max(1, min(cpu_count(), n_items))


# --------------------------------------------------------------------------- the command


def predict_folder(checkpoint: str | Path, paths: Sequence[str | Path], out: str | Path, *, fmt: str, scores: str,
                   min_conf: float | None, top_k: int, options: Mapping[str, Any], jobs: int | None = None,
                   engine: str = "local", scheduler: str | None = None, threads: int | None = None,
                   overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Score ``paths`` into the run folder ``out`` (resuming it), then merge; the summary.

    ``min_conf`` None: the model's detection thresholds (:func:`~birdspec.prediction.selection.class_thresholds`).

    Raises:
        ConfigError: a bad engine or jobs count, or a run folder with other score settings.
        DependencyError: ``engine='dask'`` without dask.distributed installed.
    """
    from birdspec.models.checkpoint import peek_checkpoint, read_checkpoint, resolve_checkpoint_path
    from birdspec.models.checkpoint_info import describe_thresholds
    from birdspec.prediction.onnx_runtime import file_sha256
    from birdspec.prediction.selection import class_thresholds
    from birdspec.windowing import partial_source_for

    check_engine(engine, scheduler)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out)
    ckpt = resolve_checkpoint_path(checkpoint)
    items = plan_items(paths)
    info = peek_checkpoint(ckpt) or read_checkpoint(ckpt).info
    settings = {"checkpoint_sha256": file_sha256(ckpt), **{k: options.get(k) for k in _DECIDES_SCORES},
                "partial_source": partial_source_for(info.encoding.name)}  # runs begun before the 'end' rule: not mixed
    t0 = time.perf_counter()
    with output_lock(out):
        parts = open_run(out, settings, overwrite=overwrite)
        todo = pending(items, parts)
        n_jobs = jobs or default_jobs(len(todo))
        worker_options = {k: options[k] for k in SCORE_OPTIONS if k in options}
        worker_options["threads"] = threads or max(1, cpu_count() // n_jobs)
        log.info("%d recording(s), %d done earlier, %d to score (%s engine, %d worker(s) x %d thread(s))",
                 len(items), len(items) - len(todo), len(todo), engine, n_jobs, worker_options["threads"])
        if todo:
            _score(todo, parts, ckpt=ckpt, options=worker_options, jobs=n_jobs, engine=engine, scheduler=scheduler,
                   progress=progress)
        left = pending(items, parts)
        if left:  # a task reported done without its part: never merge an incomplete run
            raise BirdspecError(f"{len(left)} recording(s) were not scored (e.g. {left[0].path}); run the command again")
        info = info.with_activation(str(options.get("activation") or "auto"))
        thresholds = class_thresholds(min_conf, num_classes=len(info.classes), model_thresholds=info.thresholds)
        summary = _merge(items, parts, out, ckpt_info=info, fmt=fmt, scores=scores, min_conf=thresholds, top_k=top_k)
        summary["thresholds"] = "model" if min_conf is None and info.thresholds is not None else describe_thresholds(thresholds)
    wall = time.perf_counter() - t0
    summary.update({"scored_now": len(todo), "engine": engine, "workers": n_jobs, "threads_per_worker": worker_options["threads"],
                    "wall_s": round(wall, 3), "output": str(merged_path(out, fmt))})
    write_json(out / ARCHIVE_SUMMARY_FILE, summary)
    return summary


def _score(todo: Sequence[Item], parts: Path, *, ckpt: Path, options: dict[str, Any], jobs: int, engine: str,
           scheduler: str | None, progress: bool) -> None:
    from birdspec.prediction.sources import tqdm_progress

    callback, close = (tqdm_progress([(Path(it.path), it.name) for it in todo], total_s=sum(it.duration_s for it in todo))
                       if progress else (None, None))  # durations already read by plan_items
    try:
        if engine == "dask":
            from birdspec.prediction.dask_engine import model_payload, run_dask, score_on_worker

            ensure_export(ckpt)
            run_dask(todo, parts, task=score_on_worker, payload=model_payload(ckpt), options=options, scheduler=scheduler,
                     workers=jobs, progress=callback)
        else:
            if jobs > 1:
                ensure_export(ckpt)
            run_local(todo, parts, checkpoint=ckpt, options=options, jobs=jobs, progress=callback)
    finally:
        if close is not None:
            close()


def _merge(items: Sequence[Item], parts: Path, out: Path, *, ckpt_info: Any, fmt: str, scores: str,
           min_conf: Any, top_k: int) -> dict[str, Any]:
    import pandas as pd

    from birdspec.prediction.outputs import PredictionWriter

    fe = ckpt_info.frontend
    writer = PredictionWriter(fmt, merged_path(out, fmt), class_info=ckpt_info.class_info, min_conf=min_conf,
                              top_k=top_k, scores=scores, freq_band_hz=(fe.fmin_hz, fe.fmax_hz))
    try:
        with writing(merged_path(out, fmt)):  # a full disk: the message names the output
            summary = merge(items, parts, writer, min_conf=min_conf, classes=ckpt_info.classes)
            writer.close(write_failed=False)
    except BaseException:
        writer.abort()  # nothing half-written published, no temporary file left
        raise
    failed = [{"path": f["path"], "error": f["error"]} for f in writer.failed]
    write_csv(out / FAILED_FILE, pd.DataFrame(failed, columns=["path", "error"]), float_format=None)
    summary["rows"] = writer.rows
    return summary
