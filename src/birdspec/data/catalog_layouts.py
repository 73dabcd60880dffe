"""The source layouts of a catalog: detection and one reader per layout.

This module owns how each supported source becomes a catalog (the table of
:mod:`birdspec.data.catalog`, built with its helpers):

- ``birdclef2021``: ``ROOT/train_metadata.csv`` and
  ``ROOT/train_short_audio/<primary_label>/<filename>`` (:func:`read_birdclef`).
- ``birdclef2022`` (also 2023-2025): ``ROOT/train_metadata.csv`` (or
  ``train.csv``) and ``ROOT/train_audio/<filename>``, where ``filename``
  already holds ``<code>/XC*.ogg`` (:func:`read_birdclef`).
- ``folders``: ``ROOT/<label>/**/*.{wav,flac,ogg,mp3,...}`` (:func:`scan_folders`).
- ``csv``: any CSV with a file-path column and a label column; relative paths
  are relative to the CSV's folder. An optional fold column assigns folds;
  optional ``start_s`` and ``end_s`` columns make each row a window of its file
  (:func:`read_csv_manifest`).

Each row is one recording (or window) with one primary label: a row that lists the same audio
again is left out by ``prepare`` with a reason in ``skipped.csv`` (:func:`repeated_rows`).

:func:`detect_layout` names the layout of a source; use
:func:`birdspec.data.catalog.load_catalog` to read any of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from birdspec.audio import is_audio_file
from birdspec.config import LAYOUTS
from birdspec.data.catalog import finish_catalog, fold_codes, parse_label_list, read_metadata_csv, unique_ids
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BIRDCLEF_METADATA_FILES = ("train_metadata.csv", "train.csv")
"""Metadata file names of the Kaggle BirdCLEF releases (2021-2024, 2025)."""

BIRDCLEF_AUDIO_DIRS = {"birdclef2021": "train_short_audio", "birdclef2022": "train_audio"}

PATH_COLUMN_CANDIDATES = ("path", "filepath", "file_path", "audio_path", "audio", "file", "filename")
LABEL_COLUMN_CANDIDATES = ("label", "primary_label", "species", "class", "ebird_code", "category")
WINDOW_COLUMNS = ("start_s", "end_s")
"""Optional CSV-manifest columns: when both are there, each row is that window (seconds) of its file
(several rows may name one file, e.g. the windows verified in ``birdspec serve``)."""


# --------------------------------------------------------------------------- layout detection


def find_birdclef_metadata(root: Path) -> Path | None:
    """The BirdCLEF metadata CSV of ``root`` or None."""
    for name in BIRDCLEF_METADATA_FILES:
        if (root / name).is_file():
            return root / name
    return None


def _has_audio_below(folder: Path) -> bool:
    for _, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(is_audio_file(f) and not f.startswith(".") for f in filenames):
            return True
    return False


def detect_layout(source: str | Path) -> str:
    """Name the layout of ``source`` (one of :data:`~birdspec.data.catalog.LAYOUTS` but ``auto``).

    Raises:
        DataError: ``source`` does not exist or matches no layout.
    """
    src = Path(source)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    if src.is_file():
        if src.suffix.lower() == ".csv":
            return "csv"
        raise DataError(f"{src}: a file source must be a CSV manifest (.csv); otherwise give the dataset folder")
    meta = find_birdclef_metadata(src)
    if meta is not None:
        for layout, audio_dir in BIRDCLEF_AUDIO_DIRS.items():
            if (src / audio_dir).is_dir():
                return layout
        raise DataError(
            f"{src}: found {meta.name} but neither train_short_audio/ (BirdCLEF 2021) nor train_audio/ "
            f"(BirdCLEF 2022+) next to it; use --layout folders or --layout csv"
        )
    if any(d.is_dir() and not d.name.startswith(".") and _has_audio_below(d) for d in src.iterdir()):
        return "folders"
    raise DataError(
        f"no train_metadata.csv and no class folders with audio under {src}; "
        f"use --layout birdclef2021|birdclef2022|folders|csv (or give a CSV manifest as SOURCE)"
    )


# --------------------------------------------------------------------------- readers


def read_birdclef(root: str | Path, *, layout: str = "birdclef2021") -> pd.DataFrame:
    """Catalog of a Kaggle BirdCLEF release.

    Args:
        root: folder holding ``train_metadata.csv`` (or ``train.csv``) and the
            audio folder.
        layout: ``birdclef2021`` (audio in ``train_short_audio/<label>/<filename>``)
            or ``birdclef2022`` (audio in ``train_audio/<filename>``).

    Raises:
        DataError: metadata missing or lacking ``primary_label``/``filename``.
    """
    if layout not in BIRDCLEF_AUDIO_DIRS:
        raise ConfigError(f"unknown BirdCLEF layout {layout!r}; use one of {', '.join(BIRDCLEF_AUDIO_DIRS)}")
    root = Path(os.path.abspath(root))
    meta_path = find_birdclef_metadata(root)
    if meta_path is None:
        raise DataError(f"{root}: no {' or '.join(BIRDCLEF_METADATA_FILES)}; is this a BirdCLEF folder?")
    audio_dir = root / BIRDCLEF_AUDIO_DIRS[layout]
    if not audio_dir.is_dir():
        raise DataError(f"{root}: no {audio_dir.name}/ folder for layout {layout}")
    meta = read_metadata_csv(meta_path)
    missing = [c for c in ("primary_label", "filename") if c not in meta.columns]
    if missing:
        raise DataError(f"{meta_path}: missing column(s) {', '.join(missing)}; columns are {', '.join(meta.columns)}")
    meta = meta[meta["primary_label"].notna() & meta["filename"].notna()].reset_index(drop=True)
    labels = meta["primary_label"].str.strip()
    names = meta["filename"].str.strip()
    if layout == "birdclef2021":
        # The 2021 metadata holds bare names; tolerate ones that already hold the folder.
        rel = [n if "/" in n else f"{lab}/{n}" for lab, n in zip(labels, names, strict=True)]
    else:
        rel = list(names)
    rel = [PurePosixPath(r.replace("\\", "/")).as_posix() for r in rel]
    df = pd.DataFrame(
        {
            "id": unique_ids([PurePosixPath(r).stem for r in rel], rel),
            "source_path": [os.path.join(audio_dir, *PurePosixPath(r).parts) for r in rel],
            "filename": list(names),
            "label": labels,
            "secondary_labels": [parse_label_list(v) for v in meta.get("secondary_labels", [None] * len(meta))],
            "scientific_name": meta.get("scientific_name", pd.Series([""] * len(meta))),
            "common_name": meta.get("common_name", pd.Series([""] * len(meta))),
            "rating": meta.get("rating", pd.Series([np.nan] * len(meta))),
            "fold": -1,
        }
    )
    used = {"primary_label", "filename", "secondary_labels", "scientific_name", "common_name", "rating"}
    extra = meta[[c for c in meta.columns if c not in used]]
    log.debug("%s: %d recordings (%s)", meta_path, len(df), layout)
    return finish_catalog(df, extra)


def scan_folders(root: str | Path) -> pd.DataFrame:
    """Catalog of a folder-per-class tree: ``ROOT/<label>/**/<audio file>``.

    Audio files are recognised by extension (any case); hidden files and
    folders are ignored, symlinks followed. Files directly in ``ROOT`` have no
    label and are ignored (with a warning).

    Raises:
        DataError: no class folder holds any audio.
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    rows = []
    loose = [f for f in root.iterdir() if f.is_file() and is_audio_file(f.name)]
    if loose:
        log.warning("%s: ignoring %d audio file(s) outside class folders (e.g. %s)", root, len(loose), loose[0].name)
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not is_audio_file(name):
                    continue
                path = os.path.join(dirpath, name)
                rows.append((class_dir.name, path, Path(path).relative_to(root).as_posix()))
    if not rows:
        raise DataError(f"no class folders with audio under {root}; use --layout birdclef2021|birdclef2022|csv")
    labels, paths, rel = (list(x) for x in zip(*rows, strict=True))
    df = pd.DataFrame(
        {
            "id": unique_ids([PurePosixPath(r).stem for r in rel], rel),
            "source_path": paths,
            "filename": rel,
            "label": labels,
            "secondary_labels": [[] for _ in rows],
            "scientific_name": "",
            "common_name": "",
            "rating": np.nan,
            "fold": -1,
        }
    )
    return finish_catalog(df)


def _pick_column(
    columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str, flag: str, csv: Path
) -> str:
    if given is not None:
        if given not in columns:
            raise DataError(f"{csv}: no {what} column {given!r}; columns are {', '.join(columns)}")
        return given
    lower = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    raise DataError(f"{csv}: cannot tell which column holds the {what}; columns are {', '.join(columns)}; pass {flag}")


def read_csv_manifest(
    csv: str | Path,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    fold_column: str | None = None,
) -> pd.DataFrame:
    """Catalog from a CSV with a file-path column and a label column.

    Args:
        csv: the CSV file. Relative paths are relative to its folder.
        path_column: column with the audio paths (default: the first of
            :data:`PATH_COLUMN_CANDIDATES` present).
        label_column: column with the labels (default: the first of
            :data:`LABEL_COLUMN_CANDIDATES` present).
        fold_column: optional column whose distinct values become folds
            ``0..K-1`` (sorted); the original value is kept in ``source_fold``
            (or under the column's own name when it is not ``fold``).

    Optional columns ``secondary_labels``, ``scientific_name``,
    ``common_name`` and ``rating`` are used when present; ``start_s`` and
    ``end_s`` (both) make each row that window of its file (:func:`decode_spans`);
    every other column is kept as extra metadata.

    Raises:
        DataError: unreadable CSV, missing columns, empty paths or labels, or
            rows without a fold value.
    """
    csv = Path(os.path.abspath(csv))
    if not csv.is_file():
        raise DataError(f"{csv}: no such CSV file")
    meta = read_metadata_csv(csv)
    if meta.empty:
        raise DataError(f"{csv}: no rows")
    cols = list(meta.columns)
    pcol = _pick_column(cols, path_column, PATH_COLUMN_CANDIDATES, "file path", "--path-column", csv)
    lcol = _pick_column(cols, label_column, LABEL_COLUMN_CANDIDATES, "label", "--label-column", csv)
    if pcol == lcol:
        raise DataError(f"{csv}: path and label column are both {pcol!r}; pass --path-column and --label-column")
    bad = meta[pcol].isna() | meta[lcol].isna()
    if bad.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad.to_numpy())[:5])
        raise DataError(f"{csv}: {int(bad.sum())} row(s) without a path or label (line {rows}...)")
    base = csv.parent
    rel = [p.strip() for p in meta[pcol]]
    paths = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)) for p in rel]
    rel_posix = [p.replace("\\", "/") for p in rel]
    fold = np.full(len(meta), -1, dtype=np.int64)
    if fold_column is not None:
        if fold_column not in cols:
            raise DataError(f"{csv}: no fold column {fold_column!r}; columns are {', '.join(cols)}")
        missing = meta[fold_column].isna()
        if missing.any():
            raise DataError(f"{csv}: {int(missing.sum())} row(s) have no value in fold column {fold_column!r}")
        fold, distinct = fold_codes(meta[fold_column].str.strip())
        log.info("%s: %d folds from column %r: %s", csv.name, len(distinct), fold_column, distinct)
    opt = {
        c: c
        for c in ("secondary_labels", "scientific_name", "common_name", "rating")
        if c in cols and c not in (pcol, lcol)
    }
    df = pd.DataFrame(
        {
            "id": unique_ids([PurePosixPath(r).stem for r in rel_posix], rel_posix),
            "source_path": paths,
            "filename": rel_posix,
            "label": meta[lcol].str.strip(),
            "secondary_labels": [parse_label_list(v) for v in meta["secondary_labels"]]
            if "secondary_labels" in opt
            else [[] for _ in range(len(meta))],
            "scientific_name": meta["scientific_name"] if "scientific_name" in opt else "",
            "common_name": meta["common_name"] if "common_name" in opt else "",
            "rating": meta["rating"] if "rating" in opt else np.nan,
            "fold": fold,
        }
    )
    extra = meta[[c for c in cols if c not in (pcol, lcol) and c not in opt]]
    if set(WINDOW_COLUMNS) <= set(cols):
        extra = _window_columns(extra, csv)
        df["id"] = unique_ids([f"{PurePosixPath(r).stem}_{s:g}s" for r, s in zip(rel_posix, extra["start_s"], strict=True)], rel_posix)
    return finish_catalog(df, extra)


def _window_columns(extra: pd.DataFrame, csv: Path) -> pd.DataFrame:
    """``start_s`` / ``end_s`` as floats, checked: each row is then that window of its file, not the whole file."""
    out = extra.copy()
    for c in WINDOW_COLUMNS:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    bad = ~(out["start_s"].ge(0) & out["end_s"].gt(out["start_s"]) & np.isfinite(out["end_s"]))
    if bad.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad.to_numpy())[:5])
        raise DataError(f"{csv}: {int(bad.sum())} row(s) with a bad window (need 0 <= start_s < end_s, in seconds; line {rows}...)")
    return out


def decode_spans(catalog: pd.DataFrame, max_duration_s: float | None) -> list[tuple[float, float | None]]:
    """``(offset_s, duration_s)`` to decode per catalog row: the row's window (``start_s``/``end_s`` columns of
    a CSV manifest) or the whole file, cut to ``max_duration_s``."""
    if not set(WINDOW_COLUMNS) <= set(catalog.columns) or catalog["start_s"].dtype.kind != "f":
        return [(0.0, max_duration_s)] * len(catalog)
    spans: list[tuple[float, float | None]] = []
    for start, end in zip(catalog["start_s"].to_numpy(float), catalog["end_s"].to_numpy(float), strict=True):
        length = float(end - start)
        spans.append((float(start), length if max_duration_s is None else min(length, max_duration_s)))
    return spans


def repeated_rows(catalog: pd.DataFrame) -> dict[int, str]:
    """Rows (by position) that list the audio of another row again, and why ``prepare`` leaves them out.

    The same audio is the same file (``source_path``) and span (:func:`decode_spans`: for CSV manifests
    with ``start_s``/``end_s``, the same window; other windows of a file are other audio). Listed again
    under the same label, the later rows are duplicates (``duplicate of ID``: the first is kept). Listed
    under different labels, it is a conflict one primary label per row cannot hold (other species of a
    recording go in ``secondary_labels``): every row of that audio is left out (``conflicting labels``).
    """
    spans = decode_spans(catalog, None)
    rows_of: dict[tuple[str, tuple[float, float | None]], list[int]] = {}
    for i, key in enumerate(zip(catalog["source_path"].astype(str).tolist(), spans, strict=True)):
        rows_of.setdefault(key, []).append(i)
    labels, ids = catalog["label"].astype(str).tolist(), catalog["id"].astype(str).tolist()
    out: dict[int, str] = {}
    for rows in rows_of.values():
        if len(rows) < 2:
            continue
        distinct = sorted({labels[i] for i in rows})
        if len(distinct) == 1:
            out.update({i: f"duplicate of {ids[rows[0]]} (the same audio and label)" for i in rows[1:]})
        else:
            reason = (f"conflicting labels: the same audio is listed as {' and '.join(distinct)} "
                      "(one primary label per recording; list other species in secondary_labels)")
            out.update(dict.fromkeys(rows, reason))
    return out


# --------------------------------------------------------------------------- any source


def load_catalog(
    source: str | Path,
    *,
    layout: str = "auto",
    path_column: str | None = None,
    label_column: str | None = None,
    fold_column: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Catalog of any supported source.

    Args:
        source: a dataset folder, or a CSV manifest.
        layout: one of :data:`LAYOUTS`; ``auto`` detects it (a CSV file means
            ``csv``).
        path_column, label_column, fold_column: for the ``csv`` layout.

    Returns:
        ``(catalog, layout)`` with the layout actually used.

    Raises:
        ConfigError: unknown layout, or CSV options with a non-CSV layout.
        DataError: the source does not match the layout.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    src = Path(source)
    if layout == "auto":
        layout = detect_layout(src)
    elif not src.exists():
        raise DataError(f"{src}: no such file or folder")
    csv_opts = {"--path-column": path_column, "--label-column": label_column, "--fold-column": fold_column}
    if layout != "csv" and any(v is not None for v in csv_opts.values()):
        given = ", ".join(k for k, v in csv_opts.items() if v is not None)
        raise ConfigError(f"{given} only apply to the csv layout (SOURCE is {layout})")
    if layout == "csv":
        if src.is_dir():
            raise DataError(f"{src}: the csv layout needs a CSV file as SOURCE, not a folder")
        catalog = read_csv_manifest(src, path_column=path_column, label_column=label_column, fold_column=fold_column)
    elif layout == "folders":
        catalog = scan_folders(src)
    else:
        catalog = read_birdclef(src, layout=layout)
    if catalog.empty:
        raise DataError(f"{src}: no recordings found (layout {layout})")
    return catalog, layout
