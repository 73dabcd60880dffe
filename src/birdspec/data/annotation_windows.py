"""Boxes -> labelled windows: the overlap rule, the windows of a recording, and ``prepare --annotations``'s catalog.

This module owns when a box labels a window (:class:`OverlapRule`, also the truth of ``birdspec
evaluate-detections``) and how annotated recordings become the window rows ``prepare`` stores
(:func:`annotation_source`):

- every recording with a table is cut into ``window_s`` windows every ``hop_s`` (the last one aligned to the
  recording's end, so its tail is covered: :func:`window_spans`);
- a box of a species labels a window when it overlaps it by at least ``min_overlap_s`` seconds, or by at
  least ``min_overlap_fraction`` of the box's own length (a short call wholly inside); the window's primary
  label is the species with most overlap, the others its secondary labels (multi-label training);
- a window a box touches without reaching the rule is *ambiguous* and left out (neither that species nor
  "no bird");
- with ``complete`` (the annotation lists every call of the chosen species), a window no box of the chosen
  species touches is a **no-bird** window: kept out of the class list, listed in ``nobird.csv`` and written
  as audio for ``train --background`` (:mod:`birdspec.data.annotation_nobird`); without it, unannotated time is
  left out (it may hold calls nobody marked).

The window rows are a catalog like a CSV manifest with ``start_s``/``end_s`` (:mod:`birdspec.data.catalog_layouts`),
so decoding, splits and folds (each recording on one side) are ``prepare``'s own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from birdspec.data.annotation_formats import Box
from birdspec.data.annotations import AnnotationReport, AudioFile, find_recordings, find_tables, match_recordings, read_tables
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EPS_S = 1e-6
SCIENTIFIC = re.compile(r"^[A-Z][a-z]+ [a-z-]+(?: [a-z-]+)?$")


@dataclass(frozen=True)
class OverlapRule:
    """When a box labels a window: overlap >= ``min_overlap_s``, or >= ``min_overlap_fraction`` of the box."""

    min_overlap_s: float = 0.5
    min_overlap_fraction: float | None = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_overlap_s) and self.min_overlap_s > 0):
            raise ConfigError(f"--min-overlap-s must be a positive number of seconds, got {self.min_overlap_s}")
        f = self.min_overlap_fraction
        if f is not None and not (0 < f <= 1):
            raise ConfigError(f"--min-overlap-fraction must be in (0, 1] (or 0 for none), got {f}")

    def overlap(self, starts: np.ndarray, ends: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(overlap_s, labels)``, both ``(W, B)``: seconds of box j inside window i, and whether it labels it.

        ``starts``/``ends``: ``(B,)`` boxes; ``a``/``b``: ``(W,)`` windows.
        """
        ov = np.minimum(ends[None, :], b[:, None]) - np.maximum(starts[None, :], a[:, None])
        ov = np.clip(ov, 0.0, None)
        labels = ov >= self.min_overlap_s - EPS_S
        if self.min_overlap_fraction is not None:
            length = np.maximum(ends - starts, EPS_S)[None, :]
            labels |= (ov > 0) & (ov / length >= self.min_overlap_fraction - EPS_S)
        return ov, labels


def window_spans(duration_s: float, *, window_s: float, hop_s: float) -> np.ndarray:
    """``(W, 2)`` windows ``[start, end)`` of a recording: every ``hop_s`` while a whole window fits, then one
    ending at the recording's end when some audio is left; a recording shorter than a window gives itself."""
    if duration_s <= 0:
        return np.zeros((0, 2))
    if duration_s < window_s - EPS_S:
        return np.array([[0.0, duration_s]])
    n = int(math.floor((duration_s - window_s) / hop_s + EPS_S)) + 1
    starts = np.round(np.arange(n) * hop_s, 6)
    if starts[-1] + window_s < duration_s - 1e-3:
        last = math.floor((duration_s - window_s) * 1000) / 1000  # a whole window that decodes within the file
        if last > starts[-1] + EPS_S:
            starts = np.append(starts, last)
    return np.stack([starts, starts + window_s], axis=1)


@dataclass(frozen=True)
class AnnotationSettings:
    """What ``prepare --annotations`` reads and how boxes label windows (stored in ``dataset.json``)."""

    tables: tuple[str, ...]
    tables_digest: str = ""
    species_column: str | None = None
    min_overlap_s: float = 0.5
    min_overlap_fraction: float | None = 0.5
    hop_s: float | None = None
    complete: bool = False
    species_table: str | None = None

    def __post_init__(self) -> None:
        OverlapRule(self.min_overlap_s, self.min_overlap_fraction)
        if self.hop_s is not None and not (math.isfinite(self.hop_s) and self.hop_s > 0):
            raise ConfigError(f"--hop-s must be a positive number of seconds, got {self.hop_s}")
        if not self.tables:
            raise ConfigError("--annotations needs at least one table or folder of tables")

    @property
    def rule(self) -> OverlapRule:
        return OverlapRule(self.min_overlap_s, self.min_overlap_fraction)

    def to_dict(self) -> dict[str, Any]:
        return {f: (list(v) if isinstance(v, tuple) else v) for f, v in self.__dict__.items()}


def annotation_settings(tables: Sequence[str | Path], **options: Any) -> AnnotationSettings:
    """:class:`AnnotationSettings` with absolute table paths and a digest of their content (edited tables are
    other settings: ``prepare`` does not reuse a dataset made from their old content)."""
    import os

    found = find_tables(tables)
    digest = hashlib.sha1()
    for path, _ in found:
        digest.update(str(path.resolve()).encode("utf-8", "surrogatepass") + b"\0" + path.read_bytes() + b"\0")
    fraction = options.pop("min_overlap_fraction", 0.5)
    return AnnotationSettings(tables=tuple(sorted(os.path.abspath(t) for t in tables)), tables_digest=digest.hexdigest()[:20],
                              min_overlap_fraction=fraction if fraction else None, **options)


# --------------------------------------------------------------------------- species


def reference_species(boxes: Sequence[Box], table: str | None = None) -> pd.DataFrame:
    """The species table names are matched against (columns of :func:`birdspec.data.species.species_table`).

    ``table``: a CSV with ``label`` (and ``scientific_name``, ``common_name``) columns, or a prepared dataset
    folder (its classes). Without one, the boxes' own species: names a row gives together (a code, a common
    name, a scientific name) are one species, labelled by its most frequent name in a species column.
    """
    if table is not None:
        return read_species_table(table)
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    from birdspec.names import normalize_name

    for box in boxes:
        keys = [normalize_name(n) for n in (box.label, *box.names) if n]
        for k in keys[1:]:
            parent[root(k)] = root(keys[0])
        root(keys[0])
    groups: dict[str, list[Box]] = {}
    for box in boxes:
        groups.setdefault(root(normalize_name(box.label)), []).append(box)
    rows = []
    for members in groups.values():
        named = [b.label for b in members if b.names] or [b.label for b in members]
        counts = Counter(named)
        label = sorted(counts, key=lambda n: (-counts[n], n))[0]
        names = [n for b in members for n in (b.label, *b.names) if n != label]
        sci = next((n for n in names if SCIENTIFIC.match(n)), "")
        common = next((n for n in names if n != sci and (" " in n or n[:1].isupper()) and not n.isupper()), "")
        rows.append({"label": label, "scientific_name": sci, "common_name": common, "count": len(members)})
    return pd.DataFrame(rows, columns=["label", "scientific_name", "common_name", "count"]).sort_values(
        "label", kind="mergesort").reset_index(drop=True)


def read_species_table(path: str | Path) -> pd.DataFrame:
    """A species table from a CSV (``label``, ``scientific_name``, ``common_name``) or a prepared dataset's classes.

    Raises:
        DataError: no such file, or no ``label`` column.
    """
    p = Path(path)
    if p.is_dir():
        from birdspec.data.prepared import PreparedDataset

        info = PreparedDataset(p).meta.get("class_info") or []
        df = pd.DataFrame(info, columns=["label", "scientific_name", "common_name"])
    elif p.is_file():
        from birdspec.data.catalog import read_metadata_csv

        df = read_metadata_csv(p)
        if "label" not in df.columns:
            raise DataError(f"{p}: a species table needs a 'label' column (and scientific_name, common_name); "
                            f"columns are {', '.join(df.columns)}")
    else:
        raise DataError(f"{p}: no such species table (a CSV with label, scientific_name, common_name, or a prepared "
                        "dataset folder)")
    for c in ("scientific_name", "common_name"):
        df[c] = df[c].fillna("").astype(str) if c in df else ""
    df["count"] = 0
    return df[["label", "scientific_name", "common_name", "count"]].astype({"label": str})


def box_species(boxes: Sequence[Box], reference: pd.DataFrame, report: AnnotationReport) -> list[str | None]:
    """The reference label of every box (its label first, then its other names), None with a report line
    when none of its names is in the reference."""
    from birdspec.data.species import lookup_name, name_index

    index = name_index(reference)
    out: list[str | None] = []
    missed: Counter = Counter()
    for box in boxes:
        hit = next((lab for lab in (lookup_name(n, index) for n in (box.label, *box.names)) if lab), None)
        if hit is None:
            missed[(box.source, box.label)] += 1
        out.append(hit)
    for (source, label), n in sorted(missed.items()):
        report.add(source, None, f"species {label!r} ({n} boxes) is not in the species table: left out", kind="species")
    return out


# --------------------------------------------------------------------------- windows


@dataclass
class AnnotatedSource:
    """What :func:`annotation_source` found: window rows (a catalog), no-bird windows, species and counts."""

    catalog: pd.DataFrame
    nobird: pd.DataFrame
    species: list[str]
    report: AnnotationReport
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {"windows": int(len(self.catalog)), **{k: int(v) for k, v in sorted(self.counts.items())}}


def annotation_source(source: str | Path, settings: AnnotationSettings, *, window_s: float,
                      species: Sequence[str] | str | None = None, top_n: int | None = None) -> AnnotatedSource:
    """The labelled windows of the recordings under ``source`` (see the module doc).

    Raises:
        DataError: no recording matched a table, or no window got a label.
    """
    from birdspec.data.species import resolve_species, top_species

    report = AnnotationReport()
    recordings = find_recordings(source, report)
    tables = read_tables(settings.tables, species_column=settings.species_column, report=report)
    matched = match_recordings(tables, recordings)
    if not matched:
        raise DataError(f"no annotation table matched a recording under {source} ({tables.report.summary()}); "
                        "tables are matched by file name: <recording>.Table.1.selections.txt, <recording>.txt, or a "
                        "recording column (Begin Path, file)")
    all_boxes = [b for boxes in matched.values() for b in boxes]
    reference = reference_species(all_boxes, settings.species_table)
    labels = dict(zip(map(id, all_boxes), box_species(all_boxes, reference, report), strict=True))
    counted = Counter(lab for lab in labels.values() if lab)
    table = reference.assign(count=reference["label"].map(counted).fillna(0).astype(int))
    table = table[table["count"] > 0].reset_index(drop=True)
    chosen = sorted(table["label"]) if species is None else resolve_species(species, table)
    if top_n is not None:
        chosen = top_species(table[table["label"].isin(chosen)], top_n)
    names = table.set_index("label")
    hop = settings.hop_s or window_s
    rows: list[tuple[Any, ...]] = []  # (recording, start_s, end_s, label, other labels)
    nobird: list[tuple[Any, ...]] = []  # (recording key, path, name, start_s, end_s)
    counts: Counter[str] = Counter()
    for rec in sorted(recordings, key=lambda r: r.name):
        if rec.path not in matched:
            continue
        if rec.duration_s is None:
            report.add(rec.path, None, "unknown duration (unreadable header): left out", kind="recording")
            continue
        boxes = [b for b in matched[rec.path] if labels[id(b)] in chosen]
        _label_windows(rec, boxes, [labels[id(b)] for b in boxes], settings, window_s, hop, rows, nobird, counts)
    if not rows:
        raise DataError(f"no window of {window_s:g} s got a label from the annotations (species {', '.join(chosen)}; "
                        f"{report.summary()}); lower --min-overlap-s or --min-overlap-fraction, or check the tables")
    catalog = _catalog(rows, names)
    log.info("annotations: %d labelled windows, %d no-bird windows, %d ambiguous, %d unannotated left out",
             len(catalog), counts["nobird_windows"], counts["ambiguous_windows"], counts["unannotated_windows"])
    return AnnotatedSource(catalog, pd.DataFrame(nobird, columns=["recording", "source_path", "filename", "start_s",
                                                                  "end_s"]), list(chosen), report, counts)


def _label_windows(rec: AudioFile, boxes: list[Box], labels: Sequence[str | None], settings: AnnotationSettings,
                   window_s: float, hop_s: float, rows: list[tuple[Any, ...]], nobird: list[tuple[Any, ...]],
                   counts: Counter[str]) -> None:
    spans = window_spans(rec.duration_s or 0.0, window_s=window_s, hop_s=hop_s)
    starts = np.array([b.start_s for b in boxes], dtype=float)
    ends = np.array([b.end_s for b in boxes], dtype=float)
    ov, pos = settings.rule.overlap(starts, ends, spans[:, 0], spans[:, 1])
    lab = np.asarray(labels, dtype=object)
    for i, (a, b) in enumerate(spans.tolist()):
        hits = np.flatnonzero(pos[i])
        if hits.size:
            per: defaultdict[Any, float] = defaultdict(float)  # overlap seconds by label
            for j in hits:
                per[lab[j]] += float(ov[i, j])
            ranked = sorted(per, key=lambda k: (-per[k], k))
            rows.append((rec, a, b, ranked[0], ranked[1:]))
        elif (ov[i] > 0).any():
            counts["ambiguous_windows"] += 1
        elif settings.complete:
            nobird.append((rec.key, rec.path, rec.name, a, b))
            counts["nobird_windows"] += 1
        else:
            counts["unannotated_windows"] += 1
    counts["recordings"] += 1
    counts["annotated_s"] += int(round(rec.duration_s or 0))


def _catalog(rows: list, names: pd.DataFrame) -> pd.DataFrame:
    from birdspec.data.catalog import finish_catalog, unique_ids

    rel = [r[0].name for r in rows]
    labels = [r[3] for r in rows]
    df = pd.DataFrame({
        "id": unique_ids([f"{PurePosixPath(r[0].name).stem}_{r[1]:g}s" for r in rows], rel),
        "source_path": [r[0].path for r in rows],
        "filename": rel,
        "label": labels,
        "secondary_labels": [list(r[4]) for r in rows],
        "scientific_name": [names.at[lab, "scientific_name"] for lab in labels],
        "common_name": [names.at[lab, "common_name"] for lab in labels],
        "rating": np.nan,
        "fold": -1,
    })
    extra = pd.DataFrame({"start_s": [float(r[1]) for r in rows], "end_s": [float(r[2]) for r in rows]})
    return finish_catalog(df, extra)
