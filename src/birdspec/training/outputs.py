"""What a run writes when training ends (rank 0): detection thresholds, validation predictions, runtime
exports, ``summary.json``."""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.fileio import write_csv, write_json
from birdspec.training.rundir import SUMMARY_FILE, VAL_PREDICTIONS_FILE

log = logging.getLogger(__name__)


def finish_run(result: Any, *, val_set: Any, threshold_set: Any, model_input: str, num_train_samples: int,
               encoding_name: str, num_parameters: int, precision: str, device: Any) -> None:
    """Rank 0 after training: the detection thresholds of each checkpoint (chosen on ``threshold_set``,
    :mod:`birdspec.training.detection`), validation predictions of best.pt, runtime exports, ``summary.json``."""
    from birdspec.training.detection import store_detection

    cfg, out = result.config, result.run_dir
    checkpoints = [p for p in (result.best_checkpoint, result.last_checkpoint) if p.is_file()]
    detection = {}
    if checkpoints:
        detection = store_detection(checkpoints, threshold_set, cfg=cfg, model_input=model_input,
                                    batch_size=2 * int(cfg.batch_size or 16), device=device)
    if result.best_checkpoint.is_file():
        write_val_predictions(result.best_checkpoint, val_set, out / VAL_PREDICTIONS_FILE,
                              batch_size=2 * int(cfg.batch_size or 16), device=device)
    _export_runtimes(result)
    summary = {
        "model": cfg.model,
        "encoding": encoding_name,
        "best_epoch": result.best_epoch,
        "best_val_acc": result.best_val_acc,
        "best_val_loss": result.best_val_loss,
        "train_time_s": round(result.train_time_s, 3),
        "epochs_run": result.epochs_run,
        "max_epochs": cfg.epochs,
        "status": result.status,
        "num_parameters": num_parameters,
        "device": result.device,
        "precision": precision,
        "num_train_samples": num_train_samples,
        "num_val_samples": len(val_set),
        "final": result.history[-1] if result.history else None,
        "detection": {name: {"thresholds": list(d.thresholds), "temperature": d.temperature, "chosen_on": d.chosen_on}
                      for name, d in detection.items()},
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out / SUMMARY_FILE, summary)
    log.info(
        "best epoch %d: val acc %.4f, val loss %.4f (%s after %d epochs, %.1f s); run in %s",
        result.best_epoch, result.best_val_acc, result.best_val_loss, result.status, result.epochs_run,
        result.train_time_s, out,
    )


def _export_runtimes(result: Any) -> None:
    """The ONNX runtime export beside best.pt and last.pt (CNNs only); a failure only costs speed later."""
    from birdspec.models.registry import get_spec
    from birdspec.prediction.onnx_runtime import export_beside

    if get_spec(result.config.model).input != "waveform":
        return
    paths = [p for p in (result.best_checkpoint, result.last_checkpoint) if p.is_file()]
    try:
        export_beside(*paths)
    except Exception as exc:  # noqa: BLE001 - predict exports again (into its cache) when needed
        log.warning("could not write the ONNX runtime export of %s (%s); `birdspec predict` will make one",
                    ", ".join(map(str, paths)), exc)


def write_val_predictions(checkpoint_path: Path, dataset: Any, out_path: Path, *, batch_size: int,
                          device: Any) -> pd.DataFrame:
    """Per-sample class probabilities of ``dataset`` from ``checkpoint_path`` (the evaluation's predict loop).

    Columns: ``sample`` (index in the dataset), ``recording_id``, ``row`` (manifest row),
    ``window`` (window index within the recording; 0 for stack10), ``label``, ``label_id``,
    ``predicted``, ``predicted_id``, ``correct``, then ``prob_<class>`` per class in class order.
    """
    from birdspec.evaluation.inference import PROB_PREFIX, predict_samples
    from birdspec.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(checkpoint_path)
    pred = predict_samples(ckpt.build_model(device=device), dataset, classes=list(ckpt.classes),
                           batch_size=batch_size, device=device, activation=ckpt.activation,
                           temperature=ckpt.temperature)
    df = pred.to_frame()
    df = pd.DataFrame({
        "sample": np.arange(len(df)),
        "recording_id": df["id"],
        "row": df["row"],
        "window": df["window"],
        "label": df["label"],
        "label_id": df["label_id"],
        "predicted": df["predicted"],
        "predicted_id": df["predicted_id"],
        "correct": df["correct"].astype(int),
        **{c: df[c] for c in df.columns if str(c).startswith(PROB_PREFIX)},
    })
    write_csv(out_path, df)
    return df
