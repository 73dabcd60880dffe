"""No-bird samples of the models that read cached embeddings: the cache's no-bird clips, drawn like crops.

The waveform models draw no-bird crops from audio (:class:`~birdspec.data.nocall.NoCallSource`); the
``birdnet-*`` heads read embeddings, so ``birdspec embed`` embedded no-bird clips once
(:mod:`birdspec.data.embed_nocall`; format in :mod:`birdspec.data.embeddings`), each one output window
as prediction sees it. :class:`NoCallClips` is the pool one side of a run draws from (the quiet-stretch
clips of its own recordings, the synthetic and background clips of its part: training or validation,
disjoint) and draws as :class:`~birdspec.data.nocall.NoCallSource` does: a kind uniformly among the kinds
there are, then a clip of it. :class:`WithNoCallEmbeddings` appends such samples to a dataset, as
:class:`~birdspec.data.nocall.WithNoCall` does for waveforms (new draws in training, fixed ones seeded
by index in validation).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from birdspec.data.embeddings import NOCALL_KINDS
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def missing_nocall_message(cache: Any) -> str:
    """What to do about a cache without no-bird clips (made before birdspec embedded them, or interrupted)."""
    root = cache.dir.parent.parent
    return (f"{cache.dir} holds no no-bird clips (made before birdspec embedded them, or their run was interrupted); "
            f"run `birdspec embed {root} --backbone {cache.backbone}` again (it adds them without recomputing the "
            "recordings' embeddings), or train without no-bird samples: --nocall-fraction 0")


class NoCallClips:
    """The cached no-bird clips one side of a run draws from.

    Args:
        cache: an :class:`~birdspec.data.embedding_dataset.EmbeddingCache` with a no-bird part.
        rows: the manifest rows whose quiet-stretch clips are drawn (the side's recordings).
        part: 'train' or 'val': which synthetic / background clips.
        synthetic: draw synthetic clips too.
        background_dir: draw the clips of this ``--background`` folder (it must be the one the cache embedded).

    Raises:
        DataError: the cache has no no-bird part (says to run ``birdspec embed`` again), or no clip qualifies.
        ConfigError: ``background_dir`` is not the folder the cache's background clips come from.
    """

    def __init__(self, cache: Any, *, rows: Sequence[int] | np.ndarray, part: str, synthetic: bool = True,
                 background_dir: str | Path | None = None) -> None:
        index = cache.nocall_index
        if index is None:
            raise DataError(missing_nocall_message(cache))
        if background_dir is not None:
            embedded = (cache.nocall_meta.get("settings") or {}).get("background") or {}
            if embedded.get("dir") != str(Path(background_dir).resolve()):
                root = cache.dir.parent.parent
                raise ConfigError(
                    f"--background {background_dir}: the no-bird clips of {cache.dir} hold no clips of that folder "
                    f"({'they are of ' + embedded['dir'] if embedded.get('dir') else 'none of any folder'}); run "
                    f"`birdspec embed {root} --backbone {cache.backbone} --background {background_dir}` first"
                )
        self.cache = cache
        kind, own = index["kind"].to_numpy(), index["part"].to_numpy() == part
        wanted = {
            "stretch": (kind == "stretch") & np.isin(index["row"].to_numpy(), np.asarray(rows, dtype=np.int64)),
            "background": (kind == "background") & own & (background_dir is not None),
            "synthetic": (kind == "synthetic") & own & bool(synthetic),
        }
        self.pools = {k: np.flatnonzero(wanted[k]) for k in NOCALL_KINDS if wanted[k].any()}
        self.kinds = list(self.pools)
        if not self.kinds:
            raise DataError(
                f"{cache.dir}: no cached no-bird clip for the {part} side (no quiet stretch in its recordings, no "
                "background clips, synthetic ones off); keep the synthetic backgrounds on, give --background DIR "
                "(after `birdspec embed ... --background DIR`), or --nocall-fraction 0"
            )

    def describe(self) -> str:
        return ", ".join(f"{len(self.pools[k])} {k}" for k in self.kinds)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One no-bird sample: the windows ``(W, dim)`` float32 of a clip (a kind first, then a clip of it)."""
        pool = self.pools[self.kinds[int(rng.integers(len(self.kinds)))]]
        return self.cache.nocall_clip(int(pool[int(rng.integers(len(pool)))]))


class WithNoCallEmbeddings(Dataset):
    """A dataset's ``(x, y)`` samples followed by ``count`` no-bird samples ``(clip windows (W, dim), nocall_target)``.

    Args:
        base: yields ``(x (W, dim), y)`` (an :class:`~birdspec.data.embedding_dataset.EmbeddingDataset`, possibly
            wrapped); its other attributes (``sample_rows``, ``labels``, ``data``, ...) are this dataset's too.
        clips: where the no-bird samples come from.
        count: no-bird samples added after the base samples.
        nocall_target: the no-bird class id K (single-label) or a ``(K,)`` zero vector (multi-label).
        seed: None (training): a new clip every time; an int: sample ``i`` is always the same clip.

    Recordings and clips have different numbers of windows: batches are zero-padded
    (:func:`~birdspec.data.embedding_dataset.collate_embeddings`; the heads ignore padding). With a base of
    fixed ``max_windows``, clips are padded (or cut) to it.
    """

    def __init__(self, base: Any, clips: NoCallClips, count: int, nocall_target: Any, *, seed: int | None = None) -> None:
        if count < 0:
            raise ConfigError(f"count must be >= 0, got {count}")
        self.base = base
        self.clips = clips
        self.count = int(count)
        self.nocall_target = nocall_target
        self.seed = seed

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base) + self.count

    @property
    def num_nocall(self) -> int:
        return self.count

    def nocall_sample(self, i: int) -> np.ndarray:
        """No-bird sample ``i`` (``0 <= i < count``): ``(W, dim)`` float32."""
        from birdspec.data.nocall import torch_seeded_rng

        rng = np.random.default_rng([int(self.seed), int(i)]) if self.seed is not None else torch_seeded_rng()
        x = self.clips.draw(rng)
        fixed = getattr(self.base, "max_windows", None)
        if fixed:
            x = np.concatenate([x[:fixed], np.zeros((max(0, fixed - x.shape[0]), x.shape[1]), dtype=np.float32)])
        return x

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        n_base = len(self.base)
        if index < n_base:
            return self.base[index]
        x = torch.from_numpy(np.ascontiguousarray(self.nocall_sample(index - n_base)))
        y = self.nocall_target
        y = torch.from_numpy(np.array(y, dtype=np.float32)) if isinstance(y, np.ndarray) else int(y)
        return x, y
