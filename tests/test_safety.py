"""Nothing a command reads is overwritten: an --out that is (or is inside) an input is refused with exit 2."""

from __future__ import annotations

import numpy as np
from helpers import make_run, write_audio

from birdspec.cli.main import main

SR = 32000


def test_outputs_never_replace_inputs(tmp_path, fast_dataset, capsys):
    run = make_run(tmp_path / "run", fast_dataset)
    ckpt = run / "checkpoints" / "best.pt"
    rec = write_audio(tmp_path / "rec.wav", (0.1 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32), SR)
    before = {p: p.read_bytes() for p in (ckpt, rec)}
    cases = [
        ["predict", str(ckpt), str(rec), "--out", str(rec)],
        ["predict", str(ckpt), str(tmp_path), "--out", str(tmp_path / "preds.csv")],  # inside an input folder
        ["export", str(ckpt), "--out", str(ckpt)],
        ["export", str(ckpt), "--out", str(rec.with_suffix(".onnx")), "--check-audio", str(rec.with_suffix(".onnx"))],
        ["train", str(fast_dataset), "--out", str(fast_dataset)],
        ["train", str(fast_dataset), "--out", str(fast_dataset / "runs" / "a")],
        ["prepare", str(tmp_path), "--out", str(tmp_path / "prepared")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "never overwrites what it reads" in err and "Traceback" not in err, argv
    assert {p: p.read_bytes() for p in (ckpt, rec)} == before


def test_outputs_beside_inputs_are_fine(tmp_path, fast_dataset):
    run = make_run(tmp_path / "run", fast_dataset)
    rec = write_audio(tmp_path / "rec.wav", (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    assert main(["predict", str(run), str(rec), "--format", "raven", "--out", str(run / "selections"), "--no-progress"]) == 0
    assert main(["predict", str(run), str(rec), "--out", str(tmp_path / "rec.csv"), "--no-progress"]) == 0
