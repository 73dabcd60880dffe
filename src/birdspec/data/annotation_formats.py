"""The table formats annotations and detections come in, one parser each: rows -> :class:`Box` objects and a
:class:`Problem` per row that cannot be one.

Part of :mod:`birdspec.data.annotations` (which finds the files, tells their format and matches them to
recordings). Columns are found by name, case-insensitively, so tables with extra or reordered columns read:

- **Raven** selection tables (tab-separated): ``Begin Time (s)``, ``End Time (s)``, ``Low Freq (Hz)``,
  ``High Freq (Hz)``, the species column (``species_column``, else the first of :data:`SPECIES_COLUMNS`),
  ``Confidence`` when there; a table spanning several files (``Begin Path`` or ``Begin File``, with ``File
  Offset (s)``) gives each row's recording and its time in that file. Raven Pro writes a selection once per
  view (``Waveform 1``, ``Spectrogram 1``): a ``Selection`` number repeated is read once. Also BirdNET-Analyzer's
  tables (``table``) and birdspec's (``--format raven``).
- **Audacity** label tracks: ``start<TAB>end<TAB>label`` with, in spectral tracks, a following
  ``\\<TAB>low<TAB>high`` line; birdspec's (``label confidence``) and BirdNET-Analyzer's (a fourth field, the
  confidence; ``Scientific, Common`` or ``Scientific_Common`` names).
- **CSV** (or Parquet) with a recording column, start and end columns and a species column: birdspec's
  ``predict`` table (``file, start_s, end_s, label, ..., confidence``), BirdNET-Analyzer's ``csv`` (``Start (s),
  End (s), Scientific name, Common name, Confidence, File``), a soundscape's ``calls.csv``, ``birdspec serve``'s
  verdicts (``species`` as reviewed; a ``wrong`` verdict is no box) and verified-window manifests; birdspec's
  ``--scores all`` table (one score column per class) gives a box per window and class.
- **Kaleidoscope** CSV (BirdNET-Analyzer's ``kaleidoscope``): ``IN FILE`` (and ``FOLDER``), ``OFFSET``,
  ``DURATION``, ``scientific_name`` / ``common_name`` or ``TOP1MATCH``, ``confidence``.

BirdNET-Analyzer layouts followed: version 2.0's writers (``birdnet_analyzer/analyze/utils.py``: Raven ``...
Common Name, Species Code, Confidence, Begin Path, File Offset (s)``, a ``nocall`` placeholder row for a file
without detections; Audacity ``Scientific, Common``; Kaleidoscope ``INDIR, FOLDER, IN FILE, OFFSET, DURATION,
scientific_name, common_name, confidence, ...``) and the pandas writers of the 2.x line after it
(``analyze/core.py``: Raven with ``Scientific Name``, Audacity ``Scientific_Common``, Kaleidoscope ``OFFSET,
confidence, INDIR, FOLDER, IN FILE, DURATION, TOP1MATCH``). Combined Raven tables of several files add up the
begin times; ``File Offset (s)`` holds the time in the file and is what is read.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SPECIES_COLUMNS = ("Species", "Species Code", "Label", "Annotation", "Common Name", "Scientific Name", "Class")
"""Where a Raven table's species is, by default: the first of these columns present (any case)."""
TABLE_NAME_COLUMNS = ("Species Code", "Common Name", "Scientific Name", "scientific_name", "common_name", "Scientific name",
                "Common name", "label", "species_code")
"""Other columns that name the row's species too (used to match names across tables)."""
NOCALL_LABELS = ("nocall",)
"""The label of BirdNET-Analyzer's placeholder row (a file without detections): read as no box."""

BIRDNET_NAME = re.compile(r"^[A-Z][a-z]+ [a-z-]+(?: [a-z-]+)?(?:_|, ).+$")
"""BirdNET's species label, ``"Acrocephalus palustris_Marsh Warbler"`` (``", "`` in its old Audacity labels)."""

_RECORDING = ("file", "recording", "audio_id", "filename", "path", "begin path", "begin file", "filepath", "audio")
_START = ("start_s", "start (s)", "begin time (s)", "start", "begin", "start_time", "begin_s", "onset")
_END = ("end_s", "end (s)", "end time (s)", "end", "end_time", "stop", "offset_s")
_LABEL = ("label", "species", "species code", "species_code", "code", "annotation", "class", "scientific name",
          "scientific_name", "common name", "common_name")
_CONFIDENCE = ("confidence", "score", "probability")
_LOW = ("low freq (hz)", "low_hz", "low_freq", "fmin", "low frequency (hz)")
_HIGH = ("high freq (hz)", "high_hz", "high_freq", "fmax", "high frequency (hz)")
_WINDOW_COLUMNS = ("window", "rank", "context_start_s", "context_end_s")


@dataclass(frozen=True)
class Box:
    """One annotation (or detection): a time span, optionally a frequency band, of one species in one recording.

    Attributes:
        recording: the recording as the table names it (a path, a file name, or the table's own name).
        start_s / end_s: seconds from the start of the recording, ``start_s < end_s``.
        low_hz / high_hz: the frequency band, None when the table has none.
        label: the species as the table writes it (its species column).
        confidence: the detector's score, None for human annotations.
        source: the table file.
        line: the 1-based line of the table the box is on.
        names: other names the row gives the species (scientific, common, code), for matching names.
    """

    recording: str
    start_s: float
    end_s: float
    low_hz: float | None
    high_hz: float | None
    label: str
    confidence: float | None
    source: str
    line: int
    names: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Problem:
    """A line of the annotation report: a row not read as a box, a table not read, a recording not matched."""

    source: str
    line: int | None
    message: str
    kind: str = "bad row"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


class Parsed:
    """What one table gave: boxes, problems (each a report line) and notes (rows read once, placeholders)."""

    def __init__(self, source: str, fmt: str) -> None:
        self.source = source
        self.format = fmt
        self.boxes: list[Box] = []
        self.problems: list[Problem] = []
        self.rows = 0

    def problem(self, line: int | None, message: str, kind: str = "bad row") -> None:
        self.problems.append(Problem(self.source, line, message, kind))

    def add(self, line: int, *, recording: str, start: Any, end: Any, label: Any, low: Any = None, high: Any = None,
            confidence: Any = None, names: Iterable[Any] = ()) -> None:
        """Check one row and keep it as a box, or report why not."""
        self.rows += 1
        label_s = _text(label)
        if not label_s:
            return self.problem(line, "no species in this row")
        if label_s.casefold() in NOCALL_LABELS:
            return self.problem(line, "placeholder row 'nocall' (BirdNET-Analyzer writes one for a file without "
                                      "detections): no box", kind="note")
        if not recording:
            return self.problem(line, "no recording named in this row")
        s, e = number(start), number(end)
        if s is None or e is None:
            return self.problem(line, f"begin/end time not a number ({_text(start)!r}, {_text(end)!r})")
        if s < 0:
            return self.problem(line, f"begins before the recording ({s:g} s)")
        if e < s:
            return self.problem(line, f"ends before it begins ({s:g} s to {e:g} s)")
        if e == s:
            return self.problem(line, f"no duration (a point label at {s:g} s)")
        lo, hi = number(low), number(high)
        if lo is not None and lo < 0:
            lo = None  # Audacity writes -1 for "no frequency"
        if hi is not None and hi <= 0:
            hi = None
        if lo is not None and hi is not None and lo > hi:
            self.problem(line, f"low frequency {lo:g} Hz above high frequency {hi:g} Hz: the band is ignored", kind="note")
            lo = hi = None
        conf = number(confidence)
        other = tuple(dict.fromkeys(n for n in (_text(v) for v in names) if n and n != label_s))
        self.boxes.append(Box(str(recording), s, e, lo, hi, label_s, conf, self.source, int(line), other))


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def number(value: Any) -> float | None:
    """A finite float from a cell (``"1,5"`` is 1.5 when there is no dot), or None."""
    text = _text(value)
    if not text:
        return None
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        out = float(text)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def find_column(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` among ``columns`` (case and surrounding spaces ignored)."""
    by_key = {re.sub(r"\s+", " ", str(c)).strip().casefold(): c for c in columns}
    for cand in candidates:
        hit = by_key.get(cand.casefold())
        if hit is not None:
            return hit
    return None


def _species_column(parsed: Parsed, columns: Sequence[str], given: str | None, defaults: Sequence[str]) -> str | None:
    col = find_column(columns, [given] if given else defaults)
    if col is None:
        wanted = f"no column {given!r}" if given else f"no species column (looked for {', '.join(defaults)})"
        parsed.problem(None, f"{wanted}; columns are {', '.join(map(str, columns))}; pass --species-column",
                       kind="table")
    return col


# --------------------------------------------------------------------------- Raven


def parse_raven(parsed: Parsed, rows: list[tuple[int, list[str]]], *, recording: str, species_column: str | None) -> None:
    """A Raven selection table: ``rows`` are ``(line, cells)``, the header first."""
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    begin, end = find_column(header, ["Begin Time (s)"]), find_column(header, ["End Time (s)"])
    if begin is None or end is None:
        return parsed.problem(None, f"a Raven table needs 'Begin Time (s)' and 'End Time (s)'; columns are "
                                    f"{', '.join(header)}", kind="table")
    species = _species_column(parsed, header, species_column, SPECIES_COLUMNS)
    if species is None:
        return
    col = {name: header.index(name) for name in header}
    path_col = find_column(header, ["Begin Path", "Begin File"])
    offset_col = find_column(header, ["File Offset (s)"]) if path_col else None
    low, high = find_column(header, ["Low Freq (Hz)"]), find_column(header, ["High Freq (Hz)"])
    conf = find_column(header, ["Confidence", "Score"])
    names = [c for c in (find_column(header, [n]) for n in TABLE_NAME_COLUMNS) if c and c != species]
    sel, view = find_column(header, ["Selection"]), find_column(header, ["View"])
    seen: dict[str, int] = {}
    for line, cells in body:
        if not any(c.strip() for c in cells):
            continue
        def get(name: str | None, cells: list = cells) -> str | None:
            return cells[col[name]] if name and col[name] < len(cells) else None

        if sel is not None and (cell := get(sel)):
            key = cell.strip()
            if key in seen:
                parsed.problem(line, f"selection {key} again (another view: {_text(get(view)) or '?'}): read once "
                                     f"(line {seen[key]})", kind="note")
                continue
            seen[key] = line
        start: str | float | None
        stop: str | float | None
        rec, start, stop = recording, get(begin), get(end)
        if path_col is not None and _text(get(path_col)):
            rec = _text(get(path_col))
            offset, t0, t1 = number(get(offset_col)), number(start), number(stop)
            if offset is not None and t0 is not None and t1 is not None:  # a table of several files: times add up; the offset is in the file
                start, stop = offset, offset + t1 - t0
        parsed.add(line, recording=rec, start=start, end=stop, label=get(species), low=get(low), high=get(high),
                   confidence=get(conf), names=[get(n) for n in names])


# --------------------------------------------------------------------------- Audacity


def parse_audacity(parsed: Parsed, lines: list[tuple[int, str]], *, recording: str, flavour: str) -> None:
    """An Audacity label track. ``flavour``: ``labels`` (plain or spectral), ``birdspec`` (``label confidence``),
    ``birdnet`` (a fourth field, the confidence)."""
    last: int | None = None  # index in parsed.boxes of the label a "\\ low high" line belongs to
    for line, text in lines:
        if not text.strip():
            continue
        fields = text.rstrip("\r\n").split("\t")
        if fields[0].strip() == "\\":
            if last is None:
                parsed.problem(line, "a frequency line without a label before it")
                continue
            lo, hi = (number(fields[1]) if len(fields) > 1 else None), (number(fields[2]) if len(fields) > 2 else None)
            box = parsed.boxes[last]
            lo = lo if lo is not None and lo >= 0 else None
            hi = hi if hi is not None and hi > 0 else None
            if lo is not None and hi is not None and lo > hi:
                parsed.problem(line, f"low frequency {lo:g} Hz above high frequency {hi:g} Hz: the band is ignored",
                               kind="note")
            else:
                parsed.boxes[last] = Box(box.recording, box.start_s, box.end_s, lo, hi, box.label, box.confidence,
                                         box.source, box.line, box.names)
            last = None
            continue
        last = None
        if len(fields) < 3:
            parsed.rows += 1
            parsed.problem(line, f"an Audacity label needs start, end and label separated by tabs; got {text.strip()!r}")
            continue
        names: tuple[str, ...]
        label, conf, names = "\t".join(fields[2:]).strip(), None, ()
        if flavour == "birdspec":
            head, _, tail = label.rpartition(" ")
            if head and number(tail) is not None:
                label, conf = head.strip(), tail
        elif flavour == "birdnet" and len(fields) >= 4:
            label, conf = fields[2].strip(), fields[3]
            scientific, common = split_birdnet_name(label)
            label, names = scientific, (common,)
        before = len(parsed.boxes)
        parsed.add(line, recording=recording, start=fields[0], end=fields[1], label=label, confidence=conf, names=names)
        if len(parsed.boxes) > before:
            last = len(parsed.boxes) - 1


def split_birdnet_name(name: str) -> tuple[str, str]:
    """BirdNET's ``"Scientific_Common"`` or ``"Scientific, Common"`` -> ``(scientific, common)``."""
    for sep in ("_", ", "):
        if sep in name:
            scientific, _, common = name.partition(sep)
            return scientific.strip(), common.strip()
    return name.strip(), ""


# --------------------------------------------------------------------------- CSV / Parquet


def parse_frame(parsed: Parsed, df: Any, *, recording: str, species_column: str | None, first_line: int = 2) -> None:
    """A CSV or Parquet table (every cell a string): Kaleidoscope, a score matrix, or rows with start, end and
    species columns. ``first_line``: the line of the first row."""
    columns = [str(c) for c in df.columns]
    if find_column(columns, ["IN FILE"]) is not None and find_column(columns, ["OFFSET"]) is not None:
        return _kaleidoscope(parsed, df, first_line=first_line, species_column=species_column)
    start, end = find_column(columns, _START), find_column(columns, _END)
    if start is None or end is None:
        return parsed.problem(None, f"cannot tell the format: no start and end columns (looked for e.g. start_s/end_s, "
                                    f"'Begin Time (s)', 'Start (s)'); columns are {', '.join(columns)}", kind="table")
    rec_col = find_column(columns, _RECORDING)
    verdict = find_column(columns, ["verdict"])  # birdspec serve's verdicts: the species a reviewer gave
    species = find_column(columns, [species_column] if species_column else
                          ["species", *_LABEL] if verdict is not None else _LABEL)
    if species is None and not species_column:
        scores = [c for c in columns if c not in (start, end, rec_col) and find_column([c], _WINDOW_COLUMNS) is None]
        if scores and all(df[c].map(lambda v: number(v) is not None or not _text(v)).all() for c in scores):
            return _scores(parsed, df, recording=recording, rec_col=rec_col, start=start, end=end, classes=scores,
                           first_line=first_line)
    if species is None:
        _species_column(parsed, columns, species_column, _LABEL)
        return
    conf = find_column(columns, _CONFIDENCE)
    low, high = find_column(columns, _LOW), find_column(columns, _HIGH)
    names = [c for c in (find_column(columns, [n]) for n in TABLE_NAME_COLUMNS) if c and c != species]
    cols = {c: df[c].tolist() for c in {start, end, species, rec_col, conf, low, high, verdict, *names} if c}
    for i in range(len(df)):
        def at(c: str | None, i: int = i) -> object:
            return cols[c][i] if c else None

        if verdict is not None and _text(at(verdict)).casefold() == "wrong":
            parsed.rows += 1
            parsed.problem(first_line + i, "verdict 'wrong' (the reviewer rejected this detection): no box", kind="note")
            continue
        rec = _text(at(rec_col)) or recording
        label, other = _text(at(species)), [at(n) for n in names]
        if BIRDNET_NAME.match(label) and not any(_text(v) for v in other):
            label, common = split_birdnet_name(label)  # BirdNET's "Scientific_Common" in one column
            other = [common]
        parsed.add(first_line + i, recording=rec, start=at(start), end=at(end), label=label, low=at(low),
                   high=at(high), confidence=at(conf), names=other)


def _kaleidoscope(parsed: Parsed, df: Any, *, first_line: int, species_column: str | None) -> None:
    columns = [str(c) for c in df.columns]
    infile, folder = find_column(columns, ["IN FILE"]), find_column(columns, ["FOLDER"])
    offset, duration = find_column(columns, ["OFFSET"]), find_column(columns, ["DURATION"])
    candidates = [species_column] if species_column else ["scientific_name", "TOP1MATCH", "MANUAL ID"]
    species = _species_column(parsed, columns, species_column, candidates)
    if species is None or duration is None:
        if duration is None:
            parsed.problem(None, f"a Kaleidoscope table needs a DURATION column; columns are {', '.join(columns)}",
                           kind="table")
        return
    common, conf = find_column(columns, ["common_name"]), find_column(columns, ["confidence"])
    for i in range(len(df)):
        row = df.iloc[i]
        rec = _text(row[infile])
        if folder is not None and _text(row[folder]):
            rec = f"{_text(row[folder])}/{rec}"
        s, d = number(row[offset]), number(row[duration])
        parsed.add(first_line + i, recording=rec, start=s, end=None if s is None or d is None else s + d,
                   label=row[species], confidence=row[conf] if conf else None,
                   names=[row[common]] if common and common != species else ())


def _scores(parsed: Parsed, df: Any, *, recording: str, rec_col: str | None, start: str, end: str,
            classes: list[str], first_line: int) -> None:
    """birdspec's ``--scores all`` table: a box per window and class, the score its confidence."""
    for i in range(len(df)):
        row = df.iloc[i]
        rec = _text(row[rec_col]) if rec_col else recording
        for c in classes:
            if _text(row[c]):
                parsed.add(first_line + i, recording=rec or recording, start=row[start], end=row[end], label=c,
                           confidence=row[c])


def csv_rows(text: str, *, delimiter: str) -> list[tuple[int, list[str]]]:
    """``(line, cells)`` of every record of a delimited text (line numbers count physical lines)."""
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    out, line = [], 1
    for cells in reader:
        out.append((line, cells))
        line = reader.line_num + 1
    return out

