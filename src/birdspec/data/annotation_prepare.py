"""``prepare --annotations``: the steps :func:`birdspec.data.prepare.prepare` hands over for annotated recordings.

:func:`annotated_catalog` turns the recordings and tables into window rows before any decoding
(:func:`~birdspec.data.annotation_windows.annotation_source`); :func:`finish_annotated` adds, once the
windows are stored, the annotation report (``annotation_report.txt``: every row not read, every table or
recording not matched), the no-bird stretches of ``--complete`` (:mod:`birdspec.data.annotation_nobird`)
and the counts (``annotations`` in ``dataset.json``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from birdspec.data.annotation_windows import AnnotatedSource, annotation_source
from birdspec.data.annotations import ANNOTATION_REPORT_FILE
from birdspec.data.prepared import DATASET_FILE
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)


def annotated_catalog(source: str | Path, settings: Any) -> AnnotatedSource:
    """The window rows of ``prepare --annotations`` (``settings``: its :class:`~birdspec.data.prepare_settings.PrepareSettings`).

    Raises:
        ConfigError: options of other sources (``--layout``, the CSV columns).
    """
    other = {"--layout": settings.layout != "auto", "--path-column": settings.path_column,
             "--label-column": settings.label_column, "--fold-column": settings.fold_column}
    given = [k for k, v in other.items() if v]
    if given:
        raise ConfigError(f"{', '.join(given)} do not apply with --annotations (SOURCE is a recording or a folder of "
                          "recordings, the tables label them)")
    found = annotation_source(source, settings.annotations, window_s=settings.encoding.window_s,
                              species=list(settings.species) if settings.species else None, top_n=settings.top_n)
    if found.report.problems:
        log.warning("annotations: %s; each in %s", found.report.summary(), ANNOTATION_REPORT_FILE)
    return found


def finish_annotated(partial: Path, found: AnnotatedSource, manifest: pd.DataFrame, settings: Any, *,
                     workers: int | None) -> dict[str, Any]:
    """Write the report, the no-bird stretches (with ``complete``) and the counts into ``partial``."""
    from birdspec.fileio import write_text

    found.report.write(partial / ANNOTATION_REPORT_FILE)
    summary: dict[str, Any] = {**found.summary(), "complete": bool(settings.annotations.complete),
                               "report": ANNOTATION_REPORT_FILE, "report_lines": len(found.report.problems),
                               "tables": found.report.summary()}
    if len(found.nobird):
        from birdspec.data.annotation_nobird import write_nobird

        summary.update(write_nobird(partial, found.nobird, manifest, settings, workers=workers))
    meta = json.loads((partial / DATASET_FILE).read_text(encoding="utf-8"))
    meta["annotations"] = summary
    write_text(partial / DATASET_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return summary
