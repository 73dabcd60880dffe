"""Experiments that train several runs and evaluate them: the optimizer x learning-rate sweep and
K-fold cross-validation.

- :func:`~birdspec.experiments.sweep.run_sweep` (``birdspec sweep``)
- :func:`~birdspec.experiments.cv.run_cv` (``birdspec cv``)

They sit after training and evaluation in the pipeline: each trial or fold is an
ordinary run directory (:mod:`birdspec.training.rundir`), evaluated with
:mod:`birdspec.evaluation`.
"""

from __future__ import annotations

from typing import Any


def train_with_export(*args: Any, **kwargs: Any) -> Any:
    """:func:`birdspec.training.train` as ``birdspec train`` runs it: each run's checkpoints get their ONNX
    runtime export (the default ``train_fn`` of sweeps, cross-validations and learning curves)."""
    from birdspec.prediction.onnx_runtime import export_beside
    from birdspec.training import train

    return train(*args, export=export_beside, **kwargs)
