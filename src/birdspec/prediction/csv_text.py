"""CSV text of prediction tables, column by column: the bytes of ``DataFrame.to_csv``, many times faster.

``DataFrame.to_csv(float_format=...)`` formats every float through a Python lambda and an
``isna`` check per value (~10 us each): a 397-class score matrix (``--scores all``), or the long
table of every score (``--top-k 0 --min-conf 0``), spent most of ``birdspec predict``'s time
writing (6.4 s for 4 h of 5 s windows, against ~25 s of scoring). Here each column is formatted
at once: numbers with one ``%`` over the whole column (C speed), strings quoted once per distinct
value (through :mod:`csv`, so quoting is the csv module's, as in pandas), missing values as
``na_rep``; rows are then joined. Output is byte-identical to ``to_csv(index=False, header=...,
lineterminator=..., float_format=...)`` with the default quoting; tables with other column types
(categoricals, dates, ...) are written by pandas itself.
"""

from __future__ import annotations

import csv
import io
from typing import IO, cast

import numpy as np
import pandas as pd


def _quote_all(values: list[str], sep: str, lineterminator: str) -> list[str]:
    """Each value as the csv module writes it in a field of a row (QUOTE_MINIMAL; the line terminator's
    characters are among those that get a field quoted, so it is the writer's)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator=lineterminator)
    cut = len(sep) + 1 + len(lineterminator)
    out = []
    for v in values:  # a second field, so an empty value is not written as '""' (a lone empty field is)
        buf.seek(0)
        buf.truncate()
        w.writerow([v, "x"])
        out.append(buf.getvalue()[:-cut])
    return out


def _numbers(values: np.ndarray, fmt: str) -> list[str]:
    """``fmt % v`` for every value (one string format over the column, then split)."""
    if values.size == 0:
        return []
    return ("\x00".join([fmt] * values.size) % tuple(values.tolist())).split("\x00")


def _column(series: pd.Series, *, float_format: str | None, na_rep: str, sep: str, lineterminator: str) -> list[str] | None:
    """The formatted field of every row, or None when this column needs pandas."""
    values = series.to_numpy()
    kind = series.dtype.kind
    if isinstance(series.dtype, np.dtype) and kind in "iu":
        return _numbers(values, "%d")
    if isinstance(series.dtype, np.dtype) and kind == "f":
        if float_format is None:
            return None  # pandas' repr-based float formatting
        out = _numbers(np.where(np.isnan(values), 0.0, values), float_format)
        for i in np.flatnonzero(np.isnan(values)):
            out[i] = na_rep
        return out
    if isinstance(series.dtype, np.dtype) and kind == "b":
        return ["True" if v else "False" for v in values]
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        if not all(type(u) is str for u in uniques):
            return None
        quoted = np.asarray(_quote_all(list(uniques), sep, lineterminator) + [na_rep], dtype=object)
        return cast("list[str]", quoted[codes].tolist())  # code -1 (missing) -> na_rep, the last entry
    return None


def write_csv_text(
    fh: IO[str],
    table: pd.DataFrame,
    *,
    header: bool,
    float_format: str | None = None,
    lineterminator: str = "\n",
    sep: str = ",",
    na_rep: str = "",
) -> None:
    """Write ``table`` as ``table.to_csv(fh, index=False, header=header, ...)`` would, byte for byte."""
    columns = []
    for name in table.columns:
        col = (_column(table[name], float_format=float_format, na_rep=na_rep, sep=sep, lineterminator=lineterminator)
               if table.columns.is_unique else None)
        if col is None:
            table.to_csv(fh, index=False, header=header, lineterminator=lineterminator, float_format=float_format,
                         sep=sep, na_rep=na_rep)
            return
        columns.append(col)
    if len(columns) == 1:  # the csv module quotes a row that is one empty field ('""')
        columns[0] = ['""' if v == "" else v for v in columns[0]]
    if header:
        table.iloc[:0].to_csv(fh, index=False, header=True, lineterminator=lineterminator, sep=sep)
    if len(table) and columns:
        fh.write(lineterminator.join(map(sep.join, zip(*columns, strict=True))) + lineterminator)
    elif len(table):  # rows without columns: pandas writes an empty line per row
        fh.write(lineterminator * len(table))
