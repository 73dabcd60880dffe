"""The training entry point: :func:`train` a registered model on a prepared dataset into a run directory.

The run directory's layout is in :mod:`birdspec.training.rundir`; the Lightning
trainer is built by :mod:`birdspec.training.trainer`. Epochs are counted from 1
in every file. "Best" is the epoch with the highest validation accuracy, its species
and no-bird parts counting half each when the run has no-bird samples (ties: lower
validation loss; :func:`birdspec.training.callbacks.selection_score`);
``--early-stopping N`` watches ``val_loss`` unless ``early_stopping_metric='val_acc'``.
At the end, rank 0 chooses each checkpoint's detection thresholds, writes the
validation predictions of ``best.pt`` and hands the checkpoints to the caller's
``export`` (:mod:`birdspec.training.outputs`).
Typical multi-GPU use: ``birdspec train DS --model resnet18 --devices 4
--batch-size 32 --workers 8 --out RUN``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from birdspec import __version__
from birdspec.config import to_dict
from birdspec.data.prepared import PreparedDataset
from birdspec.errors import ConfigError, DataError
from birdspec.fileio import output_lock, refuse_output_over_inputs, write_json
from birdspec.models.checkpoint import run_checkpoint
from birdspec.runtime import resolve_device, use_fast_cpu_math
from birdspec.training.config import TrainConfig
from birdspec.training.outputs import finish_run
from birdspec.training.rundir import (
    CONFIG_FILE,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    check_fresh_run_dir,
    resumed_config,
)
from birdspec.training.trainer import (
    check_devices,
    device_name,
    env_rank,
    fit,
    make_callbacks,
    make_trainer,
    quiet_lightning,
    resolve_precision,
    root_device,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        run_dir: the run directory.
        best_epoch / best_val_acc / best_val_loss: the selected epoch (module doc) and its
            metrics (``best_val_acc`` over every validation sample).
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


def _rows_from_ids(data: PreparedDataset, ids: Sequence[str], what: str) -> np.ndarray:
    rows, missing = data.rows_for_ids(ids)
    if missing:
        raise DataError(
            f"{len(missing)} {what} recordings of the run (e.g. {missing[:3]}) are not in {data.root}; "
            "resume with the dataset the run was trained on"
        )
    return rows


def train(
    dataset_dir: str | Path | None,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    rows_train: Sequence[int] | np.ndarray | None = None,
    rows_val: Sequence[int] | np.ndarray | None = None,
    resume: bool = False,
    export: Any = None,
) -> TrainResult:
    """Train a registered model on a prepared dataset; write the run directory ``out_dir``.

    Model selection ("best") uses the validation rows: highest accuracy (its species and
    no-bird parts counting half each when there are no-bird samples), ties broken by lower loss.

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
        export: called with the checkpoint files when training ends, e.g.
            :func:`birdspec.prediction.onnx_runtime.export_beside` (what ``birdspec train`` passes): the
            ONNX runtime export beside each (``checkpoints/best.runtime/``), so the first prediction needs
            no PyTorch. None: ``birdspec predict`` makes it into its cache when first needed.

    Returns:
        a :class:`TrainResult`.

    Raises:
        ConfigError / DataError / CheckpointError: bad settings, data or run directory.
        TrainingError: the loss became non-finite.
        KeyboardInterrupt: on Ctrl-C, after ``checkpoints/last.pt`` was written.
    """
    out = Path(out_dir)
    rank = env_rank()
    saved: dict[str, Any] | None = None
    if resume:
        saved, cfg = resumed_config(out, config, given_rows=rows_train is not None or rows_val is not None)
        dataset_dir = dataset_dir or saved["dataset"]["path"]
    else:
        if config is None:
            raise ConfigError("train() needs a TrainConfig (or resume=True)")
        if rank == 0:
            check_fresh_run_dir(out)
        if dataset_dir is not None:  # birdnet-prior without --weight-decay: its L2-SP strength, on inner validation
            from birdspec.training.l2sp import choose_strength

            config = choose_strength(dataset_dir, out, config, rows_train, train_fn=train)
        cfg = config.resolved()
    if dataset_dir is None:
        raise ConfigError("give the prepared dataset directory")
    refuse_output_over_inputs(out, [dataset_dir])

    data = PreparedDataset(dataset_dir)
    if len(data.classes) < 2:
        raise DataError(f"{data.root}: needs at least 2 classes to train a classifier, has {len(data.classes)}")
    from birdspec.training.datamodule import default_workers, resolve_encoding, select_rows

    encoding = resolve_encoding(data, cfg.encoding_override)
    if saved is None:
        from birdspec.models.registry import get_spec

        cfg = cfg.for_samples(encoding.name, model_input=get_spec(cfg.model).input)
    if saved is not None:
        if list(saved["classes"]) != list(data.classes):
            raise DataError(f"{data.root} has other classes than the run being resumed; pass the run's dataset")
        train_rows = _rows_from_ids(data, saved["rows"]["train"], "training")
        val_rows = _rows_from_ids(data, saved["rows"]["val"], "validation")
    else:
        train_rows, val_rows = select_rows(data, rows_train, rows_val)

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    check_devices(cfg, device)
    workers = cfg.workers if cfg.workers is not None else default_workers()

    with quiet_lightning(), (output_lock(out) if rank == 0 else contextlib.nullcontext()):
        return _fit(
            data=data, out=out, cfg=cfg, encoding=encoding, train_rows=train_rows, val_rows=val_rows,
            device=device, precision=precision, workers=workers, saved=saved, rank=rank, export=export,
        )


@dataclass
class _Setup:
    """What a run trains: data, rows, model, configs (built once, used by the steps of :func:`_fit`)."""

    data: PreparedDataset
    out: Path
    cfg: TrainConfig
    encoding: Any
    frontend: Any
    dm: Any
    model: Any
    model_config: dict[str, Any]
    num_parameters: int
    device: str
    device_name: str
    precision: str
    workers: int
    saved: dict[str, Any] | None
    rank: int
    model_input: str = "waveform"
    extra: dict[str, Any] = field(default_factory=dict)


def _fit(*, data: PreparedDataset, out: Path, cfg: TrainConfig, encoding: Any, train_rows: np.ndarray,
         val_rows: np.ndarray, device: str, precision: str, workers: int, saved: dict[str, Any] | None,
         rank: int, export: Any = None) -> TrainResult:
    import lightning.pytorch as pl

    from birdspec.training.module import BirdspecLightning

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    use_fast_cpu_math()
    s = _setup(data=data, out=out, cfg=cfg, encoding=encoding, train_rows=train_rows, val_rows=val_rows, device=device,
               precision=precision, workers=workers, saved=saved, rank=rank)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, _run_config(s, train_rows=train_rows, val_rows=val_rows))
        log.info(
            "training %s (%s parameters) on %d %s samples, validating on %d; %s, %s",
            cfg.model, f"{s.num_parameters:,}", len(s.dm.train_set), encoding.name, len(s.dm.val_set), s.device_name,
            precision,
        )
    recorder = _recorder(s)
    callbacks, early = make_callbacks(cfg, recorder)
    steps_per_epoch = max(1, len(s.dm.train_set) // (int(cfg.batch_size or 16) * cfg.devices))
    trainer = make_trainer(cfg, out, device=device, precision=precision, callbacks=callbacks, steps_per_epoch=steps_per_epoch)
    if any(p.requires_grad for p in s.model.parameters()):
        fit(trainer, BirdspecLightning(s.model, cfg), s.dm, cfg=cfg, out=out, resuming=s.saved is not None, rank=s.rank,
            recorder=recorder)
    else:  # nothing to train (birdnet-closed): scored once on the validation rows and saved as it is
        from birdspec.training.untrained import record_untrained

        record_untrained(s.model, s.dm.val_dataloader(), recorder, device=device)
    status = "completed"
    if early is not None and early.stopped_epoch > 0:
        status = "early_stopped"
    elif recorder.stop_reason == "time_limit":
        status = "time_limit"
    best = recorder.best or {"epoch": 0, "val_acc": float("nan"), "val_loss": float("nan")}
    result = TrainResult(
        run_dir=out, best_epoch=int(best["epoch"]), best_val_acc=float(best["val_acc"]),
        best_val_loss=float(best["val_loss"]), epochs_run=len(recorder.history), train_time_s=recorder.elapsed_s(),
        status=status, best_checkpoint=run_checkpoint(out, "best"), last_checkpoint=run_checkpoint(out, "last"),
        num_parameters=s.num_parameters, device=s.device_name, config=cfg, history=tuple(recorder.history),
        is_global_zero=trainer.is_global_zero,
    )
    if trainer.is_global_zero:
        recorder.write_curves()
        finish_run(result, val_set=s.dm.val_set, threshold_set=_threshold_set(s, train_rows, val_rows),
                   model_input=s.model_input, num_train_samples=len(s.dm.train_set), encoding_name=s.encoding.name,
                   num_parameters=s.num_parameters, precision=s.precision, device=root_device(trainer), export=export)
    return result


def _threshold_set(s: _Setup, train_rows: np.ndarray, val_rows: np.ndarray) -> Any:
    """The samples the detection thresholds are chosen on: validation (+ its no-bird samples), or the
    training rows (``thresholds_on='train'``); for models that read embeddings, single windows of them."""
    from birdspec.training.samples import embedding_threshold_sets, threshold_sets

    if s.model_input == "embedding":
        on_val = s.cfg.thresholds_on == "val"
        return embedding_threshold_sets(s.cfg, s.data, val_rows if on_val else train_rows, part="val" if on_val else "train")
    if s.cfg.thresholds_on == "val":
        return s.dm.val_fit_set
    return threshold_sets(s.cfg, s.data, train_rows, model_input=s.model_input, encoding=s.encoding)


def _setup(*, data: PreparedDataset, out: Path, cfg: TrainConfig, encoding: Any, train_rows: np.ndarray,
           val_rows: np.ndarray, device: str, precision: str, workers: int, saved: dict[str, Any] | None,
           rank: int) -> _Setup:
    from birdspec.models.registry import build_model, count_parameters, get_spec
    from birdspec.training.datamodule import BirdspecDataModule
    from birdspec.training.samples import sample_sets

    spec = get_spec(cfg.model)
    dm = BirdspecDataModule(
        data, rows_train=train_rows, rows_val=val_rows, encoding=encoding, batch_size=int(cfg.batch_size or 16),
        workers=workers, random_crop=cfg.random_crop, pin_memory=device == "cuda", model_input=spec.input,
        crops_per_recording=cfg.crops_per_recording,
        crop_samples=None if cfg.crop_s is None else round(cfg.crop_s * data.sample_rate_hz),
        wrap=sample_sets(cfg, data, model_input=spec.input),
    )
    if spec.input != "waveform" and cfg.mixup_alpha > 0:
        raise ConfigError(f"--mixup applies to waveform models; {cfg.model} reads {spec.input}s")
    frontend = cfg.frontend_config(data.frontend)
    norm = None
    if saved:  # the resumed run's own input norm (a fitted level norm is not fitted again)
        norm = saved["model"].get("input_norm_settings")
    elif spec.input == "waveform":
        from birdspec.training.samples import input_norm_settings

        norm = input_norm_settings(cfg, data, train_rows, encoding=encoding, frontend=frontend)
    model: Any = build_model(  # an nn.Module with its config (the registry's models)
        cfg.model, in_channels=dm.train_set.in_channels, num_classes=len(data.classes), frontend=frontend,
        input_norm=cfg.input_norm, input_norm_settings=norm,
        pretrained=None if saved else cfg.pretrained,  # resumed weights come from the checkpoint
        first_conv=cfg.first_conv, options=cfg.model_options, class_info=data.class_info,
    )
    if spec.input == "embedding" and not saved:  # the head predicts as its no-bird clips were embedded
        from birdspec.data.embedding_dataset import load_embedding_cache

        model.config["window_rule"] = load_embedding_cache(data).window_rule
    return _Setup(
        data=data, out=out, cfg=cfg, encoding=encoding, frontend=frontend, dm=dm, model=model,
        model_config=dict(saved["model"]) if saved else dict(model.config), num_parameters=count_parameters(model),
        device=device, device_name=device_name(device, cfg.devices), precision=precision, workers=workers,
        saved=saved, rank=rank, model_input=spec.input,
    )


def _run_config(s: _Setup, *, train_rows: np.ndarray, val_rows: np.ndarray) -> dict[str, Any]:
    """The content of ``config.json``."""
    import lightning.pytorch as pl

    data, saved = s.data, s.saved
    ids = data.manifest["id"].astype(str).to_numpy()
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "birdspec_version": __version__,
        "created_utc": saved["created_utc"] if saved else now,
        "train_config": s.cfg.to_dict(),
        "model": s.model_config,
        "num_parameters": s.num_parameters,
        "dataset": {
            "path": str(data.root.resolve()),
            "format_version": data.meta.get("format_version"),
            "source": data.meta.get("source"),
            "layout": data.meta.get("layout"),
            "settings": data.meta.get("settings"),
            "encoding": to_dict(data.encoding),
            "num_recordings": int(len(data.manifest)),
        },
        "encoding": to_dict(s.encoding),
        "frontend": to_dict(s.frontend),
        "sample_rate_hz": data.sample_rate_hz,
        "classes": list(data.classes),
        "class_info": data.class_info,
        "num_samples": {"train": len(s.dm.train_set), "val": len(s.dm.val_set),  # train includes its no-bird samples
                        "train_nocall": int(getattr(s.dm.train_set, "num_nocall", 0)),
                        "val_nocall": int(getattr(s.dm.val_fit_set, "num_nocall", 0))},
        "rows": {"train": ids[train_rows].tolist(), "val": ids[val_rows].tolist()},
        "runtime": {
            "device": s.device_name,
            "precision": s.precision,
            "workers": s.workers,
            "cpu_threads": torch.get_num_threads(),  # sums differ with it: one seed repeats only with the same count
            "python": platform.python_version(),
            "torch": torch.__version__,
            "lightning": pl.__version__,
        },
        "resumes": (saved.get("resumes", []) + [now]) if saved else [],
    }


def _recorder(s: _Setup) -> Any:
    from birdspec.training.callbacks import RunRecorder

    cfg = s.cfg
    checkpoint_meta = {
        "model_config": s.model_config,
        "classes": list(s.data.classes),
        "class_info": s.data.class_info,
        "frontend": s.frontend,
        "encoding": s.encoding,
        "train_config": cfg.to_dict(),
        "extra": {"dataset": str(s.data.root.resolve()), "run_dir": str(s.out.resolve())},
        "activation": cfg.activation,
    }
    return RunRecorder(
        s.out,
        checkpoint_meta=checkpoint_meta,
        max_minutes=cfg.max_minutes,
        title=f"Training & Validation Metrics: {cfg.model} ({s.encoding.name}, lr {cfg.lr:g}, {cfg.optimizer})",
        network=lambda module: module.model,
    )
