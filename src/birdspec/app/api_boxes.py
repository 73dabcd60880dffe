"""API of the boxes drawn on a recording's spectrogram (:mod:`birdspec.app.boxes`): read them, save them as the
Raven selection table beside the recording, and the recordings whose tables training can pool. Tables are named
by their references (``recs/x.Table.1.selections.txt``), in answers and errors alike, never by the server's paths."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from birdspec.app import boxes as bx
from birdspec.app import predictions as preds
from birdspec.app import recordings
from birdspec.app import species_list as sl
from birdspec.audio import AUDIO_EXTENSIONS
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)


def species_choices(state: Any, prediction: str | None) -> list[dict[str, str]]:
    """What a box may be labelled with: the classes of the prediction open (if any) and the species list."""
    classes: list[dict[str, Any]] = []
    if prediction:
        meta = preds.read_meta(preds.prediction_csv(state.roots, prediction).parent)
        classes = list((meta or {}).get("class_info") or [])
    return sl.choices(classes, state.species)


def box_recording(table: Path) -> Path | None:
    """The recording a box table belongs to: the audio file beside it with the table's stem."""
    stem = table.name[: -len(bx.BOX_TABLE_SUFFIX)]
    return next((p for p in sorted(table.parent.glob(stem + ".*")) if p.suffix.lower() in AUDIO_EXTENSIONS), None)


def box_tables(roots: Any) -> list[dict[str, Any]]:
    """The box tables in the served recording folders and uploads whose recording is beside them."""
    out = []
    for key in [*roots.recording_keys, "uploads"]:
        for ref in roots.list_files(key, (bx.BOX_TABLE_SUFFIX,)):
            table = roots.resolve(ref)
            rec = box_recording(table)
            if rec is not None:
                out.append({"ref": ref, "kind": "boxes", "name": ref.split("/", 1)[1], "recording": roots.ref(rec),
                            "verified": len(bx.read_boxes(table, shown_as=ref))})
    return out


def router(state: Any):
    from fastapi import APIRouter

    api = APIRouter()
    roots = state.roots

    @api.get("/boxes")
    def boxes(recording: str, prediction: str | None = None) -> dict[str, Any]:
        table = bx.table_path(roots.resolve(recording))
        ref = roots.ref(table)
        return {"recording": recording, "boxes": bx.read_boxes(table, shown_as=ref or table.name), "table": ref if table.is_file() else None,
                "species": species_choices(state, prediction)}

    @api.post("/boxes")
    def save(body: dict[str, Any]) -> dict[str, Any]:
        recording = str(body.get("recording") or "")
        path = roots.resolve(recording)
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            raise ConfigError(f"{recording}: boxes are drawn on recordings ({', '.join(AUDIO_EXTENSIONS)})")
        rec = recordings.probe(path)
        allowed = species_choices(state, body.get("prediction"))
        if not allowed:
            raise ConfigError("no species to label a box with: open a prediction (its model's classes), or start "
                              "birdspec serve with --species-list FILE")
        names = {c["label"]: c.get("common_name") or "" for c in allowed}
        checked = bx.check_boxes(list(body.get("boxes") or []), duration_s=rec.duration_s, nyquist_hz=rec.sample_rate_hz / 2,
                                 resolve_species=lambda name: sl.resolve_other(name, allowed), names=names)
        table = bx.write_boxes(bx.table_path(path), checked)  # answered as its reference, never the server's path
        return {"recording": recording, "boxes": checked, "table": roots.ref(table) if table else None}

    return api
