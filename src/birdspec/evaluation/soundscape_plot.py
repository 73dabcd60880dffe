"""A model's detections on a soundscape, against the calls that are really there.

For recordings whose calls are known (the demo's synthetic soundscape, or a
hand-annotated field recording):

- :func:`window_truth`: which classes call in each scored window;
- :func:`summarize_detections`: each window's top class (a detection when its
  score reaches ``min_conf``: one number, or the model's threshold of that class)
  checked against that truth, overall and per class, and whether stretches known
  to hold no call (silence, noise) stayed unlabelled;
- :func:`plot_soundscape`: the spectrogram (time in s, frequency in kHz) with,
  under it, the true calls, the detected windows and every class's score per window;
- :func:`soundscape_section`: the figure and the table as a report
  :class:`~birdspec.evaluation.report.Section`.

``calls`` frames have ``label, start_s, end_s``; ``predictions`` frames are
:meth:`birdspec.prediction.predictor.Predictor.predict_file` output with
``scores='all'`` (``start_s, end_s`` and one score column per class).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from birdspec.errors import DataError
from birdspec.evaluation.plots import DPI, PALETTE
from birdspec.fileio import save_figure
from birdspec.models.checkpoint_info import describe_thresholds

log = logging.getLogger(__name__)

NON_SCORE_COLUMNS = frozenset({"file", "path", "name", "window", "start_s", "end_s", "context_start_s", "context_end_s"})
DISPLAY_RANGE_DB = 60.0
"""The spectrogram's gray scale spans this many dB below its peak (quieter is white: the figure stays legible and small)."""
MIN_OVERLAP_S = 0.1
"""A call counts for a window when at least this much of it (or all of it, if shorter) lies inside the window."""


def class_thresholds_of(min_conf: float | Sequence[float] | np.ndarray, num_classes: int) -> np.ndarray:
    """``(K,)`` thresholds from one number or one per class.

    Raises:
        DataError: a sequence of another length.
    """
    t = np.asarray(min_conf, dtype=np.float64)
    if t.ndim == 0:
        return np.full(num_classes, float(t))
    if t.shape != (num_classes,):
        raise DataError(f"need one threshold or one per class ({num_classes}), got {t.size}")
    return t


def score_columns(predictions: pd.DataFrame, classes: Sequence[str] | None = None) -> list[str]:
    """The class score columns of a ``scores='all'`` prediction frame (in its order).

    Raises:
        DataError: no score columns (e.g. a ``scores='topk'`` frame), or ``classes`` missing.
    """
    if classes is not None:
        missing = [c for c in classes if c not in predictions.columns]
        if missing:
            raise DataError(f"predictions have no score column for {', '.join(missing)}")
        return list(classes)
    cols = [c for c in predictions.columns if c not in NON_SCORE_COLUMNS and pd.api.types.is_numeric_dtype(predictions[c])]
    if not cols or not {"start_s", "end_s"} <= set(predictions.columns):
        raise DataError("need predictions with start_s, end_s and one score column per class (Predictor(scores='all'))")
    return cols


def window_truth(calls: pd.DataFrame, starts_s: Sequence[float] | np.ndarray, ends_s: Sequence[float] | np.ndarray,
                 *, min_overlap_s: float = MIN_OVERLAP_S) -> list[set[str]]:
    """The classes with a call in each window ``[start, end)`` (see :data:`MIN_OVERLAP_S`)."""
    out: list[set[str]] = []
    c_start = calls["start_s"].to_numpy(float)
    c_end = calls["end_s"].to_numpy(float)
    labels = calls["label"].astype(str).to_numpy()
    for s, e in zip(starts_s, ends_s, strict=True):
        overlap = np.minimum(c_end, e) - np.maximum(c_start, s)
        need = np.minimum(min_overlap_s, c_end - c_start)
        out.append(set(labels[(overlap > 0) & (overlap >= need - 1e-9)]))
    return out


@dataclass(frozen=True)
class SoundscapeSummary:
    """Window-level detections checked against the true calls.

    Attributes:
        duration_s: the soundscape's length.
        windows: one row per scored window: ``start_s, end_s, true`` (classes calling,
            ``+``-joined, '' for none), ``top`` (the highest-scoring class), ``score``,
            ``detected`` (``top`` when ``score >= min_conf``, else ''), ``outcome``
            (``correct``, ``wrong class``, ``missed`` (calls, no detection),
            ``false alarm`` (no calls, a detection) or ``quiet`` (neither)).
        per_class: ``label, calls, windows_with_calls, detected_windows, correct, precision, recall``.
        min_conf: the detection threshold of each class.
        stretches: ``(name, start_s, end_s, labelled windows)`` of stretches known to hold no call (e.g.
            the demo's silence and noise), each window overlapping one counted.
    """

    duration_s: float
    windows: pd.DataFrame
    per_class: pd.DataFrame
    min_conf: tuple[float, ...]
    stretches: tuple[tuple[str, float, float, int], ...] = ()

    @property
    def threshold_text(self) -> str:
        return describe_thresholds(self.min_conf)

    def stretches_text(self) -> str:
        """e.g. ``the silent stretch (10 s) and the noise-only stretch (10 s) stayed unlabelled``."""
        if not self.stretches:
            return ""
        parts = [f"the {name} stretch ({e - s:.0f} s)" for name, s, e, _ in self.stretches]
        labelled = [(name, n) for name, _s, _e, n in self.stretches if n]
        if not labelled:
            return " and ".join(parts) + " stayed unlabelled"
        return "; ".join(f"the {name} stretch: {n} window(s) labelled" for name, n in labelled)

    def count(self, outcome: str) -> int:
        return int((self.windows["outcome"] == outcome).sum())

    @property
    def n_calls(self) -> int:
        return int(self.per_class["calls"].sum())

    def text(self) -> str:
        """One line: how many windows were labelled right, wrong, missed, false alarms."""
        with_calls = int((self.windows["true"] != "").sum())
        without = len(self.windows) - with_calls
        return (
            f"{self.duration_s:.0f} s, {self.n_calls} calls; {len(self.windows)} windows, {with_calls} with calls: "
            f"{self.count('correct')} labelled right, {self.count('wrong class')} wrong class, "
            f"{self.count('missed')} below {self.threshold_text}; {without} without calls: "
            f"{self.count('false alarm')} labelled anyway" + (f"; {self.stretches_text()}" if self.stretches else "")
        )


def summarize_detections(
    calls: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    min_conf: float | Sequence[float] | np.ndarray = 0.5,
    duration_s: float | None = None,
    classes: Sequence[str] | None = None,
    min_overlap_s: float = MIN_OVERLAP_S,
    stretches: Sequence[tuple[str, float, float]] = (),
) -> SoundscapeSummary:
    """Check each window's top class against the calls in it (see :class:`SoundscapeSummary`); ``min_conf``
    is one threshold or one per class (in the order of the score columns); ``stretches`` are
    ``(name, start_s, end_s)`` known to hold no call."""
    cols = score_columns(predictions, classes)
    thr = class_thresholds_of(min_conf, len(cols))
    scores = predictions[cols].to_numpy(float)
    starts = predictions["start_s"].to_numpy(float)
    ends = predictions["end_s"].to_numpy(float)
    truth = window_truth(calls, starts, ends, min_overlap_s=min_overlap_s)
    top_idx = scores.argmax(axis=1) if len(scores) else np.zeros(0, int)
    rows = []
    for i, true in enumerate(truth):
        top = cols[int(top_idx[i])]
        score = float(scores[i, top_idx[i]])
        det = top if score >= thr[int(top_idx[i])] else ""
        if true:
            outcome = "missed" if not det else ("correct" if det in true else "wrong class")
        else:
            outcome = "false alarm" if det else "quiet"
        rows.append({"start_s": starts[i], "end_s": ends[i], "true": "+".join(sorted(true)), "top": top,
                     "score": score, "detected": det, "outcome": outcome})
    windows = pd.DataFrame(rows, columns=["start_s", "end_s", "true", "top", "score", "detected", "outcome"])
    per_class = []
    labels = list(cols) + sorted(set(calls["label"].astype(str)) - set(cols))
    for label in labels:
        has = np.array([label in t for t in truth], dtype=bool)
        found = (windows["detected"] == label).to_numpy() if len(windows) else np.zeros(0, bool)
        correct = int((has & found).sum())
        per_class.append({
            "label": label,
            "calls": int((calls["label"].astype(str) == label).sum()),
            "windows_with_calls": int(has.sum()),
            "detected_windows": int(found.sum()),
            "correct": correct,
            "precision": correct / found.sum() if found.sum() else None,
            "recall": correct / has.sum() if has.sum() else None,
        })
    if duration_s is None:
        duration_s = float(max(ends.max(initial=0.0), calls["end_s"].max() if len(calls) else 0.0))
    checked = []
    for name, a, b in stretches:
        inside = (starts < b) & (ends > a)
        checked.append((str(name), float(a), float(b), int((windows["detected"] != "").to_numpy()[inside].sum())))
    return SoundscapeSummary(float(duration_s), windows, pd.DataFrame(per_class), tuple(float(t) for t in thr),
                             tuple(checked))


def spectrogram_db(wave: np.ndarray, sample_rate_hz: int, *, n_fft: int = 1024, hop: int = 256,
                   top_db: float = 80.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB (max 0): ``(db (freqs, frames), freqs_hz, frame_times_s)``.

    The ``linear`` spectrogram type (:mod:`birdspec.features`, its NumPy path) over every STFT bin,
    with finer time steps for display, shifted so its peak is 0 dB and floored ``top_db`` below.
    """
    from birdspec.config import FrontendConfig
    from birdspec.features import tables
    from birdspec.features.numpy_frontend import NumpyFrontend

    cfg = FrontendConfig.for_kind("linear", sample_rate_hz=sample_rate_hz, n_fft=n_fft, hop_length=hop, fmin_hz=0.0,
                                  fmax_hz=sample_rate_hz / 2, top_db=top_db, amin=1e-12)
    x = np.asarray(wave, dtype=np.float32).reshape(1, -1)
    db = NumpyFrontend(cfg, window=tables.analysis_window(cfg), filterbank=tables.filterbank(cfg))(x)[0]
    db -= db.max()
    freqs, _unit = tables.frequency_axis(cfg)
    return db, freqs, np.arange(db.shape[1]) * hop / sample_rate_hz


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """One color per class (matplotlib's tab10 order)."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}


def plot_soundscape(
    wave: np.ndarray,
    sample_rate_hz: int,
    calls: pd.DataFrame | None,
    predictions: pd.DataFrame,
    out_path: str | Path,
    *,
    min_conf: float | Sequence[float] | np.ndarray = 0.5,
    classes: Sequence[str] | None = None,
    max_freq_hz: float = 12_000.0,
    title: str = "Soundscape",
) -> Path:
    """The soundscape's spectrogram with the true calls, the detections and the score tracks under it.

    Panels, sharing the time axis (seconds):

    1. spectrogram (kHz, dB), with the window edges dotted and each window's
       detected class written over it;
    2. true calls, one row per class (omitted when ``calls`` is None);
    3. detected windows: the window's top class when its score reaches ``min_conf`` (one
       number, or one per class), with the score; outlined in red when no call of that class
       is in the window;
    4. every class's score per window (steps), the threshold(s) dashed.

    Returns the PNG path.
    """
    cols = score_columns(predictions, classes)
    thr = class_thresholds_of(min_conf, len(cols))
    colors = class_colors(cols)
    duration_s = wave.size / sample_rate_hz
    starts = predictions["start_s"].to_numpy(float)
    ends = predictions["end_s"].to_numpy(float)
    scores = predictions[cols].to_numpy(float)
    truth = window_truth(calls, starts, ends) if calls is not None else [set() for _ in starts]
    has_truth = calls is not None

    ratios = [3.4] + ([1.1] if has_truth else []) + [1.1, 1.5]
    fig = Figure(figsize=(14, 3.0 + 1.1 * len(ratios)), layout="constrained")
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    _spectrogram_panel(fig, axes[0], wave, sample_rate_hz, max_freq_hz=max_freq_hz, title=title)
    top_khz = axes[0].get_ylim()[1]
    for s, e, row in zip(starts, ends, scores, strict=True):
        k = int(row.argmax())
        label, score = cols[k], float(row[k])
        if score >= thr[k]:
            axes[0].text((s + e) / 2, top_khz * 0.97, f"{label} {score:.2f}", ha="center", va="top", fontsize=8,
                         color="white", fontweight="bold",
                         bbox={"boxstyle": "round,pad=0.2", "facecolor": colors[label], "edgecolor": "none", "alpha": 0.9})
    edges = sorted(set(np.round(np.concatenate([starts, ends]), 6)))
    for ax in axes:
        for x in edges:
            ax.axvline(x, color="0.55", linestyle=":", linewidth=0.8, zorder=0)
    if calls is not None:  # has_truth
        for _, call in calls.iterrows():
            label = str(call["label"])
            if label in colors:
                r = cols.index(label)
                axes[1].add_patch(Rectangle((call["start_s"], r - 0.35), call["end_s"] - call["start_s"], 0.7,
                                            facecolor=colors[label], edgecolor="none"))
        _class_rows(axes[1], cols, colors, "true calls")
    _detections_panel(axes[-2], starts, ends, scores, truth, cols, colors, thr=thr, has_truth=has_truth)
    _scores_panel(axes[-1], starts, ends, scores, cols, colors, thr=thr, duration_s=duration_s)
    return save_figure(fig, out_path, dpi=DPI)


def _spectrogram_panel(fig: Figure, ax: Any, wave: np.ndarray, sample_rate_hz: int, *, max_freq_hz: float, title: str) -> None:
    db, freqs, times = spectrogram_db(wave, sample_rate_hz)
    keep = freqs <= max_freq_hz
    hop_s = times[1] - times[0] if times.size > 1 else 1 / sample_rate_hz
    img = ax.imshow(db[keep], origin="lower", aspect="auto", cmap="gray_r", vmin=-DISPLAY_RANGE_DB, vmax=0,
                    extent=(times[0] - hop_s / 2, times[-1] + hop_s / 2, 0, freqs[keep][-1] / 1000), interpolation="antialiased")
    cbar = fig.colorbar(img, ax=ax, pad=0.005, fraction=0.02)
    cbar.set_label("dB (re max)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title, fontsize=12, loc="left")


def _class_rows(ax: Any, cols: Sequence[str], colors: dict[str, str], heading: str) -> None:
    ax.set_ylim(-0.5, len(cols) - 0.5)
    ax.set_yticks(range(len(cols)))
    ax.set_yticklabels(cols, fontsize=8)
    for tick, c in zip(ax.get_yticklabels(), cols, strict=True):
        tick.set_color(colors[c])
        tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_ylabel(heading, fontsize=9)
    ax.grid(False)


def _detections_panel(ax: Any, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, truth: Sequence[set],
                      cols: Sequence[str], colors: dict[str, str], *, thr: np.ndarray, has_truth: bool) -> None:
    for s, e, row, true in zip(starts, ends, scores, truth, strict=True):
        k = int(row.argmax())
        label, score = cols[k], float(row[k])
        if score < thr[k]:
            continue
        wrong = has_truth and label not in true
        ax.add_patch(Rectangle((s + 0.05, k - 0.4), e - s - 0.1, 0.8, facecolor=colors[label],
                               alpha=0.35 + 0.6 * score, edgecolor="red" if wrong else "none",
                               linewidth=2.0 if wrong else 0))
        ax.text((s + e) / 2, k, f"{score:.2f}" + (" \u2717" if wrong else ""), ha="center", va="center",
                fontsize=8, color="black")
    same = bool(np.all(thr == thr[0])) if len(thr) else True
    _class_rows(ax, cols, colors, f"detected\n(score \u2265 {thr[0]:g})" if same else "detected\n(\u2265 threshold)")


def _scores_panel(ax: Any, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, cols: Sequence[str],
                  colors: dict[str, str], *, thr: np.ndarray, duration_s: float) -> None:
    for j, c in enumerate(cols):
        xs = np.concatenate([[s, e] for s, e in zip(starts, ends, strict=True)]) if len(starts) else np.zeros(0)
        ax.plot(xs, np.repeat(scores[:, j], 2), color=colors[c], linewidth=1.8, label=c)
    if len(thr) and np.all(thr == thr[0]):
        ax.axhline(thr[0], color="0.3", linestyle="--", linewidth=1, label=f"threshold {thr[0]:g}")
    else:  # the model's own threshold per class, in the class's colour
        for j, c in enumerate(cols):
            ax.axhline(thr[j], color=colors[c], linestyle="--", linewidth=1, alpha=0.8)
        ax.plot([], [], color="0.3", linestyle="--", linewidth=1, label="thresholds")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("score", fontsize=9)
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(0, duration_s)
    step = 5 if duration_s <= 120 else 10 if duration_s <= 300 else 30
    ax.set_xticks(np.arange(0, duration_s + 1e-9, step))


def soundscape_section(png: str | Path, summary: SoundscapeSummary, *, model: str, folder: str | Path | None = None) -> Any:
    """A report :class:`~birdspec.evaluation.report.Section` with the figure and the per-class table."""
    from birdspec.evaluation.report import Section

    where = f" Files (audio, true calls, every window's scores): {folder}." if folder else ""
    text = (
        f"A {summary.duration_s:.0f} s synthetic soundscape that no model saw in training (bouts of calls of the four "
        f"synthetic classes over background noise, with quiet gaps"
        + (", then " + " and ".join(f"a {n} stretch" for n, *_ in summary.stretches) if summary.stretches else "")
        + f"), scored by {model} every 5 s, as `birdspec predict` does on field recordings. A window counts as "
        f"detected when its top class scores at least {summary.threshold_text} (the model's detection threshold, "
        f"chosen on its validation windows and no-bird samples when it was trained).{where}\n\n"
        f"Result: {summary.text()}. The model was trained with no-bird samples (quiet stretches of the recordings "
        f"and built-in synthetic backgrounds), so a window with nothing in it can stay unlabelled."
    )
    caption = (
        "Top: spectrogram (dB) with each 5 s window's detection. Then the true calls per class, the detected windows "
        "(darker = higher score; red outline and \u2717 = no call of that class in the window), and every class's "
        "score per window."
    )
    return Section("Soundscape: detections on a longer recording", text=text, table=summary.per_class,
                   figures=[png], captions=[caption])
