"""The choice lists of ``birdspec predict`` and ``birdspec export``, defined here without heavy imports
(no pandas, no PyTorch), so the CLI starts fast."""

FORMATS = ("csv", "raven", "audacity", "birdclef", "parquet")
"""Output formats of ``birdspec predict`` (:mod:`birdspec.prediction.outputs`)."""
SCORE_MODES = ("topk", "all")
"""``topk``: one row per kept (window, class); ``all``: one column of scores per class."""
DEFAULT_THRESHOLDS = "0.05:0.95:0.05"
"""Thresholds ``birdspec score-soundscapes`` tries by default (start:stop:step, stop included)."""
ENGINES = ("local", "dask")
"""Where a folder prediction runs: local processes (``--jobs``) or a Dask cluster."""
EXPORT_FORMATS = ("onnx", "torchscript")
CHECK_TOLERANCE = 1e-4
"""Largest absolute logit difference accepted between an export and PyTorch."""
ONNX_OPSET = 17
