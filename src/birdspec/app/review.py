"""Review: detections to verify, the verdicts given (saved at once), precision per score bin, the manifest.

A detection is one row of a prediction's long table (``birdspec predict --format csv``): a window of
a recording and a class with its score. A verdict is ``correct``, ``wrong`` or ``other`` (another
species, named), keyed by ``(file, start_s, label)``. Verdicts live in ``<prediction>.verdicts.csv``
next to the prediction's CSV: each one is merged into the file under a lock and the file is
replaced atomically (:func:`birdspec.fileio.write_csv`), so a reload, a crash or a second tab
never loses one (the last verdict given for a detection wins).

Precision is estimated per score bin (:data:`BIN_EDGES`) from the verified detections of that bin,
and above a threshold by weighting each bin's precision by how many detections it holds: with a
random sample per bin (:func:`sample_per_bin`) this is an unbiased estimate, whereas verifying the
top-scored detections only would overstate the precision of the lower bins. A threshold is suggested
only where the lower confidence bound of that estimate (Wilson's, :data:`CONFIDENCE`) reaches the target,
from at least :data:`MIN_VERDICTS` verdicts: two correct windows do not make a 0.9 precision.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.errors import ConfigError, DataError
from birdspec.formats import REVIEW_VERDICTS

log = logging.getLogger(__name__)

VERDICTS = REVIEW_VERDICTS
DETECTION_KEYS = ("file", "start_s", "end_s", "label", "confidence")
"""What names a detection: the columns of a ``birdspec predict`` table (long format) that Review needs."""
VERDICT_COLUMNS = (*DETECTION_KEYS, "verdict", "species", "updated")
BIN_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Score bins of the precision table (the last bin includes 1.0)."""
CONFIDENCE = 0.95
Z_ONE_SIDED = 1.6449
"""The normal quantile of :data:`CONFIDENCE` (one-sided): a suggested threshold's precision is at least the
target with this confidence."""
MIN_VERDICTS = 10
"""No threshold is suggested from fewer verdicts above it, whatever they say."""
VERDICTS_SUFFIX = ".verdicts.csv"
"""The verdicts of ``X.csv`` are in ``X.verdicts.csv`` beside it."""
VERIFIED_COLUMNS = ("path", "start_s", "end_s", "label", "scientific_name", "common_name", "source_prediction")
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def verdicts_path(prediction_csv: Path) -> Path:
    """``<prediction>.verdicts.csv`` beside the prediction's CSV."""
    return prediction_csv.with_name(prediction_csv.stem + VERDICTS_SUFFIX)


def read_detections(prediction_csv: Path) -> pd.DataFrame:
    """The detections of a prediction table (CSV, or Parquet with pyarrow), with a ``key`` per detection.

    Raises:
        DataError: not a readable ``birdspec predict`` CSV (long format).
    """
    try:
        if prediction_csv.suffix == ".parquet":
            df = pd.read_parquet(prediction_csv)
            for col in ("file", "label"):
                if col in df.columns:
                    df[col] = df[col].astype(str)
        else:
            df = pd.read_csv(prediction_csv, dtype={"file": str, "label": str})
    except ImportError as exc:
        raise DataError(f"{prediction_csv}: reading Parquet predictions needs pyarrow: pip install 'birdspec[parquet]'") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{prediction_csv}: cannot read this prediction table ({exc})") from exc
    missing = set(DETECTION_KEYS) - set(df.columns)
    if missing:
        raise DataError(f"{prediction_csv}: not a detections table (missing {', '.join(sorted(missing))}); "
                        "use a `birdspec predict --format csv` or `--format parquet` output (long format, not --scores all)")
    for col in ("common_name", "scientific_name"):
        df[col] = df[col].astype(object).fillna("").astype(str) if col in df.columns else ""
    if "rank" not in df.columns:
        df["rank"] = df.groupby(["file", "start_s"])["confidence"].rank(ascending=False, method="first").astype(int)
    df["key"] = [detection_key(f, s, lab) for f, s, lab in zip(df["file"], df["start_s"], df["label"], strict=True)]
    return df.reset_index(drop=True)


def detection_key(file: str, start_s: float, label: str) -> str:
    return f"{file}|{float(start_s):.3f}|{label}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """This process's lock on ``path`` and the OS lock on ``path.lock`` (another server on the same files;
    :func:`birdspec.locks.os_lock`, which removes the file afterwards, so none stays beside the table)."""
    from birdspec.locks import LOCK_SUFFIX, os_lock

    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(path.resolve(), threading.Lock())
    with lock, os_lock(path.with_name(path.name + LOCK_SUFFIX), wait=True):
        yield


def read_verdicts(path: Path) -> pd.DataFrame:
    """The verdicts file (empty table when there is none yet)."""
    if not path.is_file():
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    try:
        df = pd.read_csv(path, dtype={"file": str, "label": str, "verdict": str, "species": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: the verdicts file is damaged ({exc}); move it away to start over") from exc
    df["species"] = df["species"].fillna("")
    return df


def save_verdict(prediction_csv: Path, detection: dict[str, Any], verdict: str, species: str = "") -> pd.DataFrame:
    """Merge one verdict into the verdicts file (``verdict='clear'`` removes it); return all verdicts.

    Raises:
        ConfigError: an unknown verdict, or ``other`` without a species.
    """
    from birdspec.fileio import write_csv

    if verdict not in (*VERDICTS, "clear"):
        raise ConfigError(f"unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)} (or clear)")
    species = str(species or "").strip()
    if verdict == "other" and not species:
        raise ConfigError("an 'other species' verdict needs the species: type its code or name")
    path = verdicts_path(prediction_csv)
    key = detection_key(detection["file"], detection["start_s"], detection["label"])
    with _locked(path):
        df = read_verdicts(path)
        keys = [detection_key(f, s, lab) for f, s, lab in zip(df["file"], df["start_s"], df["label"], strict=True)]
        df = df[[k != key for k in keys]]
        if verdict != "clear":
            row = {"file": detection["file"], "start_s": float(detection["start_s"]), "end_s": float(detection["end_s"]),
                   "label": detection["label"], "confidence": float(detection["confidence"]), "verdict": verdict,
                   "species": detection["label"] if verdict == "correct" else species if verdict == "other" else "",
                   "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
            df = pd.concat([df, pd.DataFrame([row])], ignore_index=True) if len(df) else pd.DataFrame([row])
        write_csv(path, df[list(VERDICT_COLUMNS)], float_format=None)
    return df


def verdict_map(prediction_csv: Path) -> dict[str, dict[str, str]]:
    df = read_verdicts(verdicts_path(prediction_csv))
    return {detection_key(f, s, lab): {"verdict": v, "species": sp}
            for f, s, lab, v, sp in zip(df["file"], df["start_s"], df["label"], df["verdict"], df["species"], strict=True)}


def score_bin(confidence: np.ndarray) -> np.ndarray:
    """Index of each score's bin in :data:`BIN_EDGES` (-1 below the first edge)."""
    return np.clip(np.searchsorted(np.asarray(BIN_EDGES), confidence, side="right") - 1, -1, len(BIN_EDGES) - 2)


def sample_per_bin(detections: pd.DataFrame, *, per_bin: int, seed: int = 0) -> pd.DataFrame:
    """A random sample of at most ``per_bin`` detections per (species, score bin); the same on every call."""
    bins = score_bin(detections["confidence"].to_numpy(dtype=float))
    picked = []
    for (_label, _b), idx in detections.assign(_bin=bins).groupby(["label", "_bin"]).groups.items():
        idx = np.asarray(sorted(idx))
        rng = np.random.default_rng([seed, len(idx), int(idx[0])])
        picked.extend(idx[rng.permutation(len(idx))[:per_bin]].tolist())
    return detections.loc[sorted(picked)]


def wilson_lower(p: float, n: float, *, z: float = Z_ONE_SIDED) -> float:
    """Wilson's lower confidence bound of a proportion ``p`` seen in ``n`` trials (one-sided, ``z``).

    >>> round(wilson_lower(1.0, 2), 3), round(wilson_lower(1.0, 30), 3), round(wilson_lower(0.9, 200), 3)
    (0.425, 0.917, 0.86)
    """
    if n <= 0:
        return 0.0
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * np.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return float(max(0.0, (centre - margin) / (1 + z2 / n)))


def precision_summary(detections: pd.DataFrame, verdicts: dict[str, dict[str, str]], *, target: float = 0.9) -> list[dict[str, Any]]:
    """Per species: each bin's detections, verified and correct; above each bin's lower edge, the estimated
    precision (bins weighted by their detections; unknown while a bin above has no verdict) and its lower
    confidence bound (:func:`wilson_lower` at the bins' effective sample size); the lowest threshold whose
    lower bound reaches ``target`` from at least :data:`MIN_VERDICTS` verdicts (else none: verify more)."""
    out = []
    conf = detections["confidence"].to_numpy(dtype=float)
    bins = score_bin(conf)
    for label in sorted(detections["label"].unique()):
        mask = (detections["label"] == label).to_numpy()
        rows: list[dict[str, Any]] = []
        for b in range(len(BIN_EDGES) - 1):
            in_bin = mask & (bins == b)
            keys = detections.loc[in_bin, "key"]
            given = [verdicts[k]["verdict"] for k in keys if k in verdicts]
            n_ok = sum(v == "correct" for v in given)
            rows.append({"bin": f"{BIN_EDGES[b]:.1f}-{BIN_EDGES[b + 1]:.1f}", "low": BIN_EDGES[b], "detections": int(in_bin.sum()),
                         "verified": len(given), "correct": n_ok, "precision": n_ok / len(given) if given else None})
        suggested = None
        for i in range(len(rows)):
            est, lower = _weighted_precision(rows[i:])
            above = sum(r["verified"] for r in rows[i:])
            rows[i].update(precision_above=est, lower_above=lower, verified_above=above)
            if suggested is None and lower is not None and lower >= target and above >= MIN_VERDICTS:
                suggested = rows[i]["low"]
        out.append({"label": label, "bins": rows, "suggested_threshold": suggested, "target": target,
                    "confidence": CONFIDENCE, "min_verdicts": MIN_VERDICTS,
                    "verified": sum(r["verified"] for r in rows), "detections": int(mask.sum())})
    return out


def _weighted_precision(rows: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """``(precision, lower bound)`` of all detections in ``rows``' bins: each bin's precision weighted by its
    size, the bound at the effective sample size ``1 / sum(w_b^2 / n_b)`` of that stratified estimate;
    ``(None, None)`` while a bin that holds detections has no verdict yet (its precision is unknown)."""
    held = [r for r in rows if r["detections"]]
    if not held or any(not r["verified"] for r in held):
        return None, None
    total = sum(r["detections"] for r in held)
    weights = [r["detections"] / total for r in held]
    est = sum(w * r["precision"] for w, r in zip(weights, held, strict=True))
    n_eff = 1.0 / sum(w * w / r["verified"] for w, r in zip(weights, held, strict=True))
    return est, wilson_lower(est, n_eff)


def manifest_rows(detections: pd.DataFrame, verdicts: pd.DataFrame, class_info: list[dict[str, str]], *,
                  resolve_file: Any, source: str) -> pd.DataFrame:
    """The verified windows as manifest rows: ``correct`` under the detection's label, ``other`` under the
    species named; ``wrong`` ones are left out. ``resolve_file(file) -> absolute path | None``."""
    names = {c["label"]: c for c in class_info}
    rows = []
    r: Any  # a row of the verdicts table
    for r in verdicts.itertuples(index=False):
        if r.verdict not in ("correct", "other") or not str(r.species):
            continue
        path = resolve_file(r.file)
        if path is None:
            continue
        info = names.get(str(r.species), {})
        rows.append({"path": str(path), "start_s": float(r.start_s), "end_s": float(r.end_s), "label": str(r.species),
                     "scientific_name": info.get("scientific_name", ""), "common_name": info.get("common_name", ""),
                     "source_prediction": source})
    df = pd.DataFrame(rows, columns=list(VERIFIED_COLUMNS))
    return df.drop_duplicates(["path", "start_s", "label"]).sort_values(["label", "path", "start_s"]).reset_index(drop=True)
