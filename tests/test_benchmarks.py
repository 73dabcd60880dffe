"""benchmarks/accuracy.py: its recipes are birdspec's, its ablations change one thing, its tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from birdspec.training import TrainConfig
from birdspec.training.recipes import RECIPES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("bench_accuracy", REPO / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_rows_use_birdspec_recipes(accuracy):
    small = accuracy.recipe_settings("small-data", "mobilenetv2-seed", "window")
    assert TrainConfig(**small) == TrainConfig.from_recipe("small-data", model="mobilenetv2-seed")
    assert accuracy.recipe_settings("study", "resnet18", "stack10") == {"schedule": "constant", "recipe": "study"}
    assert "crop_s" not in accuracy.recipe_settings("small-data", "resnet18", "stack10")
    assert not accuracy.fixed_epochs("study") and accuracy.fixed_epochs("small-data")
    assert not accuracy.fixed_epochs("small-data-inner-val")


@pytest.mark.parametrize("name", ["small-data-no-band", "small-data-every-window", "small-data-5s-crops", "small-data-no-aug",
                                  "small-data-constant-lr", "small-data-no-smoothing", "small-data-inner-val"])
def test_each_ablation_changes_only_what_it_says(accuracy, name):
    base = accuracy.recipe_settings("small-data", "mobilenetv2-seed", "window")
    ablated = accuracy.recipe_settings(name, "mobilenetv2-seed", "window")
    changes, _ = accuracy.ABLATIONS[name]
    assert {k for k in base if base[k] != ablated.get(k)} == {k for k in changes if base.get(k) != changes[k]}
    TrainConfig(**ablated)  # a valid configuration
    assert set(RECIPES["small-data"].settings) <= set(base)


def test_tables(accuracy):
    def row(recipe, correct, model="mobilenetv2-seed"):
        return {"name": recipe, "model": model, "encoding": "window", "recipe": recipe, "accuracy_mean": correct / 98,
                "accuracy_std": 0.05, "macro_f1_mean": correct / 100, "macro_f1_std": 0.05, "correct": correct,
                "total": 98, "train_time_min": 20.0, "epochs": 30, "wall_min": 21.0}

    rows = [row("study", 70), row("small-data", 85), row("small-data-no-band", 72)]
    main = accuracy.markdown(rows)
    assert "| small-data | 30 | 0.867 ± 0.050 |" in main and "no-band" not in main
    abl = accuracy.ablation_markdown(rows)
    assert "| mobilenetv2-seed | none (the recipe) | 0.867 |" in abl
    assert "| 72/98 | -13 recordings |" in abl
    assert accuracy.ablation_markdown(rows[:2]) == ""


@pytest.mark.realdata
def test_reference_folds_are_what_prepare_assigns(accuracy, reed_warblers, tmp_path):
    import pandas as pd

    folds = accuracy.reference_folds(reed_warblers)
    assert len(folds) == 98 and sorted(pd.Series(folds).value_counts()) == [19, 19, 20, 20, 20]
    ds = accuracy.prepare_encoding(reed_warblers, tmp_path, "window")  # exits when prepare's folds differ
    assert (ds / "manifest.csv").is_file()
