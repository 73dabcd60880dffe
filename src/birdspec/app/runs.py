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


def _finite(value: Any) -> float | None:
    import math

    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def val_check(config: dict[str, Any], summary: dict[str, Any] | None, curves: dict[str, list[Any]],
              unit: str = "sample") -> dict[str, Any] | None:
    """What training's ``val_acc`` of a finished run is, at its best epoch, against ``birdspec evaluate``'s accuracy.

    Training validates on the validation recordings' samples **and**, in runs with no-bird samples, on fixed
    no-bird samples (at least :data:`~birdspec.training.samples.MIN_NOCALL_VAL`; right answer "no bird"), with
    "no bird" as an answer; ``birdspec evaluate`` scores the validation samples alone, arg-max over the species.
    So the two differ, most with few validation windows: a model answering "no bird" to everything has a
    ``val_acc`` of (no-bird samples) / (all samples). Returns ``{epoch, val_acc, samples, species_samples,
    nobird_samples, acc_species, acc_nobird, text}`` (``acc_*`` from ``metrics.csv``'s ``val_acc_species`` /
    ``val_acc_nobird``, None in runs trained before they were logged), or None before the run has ended.
    ``unit``: what a validation sample is called ('window' for runs trained from verified windows).
    """
    if not summary or not isinstance(summary.get("best_epoch"), int):
        return None
    epoch = int(summary["best_epoch"])
    counts = config.get("num_samples") or {}
    n_species, n_nobird = int(counts.get("val") or summary.get("num_val_samples") or 0), int(counts.get("val_nocall") or 0)
    row = {k: v[curves["epoch"].index(epoch)] for k, v in curves.items()} if epoch in curves.get("epoch", []) else {}
    val_acc = _finite(row.get("val_acc", summary.get("best_val_acc")))
    species, nobird = _finite(row.get("val_acc_species")), _finite(row.get("val_acc_nobird"))
    what = f"{n_species} validation {unit}s"
    if n_nobird:
        text = (f"the curves' val_acc is training's own check, {_f3(val_acc)} at its best epoch ({epoch}), on "
                f"{n_species + n_nobird} samples: the {what} and {n_nobird} fixed no-bird samples (background audio: quiet "
                "stretches, synthetic or given backgrounds; their right answer is “no bird”, so a model that answers "
                f"“no bird” to everything scores {n_nobird / (n_species + n_nobird):.3f}). ")
        if species is not None and nobird is not None:
            text += (f"On the {what} alone it is {species:.3f} (a “no bird” answer counts as wrong there), on "
                     f"the no-bird samples {nobird:.3f}. ")
        text += (f"birdspec evaluate scores the {what} alone, each given the best of the species (no “no bird” "
                 f"answer): its accuracy is at least val_acc's part on the {what}, and not comparable with val_acc")
    else:
        text = (f"the curves' val_acc is training's own check, {_f3(val_acc)} at its best epoch ({epoch}), on the {what} "
                "(the run has no no-bird samples), as birdspec evaluate scores them")
    return {"epoch": epoch, "val_acc": val_acc, "samples": n_species + n_nobird, "species_samples": n_species,
            "nobird_samples": n_nobird, "acc_species": species, "acc_nobird": nobird, "text": text}


def _f3(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def run_details(roots: Any, ref: str) -> dict[str, Any]:
    """A run's line (:func:`run_entry`), epoch curves, ``summary``, validation metrics (``eval_val``), its split
    when the app trained it, what training's val_acc is (``val_check``: :func:`val_check`), and its figures.

    ``level`` says what ``eval_val``'s "recording" level counts: ``"window"`` for a run the app trained from
    verified windows (each window is prepared as its own recording, so its metrics and confusion matrix are per
    window, n = validation windows), else ``"recording"``. ``curves.png`` is among the figures only when there
    is no ``metrics.csv`` to draw the curves from (the page draws those)."""
    import pandas as pd

    from birdspec.evaluation.evaluate import CONFUSION_FILE, METRICS_FILE, PER_CLASS_PLOT, eval_dir_name
    from birdspec.fileio import read_json
    from birdspec.training.rundir import CONFIG_FILE, CURVES_FILE, EPOCH_METRICS_FILE, SUMMARY_FILE

    path = roots.resolve(ref)
    if not ref.startswith("runs/") or not path.is_dir():
        raise NotFound(f"{ref}: not a run folder under the runs folder")
    metrics = path / EPOCH_METRICS_FILE
    curves: dict[str, list[Any]] = {}
    if metrics.is_file() and metrics.stat().st_size:
        df = pd.read_csv(metrics)  # empty cells (a part of val_acc a run has not) are null in JSON, not NaN
        curves = df.astype(object).where(df.notna(), None).to_dict(orient="list")
    out: dict[str, Any] = {"ref": ref, "entry": run_entry(roots, path), "curves": curves, "figures": []}
    ev = eval_dir_name("val")
    for key, rel in (("summary", SUMMARY_FILE), (ev, f"{ev}/{METRICS_FILE}"), ("split", SPLIT_RECORD_FILE)):
        data = read_json(path / rel)
        if data is not None:
            out[key] = data
    out["level"] = "window" if "split" in out else "recording"
    out["val_check"] = val_check(read_json(path / CONFIG_FILE) or {}, out.get("summary"), curves,
                                 unit="window" if out["level"] == "window" else "sample")
    for fig in ((CURVES_FILE,) if not curves else ()) + (f"{ev}/{CONFUSION_FILE}", f"{ev}/{PER_CLASS_PLOT}"):
        if (path / fig).is_file():
            out["figures"].append(f"{ref}/{fig}")
    return out
