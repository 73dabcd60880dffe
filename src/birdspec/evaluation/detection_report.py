"""The files of ``birdspec evaluate-detections``: per-species table, summary, PR figure, Markdown and HTML report.

Written into ``--out`` (:func:`write_detection_report`): :data:`METRICS_CSV` (one row per species),
:data:`SUMMARY_JSON` (the pooled figures and settings), :data:`PR_FIGURE` (precision-recall curves and F1
over thresholds), :data:`REPORT_MD` and :data:`DETECTION_REPORT_HTML` (the same, readable; the HTML embeds the figure),
and the annotation report (every row not read, every table or recording not matched).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.data.annotations import ANNOTATION_REPORT_FILE
from birdspec.evaluation.detections import DetectionEvaluation

log = logging.getLogger(__name__)

METRICS_CSV = "detection_metrics.csv"
SUMMARY_JSON = "detection_summary.json"
PR_FIGURE = "detection_pr.png"
REPORT_MD = "detection_report.md"
DETECTION_REPORT_HTML = "detection_report.html"
MAX_CURVES = 12
"""Species drawn in the figure (those with most positive windows)."""

COLUMNS = {"species": "species", "boxes": "boxes", "positive_windows": "windows with it", "detections": "detections",
           "precision": "precision", "recall": "recall", "f1": "F1", "ap": "AP", "event_recall": "event recall",
           "false_per_hour": "false detections / h"}


def plot_pr(result: DetectionEvaluation, path: Path) -> Path | None:
    """Precision-recall curves (left) and F1 over thresholds (right) of the species with most positive windows."""
    from matplotlib.figure import Figure

    from birdspec.evaluation.plots import PALETTE
    from birdspec.fileio import save_figure

    if not result.curves:
        return None
    ranked = result.per_species.sort_values("positive_windows", ascending=False, kind="mergesort")
    chosen = [s for s in ranked["species"] if s in result.curves][:MAX_CURVES]
    fig = Figure(figsize=(11, 4.6))
    ax_pr, ax_f1 = fig.subplots(1, 2)
    threshold = result.overall.get("threshold")
    for i, s in enumerate(chosen):
        c, color = result.curves[s], PALETTE[i % len(PALETTE)]
        row = result.per_species.set_index("species").loc[s]
        ax_pr.plot(c["recall"], c["precision"], color=color, label=f"{s} (AP {row['ap']:.2f})", drawstyle="steps-post")
        ax_pr.plot([row["recall"]], [row["precision"]], "o", color=color, markersize=5)
        thr = c["thresholds"]
        p, r = c["precision"][:-1], c["recall"][:-1]
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        ok = thr >= 0  # windows without a detection score -1: not a threshold
        ax_f1.plot(thr[ok], f1[ok], color=color, label=s)
    ax_pr.set(xlabel="recall (windows)", ylabel="precision (windows)", xlim=(0, 1.02), ylim=(0, 1.02),
              title="Precision-recall over thresholds (dot: " + (f"at {threshold:g})" if threshold is not None
                                                                 else "every detection in the tables)"))
    ax_f1.set(xlabel="threshold (confidence)", ylabel="F1 (windows)", xlim=(0, 1), ylim=(0, 1.02),
              title="F1 over thresholds")
    if threshold is not None:
        ax_f1.axvline(threshold, color="#888", linestyle="--", linewidth=1)
    ax_pr.legend(loc="lower left", fontsize=8)
    for ax in (ax_pr, ax_f1):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def summary_lines(result: DetectionEvaluation) -> list[str]:
    """The pooled figures in words."""
    o = result.overall
    at = f"at threshold {o['threshold']:g}" if o.get("threshold") is not None else "counting every detection in the tables"
    return [
        f"{o['recordings']} annotated recordings ({o['hours'] * 60:.1f} min), {o['annotation_boxes']} boxes, "
        f"{o['detections']} detections; {o['species']} species scored in {o['window_s']:g} s windows.",
        f"Windows, {at}: micro precision {_fmt(o['micro_precision'])}, recall {_fmt(o['micro_recall'])}, "
        f"F1 {_fmt(o['micro_f1'])}; macro F1 {_fmt(o['macro_f1'])}; mean AP {_fmt(o['mean_ap'])}.",
        f"Events: {_fmt(o['event_recall'])} of the boxes have a detection of their species; "
        f"{_fmt(o['false_per_hour'])} false detections per hour.",
        f"A box labels a window it overlaps by >= {o['min_overlap_s']:g} s"
        + (f" or >= {o['min_overlap_fraction']:g} of its length" if o.get("min_overlap_fraction") else "")
        + "; windows a box only grazes are left out of that species' counts.",
    ]


def write_detection_report(result: DetectionEvaluation, out_dir: str | Path, *, detections: str, annotations: str) -> Path:
    """Write every file into ``out_dir``; returns the HTML report's path."""
    from birdspec.evaluation.report import Section, markdown_table, write_report
    from birdspec.fileio import write_csv, write_json, write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = result.per_species[list(COLUMNS)].rename(columns=COLUMNS)
    write_csv(out / METRICS_CSV, result.per_species, float_format="%.6g")
    write_json(out / SUMMARY_JSON, {"detections": detections, "annotations": annotations, **result.overall,
                                    "notes": result.notes, "report_lines": len(result.report.problems)})
    result.report.write(out / ANNOTATION_REPORT_FILE)
    figure = plot_pr(result, out / PR_FIGURE)
    lines = summary_lines(result)
    problems = result.report.summary()
    md = ["# Detections against annotations", "", f"Detections: `{detections}`  ", f"Annotations: `{annotations}`", "",
          *lines, "", markdown_table(table), ""]
    if figure is not None:
        md += [f"![precision-recall]({PR_FIGURE})", ""]
    md += [f"Tables: {problems}; each line in {ANNOTATION_REPORT_FILE}.", *[f"- {n}" for n in result.notes]]
    write_text(out / REPORT_MD, "\n".join(md) + "\n")
    sections = [Section("Summary", text="\n\n".join(lines + result.notes), table=table)]
    if figure is not None:
        sections.append(Section("Over thresholds", figures=[figure], captions=[
            "Left: window precision against recall as the threshold moves (dot: the chosen threshold); right: F1."]))
    shown = result.report.lines()[:200]
    more = len(result.report.problems) - len(shown)
    sections.append(Section("Tables", text=f"{problems}. Every line is in {ANNOTATION_REPORT_FILE}.",
                            html="<pre>" + _escape("\n".join(shown) + (f"\n... and {more} more" if more > 0 else ""))
                            + "</pre>" if shown else ""))
    path = write_report(out / DETECTION_REPORT_HTML, sections, title="Detections against annotations",
                        subtitle=f"{detections} vs {annotations}")
    log.info("wrote %s and %s", out / REPORT_MD, path)
    return path


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def per_species_text(result: DetectionEvaluation) -> str:
    """The per-species table as aligned text (the command's output)."""
    df = result.per_species[list(COLUMNS)].rename(columns=COLUMNS)
    return pd.DataFrame({c: [_fmt(v) for v in df[c]] for c in df.columns}).to_string(index=False)
