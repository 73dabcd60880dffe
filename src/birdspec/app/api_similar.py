"""API of "find similar" and agile rounds (:mod:`birdspec.app.similar`): the served indexes, a search from a box or
a card, what a search or round table is, and a round started from one. Searches and rounds run as jobs; their
result names the table Review opens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from birdspec.app import similar as sim
from birdspec.audio import AUDIO_EXTENSIONS
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

MAX_QUERY_S = 120.0
"""The longest query clip (a box or a card)."""


def _number(body: dict[str, Any], name: str, default: float | None = None) -> float:
    value = body.get(name, default)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def start_search(state: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Check a search's request now (index, recording, time span, species, top) and start it as a job."""
    item = state.indexes.get(str(body.get("index") or ""))
    recording = str(body.get("recording") or "")
    path = state.roots.resolve(recording)
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise ConfigError(f"{recording}: find similar needs a recording ({', '.join(AUDIO_EXTENSIONS)})")
    start_s, end_s = _number(body, "start_s"), _number(body, "end_s")
    if not (0 <= start_s < end_s and end_s - start_s <= MAX_QUERY_S):
        raise ConfigError(f"the query needs 0 <= start_s < end_s, at most {MAX_QUERY_S:g} s long; got {start_s:g} .. {end_s:g}")
    species = sim.check_species(str(body.get("species") or ""))
    top = int(_number(body, "top", 50))
    if not 1 <= top <= sim.MAX_TOP:
        raise ConfigError(f"top must be in 1..{sim.MAX_TOP}, got {top}")
    title = f"find {species} like {Path(recording).name} {start_s:.1f}-{end_s:.1f} s in {item.key}"
    return state.jobs.start("similar", title, lambda job: sim.find_similar(
        job, state, index_key=item.key, recording=recording, start_s=start_s, end_s=end_s, species=species, top=top)).as_dict()


def router(state: Any):
    from fastapi import APIRouter

    api = APIRouter()

    @api.get("/indexes")
    def indexes() -> dict[str, Any]:
        return {"indexes": [i.as_dict() for i in state.indexes.items.values()]}

    @api.post("/similar")
    def similar(body: dict[str, Any]) -> dict[str, Any]:
        return start_search(state, body)

    @api.get("/similar/table")
    def table(prediction: str) -> dict[str, Any]:
        return sim.table_info(state, prediction)

    @api.post("/agile")
    def agile(body: dict[str, Any]) -> dict[str, Any]:
        return sim.start_round(state, str(body.get("prediction") or ""), next_count=int(_number(body, "next", 20)),
                               strategy=str(body.get("strategy") or "margin"))

    return api
