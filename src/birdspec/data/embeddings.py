"""Per-window backbone embeddings cached beside a prepared dataset, and a Dataset over them.

``birdspec embed DIR --backbone birdnet`` (:func:`embed_dataset`) runs a frozen
backbone over every stored recording once and writes::

    DIR/embeddings/birdnet/
        embeddings.f16   raw little-endian float16, shape (total_windows, dim), row-major
        index.csv        one row per recording: id, row (manifest row), first_window,
                         num_windows, duration_s, window_starts_s (space-separated seconds)
        embeddings.json  {"format": "birdspec-embeddings", "backbone", "backbone_version",
                         "window_s": 3.0, "hop_s", "sample_rate_hz": 48000, "dim": 1024,
                         "dtype": "float16", "num_recordings", "total_windows",
                         "dataset": fingerprint of the manifest, "created_utc", ...}

Windows (BirdNET: 3 s at 48 kHz, resampled from the stored 32 kHz audio with
soxr) start at ``0, hop, 2 * hop, ...`` and lie inside the recording; the
trailing partial window is dropped; a recording shorter than one window
gives one zero-padded window. Recording ``row``'s embeddings are
``embeddings[first_window : first_window + num_windows]``.

Resuming: the work goes to ``DIR/embeddings/birdnet.partial/`` in chunks of
recordings (data appended and flushed first, then their index rows), so an
interrupted run continues where it stopped; the finished folder is renamed
into place at the end. Re-running on a finished cache with the same settings
is a no-op; a cache of a re-prepared dataset (other manifest) is recomputed.

:class:`EmbeddingDataset` mirrors :class:`~birdspec.data.dataset.RecordingDataset`
for models with ``ModelSpec.input == 'embedding'``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EMBEDDINGS_DIR = "embeddings"
EMBEDDINGS_FILE = "embeddings.f16"
INDEX_FILE = "index.csv"
META_FILE = "embeddings.json"
SETTINGS_FILE = "settings.json"
PARTIAL_SUFFIX = ".partial"
EMBEDDINGS_FORMAT = "birdspec-embeddings"
EMBEDDINGS_DTYPE = np.dtype("<f2")
INDEX_COLUMNS = ("id", "row", "first_window", "num_windows", "duration_s", "window_starts_s")
BACKBONES = ("birdnet",)
LEVELS = ("recording", "window")


class WindowEmbedder(Protocol):
    """What :func:`embed_dataset` needs from a backbone (:class:`~birdspec.birdnet.BirdnetBackbone` is one)."""

    name: str
    sample_rate_hz: int
    window_s: float
    embedding_dim: int

    @property
    def version(self) -> str: ...

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """``(N, window_s * sample_rate_hz)`` float32 -> ``(N, embedding_dim)``."""
        ...


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed_dataset` did.

    Attributes:
        path: the cache folder.
        num_recordings / num_windows: the whole cache.
        computed_recordings / computed_windows: embedded by this call (0 for a no-op).
        audio_s: seconds of audio embedded by this call.
        elapsed_s: wall time of the embedding (excluding model loading).
    """

    path: Path
    num_recordings: int
    num_windows: int
    computed_recordings: int
    computed_windows: int
    audio_s: float
    elapsed_s: float

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio embedded per second of wall time (0 when nothing was computed)."""
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def embedding_dir(root: str | Path, backbone: str = "birdnet") -> Path:
    """``root/embeddings/<backbone>``."""
    return Path(root) / EMBEDDINGS_DIR / backbone


def _missing_message(root: Path, backbone: str) -> str:
    return f"no {'BirdNET' if backbone == 'birdnet' else backbone} embeddings in {root}; run `birdspec embed {root} --backbone {backbone}`"


def dataset_fingerprint(data: PreparedDataset) -> dict[str, Any]:
    """Identifies the manifest the cache was computed for (recording ids, lengths and store offsets)."""
    m = data.manifest
    h = hashlib.sha1()
    for rid, off, n in zip(m["id"].astype(str), m["offset"].astype(np.int64), m["num_samples"].astype(np.int64)):
        h.update(f"{rid}:{off}:{n};".encode())
    return {"num_recordings": int(len(m)), "sha1": h.hexdigest(), "sample_rate_hz": int(data.sample_rate_hz)}


class _BackboneGeometry:
    """The window geometry of a named backbone, known without loading it."""

    def __init__(self, backbone: str) -> None:
        from birdspec.birdnet import backend

        self.name = backbone
        self.window_s = backend.WINDOW_S
        self.sample_rate_hz = backend.SAMPLE_RATE_HZ
        self.embedding_dim = backend.EMBEDDING_DIM


def _settings(model: WindowEmbedder, hop_s: float, fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {
        "backbone": model.name,
        "window_s": float(model.window_s),
        "hop_s": float(hop_s),
        "sample_rate_hz": int(model.sample_rate_hz),
        "dim": int(model.embedding_dim),
        "dataset": fingerprint,
    }


def _same(a: dict[str, Any], b: dict[str, Any], keys: Iterable[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in keys)


_SETTING_KEYS = ("backbone", "window_s", "hop_s", "sample_rate_hz", "dim")


def _frame(wave: np.ndarray, *, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Full windows of ``wave`` at ``0, hop, ...``; shorter audio -> one zero-padded window."""
    if wave.shape[0] <= window:
        out = np.zeros((1, window), dtype=np.float32)
        out[0, : wave.shape[0]] = wave
        return out, np.zeros(1, dtype=np.int64)
    n = 1 + (wave.shape[0] - window) // hop
    view = np.lib.stride_tricks.sliding_window_view(wave, window)[::hop][:n]
    return np.ascontiguousarray(view, dtype=np.float32), np.arange(n, dtype=np.int64) * hop


def _read_index(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"id": str, "window_starts_s": str}, keep_default_na=False)
    for col in ("row", "first_window", "num_windows"):
        df[col] = df[col].astype(np.int64)
    return df


def _load_partial(partial: Path, dim: int) -> pd.DataFrame:
    """The index rows of a usable partial cache (data file trimmed to them)."""
    index = _read_index(partial / INDEX_FILE)
    data_path = partial / EMBEDDINGS_FILE
    have = data_path.stat().st_size // (dim * EMBEDDINGS_DTYPE.itemsize) if data_path.exists() else 0
    ends = (index["first_window"] + index["num_windows"]).to_numpy()
    consistent = (index["first_window"].to_numpy() == np.concatenate([[0], ends[:-1]])) if len(index) else np.ones(0, bool)
    ok = np.cumprod(consistent & (ends <= have)).astype(bool)
    index = index[ok].reset_index(drop=True)
    keep = int(index["first_window"].iloc[-1] + index["num_windows"].iloc[-1]) if len(index) else 0
    with open(data_path, "ab") as f:
        f.truncate(keep * dim * EMBEDDINGS_DTYPE.itemsize)
    index.to_csv(partial / INDEX_FILE, index=False)
    return index


def embed_dataset(
    data: PreparedDataset | str | Path,
    *,
    backbone: str = "birdnet",
    hop_s: float = 3.0,
    num_threads: int | None = None,
    batch_size: int = 8,
    chunk_windows: int = 256,
    overwrite: bool = False,
    progress: bool = True,
    model: WindowEmbedder | None = None,
) -> EmbedReport:
    """Compute (or resume, or reuse) the per-window embedding cache of a prepared dataset.

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
    final = embedding_dir(ds.root, backbone)
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    fingerprint = dataset_fingerprint(ds)
    settings = _settings(model or _BackboneGeometry(backbone), hop_s, fingerprint)

    if (final / META_FILE).is_file():
        meta = json.loads((final / META_FILE).read_text())
        if _same(meta, settings, _SETTING_KEYS):
            if meta.get("dataset") == fingerprint:
                log.debug("%s: embeddings up to date (%d recordings, %d windows); nothing to do", final, meta["num_recordings"], meta["total_windows"])
                return EmbedReport(final, int(meta["num_recordings"]), int(meta["total_windows"]), 0, 0, 0.0, 0.0)
            log.warning("%s: computed for another version of the dataset (re-prepared?); computing them again", final)
        elif not overwrite:
            raise ConfigError(
                f"{final} holds embeddings with other settings (hop_s={meta.get('hop_s')}, backbone={meta.get('backbone')}); "
                "pass --overwrite to replace them"
            )
    if model is None:  # before touching the folder: a missing optional extra must leave no trace
        from birdspec.birdnet.backend import BirdnetBackbone

        model = BirdnetBackbone(num_threads=num_threads, batch_size=batch_size)
    if _settings(model, hop_s, fingerprint) != settings:
        raise ConfigError(f"the {backbone} backbone does not have the expected window geometry")
    index = pd.DataFrame(columns=list(INDEX_COLUMNS))
    if partial.is_dir():
        old = json.loads((partial / SETTINGS_FILE).read_text()) if (partial / SETTINGS_FILE).is_file() else {}
        if _same(old, settings, _SETTING_KEYS) and old.get("dataset") == fingerprint and (partial / INDEX_FILE).is_file():
            index = _load_partial(partial, int(settings["dim"]))
            if len(index):
                log.info("resuming %s: %d recordings already embedded", partial, len(index))
        elif old and not _same(old, settings, _SETTING_KEYS) and not overwrite:
            raise ConfigError(f"{partial} is an interrupted run with other settings (hop_s={old.get('hop_s')}); pass --overwrite to discard it")
        else:
            shutil.rmtree(partial)
    if not partial.is_dir():
        partial.mkdir(parents=True)
        (partial / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))
        pd.DataFrame(columns=list(INDEX_COLUMNS)).to_csv(partial / INDEX_FILE, index=False)
        (partial / EMBEDDINGS_FILE).touch()

    m = ds.manifest
    done = set(index["row"].astype(int).tolist())
    todo = [r for r in range(len(m)) if r not in done]
    next_window = int(index["first_window"].iloc[-1] + index["num_windows"].iloc[-1]) if len(index) else 0
    lengths = m["num_samples"].to_numpy(np.int64)
    sr_in = ds.sample_rate_hz
    window = int(round(model.window_s * model.sample_rate_hz))
    hop = int(round(hop_s * model.sample_rate_hz))
    total_audio_s = float(lengths[todo].sum()) / sr_in if todo else 0.0

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=round(total_audio_s), unit="s", desc=f"embed {backbone}", leave=False, dynamic_ncols=True)
    from birdspec.audio import resample

    started = time.perf_counter()
    computed_windows = 0
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (row, windows, starts)
    pending_n = 0

    def flush() -> None:
        nonlocal next_window, computed_windows, pending, pending_n
        if not pending:
            return
        batch = np.concatenate([w for _, w, _ in pending])
        emb = np.asarray(model.embed(batch), dtype=np.float32)
        if emb.shape != (batch.shape[0], model.embedding_dim) or not np.isfinite(emb).all():
            raise DataError(f"the {backbone} backbone returned embeddings of shape {emb.shape} (or non-finite values)")
        with open(partial / EMBEDDINGS_FILE, "ab") as f:
            f.write(np.ascontiguousarray(emb, dtype=EMBEDDINGS_DTYPE).tobytes())
            f.flush()
            os.fsync(f.fileno())
        rows_out = []
        for row, w, starts in pending:
            rows_out.append({
                "id": str(m["id"].iloc[row]),
                "row": row,
                "first_window": next_window,
                "num_windows": int(w.shape[0]),
                "duration_s": round(float(lengths[row]) / sr_in, 4),
                "window_starts_s": " ".join(f"{s / model.sample_rate_hz:g}" for s in starts),
            })
            next_window += int(w.shape[0])
        pd.DataFrame(rows_out, columns=list(INDEX_COLUMNS)).to_csv(partial / INDEX_FILE, mode="a", header=False, index=False)
        computed_windows += batch.shape[0]
        if bar is not None:
            bar.update(round(sum(float(lengths[r]) / sr_in for r, _, _ in pending)))
        pending, pending_n = [], 0

    try:
        for row in todo:
            wave = ds.store.read(int(m["offset"].iloc[row]), int(lengths[row]))
            wave = resample(wave, orig_sample_rate_hz=sr_in, sample_rate_hz=model.sample_rate_hz)
            windows, starts = _frame(wave, window=window, hop=hop)
            pending.append((row, windows, starts))
            pending_n += windows.shape[0]
            if pending_n >= chunk_windows:
                flush()
        flush()
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started

    index = _read_index(partial / INDEX_FILE)
    if sorted(index["row"].tolist()) != list(range(len(m))):
        raise DataError(f"{partial}: the index does not cover every recording; delete the folder and run `birdspec embed` again")
    index = index.sort_values("row").reset_index(drop=True)
    total = int((index["num_windows"]).sum())
    meta = {
        "format": EMBEDDINGS_FORMAT,
        "format_version": 1,
        **{k: settings[k] for k in _SETTING_KEYS},
        "backbone_version": model.version,
        "dtype": "float16",
        "file": EMBEDDINGS_FILE,
        "num_recordings": int(len(index)),
        "total_windows": total,
        "dataset": fingerprint,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if backbone == "birdnet":
        meta["licence"] = "BirdNET model: CC BY-NC-SA 4.0 (non-commercial)"
    (partial / META_FILE).write_text(json.dumps(meta, indent=2))
    (partial / SETTINGS_FILE).unlink(missing_ok=True)
    old = final.with_name(final.name + ".old")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    partial.rename(final)
    if old.exists():
        shutil.rmtree(old)
    audio_s = total_audio_s
    log.info(
        "embedded %d recordings (%d windows, %.1f min of audio) in %.1f s (%.0fx real time) -> %s",
        len(todo), computed_windows, audio_s / 60, elapsed, audio_s / elapsed if elapsed > 0 else 0.0, final,
    )
    return EmbedReport(final, int(len(index)), total, len(todo), computed_windows, audio_s, elapsed)


class EmbeddingCache:
    """Read-only view of a finished embedding cache (memory-mapped lazily, picklable).

    Attributes:
        dir: the cache folder.
        meta: ``embeddings.json``.
        index: ``index.csv`` indexed by manifest row.
        dim / window_s / hop_s: from ``meta``.

    Raises:
        DataError: no finished cache (says how to make one) or a stale one.
    """

    def __init__(self, data: PreparedDataset | str | Path, *, backbone: str = "birdnet") -> None:
        ds = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
        self.dir = embedding_dir(ds.root, backbone)
        meta_path = self.dir / META_FILE
        if not meta_path.is_file():
            partial = self.dir.with_name(self.dir.name + PARTIAL_SUFFIX)
            hint = " (an interrupted run: run it again to finish)" if partial.exists() else ""
            raise DataError(_missing_message(ds.root, backbone) + hint)
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}: corrupt ({exc}); run `birdspec embed {ds.root} --backbone {backbone} --overwrite`") from exc
        if self.meta.get("format") != EMBEDDINGS_FORMAT:
            raise DataError(f"{meta_path}: not a birdspec embedding cache")
        if self.meta.get("dataset", {}).get("sha1") != dataset_fingerprint(ds)["sha1"]:
            raise DataError(
                f"{self.dir}: computed for another version of {ds.root} (re-prepared?); "
                f"run `birdspec embed {ds.root} --backbone {backbone}` again"
            )
        self.backbone = backbone
        self.dim = int(self.meta["dim"])
        self.window_s = float(self.meta["window_s"])
        self.hop_s = float(self.meta["hop_s"])
        self.index = _read_index(self.dir / INDEX_FILE).set_index("row", drop=False)
        self._first = self.index["first_window"].to_dict()
        self._count = self.index["num_windows"].to_dict()
        self._map: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """All embeddings, ``(total_windows, dim)`` float16 (memory-mapped)."""
        if self._map is None:
            path = self.dir / self.meta.get("file", EMBEDDINGS_FILE)
            total = int(self.meta["total_windows"])
            if not path.is_file() or path.stat().st_size != total * self.dim * EMBEDDINGS_DTYPE.itemsize:
                raise DataError(f"{path}: missing or truncated; run `birdspec embed --overwrite` on the dataset")
            self._map = np.memmap(path, dtype=EMBEDDINGS_DTYPE, mode="r", shape=(total, self.dim))
        return self._map

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_map"] = None  # each worker process opens its own map
        return state

    def has(self, row: int) -> bool:
        return int(row) in self._count

    def num_windows(self, row: int) -> int:
        return int(self._count[int(row)])

    def windows(self, row: int, start: int = 0, length: int | None = None) -> np.ndarray:
        """Embeddings of manifest row ``row``: ``(num_windows, dim)`` float32 (or a contiguous slice)."""
        first, n = int(self._first[int(row)]), int(self._count[int(row)])
        stop = n if length is None else min(n, start + length)
        return np.asarray(self.array[first + start : first + stop], dtype=np.float32)

    def starts_s(self, row: int) -> np.ndarray:
        """Start times (seconds) of the windows of manifest row ``row``."""
        text = str(self.index.loc[int(row), "window_starts_s"]).strip()
        return np.array([float(v) for v in text.split()], dtype=np.float64) if text else np.zeros(0)


def load_embedding_cache(data: PreparedDataset | str | Path, *, backbone: str = "birdnet") -> EmbeddingCache:
    """The finished cache of ``data`` (see :class:`EmbeddingCache`)."""
    return EmbeddingCache(data, backbone=backbone)


def has_embeddings(data: PreparedDataset | str | Path, *, backbone: str = "birdnet") -> bool:
    """True when ``data`` has a finished embedding cache of ``backbone``."""
    root = data.root if isinstance(data, PreparedDataset) else Path(data)
    return (embedding_dir(root, backbone) / META_FILE).is_file()


class EmbeddingDataset(Dataset):
    """Cached backbone embeddings of a prepared dataset as ``(x, label_id)`` samples.

    Args:
        data: a :class:`PreparedDataset` or its directory (with an embedding cache).
        rows: manifest rows to use (default: all, or those of ``split``).
        split: 'train', 'val' or 'all' (ignored when ``rows`` is given).
        level: 'recording': one sample per recording, ``x`` = its window
            embeddings ``(W, dim)``; 'window': one sample per window, ``(1, dim)``.
        max_windows: at most this many windows per recording sample (evaluation:
            the first ``max_windows``). When set, every recording sample is
            zero-padded to exactly ``(max_windows, dim)``, so the default
            DataLoader collate works; otherwise ``W`` varies and batches need
            ``collate_fn=collate_embeddings``.
        random_crop: (training, level 'recording') a random contiguous run of
            windows, of random length in ``[min(min_crop_windows, n), min(n, max_windows)]``.
        min_crop_windows: shortest random crop (3 windows = 9 s of BirdNET audio).
        backbone: which cache ('birdnet').

    Zero rows are padding: BirdNET embeddings of real audio are never all
    zero, and the ``birdnet-*`` heads treat all-zero windows as masked out.

    Attributes (as :class:`~birdspec.data.dataset.RecordingDataset`):
        sample_rows: manifest row of each sample; sample_windows: window index
        (level 'window', else 0); labels: label id of each sample; classes;
        in_channels (= dim, 1024 for BirdNET); features = 'embedding'.
    """

    features = "embedding"

    def __init__(
        self,
        data: PreparedDataset | str | Path,
        *,
        rows: Sequence[int] | np.ndarray | None = None,
        split: str | None = None,
        level: str = "recording",
        max_windows: int | None = None,
        random_crop: bool = False,
        min_crop_windows: int = 3,
        backbone: str = "birdnet",
    ) -> None:
        self.data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
        if level not in LEVELS:
            raise ConfigError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        if max_windows is not None and max_windows < 1:
            raise ConfigError(f"max_windows must be >= 1, got {max_windows}")
        if min_crop_windows < 1:
            raise ConfigError(f"min_crop_windows must be >= 1, got {min_crop_windows}")
        self.cache = EmbeddingCache(self.data, backbone=backbone)
        self.level = level
        self.max_windows = max_windows
        self.random_crop = random_crop
        self.min_crop_windows = min_crop_windows
        self.rows = np.asarray(self.data.select(split=split) if rows is None else rows, dtype=np.int64)
        missing = [int(r) for r in self.rows if not self.cache.has(int(r))]
        if missing:
            raise DataError(
                f"{self.cache.dir}: no embeddings for {len(missing)} of {len(self.rows)} recordings "
                f"(manifest rows {missing[:5]}...); run `birdspec embed {self.data.root} --backbone {backbone}` again"
            )
        label_ids = self.data.manifest["label_id"].to_numpy(np.int64)
        counts = np.array([self.cache.num_windows(int(r)) for r in self.rows], dtype=np.int64)
        if level == "recording":
            self.sample_rows = self.rows.copy()
            self.sample_windows = np.zeros(len(self.rows), dtype=np.int64)
        else:
            self.sample_rows = np.repeat(self.rows, counts)
            self.sample_windows = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
        self.labels = label_ids[self.sample_rows]

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    @property
    def in_channels(self) -> int:
        """Embedding size (1024 for BirdNET)."""
        return self.cache.dim

    @property
    def sample_shape(self) -> tuple[int, int]:
        """``(max_windows or 1, dim)``; with level 'recording' and no max_windows the first size varies."""
        return (1 if self.level == "window" else (self.max_windows or -1), self.cache.dim)

    def __len__(self) -> int:
        return len(self.sample_rows)

    def _rand(self, low: int, high: int) -> int:
        """Uniform integer in ``[low, high]``."""
        return low if high <= low else int(torch.randint(low, high + 1, (1,)).item())

    def embeddings(self, index: int) -> np.ndarray:
        """Embeddings of sample ``index``: ``(W, dim)`` float32 (unpadded)."""
        row = int(self.sample_rows[index])
        if self.level == "window":
            return self.cache.windows(row, int(self.sample_windows[index]), 1)
        n = self.cache.num_windows(row)
        cap = min(n, self.max_windows or n)
        if self.random_crop:
            length = self._rand(min(self.min_crop_windows, cap), cap)
            return self.cache.windows(row, self._rand(0, n - length), length)
        return self.cache.windows(row, 0, cap)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.embeddings(index)
        if self.level == "recording" and self.max_windows is not None and x.shape[0] < self.max_windows:
            x = np.concatenate([x, np.zeros((self.max_windows - x.shape[0], x.shape[1]), dtype=np.float32)])
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.labels[index])


def pad_windows(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(W_i, D)`` tensors into ``(B, max W_i, D)`` zero-padded, with a ``(B, max W_i)`` bool mask."""
    if not items:
        raise ConfigError("cannot collate an empty batch")
    w = max(int(t.shape[0]) for t in items)
    d = int(items[0].shape[-1])
    x = torch.zeros(len(items), w, d, dtype=items[0].dtype)
    mask = torch.zeros(len(items), w, dtype=torch.bool)
    for i, t in enumerate(items):
        x[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return x, mask


def collate_embeddings(batch: Sequence[tuple[torch.Tensor, int]], *, with_mask: bool = False) -> tuple[Any, torch.Tensor]:
    """DataLoader ``collate_fn`` for :class:`EmbeddingDataset` samples of varying length.

    Returns ``(x (B, W, D), labels (B,))`` with zero padding (which the heads
    ignore), or ``((x, mask (B, W) bool), labels)`` with ``with_mask=True``
    (use ``functools.partial(collate_embeddings, with_mask=True)``).
    """
    x, mask = pad_windows([item[0] for item in batch])
    y = torch.tensor([int(item[1]) for item in batch], dtype=torch.long)
    return ((x, mask), y) if with_mask else (x, y)


collate_embeddings_with_mask = functools.partial(collate_embeddings, with_mask=True)
"""``collate_embeddings(..., with_mask=True)`` ready to pass as ``collate_fn``."""
