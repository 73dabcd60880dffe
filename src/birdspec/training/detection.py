"""The detection threshold that travels with a model: chosen per class after training, stored in its checkpoints.

When a run ends, each of its checkpoints scores the windows its thresholds are chosen on (the validation
recordings and their fixed no-bird samples; with ``thresholds_on='train'`` the training recordings,
in-sample, and no-bird samples drawn apart from training's: :func:`~birdspec.training.samples.threshold_sets`):

1. optionally a temperature is fitted on them (``temperature_scaling``: the negative log-likelihood of
   the run's activation, :func:`~birdspec.models.activation.fit_temperature`);
2. per class, the threshold is the one with the best F1 of "this class is in the window" over those
   windows (positives: the windows of the class, or with it among their labels; negatives: every other
   window, no-bird ones included), placed half-way between the lowest score it accepts and the highest
   it rejects, and kept within [:data:`MIN_THRESHOLD`, :data:`MAX_THRESHOLD`]. A class without a window
   there gets a threshold above every window's score of it (at least 0.5), and so does a class whose
   scores do not separate it: when the windows its best cut accepts hold no larger (weighted) share of
   the class than all the windows do (the cut is "accept everything", or no better), the class is never
   detected instead of always (a model that learned nothing of it would otherwise label every window
   of a field recording with it). The no-bird samples are
   weighted so that together they count as much as all the bird windows (:data:`NOCALL_SHARE`): in field
   audio most windows hold none of the classes, so a false detection on "nothing" must cost more than
   the few no-bird samples a validation split holds would make it.

The result (:class:`~birdspec.models.checkpoint_info.Detection`: thresholds, temperature, where and how
they were chosen, what they gave per class) is written into the checkpoint file, so ``predict``,
``export`` and the runtime exports use it (``birdspec info RUN`` shows it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.models.checkpoint_info import Detection

log = logging.getLogger(__name__)

MIN_THRESHOLD = 0.05
MAX_THRESHOLD = 0.99
NO_POSITIVE_THRESHOLD = 0.5
"""The least threshold of a class that has no window where the thresholds are chosen."""
NOCALL_SHARE = 0.5
"""The share of the (weighted) windows the no-bird samples make up when thresholds are chosen."""
RULE = (f"per class, the best F1 of 'the class is in the window' (ties: the highest; the no-bird samples weighted "
        f"to {NOCALL_SHARE:.0%} of the windows), half-way between the lowest score accepted and the highest rejected, "
        f"within [{MIN_THRESHOLD}, {MAX_THRESHOLD}]; above every score when the scores do not separate the class")


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
                      ) -> tuple[float, dict[str, Any]]:
    """The threshold with the best (``weights``-weighted) F1 of ``scores >= threshold`` against ``positive``
    (see the module doc) and what it gives, counted unweighted: ``{n_pos, tp, fp, fn, precision, recall, f1}``,
    and ``not_separated: True`` when the scores did not separate the class (its threshold is above them all)."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    w = np.ones(s.size) if weights is None else np.asarray(weights, dtype=np.float64)
    n_pos = int(pos.sum())
    if n_pos == 0:
        return _above_every_score(s, pos)
    order = np.argsort(-s, kind="stable")
    s_sorted, p_sorted, w_sorted = s[order], pos[order], w[order]
    tp = np.cumsum(np.where(p_sorted, w_sorted, 0.0))
    fp = np.cumsum(np.where(p_sorted, 0.0, w_sorted))
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # the cut after index i keeps every score >= s_sorted[i]
    f1 = np.where(last, 2 * tp / (tp + fp + tp[-1]), -1.0)
    best = float(f1.max())
    i = int(np.flatnonzero(f1 >= best - 1e-12)[0])  # the highest threshold among the best
    if fp[-1] > 0 and tp[i] / (tp[i] + fp[i]) <= tp[-1] / (tp[-1] + fp[-1]) + 1e-12:
        t, stats = _above_every_score(s, pos)  # what the best cut accepts is no richer in the class than all windows
        return t, {**stats, "not_separated": True}
    below = s_sorted[i + 1] if i + 1 < s_sorted.size else 0.0
    t = float(np.clip(0.5 * (s_sorted[i] + below), MIN_THRESHOLD, MAX_THRESHOLD))
    return t, _stats(s, pos, t)


def _above_every_score(s: np.ndarray, pos: np.ndarray) -> tuple[float, dict[str, Any]]:
    t = float(np.clip(max(NO_POSITIVE_THRESHOLD, (s.max() + 0.01) if s.size else 0.0), 0.0, MAX_THRESHOLD))
    return t, _stats(s, pos, t)


def _stats(s: np.ndarray, pos: np.ndarray, t: float) -> dict[str, Any]:
    hit = s >= t
    tp, fp, fn = int((hit & pos).sum()), int((hit & ~pos).sum()), int((~hit & pos).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"n_pos": int(pos.sum()), "tp": tp, "fp": fp, "fn": fn, "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(f1, 4)}


def positives(y: np.ndarray, num_classes: int) -> np.ndarray:
    """``(n, K)`` bool "class k is in sample i" of label ids ``(n,)`` (id K: no bird) or targets ``(n, K)``."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y > 0
    out = np.zeros((y.size, num_classes), dtype=bool)
    known = y < num_classes
    out[np.flatnonzero(known), y[known].astype(np.int64)] = True
    return out


def choose_detection(logits: np.ndarray, y: np.ndarray, *, activation: str, temperature_scaling: bool,
                     chosen_on: str) -> Detection:
    """Thresholds (and a temperature) from the logits ``(n, K)`` of samples with targets ``y`` (module doc)."""
    from birdspec.models.activation import fit_temperature, scores_numpy

    logits = np.asarray(logits, dtype=np.float64)
    k = logits.shape[1]
    temperature = float(fit_temperature(logits, y, activation=activation)) if temperature_scaling else 1.0
    scores = scores_numpy(logits, activation, temperature=temperature)
    pos = positives(y, k)
    nocall = np.asarray(~pos.any(axis=1) if np.asarray(y).ndim == 2 else np.asarray(y) >= k)  # (n,) bool
    weights = np.ones(len(nocall))
    if nocall.any() and (~nocall).any():  # the no-bird samples count as much as the bird windows together
        weights[nocall] = NOCALL_SHARE / (1 - NOCALL_SHARE) * (~nocall).sum() / nocall.sum()
    thresholds, per_class = [], []
    for c in range(k):
        t, stats = best_f1_threshold(scores[:, c], pos[:, c], weights)
        stats["fp_nocall"] = int(((scores[:, c] >= t) & nocall).sum())
        thresholds.append(round(t, 6))
        per_class.append(stats)
    return Detection(tuple(thresholds), temperature, chosen_on, RULE, tuple(per_class))


def sample_logits(model: Any, dataset: Any, *, model_input: str, batch_size: int, device: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (n, K), targets)`` of every sample of ``dataset`` (in order), the model in eval mode."""
    import torch
    from torch.utils.data import DataLoader

    from birdspec.data.inputs import model_collate

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=model_collate(model_input))
    model.eval().to(device)
    outs, ys = [], []
    with torch.no_grad():
        for x, y in loader:
            outs.append(model(x.to(device)).float().cpu().numpy())
            ys.append(y.numpy())
    return np.concatenate(outs), np.concatenate(ys)


def describe_samples(dataset: Any, *, side: str) -> str:
    """Where thresholds were chosen, in words: the recordings and no-bird samples of ``dataset``."""
    n_nocall = int(getattr(dataset, "num_nocall", 0))
    rows = np.unique(np.asarray(getattr(dataset, "sample_rows", []), dtype=np.int64))
    n = len(dataset) - n_nocall
    what = {"val": "validation", "train": "training (in-sample)"}.get(side, side)
    return f"{what}: {n} samples of {rows.size} recordings" + (f" + {n_nocall} no-bird samples" if n_nocall else "")


def store_detection(checkpoints: Sequence[Path], dataset: Any, *, cfg: Any, model_input: str, batch_size: int,
                    device: Any) -> dict[str, Detection]:
    """Choose and write the detection settings of every checkpoint file in ``checkpoints`` (those of one
    epoch share them); returns them by file name."""
    from birdspec.models.checkpoint import read_checkpoint, set_detection

    chosen_on = describe_samples(dataset, side=cfg.thresholds_on)
    done: dict[Any, Detection] = {}
    out: dict[str, Detection] = {}
    for path in checkpoints:
        ckpt = read_checkpoint(path)
        key = ckpt.epoch
        if key not in done:
            logits, y = sample_logits(ckpt.build_model(device=device), dataset, model_input=model_input,
                                      batch_size=batch_size, device=device)
            done[key] = choose_detection(logits, y, activation=ckpt.activation,
                                         temperature_scaling=cfg.temperature_scaling, chosen_on=chosen_on)
        det = done[key]
        set_detection(path, det)
        out[Path(path).name] = det
        log.info("%s: detection thresholds %s (temperature %.3g), chosen on %s", Path(path).name,
                 ", ".join(f"{t:.2f}" for t in det.thresholds[:8]) + (" ..." if len(det.thresholds) > 8 else ""),
                 det.temperature, chosen_on)
    return out
