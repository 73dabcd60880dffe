"""Pretrained weights: torchvision state dicts adapted to C input channels and K classes, checked numerically."""

from __future__ import annotations

import pytest
import torch
import torchvision

from birdspec.errors import CheckpointError, ConfigError
from birdspec.models.pretrained import adapt_input_conv
from birdspec.models.registry import build_model, get_spec


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def mobilenet_v2_file(tmp_path_factory):
    torch.manual_seed(2)
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2.pth"
    torch.save(state, path)
    return path, state


def test_adapt_input_conv_math():
    w = torch.randn(4, 3, 3, 3)
    avg = adapt_input_conv(w, 10, mode="average")
    rep = adapt_input_conv(w, 10, mode="repeat")
    assert avg.shape == rep.shape == (4, 10, 3, 3)
    for c in range(10):
        torch.testing.assert_close(avg[:, c], w.mean(dim=1))
        torch.testing.assert_close(rep[:, c], w[:, c % 3] * 3 / 10)
    torch.testing.assert_close(adapt_input_conv(w, 1, mode="repeat")[:, 0], w[:, 0] * 3)
    torch.testing.assert_close(adapt_input_conv(w, 3, mode="repeat"), w)
    # repeat keeps the summed kernel (the response to a constant input) exactly when 3 divides C
    torch.testing.assert_close(adapt_input_conv(w, 9, mode="repeat").sum(dim=1), w.sum(dim=1))
    with pytest.raises(ConfigError):
        adapt_input_conv(w, 10, mode="median")


def _check_loaded(model_state, source, *, first_conv_key, classifier_prefix, mode, in_channels):
    src_conv = source[first_conv_key]
    got = model_state[first_conv_key]
    assert got.shape[1] == in_channels
    for c in range(in_channels):
        want = src_conv.mean(dim=1) if mode == "average" else src_conv[:, c % 3] * 3 / in_channels
        torch.testing.assert_close(got[:, c], want)
    head = [k for k in model_state if k.startswith(classifier_prefix + ".") and k.endswith(".weight")]
    assert head and model_state[head[-1]].shape[0] == 6
    others = [k for k in source if k != first_conv_key and not k.startswith(classifier_prefix + ".")]
    assert others
    for key in others:
        torch.testing.assert_close(model_state[key], source[key], msg=key)


@pytest.mark.parametrize("mode", ["average", "repeat"])
def test_resnet18_from_state_dict(resnet18_file, mode):
    path, source = resnet18_file
    model = build_model("resnet18", in_channels=10, num_classes=6, pretrained=str(path), first_conv=mode)
    state = model.backbone.state_dict()
    _check_loaded(state, source, first_conv_key="conv1.weight", classifier_prefix="fc", mode=mode, in_channels=10)
    assert state["fc.weight"].shape == (6, 512) and state["fc.bias"].shape == (6,)
    assert model.config["pretrained"] == str(path) and model.config["first_conv"] == mode
    with torch.no_grad():
        assert model.eval()(0.1 * torch.randn(1, 10, 32_000)).shape == (1, 6)


@pytest.mark.parametrize("mode", ["average", "repeat"])
def test_mobilenetv2_from_state_dict(mobilenet_v2_file, mode):
    path, source = mobilenet_v2_file
    model = build_model("mobilenetv2", in_channels=1, num_classes=6, pretrained=str(path), first_conv=mode)
    _check_loaded(
        model.backbone.state_dict(), source, first_conv_key="features.0.0.weight", classifier_prefix="classifier",
        mode=mode, in_channels=1,
    )


def test_mobilenetv2_seed_loads_overlapping_base_blocks(mobilenet_v2_file):
    path, source = mobilenet_v2_file
    torch.manual_seed(0)
    model = build_model("mobilenetv2-seed", in_channels=10, num_classes=6, pretrained=str(path), first_conv="average")
    state = model.backbone.state_dict()
    # features.0 (stem) .. features.9 exist in both networks with the same shapes: loaded
    overlap = [k for k in source if k.startswith("features.") and k in state and int(k.split(".")[1]) <= 9]
    assert overlap
    for key in overlap:
        if key == "features.0.0.weight":
            torch.testing.assert_close(state[key][:, 0], source[key].mean(dim=1))
        else:
            torch.testing.assert_close(state[key], source[key], msg=key)
    # the seed model's own last conv (features.10: 64 -> 1280) and classifier stay initialised
    assert state["features.10.0.weight"].shape == (1280, 64, 1, 1)
    assert state["classifier.1.weight"].shape == (6, 1280)


def test_seed_model_overlap_with_base_is_shape_compatible(mobilenet_v2_file):
    """What the partial load would take: every seed tensor up to features.9 has a same-shaped base tensor."""
    _, source = mobilenet_v2_file
    state = build_model("mobilenetv2-seed", in_channels=3, num_classes=6).backbone.state_dict()
    seed_blocks = [k for k in state if k.startswith("features.") and int(k.split(".")[1]) <= 9]
    for key in seed_blocks:
        assert key in source and source[key].shape == state[key].shape, key
    assert not any(k.startswith("features.10.") and k in source for k in state)  # final conv: not in the base


def test_wrong_architecture_and_bad_files(resnet18_file, tmp_path):
    path, _ = resnet18_file
    with pytest.raises(CheckpointError):
        build_model("mobilenetv2", in_channels=10, num_classes=6, pretrained=str(path))
    with pytest.raises(CheckpointError, match="no such weights file"):
        build_model("resnet18", in_channels=10, num_classes=6, pretrained=str(tmp_path / "missing.pth"))
    not_tensors = tmp_path / "not_tensors.pth"
    torch.save({"a": 1}, not_tensors)
    with pytest.raises(CheckpointError, match="not a state dict"):
        build_model("resnet18", in_channels=10, num_classes=6, pretrained=str(not_tensors))
    assert get_spec("resnet18").torchvision_arch == "resnet18"


def test_junk_weights_file_is_a_checkpoint_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(CheckpointError):
        build_model("resnet18", in_channels=10, num_classes=6, pretrained=str(junk))
