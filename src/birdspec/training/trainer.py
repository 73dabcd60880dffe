"""Building the Lightning trainer of a run: callbacks, loggers, precision and devices.

Scaling (e.g. the 397-class BirdCLEF set): ``devices=N`` trains with
Lightning's ``ddp`` strategy, one process per GPU (on the CPU: per gloo
process). The command is re-launched for ranks 1..N-1, which write nothing;
``batch_size`` is per process (effective batch N x batch_size, so consider
scaling ``lr``); validation metrics are averaged over the processes (the
distributed sampler pads the validation set to a multiple of N), while
``predictions_val.csv`` is computed by rank 0 on the whole validation set.
On CUDA, 16-bit mixed precision is the default.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from birdspec.errors import ConfigError, TrainingError
from birdspec.models.checkpoint import check_resume_state
from birdspec.training.config import TrainConfig
from birdspec.training.rundir import EPOCH_METRICS_FILE, LIGHTNING_DIR

log = logging.getLogger(__name__)


def env_rank() -> int:
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


def device_name(device: str, devices: int) -> str:
    """How the run's hardware is reported: 'cpu', 'cuda:0 (NVIDIA ...)', '2 x cpu (ddp)'."""
    if device == "cuda":
        import torch


        name = f"cuda:0 ({torch.cuda.get_device_name(0)})"
    else:
        name = device
    return f"{devices} x {name} (ddp)" if devices > 1 else name


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
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
        for lg, level in zip(loggers, before, strict=True):
            lg.setLevel(level)





def make_trainer(cfg: TrainConfig, out: Path, *, device: str, precision: str, callbacks: list[Any],
                 steps_per_epoch: int) -> Any:
    """The Lightning ``Trainer`` of a run (checkpoints are written by the run's own callback)."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(out / LIGHTNING_DIR, name="logs")]
    if importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out / LIGHTNING_DIR, name="tensorboard"))
    return pl.Trainer(
        accelerator={"cuda": "gpu"}.get(device, device),
        devices=cfg.devices,
        strategy="ddp" if cfg.devices > 1 else "auto",
        precision=precision,  # type: ignore[arg-type]  # one of PRECISIONS: Lightning types it as a Literal, checks it itself
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


def make_callbacks(cfg: TrainConfig, recorder: Any) -> tuple[list[Any], Any]:
    """The run's callbacks (the recorder, a progress bar, early stopping) and the early-stopping one (or None)."""
    from lightning.pytorch.callbacks import EarlyStopping

    callbacks: list[Any] = [recorder]
    if cfg.progress_bar:
        from birdspec.training.callbacks import EpochProgressBar

        callbacks.append(EpochProgressBar())
    early = None
    if cfg.early_stopping_patience:
        early = EarlyStopping(
            monitor=cfg.early_stopping_metric,
            mode="min" if cfg.early_stopping_metric == "val_loss" else "max",
            patience=cfg.early_stopping_patience,
            verbose=False,
        )
        callbacks.append(early)
    return callbacks, early


def check_devices(cfg: TrainConfig, device: str) -> None:
    """Refuse device counts the hardware cannot give."""
    if cfg.devices > 1 and device == "mps":
        raise ConfigError("--devices > 1 needs CUDA GPUs or the CPU (DDP); MPS trains on one device")
    if cfg.devices > 1 and device == "cuda":
        import torch

        if torch.cuda.device_count() < cfg.devices:
            raise ConfigError(f"--devices {cfg.devices}: only {torch.cuda.device_count()} CUDA GPUs are visible")


def fit(trainer: Any, module: Any, datamodule: Any, *, cfg: TrainConfig, out: Path, resuming: bool, rank: int,
        recorder: Any) -> None:
    """``trainer.fit`` with resume (from the recorder's Lightning checkpoint), Ctrl-C and out-of-memory handling."""
    ckpt_path = None
    if resuming:
        if recorder.lightning_last.is_file():
            check_resume_state(recorder.lightning_last)
            ckpt_path = str(recorder.lightning_last)
            log.info("resuming %s from %s", out, ckpt_path)
            done = len(pd.read_csv(out / EPOCH_METRICS_FILE)) if (out / EPOCH_METRICS_FILE).is_file() else 0
            if rank == 0 and done >= cfg.epochs:
                log.info("%s already ran %d epochs (--epochs %d): nothing to train; pass a larger --epochs", out, done, cfg.epochs)
        else:
            log.warning("%s has no completed epoch to resume from; training from the start", out)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
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


def root_device(trainer: Any) -> torch.device:
    """The device the trainer's strategy runs rank 0 on (CPU when it has none)."""
    try:
        return trainer.strategy.root_device
    except Exception:  # pragma: no cover - strategy without a root device
        return torch.device("cpu")
