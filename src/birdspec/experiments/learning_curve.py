"""Learning curves: how accuracy grows with the number of recordings per species (``birdspec learning-curve``).

For every model, every ``k`` of ``per_class`` (recordings per species; ``None``
= all) and every draw ``d``: for every fold ``f`` of the dataset's fold
assignment, ``k`` recordings of each species are drawn at random from the
training folds (a recording is the unit: it is wholly in or out; a species
with fewer than ``k`` there gives all it has), the model trains on them
(``birdspec train``, the fixed-epochs protocol: exactly ``config.epochs``
epochs, the **last** checkpoint is scored, nothing is selected) and is
evaluated on the held-out fold at the recording level. Training validates on
``monitor_per_class`` recordings per species of the test fold, for its curves
only (cheap; nothing is chosen on them). ``all`` has one draw (every draw would
train on the same recordings). A model with nothing to train
(``birdnet-closed``) is scored once per fold and that result stands for every
``k`` and draw. Draws use seeds ``(seed, fold, k, d)``; training uses
``config.seed + d``.

``OUT`` holds:

``<model>/settings.json``
    the model's training settings and the curve's settings (a rerun with other ones is refused).
``<model>/k<k>/draw<d>/fold_<f>/``
    the run (``run/``), its test evaluation (``eval_test/``) and ``result.json``; a finished
    cell is skipped when the command is run again (resumable, and models can be added later).
``learning_curve.csv``
    one row per model, k and draw: recordings correct / scored over all test folds,
    ``accuracy`` (pooled over the folds), ``macro_f1`` (of the pooled predictions), ``n_train``.
``learning_curve_summary.csv``
    per model and k: mean, std, min and max over draws of accuracy and macro F1 (draws with every
    fold finished; a draw still running is in ``learning_curve.csv`` only).
``learning_curve.png``
    accuracy and macro F1 against k (log scale, ``all`` at the right), one line per model
    (mean over draws) with a band from the lowest to the highest draw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, DataError
from birdspec.experiments import train_with_export
from birdspec.experiments.settings import comparable_config, config_differences, refuse_other_settings
from birdspec.fileio import locks_output, read_json, safe_name, write_csv, write_json

log = logging.getLogger(__name__)

CURVE_CSV = "learning_curve.csv"
SUMMARY_CSV = "learning_curve_summary.csv"
CURVE_PNG = "learning_curve.png"
CURVE_SETTINGS_FILE = "settings.json"
CELL_RESULT = "result.json"
ALL = "all"


@dataclass(frozen=True)
class CurveResult:
    """What :func:`run_learning_curve` produced: the folder, the per-draw table and its summary."""

    out_dir: Path
    table: pd.DataFrame
    summary: pd.DataFrame
    trained: int
    skipped: int


def parse_per_class(text: str | Sequence[Any]) -> tuple[int | None, ...]:
    """``"1,2,4,8,all"`` -> ``(1, 2, 4, 8, None)`` (sorted, ``all`` last).

    Raises:
        ConfigError: a value that is neither a positive integer nor ``all``.
    """
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    out: set[int] = set()
    with_all = False
    for item in (i for i in items if i):
        if item.lower() in (ALL, "none"):
            with_all = True
        elif item.isdigit() and int(item) > 0:
            out.add(int(item))
        else:
            raise ConfigError(f"--per-class takes positive integers and 'all', e.g. 1,2,4,8,all; got {item!r}")
    if not out and not with_all:
        raise ConfigError("--per-class is empty; e.g. 1,2,4,8,all")
    return tuple(sorted(out)) + ((None,) if with_all else ())


def k_name(k: int | None) -> str:
    return ALL if k is None else str(k)


def draw_rows(pool: np.ndarray, labels: np.ndarray, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """``k`` random recordings of every species from ``pool`` (all of a species with fewer; all for None), sorted."""
    if k is None:
        return np.sort(pool)
    picked = [rng.permutation(pool[labels[pool] == c])[:k] for c in np.unique(labels[pool])]
    return np.sort(np.concatenate(picked))


def cell_dir(model_dir: Path, k: int | None, draw: int, fold: int) -> Path:
    """The folder of one (k, draw, fold) cell of a model's curve."""
    return model_dir / f"k{k_name(k)}" / f"draw{draw}" / f"fold_{fold}"


def model_label(config: Any) -> str:
    """The name of a configuration in the table and figure: the model (and its recipe)."""
    return f"{config.model} ({config.recipe})" if getattr(config, "recipe", None) else str(config.model)


def _folder(label: str) -> str:
    return safe_name(label).strip("_")


@locks_output("out_dir")
def run_learning_curve(
    dataset_dir: str | Path,
    out_dir: str | Path,
    configs: Sequence[Any],
    *,
    per_class: Sequence[int | None] = (1, 2, 4, 8, None),
    draws: int = 5,
    seed: int = 0,
    folds: Sequence[int] | None = None,
    monitor_per_class: int = 1,
    eval_batch_size: int = 32,
    train_fn: Callable[..., Any] | None = None,
    on_cell: Callable[[Path, Path, dict[str, Any]], None] | None = None,
) -> CurveResult:
    """Run (or resume) the learning curve of every configuration in ``configs`` (see the module doc).

    ``on_cell(model_dir, cell_dir, result)`` is called after every cell, finished now or earlier (e.g.
    to keep the small result files somewhere safe while a long curve runs).

    Raises:
        ConfigError: bad settings, a folder holding a curve with other settings, or early stopping
            (the protocol trains a fixed number of epochs).
        DataError: a dataset without folds.
    """
    from birdspec.data.prepared import PreparedDataset
    from birdspec.experiments.cv import dataset_folds

    if draws < 1 or monitor_per_class < 1:
        raise ConfigError(f"--draws and monitor_per_class must be >= 1, got {draws} and {monitor_per_class}")
    if not configs:
        raise ConfigError("give at least one model (--model)")
    data = PreparedDataset(dataset_dir)
    all_folds = dataset_folds(data)
    chosen = all_folds if folds is None else sorted(int(f) for f in folds)
    if set(chosen) - set(all_folds):
        raise ConfigError(f"unknown folds {sorted(set(chosen) - set(all_folds))}; {data.root} has folds {all_folds}")
    out = Path(out_dir)
    runner = _CellRunner(data=data, dataset_dir=Path(dataset_dir), train_fn=train_fn or train_with_export,
                         monitor_per_class=monitor_per_class, eval_batch_size=eval_batch_size)
    for config in configs:
        cfg = config.resolved()
        if cfg.early_stopping_patience:
            raise ConfigError("the learning curve trains exactly --epochs epochs; drop --early-stopping")
        label = model_label(cfg)
        model_dir = out / _folder(label)
        _claim(model_dir, {"label": label, "per_class": [k_name(k) for k in per_class], "draws": draws, "seed": seed,
                           "dataset": str(data.root.resolve()), "train_config": cfg.to_dict()})
        for k in per_class:
            for d in range(1 if k is None else draws):
                for f in chosen:
                    result = runner.run(cfg, label, model_dir, k=k, draw=d, fold=f, seed=seed)
                    if on_cell is not None:
                        on_cell(model_dir, cell_dir(model_dir, k, d, f), result)
            write_tables(out)
    table, summary = write_tables(out)
    return CurveResult(out, table, summary, runner.trained, runner.skipped)


def _claim(model_dir: Path, settings: dict[str, Any]) -> None:
    """Write the model's ``settings.json`` (its k values joined with earlier ones); refuse other settings."""
    old = read_json(model_dir / CURVE_SETTINGS_FILE)
    per_class = list(settings["per_class"])
    if old:
        diffs = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in settings.items()
                 if k not in ("per_class", "train_config") and old.get(k) != v]
        diffs += config_differences(comparable_config(old.get("train_config") or {}),
                                    comparable_config(settings["train_config"]))
        refuse_other_settings(model_dir, "a learning curve", diffs, resume="rerun it")
        per_class = list(dict.fromkeys(list(old.get("per_class") or []) + per_class))
    model_dir.mkdir(parents=True, exist_ok=True)
    write_json(model_dir / CURVE_SETTINGS_FILE, {**settings, "per_class": per_class})


@dataclass
class _CellRunner:
    """Trains and scores one (model, k, draw, fold) cell; remembers untrained models' results per fold."""

    data: Any
    dataset_dir: Path
    train_fn: Callable[..., Any]
    monitor_per_class: int
    eval_batch_size: int
    trained: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.untrained: dict[tuple[str, int], dict[str, Any]] = {}

    def run(self, cfg: Any, label: str, model_dir: Path, *, k: int | None, draw: int, fold: int, seed: int) -> dict[str, Any]:
        cell = cell_dir(model_dir, k, draw, fold)
        result = read_json(cell / CELL_RESULT)
        if result is None and (label, fold) in self.untrained:  # nothing trained: the same model for every k
            result = {**self.untrained[(label, fold)], "k": k_name(k), "draw": draw}
            write_json(cell / CELL_RESULT, result)
        if result is not None:
            self.skipped += 1
        else:
            result = self._train_and_score(cfg, label, cell, k=k, draw=draw, fold=fold, seed=seed)
            self.trained += 1
        if result.get("untrained"):
            self.untrained[(label, fold)] = result
        return result

    def _train_and_score(self, cfg: Any, label: str, cell: Path, *, k: int | None, draw: int, fold: int,
                         seed: int) -> dict[str, Any]:
        import shutil

        from birdspec.evaluation.evaluate import eval_dir_name, evaluate_checkpoint
        from birdspec.models.checkpoint import resolve_checkpoint_path
        from birdspec.models.registry import get_spec
        from birdspec.training.rundir import SUMMARY_FILE

        data = self.data
        labels = data.manifest["label_id"].to_numpy()
        test, pool = data.select(folds=[fold]), data.select(exclude_folds=[fold])
        if test.size == 0 or pool.size == 0:
            raise DataError(f"fold {fold} of {data.root} leaves no test or no training recordings")
        rng = np.random.default_rng([seed, fold, 0 if k is None else k, draw])
        train_rows = draw_rows(pool, labels, k, rng)
        monitor = draw_rows(test, labels, self.monitor_per_class, np.random.default_rng([seed, fold]))
        run_dir = cell / "run"
        if run_dir.exists():  # an interrupted cell: train it again from the start (cells are small)
            shutil.rmtree(run_dir)
        log.info("%s, k=%s, draw %d, fold %d: training on %d recordings", label, k_name(k), draw, fold, train_rows.size)
        # the monitored rows are test-fold recordings: the detection thresholds are chosen on the training rows
        self.train_fn(self.dataset_dir, run_dir, replace(cfg, seed=cfg.seed + draw, thresholds_on="train"),
                      rows_train=train_rows, rows_val=monitor)
        ckpt = resolve_checkpoint_path(run_dir, which="last")
        ev = evaluate_checkpoint(ckpt, data, rows=test, out_dir=cell / eval_dir_name("test"), split=f"fold {fold} (test)",
                                 batch_size=self.eval_batch_size, device=cfg.device, plots=False,
                                 meta={"k": k_name(k), "draw": draw, "fold": fold, "model": label})
        rec = ev.metrics["recording"]
        summary = read_json(run_dir / SUMMARY_FILE) or {}
        result = {
            "model": label, "k": k_name(k), "draw": draw, "fold": fold, "n_train": int(train_rows.size),
            "correct": int(round(rec["accuracy"] * rec["n"])), "n": int(rec["n"]), "accuracy": rec["accuracy"],
            "macro_f1": rec["macro_f1"], "train_time_s": summary.get("train_time_s"),
            "untrained": ev.metrics.get("epoch") == 0 and not get_spec(cfg.model).l2sp_grid,  # nothing to train, by design
        }
        write_json(cell / CELL_RESULT, result)
        return result


def _pooled_f1(cells: list[Path]) -> float:
    """Macro F1 of the recording-level test predictions of several folds together."""
    from birdspec.evaluation.evaluate import PREDICTIONS_FILE, eval_dir_name
    from birdspec.evaluation.inference import predictions_from_frame
    from birdspec.evaluation.metrics import classification_metrics

    frames = []
    for cell in cells:
        path = cell / eval_dir_name("test") / PREDICTIONS_FILE
        if not path.is_file():  # an untrained model's copied cell: its fold's first evaluation
            path = next(iter(sorted(cell.parent.parent.parent.glob(f"k*/draw*/{cell.name}/{eval_dir_name('test')}/{PREDICTIONS_FILE}"))), path)
        frames.append(pd.read_csv(path, dtype={"id": str, "label": str, "predicted": str}))
    pred = predictions_from_frame(pd.concat(frames, ignore_index=True), level="recording")
    return float(classification_metrics(pred.y_true, pred.probs, classes=pred.classes)["macro_f1"])


def write_tables(out: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assemble ``learning_curve.csv``, the summary and the figure from every finished cell under ``out``."""
    out = Path(out)
    rows = []
    for settings_path in sorted(out.glob(f"*/{CURVE_SETTINGS_FILE}")):
        settings = read_json(settings_path) or {}
        folds_seen: dict[tuple[str, int], list[Path]] = {}
        for res_path in sorted(settings_path.parent.glob(f"k*/draw*/fold_*/{CELL_RESULT}")):
            r = read_json(res_path) or {}
            folds_seen.setdefault((str(r.get("k")), int(r.get("draw", 0))), []).append(res_path.parent)
        for (k, d), cells in folds_seen.items():
            results = [read_json(c / CELL_RESULT) or {} for c in cells]
            correct, n = sum(int(r["correct"]) for r in results), sum(int(r["n"]) for r in results)
            rows.append({"model": settings.get("label"), "k": k, "draw": d, "folds": len(cells), "correct": correct, "n": n,
                         "accuracy": correct / n if n else float("nan"), "macro_f1": _pooled_f1(cells),
                         "n_train_mean": float(np.mean([0 if r.get("untrained") else r["n_train"] for r in results])),
                         "train_time_s": float(sum(r.get("train_time_s") or 0.0 for r in results))})
    table = pd.DataFrame(rows, columns=["model", "k", "draw", "folds", "correct", "n", "accuracy", "macro_f1",
                                        "n_train_mean", "train_time_s"])
    if table.empty:
        return table, table
    table["k_order"] = table["k"].map(lambda k: float("inf") if k == ALL else float(k))
    table = table.sort_values(["model", "k_order", "draw"]).reset_index(drop=True)
    complete = table[table["folds"] == table.groupby("model")["folds"].transform("max")]  # draws still running: left out
    summary = (complete.groupby(["model", "k_order", "k"], sort=True)
               .agg(draws=("draw", "count"), folds=("folds", "min"), accuracy_mean=("accuracy", "mean"),
                    accuracy_std=("accuracy", "std"), accuracy_min=("accuracy", "min"), accuracy_max=("accuracy", "max"),
                    macro_f1_mean=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"), macro_f1_min=("macro_f1", "min"),
                    macro_f1_max=("macro_f1", "max"), correct_mean=("correct", "mean"), n=("n", "max"),
                    n_train_mean=("n_train_mean", "mean"))
               .reset_index())
    write_csv(out / CURVE_CSV, table.drop(columns="k_order"))
    write_csv(out / SUMMARY_CSV, summary.drop(columns="k_order"))
    from birdspec.experiments.learning_curve_plot import plot_learning_curve

    plot_learning_curve(summary, out / CURVE_PNG)
    return table.drop(columns="k_order"), summary.drop(columns="k_order")
