"""benchmarks/agile.py's call-density coverage over many verification draws and its two figures.

- :func:`density_coverage`: the goal "the call-density interval covers the true density in >= 90 % of 100
  simulated draws", on the benchmark's own archive: ``draws`` stratified samples (each its own seed) of one
  species' windows, verdicts from the truth, the estimate of every site and of all windows
  (``birdspec call-density``'s functions, the defaults it uses), and how often the interval holds the truth.
- :func:`plot_rounds`: the agile loop's F1 by round (birdspec, perch-hoplite where it ran), birdnet-prior as a line.
- :func:`plot_density`: per species, each site's estimate and interval with the true density marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd


def density_coverage(windows: pd.DataFrame, called: np.ndarray, *, draws: int = 100, per_bin: int = 4,
                     species: str) -> list[dict]:
    """Coverage of the call-density interval over ``draws`` verification samples of ``windows`` (one species'
    scores, ``read_scores``' table; ``called`` ``(n,)`` bool: the window holds the species), per site and for all
    windows: ``[{species, group, true, covered, draws, median_width}]``."""
    from birdspec.evaluation.call_density import estimate_groups, geometric_quantiles, stratified_sample
    from birdspec.evaluation.call_density_io import binned, window_groups

    edges, bins = binned(windows, quantiles=geometric_quantiles())
    n_bins = len(edges) - 1
    groups = cast(np.ndarray, window_groups(windows, "deployment"))  # "deployment" always gives groups
    called = np.asarray(called, dtype=bool)
    hits: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    truth = {"all": float(called.mean()), **{g: float(called[groups == g].mean()) for g in np.unique(groups)}}
    for seed in range(draws):
        pick = stratified_sample(bins, n_bins=n_bins, per_bin=per_bin, seed=seed, groups=groups)
        for e in estimate_groups(bins, groups, bins[pick], groups[pick], called[pick], n_bins=n_bins, own_min=per_bin,
                                 seed=seed, edges=edges):
            hits.setdefault(e.group, []).append(bool(e.density_low <= truth[e.group] <= e.density_high))
            widths.setdefault(e.group, []).append(float(e.density_high - e.density_low))
    return [{"species": species, "group": g, "true": round(truth[g], 5), "covered": int(sum(h)), "draws": len(h),
             "median_width": round(float(np.median(widths[g])), 5)} for g, h in hits.items()]


def plot_rounds(result: Mapping, path: Path) -> Path:
    """Species F1 and row-wise F1 on the archive's 5 s rows after each round, birdnet-prior as dashed lines."""
    from matplotlib.figure import Figure

    from birdspec.evaluation.plots import DPI, PALETTE
    from birdspec.fileio import save_figure

    fig = Figure(figsize=(9, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    lines = [("birdspec agile", result.get("rounds") or [], PALETTE[0])]
    if (result.get("hoplite") or {}).get("rounds_scored"):
        lines.append(("perch-hoplite", result["hoplite"]["rounds_scored"], PALETTE[1]))
    prior = result.get("birdnet_prior") or {}
    for ax, key, title in zip(axes, ("species_f1", "row_f1"), ("species F1 (calls found, 5 s rows)",
                                                               "row-wise micro F1 (nocall rows too)"), strict=True):
        for name, rounds, color in lines:
            x = [r["round"] for r in rounds]
            ax.plot(x, [r[key] for r in rounds], marker="o", color=color, label=name)
        if key in prior:
            ax.axhline(prior[key], color=PALETTE[3], linestyle="--", label="birdnet-prior, all focal recordings")
        ax.set_xticks([r["round"] for r in lines[0][1]])
        ax.set_xlabel(f"round (each {result.get('per_round', 20)} verdicts per species)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1")
    axes[0].legend(fontsize=8, loc="lower right")
    hours = (result.get("index") or {}).get("audio_hours")
    fig.suptitle(f"Agile loop on a synthetic {hours:g} h archive of the reed warblers' held-out calls" if hours else
                 "Agile loop", fontsize=11)
    return save_figure(fig, path, dpi=DPI)


def plot_density(rows: Sequence[Mapping], path: Path) -> Path:
    """Per species (a panel each): every group's estimate and interval, the true density as a cross."""
    from matplotlib.figure import Figure

    from birdspec.evaluation.plots import DPI, PALETTE
    from birdspec.fileio import save_figure

    df = pd.DataFrame(list(rows))
    species = list(dict.fromkeys(df["species"]))
    cols = min(2, len(species))
    rows_n = -(-len(species) // cols)
    fig = Figure(figsize=(5.0 * cols, 0.4 + 2.4 * rows_n), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows_n, cols)).ravel()
    for ax in axes[len(species):]:
        ax.set_visible(False)
    for ax, sp in zip(axes, species, strict=False):
        g = df[df["species"] == sp].reset_index(drop=True)
        y = np.arange(len(g))[::-1]
        for yi, r in zip(y, g.itertuples(), strict=True):
            color = PALETTE[0] if r.covered else PALETTE[3]
            ax.plot([100 * r.low, 100 * r.high], [yi, yi], color=color, linewidth=2)
            ax.plot([100 * r.estimate], [yi], "o", color=color)
            ax.plot([100 * r.true], [yi], "x", color="black", markersize=7)
        ax.set_yticks(y)
        ax.set_yticklabels(g["group"].tolist(), fontsize=8)
        ax.set_title(sp, fontsize=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("windows with a call (%)")
        ax.grid(alpha=0.3)
    fig.suptitle("Call density from 4 verified windows per score bin and site: estimate and 95 % interval\n"
                 "(red: misses the truth), true density (x)", fontsize=10)
    return save_figure(fig, path, dpi=DPI)
