"""Selection boxes drawn on a recording's spectrogram: a time span and a frequency band, labelled with a species.

They are kept as a Raven selection table beside the recording (``<stem>.Table.1.selections.txt``, the name
Raven Pro gives its first table, so Raven opens them with the recording and ``birdspec prepare --annotations``
finds them), one row per box with ``Species`` (the label) and ``Common Name``. The species of a box is one of
the model's classes or the species list (:mod:`birdspec.app.species_list`), never free text.

For training they are strong labels (:func:`box_rows`): each box becomes the :data:`TRAIN_WINDOW_S` windows
that hold it (one centred on a short box, consecutive ones over a long box), rows of the pooled manifest.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BOX_TABLE_SUFFIX = ".Table.1.selections.txt"
BOX_TABLE_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Species", "Common Name")
TRAIN_WINDOW_S = 5.0
"""The window a box becomes for training: what ``birdspec prepare --encoding window`` cuts (its default --window-s)."""
MAX_BOXES = 5000


def table_path(recording: Path) -> Path:
    """The box table of ``recording``: ``<stem>.Table.1.selections.txt`` beside it."""
    return recording.with_name(recording.stem + BOX_TABLE_SUFFIX)


def read_boxes(table: Path, *, shown_as: str | None = None) -> list[dict[str, Any]]:
    """The boxes of a table written here (or any Raven table with these columns); empty when there is none.
    ``shown_as``: what errors call the table (the app's reference to it, not the server's path).

    Raises:
        DataError: a table that cannot be read.
    """
    if not table.is_file():
        return []
    name = shown_as or str(table)
    try:
        df = pd.read_csv(table, sep="\t", dtype={"Species": str, "Common Name": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        why = str(exc).replace(str(table), name)
        raise DataError(f"{name}: cannot read this selection table ({why}); move it away to start over") from None
    missing = {"Begin Time (s)", "End Time (s)", "Species"} - set(df.columns)
    if missing:
        raise DataError(f"{name}: not a selection table with boxes (no {', '.join(sorted(missing))} column)")
    df = df.drop_duplicates("Selection") if "Selection" in df.columns else df
    out = []
    for r in df.itertuples(index=False):
        row = dict(zip(df.columns, r, strict=True))
        low, high = row.get("Low Freq (Hz)"), row.get("High Freq (Hz)")
        out.append({"start_s": float(row["Begin Time (s)"]), "end_s": float(row["End Time (s)"]),
                    "low_hz": None if low is None or pd.isna(low) else float(low),
                    "high_hz": None if high is None or pd.isna(high) else float(high),
                    "species": str(row["Species"] or ""), "common_name": str(row.get("Common Name") or "")})
    return out


def check_boxes(boxes: list[dict[str, Any]], *, duration_s: float, nyquist_hz: float, resolve_species: Any,
                names: dict[str, str]) -> list[dict[str, Any]]:
    """The boxes of a request, checked and with their species as labels (``resolve_species(name) -> label``).

    Raises:
        ConfigError: a box outside the recording or its band, or a species that is not offered.
    """
    if len(boxes) > MAX_BOXES:
        raise ConfigError(f"at most {MAX_BOXES} boxes per recording")
    out = []
    for i, b in enumerate(boxes, start=1):
        try:
            t0, t1 = float(b["start_s"]), float(b["end_s"])
            f0, f1 = float(b.get("low_hz") or 0.0), float(b.get("high_hz") or nyquist_hz)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"box {i}: give start_s, end_s (seconds) and low_hz, high_hz (Hz)") from None
        if not (0 <= t0 < t1 <= duration_s + 0.01 and all(map(math.isfinite, (t0, t1)))):
            raise ConfigError(f"box {i}: {t0:g}-{t1:g} s is not a stretch of the recording (0-{duration_s:.2f} s)")
        if not (0 <= f0 < f1 <= nyquist_hz + 1.0):
            raise ConfigError(f"box {i}: {f0:g}-{f1:g} Hz is not a band of the recording (0-{nyquist_hz:g} Hz)")
        label = resolve_species(str(b.get("species") or ""))
        out.append({"start_s": round(t0, 4), "end_s": round(min(t1, duration_s), 4), "low_hz": round(f0, 1),
                    "high_hz": round(f1, 1), "species": label, "common_name": names.get(label, "")})
    return sorted(out, key=lambda b: (b["start_s"], b["end_s"], b["species"]))


def write_boxes(table: Path, boxes: list[dict[str, Any]]) -> Path | None:
    """Write ``boxes`` as the Raven table ``table`` (atomically); no boxes removes it. Returns the table or None."""
    from birdspec.fileio import write_csv

    if not boxes:
        table.unlink(missing_ok=True)
        return None
    rows = [{"Selection": i, "View": "Spectrogram 1", "Channel": 1, "Begin Time (s)": b["start_s"],
             "End Time (s)": b["end_s"], "Low Freq (Hz)": b["low_hz"], "High Freq (Hz)": b["high_hz"],
             "Species": b["species"], "Common Name": b.get("common_name", "")} for i, b in enumerate(boxes, start=1)]
    return write_csv(table, pd.DataFrame(rows, columns=list(BOX_TABLE_COLUMNS)), sep="\t", float_format=None)


def box_rows(table: Path, recording: Path, *, duration_s: float, window_s: float = TRAIN_WINDOW_S,
             source: str = "") -> pd.DataFrame:
    """The boxes of ``table`` (``source``: its reference) as manifest rows (strong labels): per box the
    ``window_s`` windows that hold it, inside the recording; a box shorter than a window is centred in one."""
    from birdspec.app.review import VERIFIED_COLUMNS

    rows = []
    for b in read_boxes(table, shown_as=source or None):
        if not b["species"]:
            continue
        span = b["end_s"] - b["start_s"]
        count = max(1, math.ceil(span / window_s - 1e-9))
        first = b["start_s"] + (span - count * window_s) / 2  # windows centred on the box
        for k in range(count):
            start = min(max(0.0, first + k * window_s), max(0.0, duration_s - window_s))
            rows.append({"path": str(recording), "start_s": round(start, 3), "end_s": round(min(start + window_s, duration_s), 3),
                         "label": b["species"], "scientific_name": "", "common_name": b["common_name"],
                         "source_prediction": source})
    return pd.DataFrame(rows, columns=list(VERIFIED_COLUMNS))
