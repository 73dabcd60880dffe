"""Prediction tables and the files ``birdspec predict`` writes.

Formats (``--format``):

``csv`` (default) / ``parquet``
    One table for all recordings. ``--scores topk``: one row per kept
    (window, class): ``file, window, start_s, end_s, [context_start_s,
    context_end_s,] rank, label, scientific_name, common_name, confidence``
    (``window`` is the window index in the file; the context columns, for
    stack10 checkpoints, give the 50 s of audio the score was computed from).
    ``--scores all``: one row per window, one score column per class.
``raven``
    A Raven Pro selection table per recording,
    ``<stem>.BirdSpec.selection.table.txt`` (tab-separated; columns
    ``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz),
    High Freq (Hz), Species Code, Common Name, Confidence``; View
    "Spectrogram 1", Channel 1, the frequency band of the checkpoint's
    frontend).
``audacity``
    An Audacity label track per recording, ``<stem>.BirdSpec.labels.txt``:
    ``start<TAB>end<TAB>label confidence``.
``birdclef``
    A BirdCLEF 2021 submission: ``row_id,birds`` with one row per window,
    ``row_id = <soundscape stem>_<end second>`` and ``birds`` the
    space-separated codes kept, or ``nocall``. Kaggle's soundscape names
    ``<audio_id>_<site>_<yyyymmdd>`` become ``<audio_id>_<site>_<end second>``
    (the date dropped), as in Kaggle's ``row_id``.

Scores are kept when ``>= min_conf``, at most ``top_k`` per window (0: no limit). ``min_conf`` is one
number or one threshold per class (:func:`~birdspec.prediction.selection.class_thresholds`: a model's
stored detection thresholds are the default of ``birdspec predict``), so a window where no class reaches
its threshold is ``nocall`` in BirdCLEF output and absent from the other tables.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypedDict

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, DependencyError
from birdspec.fileio import temp_path_for, write_csv, write_text
from birdspec.formats import (
    AUDACITY_SUFFIX,
    FAILED_FILE,
    FORMATS,
    LONG_COLUMNS,
    NOCALL,
    RAVEN_COLUMNS,
    RAVEN_SUFFIX,
    SCORE_MODES,
    SINGLE_FILE_NAMES,
    birdclef_row_id,
)
from birdspec.prediction.csv_text import write_csv_text
from birdspec.prediction.selection import DEFAULT_MIN_CONF, topk_indices

if TYPE_CHECKING:  # pragma: no cover
    from birdspec.prediction.sources import FileResult

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- tables

def _class_strings(class_info: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``str(info["label"])`` / ``str(info[key] or "")`` per class, as an object array (index it with class ids)."""
    out = np.empty(len(class_info), dtype=object)
    out[:] = [str(c["label"]) if key == "label" else str(c.get(key) or "") for c in class_info]
    return out


def scores_table(
    result: FileResult,
    *,
    class_info: Sequence[Mapping[str, Any]],
    mode: str = "topk",
    min_conf: float | np.ndarray = DEFAULT_MIN_CONF,
    top_k: int = 3,
) -> pd.DataFrame:
    """One result as a long top-k table (``mode='topk'``) or a wide score matrix (``'all'``)."""
    windows = result.windows.reset_index(drop=True)
    labels = [str(c["label"]) for c in class_info]
    if mode == "all":
        wide = pd.DataFrame(result.scores, columns=labels) if len(labels) else pd.DataFrame(index=windows.index)
        out: pd.DataFrame = pd.concat([windows, wide], axis=1)
        out.insert(0, "file", result.path)
        return out
    if mode != "topk":
        raise ConfigError(f"unknown scores mode {mode!r}; use one of {', '.join(SCORE_MODES)}")
    rows, ranks, cls = topk_indices(result.scores, min_conf=min_conf, top_k=top_k)
    out = windows.iloc[rows].reset_index(drop=True)
    out.insert(0, "file", result.path)
    out["rank"] = ranks
    out["label"] = _class_strings(class_info, "label")[cls]  # one lookup per kept score, no Python loop
    out["scientific_name"] = _class_strings(class_info, "scientific_name")[cls]
    out["common_name"] = _class_strings(class_info, "common_name")[cls]
    out["confidence"] = result.scores[rows, cls].astype(np.float64) if len(rows) else np.zeros(0)
    return out


def raven_table(result: FileResult, *, class_info: Sequence[Mapping[str, Any]], min_conf: float | np.ndarray, top_k: int,
                low_freq_hz: float, high_freq_hz: float) -> pd.DataFrame:
    """The Raven selection table of one result (columns :data:`RAVEN_COLUMNS`)."""
    t = scores_table(result, class_info=class_info, mode="topk", min_conf=min_conf, top_k=top_k)
    t = t.sort_values(["start_s", "rank"], kind="stable").reset_index(drop=True)
    table: pd.DataFrame = pd.DataFrame(
        {
            "Selection": np.arange(1, len(t) + 1, dtype=np.int64),
            "View": "Spectrogram 1",
            "Channel": 1,
            "Begin Time (s)": t["start_s"].round(6),
            "End Time (s)": t["end_s"].round(6),
            "Low Freq (Hz)": float(low_freq_hz),
            "High Freq (Hz)": float(high_freq_hz),
            "Species Code": t["label"],
            "Common Name": t["common_name"].where(t["common_name"] != "", t["label"]),
            "Confidence": t["confidence"].round(4),
        },
        columns=list(RAVEN_COLUMNS),
    )
    return table


def audacity_lines(result: FileResult, *, class_info: Sequence[Mapping[str, Any]], min_conf: float | np.ndarray,
                   top_k: int) -> list[str]:
    """Audacity label lines ``start\\tend\\tlabel confidence`` of one result."""
    t = scores_table(result, class_info=class_info, mode="topk", min_conf=min_conf, top_k=top_k)
    return [f"{s:.6f}\t{e:.6f}\t{lab} {c:.3f}" for s, e, lab, c in zip(t["start_s"], t["end_s"], t["label"], t["confidence"], strict=True)]


def birdclef_rows(result: FileResult, *, class_info: Sequence[Mapping[str, Any]], min_conf: float | np.ndarray,
                  top_k: int) -> pd.DataFrame:
    """Submission rows ``row_id, birds`` of one result: every window, ``nocall`` when nothing is kept."""
    stem = Path(result.path).stem
    rows, _ranks, cls = topk_indices(result.scores, min_conf=min_conf, top_k=top_k)
    birds = np.full(len(result.windows), NOCALL, dtype=object)
    if len(rows):  # rows come window by window, best first: one join per window with a kept class
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        codes = _class_strings(class_info, "label")[cls].tolist()
        ends = [*starts[1:].tolist(), len(codes)]
        birds[rows[starts]] = [" ".join(codes[a:b]) for a, b in zip(starts.tolist(), ends, strict=True)]
    table: pd.DataFrame = pd.DataFrame(
        {
            "row_id": [birdclef_row_id(stem, e) for e in result.windows["end_s"]],
            "birds": birds,
        }
    )
    return table


# --------------------------------------------------------------------------- writers


class _PerFileNames:
    """Output file names per recording, unique even when stems repeat across folders."""

    def __init__(self, out_dir: Path, suffix: str) -> None:
        self.out_dir = out_dir
        self.suffix = suffix
        self.used: set[Path] = set()

    def __call__(self, name: str) -> Path:
        rel = Path(name)
        base = self.out_dir / rel.parent / (rel.stem + self.suffix)
        path, n = base, 2
        while path in self.used:
            path = base.with_name(f"{rel.stem}_{n}{self.suffix}")
            n += 1
        self.used.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


class _TableOptions(TypedDict):
    """The keyword arguments every per-result table function takes."""

    class_info: Sequence[Mapping[str, Any]]
    min_conf: float | np.ndarray
    top_k: int


class PredictionWriter:
    """Writes :class:`FileResult` objects as they come, in one ``--format``.

    Args:
        fmt: one of :data:`FORMATS`.
        out: a file (csv, parquet, birdclef; '-' is stdout for csv and birdclef) or a
            folder (raven, audacity).
        class_info: per-class label and names.
        min_conf / top_k: which scores to keep (``min_conf``: one number or ``(K,)`` per-class thresholds,
            :func:`~birdspec.prediction.selection.class_thresholds`).
        scores: 'topk' or 'all' (csv and parquet only).
        freq_band_hz: (low, high) for Raven selections.

    Failed recordings are collected in :attr:`failed` and written by :meth:`close`
    to ``failed.csv`` (in the output folder, or ``<out>.failed.csv`` beside a file).
    """

    def __init__(
        self,
        fmt: str,
        out: str | Path,
        *,
        class_info: Sequence[Mapping[str, Any]],
        min_conf: float | np.ndarray,
        top_k: int,
        scores: str = "topk",
        freq_band_hz: tuple[float, float] = (0.0, 16000.0),
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        if scores == "all" and fmt not in ("csv", "parquet"):
            raise ConfigError(f"--scores all is for csv and parquet; {fmt} lists the kept classes (use --top-k 0 --min-conf 0 for all)")
        self.fmt = fmt
        self.out = Path(out) if str(out) != "-" else None
        if self.out is None and fmt not in ("csv", "birdclef"):
            raise ConfigError(f"--format {fmt} writes files; give --out a {'folder' if fmt in ('raven', 'audacity') else 'file'}")
        self.class_info = list(class_info)
        self.min_conf = min_conf
        self.top_k = top_k
        self.scores = scores
        self.freq_band_hz = freq_band_hz
        self.failed: list[dict[str, str]] = []
        self.written: list[Path] = []
        self.rows = 0
        self._fh: IO[str] | None = None
        self._header_done = False
        self._parquet: Any = None  # a pyarrow.parquet.ParquetWriter (pyarrow is untyped)
        self._started = False
        if fmt in ("raven", "audacity") and self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._names = _PerFileNames(self.out, RAVEN_SUFFIX if fmt == "raven" else AUDACITY_SUFFIX)
        elif self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.out) if self.out is not None and fmt not in ("raven", "audacity") else None
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
                import pyarrow.parquet  # noqa: F401
            except ImportError as exc:
                raise DependencyError("--format parquet needs pyarrow: pip install 'birdspec[parquet]'") from exc

    def write(self, result: FileResult) -> None:
        self._started = True
        if not result.ok:
            self.failed.append({"path": result.path, "error": str(result.error)})
            return
        kw = _TableOptions(class_info=self.class_info, min_conf=self.min_conf, top_k=self.top_k)
        if self.fmt in ("csv", "parquet"):
            table = scores_table(result, mode=self.scores, **kw)
            self._append_table(table)
        elif self.fmt == "birdclef":
            self._append_table(birdclef_rows(result, **kw))
        elif self.fmt == "raven":
            t = raven_table(result, low_freq_hz=self.freq_band_hz[0], high_freq_hz=self.freq_band_hz[1], **kw)
            path = self._names(result.name)
            write_csv(path, t, float_format=None, sep="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            self.written.append(path)
            self.rows += len(t)
        else:
            lines = audacity_lines(result, **kw)
            path = self._names(result.name)
            write_text(path, "".join(line + "\n" for line in lines))
            self.written.append(path)
            self.rows += len(lines)

    def _append_table(self, table: pd.DataFrame) -> None:
        self.rows += len(table)
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if not len(table):
                return  # the schema comes from the first non-empty table
            tbl = pa.Table.from_pandas(table, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(str(self._tmp), tbl.schema)
                self.written.append(self.out)  # type: ignore[arg-type]  # parquet always has a file: out is set
            elif tbl.schema != self._parquet.schema:
                tbl = tbl.cast(self._parquet.schema)
            self._parquet.write_table(tbl)
            return
        if self._fh is None:
            if self.out is None:
                self._fh = sys.stdout
            else:
                self._fh = open(self._tmp, "w", newline="")  # type: ignore[arg-type]  # _tmp is set whenever out is
                self.written.append(self.out)
        if len(table) or not self._header_done:
            # to_csv's bytes, formatted column by column (to_csv formats each float in Python: most of
            # the time of a 397-class --scores all run)
            write_csv_text(self._fh, table, header=not self._header_done, lineterminator="\n", float_format="%.6g")
            self._header_done = True

    def close(self, *, write_failed: bool = True) -> Path | None:
        """Finish the outputs; write ``failed.csv`` when recordings failed (unless ``write_failed`` is
        false: the caller writes :attr:`failed` itself). Returns its path."""
        if self._started and self.fmt in ("csv", "birdclef") and not self._header_done:
            # no recording succeeded: still write the header so downstream tools see the columns
            empty = (
                pd.DataFrame(columns=["row_id", "birds"])
                if self.fmt == "birdclef"
                else pd.DataFrame(columns=["file", "window", "start_s", "end_s", *LONG_COLUMNS])
            )
            self._append_table(empty)
        if self._fh is not None and self._fh is sys.stdout:
            sys.stdout.flush()
        had_parquet = self._parquet is not None
        self._release()
        if not had_parquet and self._started and self.fmt == "parquet" and self.out is not None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            empty = pd.DataFrame({"file": pd.Series(dtype=str), "window": pd.Series(dtype="int64"),
                                  "start_s": pd.Series(dtype=float), "end_s": pd.Series(dtype=float)})
            pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), str(self._tmp))
            self.written.append(self.out)
        if self._tmp is not None and self.out is not None and self._tmp.exists():  # _tmp is set only with out
            os.replace(self._tmp, self.out)  # published whole, never half-written
        if not self.failed or not write_failed:
            return None
        if self.fmt in ("raven", "audacity"):
            path = self.out / FAILED_FILE  # type: ignore[operator]  # raven and audacity always have a folder
        elif self.out is not None:
            path = self.out.with_name(f"{self.out.name}.{FAILED_FILE}")
        else:
            path = Path(FAILED_FILE)
        write_csv(path, pd.DataFrame(self.failed, columns=["path", "error"]), float_format=None)
        return path

    def abort(self) -> None:
        """Stop without publishing: the file output keeps what it held before (per-recording files
        already written stay; each was written whole)."""
        self._release()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def _release(self) -> None:
        """Close the open table file (never stdout) and Parquet writer."""
        if self._fh is not None and self._fh is not sys.stdout:
            self._fh.close()
        self._fh = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def default_out(fmt: str) -> str:
    """Where ``birdspec predict`` writes when ``--out`` is not given."""
    return SINGLE_FILE_NAMES.get(fmt, "predictions")
