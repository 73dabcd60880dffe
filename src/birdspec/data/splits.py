"""Train/validation splits and cross-validation folds (pure functions).

A row is a recording, so every split is grouped by recording: a recording is
on one side only. Both functions are deterministic in ``(filenames, labels,
seed)`` and independent of row order; :func:`train_val_split` is also
independent of which *other* species are selected (each label has its own
random stream).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from birdspec.errors import ConfigError

TRAIN = "train"
VAL = "val"


def _check_lengths(filenames: Sequence[str], labels: Sequence[str]) -> None:
    if len(filenames) != len(labels):
        raise ValueError(f"{len(filenames)} filenames but {len(labels)} labels")


def filename_order(filenames: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Indices that sort rows by filename (ties by label, then original position)."""
    _check_lengths(filenames, labels)
    # np.lexsort sorts by the last key first and is stable.
    return (
        np.lexsort((np.asarray(labels, dtype=str), np.asarray(filenames, dtype=str)))
        if len(filenames)
        else np.zeros(0, dtype=np.int64)
    )


def num_val(n: int, val_fraction: float) -> int:
    """Recordings of a class of ``n`` that go to validation.

    ``round(n * val_fraction)``, but at least 1 when ``n >= 2`` and
    ``val_fraction > 0``, and never all of them.

    >>> [num_val(n, 0.3) for n in (1, 2, 3, 10, 27)]
    [0, 1, 1, 3, 8]
    """
    if n < 2 or val_fraction <= 0:
        return 0
    return int(min(max(round(n * val_fraction), 1), n - 1))


def train_val_split(
    filenames: Sequence[str],
    labels: Sequence[str],
    *,
    val_fraction: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """Stratified train/val assignment, one entry per recording.

    Per label, the recordings sorted by filename are shuffled with a random
    stream seeded by ``(seed, crc32(label))`` and the first
    :func:`num_val` go to validation.

    Args:
        filenames: ``(n,)`` recording file names (unique within a label).
        labels: ``(n,)`` primary labels.
        val_fraction: share of each class in validation, in ``[0, 1)``.
        seed: random seed.

    Returns:
        ``(n,)`` object array of ``"train"``/``"val"``, aligned with the input.

    Raises:
        ConfigError: ``val_fraction`` outside ``[0, 1)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = filename_order(filenames, labels)
    labels_arr = np.asarray(labels, dtype=str)
    out = np.full(len(order), TRAIN, dtype=object)
    sorted_labels = labels_arr[order]
    for label in np.unique(sorted_labels):
        members = order[sorted_labels == label]  # in filename order
        k = num_val(len(members), val_fraction)
        if k == 0:
            continue
        rng = np.random.default_rng([int(seed), zlib.crc32(str(label).encode("utf-8"))])
        out[members[rng.permutation(len(members))[:k]]] = VAL
    return out


def stratified_folds(
    filenames: Sequence[str],
    labels: Sequence[str],
    *,
    n_folds: int,
    seed: int = 0,
) -> np.ndarray:
    """Cross-validation fold of every recording.

    Exactly: rows sorted by filename (:func:`filename_order`), then
    ``sklearn.model_selection.StratifiedKFold(n_splits=n_folds, shuffle=True,
    random_state=seed)`` on the labels; a row's fold is the index of the split
    in which it is the test set.

    Returns:
        ``(n,)`` int64 array of folds in ``0..n_folds-1``, aligned with the input.

    Raises:
        ConfigError: ``n_folds < 2`` or more folds than recordings of the
            largest class allows.
    """
    from sklearn.model_selection import StratifiedKFold

    if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {n_folds}")
    order = filename_order(filenames, labels)
    y = np.asarray(labels, dtype=str)[order]
    out = np.full(len(order), -1, dtype=np.int64)
    skf = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=int(seed))
    try:
        for fold, (_, test) in enumerate(skf.split(np.zeros(len(y)), y)):
            out[order[test]] = fold
    except ValueError as exc:
        raise ConfigError(f"cannot make {n_folds} folds: {exc}") from exc
    return out
