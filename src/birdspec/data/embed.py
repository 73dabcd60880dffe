"""``birdspec embed``: writing the per-window embedding cache whose format :mod:`birdspec.data.embeddings` owns.

:func:`embed_dataset` checks the settings (a finished cache with the same ones is reused), takes the output
lock and runs the resumable partial run (chunks of recordings appended, data flushed before index rows),
then checks it and renames it into place; then it adds the no-bird clips (:mod:`birdspec.data.embed_nocall`),
which a cache made before them gets on the next run without recomputing the recordings'.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.birdnet.backend import DEFAULT_BATCH
from birdspec.config import BACKBONES
from birdspec.data.embeddings import (
    EMBED_SETTINGS_FILE,
    EMBEDDINGS_FILE,
    EMBEDDINGS_FORMAT,
    EMBEDDINGS_META_FILE,
    INDEX_COLUMNS,
    INDEX_FILE,
    EmbedReport,
    WindowEmbedder,
    append_embeddings,
    dataset_fingerprint,
    embedding_dir,
    load_partial,
    partial_embedding_dir,
    read_index,
)
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError
from birdspec.fileio import output_lock, replace_dir, write_csv, write_text
from birdspec.windowing import frame

log = logging.getLogger("birdspec.data.embeddings")


class _BackboneGeometry:
    """The window geometry of a named backbone, known without loading it."""

    def __init__(self, backbone: str) -> None:
        from birdspec.birdnet import backend

        self.name = backbone
        self.window_s = backend.WINDOW_S
        self.sample_rate_hz = backend.BIRDNET_SAMPLE_RATE_HZ
        self.embedding_dim = backend.EMBEDDING_DIM


def _settings(model: WindowEmbedder | _BackboneGeometry, hop_s: float, fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {
        "backbone": model.name,
        "window_s": float(model.window_s),
        "hop_s": float(hop_s),
        "sample_rate_hz": int(model.sample_rate_hz),
        "dim": int(model.embedding_dim),
        "dataset": fingerprint,
    }


def same_settings(a: dict[str, Any], b: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in keys)


SETTING_KEYS = ("backbone", "window_s", "hop_s", "sample_rate_hz", "dim")


def _up_to_date(final: Path, settings: dict[str, Any], *, overwrite: bool) -> EmbedReport | None:
    """The report of a finished cache with these settings (nothing to do), else None.

    Raises:
        ConfigError: the finished cache has other settings and ``overwrite`` is false.
    """
    if not (final / EMBEDDINGS_META_FILE).is_file():
        return None
    meta = json.loads((final / EMBEDDINGS_META_FILE).read_text())
    if same_settings(meta, settings, SETTING_KEYS):
        if meta.get("dataset") == settings["dataset"]:
            log.debug("%s: embeddings up to date (%d recordings, %d windows); nothing to do", final, meta["num_recordings"], meta["total_windows"])
            return EmbedReport(final, int(meta["num_recordings"]), int(meta["total_windows"]), 0, 0, 0.0, 0.0)
        log.warning("%s: computed for another version of the dataset (re-prepared?); computing them again", final)
    elif not overwrite:
        raise ConfigError(
            f"{final} holds embeddings with other settings (hop_s={meta.get('hop_s')}, backbone={meta.get('backbone')}); "
            "pass --overwrite to replace them"
        )
    return None


def embed_dataset(
    data: PreparedDataset | str | Path,
    *,
    backbone: str = "birdnet",
    hop_s: float = 3.0,
    num_threads: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    chunk_windows: int = 256,
    overwrite: bool = False,
    progress: bool = True,
    model: WindowEmbedder | None = None,
    background_dir: str | Path | None = None,
    synthetic_clips: int | None = None,
) -> EmbedReport:
    """Compute (or resume, or reuse) the per-window embedding cache of a prepared dataset and its no-bird clips.

    Args:
        data: a prepared dataset or its directory.
        backbone: 'birdnet' (the only one so far).
        hop_s: distance between window starts (3 s: non-overlapping BirdNET windows).
        num_threads: backbone threads (default: all cores).
        batch_size: windows per backbone call.
        chunk_windows: windows embedded between two appends to the partial cache
            (the most work an interrupt can lose).
        overwrite: replace a cache computed with other settings (e.g. another hop).
        progress: a tqdm bar over seconds of audio on stderr.
        model: an already built backbone (default: built from ``backbone``, ``num_threads``, ``batch_size``).
        background_dir: a folder of recordings without the classes' birds: no-bird clips of them too
            (None: keep those the cache has).
        synthetic_clips: synthetic no-bird clips (None: as many as the cache has, else
            :data:`~birdspec.data.embed_nocall.SYNTHETIC_CLIPS`).

    Returns:
        an :class:`EmbedReport`.

    Raises:
        DependencyError: the backbone's optional dependencies are missing.
        ConfigError: a cache with other settings exists and ``overwrite`` is false.
    """
    ds = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if hop_s <= 0:
        raise ConfigError(f"--hop-s must be positive, got {hop_s}")
    if chunk_windows < 1:
        raise ConfigError(f"chunk_windows must be >= 1, got {chunk_windows}")
    from birdspec.data.embed_nocall import add_nocall, nocall_settings, nocall_up_to_date

    if synthetic_clips is not None and synthetic_clips < 0:
        raise ConfigError(f"synthetic_clips must be >= 0, got {synthetic_clips}")
    final, partial = embedding_dir(ds.root, backbone), partial_embedding_dir(ds.root, backbone)
    fingerprint = dataset_fingerprint(ds)
    geometry = model or _BackboneGeometry(backbone)
    settings = _settings(geometry, hop_s, fingerprint)
    done = _up_to_date(final, settings, overwrite=overwrite)
    nocall = nocall_settings(ds, geometry, fingerprint, final=final, background_dir=background_dir,
                             synthetic_clips=synthetic_clips)
    if done is not None and nocall_up_to_date(final, nocall):
        return _with_nocall(done, final)
    if model is None:  # before touching the folder: a missing optional extra must leave no trace
        from birdspec.birdnet.backend import BirdnetBackbone

        model = BirdnetBackbone(num_threads=num_threads, batch_size=batch_size)
    if _settings(model, hop_s, fingerprint) != settings:
        raise ConfigError(f"the {backbone} backbone does not have the expected window geometry")
    with output_lock(final):  # one writer per cache: a second `embed` of this dataset is refused
        report = done or embed_locked(ds, model, final, partial, settings, backbone=backbone, hop_s=hop_s,
                                      chunk_windows=chunk_windows, progress=progress, overwrite=overwrite)
        _, clips, windows, elapsed = add_nocall(ds, model, final, nocall, backbone=backbone,
                                                chunk_windows=chunk_windows, progress=progress)
    return _with_nocall(report, final, computed=(clips, windows, elapsed))


def _with_nocall(report: EmbedReport, final: Path, *, computed: tuple[int, int, float] = (0, 0, 0.0)) -> EmbedReport:
    """``report`` with the cache's no-bird counts and what this call embedded of them."""
    from dataclasses import replace

    entry = json.loads((final / EMBEDDINGS_META_FILE).read_text()).get("nocall") or {}
    return replace(report, nocall_clips=int(entry.get("num_clips", 0)), nocall_windows=int(entry.get("total_windows", 0)),
                   computed_nocall_clips=computed[0], computed_nocall_windows=computed[1], nocall_elapsed_s=computed[2])


def _open_partial(partial: Path, settings: dict[str, Any], *, overwrite: bool) -> pd.DataFrame:
    """Resume the interrupted run in ``partial`` (its usable index rows) or start it afresh (no rows).

    Raises:
        ConfigError: ``partial`` is a run with other settings and ``overwrite`` is false.
    """
    index = pd.DataFrame(columns=list(INDEX_COLUMNS))
    if partial.is_dir():
        old = json.loads((partial / EMBED_SETTINGS_FILE).read_text()) if (partial / EMBED_SETTINGS_FILE).is_file() else {}
        if same_settings(old, settings, SETTING_KEYS) and old.get("dataset") == settings["dataset"] and (partial / INDEX_FILE).is_file():
            index = load_partial(partial, int(settings["dim"]))
            if len(index):
                log.info("resuming %s: %d recordings already embedded", partial, len(index))
        elif old and not same_settings(old, settings, SETTING_KEYS) and not overwrite:
            raise ConfigError(f"{partial} is an interrupted run with other settings (hop_s={old.get('hop_s')}); pass --overwrite to discard it")
        else:
            shutil.rmtree(partial)
    if not partial.is_dir():
        partial.mkdir(parents=True)
        write_text(partial / EMBED_SETTINGS_FILE, json.dumps(settings, indent=2))
        write_csv(partial / INDEX_FILE, pd.DataFrame(columns=list(INDEX_COLUMNS)), float_format=None)
        (partial / EMBEDDINGS_FILE).touch()
    return index


class _PartialWriter:
    """Embeds pending recordings and appends them to a partial cache (data flushed first, then index rows)."""

    def __init__(
        self, partial: Path, ds: PreparedDataset, model: WindowEmbedder, *, backbone: str, first_window: int, bar: Any
    ) -> None:
        self.partial, self.model, self.backbone, self.bar = partial, model, backbone, bar
        self.ids = ds.manifest["id"]
        self.lengths = ds.manifest["num_samples"].to_numpy(np.int64)
        self.sr_in = ds.sample_rate_hz
        self.next_window = first_window
        self.computed_windows = 0
        self.pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (row, windows, starts)
        self.pending_n = 0

    def add(self, row: int, windows: np.ndarray, starts: np.ndarray, *, chunk_windows: int) -> None:
        self.pending.append((row, windows, starts))
        self.pending_n += windows.shape[0]
        if self.pending_n >= chunk_windows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        model = self.model
        batch = np.concatenate([w for _, w, _ in self.pending])
        append_embeddings(self.partial / EMBEDDINGS_FILE, model, batch)
        rows_out = []
        for row, w, starts in self.pending:
            rows_out.append({
                "id": str(self.ids.iloc[row]),
                "row": row,
                "first_window": self.next_window,
                "num_windows": int(w.shape[0]),
                "duration_s": round(float(self.lengths[row]) / self.sr_in, 4),
                "window_starts_s": " ".join(f"{s / model.sample_rate_hz:g}" for s in starts),
            })
            self.next_window += int(w.shape[0])
        pd.DataFrame(rows_out, columns=list(INDEX_COLUMNS)).to_csv(self.partial / INDEX_FILE, mode="a", header=False, index=False)
        self.computed_windows += batch.shape[0]
        if self.bar is not None:
            self.bar.update(round(sum(float(self.lengths[r]) / self.sr_in for r, _, _ in self.pending)))
        self.pending, self.pending_n = [], 0


def _embed_rows(
    ds: PreparedDataset, model: WindowEmbedder, partial: Path, todo: list[int], *, backbone: str,
    first_window: int, hop_s: float, chunk_windows: int, progress: bool, audio_s: float,
) -> tuple[int, float]:
    """Embed manifest rows ``todo`` into ``partial``; ``(windows embedded, seconds it took)``."""
    from birdspec.audio import resample

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=round(audio_s), unit="s", desc=f"embed {backbone}", leave=False, dynamic_ncols=True)
    window = int(round(model.window_s * model.sample_rate_hz))
    hop = int(round(hop_s * model.sample_rate_hz))
    writer = _PartialWriter(partial, ds, model, backbone=backbone, first_window=first_window, bar=bar)
    m = ds.manifest
    started = time.perf_counter()
    try:
        for row in todo:
            wave = ds.store.read(int(m["offset"].iloc[row]), int(writer.lengths[row]))
            wave = resample(wave, orig_sample_rate_hz=ds.sample_rate_hz, sample_rate_hz=model.sample_rate_hz)
            windows, starts = frame(wave, window_samples=window, hop_samples=hop, short_policy="pad")
            writer.add(row, windows, starts, chunk_windows=chunk_windows)
        writer.flush()
    finally:
        if bar is not None:
            bar.close()
    return writer.computed_windows, time.perf_counter() - started


def _publish_cache(
    partial: Path, final: Path, settings: dict[str, Any], model: WindowEmbedder, *, backbone: str, num_rows: int
) -> pd.DataFrame:
    """Check the finished ``partial``, write its ``embeddings.json`` and rename it to ``final``; its index."""
    index = read_index(partial / INDEX_FILE)
    if sorted(index["row"].tolist()) != list(range(num_rows)):
        raise DataError(f"{partial}: the index does not cover every recording; delete the folder and run `birdspec embed` again")
    index = index.sort_values("row").reset_index(drop=True)
    meta = {
        "format": EMBEDDINGS_FORMAT,
        "format_version": 1,
        **{k: settings[k] for k in SETTING_KEYS},
        "backbone_version": model.version,
        "dtype": "float16",
        "file": EMBEDDINGS_FILE,
        "num_recordings": int(len(index)),
        "total_windows": int((index["num_windows"]).sum()),
        "dataset": settings["dataset"],
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if backbone == "birdnet":
        meta["licence"] = "BirdNET model: CC BY-NC-SA 4.0 (non-commercial)"
    write_text(partial / EMBEDDINGS_META_FILE, json.dumps(meta, indent=2))
    (partial / EMBED_SETTINGS_FILE).unlink(missing_ok=True)
    replace_dir(partial, final)
    return index


def embed_locked(ds: PreparedDataset, model: Any, final: Path, partial: Path, settings: dict[str, Any], *,
                  backbone: str, hop_s: float, chunk_windows: int, progress: bool, overwrite: bool) -> EmbedReport:
    index = _open_partial(partial, settings, overwrite=overwrite)
    num_rows = len(ds.manifest)
    done_rows = set(index["row"].astype(int).tolist())
    todo = [r for r in range(num_rows) if r not in done_rows]
    lengths = ds.manifest["num_samples"].to_numpy(np.int64)
    audio_s = float(lengths[todo].sum()) / ds.sample_rate_hz if todo else 0.0
    computed_windows, elapsed = _embed_rows(
        ds, model, partial, todo, backbone=backbone,
        first_window=int(index["first_window"].iloc[-1] + index["num_windows"].iloc[-1]) if len(index) else 0,
        hop_s=hop_s, chunk_windows=chunk_windows, progress=progress, audio_s=audio_s,
    )
    index = _publish_cache(partial, final, settings, model, backbone=backbone, num_rows=num_rows)
    log.info(
        "embedded %d recordings (%d windows, %.1f min of audio) in %.1f s (%.0fx real time) -> %s",
        len(todo), computed_windows, audio_s / 60, elapsed, audio_s / elapsed if elapsed > 0 else 0.0, final,
    )
    return EmbedReport(final, int(len(index)), int(index["num_windows"].sum()), len(todo), computed_windows, audio_s, elapsed)
