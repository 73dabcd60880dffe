"""The model registry: every model builds and runs for 1 and 10 channels, checkpoints round-trip, `birdspec models`."""

from __future__ import annotations

import json

import pytest
import torch

from birdspec.config import EncodingConfig, FrontendConfig
from birdspec.errors import ConfigError
from birdspec.models import registry
from birdspec.models.checkpoint import load_model, make_checkpoint, save_checkpoint
from birdspec.models.registry import (
    ModelSpec,
    build_model,
    count_parameters,
    get_spec,
    list_models,
)

WAVEFORM_MODELS = [s.name for s in list_models() if s.input == "waveform"]


def test_registry_has_the_study_models():
    names = [s.name for s in list_models()]
    assert {"mobilenetv2-seed", "mobilenetv2", "resnet18"} <= set(names)
    with pytest.raises(ConfigError, match="did you mean"):
        get_spec("resnet-18")


@pytest.mark.parametrize("in_channels", [1, 10])
@pytest.mark.parametrize("name", WAVEFORM_MODELS)
def test_forward_every_model(name, in_channels):
    torch.manual_seed(0)
    model = build_model(name, in_channels=in_channels, num_classes=6).eval()
    wave = 0.1 * torch.randn(2, in_channels, 32_000)  # 1 s at 32 kHz -> 128 x 65 log-mel
    with torch.no_grad():
        logits = model(wave)
    assert logits.shape == (2, 6)
    assert torch.isfinite(logits).all()
    assert model.config["in_channels"] == in_channels and model.config["num_classes"] == 6


def test_study_input_shape_stack10():
    """10 x 5 s windows at 32 kHz -> the study's 10 x 128 x 321 spectrogram, then 6 logits."""
    model = build_model("mobilenetv2-seed", in_channels=10, num_classes=6).eval()
    wave = 0.1 * torch.randn(1, 10, 160_000)
    with torch.no_grad():
        assert model.features(wave).shape == (1, 10, 128, 321)
        assert model(wave).shape == (1, 6)


def test_study_train_defaults():
    from birdspec.training.config import TrainConfig

    seed = TrainConfig.for_model("mobilenetv2-seed")
    assert (seed.optimizer, seed.lr, seed.batch_size) == ("adamw", 0.01, 16)
    res = TrainConfig.for_model("resnet18")
    assert (res.optimizer, res.lr, res.weight_decay, res.batch_size) == ("adamw", 0.001, 1e-4, 16)
    assert TrainConfig.for_model("resnet18", lr=0.05).lr == 0.05  # explicit settings win


def test_seed_model_is_smaller_than_base():
    seed = count_parameters(build_model("mobilenetv2-seed", in_channels=10, num_classes=6))
    base = count_parameters(build_model("mobilenetv2", in_channels=10, num_classes=6))
    assert seed < base / 4


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("mobilenetv2-seed", in_channels=2, num_classes=3).eval()
    enc = EncodingConfig(name="stack10", num_windows=2, window_s=1.0)
    ckpt = make_checkpoint(
        model, model_config=model.config, classes=["a", "b", "c"], frontend=FrontendConfig(), encoding=enc,
        train_config={"lr": 0.01}, epoch=3, metrics={"val_acc": 0.5},
    )
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["model"]["name"] == "mobilenetv2-seed" and raw["epoch"] == 3
    loaded, meta = load_model(path)
    wave = 0.1 * torch.randn(2, 2, 32_000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave), model(wave))
    assert meta.classes == ("a", "b", "c") and meta.epoch == 3 and meta.train_config == {"lr": 0.01}


def test_models_command_lists_registry(capsys):
    from birdspec.cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in WAVEFORM_MODELS:
        assert name in out
    seed10 = count_parameters(build_model("mobilenetv2-seed", in_channels=10, num_classes=6))
    assert f"{seed10:,}" in out
    assert "small-data: from scratch on few recordings" in out  # the recipes too
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet18"]["train_defaults"]["lr"] == 0.001
    assert by_name["mobilenetv2-seed"]["params_c10"] == seed10
    assert by_name["mobilenetv2-seed"]["params_c1"] < seed10


def test_models_command_lists_non_waveform_families(monkeypatch, capsys):
    """A family that takes embeddings (e.g. a BirdNET head) is listed with its note, without parameter counts."""
    from birdspec.cli.main import main

    fake = ModelSpec(
        name="fake-head", build=lambda *a, **k: None, description="a head on precomputed embeddings",
        input="embedding", note="train it with `birdspec embed` first",
    )
    monkeypatch.setitem(registry._REGISTRY, "fake-head", fake)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fake-head" in out and "embedding" in out and "note: train it with `birdspec embed` first" in out
    assert main(["models", "--json"]) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}["fake-head"]
    assert row["params_c10"] is None and row["input"] == "embedding"
