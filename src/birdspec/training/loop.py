"""The training entry point: :func:`train` a registered model on a prepared dataset into a run directory.

Run directory layout::

    RUN_DIR/
      config.json            everything to rebuild model and data pipeline (TrainConfig, model config,
                             dataset path and settings, encoding, frontend, classes, train/val recording ids)
      metrics.csv            one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr,
                             epoch_time_s, elapsed_s (epochs counted from 1)
      curves.png             loss and accuracy, training vs validation
      checkpoints/best.pt    birdspec checkpoint of the epoch with the best validation accuracy
      checkpoints/last.pt    birdspec checkpoint of the last epoch (or of the interrupted one)
      predictions_val.csv    per validation sample, from best.pt: sample, recording_id, row, window,
                             label, label_id, predicted, predicted_id, correct, prob_<class>...
      summary.json           best_epoch, best_val_acc, best_val_loss, train_time_s, epochs_run, ...
      lightning/last.ckpt    Lightning's resume state (optimizer, scheduler, loops) for --resume
      lightning/logs/        Lightning's raw CSV logs (and TensorBoard's, when installed)

Epochs are counted from 1 in every file. "Best" is the epoch with the highest
validation accuracy (ties: lower validation loss); ``--early-stopping N``
watches ``val_loss`` unless ``early_stopping_metric='val_acc'``.

Scaling (e.g. the 397-class BirdCLEF set): ``devices=N`` trains with
Lightning's ``ddp`` strategy, one process per GPU (on the CPU: per gloo
process). The command is re-launched for ranks 1..N-1, which write nothing;
``batch_size`` is per process (effective batch N x batch_size, so consider
scaling ``lr``); validation metrics are averaged over the processes (the
distributed sampler pads the validation set to a multiple of N), while
``predictions_val.csv`` is computed by rank 0 on the whole validation set.
Typical: ``birdspec train DS --model resnet18 --devices 4 --batch-size 32
--workers 8 --out RUN``. On CUDA, 16-bit mixed precision is the default.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import signal
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from birdspec import __version__
from birdspec.config import to_dict
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import CheckpointError, ConfigError, DataError, TrainingError
from birdspec.fileio import write_json
from birdspec.runtime import resolve_device, use_fast_cpu_math
from birdspec.training.config import TrainConfig

log = logging.getLogger(__name__)

RUN_FORMAT = "birdspec-run"
RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.csv"
PREDICTIONS_FILE = "predictions_val.csv"
CURVES_FILE = "curves.png"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        run_dir: the run directory.
        best_epoch / best_val_acc / best_val_loss: the selected epoch (highest validation
            accuracy, ties broken by lower validation loss) and its metrics.
        epochs_run: epochs completed in total (over resumes).
        train_time_s: training time in total (over resumes).
        status: 'completed', 'early_stopped' or 'time_limit'.
        best_checkpoint / last_checkpoint: ``checkpoints/best.pt`` and ``checkpoints/last.pt``.
        num_parameters: trainable and frozen parameters of the model.
        device: where it trained (e.g. 'cuda:0 (NVIDIA H100)', 'cpu', '2 x cpu (ddp)').
        config: the resolved :class:`TrainConfig`.
        history: the ``metrics.csv`` rows.
        is_global_zero: False in the extra DDP processes (which write nothing).
    """

    run_dir: Path
    best_epoch: int
    best_val_acc: float
    best_val_loss: float
    epochs_run: int
    train_time_s: float
    status: str
    best_checkpoint: Path
    last_checkpoint: Path
    num_parameters: int
    device: str
    config: TrainConfig
    history: tuple[dict[str, float], ...] = field(default_factory=tuple)
    is_global_zero: bool = True

    @property
    def predictions_path(self) -> Path:
        return self.run_dir / PREDICTIONS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE


# --------------------------------------------------------------------------- helpers


def _env_rank() -> int:
    """0 in the main process; > 0 in the DDP processes Lightning (or torchrun, SLURM) started."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name):
            return int(os.environ[name])
    return int(os.environ.get("LOCAL_RANK") or 0) + int(os.environ.get("NODE_RANK") or 0)


def resolve_precision(precision: str | None, device: str) -> str:
    """None -> '16-mixed' on CUDA, '32-true' elsewhere; float16 autocast on CPU is refused."""
    if precision is None:
        return "16-mixed" if device == "cuda" else "32-true"
    if precision == "16-mixed" and device == "cpu":
        raise ConfigError("--precision 16-mixed needs a GPU; on the CPU use bf16-mixed or 32-true")
    return precision


def _device_name(device: str, devices: int) -> str:
    if device == "cuda":
        name = f"cuda:0 ({torch.cuda.get_device_name(0)})"
    else:
        name = device
    return f"{devices} x {name} (ddp)" if devices > 1 else name


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's INFO chatter (GPU available..., seed set...) only when birdspec logs at DEBUG."""
    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    if not logging.getLogger("birdspec").isEnabledFor(logging.DEBUG):
        for lg in loggers:
            if lg.getEffectiveLevel() < logging.WARNING:
                lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
            warnings.filterwarnings("ignore", message=".*that has `shuffle=True`.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
            yield
    finally:
        for lg, level in zip(loggers, before):
            lg.setLevel(level)



def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a birdspec run directory (no {CONFIG_FILE}); train one with `birdspec train`")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt ({exc})") from exc
    if cfg.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path}: not a birdspec run config")
    return cfg


def _rows_from_ids(data: PreparedDataset, ids: Sequence[str], what: str) -> np.ndarray:
    rows, missing = data.rows_for_ids(ids)
    if missing:
        raise DataError(
            f"{len(missing)} {what} recordings of the run (e.g. {missing[:3]}) are not in {data.root}; "
            "resume with the dataset the run was trained on"
        )
    return rows


def _check_fresh_run_dir(out: Path) -> None:
    markers = [out / CONFIG_FILE, out / "checkpoints", out / "lightning"]
    if any(p.exists() for p in markers):
        raise ConfigError(
            f"{out} already holds a training run; continue it with --resume, or choose another --out (or delete it)"
        )


# ------------------------------------------------------------------------------ train


def train(
    dataset_dir: str | Path | None,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    rows_train: Sequence[int] | np.ndarray | None = None,
    rows_val: Sequence[int] | np.ndarray | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a registered model on a prepared dataset; write the run directory ``out_dir``.

    Model selection ("best") uses the validation rows: highest accuracy, ties
    broken by lower loss.

    Args:
        dataset_dir: a prepared dataset (``birdspec prepare``); with ``resume`` it may be
            None (the run's own dataset path is used).
        out_dir: the run directory (created; must not hold another run unless ``resume``).
        config: training settings; None-valued optimizer/lr/weight decay/batch size are
            filled from the model's study defaults. With ``resume``: None continues with the
            saved config; a config may change e.g. ``epochs`` or ``max_minutes``, not the model.
        rows_train / rows_val: manifest rows to train and validate on (both or neither;
            default: the dataset's train/val split). Cross-validation passes training folds
            with an inner validation split.
        resume: continue ``out_dir`` from its last completed epoch (Lightning state in
            ``lightning/last.ckpt``), with the rows it was started with.

    Returns:
        a :class:`TrainResult`.

    Raises:
        ConfigError / DataError / CheckpointError: bad settings, data or run directory.
        TrainingError: the loss became non-finite.
        KeyboardInterrupt: on Ctrl-C, after ``checkpoints/last.pt`` was written.
    """
    out = Path(out_dir)
    rank = _env_rank()
    saved: dict[str, Any] | None = None
    if resume:
        saved = read_run_config(out)
        saved_cfg = TrainConfig.from_dict(saved["train_config"])
        cfg = (config or saved_cfg).resolved()
        changed = saved_cfg.architecture_changes(cfg)
        if changed:
            raise ConfigError(f"a resumed run cannot change {', '.join(changed)}; start a new run with another --out")
        if rows_train is not None or rows_val is not None:
            raise ConfigError("a resumed run keeps its own training/validation rows; do not pass rows_train/rows_val")
        dataset_dir = dataset_dir or saved["dataset"]["path"]
    else:
        if config is None:
            raise ConfigError("train() needs a TrainConfig (or resume=True)")
        cfg = config.resolved()
        if rank == 0:
            _check_fresh_run_dir(out)
    if dataset_dir is None:
        raise ConfigError("give the prepared dataset directory")

    data = PreparedDataset(dataset_dir)
    if len(data.classes) < 2:
        raise DataError(f"{data.root}: needs at least 2 classes to train a classifier, has {len(data.classes)}")
    from birdspec.training.datamodule import (
        default_workers,
        resolve_encoding,
        select_rows,
    )

    encoding = resolve_encoding(data, cfg.encoding_override)
    if saved is not None:
        if list(saved["classes"]) != list(data.classes):
            raise DataError(f"{data.root} has other classes than the run being resumed; pass the run's dataset")
        train_rows = _rows_from_ids(data, saved["rows"]["train"], "training")
        val_rows = _rows_from_ids(data, saved["rows"]["val"], "validation")
    else:
        train_rows, val_rows = select_rows(data, rows_train, rows_val)

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if cfg.devices > 1 and device == "mps":
        raise ConfigError("--devices > 1 needs CUDA GPUs or the CPU (DDP); MPS trains on one device")
    if cfg.devices > 1 and device == "cuda" and torch.cuda.device_count() < cfg.devices:
        raise ConfigError(f"--devices {cfg.devices}: only {torch.cuda.device_count()} CUDA GPUs are visible")
    workers = cfg.workers if cfg.workers is not None else default_workers()

    with _quiet_lightning():
        return _fit(
            data=data, out=out, cfg=cfg, encoding=encoding, train_rows=train_rows, val_rows=val_rows,
            device=device, precision=precision, workers=workers, saved=saved, rank=rank,
        )


def _fit(
    *,
    data: PreparedDataset,
    out: Path,
    cfg: TrainConfig,
    encoding: Any,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    device: str,
    precision: str,
    workers: int,
    saved: dict[str, Any] | None,
    rank: int,
) -> TrainResult:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping
    from lightning.pytorch.loggers import CSVLogger

    from birdspec.models.registry import build_model, count_parameters, get_spec
    from birdspec.training.callbacks import LIGHTNING_DIR, RunRecorder
    from birdspec.training.datamodule import BirdspecDataModule
    from birdspec.training.module import BirdspecLightning

    resume = saved is not None
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    use_fast_cpu_math()
    spec = get_spec(cfg.model)
    dm = BirdspecDataModule(
        data, rows_train=train_rows, rows_val=val_rows, encoding=encoding, batch_size=int(cfg.batch_size or 16),
        workers=workers, random_crop=cfg.random_crop, pin_memory=device == "cuda", model_input=spec.input,
        crops_per_recording=cfg.crops_per_recording,
        crop_samples=None if cfg.crop_s is None else round(cfg.crop_s * data.sample_rate_hz),
    )
    if spec.input != "waveform" and cfg.mixup_alpha > 0:
        raise ConfigError(f"--mixup applies to waveform models; {cfg.model} reads {spec.input}s")
    model = build_model(
        cfg.model,
        in_channels=dm.train_set.in_channels,
        num_classes=len(data.classes),
        frontend=data.frontend,
        input_norm=cfg.input_norm,
        pretrained=None if resume else cfg.pretrained,  # resumed weights come from the checkpoint
        first_conv=cfg.first_conv,
        options=cfg.model_options,
    )
    model_config = dict(saved["model"]) if saved else dict(model.config)
    num_parameters = count_parameters(model)
    ids = data.manifest["id"].astype(str).to_numpy()
    device_name = _device_name(device, cfg.devices)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        run_config = {
            "format": RUN_FORMAT,
            "format_version": RUN_FORMAT_VERSION,
            "birdspec_version": __version__,
            "created_utc": saved["created_utc"] if saved else _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "train_config": cfg.to_dict(),
            "model": model_config,
            "num_parameters": num_parameters,
            "dataset": {
                "path": str(data.root.resolve()),
                "format_version": data.meta.get("format_version"),
                "source": data.meta.get("source"),
                "layout": data.meta.get("layout"),
                "settings": data.meta.get("settings"),
                "encoding": to_dict(data.encoding),
                "num_recordings": int(len(data.manifest)),
            },
            "encoding": to_dict(encoding),
            "frontend": to_dict(data.frontend),
            "sample_rate_hz": data.sample_rate_hz,
            "classes": list(data.classes),
            "class_info": data.class_info,
            "num_samples": {"train": len(dm.train_set), "val": len(dm.val_set)},
            "rows": {"train": ids[train_rows].tolist(), "val": ids[val_rows].tolist()},
            "runtime": {
                "device": device_name,
                "precision": precision,
                "workers": workers,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "lightning": pl.__version__,
            },
            "resumes": (saved.get("resumes", []) + [_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")]) if saved else [],
        }
        write_json(out / CONFIG_FILE, run_config)
    if rank == 0:
        log.info(
            "training %s (%s parameters) on %d %s samples, validating on %d; %s, %s",
            cfg.model, f"{num_parameters:,}", len(dm.train_set), encoding.name, len(dm.val_set), device_name, precision,
        )

    checkpoint_meta = {
        "model_config": model_config,
        "classes": list(data.classes),
        "class_info": data.class_info,
        "frontend": data.frontend,
        "encoding": encoding,
        "train_config": cfg.to_dict(),
        "extra": {"dataset": str(data.root.resolve()), "run_dir": str(out.resolve())},
    }
    recorder = RunRecorder(
        out,
        checkpoint_meta=checkpoint_meta,
        max_minutes=cfg.max_minutes,
        title=f"Training & Validation Metrics: {cfg.model} ({encoding.name}, lr {cfg.lr:g}, {cfg.optimizer})",
        network=lambda module: module.model,
    )
    callbacks: list[Any] = [recorder]
    if cfg.progress_bar:
        from birdspec.training.callbacks import EpochProgressBar

        callbacks.append(EpochProgressBar())
    early: EarlyStopping | None = None
    if cfg.early_stopping_patience:
        early = EarlyStopping(
            monitor=cfg.early_stopping_metric,
            mode="min" if cfg.early_stopping_metric == "val_loss" else "max",
            patience=cfg.early_stopping_patience,
            verbose=False,
        )
        callbacks.append(early)
    loggers: list[Any] = [CSVLogger(out / LIGHTNING_DIR, name="logs")]
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out / LIGHTNING_DIR, name="tensorboard"))

    steps_per_epoch = max(1, len(dm.train_set) // (int(cfg.batch_size or 16) * cfg.devices))
    trainer = pl.Trainer(
        accelerator={"cuda": "gpu"}.get(device, device),
        devices=cfg.devices,
        strategy="ddp" if cfg.devices > 1 else "auto",
        precision=precision,
        max_epochs=cfg.epochs,
        logger=loggers,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=cfg.progress_bar,
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.grad_clip_norm,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        default_root_dir=out / LIGHTNING_DIR,
        benchmark=True if device == "cuda" else None,  # fixed input shapes: let cuDNN pick its fastest kernels
    )
    module = BirdspecLightning(model, cfg)
    ckpt_path = None
    if resume:
        if recorder.lightning_last.is_file():
            ckpt_path = str(recorder.lightning_last)
            log.info("resuming %s from %s", out, ckpt_path)
            done = len(pd.read_csv(out / METRICS_FILE)) if (out / METRICS_FILE).is_file() else 0
            if rank == 0 and done >= cfg.epochs:
                log.info("%s already ran %d epochs (--epochs %d): nothing to train; pass a larger --epochs", out, done, cfg.epochs)
        else:
            log.warning("%s has no completed epoch to resume from; training from the start", out)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) after its on_exception hooks (last.pt is written)
        if recorder.stop_reason == "interrupted":
            raise KeyboardInterrupt from None
        raise
    except TrainingError:
        raise
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise TrainingError(
                f"out of memory with --batch-size {cfg.batch_size} ({exc.__class__.__name__}); "
                "lower --batch-size, or use --precision 16-mixed on a GPU"
            ) from exc
        raise
    finally:
        if sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)  # Lightning ignores Ctrl-C after an interrupt

    status = "completed"
    if early is not None and early.stopped_epoch > 0:
        status = "early_stopped"
    elif recorder.stop_reason == "time_limit":
        status = "time_limit"
    best = recorder.best or {"epoch": 0, "val_acc": float("nan"), "val_loss": float("nan")}
    ckpt_dir = out / "checkpoints"
    result = TrainResult(
        run_dir=out,
        best_epoch=int(best["epoch"]),
        best_val_acc=float(best["val_acc"]),
        best_val_loss=float(best["val_loss"]),
        epochs_run=len(recorder.history),
        train_time_s=recorder.elapsed_s(),
        status=status,
        best_checkpoint=ckpt_dir / "best.pt",
        last_checkpoint=ckpt_dir / "last.pt",
        num_parameters=num_parameters,
        device=device_name,
        config=cfg,
        history=tuple(recorder.history),
        is_global_zero=trainer.is_global_zero,
    )
    if not trainer.is_global_zero:
        return result
    recorder.write_curves()
    if result.best_checkpoint.is_file():
        write_val_predictions(
            model, result.best_checkpoint, dm.val_set, out / PREDICTIONS_FILE,
            batch_size=2 * int(cfg.batch_size or 16), device=_root_device(trainer), precision=precision,
            collate_fn=dm.collate_fn,
        )
    summary = {
        "model": cfg.model,
        "encoding": encoding.name,
        "best_epoch": result.best_epoch,
        "best_val_acc": result.best_val_acc,
        "best_val_loss": result.best_val_loss,
        "train_time_s": round(result.train_time_s, 3),
        "epochs_run": result.epochs_run,
        "max_epochs": cfg.epochs,
        "status": status,
        "num_parameters": num_parameters,
        "device": device_name,
        "precision": precision,
        "num_train_samples": len(dm.train_set),
        "num_val_samples": len(dm.val_set),
        "final": recorder.history[-1] if recorder.history else None,
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out / SUMMARY_FILE, summary)
    log.info(
        "best epoch %d: val acc %.4f, val loss %.4f (%s after %d epochs, %.1f s); run in %s",
        result.best_epoch, result.best_val_acc, result.best_val_loss, status, result.epochs_run, result.train_time_s, out,
    )
    return result


def _root_device(trainer: Any) -> torch.device:
    try:
        return trainer.strategy.root_device
    except Exception:  # pragma: no cover - strategy without a root device
        return torch.device("cpu")


@torch.no_grad()
def write_val_predictions(
    model: torch.nn.Module,
    checkpoint_path: Path,
    dataset: Any,
    out_path: Path,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "32-true",
    collate_fn: Any = None,
) -> pd.DataFrame:
    """Per-sample class probabilities of ``dataset`` from the weights in ``checkpoint_path``.

    Columns: ``sample`` (index in the dataset), ``recording_id``, ``row`` (manifest row),
    ``window`` (window index within the recording; 0 for stack10), ``label``, ``label_id``,
    ``predicted``, ``predicted_id``, ``correct``, then ``prob_<class>`` per class in class order.
    """
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate_fn)
    autocast = device.type == "cuda" and precision in ("16-mixed", "bf16-mixed")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    probs = []
    for x, _ in loader:
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=autocast):
            logits = model(x.to(device, non_blocking=True))
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(dataset.classes)), np.float32)
    classes = list(dataset.classes)
    manifest = dataset.data.manifest
    pred = p.argmax(axis=1)
    df = pd.DataFrame(
        {
            "sample": np.arange(len(dataset)),
            "recording_id": manifest["id"].astype(str).to_numpy()[dataset.sample_rows],
            "row": dataset.sample_rows,
            "window": dataset.sample_windows,
            "label": [classes[i] for i in dataset.labels],
            "label_id": dataset.labels,
            "predicted": [classes[i] for i in pred],
            "predicted_id": pred,
            "correct": (pred == dataset.labels).astype(int),
        }
    )
    for k, c in enumerate(classes):
        df[f"prob_{c}"] = p[:, k]
    tmp = out_path.with_name(out_path.name + ".tmp")
    df.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(out_path)
    return df
