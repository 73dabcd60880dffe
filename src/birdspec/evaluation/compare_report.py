"""The readable forms of a run comparison: the display table, ``comparison.md`` and ``report.html``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from birdspec.fileio import write_text
from birdspec.training.rundir import CURVES_FILE

COMPARISON_CSV = "comparison.csv"
COMPARISON_MD = "comparison.md"
COMPARE_REPORT_HTML = "report.html"
CURVES_PNG = "compare_curves.png"
METRICS_PNG = "compare_metrics.png"
CONFUSION_PNG = "compare_confusion.png"

DISPLAY_COLUMNS = (
    ("run", "run"),
    ("model", "model"),
    ("encoding", "encoding"),
    ("num_parameters", "parameters (M)"),
    ("multiply_adds_per_sample", "multiply-adds / sample (M)"),
    ("best_val_acc", "best val acc"),
    ("best_epoch", "best epoch"),
    ("accuracy", "val acc (rec.)"),
    ("macro_f1", "macro F1 (rec.)"),
    ("cmap", "cmAP (rec.)"),
    ("train_time_s", "train time (min)"),
    ("inference_ms_per_sample", "CPU ms / sample"),
)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table with readable headers and units (parameters and multiply-adds in millions, minutes)."""
    df = pd.DataFrame()
    for col, header in DISPLAY_COLUMNS:
        if col not in table:
            continue
        values = table[col]
        if col in ("num_parameters", "multiply_adds_per_sample"):
            values = values.map(lambda v: round(float(v) / 1e6, 3) if pd.notna(v) else None)
        elif col == "train_time_s":
            values = values.map(lambda v: round(float(v) / 60, 2) if pd.notna(v) else None)
        elif col in ("best_val_acc", "accuracy", "macro_f1", "cmap"):
            values = values.map(lambda v: round(float(v), 4) if pd.notna(v) else None)
        elif col == "inference_ms_per_sample":
            values = values.map(lambda v: round(float(v), 2) if pd.notna(v) else None)
        df[header] = values
    return df


COMPARE_NOTES = (
    "best val acc: the validation accuracy of the epoch the training run selected (sample level, from summary.json). "
    "val acc / macro F1 / cmAP: the selected checkpoint evaluated again on the run's validation recordings, "
    "at the recording level (window probabilities averaged per recording). "
    "Multiply-adds: Conv2d + Linear layers for one sample (log-mel frontend excluded). "
    "CPU ms / sample: median wall-clock of a small batch on this machine's CPU, frontend included; "
    "comparable between the runs of this report only."
)


def cost_notes(runs: Sequence[Any]) -> str:
    """What the cost columns leave out, per run (e.g. an embedding head's BirdNET backbone); '' when nothing."""
    return "\n".join(f"- {r.name}: {r.row['cost_note']}" for r in runs if r.row.get("cost_note"))


def write_markdown(path: Path, display: pd.DataFrame, runs: Sequence[Any], *, split: str, checkpoint: str,
                    title: str) -> Path:
    from birdspec.evaluation.report import markdown_table

    lines = [
        f"# {title}",
        "",
        f"{len(runs)} runs, {split} split, {checkpoint} checkpoint.",
        "",
        markdown_table(display),
        "",
        COMPARE_NOTES,
        "",
        *([f"Costs leave out:\n\n{cost_notes(runs)}", ""] if cost_notes(runs) else []),
        f"![Validation curves]({CURVES_PNG})",
        "",
        f"![Validation metrics]({METRICS_PNG})",
        "",
        f"![Confusion matrices]({CONFUSION_PNG})",
        "",
        "## Runs",
        "",
    ]
    for r in runs:
        lines.append(f"- **{r.name}**: `{r.run_dir}` (evaluation: `{r.eval_dir}`)")
    return write_text(path, "\n".join(lines) + "\n")


def write_html(path: Path, display: pd.DataFrame, runs: Sequence[Any], files: Mapping[str, Path], *,
                split: str, checkpoint: str, title: str, extra_sections: Sequence[Any]) -> Path:
    from birdspec.evaluation.evaluate import PER_CLASS_PLOT
    from birdspec.evaluation.report import Section, write_report

    sections = [
        Section("Summary", text=f"{len(runs)} runs compared on the {split} split with the {checkpoint} checkpoint.\n\n{COMPARE_NOTES}"
                + (f"\n\nCosts leave out:\n{cost_notes(runs)}" if cost_notes(runs) else ""), table=display),
        Section("Validation curves", figures=[files[CURVES_PNG]],
                captions=["Validation accuracy and loss per epoch (solid), training (dashed); one color per run."]),
        Section("Validation metrics", figures=[files[METRICS_PNG]],
                captions=["Best validation accuracy from training, and recording-level accuracy, macro F1 and cmAP."]),
        Section("Confusion matrices", figures=[files[CONFUSION_PNG]],
                captions=["Row-normalised: each row sums to 1; the diagonal is the recall of each class."]),
    ]
    for r in runs:
        figs, caps = [], []
        curves = r.run_dir / CURVES_FILE
        if curves.is_file():
            figs.append(curves)
            caps.append(f"{r.name}: training and validation loss and accuracy per epoch (curves.png).")
        per_class_png = r.eval_dir / PER_CLASS_PLOT
        if per_class_png.is_file():
            figs.append(per_class_png)
            caps.append(f"{r.name}: per-class precision, recall and F1 (recording level).")
        cols = [c for c in ("label", "common_name", "precision", "recall", "f1", "support") if c in r.per_class]
        tc = r.config.get("train_config") or {}
        text = (
            f"Run directory: {r.run_dir}\n\nModel {tc.get('model')}, optimizer {tc.get('optimizer')}, lr {tc.get('lr')}, "
            f"weight decay {tc.get('weight_decay')}, batch {tc.get('batch_size')}, {tc.get('epochs')} epochs "
            f"(schedule {tc.get('schedule')}), seed {tc.get('seed')}; trained on {r.row.get('train_device')}."
        )
        sections.append(Section(f"Run {r.name}", text=text, table=r.per_class[cols], figures=figs, captions=caps))
    sections.extend(extra_sections)
    return write_report(path, sections, title=title, subtitle=", ".join(r.name for r in runs))
