"""``prepare``: decode a source once into a prepared dataset directory.

Steps: read the catalog (:mod:`~birdspec.data.catalog`), select species
(:mod:`~birdspec.data.species`), assign splits and folds on the selection
(:mod:`~birdspec.data.splits`; before any decoding, so a bad file never
changes the others' assignment), drop recordings by metadata (rating), decode
the rest to 32 kHz mono on worker processes, drop the unusable ones (empty,
unreadable, all silent, too short) and store the others as float16.

The directory written (see :mod:`birdspec.data.store` and
:mod:`birdspec.data.dataset`)::

    OUT/waveforms.f16   all kept recordings, raw little-endian float16
    OUT/manifest.csv    one row per kept recording
    OUT/skipped.csv     path,label,reason of every recording left out
    OUT/dataset.json    settings, classes, encoding, frontend, counts

Work happens in ``OUT.partial/``, renamed to ``OUT`` when complete, so an
interrupted run never leaves a directory that looks finished. Decoded
recordings are cached in ``OUT.partial/chunks/`` (keyed by file identity), so
running again after a crash only decodes what is missing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec import __version__
from birdspec.config import SAMPLE_RATE_HZ, EncodingConfig, FrontendConfig, from_dict, to_dict
from birdspec.data.catalog import LAYOUTS, SOURCE_PREFIX, load_catalog, secondary_labels_json
from birdspec.data.species import select_species, species_table, split_names
from birdspec.data.splits import stratified_folds, train_val_split
from birdspec.data.store import STORE_DTYPE, STORE_FILE
from birdspec.errors import AudioError, ConfigError, DataError

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
SKIPPED_FILE = "skipped.csv"
CHUNKS_DIR = "chunks"
PARTIAL_SUFFIX = ".partial"
FORMAT = "birdspec-dataset"
FORMAT_VERSION = 1

SILENCE_PEAK = 1e-4
"""A recording whose peak absolute amplitude is below this is "all silent"."""

MANIFEST_COLUMNS = (
    "id",
    "source_path",
    "filename",
    "label",
    "label_id",
    "secondary_labels",
    "scientific_name",
    "common_name",
    "rating",
    "duration_s",
    "offset",
    "num_samples",
    "split",
    "fold",
)
SKIPPED_COLUMNS = ("path", "label", "reason")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PrepareSettings:
    """Every option that changes what ``prepare`` writes (not ``workers``/``progress``).

    Stored as ``settings`` in ``dataset.json``; a complete output directory
    with equal settings is reused as is.
    """

    source: str
    layout: str = "auto"
    species: tuple[str, ...] | None = None
    top_n: int | None = None
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    min_rating: float | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    val_fraction: float = 0.3
    folds: int | None = None
    seed: int = 0
    path_column: str | None = None
    label_column: str | None = None
    fold_column: str | None = None
    sample_rate_hz: int = SAMPLE_RATE_HZ

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)}")
        if not isinstance(self.encoding, EncodingConfig):
            raise ConfigError(f"encoding must be an EncodingConfig, got {type(self.encoding).__name__}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.folds is not None and (isinstance(self.folds, bool) or int(self.folds) != self.folds or self.folds < 2):
            raise ConfigError(f"--folds must be an integer >= 2, got {self.folds}")
        if self.top_n is not None and (isinstance(self.top_n, bool) or int(self.top_n) != self.top_n or self.top_n < 1):
            raise ConfigError(f"--top-n must be a positive integer, got {self.top_n}")
        for name in ("min_duration_s", "max_duration_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds, got {value}")
        if self.min_rating is not None and not math.isfinite(self.min_rating):
            raise ConfigError(f"--min-rating must be a number, got {self.min_rating}")
        if self.min_duration_s and self.max_duration_s and self.min_duration_s > self.max_duration_s:
            raise ConfigError(
                f"--min-duration-s {self.min_duration_s:g} > --max-duration-s {self.max_duration_s:g}: "
                "nothing would be kept"
            )
        need = self.encoding.min_duration_s() if self.encoding.name == "stack10" else self.encoding.window_s
        if self.max_duration_s is not None and self.encoding.short_policy == "drop" and self.max_duration_s < need:
            raise ConfigError(
                f"--max-duration-s {self.max_duration_s:g} is shorter than the {need:g} s the {self.encoding.name} "
                f"encoding needs under --short-policy drop: every recording would be dropped"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (as stored in ``dataset.json``)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["species"] = list(self.species) if self.species is not None else None
        d["encoding"] = to_dict(self.encoding)
        return json.loads(json.dumps(d))


def min_samples_kept(encoding: EncodingConfig, *, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Fewest samples a recording needs to give one sample under ``short_policy='drop'``.

    ``num_windows * window`` for stack10 (1 600 000 = 50 s at 32 kHz by
    default), one window for window encoding.
    """
    w = encoding.window_samples(sample_rate_hz)
    return w * encoding.num_windows if encoding.name == "stack10" else w


def count_samples(num_samples: int, *, encoding: EncodingConfig, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Samples (model inputs) a recording of ``num_samples`` audio samples gives.

    stack10: 1 (0 when too short under ``drop``). window: one per full window,
    ``num_samples // window_samples``; a recording shorter than one window
    gives 1 under ``tile``/``pad`` and 0 under ``drop``.
    """
    if num_samples <= 0:
        return 0
    if encoding.name == "stack10":
        return int(
            encoding.short_policy != "drop" or num_samples >= min_samples_kept(encoding, sample_rate_hz=sample_rate_hz)
        )
    full = num_samples // encoding.window_samples(sample_rate_hz)
    return int(full if full > 0 or encoding.short_policy == "drop" else 1)


# --------------------------------------------------------------------------- decoding (worker side)


@dataclass(frozen=True)
class _Task:
    path: str
    key: str
    chunk_dir: str
    max_duration_s: float | None
    sample_rate_hz: int


def _cache_key(path: str, *, max_duration_s: float | None, sample_rate_hz: int) -> str:
    """Identity of a decoded recording: file path, size, mtime, crop and rate."""
    try:
        st = os.stat(path)
        ident = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        ident = "missing"
    text = f"{os.path.abspath(path)}\0{ident}\0{max_duration_s!r}\0{sample_rate_hz}"
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _read_cached(chunk_dir: str, key: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(chunk_dir, key + ".json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def _error_text(exc: BaseException, path: str) -> str:
    """A short, path-free message for skipped.csv (the row names the path already)."""
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    msg = msg.replace(f"{path}: ", "").replace(f"Error opening {path!r}: ", "")
    match = re.fullmatch(r"unreadable audio \((.*)\)", msg)
    if match:
        msg = match.group(1)
    return msg if isinstance(exc, AudioError) else f"{type(exc).__name__}: {msg}"


def _decode(task: _Task) -> dict[str, Any]:
    """Decode one recording into ``chunk_dir/<key>.f16`` (+ ``.json`` result).

    Returns ``{"num_samples", "peak"}`` or ``{"error", "kind"}``; never raises
    for a bad file. The ``.json`` is written last, so its presence means the
    chunk is complete.
    """
    cached = _read_cached(task.chunk_dir, task.key)
    if cached is not None:
        return cached
    base = os.path.join(task.chunk_dir, task.key)
    result: dict[str, Any]
    if not os.path.exists(task.path):
        result = {"kind": "missing", "error": "no such file"}
    elif os.path.getsize(task.path) == 0:
        result = {"kind": "empty", "error": "0 bytes"}
    else:
        try:
            wave = _load_audio(task)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
            msg = _error_text(exc, task.path)
            kind = "empty" if msg.endswith("no audio frames") else "unreadable"
            result = {"kind": kind, "error": msg}
        else:
            peak = _write_f16(wave, base + ".f16") if wave.size else 0.0
            result = {"num_samples": int(wave.size), "peak": peak if math.isfinite(peak) else None}
    _write_json_atomic(base + ".json", result)
    return result


_WRITE_BLOCK = 1 << 18
"""Samples converted to float16 and written at a time (stays in the CPU cache)."""


def _write_f16(wave: np.ndarray, path: str) -> float:
    """Write ``wave`` (``(n,)`` float32) to ``path`` as little-endian float16; return its peak ``max |x|``.

    Converts block by block, so no float16 copy of the whole recording is made.
    The file appears under its name only when complete. A non-finite sample
    gives a NaN peak.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    peak, finite = 0.0, True
    with open(tmp, "wb") as f:
        for start in range(0, wave.shape[0], _WRITE_BLOCK):
            block = wave[start : start + _WRITE_BLOCK]
            hi, lo = float(block.max()), float(block.min())
            finite = finite and math.isfinite(hi) and math.isfinite(lo)
            peak = max(peak, hi, -lo)
            f.write(block.astype(STORE_DTYPE).data)
    os.replace(tmp, path)
    return peak if finite else math.nan


def _load_audio(task: _Task) -> np.ndarray:
    from birdspec import audio

    return audio.load(task.path, sample_rate_hz=task.sample_rate_hz, duration_s=task.max_duration_s)


def _decode_all(tasks: Sequence[_Task], *, workers: int) -> Iterator[dict[str, Any]]:
    """Results of :func:`_decode` for ``tasks``, in order, decoded on ``workers`` processes.

    A worker that dies (a decoder crash) is survived: the task at the head is
    retried alone, and reported as unreadable if it kills a worker again.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _decode(task)
        return
    pos = 0
    while pos < len(tasks):
        rest = tasks[pos:]
        chunksize = max(1, min(8, len(rest) // (workers * 8)))
        pool = ProcessPoolExecutor(max_workers=min(workers, len(rest)))
        try:
            for result in pool.map(_decode, rest, chunksize=chunksize):
                yield result
                pos += 1
            return
        except BrokenProcessPool:
            log.warning("a decoding worker died at %s; retrying it alone", tasks[pos].path)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        yield _decode_isolated(tasks[pos])
        pos += 1


def _decode_isolated(task: _Task) -> dict[str, Any]:
    pool = ProcessPoolExecutor(max_workers=1)
    try:
        return pool.submit(_decode, task).result()
    except BrokenProcessPool:
        result = {"kind": "unreadable", "error": "the decoder crashed on this file"}
        _write_json_atomic(os.path.join(task.chunk_dir, task.key + ".json"), result)
        return result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- decisions (main side)


def _fmt_s(value: float, threshold: float) -> str:
    text = f"{value:.1f}"
    return f"{value:.3f}" if float(text) >= threshold else text


def skip_reason(
    result: dict[str, Any],
    *,
    settings: PrepareSettings,
) -> str | None:
    """Why a decoded recording is left out, or None to keep it."""
    if "error" in result:
        kind = result.get("kind", "unreadable")
        if kind == "empty":
            return "empty"
        if kind == "missing":
            return "missing: no such file"
        return f"unreadable: {result['error']}"
    n = int(result["num_samples"])
    if n == 0:
        return "empty"
    peak = result.get("peak")
    if peak is None:
        return "unreadable: non-finite samples"
    if peak < SILENCE_PEAK:
        return "all silent"
    sr = settings.sample_rate_hz
    duration = n / sr
    if settings.min_duration_s is not None and n < int(round(settings.min_duration_s * sr)):
        return f"duration {_fmt_s(duration, settings.min_duration_s)} s < min {settings.min_duration_s:g} s"
    enc = settings.encoding
    if enc.short_policy == "drop":
        need = min_samples_kept(enc, sample_rate_hz=sr)
        if n < need:
            return f"too short ({_fmt_s(duration, need / sr)} s < {need / sr:g} s, policy drop)"
    return None


def reason_kind(reason: str) -> str:
    """The kind of a skip reason: its words before the first number, ``(`` or ``:``.

    >>> reason_kind("too short (31.2 s < 50 s, policy drop)"), reason_kind("rating 2 < min 3")
    ('too short', 'rating')
    """
    return re.split(r"[(:\d]", str(reason), maxsplit=1)[0].strip() or str(reason)


# --------------------------------------------------------------------------- directory handling


def partial_dir(out_dir: str | Path) -> Path:
    """The sibling work directory ``OUT.partial`` of ``OUT``."""
    out = Path(out_dir)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _stored_settings(out: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((out / DATASET_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    return meta.get("settings")


def _out_state(out: Path, settings: dict[str, Any], *, overwrite: bool) -> tuple[bool, str | None]:
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


def _reset_partial(partial: Path) -> Path:
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


def _publish(partial: Path, out: Path) -> None:
    """Move the finished ``partial`` to ``out``, replacing an old ``out``."""
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(partial, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- prepare


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
        df["fold"] = stratified_folds(filenames, labels, n_folds=settings.folds, seed=settings.seed)
    return df


class _ChunkConcatenator:
    """Writes ``waveforms.f16`` by concatenating decoded chunk files.

    The chunks already hold the store's exact bytes (little-endian float16),
    so they are copied file to file by the kernel (``os.sendfile``) instead of
    being read into arrays and written back: the same bytes
    :class:`~birdspec.data.store.StoreWriter` would write, without the copies.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "wb", buffering=0)
        self.total_samples = 0

    def append_chunk(self, chunk_path: str, *, num_samples: int) -> tuple[int, int] | None:
        """Append a chunk of ``num_samples`` samples; ``(offset, num_samples)`` or None if it is not intact."""
        nbytes = num_samples * STORE_DTYPE.itemsize
        try:
            if os.path.getsize(chunk_path) != nbytes:
                return None
            with open(chunk_path, "rb", buffering=0) as src:
                _copy_file(src, self._f, nbytes)
        except OSError:
            self._f.truncate(self.total_samples * STORE_DTYPE.itemsize)
            self._f.seek(0, os.SEEK_END)
            return None
        offset = self.total_samples
        self.total_samples += num_samples
        return offset, num_samples

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> _ChunkConcatenator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy_file(src: Any, dst: Any, nbytes: int) -> None:
    """Copy ``nbytes`` from the start of ``src`` to the end of ``dst`` (both unbuffered)."""
    sent = 0
    if hasattr(os, "sendfile"):
        try:
            while sent < nbytes:
                n = os.sendfile(dst.fileno(), src.fileno(), sent, nbytes - sent)
                if n == 0:
                    raise OSError(f"{src.name}: shorter than expected")
                sent += n
            return
        except OSError as exc:  # no file-to-file sendfile here: copy in user space
            if sent or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
    src.seek(0)
    shutil.copyfileobj(src, dst, length=1 << 22)


def _rating_reason(rating: float, min_rating: float | None) -> str | None:
    """Why ``rating`` is too low, or None. NaN and 0 (BirdCLEF's "no score") count as unrated and pass."""
    if min_rating is None or not math.isfinite(rating) or rating == 0 or rating >= min_rating:
        return None
    return f"rating {rating:g} < min {min_rating:g}"


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
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Decode the recordings of ``source`` into a prepared dataset at ``out_dir``.

    Args:
        source: a dataset folder (BirdCLEF or folder-per-class) or a CSV manifest.
        out_dir: the dataset directory to write.
        layout: ``auto``, ``birdclef2021``, ``birdclef2022``, ``folders`` or ``csv``.
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
    encoding = encoding if encoding is not None else EncodingConfig()
    species_list = None if species is None else tuple(sorted(set(split_names(species))))  # order-free
    settings = PrepareSettings(
        source=os.path.abspath(source),
        layout=layout,
        species=species_list,
        top_n=top_n,
        encoding=encoding,
        min_rating=None if min_rating is None else float(min_rating),
        min_duration_s=None if min_duration_s is None else float(min_duration_s),
        max_duration_s=None if max_duration_s is None else float(max_duration_s),
        val_fraction=float(val_fraction),
        folds=None if folds is None else int(folds),
        seed=int(seed),
        path_column=path_column,
        label_column=label_column,
        fold_column=fold_column,
    )
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    out = Path(out_dir).absolute()
    settings_dict = settings.to_dict()
    reusable, conflict = _out_state(out, settings_dict, overwrite=overwrite)
    if reusable:
        log.info("%s: already prepared, reusing", out)
        return out

    catalog, used_layout = load_catalog(
        source, layout=layout, path_column=path_column, label_column=label_column, fold_column=fold_column
    )
    selected, labels = select_species(catalog, species=species_list, top_n=top_n)
    if conflict is not None:  # after the source checks: their errors come first
        raise ConfigError(conflict)
    selected = _assign_folds(selected, settings)
    selected = selected.sort_values(["label", "filename"], kind="mergesort").reset_index(drop=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_dir(out)
    stored = _store(selected, settings, partial, workers=workers, progress=progress)
    skipped = pd.DataFrame([row[1:] for row in sorted(stored.skipped)], columns=list(SKIPPED_COLUMNS))
    skipped.to_csv(partial / SKIPPED_FILE, index=False)
    if not stored.rows:
        raise DataError(
            f"no usable recordings: all {len(selected)} selected recordings were skipped "
            f"(reasons in {partial / SKIPPED_FILE})"
        )
    kept = selected.iloc[stored.rows].reset_index(drop=True)
    # The train/val split is drawn among the recordings kept, so it is ~70/30 within every species
    # whatever cleaning removed (the study split the samples that were left).
    kept["split"] = train_val_split(
        kept["filename"].tolist(), kept["label"].tolist(), val_fraction=settings.val_fraction, seed=settings.seed
    )
    classes = sorted(kept["label"].unique())
    lost = sorted(set(labels) - set(classes))
    if lost:
        log.warning("no usable recordings left for %d species: %s", len(lost), ", ".join(lost))
    manifest = _manifest(kept, classes, np.asarray(stored.offsets), np.asarray(stored.lengths), settings.sample_rate_hz)
    manifest.to_csv(partial / MANIFEST_FILE, index=False)
    n_folds = settings.folds
    if settings.fold_column is not None:
        n_folds = int(catalog["fold"].max()) + 1
    meta = _dataset_meta(
        settings,
        layout=used_layout,
        manifest=manifest,
        class_info=species_table(kept).set_index("label"),
        folds=n_folds,
        skipped=len(skipped),
        total_samples=stored.total_samples,
    )
    (partial / DATASET_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(partial / CHUNKS_DIR, ignore_errors=True)
    _publish(partial, out)

    wall = time.perf_counter() - t0
    audio_s = stored.total_samples / settings.sample_rate_hz
    log.info(
        "prepared %s: %d recordings of %d species (%.1f min of audio) in %.1f s (%.0fx real time); skipped %d (see %s)",
        out,
        len(manifest),
        len(classes),
        audio_s / 60,
        wall,
        audio_s / max(wall, 1e-9),
        len(skipped),
        out / SKIPPED_FILE,
    )
    return out


@dataclass
class _Stored:
    """What :func:`_store` did: kept rows with their place in the store, and skipped rows."""

    rows: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str, str, str]] = field(default_factory=list)  # (row, path, label, reason)
    total_samples: int = 0


def _store(
    selected: pd.DataFrame, settings: PrepareSettings, partial: Path, *, workers: int | None, progress: bool
) -> _Stored:
    """Decode the usable rows of ``selected`` and write ``partial/waveforms.f16``.

    Rows are stored in ``selected`` order. Decoded recordings are cached in
    ``partial/chunks/``; cached ones are not decoded again.
    """
    chunk_dir = _reset_partial(partial)
    sr = settings.sample_rate_hz
    paths, labels = selected["source_path"].tolist(), selected["label"].tolist()
    done = _Stored()
    rows: list[int] = []
    for i, rating in enumerate(selected["rating"].to_numpy(dtype=float)):
        reason = _rating_reason(rating, settings.min_rating)
        if reason is None:
            rows.append(i)
        else:
            done.skipped.append((i, paths[i], labels[i], reason))
    tasks = [
        _Task(
            path=paths[i],
            key=_cache_key(paths[i], max_duration_s=settings.max_duration_s, sample_rate_hz=sr),
            chunk_dir=str(chunk_dir),
            max_duration_s=settings.max_duration_s,
            sample_rate_hz=sr,
        )
        for i in rows
    ]
    cached = [_read_cached(t.chunk_dir, t.key) for t in tasks]
    pending = [t for t, c in zip(tasks, cached) if c is None]
    n_workers = max(1, min(int(workers or os.cpu_count() or 1), len(pending)))
    if pending:
        log.info(
            "decoding %d recordings on %d worker(s), %d cached", len(pending), n_workers, len(tasks) - len(pending)
        )
    decoded = _decode_all(pending, workers=n_workers)
    try:
        with _ChunkConcatenator(partial / STORE_FILE) as writer, _progress_bar(len(tasks), progress) as bar:
            for i, task, result in zip(rows, tasks, cached):
                if result is None:
                    result = next(decoded)
                reason = skip_reason(result, settings=settings)
                if reason is None:
                    chunk = os.path.join(task.chunk_dir, task.key + ".f16")
                    placed = writer.append_chunk(chunk, num_samples=int(result["num_samples"]))
                    if placed is None:
                        reason = "unreadable: decoded chunk missing or incomplete; run prepare again"
                    else:
                        done.rows.append(i)
                        done.offsets.append(placed[0])
                        done.lengths.append(placed[1])
                if reason is not None:
                    done.skipped.append((i, task.path, labels[i], reason))
                bar.update(1)
            done.total_samples = writer.total_samples
    finally:
        decoded.close()
    return done


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
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
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
    kept: pd.DataFrame, classes: list[str], offsets: np.ndarray, lengths: np.ndarray, sr: int
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
        }
    )
    extra_cols = [c for c in kept.columns if c not in m.columns and c != "secondary_labels"]
    extra = kept[extra_cols].rename(columns={c: SOURCE_PREFIX + c for c in extra_cols if c in MANIFEST_COLUMNS})
    return pd.concat([m, extra], axis=1)


# --------------------------------------------------------------------------- describe


def describe(dataset_dir: str | Path) -> dict[str, Any]:
    """Summary of a prepared dataset (what ``birdspec info`` prints).

    Returns:
        A JSON-ready dict: ``path``, ``source``, ``layout``, ``created_utc``,
        ``num_recordings``, ``num_samples`` (model inputs under the encoding:
        recordings for stack10, windows for window), ``duration_s`` (stored
        audio), ``classes``, ``per_class`` (label -> recordings),
        ``per_class_samples`` (label -> samples), ``splits`` (split ->
        recordings), ``folds`` (fold -> recordings, or None), ``encoding``,
        ``frontend``, ``sample_shape`` (``[channels, n_mels, frames]``, e.g.
        ``[10, 128, 321]``), ``skipped`` (count), ``skipped_reasons``
        (reason kind -> count), ``settings``.

    Raises:
        DataError: ``dataset_dir`` is not a complete prepared dataset.
    """
    root = Path(dataset_dir)
    meta_path = root / DATASET_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = " (an interrupted prepare? run it again)" if partial_dir(root).exists() else ""
        raise DataError(f"{root}: not a prepared dataset (no {DATASET_FILE}){hint}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta_path}: unreadable ({exc}); prepare the dataset again") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{meta_path}: not a birdspec dataset description")
    try:
        manifest = pd.read_csv(root / MANIFEST_FILE, dtype={"id": str, "label": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{root / MANIFEST_FILE}: unreadable ({exc}); prepare the dataset again") from exc
    skipped_path = root / SKIPPED_FILE
    skipped = (
        pd.read_csv(skipped_path, dtype=str, keep_default_na=False)
        if skipped_path.is_file() and skipped_path.stat().st_size
        else pd.DataFrame(columns=list(SKIPPED_COLUMNS))
    )
    encoding = from_dict(EncodingConfig, meta["encoding"])
    frontend = from_dict(FrontendConfig, meta.get("frontend", {}))
    sr = int(meta.get("sample_rate_hz", SAMPLE_RATE_HZ))
    lengths = manifest["num_samples"].to_numpy(np.int64)
    samples = np.array([count_samples(int(n), encoding=encoding, sample_rate_hz=sr) for n in lengths], dtype=np.int64)
    labels = manifest["label"].astype(str)
    classes = list(meta["classes"])
    folds = None
    if meta.get("folds"):
        fold_col = manifest["fold"].astype(np.int64)
        folds = {int(k): int((fold_col == k).sum()) for k in range(int(meta["folds"]))}
    window = encoding.window_samples(sr)
    return {
        "path": str(root.absolute()),
        "source": meta.get("source"),
        "layout": meta.get("layout"),
        "created_utc": meta.get("created_utc"),
        "num_recordings": int(len(manifest)),
        "num_samples": int(samples.sum()),
        "duration_s": float(lengths.sum() / sr),
        "classes": classes,
        "per_class": {c: int((labels == c).sum()) for c in classes},
        "per_class_samples": {c: int(samples[(labels == c).to_numpy()].sum()) for c in classes},
        "splits": {s: int((manifest["split"] == s).sum()) for s in ("train", "val")},
        "folds": folds,
        "encoding": to_dict(encoding),
        "frontend": to_dict(frontend),
        "sample_shape": [encoding.in_channels, frontend.n_mels, frontend.num_frames(window)],
        "skipped": int(len(skipped)),
        "skipped_reasons": {str(k): int(v) for k, v in skipped["reason"].map(reason_kind).value_counts().items()},
        "settings": meta.get("settings"),
    }
