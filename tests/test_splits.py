"""Splits keep the windows of one file together (CSV manifests with start_s/end_s, e.g. windows verified in
``birdspec serve``): no validation or test window may come from a recording the model trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdspec.data.splits import file_groups, inner_split, stratified_folds, train_val_split


def _windows(files_per_label: int = 6, windows: int = 4):
    """Rows = windows of files; each file has one label, except file 0 of label b, which also holds an a window."""
    files, labels = [], []
    for lab in "abc":
        for f in range(files_per_label):
            for _ in range(windows):
                files.append(f"{lab}{f}.flac")
                labels.append(lab)
    labels[len(labels) // 3] = "a"  # b0.flac: one window of species a, three of b
    return files, labels


def _one_side_per_file(files, assignment):
    per_file = pd.DataFrame({"file": files, "side": assignment}).groupby("file")["side"].nunique()
    return bool((per_file == 1).all())


def test_train_val_split_keeps_files_together_and_stays_stratified():
    files, labels = _windows()
    split = train_val_split(files, labels, val_fraction=0.3, seed=0, groups=files)
    assert _one_side_per_file(files, split)
    per_label_files = pd.DataFrame({"file": files, "label": labels, "split": split}).drop_duplicates("file")
    assert (per_label_files.groupby("label")["split"].apply(lambda s: (s == "val").sum()) == 2).all()  # round(6 * 0.3)
    ungrouped = train_val_split(files, labels, val_fraction=0.3, seed=0)
    assert not _one_side_per_file(files, ungrouped)  # what the groups prevent


def test_folds_keep_files_together():
    files, labels = _windows()
    folds = stratified_folds(files, labels, n_folds=3, seed=0, groups=files)
    assert _one_side_per_file(files, folds) and sorted(set(folds)) == [0, 1, 2]
    assert folds.dtype == np.int64


def test_unique_groups_give_exactly_the_ungrouped_split():
    rng = np.random.default_rng(1)
    files = [f"XC{i}.ogg" for i in rng.permutation(40)]
    labels = [["a", "b", "c", "d"][i % 4] for i in range(40)]
    paths = [f"/data/{lab}/{f}" for f, lab in zip(files, labels, strict=True)]
    assert train_val_split(files, labels, seed=3, groups=paths).tolist() == train_val_split(files, labels, seed=3).tolist()
    assert stratified_folds(files, labels, n_folds=5, seed=3, groups=paths).tolist() == \
        stratified_folds(files, labels, n_folds=5, seed=3).tolist()
    rows, y = np.arange(40), np.array(labels)
    for a, b in zip(inner_split(rows, y, fraction=0.25, seed=2, groups=paths), inner_split(rows, y, fraction=0.25, seed=2), strict=True):
        assert a.tolist() == b.tolist()


def test_inner_split_keeps_files_together():
    files, labels = _windows()
    rows = np.arange(len(files)) + 100  # row numbers of a bigger manifest
    train, val = inner_split(rows, np.array(labels), fraction=0.25, seed=0, groups=files)
    assert sorted(train.tolist() + val.tolist()) == rows.tolist()
    side = np.where(np.isin(rows, val), "val", "train")
    assert _one_side_per_file(files, side)
    assert len({files[r - 100] for r in val}) == 6  # 2 of each label's 6 files (round(0.25 * 6))


def test_file_groups_reads_the_manifest():
    manifest = pd.DataFrame({"source_path": ["/a.flac", "/a.flac", "/b.flac"]})
    assert file_groups(manifest, [2, 0]) == ["/b.flac", "/a.flac"]
    assert file_groups(pd.DataFrame({"x": [1]}), [0]) is None


def test_prepare_puts_the_windows_of_a_file_on_one_side(tmp_path):
    from birdspec.config import EncodingConfig
    from birdspec.data.prepare import prepare
    from birdspec.data.prepared import PreparedDataset

    from helpers import class_signal, write_audio

    rows = []
    for k in range(6):
        label = "xy"[k % 2]
        write_audio(tmp_path / f"r{k}.flac", class_signal(k % 2, duration_s=20.0, sample_rate_hz=32000, seed=k), 32000)
        rows += [(f"r{k}.flac", float(s), float(s) + 5.0, label) for s in (0, 5, 10)]
    csv = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["path", "start_s", "end_s", "label"]).to_csv(csv, index=False)
    out = prepare(csv, tmp_path / "ds", encoding=EncodingConfig(name="window", short_policy="tile"), folds=3,
                  workers=1, progress=False)
    manifest = PreparedDataset(out).manifest
    assert len(manifest) == 18
    assert _one_side_per_file(manifest["source_path"].tolist(), manifest["split"].tolist())
    assert _one_side_per_file(manifest["source_path"].tolist(), manifest["fold"].tolist())
    assert set(manifest["split"]) == {"train", "val"}


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_inner_split_fraction_is_checked(fraction):
    from birdspec.errors import ConfigError

    with pytest.raises(ConfigError):
        inner_split(np.arange(4), np.array([0, 0, 1, 1]), fraction=fraction, seed=0, groups=["a", "a", "b", "c"])
