"""Runs of models with nothing to train (``birdnet-closed``: BirdNET as it is).

:func:`birdspec.training.train` calls :func:`record_untrained` instead of
Lightning when the model has no trainable parameter. The run directory gets
the usual files, so ``evaluate``, ``cv``, ``compare`` and ``predict`` treat it
like any run: ``metrics.csv`` with one row, epoch 0 (no training; train loss
and accuracy are empty), ``checkpoints/best.pt`` = ``last.pt`` (epoch 0), then
``predictions_val.csv``, ``curves.png`` and ``summary.json`` as after training.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from birdspec.models.checkpoint import make_checkpoint, run_checkpoint, save_checkpoint
from birdspec.training.rundir import EPOCH_METRICS_FILE

log = logging.getLogger(__name__)


def record_untrained(model: Any, val_set: Any, recorder: Any, *, batch_size: int, device: Any) -> None:
    """Score ``model`` on ``val_set`` once and write it as the run's epoch 0 (``recorder``'s files and state)."""
    from birdspec.evaluation.inference import predict_samples
    from birdspec.training.callbacks import write_metrics_csv

    started = time.monotonic()
    classes = list(recorder.meta["classes"])
    pred = predict_samples(model, val_set, classes=classes, batch_size=batch_size, device=device)
    p_true = pred.probs[np.arange(len(pred)), pred.y_true] if len(pred) else np.ones(0)
    val_loss = float(-np.log(np.clip(p_true, 1e-12, 1.0)).mean()) if len(pred) else float("nan")
    val_acc = float((pred.y_pred == pred.y_true).mean()) if len(pred) else float("nan")
    row = {"epoch": 0, "train_loss": float("nan"), "train_acc": float("nan"), "val_loss": val_loss, "val_acc": val_acc,
           "lr": 0.0, "epoch_time_s": time.monotonic() - started, "elapsed_s": 0.0}
    recorder.history = [row]
    recorder.best = {"epoch": 0, "val_acc": val_acc, "val_loss": val_loss}
    meta = dict(recorder.meta)
    meta["extra"] = {**dict(meta.get("extra") or {}), "untrained": True}
    ckpt = make_checkpoint(model, epoch=0, metrics={"val_loss": val_loss, "val_acc": val_acc}, **meta)
    save_checkpoint(ckpt, run_checkpoint(recorder.run_dir, "last"))
    save_checkpoint(ckpt, run_checkpoint(recorder.run_dir, "best"))
    write_metrics_csv(recorder.history, recorder.run_dir / EPOCH_METRICS_FILE)
    log.info("nothing to train: scored as it is, val loss %.4f acc %.3f (epoch 0)", val_loss, val_acc)
