"""The Review page's queue: which detections of a prediction are shown as cards, in which order, a page at a time.

:class:`QueueOptions` says what to show:

- ``choices``: ``top`` (default) shows each window's top choice only; ``all`` also the model's 2nd and 3rd
  choices (they are many and mostly low: a window with a 0.67 top choice has 0.12 runners-up);
- ``min_score``: a number, or ``model`` (default): each species' detection threshold of the model that made the
  prediction (``prediction.json``; 0 for tables without them: every detection the table holds);
- ``order``: species by ``count`` (most detections first, default) or by ``name`` (common name, else
  scientific name, else label), never by code;
- ``mode``: ``score`` (highest first) or ``sample`` (a random sample per score bin, for precision);
- ``species``, ``offset``, ``limit``: one species' next page (:data:`PAGE_SIZE` cards per species a page).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from birdspec.app import review as rv
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

PAGE_SIZE = 300
"""Cards per species and page."""
CHOICES = ("top", "all")
ORDERS = ("count", "name")
MODES = ("score", "sample")


@dataclass(frozen=True)
class QueueOptions:
    """What the queue shows (see the module doc)."""

    mode: str = "score"
    per_bin: int = 3
    choices: str = "top"
    min_score: float | None = None  # None: the model's thresholds
    order: str = "count"
    species: str | None = None
    offset: int = 0
    limit: int = PAGE_SIZE

    @classmethod
    def parse(cls, *, mode: str = "score", per_bin: int = 3, choices: str = "top", min_score: str = "model",
              order: str = "count", species: str | None = None, offset: int = 0, limit: int = PAGE_SIZE) -> QueueOptions:
        """Checked options from the page's query.

        Raises:
            ConfigError: an unknown mode, choice or order, or a minimum score outside [0, 1].
        """
        for value, allowed, what in ((mode, MODES, "review order"), (choices, CHOICES, "choices"), (order, ORDERS, "species order")):
            if value not in allowed:
                raise ConfigError(f"unknown {what} {value!r}; use {' or '.join(allowed)}")
        score = None
        if str(min_score).strip().lower() not in ("", "model"):
            try:
                score = float(min_score)
            except ValueError:
                raise ConfigError(f"min_score must be a number in [0, 1] or 'model', got {min_score!r}") from None
            if not 0.0 <= score <= 1.0:
                raise ConfigError(f"min_score must be in [0, 1], got {score}")
        return cls(mode=mode, per_bin=max(1, min(int(per_bin), 50)), choices=choices, min_score=score, order=order,
                   species=species or None, offset=max(0, int(offset)), limit=max(1, min(int(limit), PAGE_SIZE)))


def minimum(detections: pd.DataFrame, opts: QueueOptions, thresholds: dict[str, float] | None) -> np.ndarray:
    """Per detection, the least score it needs to be shown: ``opts.min_score``, else its species' threshold."""
    if opts.min_score is not None:
        return np.full(len(detections), opts.min_score)
    known = thresholds or {}
    return detections["label"].map(lambda lab: float(known.get(lab, 0.0))).to_numpy(dtype=float)


def eligible(detections: pd.DataFrame, opts: QueueOptions, thresholds: dict[str, float] | None) -> pd.DataFrame:
    """The detections the queue may show: top choices (or all) at or above the minimum score."""
    keep = detections["confidence"].to_numpy(dtype=float) >= minimum(detections, opts, thresholds) - 1e-9
    if opts.choices == "top":
        keep &= (detections["rank"] == 1).to_numpy()
    return detections[keep]


def _display_name(info: dict[str, str] | None, label: Hashable) -> str:
    info = info or {}
    return str(info.get("common_name") or info.get("scientific_name") or label)


def groups(shown: pd.DataFrame, class_info: list[dict[str, str]], opts: QueueOptions) -> list[dict[str, Any]]:
    """The species of ``shown`` in page order: by count (most first, then name) or by name."""
    names: dict[Hashable, dict[str, str]] = {c["label"]: c for c in class_info}
    counts = shown.groupby("label").size()
    out = [{"label": lab, "name": _display_name(names.get(lab), lab), "common_name": (names.get(lab) or {}).get("common_name", ""),
            "scientific_name": (names.get(lab) or {}).get("scientific_name", ""), "total": int(n)} for lab, n in counts.items()]
    if opts.order == "count":
        return sorted(out, key=lambda g: (-g["total"], g["name"].casefold(), g["label"]))
    return sorted(out, key=lambda g: (g["name"].casefold(), g["label"]))


def page(detections: pd.DataFrame, class_info: list[dict[str, str]], opts: QueueOptions,
         thresholds: dict[str, float] | None) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """``(groups, rows)``: the species in page order, each with ``total`` (eligible), ``offset`` and ``shown``,
    and the detections of this page (group by group, highest score first)."""
    pool = eligible(detections, opts, thresholds)
    if opts.mode == "sample":
        pool = rv.sample_per_bin(pool, per_bin=opts.per_bin)
    found = groups(pool, class_info, opts)
    if opts.species is not None:
        found = [g for g in found if g["label"] == opts.species]
    parts = []
    for g in found:
        rows = pool[pool["label"] == g["label"]].sort_values("confidence", ascending=False, kind="mergesort")
        rows = rows.iloc[opts.offset: opts.offset + opts.limit]
        g.update(offset=opts.offset, shown=int(len(rows)))
        parts.append(rows)
    rows = pd.concat(parts) if parts else detections.iloc[0:0]
    return found, rows
