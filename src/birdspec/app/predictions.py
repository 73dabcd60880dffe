"""Predictions the app makes and reads: one folder per (recording, checkpoint), published whole.

``WORK/predictions/<id>/`` holds

``prediction.json``
    the recording and checkpoint (references and paths), classes, the model's detection thresholds (per
    class; None for a model without), window length, duration (what decodes), a cut-off recording's warning;
``detections.csv``
    the kept (window, class) rows, exactly as ``birdspec predict --format csv`` writes them
    (:class:`~birdspec.prediction.outputs.PredictionWriter`);
``scores.csv``
    every class's score per window (``--scores all``), for the species tracks;
``raven/<stem>.BirdSpec.selection.table.txt``
    the Raven selection table (the same writer as ``--format raven``);
``detections.verdicts.csv``
    the verdicts given in Review (:mod:`birdspec.app.review`).

The folder is written as ``<id>.partial`` and renamed when complete, so a crash never leaves a
prediction that looks finished. Review also reads any ``birdspec predict`` table in the long format
found in the served folders: CSV, or Parquet when pyarrow is installed (e.g. an archive run's
``predictions.parquet``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from birdspec.app.jobs import Job
from birdspec.app.paths import NotFound, PathRefused, Roots, ServeConfig
from birdspec.app.review import DETECTION_KEYS, VERDICTS_SUFFIX
from birdspec.fileio import safe_name
from birdspec.formats import SCORES_FILE

log = logging.getLogger(__name__)

META_FILE = "prediction.json"
DETECTIONS_FILE = "detections.csv"
RAVEN_DIR = "raven"
MIN_CONF = 0.1
TOP_K = 3
RAVEN_LABEL_COLUMN = "Species Code"
"""The column of a Raven selection table (``--format raven``) that holds the class label."""
TABLE_SUFFIXES = (".csv", ".parquet")
"""The prediction tables Review reads (``--format csv`` and ``--format parquet``)."""


def checkpoint_choices(roots: Roots) -> list[dict[str, Any]]:
    """The checkpoints under the runs folder with what their metadata says (read without PyTorch)."""
    from birdspec.errors import CheckpointError
    from birdspec.models.checkpoint import peek_checkpoint

    out = []
    for ref in roots.list_files("runs", (".pt",)):
        if "/lightning/" in ref:
            continue
        path = roots.resolve(ref)
        parts = ref.split("/")
        name = f"{parts[-3]} ({Path(ref).stem})" if len(parts) >= 3 and parts[-2] == "checkpoints" else "/".join(parts[1:])
        entry: dict[str, Any] = {"ref": ref, "name": name}
        try:
            info = peek_checkpoint(path)
        except CheckpointError as exc:
            entry["error"] = str(exc)
        else:
            if info is not None:
                entry.update(model=info.name, classes=list(info.classes), window_s=info.encoding.window_s)
        out.append(entry)
    return out


def checkpoint_path(roots: Roots, ref: str) -> Path:
    """The checkpoint file ``ref`` names, which must be a ``.pt`` file under the runs folder.

    Raises:
        NotFound: no such checkpoint (the message says where checkpoints are looked for).
        PathRefused: a path outside the runs folder.
    """
    if not str(ref or "").startswith("runs/") or not str(ref).endswith(".pt"):
        raise NotFound(f"unknown checkpoint {ref!r}: pick one of the .pt files under the runs folder "
                       f"({roots.folders['runs']}), or train one with `birdspec train`")
    try:
        return roots.resolve(ref)
    except NotFound:
        raise NotFound(f"unknown checkpoint {ref!r}: no such file under {roots.folders['runs']}; "
                       "reload the page to see the checkpoints there") from None


def safe_id(recording: Path, checkpoint_ref: str, job_id: str) -> str:
    """``<recording>--<run>--<time>-<job id>``: the job id keeps two predictions of one second apart."""
    run = checkpoint_ref.split("/")[-3] if checkpoint_ref.count("/") >= 3 else Path(checkpoint_ref).stem
    base = safe_name(f"{recording.stem}--{run}")[:80]
    return f"{base}--{time.strftime('%Y%m%d-%H%M%S')}-{job_id}"


def publish_folder(config: ServeConfig, pid: str, fill: Callable[[Path], None]) -> Path:
    """Write the table folder ``pid`` whole: ``fill(folder)`` writes into ``<pid>.partial``, renamed when it returns
    (a failure leaves nothing behind); its detections.csv."""
    final = config.predictions_dir / pid
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        fill(partial)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final / DETECTIONS_FILE


def run_prediction(job: Job, config: ServeConfig, roots: Roots, *, recording_ref: str, checkpoint_ref: str,
                   tiles: Any = None) -> dict[str, Any]:
    """Predict one recording with one checkpoint and publish its prediction folder (a job's work); the
    spectrogram tiles the page shows first are drawn before (``tiles``: the server's
    :class:`~birdspec.app.tiles.TileCache`; a tile that fails is drawn again when the page asks for it).

    A cut-off recording is scored where it decodes, as ``birdspec predict`` does (``warning`` in the metadata).
    The folder is published last, whole: a job that fails leaves no prediction behind.
    """
    from birdspec.app.recordings import probe

    rec = roots.resolve(recording_ref)
    ckpt = checkpoint_path(roots, checkpoint_ref)
    total_s = max(probe(rec).duration_s, 1e-6)
    pid = safe_id(rec, checkpoint_ref, job.id)
    final = config.predictions_dir / pid
    partial = final.with_name(final.name + ".partial")
    try:
        meta = _score(job, rec, ckpt, partial, total_s=total_s, tiles=tiles)
        write_meta = {"id": pid, "recording": recording_ref, "recording_path": str(rec), "checkpoint": checkpoint_ref,
                      "checkpoint_path": str(ckpt), **meta}
        from birdspec.fileio import write_json

        write_json(partial / META_FILE, write_meta)
        if tiles is not None:
            job.update(message="drawing the first spectrogram tiles")
            try:
                tiles.warm(rec, duration_s=meta["duration_s"], background=False)
            except Exception as exc:  # noqa: BLE001 - the page asks for them again and says what failed
                log.warning("%s: the first spectrogram tiles could not be drawn (%s)", rec.name, exc)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {"prediction": roots.ref(final / DETECTIONS_FILE), "id": pid, "warning": meta.get("warning")}


def _score(job: Job, rec: Path, ckpt: Path, partial: Path, *, total_s: float, tiles: Any) -> dict[str, Any]:
    """Score ``rec`` with ``ckpt`` into ``partial`` (detections, every score, the Raven table); the metadata."""
    job.update(message=f"loading {ckpt.name}")
    done = [0.0]

    def progress(seconds: float, _files: int) -> None:
        done[0] += seconds
        job.update(progress=min(done[0] / total_s, 0.999), message=f"{done[0]:.0f} of {total_s:.0f} s scored")

    if tiles is not None:  # the spectrogram of the opening view is drawn meanwhile, at low priority
        tiles.warm(rec, duration_s=total_s, background=True)
    with open_predictor(ckpt) as predictor:
        job.update(message="scoring")
        (result,) = list(predictor.predict_paths([rec], strict=True, progress=progress))
        return write_result(predictor, result, partial)


def open_predictor(ckpt: Path) -> Any:
    """The app's predictor of ``ckpt``: every top-3 score from :data:`MIN_CONF`, on every core (as ``birdspec
    predict``: the page waits for the analysis; the tiles drawn meanwhile run at low priority and the page's
    requests are short)."""
    from birdspec.prediction.predictor import Predictor
    from birdspec.runtime import cpu_count

    return Predictor(ckpt, min_conf=MIN_CONF, top_k=TOP_K, scores="topk", threads=cpu_count())


def write_result(predictor: Any, result: Any, folder: Path) -> dict[str, Any]:
    """Write one recording's scores into a new ``folder`` (detections, every score, the Raven table); the metadata
    of its ``prediction.json`` that the scores give."""
    from birdspec.fileio import write_csv
    from birdspec.prediction.outputs import PredictionWriter

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fe = predictor.frontend
    for fmt, out in (("csv", folder / DETECTIONS_FILE), ("raven", folder / RAVEN_DIR)):
        writer = PredictionWriter(fmt, out, class_info=predictor.class_info, min_conf=MIN_CONF, top_k=TOP_K,
                                  freq_band_hz=(fe.fmin_hz, fe.fmax_hz))
        writer.write(result)
        writer.close()
    write_csv(folder / SCORES_FILE, predictor.table(result, scores="all"))
    return {**model_meta(predictor), "duration_s": result.duration_s, "warning": result.warning}


def model_meta(predictor: Any) -> dict[str, Any]:
    """What ``prediction.json`` says of the model: classes, names, thresholds, window, the app's score settings."""
    model_thresholds = predictor.runtime.info.thresholds
    return {"thresholds": dict(zip(predictor.classes, map(float, model_thresholds), strict=True)) if model_thresholds else None,
            "classes": predictor.classes, "class_info": predictor.class_info, "window_s": predictor.encoding.window_s,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"), "min_conf": MIN_CONF, "top_k": TOP_K}


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_predictions(roots: Roots) -> list[dict[str, Any]]:
    """The app's predictions (newest first), then ``birdspec predict`` CSVs in the recordings folders. A folder
    analysed as one run (:mod:`birdspec.app.batch`) is listed as itself (``folder``, ``recordings``) and as its
    recordings' predictions (``batch``: its id)."""
    out = []
    pdir = roots.folders["predictions"]
    folders = sorted((d for d in pdir.iterdir() if d.is_dir() and not d.name.endswith(".partial")),
                     key=lambda d: d.stat().st_mtime, reverse=True) if pdir.is_dir() else []
    for d in folders:
        meta = read_meta(d)
        if meta and (d / DETECTIONS_FILE).is_file():
            out.append({"ref": roots.ref(d / DETECTIONS_FILE), "name": d.name, "recording": meta.get("recording"),
                        "checkpoint": meta.get("checkpoint"), "created": meta.get("created"),
                        "batch": meta.get("batch"), "folder": meta.get("folder"),
                        "recordings": len(meta.get("members") or []) or None})
    for key in roots.recording_keys:
        for ref in roots.list_files(key, TABLE_SUFFIXES):
            if ref.endswith(VERDICTS_SUFFIX):
                continue
            if set(DETECTION_KEYS) <= _columns(roots.resolve(ref)):
                out.append({"ref": ref, "name": ref, "recording": None, "checkpoint": None, "created": None})
    return out


def _columns(path: Path) -> set[str]:
    """The column names of a CSV (its header line) or Parquet file (its schema); empty when unreadable."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return set(pq.read_schema(path).names)
        with open(path, encoding="utf-8") as f:
            return set(f.readline().strip().split(","))
    except ImportError:  # no pyarrow: Parquet predictions are not listed
        return set()
    except (OSError, UnicodeDecodeError, ValueError):  # pyarrow's errors are ValueErrors / OSErrors
        return set()


def model_thresholds(csv: Path) -> dict[str, float] | None:
    """The per-class detection thresholds of the model that made an app prediction (None: none known)."""
    meta = read_meta(csv.parent) if csv.name == DETECTIONS_FILE else None
    return dict(meta["thresholds"]) if meta and meta.get("thresholds") else None


def filtered_table(path: Path, *, min_score: str, thresholds: dict[str, float] | None, label_column: str, sep: str) -> bytes:
    """The rows of a detections CSV or Raven table (``sep``) at or above ``min_score`` (a number, or ``model``:
    each class's threshold in ``thresholds``, 0 where there is none); a Raven table's selections renumbered."""
    import pandas as pd

    from birdspec.app.review_queue import QueueOptions, minimum

    opts = QueueOptions.parse(min_score=min_score)
    df = pd.read_csv(path, sep=sep, dtype={label_column: str})
    score_column = "confidence" if "confidence" in df.columns else "Confidence"
    keep = df[score_column].to_numpy(dtype=float) >= minimum(df.rename(columns={label_column: "label"}), opts, thresholds) - 1e-9
    df = df[keep]
    if "Selection" in df.columns:
        df = df.assign(Selection=range(1, len(df) + 1))
    return df.to_csv(sep=sep, index=False, lineterminator="\n").encode("utf-8")


def audacity_text(csv: Path, *, min_score: str, thresholds: dict[str, float] | None) -> bytes:
    """An Audacity label track of a detections table's rows at or above ``min_score`` (as :func:`filtered_table`):
    ``start<TAB>end<TAB>label confidence`` a line, as ``birdspec predict --format audacity`` writes."""
    import io

    import pandas as pd

    rows = pd.read_csv(io.BytesIO(filtered_table(csv, min_score=min_score, thresholds=thresholds, label_column="label", sep=",")))
    cells = zip(rows["start_s"], rows["end_s"], rows["label"], rows["confidence"], strict=True)
    lines = [f"{s:.6f}\t{e:.6f}\t{lab} {c:.3f}" for s, e, lab, c in cells]
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def prediction_csv(roots: Roots, ref: str) -> Path:
    """The detections table ``ref`` names (an app prediction, or a ``birdspec predict`` CSV or Parquet file).

    Raises:
        NotFound / PathRefused: not a prediction table inside the served folders.
    """
    if not str(ref).endswith(TABLE_SUFFIXES) or str(ref).endswith(VERDICTS_SUFFIX):
        raise PathRefused(f"{ref!r} is not a prediction table (.csv or .parquet); pick one from the list")
    return roots.resolve(ref)
