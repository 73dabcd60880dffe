"""``prepare``: decode a source once into a prepared dataset directory.

This module owns the preparation run and the order of its steps; the
content of the tables it writes (``manifest.csv``, ``skipped.csv``,
``dataset.json``) is :mod:`~birdspec.data.prepare_tables`'s. :func:`prepare`, with :class:`PrepareSettings` and
:func:`skip_reason` from :mod:`~birdspec.data.prepare_settings`: read the
catalog (:mod:`~birdspec.data.catalog`), select species
(:mod:`~birdspec.data.species`), assign splits and folds on the selection
(:mod:`~birdspec.data.splits`; before any decoding, so a bad file never
changes the others' assignment), drop recordings by metadata (rating), decode
the rest to 32 kHz mono on worker processes (:mod:`~birdspec.data.decode`),
drop the unusable ones (empty, unreadable, all silent, too short) and store
the others as float16.

The directory written (the format is :mod:`birdspec.data.prepared`; the
store :mod:`birdspec.data.store`)::

    OUT/waveforms.f16   all kept recordings, raw little-endian float16
    OUT/manifest.csv    one row per kept recording
    OUT/skipped.csv     path,label,reason of every recording left out
    OUT/dataset.json    settings, classes, encoding, frontend, counts

Work happens in ``OUT.partial/``, renamed to ``OUT`` when complete, so an
interrupted run never leaves a directory that looks finished
(:mod:`~birdspec.data.outdir`). Decoded recordings are cached in
``OUT.partial/chunks/`` (keyed by file identity), so running again after a
crash only decodes what is missing.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from birdspec.config import EncodingConfig
from birdspec.data.catalog_layouts import decode_spans, load_catalog, repeated_rows
from birdspec.data.decode import ChunkConcatenator, DecodeTask, cache_key, decode_all, keep_chunks_of_this_boot, read_cached
from birdspec.data.outdir import out_state, publish, reset_partial
from birdspec.data.prepare_settings import PrepareSettings, rating_reason, settings_from_args, skip_reason
from birdspec.data.prepare_tables import log_prepared, write_dataset
from birdspec.data.prepared import partial_dir
from birdspec.data.species import select_species
from birdspec.data.splits import stratified_folds
from birdspec.data.store import STORE_FILE
from birdspec.errors import ConfigError
from birdspec.fileio import refuse_output_over_inputs
from birdspec.locks import output_lock
from birdspec.runtime import cpu_count

if TYPE_CHECKING:  # pragma: no cover
    from birdspec.data.annotation_windows import AnnotationSettings

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- steps


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="rec",
        desc="prepare",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not (enabled and sys.stderr.isatty()),
    )


def _assign_folds(selected: pd.DataFrame, settings: PrepareSettings) -> pd.DataFrame:
    """Add the ``fold`` column on the selection, before any decoding.

    Folds follow the metadata rows (sorted by filename), so a file skipped
    later never changes another recording's fold, and a benchmark can rebuild
    the same folds from the metadata alone.
    """
    df = selected.copy()
    filenames, labels = df["filename"].tolist(), df["label"].tolist()
    if settings.fold_column is not None:
        if settings.folds is not None:
            log.warning("--fold-column %r replaces --folds %d", settings.fold_column, settings.folds)
    elif settings.folds is not None:
        df["fold"] = stratified_folds(filenames, labels, n_folds=settings.folds, seed=settings.seed,
                                      groups=df["source_path"].astype(str).tolist())
    return df


# --------------------------------------------------------------------------- prepare


def prepare(
    source: str | Path,
    out_dir: str | Path,
    *,
    layout: str = "auto",
    species: str | Sequence[str] | None = None,
    top_n: int | None = None,
    encoding: EncodingConfig | None = None,
    min_rating: float | None = None,
    min_duration_s: float | None = None,
    val_fraction: float = 0.3,
    folds: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    fold_column: str | None = None,
    max_duration_s: float | None = None,
    annotations: AnnotationSettings | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Decode the recordings of ``source`` into a prepared dataset at ``out_dir``.

    Args:
        source: a dataset folder (BirdCLEF or folder-per-class) or a CSV manifest.
        out_dir: the dataset directory to write.
        layout: one of :data:`~birdspec.data.catalog.LAYOUTS` (``auto``: detect it).
        species: codes, scientific or common names (comma-separated string or list).
        top_n: keep the ``top_n`` species with most recordings (after ``species``).
        encoding: how recordings become samples (default :class:`EncodingConfig`,
            stack10 with ``drop``: recordings under 50 s are skipped).
        min_rating: skip recordings rated below this (unrated ones, NaN or 0, are kept).
        min_duration_s: skip recordings shorter than this (seconds).
        val_fraction: share of each class in the ``val`` split, in ``[0, 1)``.
        folds: also assign ``folds`` stratified cross-validation folds.
        seed: seed of the split and the folds.
        workers: decoding processes (default: all cores).
        path_column, label_column, fold_column: for a CSV source.
        max_duration_s: keep only the first ``max_duration_s`` seconds of each
            recording (smaller store, faster decoding).
        annotations: ``source`` is a recording or folder of recordings and these tables label its windows
            (:mod:`birdspec.data.annotation_windows`; window encoding only).
        overwrite: replace an existing ``out_dir`` prepared with other settings.
        progress: show a progress bar on stderr (only when it is a terminal).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: bad options, unknown species, or ``out_dir`` holding
            something else (without ``overwrite``).
        DataError: the source does not match its layout, or no recording is usable.
    """
    t0 = time.perf_counter()
    settings = settings_from_args(
        source, layout=layout, species=species, top_n=top_n, encoding=encoding, min_rating=min_rating,
        min_duration_s=min_duration_s, max_duration_s=max_duration_s, val_fraction=val_fraction, folds=folds,
        seed=seed, path_column=path_column, label_column=label_column, fold_column=fold_column,
        annotations=annotations,
    )
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    out = Path(out_dir).absolute()
    refuse_output_over_inputs(out, [source])
    with output_lock(out):  # one writer: a second prepare of the same --out is refused, never interleaved
        reusable, conflict = out_state(out, settings.to_dict(), overwrite=overwrite)
        if reusable:
            log.info("%s: already prepared, reusing", out)
            return out
        selection = _select(source, settings, conflict=conflict)
        partial = partial_dir(out)
        stored = _store(selection.recordings, settings, partial, workers=workers, progress=progress)
        manifest, n_skipped = write_dataset(partial, selection, stored, settings)
        if selection.annotated is not None:
            from birdspec.data.annotation_prepare import finish_annotated

            finish_annotated(partial, selection.annotated, manifest, settings, workers=workers)
        publish(partial, out)
    log_prepared(out, manifest, stored, n_skipped, settings, seconds=time.perf_counter() - t0)
    return out


@dataclass(frozen=True)
class _Selection:
    """The recordings to prepare (folds assigned, sorted by label and filename) and where they came from."""

    recordings: pd.DataFrame
    species: list[str]
    layout: str
    folds: int | None
    annotated: Any = None  # AnnotatedSource of prepare --annotations


def _select(source: str | Path, settings: PrepareSettings, *, conflict: str | None) -> _Selection:
    """Read the catalog, select the species and assign folds (raises ``conflict`` after the source checks)."""
    annotated = None
    if settings.annotations is not None:  # the windows of annotated recordings, species chosen among the boxes'
        from birdspec.data.annotation_prepare import annotated_catalog

        annotated = annotated_catalog(source, settings)
        catalog, used_layout, selected, labels = annotated.catalog, "annotations", annotated.catalog, annotated.species
    else:
        catalog, used_layout = load_catalog(
            source,
            layout=settings.layout,
            path_column=settings.path_column,
            label_column=settings.label_column,
            fold_column=settings.fold_column,
        )
        selected, labels = select_species(catalog, species=settings.species, top_n=settings.top_n)
    if conflict is not None:  # after the source checks: their errors come first
        raise ConfigError(conflict)
    selected = _assign_folds(selected, settings)
    selected = selected.sort_values(["label", "filename"], kind="mergesort").reset_index(drop=True)
    n_folds = settings.folds
    if settings.fold_column is not None:
        n_folds = int(catalog["fold"].max()) + 1
    return _Selection(recordings=selected, species=list(labels), layout=used_layout, folds=n_folds, annotated=annotated)


@dataclass
class _Stored:
    """What :func:`_store` did: kept rows with their place in the store, and skipped rows."""

    rows: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. "truncated: decoded 0.61 s of ..." ("" for none)
    skipped: list[tuple[int, str, str, str]] = field(default_factory=list)  # (row, path, label, reason)
    total_samples: int = 0


def _decode_tasks(
    selected: pd.DataFrame, settings: PrepareSettings, chunk_dir: Path, done: _Stored
) -> tuple[list[int], list[DecodeTask]]:
    """Rows of ``selected`` that pass the metadata checks (the others go to ``done.skipped``) and their tasks.

    The checks: a row listing the audio of another row again (:func:`repeated_rows`), then the rating.
    """
    paths, labels = selected["source_path"].tolist(), selected["label"].tolist()
    repeated = repeated_rows(selected)
    if repeated:
        log.warning("%d row(s) list a recording again (a duplicate, or the same audio under another label) and are "
                    "skipped; skipped.csv says which and why", len(repeated))
    rows: list[int] = []
    for i, rating in enumerate(selected["rating"].to_numpy(dtype=float)):
        reason = repeated.get(i) or rating_reason(rating, settings.min_rating)
        if reason is None:
            rows.append(i)
        else:
            done.skipped.append((i, paths[i], labels[i], reason))
    sr, spans = settings.sample_rate_hz, decode_spans(selected, settings.max_duration_s)  # spans: (offset_s, crop)
    tasks = [
        DecodeTask(
            path=paths[i],
            key=cache_key(paths[i], max_duration_s=spans[i][1], sample_rate_hz=sr, offset_s=spans[i][0]),
            chunk_dir=str(chunk_dir),
            max_duration_s=spans[i][1],
            sample_rate_hz=sr,
            offset_s=spans[i][0],
        )
        for i in rows
    ]
    return rows, tasks


def _store(
    selected: pd.DataFrame, settings: PrepareSettings, partial: Path, *, workers: int | None, progress: bool
) -> _Stored:
    """Decode the usable rows of ``selected`` and write ``partial/waveforms.f16``.

    Rows are stored in ``selected`` order. Decoded recordings are cached in
    ``partial/chunks/``; cached ones are not decoded again.
    """
    chunk_dir = reset_partial(partial)
    keep_chunks_of_this_boot(chunk_dir)
    labels = selected["label"].tolist()
    done = _Stored()
    rows, tasks = _decode_tasks(selected, settings, chunk_dir, done)
    cached = [read_cached(t.chunk_dir, t.key) for t in tasks]
    pending = [t for t, c in zip(tasks, cached, strict=True) if c is None]
    n_workers = max(1, min(int(workers or cpu_count()), len(pending)))
    if pending:
        log.info(
            "decoding %d recordings on %d worker(s), %d cached", len(pending), n_workers, len(tasks) - len(pending)
        )
    decoded = decode_all(pending, workers=n_workers)
    try:
        with ChunkConcatenator(partial / STORE_FILE) as writer, _progress_bar(len(tasks), progress) as bar:
            for i, task, result in zip(rows, tasks, cached, strict=True):
                if result is None:
                    result = next(decoded)
                reason = skip_reason(result, settings=settings)
                if reason is not None and result.get("warning"):
                    reason = f"{reason}; {result['warning']}"
                if reason is None:
                    chunk = os.path.join(task.chunk_dir, task.key + ".f16")
                    placed = writer.append_chunk(chunk, num_samples=int(result["num_samples"]))
                    if placed is None:
                        reason = "unreadable: decoded chunk missing or incomplete; run prepare again"
                    else:
                        done.rows.append(i)
                        done.offsets.append(placed[0])
                        done.lengths.append(placed[1])
                        done.warnings.append(str(result.get("warning") or ""))
                if reason is not None:
                    done.skipped.append((i, task.path, labels[i], reason))
                bar.update(1)
            done.total_samples = writer.total_samples
    finally:
        decoded.close()
    return done
