"""``birdspec call-density estimate``'s report: the table (CSV and Markdown) and the figure.

:func:`plot_call_density`: each group's estimate with its interval, all windows together first. Up to
:data:`MAX_ROWS` groups are rows (a point and a bar each); more (a year of days) are a line with a shaded
band, in the groups' order. Matplotlib's object API (no ``pyplot``); every file is written atomically.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from birdspec.evaluation.call_density import VERDICTS_POOLED, DensityEstimate
from birdspec.evaluation.call_density_io import CallDensityResult
from birdspec.evaluation.plots import DPI, PALETTE
from birdspec.fileio import save_figure

log = logging.getLogger(__name__)

MAX_ROWS = 40
"""More groups than this are drawn as a band along the groups instead of one row each."""
DENSITY_TABLE_FILE = "call_density.csv"
DENSITY_MARKDOWN_FILE = "call_density.md"
DENSITY_FIGURE_FILE = "call_density.png"


def plot_call_density(estimates: Sequence[DensityEstimate], out_path: str | Path, *, species: str) -> Path:
    """``estimates[0]`` (all windows) and the groups after it: density (% of windows) with the interval."""
    overall, groups = estimates[0], list(estimates[1:])
    pct = f"{overall.level:.0%}"
    title = (f"Call density of {species}: {100 * overall.density_mean:.2f} % of {overall.n_windows} windows "
             f"({pct} interval {100 * overall.density_low:.2f} to {100 * overall.density_high:.2f} %)")
    if len(groups) > MAX_ROWS:
        fig = Figure(figsize=(min(16.0, 4 + 0.05 * len(groups)), 4.5), layout="constrained")
        ax = fig.subplots()
        x = np.arange(len(groups))
        mean = np.array([100 * g.density_mean for g in groups])
        ax.fill_between(x, [100 * g.density_low for g in groups], [100 * g.density_high for g in groups],
                        color=PALETTE[0], alpha=0.25, label=f"{pct} interval")
        ax.plot(x, mean, color=PALETTE[0], marker=".", label="estimate")
        ax.axhline(100 * overall.density_mean, color=PALETTE[3], linestyle="--", label="all windows")
        step = max(1, math.ceil(len(groups) / 30))
        ax.set_xticks(x[::step])
        ax.set_xticklabels([groups[i].group for i in x[::step]], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("windows with a call (%)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    else:
        rows = [overall, *groups]
        fig = Figure(figsize=(8, 1.4 + 0.32 * len(rows)), layout="constrained")
        ax = fig.subplots()
        y = np.arange(len(rows))[::-1]
        for yi, e in zip(y, rows, strict=True):
            color = PALETTE[3] if e is overall else PALETTE[0] if e.verdicts == VERDICTS_POOLED else PALETTE[2]
            ax.plot([100 * e.density_low, 100 * e.density_high], [yi, yi], color=color, linewidth=2)
            ax.plot([100 * e.density_mean], [yi], "o", color=color)
        ax.set_yticks(y)
        ax.set_yticklabels([f"all windows ({overall.n_windows})"] + [f"{g.group} ({g.n_windows})" for g in groups], fontsize=8)
        ax.set_xlabel(f"windows with a call (%), estimate and {pct} interval")
        ax.set_xlim(left=0)
        if any(g.verdicts != VERDICTS_POOLED for g in groups):
            ax.text(0.99, 0.01, "green: the group's own verdicts", transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    log.debug("call density figure of %d groups", len(groups))
    return save_figure(fig, out_path, dpi=DPI)


def density_table(result: CallDensityResult) -> pd.DataFrame:
    """One row per estimate: ``group, verdicts, n_windows, density, density_median, density_low, density_high,
    level`` and per bin ``windows_binK, yes_binK, no_binK``."""
    rows = []
    for e in result.estimates:
        row: dict[str, object] = {"group": e.group, "verdicts": e.verdicts, "n_windows": e.n_windows, "density": e.density_mean,
                                  "density_median": e.density_median, "density_low": e.density_low,
                                  "density_high": e.density_high, "level": e.level}
        for k, (w, y, n) in enumerate(zip(e.windows_per_bin, e.yes_per_bin, e.no_per_bin, strict=True)):
            row.update({f"windows_bin{k}": w, f"yes_bin{k}": y, f"no_bin{k}": n})
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_report(result: CallDensityResult, *, scores: str | Path) -> str:
    """The estimate as Markdown: what was estimated and how, the bins, the table."""
    overall = result.estimates[0]
    pct = f"{overall.level:.0%}"
    a0, b0 = result.prior
    lines = [f"# Call density of {result.species}", "",
             f"Scores: `{scores}`. {overall.n_windows} windows; {result.n_verified} verified yes/no "
             f"({result.n_unsure} unsure, left out). Density: the fraction of windows with a call; the interval holds "
             f"{pct} of the posterior (prior Beta({a0:g}, {b0:g}) per score bin; Navine et al. 2024).", ""]
    if result.group_by != "none":
        own = (f"; a group with at least {result.own_min} verdicts of its own in every bin uses those ('own')"
               if result.own_min else "")
        lines += [f"Groups by {result.group_by}: each group's windows weigh the bins; P(call | bin) comes from all "
                  f"verdicts pooled ('pooled'), which assumes a score means the same in every group{own}.", ""]
    lines += ["| bin | scores | windows | yes | no | P(call given bin) |", "|---|---|---|---|---|---|"]
    for k in range(len(result.edges) - 1):
        y, n = overall.yes_per_bin[k], overall.no_per_bin[k]
        lines.append(f"| {k} | {result.edges[k]:.4g} to {result.edges[k + 1]:.4g} | {overall.windows_per_bin[k]} | {y} | {n} "
                     f"| {(a0 + y) / (a0 + b0 + y + n):.3f} |")
    lines += ["", f"| group | windows | verdicts | density | {pct} interval |", "|---|---|---|---|---|"]
    lines += [f"| {e.group} | {e.n_windows} | {e.verdicts} | {e.density_mean:.4f} | {e.density_low:.4f} to {e.density_high:.4f} |"
              for e in result.estimates]
    return "\n".join(lines) + "\n"


def write_density_report(result: CallDensityResult, out_dir: str | Path, *, scores: str | Path) -> dict[str, Path]:
    """``call_density.csv``, ``call_density.md`` and ``call_density.png`` in ``out_dir``; their paths."""
    from birdspec.fileio import write_csv, write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"table": write_csv(out / DENSITY_TABLE_FILE, density_table(result)),
            "markdown": write_text(out / DENSITY_MARKDOWN_FILE, markdown_report(result, scores=scores)),
            "figure": plot_call_density(result.estimates, out / DENSITY_FIGURE_FILE, species=result.species)}
