"""Training rows from verified windows: pooled from any number of predictions and exported manifests, with
the validation split the training of them uses.

A row is a window of a recording with the species a reviewer confirmed (:data:`~birdspec.app.review.VERIFIED_COLUMNS`).
Rows of several sources are pooled: the same window under the same species once; the same window under two
species (two reviewers, or two predictions, disagree) is left out and counted.

The split (:func:`plan_split`), one value per row in :data:`SPLIT_COLUMN`:

``recordings``
    what ``birdspec prepare`` does (:func:`birdspec.data.splits.train_val_split`, grouped by recording and
    stratified by species): chosen when it gives every species training and validation windows, so no
    validation window comes from a recording the model trained on.
``time-blocks``
    when a species has too few recordings for that (an analysed recording holds every window of its
    species): per species, a contiguous stretch of its windows in recording and time order (about
    :data:`VAL_FRACTION` of them, at a seeded place) is held out, and its training windows that overlap that
    stretch in time are left out (``gap``). Weaker: neighbouring stretches of one recording share the
    recorder, the site, the background and often the very bird, so validation figures are optimistic; the
    plan says so, and the run records it (:data:`SPLIT_RECORD_FILE`).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.app import predictions as preds
from birdspec.app import review as rv
from birdspec.app.review import VERIFIED_COLUMNS
from birdspec.errors import DataError

log = logging.getLogger(__name__)

SPLIT_COLUMN = "verified_split"
"""The pooled manifest's column with each row's side: train, val or gap (left out)."""
SPLIT_RECORD_FILE = "verified_split.json"
"""What the app writes into a run it trained: the split mode, why, and the windows per species and side."""
VAL_FRACTION = 0.3
SPLIT_MODES = ("recordings", "time-blocks")
WEAKER = ("validation windows come from the same recordings as training windows (other stretches of them): "
          "neighbouring stretches share the recorder, site, background and often the bird, so validation "
          "figures are optimistic; verify windows from more recordings for a split by recording")


def file_resolver(roots: Any, csv: Path):
    """``file`` column value -> (reference, real path) when the recording is in a served folder, else None."""
    def resolve(file: str) -> tuple[str, Path] | None:
        p = Path(str(file))
        for cand in ([p] if p.is_absolute() else [csv.parent / p, Path.cwd() / p]):
            ref = roots.ref(cand) if cand.exists() else None
            if ref is not None:
                return ref, cand.resolve()
        return None
    return resolve


def class_info(csv: Path, detections: pd.DataFrame) -> list[dict[str, str]]:
    """The classes of a prediction table with their names: the model's (an app prediction), else the table's."""
    meta = preds.read_meta(csv.parent) if csv.name == preds.DETECTIONS_FILE else None
    if meta and meta.get("class_info"):
        return list(meta["class_info"])
    names = detections.drop_duplicates("label")
    return [{"label": r.label, "scientific_name": r.scientific_name, "common_name": r.common_name} for r in names.itertuples()]


def verified_rows(roots: Any, ref: str) -> pd.DataFrame:
    """The verified windows of prediction ``ref`` as manifest rows (:func:`birdspec.app.review.manifest_rows`)."""
    csv = preds.prediction_csv(roots, ref)
    det = rv.read_detections(csv)
    resolve = file_resolver(roots, csv)
    return rv.manifest_rows(det, rv.read_verdicts(rv.verdicts_path(csv)), class_info(csv, det), source=ref,
                            resolve_file=lambda f: (resolve(f) or (None, None))[1])


def read_manifest(path: Path) -> pd.DataFrame:
    """An exported manifest (``path, start_s, end_s, label``, ...).

    Raises:
        DataError: not a manifest of verified windows.
    """
    try:
        df = pd.read_csv(path, dtype={"path": str, "label": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read this manifest ({exc}); export one from Review") from exc
    missing = {"path", "start_s", "end_s", "label"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: not a manifest of verified windows (no {', '.join(sorted(missing))} column); export one from Review")
    return df


def pool(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, int]:
    """The rows of ``frames`` together: ``(rows, windows left out because sources name two species for them)``."""
    cols = list(VERIFIED_COLUMNS)
    parts = [f.reindex(columns=cols) for f in frames if len(f)]
    if not parts:
        return pd.DataFrame(columns=cols), 0
    rows = pd.concat(parts, ignore_index=True)
    rows["start_s"] = rows["start_s"].astype(float).round(3)
    rows["end_s"] = rows["end_s"].astype(float).round(3)
    for c in ("scientific_name", "common_name", "source_prediction"):
        rows[c] = rows[c].astype(object).fillna("").astype(str)
    rows = rows.drop_duplicates(["path", "start_s", "label"])
    labels_per_window = rows.groupby(["path", "start_s"])["label"].transform("nunique")
    conflicts = int(rows.loc[labels_per_window > 1, ["path", "start_s"]].drop_duplicates().shape[0])
    rows = rows[labels_per_window == 1]
    return rows.sort_values(["label", "path", "start_s"]).reset_index(drop=True), conflicts


@dataclass(frozen=True)
class SplitPlan:
    """The split of pooled rows: ``sides`` (train | val | gap per row), the mode, and what it gives per species."""

    mode: str
    sides: np.ndarray
    per_class: dict[str, dict[str, int]]
    notes: tuple[str, ...] = ()
    weaker: str = ""
    val_fraction: float = VAL_FRACTION
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What the run keeps of it (:data:`SPLIT_RECORD_FILE`)."""
        return {"mode": self.mode, "weaker": self.weaker, "notes": list(self.notes), "per_class": self.per_class,
                "val_fraction": self.val_fraction, "seed": self.seed, **self.extra}

    def describe(self) -> str:
        """One paragraph for the page and the job's message."""
        head = ("validation by recording: no validation window comes from a recording trained on"
                if self.mode == "recordings" else "validation by time blocks within recordings (weaker: " + self.weaker + ")")
        return " ".join([head + ".", *self.notes])


def _sides_by_recording(rows: pd.DataFrame, *, val_fraction: float, seed: int) -> np.ndarray:
    from birdspec.data.splits import train_val_split

    paths = rows["path"].astype(str).tolist()
    return np.asarray(train_val_split(paths, rows["label"].tolist(), val_fraction=val_fraction, seed=seed,
                                      groups=[str(Path(p)) for p in paths]), dtype=object)


def _sides_by_time_blocks(rows: pd.DataFrame, *, val_fraction: float, seed: int) -> tuple[np.ndarray, list[str]]:
    """Per species, a contiguous stretch of its windows (recording and time order) to validation; its training
    windows overlapping that stretch in time become ``gap``."""
    from birdspec.data.splits import num_val

    sides = np.full(len(rows), "train", dtype=object)
    notes = []
    for label, g in rows.groupby("label", sort=True):
        g = g.sort_values(["path", "start_s"], kind="mergesort")
        n, k = len(g), num_val(len(g), val_fraction)
        if k == 0:
            notes.append(f"{label} has 1 verified window: it is trained on, not validated")
            continue
        rng = np.random.default_rng([int(seed), zlib.crc32(str(label).encode("utf-8"))])
        first = int(rng.integers(0, n - k + 1))
        val = g.iloc[first:first + k]
        rest = g.drop(index=val.index)
        overlaps = np.zeros(len(rest), dtype=bool)
        for v in val.itertuples():
            overlaps |= ((rest["path"] == v.path) & (rest["start_s"] < v.end_s) & (rest["end_s"] > v.start_s)).to_numpy()
        if overlaps.all():
            notes.append(f"{label}: its verified windows overlap one another, none is left to train on beside a "
                         "validation stretch: it is trained on, not validated")
            continue
        sides[rows.index.get_indexer(val.index)] = "val"
        sides[rows.index.get_indexer(rest.index[overlaps])] = "gap"
    return sides, notes


def plan_split(rows: pd.DataFrame, *, val_fraction: float = VAL_FRACTION, seed: int = 0) -> SplitPlan:
    """The split of pooled verified windows (see the module doc): by recording when that gives every species
    training and validation windows, else by time blocks within recordings (said so, and why).

    Raises:
        DataError: fewer than 2 species, or no window left for validation.
    """
    rows = rows.reset_index(drop=True)
    labels = sorted(rows["label"].unique()) if len(rows) else []
    if len(labels) < 2:
        raise DataError(f"training needs verified windows of at least 2 species (these have {len(labels)}: "
                        f"{', '.join(labels) or 'none'}); verify detections of another species, or mark them 'other species'")
    recordings = rows.groupby("label")["path"].nunique()
    sides = _sides_by_recording(rows, val_fraction=val_fraction, seed=seed)
    lacking = [lab for lab in labels if not ({"train", "val"} <= set(sides[(rows["label"] == lab).to_numpy()]))]
    notes: list[str] = []
    if lacking:
        few = ", ".join(f"{lab} ({recordings[lab]} recording{'s' if recordings[lab] != 1 else ''})" for lab in lacking)
        notes.append(f"Too few recordings for a split by recording: {few} would have no training or no validation "
                     "windows; split by time blocks within recordings instead.")
        sides, more = _sides_by_time_blocks(rows, val_fraction=val_fraction, seed=seed)
        notes.extend(more)
    mode = "time-blocks" if lacking else "recordings"
    per_class = {lab: {"recordings": int(recordings[lab]),
                       **{s: int(((rows["label"] == lab).to_numpy() & (sides == s)).sum()) for s in ("train", "val", "gap")}}
                 for lab in labels}
    if not (sides == "val").any():
        raise DataError("no verified window is left for validation (each species has a single window); "
                        "verify at least 2 windows of a species")
    return SplitPlan(mode=mode, sides=sides, per_class=per_class, notes=tuple(notes),
                     weaker=WEAKER if mode == "time-blocks" else "", val_fraction=val_fraction, seed=seed)
