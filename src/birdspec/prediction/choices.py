"""The choice lists of ``birdspec predict`` and ``birdspec export`` that only prediction uses, defined here
without heavy imports (no pandas, no PyTorch), so the CLI starts fast. The output formats and file names,
which data, evaluation and the app read too, are in :mod:`birdspec.formats`."""

ENGINES = ("local", "dask")
"""Where a folder prediction runs: local processes (``--jobs``) or a Dask cluster."""
EXPORT_FORMATS = ("onnx", "torchscript")
CHECK_TOLERANCE = 1e-4
"""Largest absolute logit difference accepted between an export and PyTorch."""
ONNX_OPSET = 17
