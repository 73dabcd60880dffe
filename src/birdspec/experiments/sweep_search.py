"""The sweep's Optuna mode: TPE over optimizer (categorical) x a log-uniform learning rate.

Trials asked by an earlier run (``sweep.json``'s ``asked``) are replayed first, so an interrupted
search resumes as the same search; finished trials are not trained again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from birdspec.errors import ConfigError, DependencyError
from birdspec.experiments.sweep import SWEEP_JSON, Trial
from birdspec.fileio import write_json


def optuna_search(
    *,
    grid_optimizers: Sequence[str],
    lr_range: tuple[float, float],
    n_trials: int,
    seed: int,
    state: dict[str, Any],
    out: Path,
    rows: dict[str, dict[str, Any]],
    run_trial: Callable[[Trial], dict[str, Any]],
    write: Callable[[list[Trial]], None],
) -> list[Trial]:
    """Optuna TPE over optimizer x log-uniform lr; replays the trials asked by earlier runs first."""
    try:
        import optuna
    except ImportError as exc:
        raise DependencyError("--trials (an Optuna search) needs optuna: pip install 'birdspec[search]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lo, hi = lr_range
    if lo == hi:
        raise ConfigError("an Optuna search needs a learning-rate range: give at least two --lrs")
    dists = {
        "optimizer": optuna.distributions.CategoricalDistribution(list(grid_optimizers)),
        "lr": optuna.distributions.FloatDistribution(lo, hi, log=True),
    }
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    asked: list[dict[str, Any]] = list(state.get("asked") or [])
    for params in asked[:n_trials]:
        study.enqueue_trial(params)
    planned: list[Trial] = []
    for i in range(n_trials):
        ot = study.ask(dists)
        lr = min(hi, max(lo, float(f"{ot.params['lr']:.3g}")))
        trial = Trial(str(ot.params["optimizer"]), lr)
        if i >= len(asked):
            asked.append({"optimizer": trial.optimizer, "lr": trial.lr})
            state["asked"] = asked
            write_json(out / SWEEP_JSON, state)
        if trial not in planned:
            planned.append(trial)
        if trial.name not in rows:
            rows[trial.name] = run_trial(trial)
        row = rows[trial.name]
        if row["status"] == "ok" and row["best_val_acc"] is not None:
            study.tell(ot, float(row["best_val_acc"]))
        else:
            study.tell(ot, state=optuna.trial.TrialState.FAIL)
        write(planned)
    return planned
