"""What the predictor reads and returns: audio files found under paths, progress bars, :class:`FileResult`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdspec import audio
from birdspec.errors import BirdspecError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class FileResult:
    """Scores of one recording (or why it failed).

    Attributes:
        path: the recording (or the name given to :meth:`Predictor.predict_array`).
        name: path relative to the folder it was found in (for output file names).
        duration_s: decoded length (0 when it failed before decoding).
        windows: one row per scored window: ``window`` (index), ``start_s``, ``end_s``
            (true end), and for stack10 checkpoints ``context_start_s``, ``context_end_s``.
        scores: ``(len(windows), K)`` float32 class scores.
        error: None, or the reason the recording was skipped.
        warning: None, or why the scores may be incomplete (a cut-off file: what decodes is scored).
    """

    path: str
    name: str
    duration_s: float
    windows: pd.DataFrame
    scores: np.ndarray
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def collect_audio_paths(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Files and folders (searched recursively for audio extensions) -> ``[(path, name)]``.

    ``name`` is the path relative to the folder argument (the file name for file
    arguments). Files given explicitly are kept whatever their extension.

    Raises:
        DataError: a path does not exist, or nothing to predict on.
    """
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and audio.is_audio_file(q))
            if not found:
                log.warning("%s: no audio files (%s) in this folder", p, ", ".join(audio.AUDIO_EXTENSIONS))
            for q in found:
                if q.resolve() not in seen:
                    seen.add(q.resolve())
                    out.append((q, str(q.relative_to(p))))
        elif p.exists():
            if p.resolve() not in seen:
                seen.add(p.resolve())
                out.append((p, p.name))
        else:
            raise DataError(f"{p}: no such file or folder")
    if not out:
        raise DataError("no audio files to predict on; pass recordings or folders that contain them")
    return out


def empty_windows(stacked: bool) -> pd.DataFrame:
    cols = ["window", "start_s", "end_s"] + (["context_start_s", "context_end_s"] if stacked else [])
    windows: pd.DataFrame = pd.DataFrame({c: pd.Series(dtype="int64" if c == "window" else "float64") for c in cols})
    return windows


def tqdm_progress(items: Sequence[tuple[Path, str]], *,
                  total_s: float | None = None) -> tuple[Callable[[float, int], None], Callable[[], None]]:
    """Two tqdm bars on stderr: audio seconds (``total_s``, else summed from the file headers) and files."""
    from tqdm import tqdm

    if total_s is None:
        total_s = 0.0
        for p, _n in items:
            try:
                total_s += audio.info(p).duration_s
            except BirdspecError:
                pass
    secs = tqdm(total=round(total_s, 1), unit="s", desc="audio", file=sys.stderr, position=0, dynamic_ncols=True, smoothing=0.1)
    files = tqdm(total=len(items), unit="file", desc="files", file=sys.stderr, position=1, dynamic_ncols=True)

    def update(seconds: float, n_files: int) -> None:
        if seconds:
            secs.update(min(seconds, max(0.0, secs.total - secs.n)))
        if n_files:
            files.update(n_files)

    def close() -> None:
        secs.close()
        files.close()

    return update, close
