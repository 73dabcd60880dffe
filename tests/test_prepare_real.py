"""prepare() on the real reed warbler recordings (../shared/data/xc-reed-warblers).

Skipped when the shared data is absent. Each setting is prepared once per module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdspec import audio
from birdspec.config import EncodingConfig
from birdspec.data.catalog_layouts import load_catalog
from birdspec.data.prepare import prepare
from birdspec.data.prepared import describe
from birdspec.data.species import select_species

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SPECIES = "grrwar1,blrwar1,marwar3,sedwar1"
KEPT_50S = {"grrwar1": 16, "blrwar1": 19, "marwar3": 21, "sedwar1": 17}
ALL = {"grrwar1": 27, "blrwar1": 24, "marwar3": 24, "sedwar1": 23}


@pytest.fixture(scope="module")
def reed(reed_warblers) -> Path:
    """The reed warbler folder (conftest's fixture skips when it is absent)."""
    return reed_warblers


def _prepare(reed: Path, out: Path, **kwargs) -> Path:
    return prepare(reed, out, species=SPECIES, folds=5, progress=False, **kwargs)


@pytest.fixture(scope="module")
def stack_drop(reed, tmp_path_factory) -> Path:
    return _prepare(reed, tmp_path_factory.mktemp("real") / "stack_drop", encoding=EncodingConfig())


@pytest.fixture(scope="module")
def stack_tile(reed, tmp_path_factory) -> Path:
    return _prepare(reed, tmp_path_factory.mktemp("real") / "stack_tile", encoding=EncodingConfig(short_policy="tile"))


@pytest.fixture(scope="module")
def window_drop(reed, tmp_path_factory) -> Path:
    return _prepare(reed, tmp_path_factory.mktemp("real") / "window", encoding=EncodingConfig(name="window"))


def manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype={"id": str, "label": str})


def test_stack10_drop_keeps_the_73_long_recordings(stack_drop):
    d = describe(stack_drop)
    assert d["num_recordings"] == 73 == d["num_samples"]
    assert d["per_class"] == dict(sorted(KEPT_50S.items()))
    assert d["skipped"] == 25 and d["skipped_reasons"] == {"too short": 25}
    assert d["sample_shape"] == [10, 128, 321]
    m = manifest(stack_drop)
    assert (m["num_samples"] >= 50 * 32000).all()
    skipped = pd.read_csv(stack_drop / "skipped.csv")
    assert skipped["reason"].str.match(r"too short \(\d+\.\d s < 50 s, policy drop\)").all()


def test_split_is_about_70_30_within_every_species(stack_drop):
    m = manifest(stack_drop)
    assert m["id"].is_unique and m["source_path"].is_unique  # a recording is on one side only
    val_share = (m["split"] == "val").groupby(m["label"]).mean()
    # drawn among the 73 kept recordings: round(0.3 n) of every species in val
    assert ((val_share > 0.25) & (val_share < 0.35)).all(), val_share.to_dict()
    assert 0.27 <= (m["split"] == "val").mean() <= 0.33


def test_stack10_tile_keeps_all_98(stack_tile, stack_drop):
    d = describe(stack_tile)
    assert d["num_recordings"] == 98 and d["skipped"] == 0
    assert d["per_class"] == dict(sorted(ALL.items()))
    # folds follow the metadata rows: the same for every encoding
    a, b = manifest(stack_tile).set_index("id"), manifest(stack_drop).set_index("id")
    assert (a.loc[b.index, "fold"] == b["fold"]).all() and set(a["fold"]) == set(range(5))


def test_window_encoding_gives_floor_duration_over_5_windows(window_drop):
    d = describe(window_drop)
    m = manifest(window_drop)
    assert d["num_recordings"] == 98
    expected = {row.id: int(audio.info(row.source_path).duration_s // 5) for row in m.itertuples()}
    assert d["num_samples"] == sum(expected.values())
    assert {row.id: row.num_samples // 160_000 for row in m.itertuples()} == expected
    assert d["sample_shape"] == [1, 128, 321]


@pytest.mark.parametrize("name", ["Acrocephalus palustris", "marsh warbler", "MARWAR3"])
def test_species_names_select_marwar3(reed, name):
    catalog, layout = load_catalog(reed)
    assert layout == "birdclef2021"
    selected, labels = select_species(catalog, species=name)
    assert labels == ["marwar3"] and len(selected) == 24


def test_folder_copy_with_a_corrupt_file(reed, tmp_path):
    meta = pd.read_csv(reed / "train_metadata.csv")
    root = tmp_path / "folders"
    for label, group in meta.groupby("primary_label"):
        for name in group["filename"].sort_values().head(2):
            link = root / label / "recordings" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(reed / "train_short_audio" / label / name, link)
    corrupt = root / "sedwar1" / "XC000000.ogg"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    out = prepare(
        root, tmp_path / "out", encoding=EncodingConfig(name="window"), max_duration_s=10, workers=2, progress=False
    )
    d = describe(out)
    assert d["num_recordings"] == 8 and d["num_samples"] == 16
    skipped = pd.read_csv(out / "skipped.csv")
    assert list(skipped["path"]) == [str(corrupt)]
    assert skipped["reason"].iloc[0].startswith("unreadable")
    assert json.loads((out / "dataset.json").read_text())["layout"] == "folders"


def test_multi_label_training_to_a_scored_birdclef_submission(window_drop, tmp_path):
    """Issue 17's end-to-end check on the real recordings, through the CLI: train --labels multi (secondary
    labels among the four species used), soundscape make, predict --format birdclef, score-soundscapes."""
    from birdspec.cli.main import main
    from birdspec.data.multilabel import label_targets
    from birdspec.data.prepared import PreparedDataset
    from birdspec.evaluation.scoring import read_predictions, read_truth
    from birdspec.models.checkpoint import read_checkpoint

    data = PreparedDataset(window_drop)
    found = label_targets(data.manifest, data.classes, secondary_weight=0.5)
    assert found.secondary_used > 0  # the reed warblers list each other as secondary species
    run, scapes, sub = tmp_path / "run", tmp_path / "scapes", tmp_path / "sub.csv"
    assert main(["-q", "train", str(window_drop), "--labels", "multi", "--secondary-weight", "0.5", "--epochs", "1",
                 "--crops-per-recording", "1", "--crop-s", "3", "--device", "cpu", "--workers", "0",
                 "--no-progress", "--out", str(run)]) == 0
    ckpt = read_checkpoint(run / "checkpoints" / "best.pt")
    assert ckpt.activation == "sigmoid" and ckpt.train_config["secondary_weight"] == 0.5
    assert main(["-q", "soundscape", "make", str(window_drop), "--fold", "0", "--count", "1", "--duration-s", "30",
                 "--no-progress", "--out", str(scapes)]) == 0
    assert main(["-q", "predict", str(run / "checkpoints" / "best.pt"), str(scapes / "audio"), "--format", "birdclef",
                 "--min-conf", "0.3", "--top-k", "0", "--out", str(sub)]) == 0
    truth, predicted = read_truth(scapes / "truth.csv"), read_predictions(sub)
    assert set(predicted) == set(truth) and len(truth) == 6  # one row per 5 s window of the 30 s soundscape
    assert main(["score-soundscapes", str(sub), str(scapes / "truth.csv")]) == 0
