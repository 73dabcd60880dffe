"""Optimizer x learning-rate sweep: the study's "validation accuracy per optimizer and lr" figure.

Every trial is an ordinary training run directory
``SWEEP_DIR/trials/<optimizer>_lr<lr>`` (``birdspec evaluate`` works on it).
The sweep writes:

``sweep.csv``
    (rewritten after every trial) one row per trial: ``trial, optimizer, lr, status, best_val_acc, best_val_loss,
    best_epoch, epochs_run, train_time_s, run_dir, error``; ``status`` is ``ok``,
    ``failed`` (e.g. a non-finite loss; ``error`` says why) or ``pending``
    (not run yet: the sweep was interrupted).
``sweep.png``
    best validation accuracy vs learning rate (log axis), one line per optimizer.
``sweep.json``
    the settings (dataset, model, grid, mode, base training config) and, for an
    Optuna search, the trials asked so far (to resume the same search).

Resuming: re-running the same command skips finished trials (a trial is
finished when its ``summary.json`` exists), continues a trial interrupted
mid-training from its last epoch, and retries failed trials (unless
``retry_failed=False``). A trial fails on :class:`~birdspec.errors.TrainingError`
(non-finite loss, out of memory) or a ``RuntimeError``; settings or data
errors (the same for every trial) stop the sweep. Changing settings other than the grid, the device
or the workers between runs is refused (the results would not be comparable).

Search modes: the full grid (default), or, with ``trials=N`` smaller than the
grid, an Optuna TPE search of N trials over the optimizers (categorical) x a
log-uniform learning rate in ``[min(lrs), max(lrs)]`` (lr rounded to 3
significant digits so trial names stay readable).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, TrainingError
from birdspec.experiments import train_with_export
from birdspec.experiments.settings import comparable_config, config_differences, refuse_other_settings
from birdspec.fileio import locks_output, read_json, write_csv, write_json
from birdspec.training.rundir import SUMMARY_FILE, is_started

log = logging.getLogger(__name__)

SWEEP_CSV = "sweep.csv"
SWEEP_PNG = "sweep.png"
SWEEP_JSON = "sweep.json"
TRIALS_DIR = "trials"
FAILED_TRIALS_FILE = "failed.json"
SWEEP_COLUMNS = (
    "trial", "frontend", "optimizer", "lr", "status", "best_val_acc", "best_val_loss", "best_epoch", "epochs_run",
    "train_time_s", "run_dir", "error",
)
SWEPT_FIELDS = ("optimizer", "lr")
"""What a sweep varies per trial (left out when its base settings are compared)."""
"""TrainConfig fields that may change between runs of one sweep."""


@dataclass(frozen=True)
class Trial:
    """One (optimizer, learning rate[, spectrogram type]) combination.

    ``frontend`` is None unless the sweep's grid includes spectrogram types (``--frontends``).
    """

    optimizer: str
    lr: float
    frontend: str | None = None

    @property
    def name(self) -> str:
        """``[<frontend>_]<optimizer>_lr<lr>`` with the lr in ``%g`` notation (``adamw_lr0.001``, ``pcen_sgd_lr1e-05``)."""
        return (f"{self.frontend}_" if self.frontend else "") + f"{self.optimizer}_lr{self.lr:g}"


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` produced.

    Attributes:
        out_dir: the sweep directory.
        table: the ``sweep.csv`` frame.
        best: the best finished trial's row (highest best_val_acc, then lowest loss), or None.
        trained: trials trained (or continued) in this call.
        skipped: finished trials found on disk and not retrained.
        mode: 'grid' or 'optuna'.
    """

    out_dir: Path
    table: pd.DataFrame
    best: dict[str, Any] | None
    trained: int
    skipped: int
    mode: str

    @property
    def csv_path(self) -> Path:
        return self.out_dir / SWEEP_CSV

    @property
    def figure_path(self) -> Path:
        return self.out_dir / SWEEP_PNG


def parse_list(text: str | Sequence[Any], *, kind: type = str, what: str = "values") -> list[Any]:
    """``"a,b,c"`` (or a sequence) -> a list of ``kind`` without duplicates, order kept.

    Raises:
        ConfigError: an empty list or a value that is not a ``kind``.
    """
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    items = [t for t in items if t != ""]
    out: list[Any] = []
    for t in items:
        try:
            v = kind(t)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad {what} {t!r}; give a comma-separated list, e.g. 0.1,0.01,0.001") from exc
        if v not in out:
            out.append(v)
    if not out:
        raise ConfigError(f"no {what} given")
    return out


def grid_trials(optimizers: Sequence[str], lrs: Sequence[float], frontends: Sequence[str] | None = None) -> list[Trial]:
    """Every [spectrogram type x] optimizer x learning rate, the first outermost.

    Raises:
        ConfigError: an unknown optimizer or a non-positive learning rate.
    """
    from birdspec.training.config import OPTIMIZERS

    for opt in optimizers:
        if opt not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {opt!r}; choose from {', '.join(OPTIMIZERS)}")
    for lr in lrs:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"learning rates must be positive numbers, got {lr!r}")
    from birdspec.config import FRONTENDS

    for kind in frontends or ():
        if kind not in FRONTENDS:
            raise ConfigError(f"unknown spectrogram type {kind!r}; choose from {', '.join(FRONTENDS)}")
    kinds: Sequence[str | None] = frontends or [None]
    return [Trial(opt, float(lr), kind) for kind in kinds for opt in optimizers for lr in lrs]




def _row(trial: Trial, run_dir: Path, summary: dict[str, Any] | None, *, status: str, error: str = "") -> dict[str, Any]:
    s = summary or {}
    return {
        "trial": trial.name,
        "frontend": trial.frontend,
        "optimizer": trial.optimizer,
        "lr": trial.lr,
        "status": status,
        "best_val_acc": s.get("best_val_acc"),
        "best_val_loss": s.get("best_val_loss"),
        "best_epoch": s.get("best_epoch"),
        "epochs_run": s.get("epochs_run"),
        "train_time_s": s.get("train_time_s"),
        "run_dir": str(run_dir),
        "error": error,
    }


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    return comparable_config(cfg_dict, ignore=SWEPT_FIELDS)


def _check_state(state: dict[str, Any] | None, new: dict[str, Any], out: Path) -> None:
    """Refuse to resume a sweep with other settings."""
    if not state:
        return
    diffs = config_differences(_comparable(state.get("base_config") or {}), new["base_config"])
    if state.get("dataset") != new["dataset"]:
        diffs.append(f"dataset {state.get('dataset')} -> {new['dataset']}")
    if state.get("mode") == "optuna" and new["mode"] == "optuna":
        for key in ("optimizers", "lr_range"):
            if state.get(key) != new.get(key):
                diffs.append(f"{key} {state.get(key)} -> {new.get(key)}")
    refuse_other_settings(out, "a sweep", diffs)


def best_trial(table: pd.DataFrame) -> dict[str, Any] | None:
    """The finished trial with the highest best_val_acc (ties: lower best_val_loss)."""
    ok = table[(table["status"] == "ok") & table["best_val_acc"].notna()]
    if not len(ok):
        return None
    ok = ok.assign(_loss=ok["best_val_loss"].fillna(np.inf)).sort_values(["best_val_acc", "_loss"], ascending=[False, True])
    return ok.drop(columns="_loss").iloc[0].to_dict()


def write_sweep_outputs(table: pd.DataFrame, out: Path, *, title: str, figure: bool = True) -> None:
    """``sweep.csv`` (and ``sweep.png`` when ``figure``) of a table."""
    from birdspec.evaluation.plots import plot_sweep

    write_csv(out / SWEEP_CSV, table)
    if figure:
        plot_sweep(table, out / SWEEP_PNG, title=title)


@locks_output("out_dir")
def run_sweep(
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: Any,
    *,
    optimizers: Sequence[str],
    lrs: Sequence[float],
    frontends: Sequence[str] | None = None,
    trials: int | None = None,
    rows_train: Sequence[int] | np.ndarray | None = None,
    rows_val: Sequence[int] | np.ndarray | None = None,
    retry_failed: bool = True,
    train_fn: Callable[..., Any] | None = None,
) -> SweepResult:
    """Train one run per (optimizer, lr) and collect their best validation accuracy in a :class:`SweepResult`.

    Args:
        dataset_dir: the prepared dataset.
        out_dir: the sweep directory (created; an existing sweep there is resumed).
        config: the base :class:`~birdspec.training.TrainConfig`; each trial replaces its
            ``optimizer`` and ``lr`` (weight decay, batch size, ... stay as given or the
            model's study defaults).
        optimizers / lrs: the grid.
        frontends: also sweep these spectrogram types (None: the config's ``frontend`` only).
        trials: None (or >= the grid size): the full grid; smaller: an Optuna search of
            that many trials (needs ``optuna``).
        rows_train / rows_val: manifest rows (default: the dataset's train/val split).
        retry_failed: re-run trials that failed in an earlier run.
        train_fn: the training function (default :func:`birdspec.training.train`; tests
            may wrap it).

    Raises:
        ConfigError: a bad grid or a resumed sweep with other settings.
        DependencyError: ``trials`` needs Optuna and it is not installed.
    """
    from birdspec.data.prepared import PreparedDataset

    train_fn = train_fn or train_with_export
    out = Path(out_dir)
    optimizers, lrs, frontends, grid, mode = _grid(optimizers, lrs, frontends, trials)
    base = config.resolved()
    data = PreparedDataset(dataset_dir)
    state = _claim(out, {
        "format": "birdspec-sweep",
        "dataset": str(data.root.resolve()),
        "model": base.model,
        "mode": mode,
        "optimizers": optimizers,
        "lrs": lrs,
        "frontends": frontends,
        "lr_range": [min(lrs), max(lrs)],
        "trials": trials,
        "base_config": {k: v for k, v in _comparable(base.to_dict()).items() if not (frontends and k == "frontend")},
    })
    title = _title(base, base.encoding_override or data.encoding.name)
    runner = _TrialRunner(dataset_dir=dataset_dir, out=out, base=base, rows_train=rows_train, rows_val=rows_val,
                          retry_failed=retry_failed, train_fn=train_fn)
    rows: dict[str, dict[str, Any]] = {}
    run_trial = runner.run

    def table_of(planned: Sequence[Trial]) -> pd.DataFrame:
        data_rows = [
            rows.get(t.name) or _row(t, out / TRIALS_DIR / t.name, None, status="pending") for t in planned
        ]
        return pd.DataFrame(data_rows, columns=list(SWEEP_COLUMNS))

    if mode == "grid":
        planned = grid
        for trial in grid:
            rows[trial.name] = run_trial(trial)
            write_sweep_outputs(table_of(planned), out, title=title, figure=False)
    else:
        from birdspec.experiments.sweep_search import optuna_search

        planned = optuna_search(
            grid_optimizers=optimizers, lr_range=(min(lrs), max(lrs)), n_trials=int(trials or 0), seed=base.seed,
            state=state, save_state=lambda st: write_json(out / SWEEP_JSON, st), rows=rows, make_trial=Trial, run_trial=run_trial,
            write=lambda p: write_sweep_outputs(table_of(p), out, title=title, figure=False),
        )
    table = table_of(planned)
    write_sweep_outputs(table, out, title=title)
    best = best_trial(table)
    if best:
        log.info("best trial %s: val acc %.4f (epoch %s)", best["trial"], best["best_val_acc"], best["best_epoch"])
    return SweepResult(out, table, best, runner.trained, runner.skipped, mode)


def _grid(optimizers: Sequence[str], lrs: Sequence[float], frontends: Sequence[str] | None,
          trials: int | None) -> tuple[list[str], list[float], list[str] | None, list[Trial], str]:
    """The parsed grid and the search mode ('grid' or 'optuna')."""
    optimizers = parse_list(optimizers, what="optimizers")
    lrs = parse_list(lrs, kind=float, what="learning rates")
    kinds = parse_list(frontends, what="spectrogram types") if frontends else None
    grid = grid_trials(optimizers, lrs, kinds)
    if kinds and trials is not None and trials < len(grid):
        raise ConfigError("--frontends sweeps the full grid; drop --trials (an Optuna search covers optimizers and lrs)")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    mode = "optuna" if trials is not None and trials < len(grid) else "grid"
    if trials is not None and mode == "grid":
        log.info("--trials %d covers the %d-trial grid; running the full grid", trials, len(grid))
    return optimizers, lrs, kinds, grid, mode


def _title(base: Any, encoding: str) -> str:
    return (
        f"Validation accuracy per optimizer and learning rate\n{base.model} ({encoding}), "
        f"{base.epochs} epoch{'s' if base.epochs != 1 else ''}, "
        f"batch {base.batch_size}, weight decay {base.weight_decay:g}"
    )


def _claim(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Write ``sweep.json`` (keeping an Optuna search's asked trials); refuse a sweep with other settings."""
    old = read_json(out / SWEEP_JSON)
    _check_state(old, state, out)
    if old and old.get("mode") == "optuna" and state["mode"] == "optuna":
        state["asked"] = list(old.get("asked") or [])
    out.mkdir(parents=True, exist_ok=True)
    (out / TRIALS_DIR).mkdir(exist_ok=True)
    write_json(out / SWEEP_JSON, state)
    return state


@dataclass
class _TrialRunner:
    """Trains (or continues, or skips) one trial's run directory and returns its ``sweep.csv`` row."""

    dataset_dir: str | Path
    out: Path
    base: Any
    rows_train: Any
    rows_val: Any
    retry_failed: bool
    train_fn: Callable[..., Any]
    trained: int = 0
    skipped: int = 0

    def run(self, trial: Trial) -> dict[str, Any]:
        run_dir = self.out / TRIALS_DIR / trial.name
        summary = read_json(run_dir / SUMMARY_FILE)
        if summary is not None:
            self.skipped += 1
            log.info("trial %s: finished earlier (best val acc %.4f), skipped", trial.name, summary.get("best_val_acc", float("nan")))
            return _row(trial, run_dir, summary, status="ok")
        failed = read_json(run_dir / FAILED_TRIALS_FILE)
        if failed is not None and not self.retry_failed:
            self.skipped += 1
            return _row(trial, run_dir, None, status="failed", error=str(failed.get("error", "")))
        cfg = replace(self.base, optimizer=trial.optimizer, lr=trial.lr, frontend=trial.frontend or self.base.frontend)
        resume = is_started(run_dir)
        log.info("trial %s: %s", trial.name, "continuing" if resume else "training")
        self.trained += 1
        try:
            if resume:
                self.train_fn(self.dataset_dir, run_dir, cfg, resume=True)
            else:
                self.train_fn(self.dataset_dir, run_dir, cfg, rows_train=self.rows_train, rows_val=self.rows_val)
        except (TrainingError, RuntimeError, FloatingPointError) as exc:
            log.warning("trial %s failed: %s", trial.name, exc)
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / FAILED_TRIALS_FILE, {"error": str(exc), "type": type(exc).__name__})
            return _row(trial, run_dir, None, status="failed", error=str(exc))
        (run_dir / FAILED_TRIALS_FILE).unlink(missing_ok=True)
        summary = read_json(run_dir / SUMMARY_FILE)
        if summary is None:
            return _row(trial, run_dir, None, status="failed", error="training returned without summary.json")
        return _row(trial, run_dir, summary, status="ok")

