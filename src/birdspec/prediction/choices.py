"""The choice lists of ``birdspec predict`` and ``birdspec export`` (and the archive engines ``birdspec index``
shares with predict), defined here without heavy imports (no pandas, no PyTorch), so the CLI starts fast. The
output formats and file names, which data, evaluation and the app read too, are in :mod:`birdspec.formats`."""

from __future__ import annotations

from birdspec.errors import ConfigError

ENGINES = ("local", "dask")
"""Where an archive run (a folder prediction, an index) runs: local processes (``--jobs``) or a Dask cluster."""
ENGINE_HELP = "local processes (default) or a Dask cluster (needs birdspec[distributed])"
SCHEDULER_HELP = "--engine dask: the scheduler, e.g. tcp://head:8786 (default: start a local cluster of --jobs workers)"
EXPORT_FORMATS = ("onnx", "torchscript")
CHECK_TOLERANCE = 1e-4
"""Largest absolute logit difference accepted between an export and PyTorch."""
ONNX_OPSET = 17


def check_engine(engine: str, scheduler: str | None) -> None:
    """Refuse an unknown ``--engine`` and a ``--scheduler`` without ``--engine dask``.

    Raises:
        ConfigError: either.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if scheduler and engine != "dask":
        raise ConfigError("--scheduler is for --engine dask")
