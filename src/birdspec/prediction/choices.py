"""The choice lists of ``birdspec predict`` and ``birdspec export``, defined here without heavy imports
(no pandas, no PyTorch), so the CLI starts fast."""

FORMATS = ("csv", "raven", "audacity", "birdclef", "parquet")
"""Output formats of ``birdspec predict`` (:mod:`birdspec.prediction.outputs`)."""
SINGLE_FILE_NAMES = {"csv": "predictions.csv", "parquet": "predictions.parquet", "birdclef": "submission.csv"}
"""The file of the formats that write one file for all recordings (raven and audacity write one per recording):
``predict``'s output when ``--out`` is not given, and the merged output inside an archive run folder."""
FAILED_FILE = "failed.csv"
"""The recordings ``predict`` could not score, with the error (in the output folder, or ``OUT.failed.csv``)."""
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
