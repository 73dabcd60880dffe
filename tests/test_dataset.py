"""Reading prepared datasets: encodings, crops, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birdspec.config import EncodingConfig
from birdspec.data.dataset import RecordingDataset
from birdspec.data.prepared import PreparedDataset
from birdspec.data.store import WaveformStore
from birdspec.errors import ConfigError, DataError
from birdspec.training.config import TrainConfig
from birdspec.windowing import fit_window

from helpers import StoreWriter


def test_stack_dataset_yields_logmel_stacks(tiny_stack_dataset):
    ds = RecordingDataset(tiny_stack_dataset, split="train")
    x, y = ds[0]
    assert x.shape == (2, 128, 65) and x.dtype == torch.float32
    assert ds.sample_shape == (2, 128, 65)
    assert len(ds) == 18 and set(ds.labels) == {0, 1, 2}


def test_waveform_features_and_first_windows(tiny_stack_dataset):
    data = PreparedDataset(tiny_stack_dataset)
    ds = RecordingDataset(data, split="val", features="waveform")
    x, _ = ds[0]
    assert x.shape == (2, 32000)
    whole = data.waveform(int(ds.sample_rows[0]))
    np.testing.assert_allclose(x.numpy().ravel(), whole[:64000])


def test_window_encoding_gives_floor_duration_windows(tiny_window_dataset):
    data = PreparedDataset(tiny_window_dataset)
    ds = RecordingDataset(data, features="waveform")
    assert len(ds) == 3 * len(data.manifest)  # 3 s recordings, 1 s windows
    x, _ = ds[1]
    whole = data.waveform(int(ds.sample_rows[1]))
    np.testing.assert_allclose(x.numpy()[0], whole[32000:64000])


def test_random_crops_stay_inside_the_recording(tiny_stack_dataset):
    data = PreparedDataset(tiny_stack_dataset)
    ds = RecordingDataset(data, features="waveform", random_crop=True)
    torch.manual_seed(0)
    whole = data.waveform(int(ds.sample_rows[0]))
    starts = set()
    for _ in range(10):
        x = ds.waveform(0).ravel()
        idx = np.flatnonzero(np.isclose(whole, x[0]) & np.isclose(np.roll(whole, -1), x[1]))
        assert idx.size > 0
        starts.add(int(idx[0]))
    assert len(starts) > 1


def test_crops_per_recording_weigh_recordings_equally(tiny_window_dataset):
    data = PreparedDataset(tiny_window_dataset)
    rows = data.select(split="train")
    ds = RecordingDataset(data, rows=rows, features="waveform", random_crop=True, crops_per_recording=4)
    assert len(ds) == 4 * len(rows)  # not 3 windows per recording
    assert np.bincount(ds.sample_rows).max() == 4
    torch.manual_seed(0)
    whole = data.waveform(int(ds.sample_rows[0]))
    starts = set()
    for _ in range(12):
        x = ds.waveform(0).ravel()
        assert x.shape == (32000,)
        idx = np.flatnonzero(np.isclose(whole, x[0]) & np.isclose(np.roll(whole, -1), x[1]))
        starts.add(int(idx[0]))
    assert len(starts) > 3 and max(starts) <= whole.shape[0] - 32000  # anywhere in the recording, never past its end


def test_short_training_crops(tiny_window_dataset):
    ds = RecordingDataset(tiny_window_dataset, features="waveform", random_crop=True, crop_samples=16000)
    assert ds.sample_shape == (1, 16000) and ds[0][0].shape == (1, 16000)
    assert RecordingDataset(tiny_window_dataset, crop_samples=16000).sample_shape == (1, 128, 33)


def test_crops_avoid_quiet_stretches(tiny_window_dataset):
    """Known answer: 3 s recordings, 0.5 s crops; row 0 quiet over its first 2 s -> its crops start at 1.75 s or
    later (at most half of a crop quiet); a recording without stretches keeps crops anywhere."""
    data = PreparedDataset(tiny_window_dataset)
    ds = RecordingDataset(data, features="waveform", random_crop=True, crops_per_recording=4, crop_samples=16000)
    m = data.manifest
    off0, n0 = int(m["offset"].iloc[0]), int(m["num_samples"].iloc[0])
    ds.avoid_quiet([(off0, n0, 0, 2 * 32000)])

    def starts(index, draws=40):
        whole = data.waveform(int(ds.sample_rows[index]))
        found = set()
        for _ in range(draws):
            x = ds.waveform(index).ravel()
            found.add(int(np.flatnonzero(np.isclose(whole, x[0]) & np.isclose(np.roll(whole, -1), x[1]))[0]))
        return found

    torch.manual_seed(0)
    first = starts(0)
    assert min(first) >= int(1.75 * 32000) and max(first) <= n0 - 16000 and len(first) > 3
    other = int(np.flatnonzero(ds.sample_rows != 0)[0])
    assert min(starts(other)) < int(1.75 * 32000)  # no stretches given: anywhere
    ds.avoid_quiet([(off0, n0, 0, n0)])  # quiet everywhere: no crop qualifies, so anywhere again
    assert min(starts(0)) < int(1.75 * 32000)


def test_crop_options_are_checked(tiny_window_dataset, tiny_stack_dataset):
    with pytest.raises(ConfigError, match="random_crop"):
        RecordingDataset(tiny_window_dataset, crops_per_recording=2)
    with pytest.raises(ConfigError, match="window encoding"):
        RecordingDataset(tiny_stack_dataset, random_crop=True, crop_samples=16000)
    with pytest.raises(ConfigError, match="crop length"):
        RecordingDataset(tiny_window_dataset, random_crop=True, crop_samples=64000)
    with pytest.raises(ConfigError, match="--crop-rule applies to random crops"):
        TrainConfig(crop_rule="calls")
    with pytest.raises(ConfigError, match="crop rule"):
        TrainConfig(crop_rule="loud", crop_s=1.0)
    stacks = RecordingDataset(tiny_stack_dataset, split="train", features="waveform", random_crop=True, crops_per_recording=2)
    assert len(stacks) == 2 * 18 and stacks[0][0].shape == (2, 32000)


def test_encoding_override_reads_a_stack_dataset_per_window(tiny_stack_dataset):
    enc = EncodingConfig(name="window", window_s=1.0, short_policy="pad")
    ds = RecordingDataset(tiny_stack_dataset, split="train", encoding=enc)
    assert ds.in_channels == 1 and len(ds) == 18 * 3


@pytest.mark.parametrize("policy,expected", [("tile", [1, 2, 3, 1, 2, 3, 1]), ("pad", [1, 2, 3, 0, 0, 0, 0])])
def test_short_recordings_tile_or_pad(policy, expected):
    out = fit_window(np.array([1, 2, 3], dtype=np.float32), length=7, fill=policy)
    assert out.tolist() == expected


def test_select_by_split_and_folds(tiny_stack_dataset):
    data = PreparedDataset(tiny_stack_dataset)
    train, val = data.select(split="train"), data.select(split="val")
    assert not set(train) & set(val) and len(train) + len(val) == len(data.manifest)
    f0 = data.select(folds=[0])
    rest = data.select(exclude_folds=[0])
    assert not set(f0) & set(rest) and len(f0) + len(rest) == len(data.manifest)
    with pytest.raises(ConfigError):
        data.select(split="test")


def test_not_a_dataset_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="birdspec prepare"):
        PreparedDataset(tmp_path)


def test_store_round_trip(tmp_path):
    waves = [np.linspace(-1, 1, 1000, dtype=np.float32), np.full(10, 0.5, dtype=np.float32)]
    with StoreWriter(tmp_path / "w.f16") as w:
        places = [w.append(x) for x in waves]
    store = WaveformStore(tmp_path / "w.f16")
    assert len(store) == 1010
    np.testing.assert_allclose(store.read(*places[0]), waves[0], atol=1e-3)
    np.testing.assert_allclose(store.read(*places[1], start=5, length=100), waves[1][5:])
