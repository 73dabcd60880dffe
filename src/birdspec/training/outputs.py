"""What a run writes when training ends (rank 0): detection thresholds, validation predictions, the
caller's exports of its checkpoints (the ONNX runtime export: :func:`birdspec.training.train`'s ``export``),
``summary.json``."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.fileio import write_csv, write_json
from birdspec.training.rundir import SUMMARY_FILE, VAL_PREDICTIONS_FILE

log = logging.getLogger(__name__)


Export = Callable[..., Any]
"""Called with a finished run's checkpoint files (as arguments) to export them (e.g.
:func:`birdspec.prediction.onnx_runtime.export_beside`, the fast CPU path's runtime export)."""


def finish_run(result: Any, *, val_set: Any, threshold_set: Any, model_input: str, num_train_samples: int,
               encoding_name: str, num_parameters: int, precision: str, device: Any, export: Export | None = None) -> None:
    """Rank 0 after training: the detection thresholds of each checkpoint (chosen on ``threshold_set``,
    :mod:`birdspec.training.detection`), validation predictions of best.pt, ``export`` of the checkpoints
    (waveform models), ``summary.json``."""
    from birdspec.training.detection import store_detection

    cfg, out = result.config, result.run_dir
    checkpoints = [p for p in (result.best_checkpoint, result.last_checkpoint) if p.is_file()]
    detection = {}
    if checkpoints:
        detection = store_detection(checkpoints, threshold_set, cfg=cfg, model_input=model_input,
                                    batch_size=2 * int(cfg.batch_size or 16), device=device)
    if result.best_checkpoint.is_file():
        write_val_predictions(result.best_checkpoint, val_set, out / VAL_PREDICTIONS_FILE, model_input=model_input,
                              batch_size=2 * int(cfg.batch_size or 16), device=device)
    if export is not None and model_input == "waveform":
        _export_runtimes(checkpoints, export)
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


def _export_runtimes(paths: Sequence[Path], export: Export) -> None:
    """``export`` the checkpoints; a failure only costs speed later (``birdspec predict`` exports again)."""
    try:
        export(*paths)
    except Exception as exc:  # noqa: BLE001 - predict exports again (into its cache) when needed
        log.warning("could not write the runtime export of %s (%s); `birdspec predict` will make one",
                    ", ".join(map(str, paths)), exc)


def write_val_predictions(checkpoint_path: Path, dataset: Any, out_path: Path, *, model_input: str, batch_size: int,
                          device: Any) -> pd.DataFrame:
    """Per-sample class scores of ``dataset`` from ``checkpoint_path`` (its activation and temperature).

    Columns: ``sample`` (index in the dataset), ``recording_id``, ``row`` (manifest row),
    ``window`` (window index within the recording; 0 for stack10), ``label``, ``label_id``,
    ``predicted``, ``predicted_id``, ``correct``, then ``prob_<class>`` per class in class order.
    """
    from birdspec.formats import PROB_PREFIX
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.training.detection import sample_logits

    ckpt = read_checkpoint(checkpoint_path)
    classes = list(ckpt.classes)
    if list(dataset.classes) != classes:
        raise ValueError(f"{checkpoint_path}: its classes differ from the validation samples' ({classes[:3]}...)")
    logits, _ = sample_logits(ckpt.build_model(device=device), dataset, model_input=model_input, batch_size=batch_size,
                              device=device)
    probs = ckpt.scores(logits).astype(np.float64)
    rows = np.asarray(dataset.sample_rows, dtype=np.int64)
    labels = np.asarray(dataset.labels, dtype=np.int64)
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    df = pd.DataFrame({
        "sample": np.arange(len(rows)),
        "recording_id": dataset.data.manifest["id"].astype(str).to_numpy()[rows],
        "row": rows,
        "window": np.asarray(getattr(dataset, "sample_windows", np.zeros(len(rows))), dtype=np.int64),
        "label": [classes[i] for i in labels],
        "label_id": labels,
        "predicted": [classes[i] for i in predicted],
        "predicted_id": predicted.astype(np.int64),
        "correct": (predicted == labels).astype(int),
        **{PROB_PREFIX + c: probs[:, i] for i, c in enumerate(classes)},
    })
    write_csv(out_path, df)
    return df
