"""The files birdspec writes and reads back, named once for every layer: prediction's output formats, their
file names and columns, Raven and Audacity tables, BirdCLEF submissions' ``row_id`` and ``nocall``.

The writers are in :mod:`birdspec.prediction.outputs`; the readers of annotation tables
(:mod:`birdspec.data.annotations`), soundscape truth (:mod:`birdspec.data.soundscape`) and the scoring of
submissions (:mod:`birdspec.evaluation.scoring`) read the same names from here. No heavy imports.
"""

from __future__ import annotations

import re

FORMATS = ("csv", "raven", "audacity", "birdclef", "parquet")
"""Output formats of ``birdspec predict`` (:mod:`birdspec.prediction.outputs`)."""
SINGLE_FILE_NAMES = {"csv": "predictions.csv", "parquet": "predictions.parquet", "birdclef": "submission.csv"}
"""The file of the formats that write one file for all recordings (raven and audacity write one per recording):
``predict``'s output when ``--out`` is not given, and the merged output inside an archive run folder."""
FAILED_FILE = "failed.csv"
"""The recordings ``predict`` could not score, with the error (in the output folder, or ``OUT.failed.csv``)."""
SCORES_FILE = "scores.csv"
"""Every window's score per class, a column each: the app's analysis of a recording, a `birdspec agile` round."""
REVIEW_VERDICTS = ("correct", "wrong", "other")
"""A verified detection's verdict in the review app's ``<prediction>.verdicts.csv`` (the right species, not it, another
species); :mod:`birdspec.evaluation.call_density` reads them as yes / no / no."""
SCORE_MODES = ("topk", "all")
"""``topk``: one row per kept (window, class); ``all``: one column of scores per class."""
DEFAULT_THRESHOLDS = "0.05:0.95:0.05"
"""Thresholds ``birdspec score-soundscapes`` tries by default (start:stop:step, stop included)."""
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Species Code",
    "Common Name",
    "Confidence",
)
"""The columns of a Raven selection table ``birdspec predict --format raven`` writes."""
RAVEN_SUFFIX = ".BirdSpec.selection.table.txt"
"""``<recording stem><RAVEN_SUFFIX>``: birdspec's Raven table of a recording."""
AUDACITY_SUFFIX = ".BirdSpec.labels.txt"
"""``<recording stem><AUDACITY_SUFFIX>``: birdspec's Audacity label track of a recording."""
NOCALL = "nocall"
"""A BirdCLEF submission's (and soundscape truth's) ``birds`` of a window with none of the species."""
LONG_COLUMNS = ("rank", "label", "scientific_name", "common_name", "confidence")
"""The per-detection columns of ``predict``'s long (``--scores topk``) table, after the window's."""
PROB_PREFIX = "prob_"
"""``prob_<class>``: the score columns of evaluation's ``predictions.csv`` and a run's ``predictions_val.csv``."""
_KAGGLE_STEM = re.compile(r"^(\d+_[A-Za-z0-9]+)_\d{8}$")


def birdclef_row_id(stem: str, end_s: float) -> str:
    """``<stem>_<end second>``; Kaggle's ``<id>_<site>_<yyyymmdd>`` stems lose the date (``7019_COR_5``)."""
    m = _KAGGLE_STEM.match(stem)
    base = m.group(1) if m else stem
    return f"{base}_{int(round(end_s))}"
