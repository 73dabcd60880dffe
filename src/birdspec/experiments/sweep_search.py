"""The sweep's Optuna mode: TPE over optimizer (categorical) x a log-uniform learning rate.

Trials asked by an earlier run (``sweep.json``'s ``asked``) are replayed first, so an interrupted
search resumes as the same search; finished trials are not trained again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from birdspec.errors import ConfigError, DependencyError


def optuna_search(
    *,
    grid_optimizers: Sequence[str],
    lr_range: tuple[float, float],
    n_trials: int,
    seed: int,
    state: dict[str, Any],
    save_state: Callable[[dict[str, Any]], object],
    rows: dict[str, dict[str, Any]],
    make_trial: Callable[[str, float], Any],
    run_trial: Callable[[Any], dict[str, Any]],
    write: Callable[[list[Any]], None],
) -> list[Any]:
    """Optuna TPE over optimizer x log-uniform lr; replays the trials asked by earlier runs first.

    ``make_trial(optimizer, lr)`` makes a sweep trial (``.name``, ``.optimizer``, ``.lr``);
    ``rows`` holds the finished trials' table rows by name, ``run_trial`` runs one and returns its
    row, ``write`` rewrites the table; ``state['asked']`` (saved with ``save_state`` after every new
    ask) is what a resumed search replays.
    """
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
    planned: list[Any] = []
    for i in range(n_trials):
        ot = study.ask(dists)
        lr = min(hi, max(lo, float(f"{ot.params['lr']:.3g}")))
        trial = make_trial(str(ot.params["optimizer"]), lr)
        if i >= len(asked):
            asked.append({"optimizer": trial.optimizer, "lr": trial.lr})
            state["asked"] = asked
            save_state(state)
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
