"""Annotation and detection tables in: find them, tell their format, read their boxes, match them to recordings.

Boxes (:class:`~birdspec.data.annotation_formats.Box`: recording, begin/end seconds, frequency band, species,
confidence, table and line) come from Raven selection tables, Audacity label tracks, BirdNET-Analyzer's outputs
(table, csv, audacity, kaleidoscope) and birdspec's own (``predict`` csv/parquet, raven, audacity); the parsers
are :mod:`birdspec.data.annotation_formats`. A table names its recording per row (``Begin Path``, ``file``, ``IN
FILE``, ...) or by its own file name: ``<recording>.Table.1.selections.txt`` (Raven; several tables per
recording are read together), ``<stem>.BirdSpec.selection.table.txt``, ``<stem>.BirdNET.results.csv``, ...,
or just ``<stem>.txt`` beside ``<stem>.wav`` (:func:`table_recording`).

Nothing is dropped silently and nothing raises on a bad row: every row not read as a box (end before
begin, no species, a time not a number, past the end of its recording), every table not read (unknown
columns, no species column) and every name that matches no recording is a line of the
:class:`AnnotationReport`.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from birdspec.audio import AUDIO_EXTENSIONS, is_audio_file
from birdspec.data.annotation_formats import Box, Parsed, Problem, csv_rows, parse_audacity, parse_frame, parse_raven
from birdspec.errors import DataError

log = logging.getLogger(__name__)

TABLE_EXTENSIONS = (".txt", ".csv", ".tsv", ".parquet")
"""Files read as tables when a folder of tables is given."""
BIRDNET_SUFFIXES = {".BirdNET.selection.table.txt": "raven", ".BirdNET.results.txt": "birdnet",
                    ".BirdNET.results.csv": "csv", ".BirdNET.results.kaleidoscope.csv": "csv",
                    ".BirdNET.results.parquet": "csv"}
"""BirdNET-Analyzer's per-recording output names (``<stem><suffix>``) and how each reads."""
RAVEN_TABLE_NAME = re.compile(r"\.Table\.\d+\.selections\.txt$", re.IGNORECASE)
"""Raven Pro's own table names: ``<recording>.Table.1.selections.txt``."""
ANNOTATION_REPORT_FILE = "annotation_report.txt"
"""Where a command writes its :class:`AnnotationReport`."""
OUT_OF_RECORDING_TOLERANCE_S = 0.05
"""A box may end this much after its recording without a report line (rounding in the tables)."""


# --------------------------------------------------------------------------- the report


@dataclass
class AnnotationReport:
    """Every table read and every line that was not read as a box, or not matched."""

    problems: list[Problem] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    rows: int = 0
    boxes: int = 0

    def add(self, source: str, line: int | None, message: str, kind: str = "bad row") -> None:
        self.problems.append(Problem(str(source), line, message, kind))

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)

    def summary(self) -> str:
        kinds = Counter(p.kind for p in self.problems)
        tables = ", ".join(f"{n} {fmt}" for fmt, n in sorted(self.formats.items()))
        text = f"{sum(self.formats.values())} tables ({tables or 'none'}), {self.rows} rows, {self.boxes} boxes"
        if kinds:
            text += "; report lines: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return text

    def lines(self) -> list[str]:
        return [f"[{p.kind}] {p}" for p in self.problems]

    def write(self, path: str | Path) -> Path:
        from birdspec.fileio import write_text

        return write_text(path, "\n".join([f"# {self.summary()}", *self.lines()]) + "\n")


# --------------------------------------------------------------------------- finding and reading tables


def find_tables(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """``(table, root)`` for every file given and every table file under the folders given (sorted).

    Raises:
        DataError: a path does not exist, or no table was found.
    """
    from birdspec.formats import FAILED_FILE

    out: list[tuple[Path, Path]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            out.append((p, p.parent))
        elif p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                out.extend((Path(dirpath) / f, p) for f in sorted(filenames)
                           if f.lower().endswith(TABLE_EXTENSIONS) and not f.startswith(".") and f != FAILED_FILE)
        else:
            raise DataError(f"{p}: no such file or folder of annotation tables")
    if not out:
        raise DataError(f"no annotation tables (.txt, .csv, .tsv, .parquet) in {', '.join(map(str, paths))}")
    return out


def table_recording(path: str | Path) -> str:
    """The recording a table is named after: ``x.Table.1.selections.txt``, ``x.BirdSpec.labels.txt``,
    ``x.BirdNET.results.csv``, ``x.wav.txt``, ``x.txt`` -> ``x``."""
    from birdspec.formats import AUDACITY_SUFFIX, RAVEN_SUFFIX

    name = Path(path).name
    for suffix in (RAVEN_SUFFIX, AUDACITY_SUFFIX, *BIRDNET_SUFFIXES):
        if name.lower().endswith(suffix.lower()):
            return _strip_audio(name[: -len(suffix)])
    name = RAVEN_TABLE_NAME.sub("", name)
    name = re.sub(r"\.selections?\.txt$", "", name, flags=re.IGNORECASE)
    return _strip_audio(re.sub(r"\.(txt|csv|tsv|parquet)$", "", name, flags=re.IGNORECASE))


def _strip_audio(name: str) -> str:
    for ext in AUDIO_EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_AUDACITY_LINE = re.compile(r"^\s*[-+]?\d[\d.,eE+-]*\t[-+]?\d[\d.,eE+-]*(\t|$)")


def sniff(path: Path, text: str) -> str:
    """The format of a table from its name and first line: ``raven``, ``labels``, ``birdspec`` and ``birdnet``
    (Audacity flavours), ``csv``, ``tsv`` or ``unknown``."""
    from birdspec.formats import AUDACITY_SUFFIX

    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    name = path.name.lower()
    if "\t" in first and "begin time (s)" in first.lower():
        return "raven"
    if _AUDACITY_LINE.match(first) or first.startswith("\\\t"):
        if name.endswith(AUDACITY_SUFFIX.lower()):
            return "birdspec"
        labels = [ln.split("\t") for ln in lines if not ln.startswith("\\")]
        fourth = [f[3] for f in labels if len(f) == 4]
        if name.endswith(".birdnet.results.txt") or (fourth and len(fourth) == len(labels)
                                                      and all(re.fullmatch(r"[\d.]+", v.strip()) for v in fourth)):
            return "birdnet"
        return "labels"
    if first.count("\t") > first.count(","):
        return "tsv"
    return "csv" if "," in first else "unknown"


def read_table(path: str | Path, *, species_column: str | None = None) -> Parsed:
    """The boxes of one table, with a problem per row (or for the table) that could not be read."""
    path = Path(path)
    recording = table_recording(path)
    if path.suffix.lower() == ".parquet":
        parsed = Parsed(str(path), "parquet")
        try:
            import pandas as pd

            df = pd.read_parquet(path).astype(object)
        except (ImportError, OSError, ValueError) as exc:
            parsed.problem(None, f"cannot read Parquet ({exc}); pip install pyarrow, or give the CSV", kind="table")
            return parsed
        parse_frame(parsed, df, recording=recording, species_column=species_column)
        return parsed
    try:
        text = _read_text(path)
    except OSError as exc:
        parsed = Parsed(str(path), "unreadable")
        parsed.problem(None, f"cannot read ({exc.strerror or exc})", kind="table")
        return parsed
    fmt = sniff(path, text)
    parsed = Parsed(str(path), fmt)
    if not text.strip():
        parsed.problem(None, "empty table: no boxes", kind="note")
    elif fmt == "raven":
        parse_raven(parsed, csv_rows(text, delimiter="\t"), recording=recording, species_column=species_column)
    elif fmt in ("labels", "birdspec", "birdnet"):
        parsed.format = "audacity" if fmt == "labels" else f"{fmt} audacity"
        parse_audacity(parsed, list(enumerate(text.splitlines(), start=1)), recording=recording, flavour=fmt)
    elif fmt in ("csv", "tsv"):
        _parse_delimited(parsed, text, "\t" if fmt == "tsv" else ",", recording, species_column)
    else:
        parsed.problem(None, "cannot tell the format (not a Raven table, an Audacity label track or a CSV with "
                             "start, end and species columns)", kind="table")
    return parsed


def _parse_delimited(parsed: Parsed, text: str, delimiter: str, recording: str, species_column: str | None) -> None:
    import pandas as pd

    rows = csv_rows(text, delimiter=delimiter)
    header, body = rows[0][1], [r for r in rows[1:] if any(c.strip() for c in r[1])]
    width = len(header)
    for line, cells in body:
        if len(cells) != width:
            parsed.rows += 1
            parsed.problem(line, f"{len(cells)} fields where the header has {width}")
    good = [(line, cells) for line, cells in body if len(cells) == width]
    df = pd.DataFrame([c for _, c in good], columns=[h.strip() for h in header], dtype=object)
    lines = [line for line, _ in good]
    before = len(parsed.problems), len(parsed.boxes)
    parse_frame(parsed, df, recording=recording, species_column=species_column, first_line=0)
    # parse_frame numbers rows from first_line; put the physical line numbers back
    for i in range(before[0], len(parsed.problems)):
        p = parsed.problems[i]
        if p.line is not None and p.line < len(lines):
            parsed.problems[i] = Problem(p.source, lines[p.line], p.message, p.kind)
    for i in range(before[1], len(parsed.boxes)):
        b = parsed.boxes[i]
        parsed.boxes[i] = Box(b.recording, b.start_s, b.end_s, b.low_hz, b.high_hz, b.label, b.confidence, b.source,
                              lines[b.line], b.names)


@dataclass
class TableSet:
    """Boxes of many tables with the folder each table was found in (for matching) and the report.

    ``empty``: the recordings (:func:`recording_key`) of tables read whole that hold no box: annotated, with
    nothing in them.
    """

    boxes: list[Box]
    roots: dict[str, Path]
    report: AnnotationReport
    tables: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


def read_tables(paths: Iterable[str | Path], *, species_column: str | None = None,
                report: AnnotationReport | None = None) -> TableSet:
    """Every table of :func:`find_tables` read with :func:`read_table`, their problems in one report."""
    report = report if report is not None else AnnotationReport()
    out = TableSet([], {}, report)
    for table, root in find_tables(paths):
        parsed = read_table(table, species_column=species_column)
        report.formats[parsed.format] += 1
        report.rows += parsed.rows
        report.problems.extend(parsed.problems)
        out.boxes.extend(parsed.boxes)
        out.roots[str(table)] = root
        out.tables.append(str(table))
        if not parsed.boxes and not any(p.kind in ("table", "bad row") for p in parsed.problems):
            out.empty.append(recording_key(table_recording(table)))
    report.boxes += len(out.boxes)
    log.info("tables: %s", report.summary())
    return out


# --------------------------------------------------------------------------- recordings and matching


@dataclass(frozen=True)
class AudioFile:
    """An audio file annotations may describe."""

    path: str
    name: str  # POSIX path relative to the folder it was found in
    duration_s: float | None

    @property
    def key(self) -> str:
        return recording_key(self.name)


def recording_key(name: str) -> str:
    """The matching key of a recording name: its file name without audio extension, case-folded."""
    return _strip_audio(PurePosixPath(str(name).replace("\\", "/")).name).casefold()


def find_recordings(source: str | Path, report: AnnotationReport | None = None) -> list[AudioFile]:
    """Every audio file under ``source`` (or ``source`` itself) with its duration from the file header.

    Raises:
        DataError: ``source`` does not exist or holds no audio file.
    """
    from birdspec.audio import info
    from birdspec.errors import AudioError

    src = Path(source)
    if src.is_file():
        files, root = [src], src.parent
    elif src.is_dir():
        root = src
        files = sorted(Path(d) / f for d, dirs, fs in os.walk(src, followlinks=True)
                       for f in fs if is_audio_file(f) and not f.startswith("."))
    else:
        raise DataError(f"{src}: no such recording or folder of recordings")
    if not files:
        raise DataError(f"{src}: no audio files (wav, flac, ogg, mp3, ...)")
    out = []
    for f in files:
        try:
            duration: float | None = info(f).duration_s or None
        except AudioError as exc:
            duration = None
            if report is not None:
                report.add(str(f), None, f"cannot read the header ({exc}): times are not checked", kind="recording")
        out.append(AudioFile(os.path.abspath(f), f.relative_to(root).as_posix(), duration))
    return out


def match_recordings(tables: TableSet, recordings: Sequence[AudioFile]) -> dict[str, list[Box]]:
    """The boxes of every recording (by its path), each checked against the recording's duration.

    A box names its recording by file name (without extension, any case); where several recordings share the
    name, the one in the table's folder (or the same sub-folder under the tables' root) is meant. Names that
    match no recording, or several, and recordings without any table are report lines.
    """
    by_key: dict[str, list[AudioFile]] = {}
    for audio_file in recordings:
        by_key.setdefault(audio_file.key, []).append(audio_file)
    out: dict[str, list[Box]] = {}
    unmatched: dict[tuple[str, str], int] = {}
    for box in tables.boxes:
        rec = _pick(by_key.get(recording_key(box.recording), []), box, tables.roots.get(box.source))
        if rec is None:
            unmatched[(box.source, box.recording)] = unmatched.get((box.source, box.recording), 0) + 1
            continue
        checked = _within(box, rec, tables.report)
        if checked is not None:
            out.setdefault(rec.path, []).append(checked)
    for (source, name), n in sorted(unmatched.items()):
        found = by_key.get(recording_key(name), [])
        why = (f"matches {len(found)} recordings ({', '.join(r.name for r in found[:3])}); keep each table beside its "
               "recording" if found else "matches no recording")
        tables.report.add(source, None, f"{n} box(es) of recording {name!r}: {why}", kind="unmatched")
    for rec in recordings:
        if rec.path not in out:
            tables.report.add(rec.path, None, "no annotation table names this recording: left out", kind="recording")
    return out


def _pick(candidates: list[AudioFile], box: Box, root: Path | None) -> AudioFile | None:
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    folder = Path(box.source).parent.resolve()
    same = [r for r in candidates if Path(r.path).parent.resolve() == folder]
    if len(same) != 1 and root is not None:
        try:
            rel = folder.relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = None
        if rel is not None:
            same = [r for r in candidates if PurePosixPath(r.name).parent.as_posix() == rel]
    if len(same) != 1 and "/" in box.recording.replace("\\", "/"):
        tail = box.recording.replace("\\", "/")
        same = [r for r in candidates if tail.endswith(r.name) or r.path.endswith(tail)]
    return same[0] if len(same) == 1 else None


def _within(box: Box, rec: AudioFile, report: AnnotationReport) -> Box | None:
    """``box`` cut to its recording's duration (a report line when it reaches past it), None when it starts after."""
    d = rec.duration_s
    if d is None or box.end_s <= d + OUT_OF_RECORDING_TOLERANCE_S:
        return box
    if box.start_s >= d:
        report.add(box.source, box.line, f"begins at {box.start_s:g} s, after the end of {rec.name} ({d:g} s): "
                                         "left out")
        return None
    report.add(box.source, box.line, f"ends at {box.end_s:g} s, after the end of {rec.name} ({d:g} s): cut there",
               kind="note")
    return Box(box.recording, box.start_s, d, box.low_hz, box.high_hz, box.label, box.confidence, box.source,
               box.line, box.names)
