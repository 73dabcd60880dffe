"""The learning-curve figure: accuracy and macro F1 against recordings per species, one line per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from birdspec.evaluation.plots import run_colors
from birdspec.fileio import save_figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def plot_learning_curve(summary: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Two panels (accuracy, macro F1) of a ``learning_curve_summary.csv`` frame.

    x: recordings per species on a log2 axis, ``all`` one step right of the largest k (labelled with the
    mean number of training recordings per species); line: mean over draws; band: lowest to highest draw.
    Each model has its own marker, and earlier models are drawn wider underneath later ones, so lines that
    coincide (a head that stays at BirdNET) stay visible.
    """
    finite = sorted({float(k) for k in summary["k_order"] if np.isfinite(k)})
    x_all = (max(finite) * 2) if finite else 1.0
    models = list(dict.fromkeys(summary["model"]))
    colors = run_colors(models)
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, 2)
    for ax, metric, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "macro_f1", "macro F1")):
        for i, model in enumerate(models):
            s = summary[summary["model"] == model].sort_values("k_order")
            x = np.where(np.isfinite(s["k_order"]), s["k_order"], x_all)
            ax.plot(x, s[f"{metric}_mean"], marker=MARKERS[i % len(MARKERS)], color=colors[model], label=model,
                    markersize=max(4.0, 10.0 - 2.0 * i), linewidth=max(1.2, 3.5 - 0.8 * i), zorder=2 + i)
            ax.fill_between(x, s[f"{metric}_min"], s[f"{metric}_max"], color=colors[model], alpha=0.15, linewidth=0)
        ticks = finite + ([x_all] if (~np.isfinite(summary["k_order"])).any() else [])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        rows_all = summary[~np.isfinite(summary["k_order"])]
        all_note = f"all\n(~{rows_all['n_train_mean'].max() / _num_species(summary):.0f})" if len(rows_all) else ""
        ax.set_xticklabels([f"{int(t)}" for t in finite] + ([all_note] if all_note else []))
        ax.set_xlabel("training recordings per species")
        ax.set_ylabel(f"{name} (recording level, test folds pooled)")
        ax.grid(True, alpha=0.3)
        ax.set_title(name)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title or "Learning curve: mean over draws, band from the lowest to the highest draw", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _num_species(summary: pd.DataFrame) -> int:
    """Species count: the largest training size per k (k recordings of each species; untrained models count 0)."""
    finite = summary[np.isfinite(summary["k_order"])]
    if finite.empty:
        return 1
    return max(1, int(round((finite["n_train_mean"] / finite["k_order"]).max())))
