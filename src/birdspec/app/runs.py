"""The run folders of the Runs page: one line per run (date, model, status, key metric) and a run's details
(curves, summary, validation metrics and figures, and for runs trained in the app their split).

Read without PyTorch, from the files a run holds: ``config.json`` (written when training starts),
``summary.json`` (when it ends), ``eval_val/metrics.json`` (``birdspec evaluate RUN``; the app runs it after
each training) and :data:`~birdspec.app.verified.SPLIT_RECORD_FILE`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from birdspec.app.paths import NotFound
from birdspec.app.verified import SPLIT_RECORD_FILE

log = logging.getLogger(__name__)


def _run_folders(root: Path) -> list[Path]:
    from birdspec.models.checkpoint import CHECKPOINTS_DIR
    from birdspec.training.rundir import CONFIG_FILE

    found = {p.parent for p in root.glob(f"*/{CONFIG_FILE}")} | {p.parent.parent for p in root.glob(f"*/{CHECKPOINTS_DIR}/*.pt")}
    return sorted(found)


def _key_metric(run: Path, summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's headline figure: macro F1 of its evaluation on the validation recordings, else the best
    validation accuracy training saw."""
    from birdspec.evaluation.evaluate import METRICS_FILE, eval_dir_name
    from birdspec.fileio import read_json

    ev = read_json(run / eval_dir_name("val") / METRICS_FILE) or {}
    rec = ev.get("recording") or {}
    if isinstance(rec.get("macro_f1"), (int, float)):
        return {"name": "val macro F1", "value": float(rec["macro_f1"]), "accuracy": rec.get("accuracy")}
    if summary and isinstance(summary.get("best_val_acc"), (int, float)):
        return {"name": "best val acc", "value": float(summary["best_val_acc"])}
    return None


def run_entry(roots: Any, run: Path) -> dict[str, Any]:
    """One line of the runs list: ref, date, model, status, key metric, and the split of an app-trained run."""
    from birdspec.fileio import read_json
    from birdspec.training.rundir import CONFIG_FILE, SUMMARY_FILE

    config = read_json(run / CONFIG_FILE) or {}
    summary = read_json(run / SUMMARY_FILE)
    split = read_json(run / SPLIT_RECORD_FILE) or {}
    model = (config.get("train_config") or {}).get("model") or (config.get("model") or {}).get("name") or (summary or {}).get("model")
    if summary is not None:
        status = str(summary.get("status") or "finished")
    elif config:
        status = "not finished"  # training now, or stopped: `birdspec train --resume` continues it
    else:
        status = "checkpoints only"
    date = (summary or {}).get("finished_utc") or config.get("created_utc")
    if not date:
        date = _mtime_utc(run)
    return {"ref": roots.ref(run), "name": run.name, "date": date, "model": model,
            "status": status, "metric": _key_metric(run, summary), "split": split.get("mode")}


def _mtime_utc(path: Path) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat(timespec="seconds")


def run_list(roots: Any) -> list[dict[str, Any]]:
    """Every run folder under the runs folder (none a symlink leads out of), newest first."""
    entries = [run_entry(roots, r) for r in _run_folders(roots.folders["runs"]) if roots.ref(r) is not None]
    return sorted(entries, key=lambda e: str(e["date"] or ""), reverse=True)


def run_details(roots: Any, ref: str) -> dict[str, Any]:
    """A run's line (:func:`run_entry`), epoch curves, ``summary``, validation metrics (``eval_val``), its split
    when the app trained it, and its figures.

    ``level`` says what ``eval_val``'s "recording" level counts: ``"window"`` for a run the app trained from
    verified windows (each window is prepared as its own recording, so its metrics and confusion matrix are per
    window, n = validation windows), else ``"recording"``. ``curves.png`` is among the figures only when there
    is no ``metrics.csv`` to draw the curves from (the page draws those)."""
    import pandas as pd

    from birdspec.evaluation.evaluate import CONFUSION_FILE, METRICS_FILE, PER_CLASS_PLOT, eval_dir_name
    from birdspec.fileio import read_json
    from birdspec.training.rundir import CURVES_FILE, EPOCH_METRICS_FILE, SUMMARY_FILE

    path = roots.resolve(ref)
    if not ref.startswith("runs/") or not path.is_dir():
        raise NotFound(f"{ref}: not a run folder under the runs folder")
    metrics = path / EPOCH_METRICS_FILE
    curves = pd.read_csv(metrics).to_dict(orient="list") if metrics.is_file() and metrics.stat().st_size else {}
    out: dict[str, Any] = {"ref": ref, "entry": run_entry(roots, path), "curves": curves, "figures": []}
    ev = eval_dir_name("val")
    for key, rel in (("summary", SUMMARY_FILE), (ev, f"{ev}/{METRICS_FILE}"), ("split", SPLIT_RECORD_FILE)):
        data = read_json(path / rel)
        if data is not None:
            out[key] = data
    out["level"] = "window" if "split" in out else "recording"
    for fig in ((CURVES_FILE,) if not curves else ()) + (f"{ev}/{CONFUSION_FILE}", f"{ev}/{PER_CLASS_PLOT}"):
        if (path / fig).is_file():
            out["figures"].append(f"{ref}/{fig}")
    return out
