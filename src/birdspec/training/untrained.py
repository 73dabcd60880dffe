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
from collections.abc import Iterable
from typing import Any

from birdspec.models.checkpoint import make_checkpoint, run_checkpoint, save_checkpoint
from birdspec.training.rundir import EPOCH_METRICS_FILE

log = logging.getLogger(__name__)


def record_untrained(model: Any, val_loader: Iterable[tuple[Any, Any]], recorder: Any, *, device: Any) -> None:
    """Score ``model`` on the validation batches once and write it as the run's epoch 0 (``recorder``'s
    files and state); loss and accuracy are those training logs (:func:`~birdspec.training.module.validation_loss`,
    :func:`~birdspec.training.multilabel.top1_hits`)."""
    import torch

    from birdspec.training.callbacks import best_entry, write_metrics_csv
    from birdspec.training.module import fit_logits, part_accuracies, validation_loss, validation_parts
    from birdspec.training.multilabel import top1_hits

    started = time.monotonic()
    dev = torch.device(device)
    model.eval().to(dev)
    activation = str(recorder.meta.get("activation") or "softmax")  # softmax-background: no-bird samples are class K
    loss_sum, seen, parts = 0.0, 0, torch.zeros(4)
    with torch.no_grad():
        for x, y in val_loader:
            raw, y = model(x.to(dev)).float(), y.to(dev)
            logits = fit_logits(raw, activation)
            loss_sum += float(validation_loss(logits, y)) * len(y)
            parts += validation_parts(top1_hits(logits, y), y, int(raw.shape[1])).cpu()
            seen += len(y)
    val_loss = loss_sum / seen if seen else float("nan")
    val_acc = float(parts[0] + parts[2]) / seen if seen else float("nan")  # both parts' hits
    species, nobird = part_accuracies(parts)
    row = {"epoch": 0, "train_loss": float("nan"), "train_acc": float("nan"), "val_loss": val_loss, "val_acc": val_acc,
           "val_acc_species": species, "val_acc_nobird": nobird, "lr": 0.0, "epoch_time_s": time.monotonic() - started, "elapsed_s": 0.0}
    recorder.history = [row]
    recorder.best = best_entry(row)
    meta = dict(recorder.meta)
    meta["extra"] = {**dict(meta.get("extra") or {}), "untrained": True}
    ckpt = make_checkpoint(model, epoch=0, metrics={"val_loss": val_loss, "val_acc": val_acc}, **meta)
    save_checkpoint(ckpt, run_checkpoint(recorder.run_dir, "last"))
    save_checkpoint(ckpt, run_checkpoint(recorder.run_dir, "best"))
    write_metrics_csv(recorder.history, recorder.run_dir / EPOCH_METRICS_FILE)
    log.info("nothing to train: scored as it is, val loss %.4f acc %.3f (epoch 0)", val_loss, val_acc)
