"""Train/validation splits and cross-validation folds (pure functions).

A row is a recording, so every split is grouped by recording: a recording is
on one side only. Both functions are deterministic in ``(filenames, labels,
seed)`` and independent of row order; :func:`train_val_split` is also
independent of which *other* species are selected (each label has its own
random stream).

When several rows are windows of one file (a CSV manifest with ``start_s`` /
``end_s``, e.g. windows verified in ``birdspec serve``), pass ``groups`` (the
file of each row): the rows of a group then always land on the same side, so
no validation window comes from a recording the model trained on. The split
is drawn over the groups, each standing for its first filename and its most
common label; without repeated groups the result is exactly the ungrouped one.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from birdspec.errors import ConfigError, DataError

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


def _by_group(split: Callable[..., np.ndarray], filenames: Sequence[str], labels: Sequence[str],
              groups: Sequence[str] | None, **kwargs) -> np.ndarray:
    """``split`` drawn over the groups (rows sharing a group get its value); plain ``split`` without repeats."""
    if groups is None or len(set(groups)) == len(groups):
        return split(filenames, labels, **kwargs)
    if len(groups) != len(filenames):
        raise ValueError(f"{len(groups)} groups for {len(filenames)} rows")
    import pandas as pd

    rows = pd.DataFrame({"group": np.asarray(groups, dtype=str), "filename": np.asarray(filenames, dtype=str),
                         "label": np.asarray(labels, dtype=str)})
    first = rows.groupby("group", sort=True)["filename"].min()
    counts = rows.groupby(["group", "label"]).size().reset_index(name="n").sort_values(
        ["group", "n", "label"], ascending=[True, False, True], kind="stable")
    label = counts.drop_duplicates("group").set_index("group")["label"].reindex(first.index)
    per_group = pd.Series(split(first.tolist(), label.tolist(), **kwargs), index=first.index)
    return per_group.reindex(rows["group"]).to_numpy()


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
    groups: Sequence[str] | None = None,
) -> np.ndarray:
    """Stratified train/val assignment, one entry per recording (or per group of rows).

    Per label, the recordings sorted by filename are shuffled with a random
    stream seeded by ``(seed, crc32(label))`` and the first
    :func:`num_val` go to validation.

    Args:
        filenames: ``(n,)`` recording file names (unique within a label).
        labels: ``(n,)`` primary labels.
        val_fraction: share of each class in validation, in ``[0, 1)``.
        seed: random seed.
        groups: ``(n,)`` the file of each row when rows are windows of files (see the module doc).

    Returns:
        ``(n,)`` object array of ``"train"``/``"val"``, aligned with the input.

    Raises:
        ConfigError: ``val_fraction`` outside ``[0, 1)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if groups is not None:
        return _by_group(train_val_split, filenames, labels, groups, val_fraction=val_fraction, seed=seed)
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
    groups: Sequence[str] | None = None,
) -> np.ndarray:
    """Cross-validation fold of every recording (or of every group of rows, ``groups`` as in :func:`train_val_split`).

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
    if groups is not None:
        return _by_group(stratified_folds, filenames, labels, groups, n_folds=n_folds, seed=seed).astype(np.int64)
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


def inner_split(
    rows: np.ndarray, labels: np.ndarray, *, fraction: float, seed: int, groups: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of recordings ``rows`` (labels ``labels``) into (train, val): cv's and L2-SP's inner validation.

    Each class with n >= 2 recordings gives ``round(fraction * n)`` of them,
    clamped to ``[1, n - 1]``, to validation; a class with a single recording
    stays in training. With ``groups`` (the file of each row, aligned with
    ``rows``) that repeat, the split is drawn over the files (each with its
    most common label) and all rows of a file go to the same side.

    Raises:
        ConfigError: ``fraction`` outside (0, 1).
        DataError: no class has two recordings (no validation split possible).
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"--inner-val-fraction must be in (0, 1), got {fraction}")
    rows = np.asarray(rows, dtype=np.int64)
    labels = np.asarray(labels)
    if groups is not None and len(set(groups)) < len(rows):
        names, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        group_label = np.array([_most_common(labels[inverse == g]) for g in range(len(names))])
        _, val_groups = inner_split(np.arange(len(names)), group_label, fraction=fraction, seed=seed)
        val_arr = np.sort(rows[np.isin(inverse, val_groups)])
        return np.setdiff1d(rows, val_arr), val_arr
    rng = np.random.default_rng(seed)
    val: list[int] = []
    for c in np.unique(labels):
        members = rows[labels == c]
        if members.size < 2:
            continue
        n_val = int(np.clip(round(fraction * members.size), 1, members.size - 1))
        val.extend(rng.permutation(members)[:n_val].tolist())
    if not val:
        raise DataError("the training folds have no class with 2 recordings; an inner validation split is impossible "
                        "(use --fixed-epochs, or fewer folds)")
    val_arr = np.sort(np.asarray(val, dtype=np.int64))
    return np.setdiff1d(rows, val_arr), val_arr


def _most_common(values: np.ndarray):
    uniq, counts = np.unique(values, return_counts=True)
    return uniq[np.argmax(counts)]  # ties: the smallest value


def file_groups(manifest, rows: Sequence[int] | np.ndarray) -> list[str] | None:
    """The source file of each of a prepared manifest's ``rows`` (the ``groups`` of :func:`inner_split`)."""
    if "source_path" not in manifest:
        return None
    return manifest["source_path"].astype(str).to_numpy()[np.asarray(rows, dtype=np.int64)].tolist()
