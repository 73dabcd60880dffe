"""Training: :func:`train` a registered model on a prepared dataset into a run directory.

``TrainConfig`` holds the settings (study defaults per model), ``TrainResult``
what a run produced; the run directory layout is described in
:mod:`birdspec.training.loop`.
"""

from birdspec.training.config import TrainConfig
from birdspec.training.loop import TrainResult, read_run_config, train

__all__ = ["TrainConfig", "TrainResult", "train", "read_run_config"]
