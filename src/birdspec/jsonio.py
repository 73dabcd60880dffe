"""Small JSON helpers shared by the stages that keep state on disk (runs, sweeps, CV, evaluations)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (temp file renamed), so readers never see half a file."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(p)


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing or corrupt (logged)."""
    p = Path(path)
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except json.JSONDecodeError:
        log.warning("%s is corrupt; ignoring it", p)
        return None
