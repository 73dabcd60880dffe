"""How far a head may move from BirdNET: its L2-SP strength chosen on an inner validation split.

``birdnet-prior`` (:mod:`birdspec.models.birdnet_prior`) parametrises every
trainable weight as a deviation from BirdNET's classifier, so its weight decay
is an L2-SP penalty: the pull back toward BirdNET. When a run does not set
``--weight-decay``, :func:`choose_strength` picks it from the model's
``ModelSpec.l2sp_grid``: each candidate trains on an inner-training part of the
run's training recordings (``inner_split``: 25 % of each species with two or
more recordings, seeded) and is scored, after its last epoch, on the inner
validation part; the best accuracy wins (ties: lower validation loss, then the
stronger pull), and only if it beats the prior alone, untrained ("BirdNET as
it is", the strength infinity: ``ModelSpec.prior_only_options``), on the same
recordings. The run then trains on all its training recordings with that
strength, or keeps the prior as it is. With one recording per species nothing
can be validated, so the head stays at BirdNET: never worse than doing nothing
unless the data show it. Runs with no-bird samples (the default) validate on the inner validation
recordings and fixed no-bird samples (:mod:`birdspec.training.samples`), every candidate on the same ones,
so "BirdNET as it is" is scored with the implicit no-bird class too (a window is "no bird" when every
BirdNET logit of the classes is below 0, i.e. BirdNET's confidence below 0.5).

The inner runs live in ``RUN_DIR/l2sp/wd_<value>/``; the choice and the scores
in ``RUN_DIR/l2sp.json`` (a rerun of an interrupted run reuses it).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import DataError
from birdspec.fileio import read_json, write_json

log = logging.getLogger(__name__)

L2SP_FILE = "l2sp.json"
L2SP_DIR = "l2sp"
INNER_VAL_FRACTION = 0.25


def choose_strength(dataset_dir: str | Path, out: Path, config: Any, rows_train: Sequence[int] | np.ndarray | None, *,
                    train_fn: Callable[..., Any]) -> Any:
    """``config`` with its weight decay chosen on inner validation (unchanged when set, or the model has no grid)."""
    from birdspec.data.prepared import PreparedDataset
    from birdspec.data.splits import file_groups, inner_split
    from birdspec.models.registry import get_spec

    grid = tuple(get_spec(config.model).l2sp_grid)
    if not grid or config.weight_decay is not None:
        return config
    out = Path(out)
    done = read_json(out / L2SP_FILE)
    if done and done.get("grid") == list(grid):
        return _candidate(config, done["weight_decay"])
    data = PreparedDataset(dataset_dir)
    rows = np.asarray(data.select(split="train") if rows_train is None else rows_train, dtype=np.int64)
    labels = data.manifest["label_id"].to_numpy()
    scores: list[dict[str, Any]] = []
    try:
        inner_train, inner_val = inner_split(rows, labels[rows], fraction=INNER_VAL_FRACTION, seed=config.seed,
                                             groups=file_groups(data.manifest, rows))
    except DataError:
        chosen = None
        log.info("L2-SP: no species has 2 training recordings, nothing to validate on: the head stays at BirdNET")
    else:
        shutil.rmtree(out / L2SP_DIR, ignore_errors=True)  # a half-done selection starts over
        for wd in (None, *grid):
            name = "prior_only" if wd is None else f"wd_{wd:g}"
            result = train_fn(dataset_dir, out / L2SP_DIR / name, replace(_candidate(config, wd), progress_bar=False),
                              rows_train=inner_train, rows_val=inner_val)
            last = result.history[-1] if result.history else {}
            scores.append({"weight_decay": wd, "val_acc": float(last.get("val_acc", float("nan"))),
                           "val_loss": float(last.get("val_loss", float("nan")))})
        best = max(scores[1:], key=lambda s: (s["val_acc"], -s["val_loss"], s["weight_decay"]))
        chosen = best["weight_decay"] if best["val_acc"] > scores[0]["val_acc"] else None  # must beat BirdNET as it is
        log.info("L2-SP: %s chosen on %d inner validation recordings (%s)",
                 "BirdNET as it is" if chosen is None else f"weight decay {chosen:g}", inner_val.size,
                 ", ".join(f"{'BirdNET' if s['weight_decay'] is None else format(s['weight_decay'], 'g')}: "
                           f"acc {s['val_acc']:.3f} loss {s['val_loss']:.3f}" for s in scores))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / L2SP_FILE, {"grid": list(grid), "weight_decay": chosen, "prior_only": chosen is None, "scores": scores,
                                 "inner_val_fraction": INNER_VAL_FRACTION, "seed": config.seed})
    return _candidate(config, chosen)


def _candidate(config: Any, weight_decay: float | None) -> Any:
    """``config`` with this L2-SP strength; None = the prior alone, untrained (the model's ``prior_only_options``)."""
    from birdspec.models.registry import get_spec

    if weight_decay is not None:
        return replace(config, weight_decay=float(weight_decay))
    options = {**dict(config.model_options), **dict(get_spec(config.model).prior_only_options)}
    return replace(config, model_options=options, weight_decay=0.0)
