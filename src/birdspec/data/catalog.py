"""Catalogs: which recordings a source holds, and their labels (the table and its parsing).

A catalog is a :class:`pandas.DataFrame` with one row per recording and the
columns of :data:`CATALOG_COLUMNS` first, then any extra metadata columns of
the source (``latitude``, ``longitude``, ``date``, ``type``, ``license``,
``url``, ``time`` ...):

========================  ==================================================
``id``                    unique name of the recording (``"XC134896"``)
``source_path``           absolute path of the audio file
``filename``              as the metadata names the file (BirdCLEF:
                          ``"XC134896.ogg"`` for 2021, ``"grrwar1/XC134896.ogg"``
                          for 2022+; CSV: the path column), or the POSIX path
                          relative to the root (folders). Splits and folds
                          sort rows by it.
``label``                 primary label (eBird code, folder name, CSV value)
``secondary_labels``      list of str (background species)
``scientific_name``       str, ``""`` when unknown
``common_name``           str, ``""`` when unknown
``rating``                float, NaN when unknown
``fold``                  int, ``-1`` unless the source assigns folds
========================  ==================================================

Layouts (:data:`birdspec.config.LAYOUTS`): ``birdclef2021``, ``birdclef2022`` (also
2023-2025), ``folders`` (one folder per class) and ``csv`` (a manifest with a
file-path and a label column); see :mod:`birdspec.data.catalog_layouts`.

This module owns the catalog table (its columns, how cells are parsed and
normalised); the per-layout readers, layout detection and
:func:`~birdspec.data.catalog_layouts.load_catalog` (a source of any layout)
are in :mod:`birdspec.data.catalog_layouts`. Reading a catalog never opens
audio files.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import DataError
from birdspec.fileio import safe_name

"""Source layouts :func:`load_catalog` reads (``auto``: detect)."""

CATALOG_COLUMNS = (
    "id",
    "source_path",
    "filename",
    "label",
    "secondary_labels",
    "scientific_name",
    "common_name",
    "rating",
    "fold",
)

SOURCE_PREFIX = "source_"
"""Prefix given to source columns whose names clash with catalog columns."""


# --------------------------------------------------------------------------- parsing helpers


def parse_label_list(value: Any) -> list[str]:
    """Parse a secondary-labels cell into a list of labels.

    Accepts the BirdCLEF Python-list string (``"['amecro', 'rewbla']"``), a
    JSON list, an actual list, or a plain ``,``/``;``/space separated string.
    Empty strings, ``"[]"``, ``"['']"``, ``None`` and NaN give ``[]``.

    >>> parse_label_list("['amecro', 'rewbla']")
    ['amecro', 'rewbla']
    >>> parse_label_list("amecro; rewbla")
    ['amecro', 'rewbla']
    """
    if value is None:
        return []
    if isinstance(value, float) and np.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        items: Iterable[Any] = value
    else:
        text = str(value).strip()
        if not text or text.lower() in ("nan", "none", "[]"):
            return []
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed = None
        if isinstance(parsed, (list, tuple, set)):
            items = parsed
        elif isinstance(parsed, str):
            items = [parsed]
        else:
            items = re.split(r"[,;\s]+", text.strip("[]()"))
    out: list[str] = []
    for item in items:
        label = str(item).strip().strip("'\"").strip()
        if label and label not in out:
            out.append(label)
    return out


def _to_rating(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _clean_str(values: pd.Series) -> pd.Series:
    """Strings with missing values as ``""`` (object dtype)."""
    return values.astype("object").where(values.notna(), "").map(lambda v: str(v).strip()).astype("object")


def unique_ids(stems: Sequence[str], rel_paths: Sequence[str]) -> list[str]:
    """Unique recording ids: the file stem, or the relative path where stems clash.

    >>> unique_ids(["a", "a", "b"], ["x/a.wav", "y/a.wav", "x/b.wav"])
    ['x_a', 'y_a', 'b']
    """
    counts = Counter(stems)
    ids = [
        stem if counts[stem] == 1 else safe_name(str(PurePosixPath(rel).with_suffix("")))
        for stem, rel in zip(stems, rel_paths, strict=True)
    ]
    seen: Counter[str] = Counter()
    out = []
    for i in ids:
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}-{seen[i]}")
    # A suffixed id might clash with a natural one; rare, but make sure.
    if len(set(out)) != len(out):
        out = [f"{i}-{k}" for k, i in enumerate(out)]
    return out


def finish_catalog(df: pd.DataFrame, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Order columns, fix dtypes and append the extra metadata columns."""
    df = df.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "id": df["id"].astype(str).to_numpy(dtype=object),
            "source_path": df["source_path"].astype(str).to_numpy(dtype=object),
            "filename": df["filename"].astype(str).to_numpy(dtype=object),
            "label": df["label"].astype(str).to_numpy(dtype=object),
            "secondary_labels": pd.Series(list(df["secondary_labels"]), dtype=object),
            "scientific_name": _clean_str(df["scientific_name"]).to_numpy(dtype=object),
            "common_name": _clean_str(df["common_name"]).to_numpy(dtype=object),
            "rating": _to_rating(df["rating"]).to_numpy(),
            "fold": df["fold"].astype("int64").to_numpy(),
        }
    )
    if extra is not None and len(extra.columns):
        extra = extra.reset_index(drop=True)
        extra = extra.rename(columns={c: SOURCE_PREFIX + c for c in extra.columns if c in CATALOG_COLUMNS})
        out = pd.concat([out, extra], axis=1)
    return out


def read_metadata_csv(path: Path) -> pd.DataFrame:
    """A metadata CSV with every cell as a string (DataError when unreadable)."""
    try:
        # Labels like "0123" or numeric iNaturalist ids must stay strings.
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc


def fold_codes(values: Iterable[Any]) -> tuple[np.ndarray, list[Any]]:
    """Map fold values to ``0..K-1`` in sorted order.

    Values that all parse as numbers are sorted numerically (``"2" < "10"``),
    otherwise as strings.

    Returns:
        ``(codes, distinct)``: int64 codes of shape ``(n,)`` and the sorted
        distinct values (``distinct[code]`` is the original value).
    """
    series = pd.Series(list(values), dtype=object)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        keys = numeric.to_numpy(dtype=float)
        distinct_keys = sorted(set(keys.tolist()))
        index = {k: i for i, k in enumerate(distinct_keys)}
        codes = np.array([index[k] for k in keys], dtype=np.int64)
        distinct = [series[np.flatnonzero(codes == i)[0]] for i in range(len(distinct_keys))]
    else:
        keys_s = series.astype(str).tolist()
        distinct = sorted(set(keys_s))
        index_s = {k: i for i, k in enumerate(distinct)}
        codes = np.array([index_s[k] for k in keys_s], dtype=np.int64)
    return codes, list(distinct)


def secondary_labels_json(labels: Sequence[str]) -> str:
    """The manifest form of a secondary-labels list: a JSON list string."""
    return json.dumps(list(labels))
