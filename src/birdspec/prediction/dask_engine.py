"""``birdspec predict ... --engine dask``: the per-recording task of a folder prediction on a Dask cluster.

Needs ``pip install 'birdspec[distributed]'`` (dask.distributed). With ``--scheduler tcp://HOST:PORT``
the tasks go to a running cluster (started, for example, with dask-jobqueue on SLURM/PBS or with
dask-kubernetes); without it, a LocalCluster of ``--jobs`` single-threaded worker processes is started.

- **Paths**: workers open the recordings and write the part files by the paths given on the command
  line, so the archive and ``--out`` must be on storage every worker sees under the same path (a shared
  or network file system); give absolute paths.
- **The model is shipped once**: the checkpoint file and its ONNX runtime export are scattered to every
  worker a single time (``broadcast``); each worker process writes them to its local temp folder and
  builds its predictor on its first task, then reuses it for every later task.
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
_PREDICTORS: dict[tuple[str, str, int], Any] = {}
_LOCK = threading.Lock()


def model_payload(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint file and its runtime export (if any) as bytes: what every worker needs once."""
    from birdspec.prediction import onnx_runtime as ox

    files = {checkpoint.name: checkpoint.read_bytes()}
    export = ox.find_export(checkpoint)
    if export is not None:
        beside = ox.run_export_dir(checkpoint).name
        for f in sorted(export.rglob("*")):
            if f.is_file():
                files[f"{beside}/{f.relative_to(export).as_posix()}"] = f.read_bytes()
    return {"sha256": ox.file_sha256(checkpoint), "name": checkpoint.name, "files": files}


def _materialise(model: Mapping[str, Any]) -> Path:
    """Write the shipped model into this worker's temp folder (once per process); the checkpoint path."""
    folder = Path(tempfile.gettempdir()) / f"birdspec-model-{model['sha256'][:16]}-{os.getpid()}"
    files: Mapping[str, bytes] = model["files"]
    name: str = model["name"]
    for rel, data in files.items():
        target = folder / rel
        if not target.is_file() or target.stat().st_size != len(data):
            write_with(target, partial(Path.write_bytes, data=data))
    return folder / name


def score_on_worker(item: Item, parts: str, model: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The Dask task: one recording -> its part files (a predictor per worker thread, built once)."""
    from birdspec.prediction.predictor import Predictor

    key = (model["sha256"], repr(sorted(options.items())), threading.get_ident())
    with _LOCK:
        predictor = _PREDICTORS.get(key)
        if predictor is None:
            restore_dynamic_mmap_threshold()
            predictor = _PREDICTORS[key] = Predictor(_materialise(model), **options)
    return score_item(item, parts, predictor)


def run_dask(items: Sequence[Item], parts: Path, *, checkpoint: Path, options: Mapping[str, Any], scheduler: str | None,
             workers: int, progress: Callable[[float, int], None] | None) -> None:
    """Score ``items`` on a Dask cluster (``scheduler``) or a LocalCluster of ``workers`` processes."""
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
        shipped = client.scatter(model_payload(checkpoint), broadcast=True)
        ordered = sorted(items, key=lambda i: -i.duration_s)
        nonce = os.urandom(4).hex()  # this run's task names (another run on the same cluster has others)
        futures = client.map(score_on_worker, ordered, parts=str(parts), model=shipped, options=dict(options),
                             key=[f"birdspec-score-{it.key}-{nonce}" for it in ordered], retries=2)
        for fut in as_completed(futures):
            entry = fut.result()
            if progress is not None:
                progress(float(entry.get("decoded_s") or 0.0), 1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
