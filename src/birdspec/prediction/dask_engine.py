"""``--engine dask`` of ``birdspec predict`` and ``birdspec index``: the per-recording tasks of an archive run on a
Dask cluster (one runner, :func:`run_dask`; the task and what it needs shipped once are its arguments).

Needs ``pip install 'birdspec[distributed]'`` (dask.distributed). With ``--scheduler tcp://HOST:PORT``
the tasks go to a running cluster (started, for example, with dask-jobqueue on SLURM/PBS or with
dask-kubernetes); without it, a LocalCluster of ``--jobs`` single-threaded worker processes is started.

- **Paths**: workers open the recordings and write the part files by the paths given on the command
  line, so the archive and ``--out`` must be on storage every worker sees under the same path (a shared
  or network file system); give absolute paths.
- **The model is shipped once**: the checkpoint file and its ONNX runtime export (:func:`model_payload`) are
  scattered to every worker a single time (``broadcast``); each worker process writes them to its local temp
  folder (:func:`materialise`) and builds its predictor (or embedder) on its first task, then reuses it for
  every later task (:func:`cached_on_worker`). ``birdspec index --backbone birdnet`` ships nothing: the
  workers' installed ``birdspec[birdnet]`` is the model.
- **Worker settings**: each worker process resets glibc's large-block thresholds that Dask's nanny
  changes (:func:`birdspec.runtime.restore_dynamic_mmap_threshold`: 30 % of the wall time on
  2 cores). A LocalCluster is also started without Dask's sampling profiler (a thread waking every
  10 ms in each worker); on your own cluster set ``distributed.worker.profile.enabled: false``.
- **Faults**: a worker that dies mid-task is replaced by the cluster and its task runs again elsewhere;
  the task writes the same part files under the same names, atomically, so nothing is lost or counted
  twice. A task that raises is retried twice (``retries``) before the command fails; a rerun then
  resumes from the ledger like any folder run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from birdspec.errors import ConfigError, DependencyError
from birdspec.fileio import write_with
from birdspec.prediction.archive import Item, score_item
from birdspec.runtime import restore_dynamic_mmap_threshold

log = logging.getLogger(__name__)

DASK_INSTALL_HINT = "--engine dask needs dask.distributed: pip install 'birdspec[distributed]'"
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}
"""Dask settings of the LocalCluster ``--engine dask`` starts (its workers get the config at start)."""
_CACHE: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def model_payload(checkpoint: Path, *, export: bool = True) -> dict[str, Any]:
    """The checkpoint file and (``export``) its runtime export, if any, as bytes: what every worker needs once."""
    from birdspec.prediction import onnx_runtime as ox

    files = {checkpoint.name: checkpoint.read_bytes()}
    found = ox.find_export(checkpoint) if export else None
    if found is not None:
        beside = ox.run_export_dir(checkpoint).name
        for f in sorted(found.rglob("*")):
            if f.is_file():
                files[f"{beside}/{f.relative_to(found).as_posix()}"] = f.read_bytes()
    return {"sha256": ox.file_sha256(checkpoint), "name": checkpoint.name, "files": files}


def materialise(model: Mapping[str, Any]) -> Path:
    """Write the shipped model into this worker's temp folder (once per process); the checkpoint path."""
    folder = Path(tempfile.gettempdir()) / f"birdspec-model-{model['sha256'][:16]}-{os.getpid()}"
    files: Mapping[str, bytes] = model["files"]
    name: str = model["name"]
    for rel, data in files.items():
        target = folder / rel
        if not target.is_file() or target.stat().st_size != len(data):
            write_with(target, partial(Path.write_bytes, data=data))
    return folder / name


def cached_on_worker(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """This worker thread's object for ``key`` (a predictor, an embedder): built by ``build()`` on its first task
    (after :func:`~birdspec.runtime.restore_dynamic_mmap_threshold`), then reused."""
    full = (*key, threading.get_ident())
    with _LOCK:
        obj = _CACHE.get(full)
        if obj is None:
            restore_dynamic_mmap_threshold()
            obj = _CACHE[full] = build()
    return obj


def score_on_worker(item: Item, parts: str, payload: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The Dask task of ``birdspec predict``: one recording -> its part files (a predictor per worker thread, built
    from the shipped :func:`model_payload`)."""
    from birdspec.prediction.predictor import Predictor

    predictor = cached_on_worker(("predict", payload["sha256"], repr(sorted(options.items()))),
                                 lambda: Predictor(materialise(payload), **options))
    return score_item(item, parts, predictor)


DaskTask = Callable[..., Mapping[str, Any]]
"""``task(item, parts, payload=..., options=...)``: writes the item's part files, returns its ledger entry."""


def run_dask(items: Sequence[Item], parts: Path, *, task: DaskTask, payload: Any, options: Mapping[str, Any],
             scheduler: str | None, workers: int, progress: Callable[[float, int], None] | None, label: str = "score") -> None:
    """Run ``task(item, parts, payload, options)`` for ``items`` (longest first) on a Dask cluster (``scheduler``)
    or a LocalCluster of ``workers`` processes; ``payload`` (e.g. :func:`model_payload`; None: nothing) is
    scattered to every worker once. ``label`` names the tasks (``birdspec-LABEL-<item key>-<nonce>``)."""
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise DependencyError(DASK_INSTALL_HINT) from exc
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address, or leave "
                              "--scheduler out to start a local cluster") from exc
    else:
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.WARNING)
        client = Client(cluster)
    try:
        log.info("Dask cluster: %d worker(s) (%s)", len(client.scheduler_info().get("workers", {})), scheduler or "local")
        shipped = None if payload is None else client.scatter(payload, broadcast=True)
        ordered = sorted(items, key=lambda i: -i.duration_s)
        nonce = os.urandom(4).hex()  # this run's task names (another run on the same cluster has others)
        futures = client.map(task, ordered, parts=str(parts), payload=shipped, options=dict(options),
                             key=[f"birdspec-{label}-{it.key}-{nonce}" for it in ordered], retries=2)
        for fut in as_completed(futures):
            entry = fut.result()
            if progress is not None:
                progress(float(entry.get("decoded_s") or 0.0), 1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
