"""Evaluation figures (matplotlib, Agg, no display needed).

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no
``pyplot`` state), so they render headless and in threads. Every writer saves
atomically and returns the PNG path.

- :func:`plot_confusion`: counts and row-normalised matrices side by side.
- :func:`plot_per_class`: precision / recall / F1 bars per class.
- :func:`plot_sweep`: the study's validation accuracy per optimizer and learning rate.
- :func:`plot_curves_overlay`: validation accuracy and loss per epoch, one color per run.
- :func:`plot_confusion_grid`: several runs' row-normalised matrices side by side.
- :func:`plot_metric_bars`: accuracy / macro F1 / ... per run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from birdspec.evaluation.metrics import row_normalise
from birdspec.fileio import save_figure

log = logging.getLogger(__name__)

DPI = 120
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
"""Colors assigned to runs/optimizers in order (matplotlib's tab10)."""

OPTIMIZER_COLORS = {"adamw": PALETTE[0], "adam": PALETTE[1], "sgd": PALETTE[2], "rmsprop": PALETTE[3]}
"""The sweep figure's fixed colors, so every sweep plot reads the same."""

MAX_ANNOTATED_CLASSES = 25


def run_colors(names: Sequence[str]) -> dict[str, str]:
    """One consistent color per run name (in the given order)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def _matrix_side_in(k: int) -> float:
    """Panel side in inches for K classes (capped so 400 classes still give a usable PNG)."""
    if k <= MAX_ANNOTATED_CLASSES:
        return max(4.8, 0.42 * k + 3.0)
    return min(18.0, 0.2 * k + 6.0)


def _matrix_panel(ax, matrix: np.ndarray, names: Sequence[str], *, normalised: bool, title: str, fig: Figure) -> None:
    k = len(names)
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalised else max(1, matrix.max()))
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("fraction of the true class" if normalised else "count")
    if not normalised:
        from matplotlib.ticker import MaxNLocator

        cbar.locator = MaxNLocator(integer=True)
        cbar.update_ticks()
    step = max(1, math.ceil(k / 60))  # at most ~60 labelled ticks per axis
    ticks = list(range(0, k, step))
    labels = [_short(names[i]) for i in ticks]
    size = 10 if k <= 15 else 8 if k <= 30 else 6
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(labels, rotation=45 if k <= 30 else 90, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticklabels(labels, fontsize=size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if k <= MAX_ANNOTATED_CLASSES:
        size = 9 if k <= 10 else 7
        top = matrix.max() if matrix.size else 1
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                text = f"{v:.2f}" if normalised else f"{int(v)}"
                dark = v > (0.55 if normalised else 0.55 * top)
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color="white" if dark else "black")


def plot_confusion(
    counts: np.ndarray,
    names: Sequence[str],
    out_path: str | Path,
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Counts (left) and row-normalised fractions (right) of a ``(K, K)`` confusion matrix.

    Args:
        counts: rows = true class, columns = predicted class.
        names: class names for the axes (common names, not ids).
        title: the figure title (say which level, split and checkpoint).
    """
    counts = np.asarray(counts)
    side = _matrix_side_in(len(names))
    fig = Figure(figsize=(2 * side + 1.2, side + 0.6), layout="constrained")
    axes = fig.subplots(1, 2)
    total = int(counts.sum())
    _matrix_panel(axes[0], counts, names, normalised=False, title=f"Counts (n = {total})", fig=fig)
    _matrix_panel(axes[1], row_normalise(counts), names, normalised=True, title="Row-normalised (recall on the diagonal)", fig=fig)
    fig.suptitle(title, fontsize=13)
    return save_figure(fig, out_path, dpi=DPI)


def plot_per_class(
    per_class: pd.DataFrame,
    out_path: str | Path,
    *,
    names: Sequence[str] | None = None,
    title: str = "Per-class precision, recall and F1",
    max_grouped_classes: int = 40,
) -> Path:
    """Grouped bars of precision / recall / F1 per class, with each class's support.

    With more than ``max_grouped_classes`` classes only F1 is drawn, classes
    sorted from best to worst, so the figure stays readable.
    """
    k = len(per_class)
    names = list(names) if names is not None else list(per_class["label"])
    support = per_class["support"].to_numpy()
    if k > max_grouped_classes:
        order = np.argsort(-per_class["f1"].to_numpy(float), kind="stable")
        fig = Figure(figsize=(min(30.0, 0.16 * k + 3), 5.5), layout="constrained")
        ax = fig.subplots()
        ax.bar(np.arange(k), per_class["f1"].to_numpy(float)[order], 0.8, color=PALETTE[2], label="F1")
        ax.set_xticks(np.arange(k))
        ax.set_xticklabels([_short(names[i]) for i in order], rotation=90, fontsize=5 if k > 100 else 6)
        ax.set_xlabel("class (sorted by F1)")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("F1 (0-1)")
        ax.set_title(title + f"\n(F1 only: {k} classes, best to worst)")
        ax.grid(True, axis="y", alpha=0.3)
        return save_figure(fig, out_path, dpi=DPI)
    width = max(7.0, 0.75 * k + 2.5)
    fig = Figure(figsize=(width, 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(k)
    bw = 0.26
    for i, (col, color) in enumerate((("precision", PALETTE[0]), ("recall", PALETTE[1]), ("f1", PALETTE[2]))):
        vals = per_class[col].to_numpy(float)
        bars = ax.bar(x + (i - 1) * bw, vals, bw, label=col if col != "f1" else "F1", color=color)
        if k <= 8:
            for b, v in zip(bars, vals, strict=True):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{_short(n)}\n(n={int(s)})" for n, s in zip(names, support, strict=True)],
                       rotation=30 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score (0-1)")
    ax.set_xlabel("class (n = true samples)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper right", ncols=3, fontsize=9)
    return save_figure(fig, out_path, dpi=DPI)


def plot_sweep(
    table: pd.DataFrame,
    out_path: str | Path,
    *,
    title: str = "Validation accuracy per optimizer and learning rate",
    metric: str = "best_val_acc",
    max_grouped_lrs: int = 8,
) -> Path:
    """The study's sweep figure: best validation accuracy per optimizer and learning rate.

    With at most ``max_grouped_lrs`` distinct learning rates (a grid): grouped
    bars, one group per learning rate, one colored bar per optimizer, values on
    the bars; failed trials are marked "failed" (red x). Otherwise (an Optuna
    search with continuous learning rates): one line per optimizer over a log
    learning-rate axis. ``table`` has the ``sweep.csv`` columns
    (``optimizer, lr, status, best_val_acc``).
    """
    fig = Figure(figsize=(9.5, 5.2), layout="constrained")
    ax = fig.subplots()
    if "frontend" in table and table["frontend"].notna().any() and table["frontend"].nunique() > 1:
        table = table.assign(optimizer=table["frontend"].astype(str) + " " + table["optimizer"].astype(str))
    optimizers = list(dict.fromkeys(table["optimizer"])) if len(table) else []
    extra = iter(PALETTE[4:])
    colors = {opt: OPTIMIZER_COLORS.get(opt) or next(extra, "black") for opt in optimizers}
    lrs = sorted({float(v) for v in table["lr"]}) if len(table) else []
    ylabel = "best validation accuracy (0-1)" if metric == "best_val_acc" else metric
    if len(lrs) <= max_grouped_lrs:
        bw = 0.8 / max(1, len(optimizers))
        failed_shown = False
        for i, opt in enumerate(optimizers):
            sub = table[table["optimizer"] == opt]
            for j, lr in enumerate(lrs):
                hit = sub[np.isclose(sub["lr"].astype(float), lr, rtol=1e-9, atol=0)]
                if not len(hit):
                    continue
                r = hit.iloc[0]
                xpos = j - 0.4 + bw * (i + 0.5)
                if r["status"] == "ok" and pd.notna(r[metric]):
                    v = float(r[metric])
                    ax.bar(xpos, v, bw * 0.95, color=colors[opt], label=opt if opt not in ax.get_legend_handles_labels()[1] else None)
                    ax.text(xpos, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8 if len(optimizers) <= 4 else 6)
                elif r["status"] == "failed":
                    ax.plot(xpos, 0.02, "x", color="#d62728", markersize=9, markeredgewidth=2,
                            label=None if failed_shown else "failed trial")
                    ax.text(xpos, 0.06, "failed", rotation=90, ha="center", va="bottom", fontsize=7, color="#d62728")
                    failed_shown = True
                else:
                    ax.text(xpos, 0.02, "pending", rotation=90, ha="center", va="bottom", fontsize=7, color="grey")
        for opt in optimizers:  # legend entries for optimizers without any finished bar
            if opt not in ax.get_legend_handles_labels()[1]:
                ax.bar([], [], color=colors[opt], label=opt)
        ax.set_xticks(range(len(lrs)))
        ax.set_xticklabels([f"{v:g}" for v in lrs])
        ax.set_xlabel("learning rate")
        ax.grid(True, axis="y", alpha=0.3)
    else:
        markers = "osD^v<>p"
        for i, opt in enumerate(optimizers):
            sub = table[table["optimizer"] == opt].sort_values("lr")
            ok = sub[(sub["status"] == "ok") & sub[metric].notna()]
            ax.plot(ok["lr"], ok[metric], "-" + markers[i % len(markers)], color=colors[opt], label=opt, linewidth=1.8,
                    markersize=7, alpha=0.9)
            bad = sub[sub["status"] == "failed"]
            if len(bad):
                ax.plot(bad["lr"], np.full(len(bad), 0.02), "x", color=colors[opt], markersize=9, markeredgewidth=2)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale; x at the bottom = failed trial)")
        ax.grid(True, which="both", alpha=0.3)
        if lrs:
            ax.set_xlim(min(lrs) / 2, max(lrs) * 2)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    if optimizers:
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda i: optimizers.index(labels[i]) if labels[i] in optimizers else len(optimizers))
        ax.legend([handles[i] for i in order], [labels[i] for i in order], title="optimizer", loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, out_path, dpi=DPI)


def plot_curves_overlay(
    curves: Mapping[str, pd.DataFrame],
    out_path: str | Path,
    *,
    colors: Mapping[str, str] | None = None,
    title: str = "Validation curves",
    show_train: bool = True,
) -> Path:
    """Validation accuracy (left) and loss (right) per epoch for several runs.

    Args:
        curves: run name -> its ``metrics.csv`` frame (``epoch, val_acc, val_loss``
            and optionally ``train_acc, train_loss``).
        colors: run name -> color (default: :func:`run_colors`).
        show_train: also draw training curves, dashed and lighter, in the run's color.
    """
    colors = dict(colors or run_colors(list(curves)))
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("acc", "Accuracy", "accuracy (0-1)"), ("loss", "Loss", "cross-entropy loss"))
    max_epoch = 1
    for ax, (key, name, ylabel) in zip(axes, panels, strict=True):
        for run, df in curves.items():
            if f"val_{key}" not in df or not len(df):
                continue
            max_epoch = max(max_epoch, int(df["epoch"].max()))
            ax.plot(df["epoch"], df[f"val_{key}"], "-o", markersize=3, color=colors[run], linewidth=2, label=run)
            if show_train and f"train_{key}" in df:
                ax.plot(df["epoch"], df[f"train_{key}"], "--", color=colors[run], alpha=0.55, linewidth=1.2)
        ax.set_title(f"{name} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if key == "acc":
            ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if max_epoch <= 20:
        for ax in axes:
            ax.set_xticks(range(1, max_epoch + 1))
    fig.suptitle(title + ("\n(solid: validation, dashed: training; one color per run)" if show_train else ""), fontsize=12)
    return save_figure(fig, out_path, dpi=DPI)


def plot_confusion_grid(
    items: Sequence[tuple[str, np.ndarray, Sequence[str]]],
    out_path: str | Path,
    *,
    colors: Mapping[str, str] | None = None,
    title: str = "Row-normalised confusion matrices",
) -> Path:
    """Several runs' row-normalised confusion matrices side by side.

    Args:
        items: ``(run name, counts (K, K), class names)`` per run.
        colors: run name -> color for the panel titles.
    """
    n = max(1, len(items))
    kmax = max((len(names) for _, _, names in items), default=2)
    side = _matrix_side_in(kmax)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * (side + 0.8), rows * (side + 0.4)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, (name, counts, names) in zip(axes, items, strict=True):
        counts = np.asarray(counts)
        _matrix_panel(ax, row_normalise(counts), names, normalised=True, title=f"{name} (n = {int(counts.sum())})", fig=fig)
        if colors and name in colors:
            ax.title.set_color(colors[name])
    for ax in axes[len(items):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=13)
    return save_figure(fig, out_path, dpi=DPI)


def plot_metric_bars(
    table: pd.DataFrame,
    out_path: str | Path,
    *,
    metrics: Sequence[tuple[str, str]] = (("best_val_acc", "best val accuracy"), ("accuracy", "accuracy"),
                                          ("macro_f1", "macro F1"), ("cmap", "cmAP")),
    name_column: str = "run",
    colors: Mapping[str, str] | None = None,
    title: str = "Validation metrics per run",
) -> Path:
    """Grouped bars: one group per metric, one bar (color) per run, values written on the bars."""
    metrics = [(c, label) for c, label in metrics if c in table and table[c].notna().any()]
    runs = list(table[name_column])
    colors = dict(colors or run_colors(runs))
    fig = Figure(figsize=(max(7.0, 1.9 * len(metrics) + 0.6 * len(runs) + 2), 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(metrics))
    bw = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        vals = [float(table.loc[table[name_column] == run, c].iloc[0]) for c, _ in metrics]
        pos = x - 0.4 + bw * (i + 0.5)
        bars = ax.bar(pos, np.nan_to_num(vals), bw, color=colors[run], label=run)
        for b, v in zip(bars, vals, strict=True):
            if np.isfinite(v):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([label for _, label in metrics])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score (0-1)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=min(4, len(runs)), frameon=False)
    return save_figure(fig, out_path, dpi=DPI)


def plot_fold_scores(
    folds: Sequence[Mapping[str, float]],
    out_path: str | Path,
    *,
    title: str = "Test-fold scores",
) -> Path:
    """Accuracy and macro F1 per cross-validation fold with their means (dashed)."""
    fig = Figure(figsize=(max(8.5, 1.2 * len(folds) + 5), 4.6), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(folds))
    for i, (key, label, color) in enumerate((("accuracy", "accuracy", PALETTE[0]), ("macro_f1", "macro F1", PALETTE[1]))):
        vals = np.asarray([f.get(key) if f.get(key) is not None else np.nan for f in folds], float)
        ax.bar(x + (i - 0.5) * 0.38, np.nan_to_num(vals), 0.38, color=color, label=label)
        if np.isfinite(vals).any():
            ax.axhline(np.nanmean(vals), color=color, linestyle="--", linewidth=1, label=f"mean {label} {np.nanmean(vals):.3f}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"fold {f.get('fold')}\n(n={f.get('n')})" for f in folds])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score on the held-out fold (0-1)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, out_path, dpi=DPI)
