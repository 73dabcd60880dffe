"""Agile classifiers over an embedding index (``birdspec agile``, issue 31 item 3).

One round of the loop: verdicts on windows of the index (a filled-in search result, a filled-in ``next.csv``
of an earlier round, or the Review app's ``.verdicts.csv``; read by the call-density reader, so yes / no /
unsure and correct / wrong / other mean the same everywhere) -> a linear classifier per species on the
windows' unit vectors (:func:`fit_linear`: logistic regression, positives and negatives weighted equally,
plus random unverified windows as weak negatives, since most of an archive holds no call) -> every window of
the index scored in seconds (:func:`score_index`) -> the next windows to verify (:func:`next_windows`: nearest
the threshold, the highest unverified, or a stratified draw over score bins). Repeat with the new verdicts.

The round writes, in its folder: ``scores.csv`` (one row per window and a column per species: what
``birdspec call-density sample/estimate`` read), ``next.csv`` (the windows to verify, a detection table the
Review app opens; its ``verdict`` column can be filled in by hand) and ``agile.json`` (counts, the
verdicts' own cross-validated precision and recall, the windows above the threshold) and ``model.pt``: for an
index built with BirdNET, a normal birdspec checkpoint (a ``birdnet-linear`` head with unit
normalisation on 3 s windows, sigmoid scores, the threshold stored) that ``birdspec predict`` runs on new
audio; for an index of a birdspec run's features, that run's network with the classifiers as
its final layer (:mod:`~birdspec.similarity.agile_checkpoint`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, DataError
from birdspec.fileio import refuse_output_over_inputs, write_json
from birdspec.formats import SCORES_FILE
from birdspec.similarity.agile_config import AGILE_MODEL_FILE, AGILE_NEXT_FILE, AGILE_SUMMARY_FILE, AgileConfig
from birdspec.similarity.index_store import SimilarityIndex

log = logging.getLogger(__name__)


def index_keys(index: SimilarityIndex) -> pd.Series:
    """Row of every window by ``recording|start`` (start to the millisecond, the call-density key)."""
    from birdspec.evaluation.call_density_io import window_keys as keys

    w = index.windows
    return pd.Series(np.arange(len(w)), index=keys(w["recording"].astype(str), w["start_s"]))


def archive_path(index: SimilarityIndex, recording: str) -> str:
    """Where a window's recording is: the archive folder the index was built from, joined with its name."""
    return str(Path(index.info.archive) / recording)


def _relative(index: SimilarityIndex, key: str) -> str:
    """A verdict's ``file|start`` key with the file made relative to the archive (tables hold full paths)."""
    file, _, start = key.rpartition("|")
    root = os.path.normpath(index.info.archive)
    norm = os.path.normpath(file)
    if os.path.isabs(norm) and (norm == root or norm.startswith(root + os.sep)):
        file = Path(os.path.relpath(norm, root)).as_posix()
    return f"{file}|{start}"


def index_verdicts(index: SimilarityIndex, verdict_files: Sequence[str | Path], species: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(rows, called, unsure)``: the index rows of the verified windows of ``species``, their verdicts, and how
    many were unsure (left out).

    Raises:
        DataError: unreadable verdicts (:func:`~birdspec.evaluation.call_density_io.read_density_verdicts`), or
            verified windows that are not in the index.
    """
    from birdspec.evaluation.call_density_io import read_density_verdicts

    verdicts, unsure = read_density_verdicts(verdict_files, species)
    keys = index_keys(index)
    rel = verdicts["key"].map(lambda k: _relative(index, k))
    found = rel.isin(keys.index)
    if not found.all():
        raise DataError(f"{int((~found).sum())} verified windows of {species} are not windows of the index (e.g. "
                        f"{rel[~found].iloc[0]}); give verdicts on this index's windows (its search results, next.csv)")
    return keys.loc[rel].to_numpy(), verdicts["called"].to_numpy(dtype=bool), unsure


def fit_linear(x: np.ndarray, y: np.ndarray, weight: np.ndarray, *, l2: float, steps: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Weighted logistic regression ``p = sigmoid(x @ w + b)``: ``(w (D,), b)``.

    Args:
        x: ``(n, D)`` float32 features; y: ``(n,)`` 0/1 targets; weight: ``(n,)`` per-sample weights (summing to
            the total weight wanted); l2: penalty on ``w``; steps: L-BFGS iterations.
    """
    import torch

    torch.manual_seed(seed)
    xt, yt = torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.float32))
    wt = torch.as_tensor(np.asarray(weight, dtype=np.float32))
    wt = wt / wt.sum().clamp(min=1e-12)
    w = torch.zeros(xt.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=int(steps), line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = xt @ w + b
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="none") * wt).sum()
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32), float(b.detach())


def training_set(index: SimilarityIndex, rows: np.ndarray, called: np.ndarray, config: AgileConfig,
                 rng: np.random.Generator, *, verified: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, weight)``: the verified windows ``rows`` (positives and negatives half the weight each, or all of
    it when one side is missing) and ``random_negatives`` windows at ``random_negative_weight``, drawn from those
    not in ``verified`` (default ``rows``: a held-out verified window is never drawn as a negative)."""
    n_pos, n_neg = int(called.sum()), int((~called).sum())
    side = 0.5 if n_pos and n_neg else 1.0
    weight = np.where(called, side / max(n_pos, 1), side / max(n_neg, 1))
    free = np.setdiff1d(np.arange(len(index)), rows if verified is None else verified)
    k = min(config.random_negatives, free.size)
    extra = np.sort(rng.choice(free, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)
    all_rows = np.concatenate([rows, extra])
    y = np.concatenate([called.astype(np.float32), np.zeros(k, dtype=np.float32)])
    weight = np.concatenate([weight, np.full(k, config.random_negative_weight / max(k, 1))])
    return index.unit_rows(all_rows), y, weight


def cross_validated(index: SimilarityIndex, rows: np.ndarray, called: np.ndarray, config: AgileConfig, *,
                    folds: int = 5) -> dict[str, float | int | None]:
    """Precision and recall at the threshold of the verified windows, each scored by a classifier trained
    without it (``folds``-fold, stratified): what the verdicts say of the classifier so far (biased towards hard
    windows when they were chosen by margin)."""
    n_pos, n_neg = int(called.sum()), int((~called).sum())
    if min(n_pos, n_neg) < 2:
        return {"cv_precision": None, "cv_recall": None, "cv_windows": 0}
    rng = np.random.default_rng(config.seed)
    fold = np.empty(len(rows), dtype=np.int64)
    for side in (called, ~called):
        idx = rng.permutation(np.flatnonzero(side))
        fold[idx] = np.arange(idx.size) % min(folds, n_pos, n_neg)
    x_all = index.unit_rows(rows)
    scores = np.zeros(len(rows), dtype=np.float64)
    for k in np.unique(fold):
        train = fold != k
        x, y, weight = training_set(index, rows[train], called[train], config, rng, verified=rows)
        w, b = fit_linear(x, y, weight, l2=config.l2, steps=config.steps, seed=config.seed)
        scores[~train] = sigmoid_scores(x_all[~train], w, b)
    hit = scores >= config.threshold
    tp = int((hit & called).sum())
    return {"cv_precision": round(tp / int(hit.sum()), 4) if hit.any() else None, "cv_recall": round(tp / n_pos, 4),
            "cv_windows": len(rows)}


def score_index(index: SimilarityIndex, w: np.ndarray, b: float) -> np.ndarray:
    """``(N,)`` sigmoid scores of every window of the index, a block of rows at a time."""
    out = np.empty(len(index), dtype=np.float32)
    for start, block in index.unit_blocks():
        out[start : start + len(block)] = sigmoid_scores(block, w, b)
    return out


def sigmoid_scores(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """``sigmoid(x @ w + b)``: the classifier's score of unit vectors ``x`` ``(n, D)``."""
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def next_windows(scores: np.ndarray, verified: np.ndarray, *, strategy: str, count: int, threshold: float,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rows, bins)``: ``count`` unverified windows to verify next (bins: each row's score bin for ``bins``, else None).

    >>> s = np.array([0.9, 0.55, 0.1, 0.45, 0.52, 0.99])
    >>> next_windows(s, np.array([4]), strategy="margin", count=2, threshold=0.5)[0].tolist()
    [3, 1]
    >>> next_windows(s, np.array([5]), strategy="top", count=2, threshold=0.5)[0].tolist()
    [0, 1]
    """
    free = np.setdiff1d(np.arange(scores.size), verified)
    if strategy == "bins":
        from birdspec.evaluation import call_density as cd

        quantiles = cd.geometric_quantiles()
        edges = cd.bin_edges(scores[free].astype(np.float64), quantiles=quantiles)
        bins = cd.assign_bins(scores[free].astype(np.float64), edges)
        per_bin = max(1, int(np.ceil(count / (len(edges) - 1))))
        pick = cd.stratified_sample(bins, n_bins=len(edges) - 1, per_bin=per_bin, seed=seed)
        return free[pick], bins[pick]
    key = np.abs(scores[free] - threshold) if strategy == "margin" else -scores[free]
    order = np.argsort(key, kind="stable")[:count]
    return free[order], None


@dataclass(frozen=True)
class AgileResult:
    """One round: ``summary`` (what ``agile.json`` holds) and the files written."""

    summary: dict[str, Any]
    scores: Path
    next_windows: Path
    model: Path


def run_agile(index_dir: str | Path, verdict_files: Sequence[str | Path], *, species: Sequence[str], out: str | Path,
              config: AgileConfig = AgileConfig()) -> AgileResult:
    """One round of the agile loop for ``species`` (see the module doc); writes into ``out``.

    Raises:
        DataError: no index, unreadable verdicts, verdicts on windows outside the index, or a species without a
            positive verdict. ConfigError: bad settings, or an ``out`` whose files would overwrite a verdict table
            or land in the index folder.
    """
    index = SimilarityIndex(index_dir)
    if not species:
        raise ConfigError("name at least one --species")
    out = Path(out)
    for name in (SCORES_FILE, AGILE_NEXT_FILE, AGILE_MODEL_FILE, AGILE_SUMMARY_FILE):  # e.g. --verdicts R/next.csv --out R
        refuse_output_over_inputs(out / name, [index_dir, *verdict_files])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    weights, per_species, next_tables = [], [], []
    table = index.windows.assign(file=[archive_path(index, r) for r in index.windows["recording"]])
    for name in species:
        rows, called, unsure = index_verdicts(index, verdict_files, name)
        if not called.any():
            raise DataError(f"no window of {name} was verified as a call (yes/correct); a classifier needs at least one "
                            "example: search with a recording of the call and mark the hits")
        x, y, weight = training_set(index, rows, called, config, rng)
        w, b = fit_linear(x, y, weight, l2=config.l2, steps=config.steps, seed=config.seed)
        scores = score_index(index, w, b)
        table[name] = np.round(scores, 5)
        pick, bins = next_windows(scores, rows, strategy=config.strategy, count=config.next_count,
                                  threshold=config.threshold, seed=config.seed)
        nxt = table.iloc[pick][["file", "start_s", "end_s"]].assign(label=name, confidence=np.round(scores[pick], 5))
        if bins is not None:
            nxt = nxt.assign(bin=bins)
        next_tables.append(nxt.assign(verdict=""))
        weights.append((w, b))
        per_species.append({"species": name, "positives": int(called.sum()), "negatives": int((~called).sum()),
                            "unsure": unsure, "random_negatives": min(config.random_negatives, len(index) - len(rows)),
                            "windows_above_threshold": int((scores >= config.threshold).sum()),
                            **cross_validated(index, rows, called, config)})
        log.info("%s: %d yes, %d no verdicts; %d of %d windows score >= %.2f", name, called.sum(), (~called).sum(),
                 per_species[-1]["windows_above_threshold"], len(index), config.threshold)
    from birdspec.fileio import write_with

    scores_path, next_path = out / SCORES_FILE, out / AGILE_NEXT_FILE
    write_with(scores_path, lambda tmp: table[["file", "start_s", "end_s", "deployment", *species]].to_csv(tmp, index=False))
    write_with(next_path, lambda tmp: pd.concat(next_tables, ignore_index=True).to_csv(tmp, index=False))
    from birdspec.similarity.agile_checkpoint import save_agile_checkpoint

    model = save_agile_checkpoint(out / AGILE_MODEL_FILE, weights, species=list(species), index=index,
                                  threshold=config.threshold, summary=per_species)
    summary = {"index": str(Path(index_dir)), "windows": len(index), "verdict_files": [str(p) for p in verdict_files],
               "config": asdict(config), "species": per_species, "model": str(model)}
    write_json(out / AGILE_SUMMARY_FILE, summary)
    return AgileResult(summary, scores_path, next_path, model)
