"""The no-bird windows of ``prepare --annotations --complete``: ``nobird.csv`` and their audio for ``--background``.

With ``--complete`` the user says every call of the chosen species is annotated, so a window no box touches
holds none of them (:mod:`birdspec.data.annotation_windows`). Such windows stay out of the class list and of
the waveform store (the classes are the species; "no bird" is learnt from no-bird samples, see
:mod:`birdspec.training.samples`); contiguous ones are joined into stretches, each written once as audio
(32 kHz mono FLAC) under ``OUT/nobird/<split>/`` and listed in ``OUT/nobird.csv`` with its recording's split
and fold (a recording is on one side, as its labelled windows are). ``birdspec train DATA --background
DATA/nobird/train`` then draws no-bird samples from them; for cross-validation, link the training folds'
files (the fold column) into one folder per fold.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

NOBIRD_FILE = "nobird.csv"
"""The no-bird stretches of a prepared dataset: recording, times, split, fold, audio file."""
NOBIRD_DIR = "nobird"
"""Their audio, ``nobird/<split>/<recording>_<start>s.flac``."""
NOBIRD_COLUMNS = ("recording", "source_path", "filename", "start_s", "end_s", "windows", "split", "fold", "file")


def stretches(windows: pd.DataFrame) -> pd.DataFrame:
    """No-bird windows joined where they touch or overlap: one row per stretch with its window count."""
    out = []
    for (rec, path, name), grp in windows.sort_values(["source_path", "start_s"]).groupby(
            ["recording", "source_path", "filename"], sort=True):
        cur = None
        for a, b in zip(grp["start_s"].to_numpy(float), grp["end_s"].to_numpy(float), strict=True):
            if cur is not None and a <= cur[1] + 1e-6:
                cur[1], cur[2] = max(cur[1], b), cur[2] + 1
            else:
                if cur is not None:
                    out.append((rec, path, name, cur[0], cur[1], cur[2]))
                cur = [a, b, 1]
        if cur is not None:
            out.append((rec, path, name, cur[0], cur[1], cur[2]))
    return pd.DataFrame(out, columns=list(NOBIRD_COLUMNS[:6]))


def assign_sides(table: pd.DataFrame, manifest: pd.DataFrame, *, val_fraction: float, seed: int,
                 folds: int | None) -> pd.DataFrame:
    """Each stretch gets its recording's split and fold from the manifest; a recording without labelled windows
    is drawn like one (:func:`~birdspec.data.splits.train_val_split` over those recordings; folds in turn after a
    seeded shuffle)."""
    from birdspec.data.splits import train_val_split

    side = manifest.drop_duplicates("source_path").set_index("source_path")[["split", "fold"]]
    out = table.copy()
    out["split"] = out["source_path"].map(side["split"])
    out["fold"] = out["source_path"].map(side["fold"])
    alone = sorted(set(out.loc[out["split"].isna(), "filename"]))
    if alone:
        split = dict(zip(alone, train_val_split(alone, ["no bird"] * len(alone), val_fraction=val_fraction, seed=seed), strict=True))
        order = np.random.default_rng(seed).permutation(len(alone))
        fold = {alone[i]: (int(k % folds) if folds else -1) for k, i in enumerate(order)}
        miss = out["split"].isna()
        out.loc[miss, "split"] = out.loc[miss, "filename"].map(split)
        out.loc[miss, "fold"] = out.loc[miss, "filename"].map(fold)
    out["fold"] = out["fold"].astype(np.int64)
    return out


def _write_recording(task: tuple[str, list[tuple[float, float, str]], int]) -> list[str | None]:
    """Decode each stretch of one recording and write it as FLAC; the error text per stretch (None: written)."""
    from birdspec.audio import load, write_blocks
    from birdspec.errors import AudioError

    path, parts, sr = task
    errors: list[str | None] = []
    for start, end, out in parts:
        try:
            wave = load(path, sample_rate_hz=sr, offset_s=start, duration_s=end - start)
            write_blocks(out, np.clip(wave, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16", block_s=10.0)
            errors.append(None)
        except (AudioError, OSError) as exc:
            errors.append(str(exc))
    return errors


def write_nobird(partial: Path, windows: pd.DataFrame, manifest: pd.DataFrame, settings: Any, *,
                 workers: int | None) -> dict[str, Any]:
    """Write ``nobird.csv`` and the stretches' audio into ``partial``; a summary for ``dataset.json``."""
    from birdspec.fileio import write_csv

    table = assign_sides(stretches(windows), manifest, val_fraction=settings.val_fraction, seed=settings.seed,
                         folds=settings.folds)
    names = [f"{NOBIRD_DIR}/{split}/{PurePosixPath(n).with_suffix('').as_posix().replace('/', '__')}_{a:g}s.flac"
             for n, a, split in zip(table["filename"], table["start_s"], table["split"], strict=True)]
    table["file"] = names
    for split in set(table["split"]):
        (partial / NOBIRD_DIR / str(split)).mkdir(parents=True, exist_ok=True)
    tasks: list[tuple[Any, list[tuple[float, float, str]], int]] = [  # (recording, its stretches, sample rate)
        (path, [(float(a), float(b), str(partial / f)) for a, b, f in zip(g["start_s"], g["end_s"], g["file"], strict=True)],
         settings.sample_rate_hz) for path, g in table.groupby("source_path", sort=True)]
    from birdspec.runtime import cpu_count

    n = max(1, min(int(workers or cpu_count()), len(tasks)))
    if n > 1:
        with ProcessPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(_write_recording, tasks))
    else:
        results = [_write_recording(t) for t in tasks]
    errors = {part[2]: err for task, res in zip(tasks, results, strict=True) for part, err in zip(task[1], res, strict=True) if err}
    if errors:
        log.warning("%d no-bird stretch(es) could not be decoded and are left out (first: %s)", len(errors),
                    next(iter(errors.values())))
        table = table[[str(partial / f) not in errors for f in table["file"]]]
    write_csv(partial / NOBIRD_FILE, table[list(NOBIRD_COLUMNS)], float_format=None)
    seconds = float((table["end_s"] - table["start_s"]).sum())
    log.info("no-bird: %d windows in %d stretches (%.1f min) written to %s/", int(table["windows"].sum()), len(table),
             seconds / 60, NOBIRD_DIR)
    return {"nobird_windows": int(table["windows"].sum()), "nobird_stretches": int(len(table)),
            "nobird_s": round(seconds, 3), "nobird_by_split": {str(k): int(v) for k, v in
                                                               table.groupby("split")["windows"].sum().items()}}
