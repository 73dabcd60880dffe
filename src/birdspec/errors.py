"""One error hierarchy for birdspec.

Every error a user can cause (bad arguments, bad data, a missing file) is a
:class:`BirdspecError`; the CLI turns it into a one-line message and exit
status 2. Anything else escaping the CLI is a bug (exit status 1).

Messages say what went wrong *and what to do about it*.
"""

from __future__ import annotations


class BirdspecError(Exception):
    """Root of all errors raised on purpose by birdspec."""


class ConfigError(BirdspecError, ValueError):
    """An invalid setting or argument (a value out of range, an unknown name)."""


class DataError(BirdspecError):
    """A dataset, recording or manifest that cannot be used as given."""


class AudioError(DataError):
    """A recording that cannot be decoded (empty, corrupt, truncated, unsupported)."""


class CheckpointError(BirdspecError):
    """A checkpoint or run directory that is missing, incomplete or incompatible."""


class TrainingError(BirdspecError):
    """Training cannot go on (for example a non-finite loss)."""


class DependencyError(BirdspecError, ImportError):
    """An optional dependency is needed for this feature but not installed."""
