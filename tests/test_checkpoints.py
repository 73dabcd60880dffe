"""Checkpoints have one owner: resolution, reading, validation, the torch-free peek and runtime exports.

Every inconsistent checkpoint is refused with exit status 2 and a message that says what is wrong,
by every command that reads checkpoints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from birdspec.cli.main import main
from birdspec.config import EncodingConfig, FrontendConfig
from birdspec.errors import CheckpointError
from birdspec.models.checkpoint import (
    CheckpointInfo,
    make_checkpoint,
    peek_checkpoint,
    read_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from birdspec.models.registry import build_model

from helpers import write_audio

WINDOW = EncodingConfig(name="window", window_s=1.0, short_policy="pad")
SMALL = FrontendConfig(n_fft=512, hop_length=1000, n_mels=32)


def raw_checkpoint(*, encoding: EncodingConfig = WINDOW, classes=("a", "b", "c")) -> dict:
    torch.manual_seed(0)
    model = build_model("mobilenetv2-seed", in_channels=encoding.in_channels, num_classes=len(classes), frontend=SMALL)
    return make_checkpoint(model, model_config=model.config, classes=list(classes), frontend=SMALL, encoding=encoding)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return save_checkpoint(raw_checkpoint(), tmp_path_factory.mktemp("ck") / "good.pt")


def _bad(tmp_path: Path, name: str, **changes) -> Path:
    raw = raw_checkpoint()
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    return save_checkpoint(raw, tmp_path / f"{name}.pt")


def test_read_validates_and_describes(good):
    ckpt = read_checkpoint(good)
    assert ckpt.classes == ("a", "b", "c") and ckpt.input == "waveform" and ckpt.in_channels == 1
    assert ckpt.activation == "softmax" and ckpt.input_norm == {"kind": "instance", "eps_db": 1.0}
    assert ckpt.path == good and ckpt.frontend == SMALL and ckpt.encoding == WINDOW
    info = CheckpointInfo.from_json(ckpt.info.to_json())
    assert info == ckpt.info
    model = ckpt.build_model()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 32000)).shape == (2, 3)


def test_peek_reads_the_metadata_without_torch(good):
    assert peek_checkpoint(good) == read_checkpoint(good).info
    code = (f"import sys\nfrom birdspec.models.checkpoint import peek_checkpoint\ni = peek_checkpoint({str(good)!r})\n"
            "print(i.classes, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('a', 'b', 'c') False"


def test_peek_refuses_foreign_pickles(tmp_path):
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"format": "birdspec-checkpoint", "x": Evil()}))
    assert peek_checkpoint(p) is None
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        read_checkpoint(p)


def test_resolve_checkpoint_paths(tmp_path, good):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no best.pt or last.pt"):
        resolve_checkpoint_path(run)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(good.read_bytes())
    assert resolve_checkpoint_path(run) == last  # an interrupted run: last.pt
    with pytest.raises(CheckpointError, match="no best.pt"):
        resolve_checkpoint_path(run, which="best")
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(good.read_bytes())
    assert resolve_checkpoint_path(run) == best and resolve_checkpoint_path(run, which="last") == last
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        resolve_checkpoint_path(tmp_path / "nothing.pt")


@pytest.mark.parametrize(
    "name, changes, message",
    [
        ("no-weights", {"state_dict": None}, "no weights"),
        ("empty-weights", {"state_dict": {}}, "no weights"),
        ("classes-vs-config", {"classes": ["a", "b", "c", "d"]}, "lists 4 classes but its model config has 3 outputs"),
        ("future", {"format_version": 7, "birdspec_version": "9.0"}, "reads format version 1; upgrade birdspec"),
        ("bad-frontend", {"frontend": {"n_mels": -4}}, "invalid frontend or encoding"),
        ("other-rate", {"frontend": {"sample_rate_hz": 22050, "fmax_hz": 11000.0}}, "runs at 22050 Hz"),
        ("unknown-input", {"model": {"name": "mobilenetv2-seed", "input": "video", "num_classes": 3}}, "unknown model input"),
        ("no-model", {"model": {}}, "no model description"),
        ("not-birdspec", {"format": "something-else"}, "not a birdspec checkpoint"),
    ],
)
def test_inconsistent_checkpoints_exit_2(tmp_path, capsys, name, changes, message):
    bad = _bad(tmp_path, name, **changes)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(bad)
    wav = write_audio(tmp_path / "a.wav", np.zeros(32000, np.float32), 32000)
    for argv in (["predict", str(bad), str(wav), "--out", str(tmp_path / "p.csv")],
                 ["export", str(bad), "--out", str(tmp_path / "m.onnx")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message.split(";")[0] in err and "Traceback" not in err


def test_class_list_of_other_weights(tmp_path, capsys):
    """4 labels and a 4-output config on weights with 3 outputs: the last layer says so."""
    raw = raw_checkpoint()
    raw["classes"] = ["a", "b", "c", "d"]
    raw["model"] = {**raw["model"], "num_classes": 4}
    bad = save_checkpoint(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="lists 4 classes but the network's last layer has 3 outputs"):
        read_checkpoint(bad)
    assert main(["export", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "last layer has 3 outputs" in capsys.readouterr().err


def test_stack10_metadata_on_one_channel_weights(tmp_path, capsys):
    raw = raw_checkpoint()
    stack = EncodingConfig(name="stack10", num_windows=10, window_s=1.0, short_policy="pad")
    raw["encoding"] = {"name": "stack10", "num_windows": 10, "window_s": 1.0, "short_policy": "pad"}
    raw["model"] = {**raw["model"], "in_channels": 10}
    bad = save_checkpoint(raw, tmp_path / "stack-on-window.pt")
    with pytest.raises(CheckpointError, match="first layer's weights take 1"):
        read_checkpoint(bad)
    raw["model"] = {**raw["model"], "in_channels": 1}  # the config contradicts the encoding too
    bad2 = save_checkpoint(raw, tmp_path / "stack-config.pt")
    with pytest.raises(CheckpointError, match=f"gives {stack.in_channels} channel"):
        read_checkpoint(bad2)
    wav = write_audio(tmp_path / "a.wav", np.zeros(32000, np.float32), 32000)
    assert main(["predict", str(bad), str(wav), "--out", str(tmp_path / "p.csv")]) == 2
    assert "encoding does not belong to these weights" in capsys.readouterr().err


def test_evaluate_and_resume_refuse_a_damaged_run(tmp_path, capsys, fast_dataset):
    from helpers import make_run

    run = make_run(tmp_path / "run", fast_dataset)
    raw = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    raw.pop("state_dict")
    torch.save(raw, run / "checkpoints" / "best.pt")
    assert main(["evaluate", str(run)]) == 2
    assert "no weights" in capsys.readouterr().err


def test_truncated_file_exit_2(tmp_path, good, capsys):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:3000])
    assert main(["export", str(cut), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not a loadable checkpoint" in capsys.readouterr().err
