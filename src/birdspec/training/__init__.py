"""Training: :func:`train` a registered model on a prepared dataset into a run directory.

``TrainConfig`` holds the settings (study defaults per model), ``TrainResult``
what a run produced; the run directory layout is described in
:mod:`birdspec.training.loop`.

Names are imported lazily, so ``import birdspec.training.config`` (the CLI's
option lists) does not pull in PyTorch Lightning.
"""

from __future__ import annotations

from birdspec.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "birdspec.training.config",
    "TrainResult": "birdspec.training.loop",
    "train": "birdspec.training.loop",
    "read_run_config": "birdspec.training.rundir",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports('birdspec.training', _EXPORTS)
