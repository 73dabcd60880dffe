"""A self-contained HTML report from sections (title, text, table, figures).

Figures are embedded as base64 PNG ``<img>`` tags, so the one ``.html`` file
opens in any browser, offline, and can be mailed around. Reusable by any
command (``compare``, ``demo``)::

    from birdspec.evaluation.report import Section, write_report
    write_report("out/report.html", [
        Section("Summary", text="Two models on six species.", table=df),
        Section("Curves", figures=["out/curves.png"], captions=["Validation accuracy per epoch"]),
    ], title="birdspec comparison")

Also :func:`markdown_table` for ``.md`` summaries.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from birdspec import __version__
from birdspec.errors import DataError
from birdspec.fileio import write_text

log = logging.getLogger(__name__)

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .15em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f3f6fa; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
.meta { color: #666; font-size: .85em; }
nav ul { columns: 2; }
"""


@dataclass(frozen=True)
class Section:
    """One report section.

    Attributes:
        title: the section heading.
        text: plain text; blank lines separate paragraphs (HTML-escaped).
        table: a DataFrame or a list of row dicts (floats shown with 4 significant digits).
        figures: PNG paths (or raw PNG bytes) embedded as base64 images.
        captions: one caption per figure (optional).
        html: trusted extra HTML appended as is (e.g. a ``<details>`` block).
        level: heading level (2 = section, 3 = sub-section).
    """

    title: str
    text: str = ""
    table: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None
    figures: Sequence[str | Path | bytes] = ()
    captions: Sequence[str] = ()
    html: str = ""
    level: int = 2


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _frame(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))


def html_table(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> str:
    """An escaped HTML ``<table>`` of a frame or row dicts."""
    df = _frame(table)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(table: pd.DataFrame | Sequence[Mapping[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    df = _frame(table)
    cols = [str(c) for c in df.columns]

    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def embed_png(figure: str | Path | bytes) -> str:
    """A ``data:image/png;base64,...`` URI of a PNG file or PNG bytes.

    Raises:
        DataError: when the file is missing.
    """
    if isinstance(figure, bytes):
        data = figure
    else:
        path = Path(figure)
        if not path.is_file():
            raise DataError(f"{path}: figure not found; run the command that writes it first")
        data = path.read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _slug(text: str, used: set[str]) -> str:
    base = "".join(ch.lower() if ch.isalnum() else "-" for ch in text).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def render_report(sections: Sequence[Section], *, title: str, subtitle: str = "", toc: bool = True) -> str:
    """The HTML text of a report (one self-contained document)."""
    used: set[str] = set()
    slugs = [_slug(s.title, used) for s in sections]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f"<p>{html.escape(subtitle)}</p>")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f'<p class="meta">Generated by birdspec {html.escape(__version__)} on {stamp}.</p>')
    if toc and len(sections) > 2:
        items = "".join(
            f'<li><a href="#{slug}">{html.escape(s.title)}</a></li>' for s, slug in zip(sections, slugs, strict=True) if s.level <= 2
        )
        parts.append(f"<nav><ul>{items}</ul></nav>")
    for sec, slug in zip(sections, slugs, strict=True):
        lvl = min(max(int(sec.level), 2), 4)
        parts.append(f'<section id="{slug}"><h{lvl}>{html.escape(sec.title)}</h{lvl}>')
        for para in [p.strip() for p in sec.text.split("\n\n") if p.strip()]:
            parts.append(f"<p>{html.escape(para)}</p>")
        if sec.table is not None and len(_frame(sec.table)):
            parts.append(html_table(sec.table))
        for i, fig in enumerate(sec.figures):
            cap = sec.captions[i] if i < len(sec.captions) else ""
            alt = html.escape(cap or (Path(fig).stem if not isinstance(fig, bytes) else sec.title))
            parts.append(f'<figure><img alt="{alt}" src="{embed_png(fig)}">')
            if cap:
                parts.append(f"<figcaption>{html.escape(cap)}</figcaption>")
            parts.append("</figure>")
        if sec.html:
            parts.append(sec.html)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    out_path: str | Path,
    sections: Sequence[Section],
    *,
    title: str,
    subtitle: str = "",
    toc: bool = True,
) -> Path:
    """Write :func:`render_report` to ``out_path`` (atomically) and return the path."""
    out = write_text(out_path, render_report(sections, title=title, subtitle=subtitle, toc=toc))
    log.info("wrote %s", out)
    return out
