"""A folder of recordings analysed as one run: every recording under a served folder, scored with one model
loaded once, progress per recording.

It writes, under ``WORK/predictions/``, one prediction folder per recording (as Analyze writes one: the
timeline, downloads and boxes work on each, ``batch`` in its ``prediction.json`` names the run) and the
run's own folder ``<folder>--<run>--<time>-<job>/``: ``detections.csv`` with every recording's detections
(Review opens it like any prediction: one queue over the whole folder, verdicts beside it) and
``prediction.json`` with the folder, the members and the recordings that could not be scored (with why;
they are skipped, as ``birdspec predict`` skips them). Each folder is written as ``.partial`` and renamed
whole, the run's own last: a run that fails leaves no run listed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from birdspec.app import predictions as preds
from birdspec.audio import AUDIO_EXTENSIONS
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

MAX_BATCH_FILES = 5000


def folder_recordings(roots: Any, folder: str) -> list[str]:
    """The audio files under served folder ``folder`` (``<key>`` or ``<key>/<sub folder>``), as references.

    Raises:
        ConfigError: not a folder, or no recordings in it.
    """
    path = roots.resolve(folder)
    if not path.is_dir():
        raise ConfigError(f"{folder}: not a folder; pick a folder of recordings")
    key = folder.split("/", 1)[0]
    prefix = folder.rstrip("/") + "/"
    refs = [r for r in roots.list_files(key, AUDIO_EXTENSIONS) if r.startswith(prefix) or folder == key]
    if not refs:
        raise ConfigError(f"{folder}: no recordings ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
    if len(refs) > MAX_BATCH_FILES:
        raise ConfigError(f"{folder}: {len(refs)} recordings; analyse at most {MAX_BATCH_FILES} at once "
                          "(or run `birdspec predict FOLDER --format parquet` and open its table in Review)")
    return refs


def run_batch(job: Any, config: Any, roots: Any, *, folder: str, checkpoint_ref: str) -> dict[str, Any]:
    """Score every recording of ``folder`` with one checkpoint (a job's work); see the module doc."""
    import pandas as pd

    from birdspec.app.recordings import probe
    from birdspec.fileio import write_csv, write_json

    refs = folder_recordings(roots, folder)
    ckpt = preds.checkpoint_path(roots, checkpoint_ref)
    paths = {str(roots.resolve(r)): r for r in refs}
    failed: list[dict[str, str]] = []
    sizes = {}
    for path, ref in paths.items():
        try:
            sizes[path] = probe(path).duration_s
        except Exception as exc:  # noqa: BLE001 - a recording that cannot be read is skipped, with why
            failed.append({"recording": ref, "error": str(exc)})
    total_s = max(sum(sizes.values()), 1e-6)
    run = preds.safe_id(Path(folder.replace("/", "_")), checkpoint_ref, job.id)
    members: list[dict[str, Any]] = []
    done = [0.0]

    def progress(seconds: float, _files: int) -> None:
        done[0] += seconds
        job.update(progress=min(done[0] / total_s, 0.999))

    job.update(message=f"loading {ckpt.name}")
    with preds.open_predictor(ckpt) as predictor:
        for k, result in enumerate(predictor.predict_paths(list(sizes), strict=False, progress=progress), start=1):
            ref = paths[str(result.path)]
            job.update(message=f"{k} of {len(sizes)} recordings: {Path(ref).name}")
            if not result.ok:
                failed.append({"recording": ref, "error": str(result.error)})
                continue
            pid = preds.safe_id(Path(ref), checkpoint_ref, f"{job.id}-{k}")
            member = config.predictions_dir / pid
            meta = preds.write_result(predictor, result, member.with_name(pid + ".partial"))
            write_json(member.with_name(pid + ".partial") / preds.META_FILE,
                       {"id": pid, "recording": ref, "recording_path": str(result.path), "checkpoint": checkpoint_ref,
                        "checkpoint_path": str(ckpt), "batch": run, **meta})
            os.replace(member.with_name(pid + ".partial"), member)
            members.append({"recording": ref, "prediction": roots.ref(member / preds.DETECTIONS_FILE),
                            "duration_s": meta["duration_s"], "warning": meta["warning"]})
        model = preds.model_meta(predictor)
    if not members:
        raise ConfigError(f"{folder}: none of its {len(refs)} recordings could be scored "
                          f"({failed[0]['error'] if failed else 'no audio'})")
    tables = [pd.read_csv(roots.resolve(m["prediction"])) for m in members]

    def fill(partial: Path) -> None:
        write_csv(partial / preds.DETECTIONS_FILE, pd.concat(tables, ignore_index=True), float_format=None)
        write_json(partial / preds.META_FILE, {"id": run, "folder": folder, "recording": None, "checkpoint": checkpoint_ref,
                                               "checkpoint_path": str(ckpt), "members": members, "failed": failed,
                                               "duration_s": sum(m["duration_s"] for m in members), **model})

    csv = preds.publish_folder(config, run, fill)
    return {"prediction": roots.ref(csv), "id": run, "members": members, "failed": failed}


def folder_choices(roots: Any) -> list[str]:
    """The served recording folders and their sub-folders holding recordings (references), for the page."""
    out: set[str] = set()
    for key in [*roots.recording_keys, "uploads"]:
        for ref in roots.list_files(key, AUDIO_EXTENSIONS):
            parts = ref.split("/")[:-1]
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(out, key=lambda r: (r.split("/")[0], r))
