"""Side-by-side comparison of training runs (the study's MobileNetV2 vs ResNet18 figure).

:func:`compare_runs` reads each run directory, evaluates its checkpoint on
the run's validation recordings (recording level; an up-to-date
``RUN_DIR/eval_val`` from ``birdspec evaluate`` is reused), measures its cost
(:mod:`birdspec.evaluation.profile`) and writes into ``out_dir``:

``comparison.csv``
    one row per run: ``run, model, encoding, num_parameters, multiply_adds_per_sample,
    best_val_acc, best_epoch, epochs_run, accuracy, macro_f1, balanced_accuracy, cmap,
    roc_auc_macro, log_loss, n_val_recordings, train_time_s, inference_ms_per_sample, cost_note,
    train_device, checkpoint, run_dir``.
``comparison.md``
    the same table, readable, with links to the figures.
``compare_curves.png`` / ``compare_metrics.png`` / ``compare_confusion.png``
    validation curves overlaid; metric bars; row-normalised confusion matrices side by side
    (one consistent color per run in all of them).
``report.html``
    everything above plus each run's ``curves.png`` and per-class scores, in one
    self-contained file (figures embedded), built with :mod:`birdspec.evaluation.report`.
``runs/<name>/eval_<split>/``
    the evaluations made here (when no up-to-date one was found in the run).

Inference time is measured on the CPU in this process, one model after the
other, so the numbers compare with each other but not across machines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import CheckpointError, ConfigError
from birdspec.evaluation.compare_report import (
    COMPARE_REPORT_HTML,
    COMPARISON_CSV,
    COMPARISON_MD,
    CONFUSION_PNG,
    CURVES_PNG,
    METRICS_PNG,
    display_table,
    write_html,
    write_markdown,
)
from birdspec.fileio import read_json, write_csv
from birdspec.training.rundir import EPOCH_METRICS_FILE, SUMMARY_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInfo:
    """One run's data for a comparison."""

    name: str
    run_dir: Path
    config: Mapping[str, Any]
    summary: Mapping[str, Any]
    curves: pd.DataFrame
    metrics: Mapping[str, Any]
    confusion: np.ndarray
    class_names: list[str]
    per_class: pd.DataFrame
    eval_dir: Path
    profile: Any = None
    row: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare_runs` produced.

    Attributes:
        out_dir: the output folder.
        table: the ``comparison.csv`` frame.
        runs: per-run details.
        files: file name -> path of everything written.
    """

    out_dir: Path
    table: pd.DataFrame
    runs: tuple[RunInfo, ...]
    files: Mapping[str, Path]

    @property
    def report(self) -> Path:
        return self.files[COMPARE_REPORT_HTML]


def run_names(run_dirs: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, or ``parent/name`` when folder names repeat."""
    names = [p.name or str(p) for p in run_dirs]
    out = []
    for p, n in zip(run_dirs, names, strict=True):
        out.append(f"{p.parent.name}/{n}" if names.count(n) > 1 else n)
    seen: dict[str, int] = {}
    final = []
    for n in out:
        seen[n] = seen.get(n, 0) + 1
        final.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return final



def _cached_evaluation(run_dir: Path, ckpt: Path, split: str) -> Path | None:
    """``RUN_DIR/eval_<split>`` when it evaluated ``ckpt`` after the checkpoint was written."""
    from birdspec.evaluation.evaluate import (
        METRICS_FILE,
        PER_CLASS_FILE,
        PREDICTIONS_FILE,
        eval_dir_name,
    )

    d = run_dir / eval_dir_name(split)
    m = read_json(d / METRICS_FILE)
    if not m or not (d / PREDICTIONS_FILE).is_file() or not (d / PER_CLASS_FILE).is_file():
        return None
    try:
        same = Path(str(m.get("checkpoint"))).resolve() == ckpt.resolve()
        fresh = (d / METRICS_FILE).stat().st_mtime >= ckpt.stat().st_mtime
    except OSError:
        return None
    return d if same and fresh and m.get("split") == split and "recording" in m else None


def _load_run(
    run_dir: Path,
    name: str,
    *,
    out: Path,
    data: str | Path | None,
    split: str,
    checkpoint: str,
    device: str,
    batch_size: int,
    reuse: bool,
) -> RunInfo:
    from birdspec.evaluation.evaluate import (
        METRICS_FILE,
        PER_CLASS_FILE,
        PREDICTIONS_FILE,
        checkpoint_of_run,
        eval_dir_name,
        evaluate_run,
    )
    from birdspec.evaluation.inference import predictions_from_frame
    from birdspec.evaluation.metrics import class_display_names, confusion_counts
    from birdspec.training.rundir import read_run_config

    cfg = read_run_config(run_dir)
    summary = read_json(run_dir / SUMMARY_FILE)
    if summary is None:
        log.warning("%s has no summary.json (unfinished run?); comparing what it has", run_dir)
        summary = {}
    metrics_csv = run_dir / EPOCH_METRICS_FILE
    curves = pd.read_csv(metrics_csv) if metrics_csv.is_file() else pd.DataFrame(columns=["epoch", "val_acc", "val_loss"])
    ckpt = checkpoint_of_run(run_dir, checkpoint)
    eval_dir = _cached_evaluation(run_dir, ckpt, split) if (reuse and data is None and checkpoint == "best") else None
    if eval_dir is None:
        safe = name.replace("/", "_").replace(" ", "_")
        eval_dir = out / "runs" / safe / eval_dir_name(split)
        evaluate_run(run_dir, data=data, split=split, checkpoint=checkpoint, out_dir=eval_dir, device=device,
                     batch_size=batch_size)
    else:
        log.info("%s: reusing %s", name, eval_dir)
    metrics = json.loads((eval_dir / METRICS_FILE).read_text())
    preds = pd.read_csv(eval_dir / PREDICTIONS_FILE, dtype={"id": str, "label": str, "predicted": str})
    rec = predictions_from_frame(preds, level="recording")
    per_class = pd.read_csv(eval_dir / PER_CLASS_FILE, keep_default_na=False, na_values=[""])
    per_class = per_class[per_class["level"] == "recording"].drop(columns="level")
    names = class_display_names(list(rec.classes), cfg.get("class_info"))
    counts = confusion_counts(rec.y_true, rec.y_pred, num_classes=len(rec.classes))
    return RunInfo(name, run_dir, cfg, summary, curves, metrics, counts, names, per_class, eval_dir)


def compare_runs(
    run_dirs: Sequence[str | Path],
    *,
    out_dir: str | Path,
    data: str | Path | None = None,
    split: str = "val",
    checkpoint: str = "best",
    device: str = "cpu",
    batch_size: int = 32,
    profile: bool = True,
    timing: bool = True,
    timing_batch_size: int = 4,
    timing_repeats: int = 5,
    reuse: bool = True,
    title: str = "birdspec model comparison",
    extra_sections: Sequence[Any] = (),
) -> CompareResult:
    """Compare training runs: one table, overlaid curves, confusion matrices, an HTML report.

    Args:
        run_dirs: run directories (``birdspec train``), at least one.
        out_dir: where to write (see the module doc).
        data: evaluate on this prepared dataset instead of each run's own.
        split: 'val' (default: each run's validation recordings), 'train' or 'all'.
        checkpoint: 'best' or 'last'.
        device: where evaluation runs (timing is always on the CPU).
        profile / timing: measure multiply-adds / CPU inference time.
        timing_batch_size / timing_repeats: timing settings.
        reuse: reuse an up-to-date ``RUN_DIR/eval_<split>``.
        title: the report's title.
        extra_sections: :class:`~birdspec.evaluation.report.Section` objects appended to the report.

    Raises:
        ConfigError: no runs given.
        CheckpointError: a folder that is not a run directory.
    """
    from birdspec.evaluation.evaluate import checkpoint_of_run
    from birdspec.evaluation.profile import profile_checkpoint

    if not run_dirs:
        raise ConfigError("give at least one run directory to compare")
    paths = [Path(p) for p in run_dirs]
    for p in paths:
        if not p.is_dir():
            raise CheckpointError(f"{p}: no such run directory")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[RunInfo] = []
    for path, name in zip(paths, run_names(paths), strict=True):
        info = _load_run(path, name, out=out, data=data, split=split, checkpoint=checkpoint, device=device,
                         batch_size=batch_size, reuse=reuse)
        prof = None
        if profile:
            prof = profile_checkpoint(checkpoint_of_run(path, checkpoint), timing=timing,
                                      batch_size=timing_batch_size, repeats=timing_repeats)
        runs.append(replace(info, profile=prof, row=_table_row(info, prof)))
    table = pd.DataFrame([r.row for r in runs])
    files = _write_comparison(out, table, runs, split=split, checkpoint=checkpoint, title=title,
                              extra_sections=extra_sections)
    log.info("wrote the comparison of %d runs to %s", len(runs), out)
    return CompareResult(out, table, tuple(runs), files)


def _table_row(info: RunInfo, prof: Any) -> dict[str, Any]:
    """One run's row of ``comparison.csv``."""
    rec = info.metrics["recording"]
    s, cfg = info.summary, info.config
    return {
        "run": info.name,
        "model": s.get("model") or (cfg.get("model") or {}).get("name"),
        "encoding": s.get("encoding") or (cfg.get("encoding") or {}).get("name"),
        "num_parameters": s.get("num_parameters") or cfg.get("num_parameters") or (prof.num_parameters if prof else None),
        "multiply_adds_per_sample": prof.multiply_adds_per_sample if prof else None,
        "best_val_acc": s.get("best_val_acc"),
        "best_epoch": s.get("best_epoch"),
        "epochs_run": s.get("epochs_run"),
        "accuracy": rec.get("accuracy"),
        "macro_f1": rec.get("macro_f1"),
        "balanced_accuracy": rec.get("balanced_accuracy"),
        "cmap": rec.get("cmap"),
        "roc_auc_macro": rec.get("roc_auc_macro"),
        "log_loss": rec.get("log_loss"),
        "n_val_recordings": rec.get("n"),
        "train_time_s": s.get("train_time_s"),
        "inference_ms_per_sample": prof.inference_ms_per_sample if prof else None,
        "cost_note": prof.note if prof else "",
        "train_device": s.get("device") or (cfg.get("runtime") or {}).get("device"),
        "checkpoint": info.metrics.get("checkpoint"),
        "run_dir": str(info.run_dir),
    }


def _write_comparison(out: Path, table: pd.DataFrame, runs: Sequence[RunInfo], *, split: str, checkpoint: str,
                      title: str, extra_sections: Sequence[Any]) -> dict[str, Path]:
    """``comparison.csv``, the three figures, ``comparison.md`` and ``report.html``."""
    from birdspec.evaluation.plots import plot_confusion_grid, plot_curves_overlay, plot_metric_bars, run_colors

    files: dict[str, Path] = {COMPARISON_CSV: write_csv(out / COMPARISON_CSV, table)}
    # figure labels: the run name, plus its model when the name does not say it
    labels = {r.name: r.name if str(r.row["model"]) in r.name else f"{r.name} ({r.row['model']})" for r in runs}
    colors = run_colors(list(labels.values()))
    files[CURVES_PNG] = plot_curves_overlay(
        {labels[r.name]: r.curves for r in runs}, out / CURVES_PNG, colors=colors,
        title="Validation accuracy and loss per epoch",
    )
    files[METRICS_PNG] = plot_metric_bars(
        table.assign(run=table["run"].map(labels)), out / METRICS_PNG, colors=colors,
        metrics=(("best_val_acc", "best val accuracy\n(sample level, training)"), ("accuracy", "accuracy\n(recording level)"),
                 ("macro_f1", "macro F1\n(recording level)"), ("cmap", "cmAP\n(recording level)")),
        title=f"Validation metrics per run ({split} split, {checkpoint} checkpoint)",
    )
    files[CONFUSION_PNG] = plot_confusion_grid(
        [(labels[r.name], r.confusion, r.class_names) for r in runs], out / CONFUSION_PNG, colors=colors,
        title=f"Row-normalised confusion matrices, recording level ({split} split, {checkpoint} checkpoint)",
    )
    display = display_table(table)
    files[COMPARISON_MD] = write_markdown(out / COMPARISON_MD, display, runs, split=split, checkpoint=checkpoint, title=title)
    files[COMPARE_REPORT_HTML] = write_html(out / COMPARE_REPORT_HTML, display, runs, files, split=split, checkpoint=checkpoint,
                                     title=title, extra_sections=extra_sections)
    return files
