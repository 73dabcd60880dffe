"""Reading a finished embedding cache: :class:`EmbeddingCache` and the torch Dataset over it.

This module owns the read side of the per-window embedding cache written by
:func:`birdspec.data.embed.embed_dataset` (:mod:`birdspec.data.embeddings`
defines the format): :class:`EmbeddingCache` (memory-mapped, picklable),
:class:`EmbeddingDataset` (mirrors :class:`~birdspec.data.dataset.RecordingDataset`
for models with ``ModelSpec.input == 'embedding'``) and the collate functions
that zero-pad recordings of different lengths (:func:`collate_embeddings`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from birdspec.data.embeddings import (
    EMBEDDINGS_DTYPE,
    EMBEDDINGS_FILE,
    EMBEDDINGS_FORMAT,
    EMBEDDINGS_FORMAT_VERSION,
    EMBEDDINGS_META_FILE,
    INDEX_FILE,
    NOCALL_EMBEDDINGS_FILE,
    NOCALL_INDEX_FILE,
    dataset_fingerprint,
    embedding_dir,
    partial_embedding_dir,
    read_index,
    read_nocall_index,
)
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError

EMBEDDING_LEVELS = ("recording", "window")
"""What one :class:`EmbeddingDataset` sample is: a recording's windows, or one window."""


def _missing_message(root: Path, backbone: str) -> str:
    """What to do about a missing cache; for BirdNET without the extra, install it first."""
    run = f"run `birdspec embed {root} --backbone {backbone}`"
    if backbone == "birdnet":
        from birdspec.birdnet.backend import INSTALL_HINT, birdnet_available

        if not birdnet_available():
            return f"no BirdNET embeddings in {root}, and {INSTALL_HINT}; then {run}"
    return f"no {'BirdNET' if backbone == 'birdnet' else backbone} embeddings in {root}; {run}"


class EmbeddingCache:
    """Read-only view of a finished embedding cache (memory-mapped lazily, picklable).

    Attributes:
        dir: the cache folder.
        meta: ``embeddings.json``.
        index: ``index.csv`` indexed by manifest row.
        dim / window_s / hop_s: from ``meta``.
        nocall_meta: the no-bird part's entry of ``meta`` (None: the cache has none, see
            :mod:`birdspec.data.embeddings`); :attr:`nocall_index` and :meth:`nocall_clip` read it.

    Raises:
        DataError: no finished cache (says how to make one) or a stale one.
    """

    def __init__(self, data: PreparedDataset | str | Path, *, backbone: str = "birdnet") -> None:
        ds = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
        self.dir = embedding_dir(ds.root, backbone)
        meta_path = self.dir / EMBEDDINGS_META_FILE
        if not meta_path.is_file():
            partial = partial_embedding_dir(ds.root, backbone)
            hint = " (an interrupted run: run it again to finish)" if partial.exists() else ""
            raise DataError(_missing_message(ds.root, backbone) + hint)
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}: corrupt ({exc}); run `birdspec embed {ds.root} --backbone {backbone} --overwrite`") from exc
        if self.meta.get("format") != EMBEDDINGS_FORMAT:
            raise DataError(f"{meta_path}: not a birdspec embedding cache")
        if int(self.meta.get("format_version", 1)) > EMBEDDINGS_FORMAT_VERSION:
            raise DataError(f"{meta_path}: written by a newer birdspec (format {self.meta.get('format_version')}); "
                            "update birdspec, or run `birdspec embed` with --overwrite")
        if self.meta.get("dataset", {}).get("sha1") != dataset_fingerprint(ds)["sha1"]:
            raise DataError(
                f"{self.dir}: computed for another version of {ds.root} (re-prepared?); "
                f"run `birdspec embed {ds.root} --backbone {backbone}` again"
            )
        self.backbone = backbone
        self.dim = int(self.meta["dim"])
        self.window_s = float(self.meta["window_s"])
        self.hop_s = float(self.meta["hop_s"])
        self.index = read_index(self.dir / INDEX_FILE).set_index("row", drop=False)
        self._first = self.index["first_window"].to_dict()
        self._count = self.index["num_windows"].to_dict()
        self._map: np.ndarray | None = None
        self.nocall_meta: dict[str, Any] | None = self.meta.get("nocall") or None
        self._nocall_index: Any = None
        self._nocall_map: np.ndarray | None = None

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
        state["_map"] = state["_nocall_map"] = None  # each worker process opens its own map
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

    @property
    def nocall_index(self) -> Any:
        """``nocall.csv`` (one row per no-bird clip: key, kind, part, row, id, source, start_s, first_window,
        num_windows), or None when the cache has no no-bird part."""
        if self.nocall_meta is None:
            return None
        if self._nocall_index is None:
            self._nocall_index = read_nocall_index(self.dir / self.nocall_meta.get("index", NOCALL_INDEX_FILE))
        return self._nocall_index

    def nocall_clip(self, clip: int) -> np.ndarray:
        """The windows of no-bird clip ``clip`` (a :attr:`nocall_index` position): ``(W, dim)`` float32."""
        if self._nocall_map is None:
            path = self.dir / self.nocall_meta.get("file", NOCALL_EMBEDDINGS_FILE)  # type: ignore[union-attr]
            total = int(self.nocall_meta["total_windows"])  # type: ignore[index]
            if not path.is_file() or path.stat().st_size != total * self.dim * EMBEDDINGS_DTYPE.itemsize:
                raise DataError(f"{path}: missing or truncated; run `birdspec embed` on the dataset again")
            self._nocall_map = np.memmap(path, dtype=EMBEDDINGS_DTYPE, mode="r", shape=(total, self.dim))
        first, n = (int(v) for v in self.nocall_index[["first_window", "num_windows"]].iloc[int(clip)])
        return np.asarray(self._nocall_map[first : first + n], dtype=np.float32)

    @property
    def window_rule(self) -> str:
        """The BirdNET window rule its no-bird clips were embedded under (:mod:`birdspec.birdnet.geometry`):
        a head trained on them predicts under it. A cache without clips: the rule of new clips."""
        from birdspec.birdnet.geometry import LEGACY_WINDOW_RULE, WINDOW_RULE, check_window_rule

        if self.nocall_meta is None:
            return WINDOW_RULE
        return check_window_rule(str((self.nocall_meta.get("settings") or {}).get("window_rule", LEGACY_WINDOW_RULE)))

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
    return (embedding_dir(root, backbone) / EMBEDDINGS_META_FILE).is_file()


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
        if level not in EMBEDDING_LEVELS:
            raise ConfigError(f"unknown level {level!r}; use one of {', '.join(EMBEDDING_LEVELS)}")
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


def collate_embeddings(batch: Sequence[tuple[torch.Tensor, Any]], *, with_mask: bool = False) -> tuple[Any, torch.Tensor]:
    """DataLoader ``collate_fn`` for :class:`EmbeddingDataset` samples of varying length.

    Returns ``(x (B, W, D), labels (B,))`` with zero padding (which the heads
    ignore), or ``((x, mask (B, W) bool), labels)`` with ``with_mask=True``
    (use ``functools.partial(collate_embeddings, with_mask=True)``). Multi-label
    targets (a ``(K,)`` vector per sample, ``--labels multi``) give ``(B, K)`` floats.
    """
    x, mask = pad_windows([item[0] for item in batch])
    if np.ndim(batch[0][1]) > 0:
        y = torch.stack([torch.as_tensor(item[1], dtype=torch.float32) for item in batch])
    else:
        y = torch.tensor([int(item[1]) for item in batch], dtype=torch.long)
    return ((x, mask), y) if with_mask else (x, y)


collate_embeddings_with_mask = functools.partial(collate_embeddings, with_mask=True)
"""``collate_embeddings(..., with_mask=True)`` ready to pass as ``collate_fn``."""
