"""Fault injection (issue 15): train and cv killed (SIGKILL: nothing runs after it) or interrupted (SIGINT)
at chosen points in a subprocess, then run again, end with the outputs of a run never interrupted: the
same epochs, metrics and weights for train, the same test-fold predictions for cv.

Prepare's kill-and-rerun test is in test_safety.py; the lock, --out and disk-fault tests too.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from birdspec.cli.main import main
from birdspec.config import EncodingConfig

from conftest import FAST_FRONTEND
from fault_runner import install
from helpers import write_prepared

pytestmark = [pytest.mark.faults, pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]
METRICS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
TRAIN = ["--model", "mobilenetv2-seed", "--epochs", "3", "--batch-size", "4", "--workers", "0", "--seed", "0",
         "--device", "cpu", "--gain-db", "6", "--time-mask", "4", "--freq-mask", "4", "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """2 classes x 6 recordings of 2 s, 3 folds: 2 training batches of 4 per epoch."""
    return write_prepared(
        tmp_path_factory.mktemp("faults") / "ds", num_classes=2, per_class=6, duration_s=2.0, frontend=FAST_FRONTEND,
        folds=3, encoding=EncodingConfig(name="stack10", num_windows=2, window_s=1.0, short_policy="tile"),
    )


def _faulted(where: str, sig: str, argv: list[str], capfd) -> str:
    """Run ``birdspec ARGV`` in a forked child that signals itself at ``where``; its stderr.

    A fork (not a new interpreter) keeps the test fast: the child already has torch imported,
    and the patches of :func:`fault_runner.install` exist in the child only.
    """
    capfd.readouterr()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            install(where, sig)
            code = main(["-q", *argv])
        except KeyboardInterrupt:
            code = 130
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    err = capfd.readouterr().err
    if sig == "KILL":
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (status, err[-3000:])
    else:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130, (status, err[-3000:])
    return err


def _same_run(run: Path, reference: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv")[METRICS], pd.read_csv(reference / "metrics.csv")[METRICS])
    for which in ("best", "last"):
        a, b = (torch.load(r / "checkpoints" / f"{which}.pt", weights_only=True) for r in (run, reference))
        assert a["epoch"] == b["epoch"] and a["metrics"] == b["metrics"], which
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"]), which


@pytest.mark.slow
def test_train_killed_or_interrupted_anywhere_then_resumed_ends_as_if_never_stopped(dataset, tmp_path, capfd):
    reference = tmp_path / "reference"
    assert main(["-q", "train", str(dataset), "--out", str(reference), *TRAIN]) == 0
    points = [
        ("step:1:1", "KILL"),        # before any epoch was complete: --resume starts over
        ("step:2:1", "KILL"),        # mid-epoch: epoch 1 is kept, epoch 2 is run again
        ("resume-state:2", "KILL"),  # while the resume state of epoch 2 is written (temporary file, no rename)
        ("step:3:0", "INT"),         # Ctrl-C: last.pt is epoch 2, the message says so
    ]
    for where, sig in points:
        run = tmp_path / f"run-{where.replace(':', '-')}-{sig}"
        err = _faulted(where, sig, ["train", str(dataset), "--out", str(run), *TRAIN], capfd)
        if sig == "INT":
            assert "holds epoch 2, the last complete one" in err
            assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
        assert not list(run.rglob("*.tmp-*")), where
        assert main(["-q", "train", "--resume", str(run), "--no-progress"]) == 0, where
        _same_run(run, reference)


@pytest.mark.slow
def test_resume_with_data_loader_workers_at_every_epoch_boundary_and_mid_epoch(dataset, tmp_path, capfd):
    """With a data-loader worker drawing the random crops, gains and masks (the default on a multi-core
    machine), a run killed at any epoch boundary or in the middle of an epoch and resumed ends with the same
    metrics and weights as one never stopped (the workers' generators do not carry over from epoch to epoch:
    each epoch's are seeded from the main process's, which the resume state restores)."""
    argv = [*TRAIN[:TRAIN.index("--workers")], "--workers", "1", *TRAIN[TRAIN.index("--workers") + 2:]]
    reference = tmp_path / "reference"
    assert main(["-q", "train", str(dataset), "--out", str(reference), *argv]) == 0
    points = [("step:2:0", "KILL"), ("step:2:1", "KILL"), ("step:3:0", "KILL"), ("step:3:1", "INT")]
    for where, sig in points:  # the first batch of an epoch is right after a boundary; batch 1 is mid-epoch
        run = tmp_path / f"run-{where.replace(':', '-')}-{sig}"
        _faulted(where, sig, ["train", str(dataset), "--out", str(run), *argv], capfd)
        assert main(["-q", "train", "--resume", str(run), "--no-progress"]) == 0, where
        _same_run(run, reference)


def _cv_outputs(cv: Path) -> tuple[bytes, dict]:
    summary = json.loads((cv / "cv.json").read_text())
    keep = {k: v for k, v in summary.items() if k not in ("created_utc", "total_train_time_s", "folds")}
    keep["folds"] = [{k: v for k, v in f.items() if k not in ("run_dir", "checkpoint", "train_time_s")} for f in summary["folds"]]
    return (cv / "cv_predictions.csv").read_bytes(), keep


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "1"])
def test_cv_killed_in_training_or_evaluation_then_rerun_gives_the_same_results(dataset, tmp_path, capfd, workers):
    argv = ["--model", "mobilenetv2-seed", "--epochs", "2", "--batch-size", "4", "--workers", workers, "--seed", "0",
            "--device", "cpu", "--fixed-epochs", "--gain-db", "6", "--no-progress"]
    reference = tmp_path / "reference"
    assert main(["-q", "cv", str(dataset), "--out", str(reference), *argv]) == 0
    expected = _cv_outputs(reference)
    # fold 0 killed mid-epoch 2; fold 0 killed right after epoch 1; fold 1 killed while it is evaluated
    for where in ("step:2:1", "step:2:0", "evaluate:2"):
        cv = tmp_path / f"cv-{where.replace(':', '-')}"
        _faulted(where, "KILL", ["cv", str(dataset), "--out", str(cv), *argv], capfd)
        assert not (cv / "cv.json").exists()
        assert main(["-q", "cv", str(dataset), "--out", str(cv), *argv]) == 0, where
        assert _cv_outputs(cv) == expected, where
