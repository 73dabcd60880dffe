"""The child process of the app's training: ``python -m birdspec.app.train_runner SPEC.json``.

``birdspec train`` trains on the dataset's own split; windows verified in the app carry theirs
(:data:`~birdspec.app.verified.SPLIT_COLUMN`, by recording or by time blocks), so this runs
:func:`birdspec.training.train` with those rows (``rows_train`` / ``rows_val``, which the run records:
``birdspec evaluate RUN`` and ``--resume`` use them). SPEC is written by :mod:`birdspec.app.train_job`:
``{"dataset", "out", "split_column", "recipe", "settings": {TrainConfig field: value}}``.

Exit status 2 with ``error: MESSAGE`` on stderr for a :class:`~birdspec.errors.BirdspecError`, as the CLI does.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import BirdspecError, DataError

log = logging.getLogger(__name__)


def split_rows(manifest: Any, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Manifest rows whose ``column`` says train, and val (gap rows are in neither).

    Raises:
        DataError: no such column, or a side without rows.
    """
    if column not in manifest.columns:
        raise DataError(f"the prepared manifest has no {column!r} column; start the training again from the app")
    side = manifest[column].astype(str).to_numpy()
    rows_train, rows_val = np.flatnonzero(side == "train"), np.flatnonzero(side == "val")
    if not rows_train.size or not rows_val.size:
        raise DataError(f"the prepared windows hold {rows_train.size} training and {rows_val.size} validation rows; "
                        "verify more windows (prepare may have skipped some: see the dataset's skipped.csv)")
    return rows_train, rows_val


def run(spec: dict[str, Any]) -> None:
    from birdspec.data.prepared import PreparedDataset
    from birdspec.prediction.onnx_runtime import export_beside
    from birdspec.training import TrainConfig, train

    data = PreparedDataset(spec["dataset"])
    rows_train, rows_val = split_rows(data.manifest, spec["split_column"])
    settings = dict(spec.get("settings") or {})
    recipe = spec.get("recipe")
    config = (TrainConfig.from_recipe(recipe, encoding=data.encoding.name, **settings) if recipe
              else TrainConfig(**settings))
    log.info("training %s on %d windows, validating on %d", config.model, rows_train.size, rows_val.size)
    result = train(spec["dataset"], spec["out"], config, rows_train=rows_train, rows_val=rows_val, export=export_beside)
    print(f"best epoch {result.best_epoch}: val acc {result.best_val_acc:.4f}, val loss {result.best_val_loss:.4f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if len(args) != 1:
            raise DataError("usage: python -m birdspec.app.train_runner SPEC.json")
        run(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    except BirdspecError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
