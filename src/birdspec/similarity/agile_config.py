"""The settings of a ``birdspec agile`` round and its file names (light: the CLI reads them to build its help)."""

from __future__ import annotations

from dataclasses import dataclass

from birdspec.errors import ConfigError

AGILE_STRATEGIES = ("margin", "top", "bins")
"""How the next windows are chosen: nearest the threshold, the highest scores not verified yet, or a stratified
random draw over score bins (what call density needs)."""
AGILE_NEXT_FILE = "next.csv"
AGILE_MODEL_FILE = "model.pt"
AGILE_SUMMARY_FILE = "agile.json"


@dataclass(frozen=True)
class AgileConfig:
    """Settings of one round.

    Attributes:
        random_negatives: unverified windows drawn at random as weak negatives (0: none).
        random_negative_weight: their total weight, relative to the verified windows' (each class side 0.5).
        l2: weight decay of the logistic regression (on unit vectors).
        steps: full-batch optimisation steps.
        threshold: score from which a window counts as a call (stored in the checkpoint).
        next_count: windows to verify next, per species; strategy: one of :data:`AGILE_STRATEGIES`.
        seed: random negatives, the bins draw and the cross-validation folds.
    """

    random_negatives: int = 200
    random_negative_weight: float = 0.25
    l2: float = 1e-3
    steps: int = 300
    threshold: float = 0.5
    next_count: int = 20
    strategy: str = "margin"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in AGILE_STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; use one of {', '.join(AGILE_STRATEGIES)}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if self.random_negatives < 0 or self.random_negative_weight < 0 or self.l2 < 0:
            raise ConfigError("--random-negatives, their weight and --l2 must be >= 0")
        if self.steps < 1 or self.next_count < 1:
            raise ConfigError("--steps and --next must be >= 1")
