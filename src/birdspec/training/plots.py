"""``curves.png``: the study's "Training & Validation Metrics" figure (loss and accuracy per epoch)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from birdspec.fileio import save_figure

log = logging.getLogger(__name__)


def plot_curves(
    metrics: pd.DataFrame | Sequence[Mapping[str, float]] | str | Path,
    out_path: str | Path,
    *,
    title: str = "Training & Validation Metrics",
    best_epoch: int | None = None,
) -> Path:
    """Plot loss (left) and accuracy (right), training vs validation, per epoch.

    Args:
        metrics: a ``metrics.csv`` path, its DataFrame, or its rows; columns
            ``epoch, train_loss, val_loss, train_acc, val_acc`` (and ``val_acc_species``, drawn too when the
            run has no-bird validation samples: ``val_acc_nobird`` is given).
        out_path: the PNG to write (atomically).
        title: the figure title.
        best_epoch: marked with a dotted line when given.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(metrics, (str, Path)):
        df = pd.read_csv(metrics)
    else:
        df = pd.DataFrame(list(metrics) if not isinstance(metrics, pd.DataFrame) else metrics)
    out = Path(out_path)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    panels = (("loss", "Loss", "cross-entropy loss"), ("acc", "Accuracy", "accuracy"))
    for ax, (key, name, ylabel) in zip(axes, panels, strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            col = f"{split}_{key}"
            if col in df and len(df):
                label = "training" if split == "train" else "validation"
                ax.plot(df["epoch"], df[col], style, markersize=3, label=label)
        if key == "acc" and "val_acc_species" in df and "val_acc_nobird" in df and df["val_acc_nobird"].notna().any():
            ax.plot(df["epoch"], df["val_acc_species"], "--^", markersize=3, label="validation, no-bird samples left out")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1, label=f"best (epoch {best_epoch})")
        ax.set_title(f"Training and validation {name.lower()}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if key == "acc":
            ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        if len(df):
            ax.legend()
            if df["epoch"].max() <= 20:
                ax.set_xticks(list(df["epoch"]))
    fig.suptitle(title)
    try:
        save_figure(fig, out, dpi=120)
    finally:
        plt.close(fig)
    return out
