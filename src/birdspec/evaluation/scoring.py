"""The BirdCLEF 2021 soundscape metric: row-wise micro F1, with a threshold search.

Every ``row_id`` (a 5 s window of a soundscape, ``<audio_id>_<site>_<end s>``)
has a true set of birds and a predicted set; ``nocall`` is a label like any
other (an empty prediction counts as ``{nocall}``). The row's F1 is

    F1 = 2 |P & T| / (|P| + |T|)

and the score is the mean over the rows of the truth file. A truth row with
no prediction counts as predicted ``nocall``; predicted rows that are not in
the truth are ignored (and counted).

Predictions can be:

- a submission (``row_id, birds``): scored as is;
- per-class scores, to search a threshold (a class is predicted when its score
  is ``>= threshold``): the long CSV of ``birdspec predict`` (``file, end_s,
  label, confidence``; write it with ``--top-k 0 --min-conf 0`` so every score
  is there), the wide one (``--scores all``: ``file, ..., end_s, <class>...``),
  or a wide ``row_id x class`` matrix. Row ids of predict tables are made
  from the file stem and the window end as in ``--format birdclef``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, DataError
from birdspec.formats import DEFAULT_THRESHOLDS, NOCALL, birdclef_row_id

log = logging.getLogger(__name__)

_META_COLUMNS = {"file", "window", "start_s", "end_s", "context_start_s", "context_end_s", "rank", "row_id",
                 "site", "audio_id", "seconds", "birds", "label", "scientific_name", "common_name", "confidence"}


def parse_birds(text: object) -> frozenset[str]:
    """``'amecro bkcchi'`` -> ``{'amecro', 'bkcchi'}``; empty or missing -> ``{'nocall'}``."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return frozenset({NOCALL})
    birds = frozenset(str(text).split())
    return birds or frozenset({NOCALL})


def row_f1(predicted: Iterable[str], truth: Iterable[str]) -> float:
    """``2 |P & T| / (|P| + |T|)``, with empty sets read as ``{nocall}``."""
    p = frozenset(predicted) or frozenset({NOCALL})
    t = frozenset(truth) or frozenset({NOCALL})
    return 2.0 * len(p & t) / (len(p) + len(t))


def birdclef_f1(predicted: Mapping[str, Iterable[str]], truth: Mapping[str, Iterable[str]]) -> float:
    """Mean row F1 over the rows of ``truth``; missing predictions count as ``nocall``."""
    if not truth:
        raise DataError("the truth has no rows to score")
    return float(np.mean([row_f1(predicted.get(r, ()), t) for r, t in truth.items()]))


def parse_thresholds(spec: str) -> np.ndarray:
    """``'0.05:0.95:0.05'`` (start:stop:step, stop included), ``'0.3'`` or ``'0.1,0.2,0.5'``."""
    try:
        if ":" in spec:
            start, stop, step = (float(v) for v in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            values = np.round(start + step * np.arange(n), 10)
        else:
            values = np.asarray([float(v) for v in spec.split(",") if v.strip()])
    except ValueError:
        raise ConfigError(f"bad thresholds {spec!r}; use start:stop:step (e.g. 0.05:0.95:0.05), a list 0.1,0.3 or one value") from None
    if values.size == 0 or np.any((values < 0) | (values > 1)):
        raise ConfigError(f"thresholds must lie in [0, 1], got {spec!r}")
    return values


def read_truth(path: str | Path) -> dict[str, frozenset[str]]:
    """``row_id -> set of birds`` from a CSV with ``row_id`` and ``birds`` (Kaggle's train_soundscape_labels.csv)."""
    df = _read_csv(path)
    if not {"row_id", "birds"} <= set(df.columns):
        raise DataError(f"{path}: the truth needs columns row_id and birds (found {', '.join(map(str, df.columns))})")
    return {str(r): parse_birds(b) for r, b in zip(df["row_id"], df["birds"], strict=True)}


def _read_csv(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        return pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: not a readable CSV ({exc})") from exc


def _row_ids(df: pd.DataFrame) -> pd.Series:
    if "row_id" in df.columns:
        return df["row_id"].astype(str)
    if {"file", "end_s"} <= set(df.columns):
        return pd.Series([birdclef_row_id(Path(str(f)).stem, float(e)) for f, e in zip(df["file"], df["end_s"], strict=True)], index=df.index)
    raise DataError("predictions need a row_id column, or file and end_s columns (a birdspec predict table)")


def read_predictions(path: str | Path | pd.DataFrame) -> dict[str, frozenset[str]] | pd.DataFrame:
    """A submission (``row_id -> birds``) or a score matrix (DataFrame: row_id index x classes)."""
    df = path if isinstance(path, pd.DataFrame) else _read_csv(path)
    cols = set(df.columns)
    if "birds" in cols and "row_id" in cols:
        return {str(r): parse_birds(b) for r, b in zip(df["row_id"], df["birds"], strict=True)}
    rows = _row_ids(df)
    if {"label", "confidence"} <= cols:  # long predict table
        long = pd.DataFrame({"row_id": rows, "label": df["label"].astype(str), "confidence": df["confidence"].astype(float)})
        wide = long.pivot_table(index="row_id", columns="label", values="confidence", aggfunc="max", fill_value=0.0)
        windows = rows.unique()
        return wide.reindex(windows, fill_value=0.0)  # windows with no kept class score 0 everywhere
    classes = [c for c in df.columns if c not in _META_COLUMNS and pd.api.types.is_numeric_dtype(df[c])]
    if not classes:
        raise DataError("predictions have neither birds, nor label/confidence, nor per-class score columns")
    wide = df[classes].astype(float).copy()
    wide.index = rows.values
    return wide.groupby(level=0).max()


def sets_at(scores: pd.DataFrame, threshold: float) -> dict[str, frozenset[str]]:
    """Predicted sets: classes with ``score >= threshold`` per row (``nocall`` when none)."""
    values = scores.to_numpy()
    labels = np.asarray(scores.columns, dtype=object)
    out = {}
    for rid, row in zip(scores.index, values >= threshold, strict=True):
        chosen = frozenset(labels[row])
        out[str(rid)] = chosen or frozenset({NOCALL})
    return out


def threshold_f1(scores: pd.DataFrame, truth: Mapping[str, frozenset[str]], thresholds: np.ndarray) -> np.ndarray:
    """:func:`birdclef_f1` of :func:`sets_at` per threshold, as matrices (no Python loop over rows or classes).

    Equal, bit for bit, to ``[birdclef_f1(sets_at(scores, t), truth) for t in thresholds]``; truth rows
    without a score row are predicted ``nocall``; a ``nocall`` score column counts as a class.
    """
    if not truth:
        raise DataError("the truth has no rows to score")
    rows = list(truth)
    classes = [str(c) for c in scores.columns]
    col = {c: i for i, c in enumerate(classes)}
    values = np.vstack([scores.to_numpy(dtype=float), np.full((1, len(classes)), -np.inf)])  # last: "no prediction"
    pos = pd.Index([str(r) for r in scores.index]).get_indexer(rows)  # -1 (missing) -> the last row
    values = values[pos]
    true = np.zeros(values.shape, dtype=bool)
    true_size = np.fromiter((len(truth[r]) for r in rows), dtype=float, count=len(rows))
    true_nocall = np.fromiter((NOCALL in truth[r] for r in rows), dtype=bool, count=len(rows))
    for i, r in enumerate(rows):  # a few labels per row
        for label in truth[r]:
            j = col.get(label)
            if j is not None:
                true[i, j] = True
    out = np.empty(len(thresholds))
    for k, t in enumerate(thresholds):
        chosen = values >= float(t)
        size = chosen.sum(axis=1)
        empty = size == 0  # predicted nocall
        inter = (chosen & true).sum(axis=1) + (empty & true_nocall)
        out[k] = float(np.mean(2.0 * inter / (np.maximum(size, 1) + true_size)))
    return out


@dataclass(frozen=True)
class SoundscapeScore:
    """Result of :func:`score_soundscapes`.

    Attributes:
        f1: the (best) row-wise micro F1.
        threshold: the threshold that gave it (None for a submission).
        curve: ``threshold, f1`` per threshold tried (empty for a submission).
        rows: truth rows scored; missing: of those, rows with no prediction (counted as nocall);
        extra: predicted rows not in the truth (ignored).
    """

    f1: float
    threshold: float | None
    curve: pd.DataFrame
    rows: int
    missing: int
    extra: int


def score_soundscapes(
    predictions: str | Path | pd.DataFrame,
    truth: str | Path | Mapping[str, Iterable[str]],
    *,
    thresholds: str | Iterable[float] = DEFAULT_THRESHOLDS,
) -> SoundscapeScore:
    """Score predictions against the truth; search the threshold when they hold per-class scores."""
    true_sets = read_truth(truth) if isinstance(truth, (str, Path)) else {str(k): frozenset(v) or frozenset({NOCALL}) for k, v in truth.items()}
    if not true_sets:
        raise DataError("the truth has no rows to score")
    pred = read_predictions(predictions)
    pred_rows = set(pred.keys()) if isinstance(pred, dict) else set(map(str, pred.index))
    missing = sum(1 for r in true_sets if r not in pred_rows)
    extra = len(pred_rows - set(true_sets))
    if missing == len(true_sets):
        raise DataError(
            "no predicted row_id matches the truth; check the naming (predict writes <file stem>_<end second>, "
            "Kaggle's soundscapes <audio_id>_<site>_<end second>)"
        )
    if missing:
        log.warning("%d of %d truth rows have no prediction; counted as nocall", missing, len(true_sets))
    if extra:
        log.info("%d predicted rows are not in the truth; ignored", extra)
    if isinstance(pred, dict):
        f1 = birdclef_f1(pred, true_sets)
        return SoundscapeScore(f1, None, pd.DataFrame(columns=["threshold", "f1"]), len(true_sets), missing, extra)
    ts = parse_thresholds(thresholds) if isinstance(thresholds, str) else np.asarray(list(thresholds), dtype=float)
    curve = pd.DataFrame({"threshold": ts, "f1": threshold_f1(pred, true_sets, ts)})
    best = int(curve["f1"].to_numpy().argmax())
    return SoundscapeScore(float(curve["f1"].iloc[best]), float(curve["threshold"].iloc[best]), curve, len(true_sets), missing, extra)
