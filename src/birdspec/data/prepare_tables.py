"""The tables a preparation run writes: ``manifest.csv``, ``skipped.csv`` and ``dataset.json`` (and its log summary).

Part of :mod:`birdspec.data.prepare`, which owns the run and calls :func:`write_dataset` once the
recordings are stored; the formats themselves are :mod:`birdspec.data.prepared`'s.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec import __version__
from birdspec.config import FrontendConfig, to_dict
from birdspec.data.catalog import SOURCE_PREFIX, secondary_labels_json
from birdspec.data.prepare_settings import PrepareSettings
from birdspec.data.prepared import (
    DATASET_FILE,
    DATASET_FORMAT,
    DATASET_FORMAT_VERSION,
    MANIFEST_COLUMNS,
    MANIFEST_FILE,
    SKIPPED_COLUMNS,
    SKIPPED_FILE,
    count_samples,
)
from birdspec.data.species import species_table
from birdspec.data.splits import train_val_split
from birdspec.data.store import STORE_FILE
from birdspec.errors import DataError
from birdspec.fileio import write_csv, write_text

log = logging.getLogger("birdspec.data.prepare")


def write_dataset(
    partial: Path, selection: Any, stored: Any, settings: PrepareSettings
) -> tuple[pd.DataFrame, int]:
    """Write ``skipped.csv``, ``manifest.csv`` and ``dataset.json`` into ``partial``; ``(manifest, skipped count)``."""
    skipped = pd.DataFrame([row[1:] for row in sorted(stored.skipped)], columns=list(SKIPPED_COLUMNS))
    write_csv(partial / SKIPPED_FILE, skipped, float_format=None)
    if not stored.rows:
        raise DataError(
            f"no usable recordings: all {len(selection.recordings)} selected recordings were skipped "
            f"(reasons in {partial / SKIPPED_FILE})"
        )
    kept = selection.recordings.iloc[stored.rows].reset_index(drop=True)
    # The train/val split is drawn among the recordings kept, so it is ~70/30 within every species
    # whatever cleaning removed (the study split the samples that were left).
    kept["split"] = train_val_split(kept["filename"].tolist(), kept["label"].tolist(), val_fraction=settings.val_fraction,
                                    seed=settings.seed, groups=kept["source_path"].astype(str).tolist())  # windows of one file together
    classes = sorted(kept["label"].unique())
    lost = sorted(set(selection.species) - set(classes))
    if lost:
        log.warning("no usable recordings left for %d species: %s", len(lost), ", ".join(lost))
    manifest = _manifest(kept, classes, np.asarray(stored.offsets), np.asarray(stored.lengths), settings.sample_rate_hz,
                         warnings=stored.warnings)
    write_csv(partial / MANIFEST_FILE, manifest, float_format=None)
    meta = _dataset_meta(
        settings,
        layout=selection.layout,
        manifest=manifest,
        class_info=species_table(kept).set_index("label"),
        folds=selection.folds,
        skipped=len(skipped),
        total_samples=stored.total_samples,
    )
    write_text(partial / DATASET_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return manifest, len(skipped)


def _dataset_meta(
    settings: PrepareSettings,
    *,
    layout: str,
    manifest: pd.DataFrame,
    class_info: pd.DataFrame,
    folds: int | None,
    skipped: int,
    total_samples: int,
) -> dict[str, Any]:
    """The content of ``dataset.json``."""
    enc, sr = settings.encoding, settings.sample_rate_hz
    classes = sorted(manifest["label"].unique())
    return {
        "format": DATASET_FORMAT,
        "format_version": DATASET_FORMAT_VERSION,
        "birdspec_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": settings.source,
        "layout": layout,
        "settings": settings.to_dict(),
        "sample_rate_hz": sr,
        "encoding": to_dict(enc),
        "frontend": to_dict(FrontendConfig()),
        "classes": classes,
        "class_info": [
            {
                "label": c,
                "scientific_name": class_info.at[c, "scientific_name"],
                "common_name": class_info.at[c, "common_name"],
            }
            for c in classes
        ],
        "num_recordings": len(manifest),
        "num_samples": int(
            sum(count_samples(int(n), encoding=enc, sample_rate_hz=sr) for n in manifest["num_samples"])
        ),
        "splits": {s: int((manifest["split"] == s).sum()) for s in ("train", "val")},
        "folds": folds,
        "skipped": skipped,
        "store": {"file": STORE_FILE, "dtype": "float16", "total_samples": int(total_samples)},
    }


def _manifest(
    kept: pd.DataFrame, classes: list[str], offsets: np.ndarray, lengths: np.ndarray, sr: int, *, warnings: list[str]
) -> pd.DataFrame:
    label_id = {c: i for i, c in enumerate(classes)}
    m = pd.DataFrame(
        {
            "id": kept["id"],
            "source_path": kept["source_path"],
            "filename": kept["filename"],
            "label": kept["label"],
            "label_id": kept["label"].map(label_id).astype(np.int64),
            "secondary_labels": [secondary_labels_json(v) for v in kept["secondary_labels"]],
            "scientific_name": kept["scientific_name"],
            "common_name": kept["common_name"],
            "rating": kept["rating"].astype(float),
            "duration_s": np.round(lengths / sr, 6),
            "offset": offsets.astype(np.int64),
            "num_samples": lengths.astype(np.int64),
            "split": kept["split"],
            "fold": kept["fold"].astype(np.int64),
            "warning": warnings,
        }
    )
    extra_cols = [c for c in kept.columns if c not in m.columns and c != "secondary_labels"]
    extra = kept[extra_cols].rename(columns={c: SOURCE_PREFIX + c for c in extra_cols if c in MANIFEST_COLUMNS})
    return pd.concat([m, extra], axis=1)


def log_prepared(
    out: Path, manifest: pd.DataFrame, stored: Any, n_skipped: int, settings: PrepareSettings, *, seconds: float
) -> None:
    audio_s = stored.total_samples / settings.sample_rate_hz
    cut = [w for w in stored.warnings if "truncated:" in w]
    if cut:
        log.warning("%d recording(s) look cut off; what decodes is kept and their manifest.csv row says so "
                    "(warning column), lengths and --min-duration-s apply to the decoded audio", len(cut))
    scaled = [w for w in stored.warnings if "scaled:" in w]
    if scaled:
        log.warning("%d recording(s) have samples beyond the float16 store's range and were scaled to full scale; "
                    "their manifest.csv row says so (warning column)", len(scaled))
    log.info(
        "prepared %s: %d recordings of %d species (%.1f min of audio) in %.1f s (%.0fx real time); skipped %d (see %s)",
        out,
        len(manifest),
        manifest["label"].nunique(),
        audio_s / 60,
        seconds,
        audio_s / max(seconds, 1e-9),
        n_skipped,
        out / SKIPPED_FILE,
    )
