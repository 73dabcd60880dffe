"""birdspec: bird species classification from recordings with log-mel spectrograms and CNNs.

Pipeline, one package per stage: data (catalog, prepare, Dataset) -> features (log-mel
frontend) -> models (registry, checkpoints) -> training -> evaluation -> experiments (sweeps,
cross-validation) -> prediction (long recordings, exports). Low-level modules shared by all:
config, errors, fileio, audio, windowing, runtime.
"""

from __future__ import annotations

__version__ = "0.1.0"

from birdspec.config import SAMPLE_RATE_HZ, EncodingConfig, FrontendConfig
from birdspec.errors import (
    AudioError,
    BirdspecError,
    CheckpointError,
    ConfigError,
    DataError,
    DependencyError,
    TrainingError,
)

__all__ = [
    "__version__",
    "SAMPLE_RATE_HZ",
    "EncodingConfig",
    "FrontendConfig",
    "BirdspecError",
    "ConfigError",
    "DataError",
    "AudioError",
    "CheckpointError",
    "TrainingError",
    "DependencyError",
]
