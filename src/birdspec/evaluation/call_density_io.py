"""``birdspec call-density``'s files: an archive's scores for one species, the windows to verify, the verdicts, the report.

- :func:`read_scores`: one species' score per window from ``birdspec predict`` output: ``--scores all``
  (one column per class) or the long table when it holds every window's score for the species
  (``--top-k 0 --min-conf 0``); CSV or Parquet, a file or an archive run folder (its merged
  ``predictions.csv`` / ``predictions.parquet``);
- :func:`window_groups`: each window's group: ``deployment`` (the top folder of the recording under the
  folder all recordings share), ``day`` (from a ``datetime`` column, the recording's start, or the date and
  time in the recording's name, e.g. AudioMoth's and Song Meter's ``20240501_053000``, plus the window's
  start) or any column of the table;
- :func:`sample_table`: the windows to verify (:data:`SAMPLE_COLUMNS`): a detection table, so the Review app
  (``birdspec serve``) opens it too and keeps its verdicts in ``<name>.verdicts.csv``;
- :func:`read_density_verdicts`: verdicts from the filled-in sample (``verdict``: yes / no / unsure, empty when not
  verified), from Review's verdict store (``correct`` is yes; ``wrong`` and ``other`` species are no) or from a
  ``birdspec search`` table with a ``verdict`` column added (its ``recording`` is the file);
- :func:`estimate_call_density`: both together (:mod:`birdspec.evaluation.call_density`); the report:
  :mod:`birdspec.evaluation.call_density_report`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, DataError
from birdspec.evaluation import call_density as cd
from birdspec.formats import REVIEW_VERDICTS, SINGLE_FILE_NAMES

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = ("file", "start_s", "end_s", "label", "confidence", "bin", "verdict")
"""The windows to verify: ``confidence`` is the species' score, ``label`` the species (Review's detection columns)."""
YES = frozenset({"yes", "y", "1", "true", "call", "present", "positive", REVIEW_VERDICTS[0]})
NO = frozenset({"no", "n", "0", "false", "absent", "negative", *REVIEW_VERDICTS[1:]})
UNSURE = frozenset({"unsure", "u", "?", "maybe", "unknown", "uncertain"})
GROUPINGS = ("none", "deployment", "day")
DATETIME_COLUMN = "datetime"
_WINDOW_COLUMNS = ("file", "start_s", "end_s")
_NAME_TIME = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(\d\d)-?(\d\d)(?:[T_ -]?(\d\d)[-:]?(\d\d)[-:]?(\d\d))?(?!\d)")


def scores_path(path: str | Path) -> Path:
    """``path``, or the merged table in an archive run folder.

    Raises:
        DataError: no such file, or a folder without ``predictions.csv`` / ``predictions.parquet``.
    """
    p = Path(path)
    if p.is_dir():
        for name in (SINGLE_FILE_NAMES["parquet"], SINGLE_FILE_NAMES["csv"]):
            if (p / name).is_file():
                return p / name
        raise DataError(f"{p}: no {SINGLE_FILE_NAMES['csv']} or {SINGLE_FILE_NAMES['parquet']} in this folder; run "
                        "`birdspec predict CKPT ARCHIVE/ --out FOLDER/ --scores all` to the end (its merge writes it)")
    if not p.is_file():
        raise DataError(f"{p}: no such file; give the output of `birdspec predict ... --scores all`")
    return p


def _columns(path: Path) -> list[str]:
    try:
        if path.suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'birdspec[parquet]'") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read this table ({exc})") from exc


def _read(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        if path.suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path, columns=list(columns))
        else:
            df = pd.read_csv(path, usecols=list(columns), dtype={"file": str, "label": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read this table ({exc})") from exc
    df["file"] = df["file"].astype(str)
    return df


def species_column(species: str, classes: Sequence[str], *, where: str) -> str:
    """The class among ``classes`` that ``species`` names (exactly, else ignoring case).

    Raises:
        DataError: none (the message lists the classes).
    """
    if species in classes:
        return species
    folded = [c for c in classes if c.casefold() == species.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(list(classes)[:30]) + (" ..." if len(classes) > 30 else "")
    raise DataError(f"{where}: no scores for species {species!r}; --species must be one of its classes: {shown}")


def read_scores(path: str | Path, species: str, *, extra: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """``(windows, species)``: one row per window (``file, start_s, end_s, score`` and the ``extra`` columns
    that exist), and the class name ``species`` resolved to.

    Raises:
        DataError: not a prediction table, no such species, or a long table without every window's score.
    """
    p = scores_path(path)
    cols = _columns(p)
    if not set(_WINDOW_COLUMNS) <= set(cols):
        raise DataError(f"{p}: not a birdspec prediction table (it needs {', '.join(_WINDOW_COLUMNS)}); "
                        "give the output of `birdspec predict ... --scores all`")
    more = [c for c in extra if c in cols and c not in _WINDOW_COLUMNS]
    if {"label", "confidence"} <= set(cols):  # the long (top-k) table
        df = _read(p, [*_WINDOW_COLUMNS, "label", "confidence", *more, *(["window"] if "window" in cols else [])])
        labels = sorted(df["label"].astype(str).unique().tolist())
        name = species_column(species, labels, where=str(p))
        n_windows = len(df.drop_duplicates(["file", "start_s"]))
        if "window" in cols:  # windows where no class was kept are not in the table at all
            n_windows = max(n_windows, int((df.groupby("file")["window"].max() + 1).sum()))
        df = df[df["label"] == name].drop(columns=["label", "window"], errors="ignore").rename(columns={"confidence": "score"})
        if len(df) < n_windows:
            raise DataError(f"{p}: {species} has a score in {len(df)} of {n_windows} windows only (the table keeps the top "
                            "classes); call density needs every window's: predict with --scores all (or --top-k 0 --min-conf 0)")
    else:
        skip = {"window", "context_start_s", "context_end_s", DATETIME_COLUMN, *_WINDOW_COLUMNS, *more}
        name = species_column(species, [c for c in cols if c not in skip], where=str(p))
        df = _read(p, [*_WINDOW_COLUMNS, name, *more]).rename(columns={name: "score"})
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    df = df.reset_index(drop=True)
    df["key"] = window_keys(df["file"], df["start_s"])
    if df["key"].duplicated().any():
        raise DataError(f"{p}: {int(df['key'].duplicated().sum())} windows appear twice (same file and start_s); "
                        "give one prediction table, not several concatenated")
    return df, name


def window_keys(files: pd.Series, starts_s: pd.Series) -> list[str]:
    """``file|start`` (start to the millisecond): how a verdict finds its window."""
    return [f"{f}|{float(s):.3f}" for f, s in zip(files, starts_s, strict=True)]


def deployments(files: Sequence[str]) -> np.ndarray:
    """Each recording's top folder under the folder every recording shares (that folder's own name for the
    recordings directly in it)."""
    parents = [os.path.dirname(os.path.normpath(f)) for f in files]
    unique = sorted(set(parents))
    try:
        root = os.path.commonpath(unique) if unique else ""
    except ValueError:  # absolute and relative paths mixed
        root = ""
    top: dict[str, str] = {}
    for d in unique:
        rel = os.path.relpath(d, root) if root else (d or ".")
        top[d] = (os.path.basename(d) or d or ".") if rel == "." else rel.split(os.sep)[0]
    return np.asarray([top[d] for d in parents], dtype=object)


def _name_start(file: str) -> _dt.datetime | _dt.date | None:
    m = _NAME_TIME.search(Path(file).stem)
    if m is None:
        return None
    y, mo, d, hh, mm, ss = m.groups()
    try:
        if hh is None:
            return _dt.date(int(y), int(mo), int(d))
        return _dt.datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss))
    except ValueError:
        return None


def days(files: pd.Series, starts_s: pd.Series, starts: pd.Series | None = None) -> np.ndarray:
    """Each window's day (``YYYY-MM-DD``): the recording's start (``starts``, else from its name) plus the window's.

    Raises:
        DataError: a recording whose start is unknown.
    """
    start: list[_dt.datetime | _dt.date | None]
    if starts is not None:
        when = pd.to_datetime(starts, errors="coerce")
        bad = files[when.isna()]
        start = [t.to_pydatetime() if not pd.isna(t) else None for t in when]
    else:
        parsed = {f: _name_start(f) for f in files.unique()}
        start = [parsed[f] for f in files]
        bad = pd.Series([f for f, t in parsed.items() if t is None], dtype=object)
    if len(bad):
        raise DataError(f"--group-by day: {bad.nunique()} recordings have no start date (e.g. {bad.iloc[0]}); it is read "
                        f"from a '{DATETIME_COLUMN}' column or from names with the date (20240501_053000.wav, as AudioMoth "
                        "and Song Meter name files); rename them, add the column, or group by deployment")
    out = [(t + _dt.timedelta(seconds=float(s))).date() if isinstance(t, _dt.datetime) else t
           for t, s in zip(start, starts_s, strict=True)]
    return np.asarray([str(d) for d in out], dtype=object)


def window_groups(windows: pd.DataFrame, group_by: str) -> np.ndarray | None:
    """``(n,)`` the group of every window (None for ``none``; see the module doc).

    Raises:
        ConfigError: a grouping that is neither built in nor a column of the table.
    """
    if group_by == "none":
        return None
    if group_by == "deployment":
        return deployments(windows["file"].tolist())
    if group_by == "day":
        return days(windows["file"], windows["start_s"], windows[DATETIME_COLUMN] if DATETIME_COLUMN in windows else None)
    if group_by in windows.columns:
        return windows[group_by].astype(str).to_numpy(dtype=object)
    raise ConfigError(f"--group-by {group_by!r}: use one of {', '.join(GROUPINGS)} or a column of the scores table")


def binned(windows: pd.DataFrame, *, quantiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, bins)``: the score bins' edges ``(n_bins + 1,)`` and each window's bin ``(n,)``."""
    edges = cd.bin_edges(windows["score"].to_numpy(dtype=np.float64), quantiles=quantiles)
    return edges, cd.assign_bins(windows["score"].to_numpy(dtype=np.float64), edges)


def sample_table(windows: pd.DataFrame, species: str, *, quantiles: Sequence[float], per_bin: int, seed: int,
                 groups: np.ndarray | None = None) -> pd.DataFrame:
    """The windows to verify (:data:`SAMPLE_COLUMNS`, by file and time): ``per_bin`` drawn at random from each bin,
    or from each bin of each group (``groups`` ``(n,)``; then a ``group`` column too)."""
    edges, bins = binned(windows, quantiles=quantiles)
    idx = cd.stratified_sample(bins, n_bins=len(edges) - 1, per_bin=per_bin, seed=seed, groups=groups)
    out = windows.iloc[idx][["file", "start_s", "end_s"]].assign(label=species, confidence=windows["score"].to_numpy()[idx],
                                                                  bin=bins[idx], verdict="")
    out = out[list(SAMPLE_COLUMNS)].reset_index(drop=True)
    if groups is not None:
        out.insert(len(SAMPLE_COLUMNS) - 1, "group", groups[idx])
    return out


def _verdict_of(value: object) -> str | None:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip().casefold()
    if not text:
        return None
    return "yes" if text in YES else "no" if text in NO else "unsure" if text in UNSURE else "?" + text


def read_density_verdicts(paths: Sequence[str | Path], species: str) -> tuple[pd.DataFrame, int]:
    """``(verdicts, unsure)``: one row per verified window (``key``, ``called`` bool, ``bin`` when the file has
    it) and how many were unsure (dropped). Rows of another ``label`` are left out.

    Raises:
        DataError: an unreadable file, no ``verdict`` column, a value that is no verdict, or two different
            verdicts for one window.
    """
    frames = []
    for path in paths:
        try:
            df = pd.read_csv(path, dtype={"file": str, "recording": str, "label": str, "verdict": str})
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: cannot read the verdicts ({exc})") from exc
        if "file" not in df.columns and "recording" in df.columns:  # a `birdspec search` table with verdicts added
            df = df.rename(columns={"recording": "file"})
        if not {"file", "start_s", "verdict"} <= set(df.columns):
            raise DataError(f"{path}: a verdicts table needs file, start_s and verdict columns (the CSV "
                            "`birdspec call-density sample` wrote, filled in, or the Review app's .verdicts.csv)")
        if "label" in df.columns:
            df = df[df["label"].astype(str) == species]
        v = df["verdict"].map(_verdict_of)
        odd = sorted({str(x)[1:] for x in v.dropna() if str(x).startswith("?")})
        if odd:
            raise DataError(f"{path}: verdicts {', '.join(odd[:5])} are not yes, no or unsure; "
                            "write yes, no or unsure (or leave the cell empty for a window not verified)")
        cols: dict[str, object] = {"key": window_keys(df["file"].astype(str), df["start_s"]), "verdict": v.to_numpy()}
        if "bin" in df.columns:
            cols["bin"] = pd.to_numeric(df["bin"], errors="coerce").to_numpy()
        if "group" in df.columns:
            cols["group"] = df["group"].astype(str).to_numpy()
        frames.append(pd.DataFrame(cols).dropna(subset=["verdict"]))
    allv = pd.concat(frames, ignore_index=True).drop_duplicates(["key", "verdict"])
    twice = allv["key"][allv["key"].duplicated()]
    if len(twice):
        raise DataError(f"{twice.nunique()} windows have two different verdicts (e.g. {twice.iloc[0]}); keep one")
    unsure = int((allv["verdict"] == "unsure").sum())
    allv = allv[allv["verdict"] != "unsure"].assign(called=lambda d: d["verdict"] == "yes").drop(columns="verdict")
    if allv.empty:
        raise DataError(f"no yes/no verdict for {species} in {', '.join(map(str, paths))}; fill in the verdict column "
                        "of the windows `birdspec call-density sample` wrote (yes, no or unsure), or verify them in Review")
    return allv.reset_index(drop=True), unsure


@dataclass(frozen=True)
class CallDensityResult:
    """An estimate over an archive: ``estimates`` (all windows first, then each group), the bins' score ``edges``
    and the verdicts used (``n_verified`` yes/no, ``n_unsure`` dropped)."""

    species: str
    group_by: str
    edges: tuple[float, ...]
    estimates: tuple[cd.DensityEstimate, ...]
    n_verified: int
    n_unsure: int
    prior: tuple[float, float]
    own_min: int | None


def _match(windows: pd.DataFrame, verdicts: pd.DataFrame, bins: np.ndarray, groups: np.ndarray | None,
           own_min: int | None) -> np.ndarray:
    """The row of ``windows`` of each verdict (its bin and group checked against the ones the sample wrote)."""
    row = pd.Series(np.arange(len(windows)), index=windows["key"].to_numpy())
    found = verdicts["key"].isin(row.index)
    if not found.all():
        missing = verdicts["key"][~found]
        raise DataError(f"{len(missing)} verified windows are not in the scores table (e.g. {missing.iloc[0]}); give the "
                        "scores the windows were sampled from")
    idx = row.loc[verdicts["key"]].to_numpy()
    if "bin" in verdicts.columns:
        told = verdicts["bin"].to_numpy(dtype=np.float64)
        off = ~np.isnan(told) & (told != bins[idx])
        if off.any():
            raise DataError(f"{int(off.sum())} verified windows were sampled into other score bins than these scores and "
                            "bins give; pass the same --bins/--quantiles (and scores) as to `birdspec call-density sample`")
    if "group" in verdicts.columns:  # sampled per group: only the groups' own verdicts are a uniform sample of them
        if groups is None or own_min is None or np.any(verdicts["group"].to_numpy() != groups[idx].astype(str)):
            raise ConfigError("these windows were drawn per group (`call-density sample --group-by`): estimate with the "
                              "same --group-by and --own-verdicts N (pooled verdicts from them would weigh the groups wrongly)")
    return idx


def estimate_call_density(scores: str | Path, verdict_files: Sequence[str | Path], *, species: str, group_by: str = "none",
                          quantiles: Sequence[float] = cd.geometric_quantiles(), own_min: int | None = None,
                          prior: tuple[float, float] = cd.DEFAULT_PRIOR, level: float = cd.DEFAULT_LEVEL,
                          draws: int = cd.DEFAULT_POSTERIOR_DRAWS, seed: int = 0) -> CallDensityResult:
    """The call density of ``species`` in the windows of ``scores``, overall and per group, from the verdicts.

    Raises:
        DataError: see :func:`read_scores`, :func:`read_density_verdicts`; a bin without verdicts.
        ConfigError: a grouping, prior or level out of range.
    """
    windows, name = read_scores(scores, species, extra=(DATETIME_COLUMN, group_by))
    groups = window_groups(windows, group_by)
    edges, bins = binned(windows, quantiles=quantiles)
    verdicts, unsure = read_density_verdicts(verdict_files, name)
    idx = _match(windows, verdicts, bins, groups, own_min)
    called = verdicts["called"].to_numpy(dtype=bool)
    estimates = cd.estimate_groups(bins, groups, bins[idx], None if groups is None else groups[idx], called,
                                   n_bins=len(edges) - 1, own_min=own_min, prior=prior, level=level, draws=draws, seed=seed,
                                   edges=edges)
    short = [e.group for e in estimates[1:] if e.verdicts == cd.VERDICTS_POOLED]
    if short and "group" in verdicts.columns:
        log.warning("%d groups (%s) have fewer than --own-verdicts %d verdicts in some bin and use the pooled ones, which a "
                    "sample drawn per group weighs wrongly: verify the rest of their windows", len(short),
                    ", ".join(short[:5]), own_min)
    log.debug("%s: %d windows, %d verdicts (%d unsure dropped); density %.4f (%.4f to %.4f)", name, len(windows), len(idx),
              unsure, estimates[0].density_mean, estimates[0].density_low, estimates[0].density_high)
    return CallDensityResult(species=name, group_by=group_by, edges=tuple(float(e) for e in edges), estimates=tuple(estimates),
                             n_verified=len(idx), n_unsure=unsure, prior=prior, own_min=own_min)
