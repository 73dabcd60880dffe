"""Choosing species: by name (code, scientific or common) or the top N by count.

Names are matched case-insensitively, ignoring surrounding whitespace,
underscores, hyphens and apostrophes (``"marsh_warbler"``, ``"Marsh Warbler"``
and ``"MARSH-WARBLER"`` are the same). For folder and CSV sources without
scientific/common name columns the only names are the labels themselves.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

import pandas as pd

from birdspec.errors import ConfigError, DataError
from birdspec.names import normalize_name

log = logging.getLogger(__name__)

MAX_SUGGESTIONS = 5


def split_names(species: str | Sequence[str]) -> list[str]:
    """Split a comma-separated species argument; a sequence may hold such strings too.

    >>> split_names("grrwar1, Acrocephalus palustris,,")
    ['grrwar1', 'Acrocephalus palustris']
    """
    items = [species] if isinstance(species, str) else list(species)
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def species_table(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per label: ``label``, ``scientific_name``, ``common_name``, ``count``.

    Names are the first non-empty value seen for the label (``""`` if none);
    rows are sorted by label.
    """
    if catalog.empty:
        return pd.DataFrame(columns=["label", "scientific_name", "common_name", "count"])

    def first(values: pd.Series) -> str:
        nonempty = [v for v in values if isinstance(v, str) and v]
        return nonempty[0] if nonempty else ""

    grouped = catalog.groupby("label", sort=True)
    table = pd.DataFrame(
        {
            "scientific_name": grouped["scientific_name"].agg(first),
            "common_name": grouped["common_name"].agg(first),
            "count": grouped.size(),
        }
    )
    return table.reset_index()[["label", "scientific_name", "common_name", "count"]]


NAME_COLUMNS = ("label", "scientific_name", "common_name")
"""The columns of a species table that name a species (code, scientific, common)."""


def name_index(table: pd.DataFrame) -> dict[str, set[str]]:
    """Every name of a :func:`species_table` (code, scientific, common; :func:`normalize_name` keys) -> the labels it names."""
    index: dict[str, set[str]] = {}
    for column in NAME_COLUMNS:
        if column not in table:
            continue
        for label, name in zip(table["label"], table[column], strict=True):
            if isinstance(name, str) and name:
                index.setdefault(normalize_name(name), set()).add(str(label))
    return index


def lookup_name(name: str, index: dict[str, set[str]]) -> str | None:
    """The one label ``name`` names in a :func:`name_index`, or None (unknown, or ambiguous)."""
    labels = index.get(normalize_name(name))
    return next(iter(labels)) if labels is not None and len(labels) == 1 else None


def _display(row: pd.Series, name: str) -> str:
    """``"Acrocephalus palustris (marwar3)"``, or just the label."""
    return name if name == row["label"] else f"{name} ({row['label']})"


def resolve_species(names: str | Sequence[str], table: pd.DataFrame) -> list[str]:
    """Labels named by ``names`` (codes, scientific or common names).

    Args:
        names: comma-separated string or sequence of names.
        table: :func:`species_table` of the catalog.

    Returns:
        The matching labels, sorted, without duplicates.

    Raises:
        ConfigError: a name matches no species (the message lists close
            matches) or several; or no name was given.
    """
    wanted = split_names(names)
    if not wanted:
        raise ConfigError("--species is empty; give eBird codes, scientific or common names, comma-separated")
    index = name_index(table)
    shown: dict[str, tuple[str, str]] = {}  # key -> (display text, label)
    for _, row in table.iterrows():
        for column in NAME_COLUMNS:
            name = row[column]
            if isinstance(name, str) and name:
                shown.setdefault(normalize_name(name), (_display(row, name if column != "label" else row["label"]), row["label"]))
    out: set[str] = set()
    for name in wanted:
        key = normalize_name(name)
        labels = index.get(key)
        if labels is None:
            raise ConfigError(_unknown_message(name, key, shown, table))
        if len(labels) > 1:
            raise ConfigError(
                f"species name {name!r} is ambiguous: it names {', '.join(sorted(labels))}; use the codes instead"
            )
        out |= labels
    return sorted(out)


def _unknown_message(name: str, key: str, shown: dict[str, tuple[str, str]], table: pd.DataFrame) -> str:
    close = difflib.get_close_matches(key, list(shown), n=MAX_SUGGESTIONS * 3, cutoff=0.6)
    suggestions: list[str] = []
    seen_labels: set[str] = set()
    for match in close:
        text, label = shown[match]
        if label in seen_labels:
            continue
        seen_labels.add(label)
        suggestions.append(text)
        if len(suggestions) == MAX_SUGGESTIONS:
            break
    if suggestions:
        return f"unknown species {name!r}; did you mean: {', '.join(suggestions)}?"
    examples = ", ".join(table["label"].astype(str).head(8))
    more = ", ..." if len(table) > 8 else ""
    return f"unknown species {name!r}; no close match among the {len(table)} species of the source ({examples}{more})"


def top_species(table: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` labels with most recordings (ties broken by label), sorted.

    Raises:
        ConfigError: ``n < 1``.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ConfigError(f"--top-n must be a positive integer, got {n}")
    if n > len(table):
        log.warning("--top-n %d but the source has only %d species; keeping all", n, len(table))
    ranked = table.sort_values(["count", "label"], ascending=[False, True], kind="mergesort")
    return sorted(ranked["label"].head(int(n)))


def select_species(
    catalog: pd.DataFrame,
    *,
    species: str | Sequence[str] | None = None,
    top_n: int | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Keep the recordings of the chosen species.

    ``species`` restricts to the named species; ``top_n`` then keeps the
    ``top_n`` of those (or of all species) with most recordings. With neither,
    every species is kept.

    Returns:
        ``(selected catalog, sorted labels)``; the catalog keeps its order and
        index is reset.

    Raises:
        ConfigError: unknown species or a bad ``top_n``.
        DataError: the catalog is empty.
    """
    if catalog.empty:
        raise DataError("the source holds no recordings")
    table = species_table(catalog)
    if species is not None:
        labels = resolve_species(species, table)
        table = table[table["label"].isin(labels)]
    if top_n is not None:
        labels = top_species(table, top_n)
    else:
        labels = sorted(table["label"])
    selected = catalog[catalog["label"].isin(labels)].reset_index(drop=True)
    log.info("selected %d species, %d recordings", len(labels), len(selected))
    return selected, labels
