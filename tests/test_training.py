"""Training: config, schedules, augmentations, the run directory, resume, NaN, interrupt, CLI, DDP on CPU.

Training runs use the tiny synthetic datasets (1 s windows) and 1-3 epochs on the CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from birdspec.cli.main import main
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import CheckpointError, ConfigError, DataError, TrainingError
from birdspec.training import TrainConfig, read_run_config, train
from birdspec.training.augment import mixup, random_gain, spec_augment
from birdspec.training.callbacks import METRIC_COLUMNS
from birdspec.training.module import BirdspecLightning
from birdspec.training.plots import plot_curves
from birdspec.training.schedule import build_optimizer, lr_multiplier

FAST = dict(workers=0, progress_bar=False, device="cpu", seed=0)


# ----------------------------------------------------------------------------- units


def test_train_config_validation_and_resolution():
    cfg = TrainConfig(model="resnet18").resolved()
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs) == ("adamw", 0.001, 1e-4, 16, 30)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict({**cfg.to_dict(), "from_the_future": 1}) == cfg
    for bad in (
        dict(optimizer="lamb"), dict(lr=0), dict(epochs=0), dict(schedule="step"), dict(device="tpu"),
        dict(label_smoothing=1.0), dict(early_stopping_patience=0), dict(mixup_alpha=-1), dict(warmup_epochs=30),
        dict(encoding_override="frames"), dict(first_conv="sum"), dict(crops_per_recording=-1), dict(crop_s=0),
        dict(crops_per_recording=2, random_crop=False), dict(input_norm="pcen"),
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)
    with pytest.raises(ConfigError, match="unknown model"):
        TrainConfig(model="resnet-18").resolved()
    assert cfg.architecture_changes(replace(cfg, epochs=50, lr=0.1)) == []
    assert cfg.architecture_changes(replace(cfg, model="mobilenetv2")) == ["model"]


def test_recipes_give_settings_that_explicit_options_override(tiny_stack_dataset, tiny_window_dataset):
    from birdspec.cli.main import build_parser
    from birdspec.cli.train_cmd import config_from_args
    from birdspec.training.recipes import RECIPES

    cfg = TrainConfig.from_recipe("small-data", model="resnet18", epochs=5)
    small = RECIPES["small-data"]
    assert cfg.recipe == "small-data" and cfg.epochs == 5  # the override wins
    assert cfg.lr == small.peak_lr["resnet18"] and cfg.resolved().input_norm == "level" and cfg.crop_s == 3.0
    assert cfg.resolved().weight_decay == 1e-4  # unset fields still come from the model
    stack = TrainConfig.from_recipe("small-data", encoding="stack10")
    assert stack.crop_s is None and stack.crops_per_recording == small.settings["crops_per_recording"]
    study = TrainConfig.from_recipe("study")  # the study's closed-world classifier, not the new defaults
    assert study == TrainConfig(recipe="study", input_norm="instance", nocall_fraction=0.0)
    assert study.activation == "softmax" and TrainConfig().resolved().input_norm == "level"
    with pytest.raises(ConfigError, match="unknown recipe"):
        TrainConfig.from_recipe("tiny-data")
    parser = build_parser()
    args = parser.parse_args(["train", str(tiny_stack_dataset), "--recipe", "small-data", "--mixup", "0", "--out", "r"])
    cfg = config_from_args(args)
    assert cfg.mixup_alpha == 0.0 and cfg.crop_s is None and cfg.schedule == "onecycle"  # a stack10 dataset
    args = parser.parse_args(["cv", str(tiny_window_dataset), "--recipe", "small-data", "--out", "cv"])
    assert config_from_args(args).crop_s == 3.0 and config_from_args(args).crop_rule == "calls"
    args = parser.parse_args(["train", str(tiny_window_dataset), "--recipe", "small-data", "--crop-rule", "anywhere", "--out", "r"])
    assert config_from_args(args).crop_rule == "anywhere"
    # the crop rule places crops of audio: not for stack10 samples, nor for heads on embeddings
    assert TrainConfig.from_recipe("small-data", encoding="stack10").crop_rule == "anywhere"
    assert TrainConfig.from_recipe("small-data", model="birdnet-prior").crop_rule == "anywhere"
    args = parser.parse_args(["train", "--resume", "r", "--recipe", "small-data"])
    with pytest.raises(ConfigError, match="resumed"):
        config_from_args(args, TrainConfig())


def test_schedules():
    const = lr_multiplier("constant", total_steps=100, warmup_steps=10)
    assert const(0) == pytest.approx(0.1) and const(9) == 1.0 and const(99) == 1.0
    cos = lr_multiplier("cosine", total_steps=100, warmup_steps=0)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    one = lr_multiplier("onecycle", total_steps=100, warmup_steps=0)  # 30 % rise
    assert one(0) == pytest.approx(1 / 25) and one(30) == pytest.approx(1.0) and one(100) < 1e-5
    assert max(one(s) for s in range(100)) == pytest.approx(1.0)
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(params, name="sgd", lr=0.1, weight_decay=0), torch.optim.SGD)
    with pytest.raises(ConfigError):
        build_optimizer(params, name="lamb", lr=0.1, weight_decay=0)


def test_augmentations():
    torch.manual_seed(0)
    spec = torch.randn(4, 3, 32, 50)
    masked = spec_augment(spec, time_mask_frames=10, freq_mask_bins=8, num_masks=2)
    assert masked.shape == spec.shape
    zero = masked == 0
    assert zero.any() and not spec.eq(0).any()
    # masks are whole rows/columns of one channel: a masked bin is masked in every frame, or a frame in every bin
    for b in range(4):
        for c in range(3):
            z = zero[b, c]
            full_rows = z.all(dim=1)
            full_cols = z.all(dim=0)
            assert (z == (full_rows[:, None] | full_cols[None, :])).all()
            assert full_rows.sum() <= 16 and full_cols.sum() <= 20
    assert spec_augment(spec) is spec
    wave = torch.ones(8, 2, 100)
    g = random_gain(wave, max_db=6.0)
    ratio = g[:, :, 0]
    assert torch.allclose(ratio[:, 0], ratio[:, 1])  # one gain per sample
    assert (ratio <= 10 ** (6 / 20) + 1e-6).all() and (ratio >= 10 ** (-6 / 20) - 1e-6).all()
    x = torch.arange(8.0).view(8, 1)
    y = torch.arange(8)
    xm, ya, yb, lam = mixup(x, y, alpha=0.4)
    assert 0 <= lam <= 1 and torch.equal(ya, y)
    torch.testing.assert_close(xm[:, 0], lam * y.float() + (1 - lam) * yb.float())


def test_plot_curves(tmp_path):
    rows = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.3 * e, "val_acc": 0.25 * e} for e in (1, 2, 3)
    ]
    out = plot_curves(rows, tmp_path / "curves.png", best_epoch=3)
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------ training runs


def test_resume_with_the_default_settings_keeps_the_runs_no_bird_samples(tiny_window_dataset, tmp_path):
    """A resumed run given a config that leaves no-bird samples to the default (cv and benchmarks pass their
    TrainConfig again) continues with the share the run decided at its start, not without any."""
    run = tmp_path / "run"
    cfg = TrainConfig(model="mobilenetv2-seed", epochs=1, batch_size=8, **FAST)
    train(tiny_window_dataset, run, cfg)
    first = read_run_config(run)
    assert first["train_config"]["nocall_fraction"] == 0.2 and first["num_samples"]["train_nocall"] > 0
    train(tiny_window_dataset, run, replace(cfg, epochs=2), resume=True)
    again = read_run_config(run)
    assert again["train_config"]["nocall_fraction"] == 0.2
    assert again["num_samples"]["train_nocall"] == first["num_samples"]["train_nocall"]
    with pytest.raises(ConfigError, match="nocall_fraction"):
        train(tiny_window_dataset, run, replace(cfg, epochs=3, nocall_fraction=0.0), resume=True)


def test_validation_parts_split_hits_into_species_and_no_bird_samples():
    from birdspec.training.module import part_accuracies, validation_parts

    hits = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    parts = validation_parts(hits, torch.tensor([0, 1, 3, 3, 3]), 3)  # K = 3: label id 3 is "no bird"
    assert parts.tolist() == [1.0, 2.0, 2.0, 3.0]
    assert part_accuracies(parts) == (0.5, pytest.approx(2 / 3))
    multi = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.5]])  # multi-label: all-zero targets are no-bird samples
    assert validation_parts(torch.tensor([0.0, 1.0, 1.0]), multi, 2).tolist() == [1.0, 2.0, 1.0, 1.0]
    species, nobird = part_accuracies(validation_parts(torch.ones(2), torch.tensor([0, 1]), 2))
    assert species == 1.0 and nobird != nobird  # NaN: no no-bird samples


def test_best_epoch_counts_species_and_no_bird_halves_so_a_collapsed_epoch_does_not_win():
    """The demo's case: 24 validation windows and 32 no-bird samples. Epoch 2 answers "no bird" nearly everywhere
    (val_acc 0.66, the highest); epoch 4 names the species (val_acc 0.65). Each part counting half, epoch 4 is best.
    Without no-bird samples the score is val_acc; equal scores go to the lower loss; a NaN epoch never wins."""
    from birdspec.training.callbacks import best_entry, is_better, selection_score

    def row(epoch, species, nobird, loss=1.0, n=(24, 32)):
        acc = (n[0] * species + n[1] * (0.0 if nobird != nobird else nobird)) / (n[0] + (n[1] if nobird == nobird else 0))
        return {"epoch": epoch, "val_acc": acc, "val_loss": loss, "val_acc_species": species, "val_acc_nobird": nobird}

    collapsed, naming = row(2, 0.21, 1.0), row(4, 0.85, 0.5)
    assert collapsed["val_acc"] > naming["val_acc"]
    assert selection_score(collapsed) == pytest.approx(0.605) and selection_score(naming) == pytest.approx(0.675)
    assert is_better(naming, best_entry(collapsed)) and not is_better(collapsed, best_entry(naming))
    nan = float("nan")
    closed = row(1, 0.5, nan)
    assert selection_score(closed) == closed["val_acc"] == 0.5
    assert is_better(row(2, 0.6, nan), closed) and not is_better(row(2, 0.4, nan), closed)
    assert is_better(row(3, 0.5, nan, loss=0.9), closed) and not is_better(row(3, 0.5, nan, loss=1.1), closed)
    assert is_better(row(1, 0.1, nan), None) and not is_better(row(2, nan, nan), best_entry(closed))
    assert best_entry(naming) == naming
    # a resume state saved before the parts were kept: its best gets them from its epoch's row of the history
    from birdspec.training.callbacks import RunRecorder

    recorder = RunRecorder(Path("unused"), checkpoint_meta={}, max_minutes=None, title="", network=lambda m: m)
    recorder.load_state_dict({"history": [collapsed, naming], "best": {k: collapsed[k] for k in ("epoch", "val_acc", "val_loss")}})
    assert recorder.best == collapsed and is_better(naming, recorder.best)


def test_val_acc_counts_the_no_bird_samples_and_its_species_part_is_at_most_evaluate(tiny_window_dataset, tmp_path):
    """Training's val_acc of a run with no-bird samples is over its validation windows AND its fixed no-bird samples
    (at least 32: with few validation windows they weigh most); birdspec evaluate scores the windows alone, arg-max
    over the K species. metrics.csv gives val_acc's two parts: the windows' part is exactly what the same checkpoint's
    evaluation scores with "no bird" as an answer (so at most evaluate's accuracy), on the same rows."""
    import numpy as np

    from birdspec.evaluation.evaluate import evaluate_run
    from birdspec.training.samples import MIN_NOCALL_VAL

    run = tmp_path / "run"
    result = train(tiny_window_dataset, run, TrainConfig(model="mobilenetv2-seed", epochs=1, batch_size=8, **FAST))
    metrics = pd.read_csv(run / "metrics.csv")
    config = read_run_config(run)
    n_windows, n_nobird = config["num_samples"]["val"], config["num_samples"]["val_nocall"]
    assert config["train_config"]["nocall_fraction"] == 0.2 and n_nobird == MIN_NOCALL_VAL > n_windows
    best = metrics.set_index("epoch").loc[result.best_epoch]
    assert best["val_acc"] == pytest.approx(
        (n_windows * best["val_acc_species"] + n_nobird * best["val_acc_nobird"]) / (n_windows + n_nobird), abs=1e-5)

    ev = evaluate_run(run, split="val", plots=False)
    samples = ev.samples
    assert ev.metrics["rows_source"] == "run" and len(samples) == n_windows  # the run's own validation windows
    assert list(dict.fromkeys(samples.ids)) == config["rows"]["val"]  # its windows, recording by recording
    with_nobird = (samples.y_pred == samples.y_true) & (samples.probs.max(axis=1) > 1.0 - samples.probs.sum(axis=1))
    assert with_nobird.mean() == pytest.approx(best["val_acc_species"], abs=1e-5)  # training's windows part, per window
    assert ev.metrics["sample"]["accuracy"] >= best["val_acc_species"] - 1e-6
    assert np.isfinite(best["val_acc_nobird"])


def test_model_learns_easy_task(tiny_window_dataset, tmp_path):
    result = train(tiny_window_dataset, tmp_path / "run", TrainConfig(model="resnet18", epochs=2, **FAST))
    assert result.best_val_acc >= 0.8  # chance is 1/3
    assert result.epochs_run == 2 and result.status == "completed"


def test_run_directory(tiny_stack_dataset, tmp_path):
    run = tmp_path / "run"
    result = train(tiny_stack_dataset, run, TrainConfig(model="mobilenetv2-seed", epochs=2, batch_size=8, **FAST))
    for name in ("config.json", "metrics.csv", "curves.png", "predictions_val.csv", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "lightning" / "last.ckpt").is_file()

    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == list(METRIC_COLUMNS)
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics[["train_loss", "val_loss", "train_acc", "val_acc"]].notna().all().all()
    assert (metrics["elapsed_s"].diff().dropna() > 0).all()

    data = PreparedDataset(tiny_stack_dataset)
    config = json.loads((run / "config.json").read_text())
    assert config["train_config"]["lr"] == 0.01 and config["train_config"]["optimizer"] == "adamw"
    assert config["model"]["name"] == "mobilenetv2-seed" and config["model"]["in_channels"] == 2
    assert config["classes"] == data.classes and config["encoding"]["name"] == "stack10"
    ids = data.manifest["id"].tolist()
    assert config["rows"]["val"] == [ids[i] for i in data.select(split="val")]
    assert config["rows"]["train"] == [ids[i] for i in data.select(split="train")]
    assert config["dataset"]["path"] == str(Path(tiny_stack_dataset).resolve())
    assert config["runtime"]["cpu_threads"] == torch.get_num_threads()  # one seed repeats only with the same count

    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and best["epoch"] == result.best_epoch
    assert best["classes"] == data.classes and best["train_config"]["epochs"] == 2
    assert best["metrics"]["val_acc"] == pytest.approx(result.best_val_acc)
    assert best["encoding"]["name"] == "stack10" and best["frontend"]["n_mels"] == 128

    summary = json.loads((run / "summary.json").read_text())
    for key in ("best_epoch", "best_val_acc", "best_val_loss", "train_time_s", "epochs_run", "num_parameters", "device", "model", "encoding"):
        assert key in summary, key
    assert summary["epochs_run"] == 2 and summary["device"] == "cpu"

    preds = pd.read_csv(run / "predictions_val.csv")
    assert len(preds) == len(data.select(split="val"))
    assert {"sample", "recording_id", "label", "label_id", "predicted"} <= set(preds.columns)
    prob_cols = [f"prob_{c}" for c in data.classes]
    assert preds[prob_cols].sum(axis=1).round(4).eq(1).all()
    assert preds["correct"].mean() == pytest.approx(result.best_val_acc, abs=1e-6)

    # the best checkpoint reproduces the stored probabilities
    from birdspec.data.dataset import RecordingDataset
    from birdspec.models.checkpoint import load_model

    model, _ = load_model(run / "checkpoints" / "best.pt")
    x, _ = RecordingDataset(data, split="val", features="waveform")[0]
    with torch.no_grad():
        p = torch.softmax(model(x[None]), dim=1)[0].numpy()
    assert p == pytest.approx(preds.loc[0, prob_cols].to_numpy(dtype=float), abs=1e-4)

    with pytest.raises(ConfigError, match="already holds a training run"):
        train(tiny_stack_dataset, run, TrainConfig(epochs=1, **FAST))


def test_resume_continues_from_last_epoch(tiny_stack_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_stack_dataset, run, TrainConfig(model="mobilenetv2-seed", epochs=1, schedule="cosine", **FAST))
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics["elapsed_s"].iloc[1] > metrics["elapsed_s"].iloc[0]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
    config = read_run_config(run)
    assert config["train_config"]["epochs"] == 2 and config["train_config"]["schedule"] == "cosine"
    assert len(config["resumes"]) == 1
    with pytest.raises(ConfigError, match="cannot change model"):
        train(None, run, TrainConfig(model="resnet18", epochs=3, **FAST), resume=True)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("damage", ["truncated", "code"])
def test_resume_refuses_a_damaged_or_unsafe_state(tiny_stack_dataset, tmp_path, capsys, damage):
    import pickle
    import shutil

    run = tmp_path / "run"
    train(tiny_stack_dataset, run, TrainConfig(model="mobilenetv2-seed", epochs=1, **FAST))
    last = run / "lightning" / "last.ckpt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:2000])
    else:
        class Evil:
            def __reduce__(self):
                return (shutil.rmtree, (str(run),))

        last.write_bytes(pickle.dumps({"epoch": 1, "state_dict": Evil()}))
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "resume state is damaged or not plain data" in err and "Traceback" not in err
    assert (run / "checkpoints" / "best.pt").is_file()  # nothing was run, nothing lost


def test_rows_encoding_override_and_options(tiny_stack_dataset, tmp_path, monkeypatch):
    """Rows from folds, per-window training on a stack dataset, every augmentation, onecycle, time limit."""
    from birdspec.models import registry

    calls = []
    real_build = registry.build_model
    monkeypatch.setattr(registry, "build_model", lambda *a, **k: calls.append(k) or real_build(*a, **k))
    data = PreparedDataset(tiny_stack_dataset)
    rows_train = data.select(folds=[0, 1, 2])
    rows_val = data.select(folds=[3])
    cfg = TrainConfig(
        model="mobilenetv2-seed", epochs=3, encoding_override="window", gain_db=6, time_mask_frames=8,
        freq_mask_bins=8, num_masks=2, mixup_alpha=0.4, label_smoothing=0.1, schedule="onecycle", grad_clip_norm=1.0,
        early_stopping_patience=2, early_stopping_metric="val_acc", max_minutes=1e-4, optimizer="sgd", lr=0.05,
        crops_per_recording=2, crop_s=0.5, crop_rule="calls", input_norm="band", **FAST,
    )
    run = tmp_path / "run"
    result = train(tiny_stack_dataset, run, cfg, rows_train=rows_train, rows_val=rows_val)
    assert result.status == "time_limit" and result.epochs_run == 1
    assert calls[0]["in_channels"] == 1
    config = read_run_config(run)
    ids = data.manifest["id"]
    assert config["rows"]["train"] == ids[rows_train].tolist() and config["rows"]["val"] == ids[rows_val].tolist()
    assert config["encoding"]["name"] == "window" and config["dataset"]["encoding"]["name"] == "stack10"
    assert config["num_samples"]["val"] == 3 * len(rows_val)  # 3 s recordings, 1 s windows
    nocall = config["num_samples"]["train_nocall"]  # no-bird samples: 20 % of all by default for window models
    assert nocall == round(2 * len(rows_train) * 0.2 / 0.8) and config["num_samples"]["val_nocall"] >= 32
    assert config["num_samples"]["train"] == 2 * len(rows_train) + nocall  # 2 random crops per recording and epoch
    preds = pd.read_csv(run / "predictions_val.csv")
    assert len(preds) == 3 * len(rows_val) and set(preds["window"]) == {0, 1, 2}
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert best["in_channels"] == 1 and best["input_norm"] == "band"
    with pytest.raises(DataError, match="disjoint"):
        train(tiny_stack_dataset, tmp_path / "r2", cfg, rows_train=rows_train, rows_val=rows_train[:2])


def test_pretrained_options_reach_build_model(tiny_stack_dataset, tmp_path, monkeypatch):
    import torchvision

    from birdspec.models import registry

    weights = tmp_path / "mobilenet_v2.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), weights)
    calls = []
    real_build = registry.build_model
    monkeypatch.setattr(registry, "build_model", lambda *a, **k: calls.append(k) or real_build(*a, **k))
    code = main([
        "-q", "train", str(tiny_stack_dataset), "--model", "mobilenetv2", "--out", str(tmp_path / "run"), "--epochs", "1",
        "--pretrained", str(weights), "--first-conv", "average", "--workers", "0", "--device", "cpu", "--no-progress",
    ])
    assert code == 0
    assert calls[0]["pretrained"] == str(weights) and calls[0]["first_conv"] == "average"
    config = read_run_config(tmp_path / "run")
    assert config["model"]["pretrained"] == str(weights) and config["model"]["first_conv"] == "average"


def test_nan_loss_stops_the_run(tiny_stack_dataset, tmp_path, monkeypatch):
    real = BirdspecLightning._train_logits

    def poisoned(self, x):
        logits = real(self, x)
        return logits * float("nan") if self.global_step >= 1 else logits

    monkeypatch.setattr(BirdspecLightning, "_train_logits", poisoned)
    with pytest.raises(TrainingError, match=r"loss became NaN at epoch 1 step 2 .*lower --lr"):
        train(tiny_stack_dataset, tmp_path / "run", TrainConfig(epochs=2, batch_size=4, **FAST))


def test_interrupt_keeps_the_last_complete_epoch_and_resume_ends_as_an_uninterrupted_run(tiny_stack_dataset, tmp_path, monkeypatch, caplog):
    """Issue 15: Ctrl-C in epoch 2 keeps last.pt of epoch 1 (and says so); --resume reruns epoch 2 with the
    random state of the end of epoch 1, so the epochs and metrics equal those of a run never interrupted."""
    cfg = dict(epochs=3, batch_size=4, mixup_alpha=0.4, schedule="cosine", **FAST)
    reference = tmp_path / "reference"
    train(tiny_stack_dataset, reference, TrainConfig(**cfg))
    real = BirdspecLightning.training_step

    def interrupted(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 1:
            raise KeyboardInterrupt
        return real(self, batch, batch_idx)

    monkeypatch.setattr(BirdspecLightning, "training_step", interrupted)
    handler = signal.getsignal(signal.SIGINT)
    run = tmp_path / "run"
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_stack_dataset, run, TrainConfig(**cfg))
        assert signal.getsignal(signal.SIGINT) == handler  # Ctrl-C works again after the run
    finally:
        signal.signal(signal.SIGINT, handler)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and "partial_epoch" not in last["extra"]
    assert "holds epoch 1, the last complete one" in caplog.text
    assert (run / "curves.png").is_file() and len(pd.read_csv(run / "metrics.csv")) == 1
    monkeypatch.setattr(BirdspecLightning, "training_step", real)
    result = train(None, run, None, resume=True)
    assert result.epochs_run == 3
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    resumed, uninterrupted = pd.read_csv(run / "metrics.csv")[columns], pd.read_csv(reference / "metrics.csv")[columns]
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True)["state_dict"] for r in (run, reference))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_errors_exit_2(tmp_path, tiny_stack_dataset, capsys):
    assert main(["train", str(tmp_path / "nope"), "--model", "resnet18", "--out", str(tmp_path / "run")]) == 2
    assert "not a prepared dataset" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert main(["train", str(tiny_stack_dataset), "--model", "resnet-18", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", str(tiny_stack_dataset), "--lr", "-1", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", str(tiny_stack_dataset), "--device", "cpu", "--precision", "16-mixed", "--out", str(tmp_path / "r")]) == 2
    with pytest.raises(CheckpointError):
        read_run_config(tmp_path)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_stack_dataset, tmp_path):
    """``--devices 2`` on the CPU: Lightning's 'ddp' strategy re-launches the command as a second process (gloo)."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "birdspec", "-q", "train", str(tiny_stack_dataset), "--model", "mobilenetv2-seed",
         "--out", str(run), "--epochs", "1", "--device", "cpu", "--devices", "2", "--workers", "0", "--no-progress", "--json"],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # only rank 0 prints
    assert out["device"] == "2 x cpu (ddp)" and out["epochs_run"] == 1
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "predictions_val.csv").is_file()


def test_crop_rule_calls_needs_the_window_encoding(tiny_stack_dataset, tmp_path):
    cfg = TrainConfig(model="mobilenetv2-seed", epochs=1, crops_per_recording=2, crop_rule="calls", **FAST)
    with pytest.raises(ConfigError, match="window encoding of a waveform model, not stack10 samples"):
        train(tiny_stack_dataset, tmp_path / "run", cfg)
    with pytest.raises(ConfigError, match="not window samples of a model that reads embeddings"):
        cfg.for_samples("window", model_input="embedding")
