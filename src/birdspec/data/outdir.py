"""The output directory of ``prepare``: reuse or conflict, the ``OUT.partial`` work folder, publishing.

This module owns the life of a dataset directory while it is written: a
complete ``OUT`` prepared with the same settings is reused
(:func:`out_state`); otherwise the work happens in ``OUT.partial/``
(:func:`~birdspec.data.prepared.partial_dir`), whose decoded chunks
(``chunks/``, :data:`CHUNKS_DIR`) survive an interrupted run
(:func:`reset_partial`), and the finished folder replaces ``OUT`` in one
rename (:func:`publish`), so an interrupted run never leaves a directory
that looks finished.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from birdspec.data.prepared import DATASET_FILE, DATASET_FORMAT
from birdspec.fileio import replace_dir

log = logging.getLogger(__name__)

CHUNKS_DIR = "chunks"
"""Decoded recordings cached in ``OUT.partial/chunks/`` (see :mod:`birdspec.data.decode`)."""


def _stored_settings(out: Path) -> dict[str, Any] | None:
    """The ``settings`` of the dataset in ``out``, or None when it holds none."""
    try:
        meta = json.loads((out / DATASET_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        return None
    return meta.get("settings")


def out_state(out: Path, settings: dict[str, Any], *, overwrite: bool) -> tuple[bool, str | None]:
    """``(reusable, conflict)`` for the output directory ``out``.

    ``reusable``: ``out`` is a complete dataset with these settings.
    ``conflict``: why ``out`` may not be replaced (None when it may).
    """
    if not out.exists():
        return False, None
    if not out.is_dir():
        return False, f"{out} exists and is not a folder; pick another --out"
    stored = _stored_settings(out)
    if stored == settings and not overwrite:
        return True, None
    if overwrite:
        return False, None
    if stored is None:
        if not any(out.iterdir()):
            return False, None
        return False, f"{out} exists and is not a prepared dataset; pick another --out or pass --overwrite"
    changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    return False, (
        f"{out} was prepared with other settings ({', '.join(changed)} differ); "
        f"pick another --out or pass --overwrite to replace it"
    )


def reset_partial(partial: Path) -> Path:
    """Make ``partial`` ready, keeping its decoded chunks; return the chunk folder."""
    chunks = partial / CHUNKS_DIR
    if partial.exists():
        kept = sum(1 for p in chunks.glob("*.json")) if chunks.is_dir() else 0
        log.info("resuming from %s (%d decoded recordings cached)", partial, kept)
        for entry in partial.iterdir():
            if entry.name != CHUNKS_DIR:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    chunks.mkdir(parents=True, exist_ok=True)
    return chunks


def publish(partial: Path, out: Path) -> None:
    """Drop the chunk cache and move the finished ``partial`` to ``out``, replacing an old ``out``."""
    shutil.rmtree(partial / CHUNKS_DIR, ignore_errors=True)
    replace_dir(partial, out)
