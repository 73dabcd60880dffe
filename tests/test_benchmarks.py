"""benchmarks/accuracy.py, frontends.py and soundscapes.py: recipes are birdspec's, ablations change one thing, the tables;
benchmarks/common.py: the memory measurements, the machine line, the scripts import the package."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from birdspec.training import TrainConfig
from birdspec.training.recipes import RECIPES

REPO = Path(__file__).resolve().parents[1]


def _benchmark(name: str):
    """benchmarks/NAME.py as the module ``benchmarks.NAME`` (the repository root importable, as under ``python -m``)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture(scope="module")
def accuracy():
    return _benchmark("accuracy")


def test_recipe_rows_use_birdspec_recipes(accuracy):
    small = accuracy.recipe_settings("small-data", "mobilenetv2-seed", "window")
    assert TrainConfig(**small) == TrainConfig.from_recipe("small-data", model="mobilenetv2-seed")
    assert accuracy.recipe_settings("study", "resnet18", "stack10") == {
        "schedule": "constant", "input_norm": "instance", "nocall_fraction": 0.0, "recipe": "study"}
    assert "crop_s" not in accuracy.recipe_settings("small-data", "resnet18", "stack10")
    assert not accuracy.fixed_epochs("study") and accuracy.fixed_epochs("small-data")
    assert not accuracy.fixed_epochs("small-data-inner-val")


def test_pretrained_start_only_for_models_with_imagenet_weights(accuracy, tmp_path):
    assert accuracy.pretrained_start("resnet18", "none", "repeat") == ({}, "")
    assert accuracy.pretrained_start("resnet18", "imagenet", "average") == (
        {"pretrained": "imagenet", "first_conv": "average"}, "+imagenet-average")
    assert accuracy.pretrained_start("resnet18", str(tmp_path / "r18.pth"), "repeat")[1] == "+r18-repeat"
    assert accuracy.pretrained_start("mobilenetv2-seed", "imagenet", "repeat") == ({}, "")  # no ImageNet weights


@pytest.mark.parametrize("name", ["small-data-no-band", "small-data-every-window", "small-data-5s-crops", "small-data-no-aug",
                                  "small-data-constant-lr", "small-data-no-smoothing", "small-data-inner-val"])
def test_each_ablation_changes_only_what_it_says(accuracy, name):
    base = accuracy.recipe_settings("small-data", "mobilenetv2-seed", "window")
    ablated = accuracy.recipe_settings(name, "mobilenetv2-seed", "window")
    changes, _ = accuracy.ABLATIONS[name]
    assert {k for k in {*base, *ablated} if base.get(k) != ablated.get(k)} == {k for k in changes if base.get(k) != changes[k]}
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
def test_reference_folds_are_what_prepare_assigns(reed_warblers, tmp_path):
    import pandas as pd

    common = _benchmark("common")
    folds = common.reference_folds(reed_warblers)
    assert len(folds) == 98 and sorted(pd.Series(folds).value_counts()) == [19, 19, 20, 20, 20]
    ds = common.prepare_encoding(reed_warblers, tmp_path, "window")  # exits when prepare's folds differ
    assert (ds / "manifest.csv").is_file()


@pytest.fixture(scope="module")
def frontends():
    return _benchmark("frontends")


def test_frontend_rows_are_the_recipe_with_default_frontends(frontends, accuracy):
    from birdspec.config import FRONTENDS, FrontendConfig

    assert frontends.frontend_names(",".join(FRONTENDS)) == list(FRONTENDS)
    assert frontends.frontend_names("pcen, logmel,pcen") == ["pcen", "logmel"]
    with pytest.raises(SystemExit):
        frontends.frontend_names("logmel,cqt")
    for kind in FRONTENDS:
        cfg = frontends.train_config(kind)
        assert cfg.frontend == kind and cfg.frontend_options == {}  # defaults: nothing tuned on the folds
        assert cfg.epochs == 20 and cfg.recipe == "small-data"
        assert cfg == TrainConfig.from_recipe("small-data", model="mobilenetv2-seed", encoding="window", frontend=kind,
                                              device="cpu", progress_bar=False)
    assert frontends.train_config("pcen", epochs=3, seed=1).epochs == 3
    assert frontends.prepare_encoding.__module__ == "benchmarks.common" and frontends.fixed_epochs("small-data")  # reused
    shapes = {k: frontends.input_shape(frontends.train_config(k), FrontendConfig(), 160_000) for k in FRONTENDS}
    assert shapes == {"logmel": (128, 321), "pcen": (128, 321), "linear": (224, 321), "mfcc": (40, 321),
                      "learnable-mel": (128, 321)}
    assert frontends.cv_dir(REPO, "pcen", 0) == REPO / "pcen" and frontends.cv_dir(REPO, "pcen", 1) == REPO / "pcen-seed1"


def test_frontend_table_and_best_two(frontends, tmp_path):
    def row(kind, correct, f1, seed=0, predict=None):
        return {"frontend": kind, "seed": seed, "rows": 128, "frames": 321, "epochs": 20, "accuracy_mean": correct / 98,
                "accuracy_std": 0.05, "macro_f1_mean": f1, "macro_f1_std": 0.04, "correct": correct, "total": 98,
                "train_time_min": 23.0, "predict": predict}

    rows = [row("logmel", 90, 0.91, predict={"rtf": 695.6, "backend": "onnx"}), row("pcen", 92, 0.90),
            row("mfcc", 90, 0.92, predict={"error": "boom"}), row("pcen", 95, 0.95, seed=1)]
    assert frontends.best_two(rows) == ["pcen", "mfcc"]  # first seed only; ties broken by macro F1
    table = frontends.markdown(rows, pending=["linear"])
    assert "| logmel | 128 x 321 | 0 | 20 | 0.918 ± 0.050 | 0.910 ± 0.040 | 90/98 | 23.0 | 696x (onnx) |" in table
    assert "| pcen | 128 x 321 | 1 |" in table and "failed (boom)" in table
    assert table.splitlines()[-1] == "| linear | - | - | - | pending | pending | pending | pending | pending |"
    frontends._write(tmp_path, "CPU (2 threads)", tmp_path, rows, ["linear"])
    assert (tmp_path / "frontends.md").read_text().startswith("Machine: CPU (2 threads)\n\n| spectrogram type |")
    assert json.loads((tmp_path / "frontends.json").read_text())["pending"] == ["linear"]


def test_frontends_help(frontends, capsys):
    with pytest.raises(SystemExit) as exc:
        frontends.main(["--help"])
    assert exc.value.code == 0 and "--second-seed" in capsys.readouterr().out


def test_frontends_main_runs_every_type_then_the_best_two_again(frontends, tmp_path, monkeypatch):
    (tmp_path / "train_metadata.csv").write_text("filename,primary_label\n")
    calls = []

    def fake_run(ds, out, name, *, seed, epochs, folds, device, predict_audio, repeats, remeasure):
        calls.append((name, seed, epochs, folds))
        correct = {"logmel": 90, "pcen": 93, "mfcc": 80}[name]
        return {"frontend": name, "seed": seed, "rows": 128, "frames": 321, "epochs": epochs, "accuracy_mean": correct / 98,
                "accuracy_std": 0.0, "macro_f1_mean": correct / 98, "macro_f1_std": 0.0, "correct": correct, "total": 98,
                "train_time_min": 1.0, "predict": None}

    monkeypatch.setattr(frontends, "prepare_encoding", lambda root, out, enc: out / f"data-{enc}")
    monkeypatch.setattr(frontends, "run_frontend", fake_run)
    out = tmp_path / "out"
    assert frontends.main([str(tmp_path), "--out", str(out), "--frontends", "logmel,pcen,mfcc", "--epochs", "2",
                           "--folds", "0,3", "--second-seed", "--no-predict", "--device", "cpu"]) == 0
    assert calls == [("logmel", 0, 2, [0, 3]), ("pcen", 0, 2, [0, 3]), ("mfcc", 0, 2, [0, 3]),
                     ("pcen", 1, 2, [0, 3]), ("logmel", 1, 2, [0, 3])]
    saved = json.loads((out / "frontends.json").read_text())
    assert [(r["frontend"], r["seed"]) for r in saved["rows"]][-2:] == [("pcen", 1), ("logmel", 1)] and not saved["pending"]


@pytest.fixture(scope="module")
def soundscapes():
    return _benchmark("soundscapes")


def test_soundscape_breakdown_known_answer(soundscapes, tmp_path):
    """Recall per SNR range of the loudest call, no-bird windows answered nocall, wrong labels per window."""
    import pandas as pd

    from birdspec.data.soundscape import truth_table

    calls = pd.DataFrame([  # a 20 s soundscape: windows 0-5, 5-10, 10-15 (no bird), 15-20
        {"audio_id": "s", "label": "a", "start_s": 1.0, "end_s": 5.2, "snr_db": -3.0},  # window 1 (0.2 s into 2: not counted)
        {"audio_id": "s", "label": "b", "start_s": 4.0, "end_s": 9.0, "snr_db": 12.0},  # windows 1 and 2
        {"audio_id": "s", "label": "b", "start_s": 6.0, "end_s": 7.0, "snr_db": 3.0},  # window 2 again, quieter
        {"audio_id": "s", "label": "a", "start_s": 16.0, "end_s": 18.0, "snr_db": 20.0},  # window 4, top of the range
    ])
    calls.to_csv(tmp_path / "calls.csv", index=False)
    truth_table(calls, {"s": 20.0}).to_csv(tmp_path / "truth.csv", index=False)
    (tmp_path / "soundscapes.json").write_text(json.dumps({"config": {"window_s": 5.0, "min_overlap_s": 0.5}}))
    sub = tmp_path / "sub.csv"
    pd.DataFrame({"row_id": ["s_5", "s_10", "s_15", "s_20"], "birds": ["a c", "nocall", "nocall", "b"]}).to_csv(sub, index=False)
    got = soundscapes.breakdown(sub, tmp_path)
    assert got["recall_-5_0_db"] == [1, 1]  # (s_5, a) found
    assert got["recall_10_20_db"] == [0, 3]  # (s_5, b), (s_10, b) at their loudest 12 dB, (s_20, a) at 20 dB: missed
    assert got["recall_0_5_db"] == [0, 0] and got["recall_5_10_db"] == [0, 0]
    assert got["nocall_right"] == [1, 1] and got["wrong_labels"] == [3, 4]  # c in s_5, nocall in s_10, b in s_20
    table = soundscapes.breakdown_markdown([{"variant": "default", "breakdown": got}])
    assert "| 1.00 (1/1) | - | - | 0.00 (0/3) | 1.00 (1/1) | 0.75 |" in table
    calls.loc[0, "end_s"] = 5.6  # now also in window 2: truth.csv no longer matches the calls
    calls.to_csv(tmp_path / "calls.csv", index=False)
    with pytest.raises(SystemExit, match="disagree"):
        soundscapes.breakdown(sub, tmp_path)


# --------------------------------------------------------------------------- benchmarks/common.py and the package

SCRIPTS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem not in ("__init__", "common", "keep"))
ALLOCATE_MB = 200
CHILD = f"import sys, time; b = bytearray({ALLOCATE_MB} * 2**20); time.sleep(0.6); sys.exit(3)"  # touched: resident


def test_scripts_import_the_package_and_run_as_files():
    """No script edits sys.path but the two-line bootstrap that makes `python benchmarks/NAME.py` import the package."""
    for name in SCRIPTS:
        text = (REPO / "benchmarks" / f"{name}.py").read_text()
        assert "sys.path.insert" not in text and "sys.path.append" not in text, name
        if "from benchmarks" in text:
            boot = text.index('if __name__ == "__main__" and not __package__:')
            assert boot < text.index("from benchmarks"), name
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "predict_speed.py"), "--help"], cwd=REPO.parent,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--fresh-install-case" in done.stdout, done.stderr


def test_common_imports_only_the_standard_library():
    """predict_speed.py's measured children import it: their peak memory must not grow by it."""
    code = "import sys, benchmarks.common; print(sorted(m for m in ('torch', 'numpy', 'pandas', 'birdspec') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_machine_line():
    common = _benchmark("common")
    line = common.describe_machine()
    assert "cores usable" in line and "RAM" in line and "Python" in line and "torch" in line and "birdspec" in line
    assert "GPU" in line  # "no NVIDIA GPU" or the GPUs' names
    assert common.describe_machine("CPU (2 threads)") == f"CPU (2 threads); {line}"


def test_tree_memory_and_run_command_see_a_child_allocation(tmp_path):
    """A child holding 200 MB: the sampled tree peak, its own peak and wait4's peak see it; rc and output come back."""
    common = _benchmark("common")
    parent = [sys.executable, "-c", ("import subprocess, sys; print('started', flush=True); "
                                     f"sys.exit(subprocess.run([sys.executable, '-c', {CHILD!r}]).returncode)")]
    proc = subprocess.Popen(parent, stdout=subprocess.DEVNULL)
    with common.TreeMemory(proc.pid) as memory:
        proc.wait()
    assert memory.rss_kb / 1024 > ALLOCATE_MB and memory.anon_kb / 1024 > ALLOCATE_MB  # the grandchild, summed
    assert len(memory.per_pid_kb) >= 2 and max(memory.per_pid_kb.values()) / 1024 > ALLOCATE_MB
    assert memory.per_pid_kb[proc.pid] / 1024 < ALLOCATE_MB  # the parent's own peak: small

    res = common.run_command(parent)
    assert res["rc"] == 3 and res["output"].strip() == "started" and res["wall_s"] >= 0.6
    assert res["peak_mb_tree"] > ALLOCATE_MB and res["peak_mb_wait4"] > ALLOCATE_MB and res["cpu_s"] > 0
    quiet = common.run_command([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                               merge_output=False, interval_s=None)
    assert quiet["output"] == "out\n" and quiet["stderr"] == "err\n" and "peak_mb_tree" not in quiet
    assert 0 < quiet["peak_mb_wait4"] < ALLOCATE_MB


def test_run_command_without_gnu_time_reaps_with_wait4(monkeypatch, tmp_path):
    common = _benchmark("common")
    monkeypatch.setattr(common, "GNU_TIME", tmp_path / "no-time")
    res = common.run_command([sys.executable, "-c", CHILD])
    assert res["rc"] == 3 and res["peak_mb_wait4"] > ALLOCATE_MB and res["peak_mb_tree"] > ALLOCATE_MB and res["cpu_s"] > 0


def test_own_peak_is_this_process():
    common = _benchmark("common")
    before = common.own_peak_mb()
    block = bytearray(64 * 2**20)
    assert common.own_peak_mb() >= before and common.own_peak_mb() > 64
    del block


def test_agile_window_truth_known_answer(tmp_path):
    """agile.py and hoplite_agile.py's one truth rule: a window holds a call overlapping it by >= 0.5 s."""
    import pandas as pd

    truth_mod = _benchmark("agile_truth")
    site = tmp_path / "site0"
    site.mkdir()
    pd.DataFrame({"audio_id": ["site0-a", "site0-a"], "label": ["b", "a"], "start_s": [2.5, 7.6],
                  "end_s": [4.0, 9.0]}).to_csv(site / "calls.csv", index=False)
    rec = ["site0/audio/site0-a.flac"] * 4
    truth = truth_mod.window_truth(rec, [0.0, 3.0, 6.0, 9.0], [3.0, 6.0, 9.0, 12.0], tmp_path, ["a", "b"])
    assert truth.tolist() == [[False, True], [False, True], [True, False], [False, False]]
    scores = truth.astype(float) * 0.9
    assert truth_mod.window_scores(scores, truth) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "mean_ap": 1.0}


def test_no_bird_tables_known_answer():
    """no_bird.py: per-hour counts of the energy-rule corpus and of the band-checked one, own species apart."""
    nb = _benchmark("no_bird")

    def row(group, seconds, detections, own=None):
        r = {"group": group, "source": group, "seconds": seconds, "detections": detections, "windows": detections, "top": []}
        return r if own is None else {**r, "own_species": own}

    folds = [{"variant": "birdnet-prior", "fold": k, "threshold": "stored",
              "rows": [row("synthetic", 3600.0, 0), row("toad and forest", 1800.0, 0),
                       row("held-out quiet parts", 1800.0, 6 + k, own=4), row(nb.BAND_CHECKED, 360.0, k, own=k),
                       row("other birds", 600.0, 9)]} for k in (0, 1)]
    # energy rule: (6 + k) in 2 h -> 3.0 / 3.5 per hour, without own species (2 + k) / 2 h
    assert nb.per_hour(folds[0]["rows"][:3]) == pytest.approx(3.0)
    assert nb.per_hour(folds[1]["rows"][:3], own=False) == pytest.approx(1.5)
    first = nb.markdown(folds).splitlines()[2]
    assert "| **3.25 ± 0.35** | 1.25 ± 0.35 |" in first and "| 13.00 ± 1.41 | 8.00 ± 0.00 | 54.00 ± 0.00 |" in first
    # band-checked: k detections in 1.6 h (all own species), 6 of the 60 minutes of quiet parts kept
    second = nb.markdown_band_checked(folds).splitlines()
    assert second[2].startswith("| birdnet-prior: ") and "| stored | 2 | 6.0 (30.0) | **0.31 ± 0.44** | 0.00 ± 0.00 |" in second[2]
    assert second[2].endswith("| 5.00 ± 7.07 | 5.00 ± 7.07 |")
    old = [{**folds[0], "rows": folds[0]["rows"][:3]}]  # counts from before the band check: not in the second table
    assert len(nb.markdown_band_checked(old).splitlines()) == 2
