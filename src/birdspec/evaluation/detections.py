"""How good are detections on annotated recordings: ``birdspec evaluate-detections DETECTIONS ANNOTATIONS``.

DETECTIONS are the tables a detector wrote (birdspec's ``predict`` csv/parquet/raven/audacity, also ``--scores
all``; BirdNET-Analyzer's table/csv/audacity/kaleidoscope), ANNOTATIONS the boxes people drew (Raven,
Audacity, or any of those); both are read by :mod:`birdspec.data.annotations`. Species names of the
annotations are matched to the detector's (codes, scientific, common names: :mod:`birdspec.data.species`).

Per species (:func:`evaluate_detections`):

- **window level**: the annotated recordings are cut into ``window_s`` windows (default: the detections' own
  length, 3 s for BirdNET, 5 s for birdspec). A window holds the species when a box of it overlaps the window
  as ``prepare --annotations`` requires (:class:`~birdspec.data.annotation_windows.OverlapRule`); a window a box
  only grazes is left out of that species' counts. A window's score is the highest confidence of the
  species' detections lying mostly (half their length, or half the window) inside it. Precision, recall and
  F1 at ``threshold`` (None: every detection in the tables counts: the tables as written), and over all
  thresholds: the precision-recall curve and average precision (AP; a window without detection scores
  below every threshold, so a table written at a cut-off cannot reach full recall);
- **event recall**: the share of boxes that a detection of the species (at the threshold) overlaps at all;
- **false detections per hour**: detections (at the threshold) overlapping no box of their species, per hour
  of annotated audio.

The species scored are the annotated ones (``species``: exactly these, an unannotated one then counts as
absent everywhere). Everything not used is said: detected species nobody annotated, detections of
recordings without annotations, annotated recordings without any detection (scored as nothing detected).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.data.annotation_formats import Box
from birdspec.data.annotation_windows import OverlapRule, box_species, reference_species, window_spans
from birdspec.data.annotations import AnnotationReport, find_recordings, read_tables, recording_key
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 5.0
"""The evaluation window when the detections give no length (none at all)."""


@dataclass(frozen=True)
class DetectionEvalSettings:
    """The choices of :func:`evaluate_detections` (units in the names; see the module doc)."""

    window_s: float | None = None
    threshold: float | None = None
    min_overlap_s: float = 0.5
    min_overlap_fraction: float | None = 0.5
    species: tuple[str, ...] | None = None
    species_column: str | None = None
    species_table: str | None = None

    def __post_init__(self) -> None:
        OverlapRule(self.min_overlap_s, self.min_overlap_fraction)
        if self.window_s is not None and not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigError(f"--window-s must be a positive number of seconds, got {self.window_s}")
        if self.threshold is not None and not (0 <= self.threshold <= 1):
            raise ConfigError(f"--threshold must be in [0, 1], got {self.threshold}")


@dataclass
class DetectionEvaluation:
    """The result: one row per species, the pooled figures, the curves and every report line."""

    per_species: pd.DataFrame
    overall: dict[str, Any]
    curves: dict[str, dict[str, np.ndarray]]
    report: AnnotationReport
    notes: list[str] = field(default_factory=list)


@dataclass
class _Recording:
    key: str
    name: str
    duration_s: float
    truth: list[Box]
    detections: list[Box]


def evaluate_detections(detections: str | Path, annotations: str | Path, *, recordings: str | Path | None = None,
                        settings: DetectionEvalSettings = DetectionEvalSettings()) -> DetectionEvaluation:
    """Score the detection tables under ``detections`` against the annotation tables under ``annotations``.

    Args:
        detections / annotations: a table or a folder of tables each.
        recordings: the audio (a file or folder) for the recordings' durations; without it a recording
            lasts until its last box or detection (a note says so).

    Raises:
        DataError: missing paths, no table, or no annotation box at all.
    """
    report = AnnotationReport()
    ann = read_tables([annotations], species_column=settings.species_column, report=report)
    det = read_tables([detections], report=report)
    if not ann.boxes and not ann.empty:
        raise DataError(f"{annotations}: no annotation box could be read ({report.summary()}); see the report lines "
                        "with --out, or check the species column (--species-column)")
    notes: list[str] = []
    recs = _recordings(ann, det, recordings, report, notes)
    reference = reference_species(det.boxes, settings.species_table)
    det_labels = box_species(det.boxes, reference, report) if det.boxes else []
    ann_boxes = [b for r in recs for b in r.truth]
    if settings.species_table is None:  # annotated species the detector never named join as species of their own
        known = box_species(ann_boxes, reference, AnnotationReport())
        extra = reference_species([b for b, k in zip(ann_boxes, known, strict=True) if k is None])
        reference = pd.concat([reference, extra], ignore_index=True)
    ann_labels = dict(zip(map(id, ann_boxes), box_species(ann_boxes, reference, report), strict=True))
    det_label = dict(zip(map(id, det.boxes), det_labels, strict=True))
    species = _species(settings, reference, ann_labels, det_label, notes)
    window_s = settings.window_s or _window_length(det.boxes)
    rule = OverlapRule(settings.min_overlap_s, settings.min_overlap_fraction)
    scored = _score(recs, species, ann_labels, det_label, window_s=window_s, rule=rule, threshold=settings.threshold)
    per_species, curves, overall = _summarise(scored, species, sum(r.duration_s for r in recs) / 3600.0, settings)
    overall.update({"window_s": window_s, "recordings": len(recs), "detection_tables": len(det.tables), "annotation_tables": len(ann.tables),
                    "annotation_boxes": len(ann_boxes), "detections": len(det.boxes)})
    return DetectionEvaluation(per_species, overall, curves, report, notes)


def _recordings(ann: Any, det: Any, audio: str | Path | None, report: AnnotationReport, notes: list[str]) -> list[_Recording]:
    """The annotated recordings with their boxes, detections and durations."""
    truth: dict[str, list[Box]] = {k: [] for k in ann.empty}
    names: dict[str, str] = {k: k for k in ann.empty}
    for b in ann.boxes:
        truth.setdefault(recording_key(b.recording), []).append(b)
        names.setdefault(recording_key(b.recording), Path(b.recording).name)
    found: dict[str, list[Box]] = {}
    for b in det.boxes:
        found.setdefault(recording_key(b.recording), []).append(b)
    durations: dict[str, float] = {}
    if audio is not None:
        durations = {r.key: r.duration_s for r in find_recordings(audio, report) if r.duration_s}
    else:
        notes.append("no --recordings: each recording is taken to last until its last box or detection")
    out = []
    for key in sorted(truth):
        boxes, dets = truth[key], found.get(key, [])
        if not dets:
            report.add(names[key], None, "no detection names this annotated recording: scored as nothing detected",
                       kind="recording")
        d = durations.get(key) or max([b.end_s for b in (*boxes, *dets)], default=0.0)
        if audio is not None and key not in durations:
            report.add(names[key], None, f"not found under {audio}: its duration is taken from its tables", kind="recording")
        out.append(_Recording(key, names[key], float(d), boxes, dets))
    if found and not set(found) & set(truth):
        raise DataError(f"no detection names an annotated recording: the detections are of {_some(found)}, the "
                        f"annotations of {_some(truth)}; tables match recordings by file name (without extension)")
    others = Counter(k for k in found if k not in truth)
    for key, _ in sorted(others.items()):
        report.add(found[key][0].source, None, f"{len(found[key])} detections of recording {found[key][0].recording!r}, "
                                               "which has no annotation: not scored", kind="unmatched")
    if not out:
        raise DataError("no annotated recording to score")
    return out


def _some(keys: Any) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _species(settings: DetectionEvalSettings, reference: pd.DataFrame, ann: dict, det: dict, notes: list[str]) -> list[str]:
    from birdspec.data.species import resolve_species

    annotated = sorted({lab for lab in ann.values() if lab})
    if settings.species:
        chosen = resolve_species(list(settings.species), reference)
    else:
        chosen = annotated
        unannotated = Counter(lab for lab in det.values() if lab and lab not in annotated)
        if unannotated:
            notes.append("detected but never annotated, not scored (name them with --species to score them as absent): "
                         + ", ".join(f"{k} ({n})" for k, n in unannotated.most_common()))
    if not chosen:
        raise DataError("no annotated species to score (every annotation's species is unknown); see the report lines")
    return chosen


def _window_length(boxes: Sequence[Box]) -> float:
    """The most common detection length (rounded to 1 ms), or :data:`DEFAULT_WINDOW_S`."""
    lengths = Counter(round(b.duration_s, 3) for b in boxes)
    return float(lengths.most_common(1)[0][0]) if lengths else DEFAULT_WINDOW_S


def _score(recs: list[_Recording], species: list[str], ann: dict, det: dict, *, window_s: float, rule: OverlapRule,
           threshold: float | None) -> dict[str, dict[str, Any]]:
    """Per species: window truth and scores, box hits, false detections."""
    out: dict[str, dict[str, Any]] = {s: {"truth": [], "score": [], "boxes": 0, "boxes_hit": 0, "detections": 0, "false": 0} for s in species}
    for rec in recs:
        spans = window_spans(rec.duration_s, window_s=window_s, hop_s=window_s)
        a, b = spans[:, 0], spans[:, 1]
        truth_of, det_of = _by_label(rec.truth, ann), _by_label(rec.detections, det)
        for s in species:
            t, d = truth_of.get(s, []), det_of.get(s, [])
            ts, te = np.array([x.start_s for x in t]), np.array([x.end_s for x in t])
            ds, de = np.array([x.start_s for x in d]), np.array([x.end_s for x in d])
            conf = np.array([1.0 if x.confidence is None else x.confidence for x in d])
            ov, pos = rule.overlap(ts, te, a, b)
            truth = np.where(pos.any(axis=1), 1, np.where((ov > 0).any(axis=1), -1, 0))
            dov = np.minimum(de[None, :], b[:, None]) - np.maximum(ds[None, :], a[:, None])
            inside = dov >= 0.5 * np.minimum(de - ds, window_s)[None, :] - 1e-9
            score = np.where(inside, conf[None, :], -np.inf).max(axis=1) if len(d) else np.full(len(spans), -np.inf)
            out[s]["truth"].append(truth)
            out[s]["score"].append(score)
            kept = conf >= threshold if threshold is not None else np.ones(len(d), dtype=bool)
            touch = (np.minimum(de[:, None], te[None, :]) - np.maximum(ds[:, None], ts[None, :])) > 0
            out[s]["boxes"] += len(t)
            out[s]["boxes_hit"] += int(touch[kept].any(axis=0).sum()) if len(t) else 0
            out[s]["detections"] += int(kept.sum())
            out[s]["false"] += int((~touch.any(axis=1) & kept).sum()) if len(d) else 0
    return out


def _by_label(boxes: list[Box], labels: Mapping[int, str | None]) -> dict[str | None, list[Box]]:
    out: dict[str | None, list[Box]] = {}
    for x in boxes:
        out.setdefault(labels.get(id(x)), []).append(x)
    return out


def _summarise(scored: dict, species: list[str], hours: float, settings: DetectionEvalSettings
               ) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    pooled: Counter[str] = Counter()
    for s in species:
        v = scored[s]
        truth, score = np.concatenate(v["truth"]), np.concatenate(v["score"])
        keep = truth >= 0
        y, sc = truth[keep], score[keep]
        pred = sc >= settings.threshold if settings.threshold is not None else np.isfinite(sc)
        tp, fp, fn = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum()), int((~pred & (y == 1)).sum())
        pooled.update(tp=tp, fp=fp, fn=fn)
        p = tp / (tp + fp) if tp + fp else float("nan")
        r = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
        finite = np.where(np.isfinite(sc), sc, -1.0)
        ap = float(average_precision_score(y, finite)) if y.sum() else float("nan")
        if y.sum():
            prec, rec, thr = precision_recall_curve(y, finite)
            curves[s] = {"precision": prec, "recall": rec, "thresholds": thr}
        rows.append({"species": s, "boxes": v["boxes"], "windows": int(keep.sum()), "positive_windows": int(y.sum()),
                     "ambiguous_windows": int((~keep).sum()), "detections": v["detections"], "tp": tp, "fp": fp,
                     "fn": fn, "precision": p, "recall": r, "f1": f1, "ap": ap,
                     "event_recall": v["boxes_hit"] / v["boxes"] if v["boxes"] else float("nan"),
                     "false_per_hour": v["false"] / hours if hours > 0 else float("nan")})
    df = pd.DataFrame(rows)
    tp, fp, fn = pooled["tp"], pooled["fp"], pooled["fn"]
    boxes = int(df["boxes"].sum())
    overall = {
        "threshold": settings.threshold, "hours": hours, "species": len(species),
        "micro_precision": tp / (tp + fp) if tp + fp else None, "micro_recall": tp / (tp + fn) if tp + fn else None,
        "micro_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        "macro_f1": _mean(df["f1"]), "mean_ap": _mean(df["ap"]),
        "event_recall": sum(scored[s]["boxes_hit"] for s in species) / boxes if boxes else None,
        "false_per_hour": sum(scored[s]["false"] for s in species) / hours if hours > 0 else None,
        "min_overlap_s": settings.min_overlap_s, "min_overlap_fraction": settings.min_overlap_fraction,
    }
    return df, curves, overall


def _mean(values: pd.Series) -> float | None:
    vals = values.dropna()
    return float(vals.mean()) if len(vals) else None
