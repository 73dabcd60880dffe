"""Callbacks writing a run directory while Lightning trains.

:class:`RunRecorder`, at the end of every epoch (after validation):

- appends one row to ``metrics.csv`` (epoch, train_loss, train_acc, val_loss,
  val_acc, val_acc_species, val_acc_nobird, lr, epoch_time_s, elapsed_s; epochs
  counted from 1). ``val_acc`` is over every validation sample, a run's fixed
  no-bird samples included; ``val_acc_species`` / ``val_acc_nobird`` are its parts
  on the validation recordings' samples / on the no-bird samples (empty when the
  run has none; :class:`~birdspec.training.module.BirdspecLightning`);
- writes ``checkpoints/last.pt`` and, when the epoch is the best so far
  (:func:`selection_score`: validation accuracy, its species and no-bird parts
  counting half each when the run has no-bird samples; ties: lower validation
  loss), ``checkpoints/best.pt`` (birdspec checkpoints);
- saves Lightning's resume state to ``lightning/last.ckpt``;
- stops the run when ``max_minutes`` would be exceeded by the next epoch.

On an exception (Ctrl-C included) it writes ``last.pt`` from the current
weights (marked ``partial_epoch``) and ``curves.png``. Its history travels
in Lightning's checkpoint, so a resumed run continues the same files.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar

from birdspec.fileio import atomic_path, fsync_path, writing
from birdspec.models.checkpoint import make_checkpoint, run_checkpoint, save_checkpoint
from birdspec.training.plots import plot_curves
from birdspec.training.rundir import CURVES_FILE, EPOCH_METRICS_FILE, LIGHTNING_DIR, LIGHTNING_LAST

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_acc_species", "val_acc_nobird", "lr",
                  "epoch_time_s", "elapsed_s")


def selection_score(row: Mapping[str, Any]) -> float:
    """What picks the best epoch: the mean of ``val_acc_species`` and ``val_acc_nobird`` when the run has
    no-bird samples, else ``val_acc``.

    ``val_acc`` counts every sample alike, and a run's fixed no-bird samples may outnumber its validation
    recordings: an early epoch that answers "no bird" to nearly everything (species 0.21, no-bird 1.00) then
    beats a later one that names the species (0.85, 0.50): with 24 windows and 32 no-bird samples, 0.66 against
    0.65. Each part counting half (0.61 against 0.68), it does not."""
    species, nobird = (float(row.get(k, float("nan"))) for k in ("val_acc_species", "val_acc_nobird"))
    if math.isfinite(species) and math.isfinite(nobird):
        return 0.5 * (species + nobird)
    return float(row.get("val_acc", float("nan")))


def is_better(row: Mapping[str, Any], best: Mapping[str, Any] | None) -> bool:
    """Whether epoch ``row`` beats ``best`` (the best so far): the higher :func:`selection_score` wins;
    equal scores: the lower validation loss."""
    if best is None or best.get("epoch") is None:
        return True
    score, best_score = selection_score(row), selection_score(best)
    if not math.isfinite(score):
        return False
    if score != best_score:
        return score > best_score or not math.isfinite(best_score)
    return float(row["val_loss"]) < float(best["val_loss"])


def best_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the recorder keeps of the best epoch (what :func:`is_better` and the run's summary read)."""
    return {k: row.get(k, float("nan")) for k in ("epoch", "val_acc", "val_loss", "val_acc_species", "val_acc_nobird")}


def acc_parts(row: Mapping[str, Any]) -> str:
    """`` (species 0.207, no-bird 0.875)``: the parts of an epoch row's ``val_acc`` when it has no-bird samples, else ''."""
    species, nobird = (row.get(k, float("nan")) for k in ("val_acc_species", "val_acc_nobird"))
    if not (isinstance(nobird, float) and math.isfinite(nobird)):
        return ""
    return f" (species {species:.3f}, no-bird {nobird:.3f})"


def write_metrics_csv(rows: list[dict[str, float]], path: Path) -> None:
    """Write all epoch rows (atomically) with :data:`METRIC_COLUMNS`."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


class RunRecorder(pl.Callback):
    """Writes ``metrics.csv``, ``checkpoints/{best,last}.pt``, ``curves.png`` and Lightning's resume state.

    Args:
        run_dir: the run directory.
        checkpoint_meta: keyword arguments of :func:`make_checkpoint` besides the
            model, epoch and metrics (model_config, classes, class_info, frontend,
            encoding, train_config, extra).
        max_minutes: training-time budget (None = none).
        title: title of ``curves.png``.
        network: ``module -> nn.Module`` giving the network to checkpoint.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        checkpoint_meta: Mapping[str, Any],
        max_minutes: float | None,
        title: str,
        network: Callable[[pl.LightningModule], Any],
    ) -> None:
        self.run_dir = Path(run_dir)
        self.meta = dict(checkpoint_meta)
        self.max_minutes = max_minutes
        self.title = title
        self.network = network
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self.elapsed_before_s = 0.0
        self.stop_reason: str | None = None
        self._t0: float | None = None
        self._epoch_t0 = 0.0
        self._epoch_lr = float("nan")

    # ----------------------------------------------------------------- paths
    @property
    def lightning_last(self) -> Path:
        return self.run_dir / LIGHTNING_DIR / LIGHTNING_LAST

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (time.monotonic() - self._t0 if self._t0 is not None else 0.0)

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        # The random generators as they are at the end of the epoch (Lightning's resume state is
        # saved then): a resumed run draws the same shuffles, crops and augmentations as one never
        # interrupted (Lightning restores this before it creates the next epoch's data iterator).
        return {"history": self.history, "best": self.best, "elapsed_s": self.elapsed_s(), "rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best = state_dict.get("best")
        if self.best is not None and "val_acc_species" not in self.best:  # saved before the parts were kept
            row = next((r for r in self.history if r.get("epoch") == self.best.get("epoch")), None)
            self.best = best_entry(row) if row is not None else self.best
        self.elapsed_before_s = float(state_dict.get("elapsed_s", 0.0))
        if state_dict.get("rng"):
            set_rng_state(state_dict["rng"])

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.monotonic()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_t0 = time.monotonic()
        opts = trainer.optimizers
        self._epoch_lr = float(opts[0].param_groups[0]["lr"]) if opts else float("nan")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        m = trainer.callback_metrics

        def metric(name: str) -> float:
            return float(m[name]) if name in m else float("nan")

        epoch = trainer.current_epoch + 1
        now = time.monotonic()
        row = {
            "epoch": epoch,
            "train_loss": metric("train_loss"),
            "train_acc": metric("train_acc"),
            "val_loss": metric("val_loss"),
            "val_acc": metric("val_acc"),
            "val_acc_species": metric("val_acc_species"),
            "val_acc_nobird": metric("val_acc_nobird"),
            "lr": self._epoch_lr,
            "epoch_time_s": now - self._epoch_t0,
            "elapsed_s": self.elapsed_s(),
        }
        self.history = [r for r in self.history if r["epoch"] < epoch] + [row]
        improved = is_better(row, self.best)
        if improved:
            self.best = best_entry(row)
        if trainer.is_global_zero:
            metrics = {k: row[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
            ckpt = self._checkpoint(pl_module, epoch=epoch, metrics=metrics)
            save_checkpoint(ckpt, run_checkpoint(self.run_dir, "last"))
            if improved:
                save_checkpoint(ckpt, run_checkpoint(self.run_dir, "best"))
            write_metrics_csv(self.history, self.run_dir / EPOCH_METRICS_FILE)
            log.info(
                "epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f%s%s",
                epoch, row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"], acc_parts(row),
                " (best)" if improved else "",
            )
        if self.max_minutes is not None and not trainer.should_stop:
            # stop when the next epoch (as long as this one) would not finish within the budget
            over = self.elapsed_s() + row["epoch_time_s"] > self.max_minutes * 60.0
            if trainer.strategy.reduce_boolean_decision(over, all=False) and epoch < (trainer.max_epochs or epoch + 1):
                trainer.should_stop = True
                self.stop_reason = "time_limit"
                log.info("stopping after epoch %d: --max-minutes %.4g would be exceeded by another epoch", epoch, self.max_minutes)
        self._save_lightning(trainer)

    def _save_lightning(self, trainer: pl.Trainer) -> None:
        """Lightning's full resume state (optimizer, scheduler, loops, callbacks), atomically."""
        target = self.lightning_last
        tmp = target.with_name(target.name + ".tmp")  # one name for all DDP ranks: rank 0 writes it
        try:
            with writing(target, tmp):  # a full disk: one line naming the resume state
                trainer.save_checkpoint(tmp)  # collective under DDP
                if trainer.is_global_zero and tmp.exists():
                    fsync_path(tmp)
                    tmp.replace(target)
                    fsync_path(target.parent, folder=True)
        except OSError:
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)  # no half file left
            raise

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero:
            return
        self.stop_reason = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        try:
            if isinstance(exception, KeyboardInterrupt):
                # last.pt stays the last complete epoch, the one --resume continues from (the weights of
                # the unfinished epoch are dropped: a resumed run reruns that epoch exactly)
                epoch, done = trainer.current_epoch + 1, len(self.history)
                if done:
                    log.warning(
                        "interrupted in epoch %d: %s holds epoch %d, the last complete one; `birdspec train --resume %s` "
                        "reruns epoch %d and ends as an uninterrupted run would",
                        epoch, run_checkpoint(self.run_dir, "last"), done, self.run_dir, done + 1,
                    )
                else:
                    log.warning("interrupted in epoch 1, before any epoch was complete: nothing to keep; "
                                "run the same command again to start over")
            self.write_curves()
        except Exception as exc:  # never mask the original exception
            log.warning("could not save the state of the interrupted run: %s", exc)

    # --------------------------------------------------------------- outputs
    def _checkpoint(
        self, pl_module: pl.LightningModule, *, epoch: int, metrics: Mapping[str, float], extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        meta = dict(self.meta)
        meta["extra"] = {**dict(meta.get("extra") or {}), **dict(extra or {})}
        return make_checkpoint(self.network(pl_module), epoch=epoch, metrics=metrics, **meta)

    def write_curves(self) -> Path | None:
        if not self.history:
            return None
        best = self.best["epoch"] if self.best else None
        return plot_curves(self.history, self.run_dir / CURVES_FILE, title=self.title, best_epoch=best)


def rng_state() -> dict[str, Any]:
    """The state of every random generator training draws from (torch CPU and CUDA, NumPy, Python),
    in types a ``weights_only`` load accepts."""
    import random

    import numpy as np
    import torch

    # the global generator is the legacy MT19937: its state is the tuple form (NumPy's stub also allows a dict)
    kind, keys, pos, has_gauss, gauss = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    state = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (the CUDA part only where CUDA is in use)."""
    import random

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar with epochs counted from 1 ("Epoch 3/30") and without the logger version."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
