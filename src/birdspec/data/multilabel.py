"""Multi-label targets from primary + secondary labels, and the training dataset that yields them.

:func:`label_targets` owns the rule: every manifest row gets a ``(K,)`` target
vector with 1.0 at its primary label and ``secondary_weight`` at each of its
secondary labels that is one of the dataset's classes (a secondary label equal
to the primary stays 1.0; labels outside the classes are ignored and counted).

:class:`MultiLabelDataset` wraps a sample dataset (``(x, label_id)``, e.g.
:class:`~birdspec.data.dataset.RecordingDataset`) and yields ``(x, targets)``
instead. Every other attribute (``sample_rows``, ``labels``, ``data``,
...) is the wrapped dataset's, so evaluation code reads it unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from birdspec.data.catalog import parse_label_list
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelTargets:
    """Target vectors of manifest rows.

    Attributes:
        targets: ``(n_rows, K)`` float32 in class order.
        ignored: secondary labels that are not among the classes, with their counts.
        secondary_used: how many (row, class) secondary entries were set.
    """

    targets: np.ndarray
    ignored: Counter
    secondary_used: int


def label_targets(manifest: pd.DataFrame, classes: Sequence[str], *, secondary_weight: float = 1.0) -> LabelTargets:
    """Multi-label targets of every manifest row (see the module doc for the rule).

    Args:
        manifest: rows with ``label`` (primary) and optionally ``secondary_labels``
            (a JSON list, BirdCLEF's Python-list string, or a list).
        classes: the K class labels, in output order.
        secondary_weight: target value of a secondary label, in [0, 1].

    Raises:
        ConfigError: a weight outside [0, 1]; DataError-free: unknown primaries raise ConfigError too.
    """
    if not 0.0 <= secondary_weight <= 1.0:
        raise ConfigError(f"--secondary-weight must be in [0, 1], got {secondary_weight}")
    index = {c: i for i, c in enumerate(classes)}
    n = len(manifest)
    targets = np.zeros((n, len(classes)), dtype=np.float32)
    ignored: Counter = Counter()
    used = 0
    primaries = manifest["label"].astype(str).tolist()
    secondaries = manifest["secondary_labels"].tolist() if "secondary_labels" in manifest else [[]] * n
    for r, (primary, cell) in enumerate(zip(primaries, secondaries, strict=True)):
        if primary not in index:
            raise ConfigError(f"manifest row {r} has primary label {primary!r}, not one of the dataset's classes")
        for label in parse_label_list(cell):
            k = index.get(label)
            if k is None:
                ignored[label] += 1
            elif label != primary and secondary_weight > 0:
                targets[r, k] = max(targets[r, k], secondary_weight)
                used += 1
        targets[r, index[primary]] = 1.0
    return LabelTargets(targets, ignored, used)


def log_targets(found: LabelTargets, *, rows: int) -> None:
    """One log line on what the secondary labels gave (and what was ignored)."""
    ignored = sum(found.ignored.values())
    common = ", ".join(f"{k} ({v})" for k, v in found.ignored.most_common(5))
    log.info(
        "multi-label targets for %d recordings: %d secondary labels of the dataset's classes used; "
        "%d secondary labels outside the classes ignored%s",
        rows, found.secondary_used, ignored, f" (most often {common})" if ignored else "",
    )


class MultiLabelDataset(Dataset):
    """``(x, targets)`` samples: the wrapped dataset's inputs with multi-label targets.

    Args:
        base: a dataset yielding ``(x, label_id)`` with ``sample_rows`` (manifest row per sample).
        targets: ``(n_manifest_rows, K)`` target vectors (:func:`label_targets`).

    No-bird samples (all-zero targets) are appended by :class:`~birdspec.data.nocall.WithNoCall`.
    """

    def __init__(self, base: Any, targets: np.ndarray) -> None:
        self.base = base
        self.targets = np.asarray(targets, dtype=np.float32)

    def __getattr__(self, name: str) -> Any:  # sample_rows, labels, data, classes, in_channels, ...
        if name == "base":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.base[index]
        y = self.targets[int(self.base.sample_rows[index])]
        return x, torch.from_numpy(np.ascontiguousarray(y))
