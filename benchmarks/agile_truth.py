"""The agile benchmark's one window-truth rule and window metrics (issue 31), numpy, pandas and scikit-learn only.

A window holds a call of a class when a placed call of it (``ARCHIVE/site*/calls.csv``: ``audio_id, label, start_s,
end_s``; the recording of ``audio_id`` X in site S is ``S/audio/X.flac`` relative to the archive) overlaps it by at
least :data:`MIN_OVERLAP_S`. Shared by ``benchmarks/agile.py`` (birdspec's index) and ``benchmarks/hoplite_agile.py``
(perch-hoplite's database, in its own environment without birdspec), so both score against the same truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

MIN_OVERLAP_S = 0.5


def window_truth(recordings: Sequence[str], starts_s: Sequence[float], ends_s: Sequence[float], archive: Path,
                 classes: Sequence[str]) -> np.ndarray:
    """``(N, K)`` bool: window i (``recordings[i]`` relative to ``archive``, posix, from ``starts_s[i]`` to
    ``ends_s[i]``) holds a call of ``classes[k]`` (overlap >= :data:`MIN_OVERLAP_S`).

    Raises:
        ValueError: a placed call's label is not in ``classes`` (name every class of the archive).
    """
    classes = list(classes)
    all_starts = np.asarray(starts_s, dtype=np.float64)
    all_ends = np.asarray(ends_s, dtype=np.float64)
    truth = np.zeros((len(all_starts), len(classes)), dtype=bool)
    by_rec: dict[str, list[int]] = {}
    for i, r in enumerate(recordings):
        by_rec.setdefault(str(r), []).append(i)
    for site in sorted(Path(archive).glob("site*")):
        calls = pd.read_csv(site / "calls.csv")
        for rec, g in calls.groupby("audio_id"):
            rows = by_rec.get(f"{site.name}/audio/{rec}.flac", [])
            if not rows:
                continue
            starts, ends = all_starts[rows], all_ends[rows]
            for label, a, b in zip(g["label"], g["start_s"], g["end_s"], strict=True):
                overlap = np.minimum(ends, b) - np.maximum(starts, a)
                truth[np.asarray(rows)[overlap >= MIN_OVERLAP_S], classes.index(label)] = True
    return truth


def window_scores(scores: np.ndarray, truth: np.ndarray, *, threshold: float = 0.5) -> dict:
    """Micro precision/recall/F1 of ``scores`` ``(N, K)`` at ``threshold`` against ``truth`` ``(N, K)``, and the mean
    average precision over the classes with a call."""
    from sklearn.metrics import average_precision_score

    hit = scores >= threshold
    tp = int((hit & truth).sum())
    p, r = tp / max(int(hit.sum()), 1), tp / max(int(truth.sum()), 1)
    ap = [average_precision_score(truth[:, k], scores[:, k]) for k in range(truth.shape[1]) if truth[:, k].any()]
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-12), 4),
            "mean_ap": round(float(np.mean(ap)), 4)}
