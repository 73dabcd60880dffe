"""The species an "other species" verdict may name: the model's classes and the species list given to
``birdspec serve --species-list FILE``; never free text (a typo would become a new class: "Sedge" beside
"sedwar1").

A species list is a CSV with a ``label`` column (eBird code or any label; ``species``, ``code`` and
``ebird_code`` are read as the label too) and optional ``scientific_name`` and ``common_name`` columns, or a
text file with one species a line: a label, or BirdNET's ``Scientific name_Common name`` (the scientific
name is then the label). A name is matched as ``birdspec prepare --species`` matches names
(:func:`birdspec.data.species.resolve_species`: code, scientific or common name, any case), and an unknown
one is refused with the closest names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "species", "code", "ebird_code", "species_code")


def read_species_list(path: str | Path) -> list[dict[str, str]]:
    """The species of a list file (see the module doc), in file order, each once.

    Raises:
        DataError: an unreadable file, or a CSV without a label column.
    """
    import pandas as pd

    p = Path(path)
    try:
        if p.suffix.lower() == ".csv":
            df = pd.read_csv(p, dtype=str).fillna("")
            cols = {c.strip().lower(): c for c in df.columns}
            label = next((cols[c] for c in LABEL_COLUMNS if c in cols), None)
            if label is None:
                raise DataError(f"{p}: a species list needs a label column ({', '.join(LABEL_COLUMNS)}); "
                                f"its columns are {', '.join(df.columns)}")
            rows = [{"label": str(r[label]).strip(), "scientific_name": str(r.get(cols.get("scientific_name", ""), "")).strip(),
                     "common_name": str(r.get(cols.get("common_name", ""), "")).strip()} for _, r in df.iterrows()]
        else:
            rows = [_line(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{p}: cannot read the species list ({exc})") from exc
    seen: set[str] = set()
    out = []
    for r in rows:
        if r["label"] and r["label"] not in seen:
            seen.add(r["label"])
            out.append(r)
    if not out:
        raise DataError(f"{p}: the species list is empty")
    return out


def _line(line: str) -> dict[str, str]:
    text = line.strip()
    if "_" in text and " " in text:  # BirdNET: "Acrocephalus scirpaceus_Eurasian Reed Warbler"
        scientific, common = text.split("_", 1)
        return {"label": scientific.strip(), "scientific_name": scientific.strip(), "common_name": common.strip()}
    return {"label": text, "scientific_name": "", "common_name": ""}


def choices(classes: list[dict[str, Any]], species_list: list[dict[str, str]]) -> list[dict[str, str]]:
    """The model's classes, then the species list's others (by label)."""
    known = {str(c["label"]) for c in classes}
    return [{k: str(c.get(k) or "") for k in ("label", "scientific_name", "common_name")} for c in classes] + \
        [s for s in species_list if s["label"] not in known]


def resolve_other(name: str, allowed: list[dict[str, str]]) -> str:
    """The label an "other species" verdict names.

    Raises:
        ConfigError: no name, or one that is none of ``allowed`` (the message names the closest).
    """
    import pandas as pd

    from birdspec.data.species import resolve_species
    from birdspec.names import normalize_name

    text = str(name or "").strip()
    if not text:
        raise ConfigError("an 'other species' verdict needs the species: pick one of the model's classes or the species list")
    table = pd.DataFrame(allowed, columns=["label", "scientific_name", "common_name"])
    try:
        found = resolve_species([text.replace(",", " ")], table)
    except ConfigError as exc:
        key = normalize_name(text)
        near = [c for c in allowed if any(key in normalize_name(c[k]) for k in ("label", "scientific_name", "common_name") if c[k])]
        hint = (f"did you mean {', '.join(_shown(c) for c in near[:5])}?" if near
                else str(exc).split(";", 1)[-1].strip() if "did you mean" in str(exc) else "")
        raise ConfigError(f"unknown species {text!r}: 'other species' is one of the model's classes or the species list"
                          f"{'; ' + hint if hint else ''} (pick one from the list; birdspec serve --species-list FILE "
                          "adds species)") from None
    return found[0]


def _shown(c: dict[str, str]) -> str:
    name = c.get("common_name") or c.get("scientific_name")
    return f"{name} ({c['label']})" if name and name != c["label"] else c["label"]
