"""Predict recordings into output files: the one loop of ``birdspec predict`` (one output), the review app
(a recording's tables) and the Python API.

:func:`predict_into` streams every result of :meth:`~birdspec.prediction.predictor.Predictor.predict_paths`
to one or more :class:`~birdspec.prediction.outputs.PredictionWriter` and publishes their files whole
when every recording was seen: an interrupted or failed run (a full disk too) publishes nothing
half-written, and when no recording could be scored it is an error and the outputs keep what they held.

Typical use::

    from birdspec.prediction import Predictor, predict_into
    from birdspec.prediction.outputs import PredictionWriter

    with Predictor("runs/mnv2") as p:
        writer = PredictionWriter("raven", "selections/", class_info=p.class_info, min_conf=p.min_conf, top_k=p.top_k)
        summary = predict_into(p, ["field/"], [writer])
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdspec.errors import AudioError
from birdspec.fileio import writing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionSummary:
    """What :func:`predict_into` did.

    Attributes:
        recordings: recordings scored; failed: recordings that could not be (listed in the failed file).
        audio_s / wall_s: seconds of audio scored, and of wall time.
        rows: rows (or lines) the writers wrote, in all.
        failed_file: where the first writer listed the failed recordings (None when none failed).
    """

    recordings: int
    failed: int
    audio_s: float
    wall_s: float
    rows: int
    failed_file: Path | None

    @property
    def real_time_factor(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else float("inf")


def nothing_scored(failed: Sequence[dict[str, str]], *, where: str) -> AudioError:
    """The error of a run where no recording could be scored, naming them and why (``where``: the output)."""
    path, error = failed[0]["path"], failed[0]["error"]
    first = f"{path}: {error.removeprefix(f'{path}: ')}"
    what = first if len(failed) == 1 else f"none of the {len(failed)} recordings could be scored (the first, {first})"
    return AudioError(f"{what}; nothing was scored, so nothing was written to {where} (an older one stays as it was)")


def predict_into(predictor: Any, paths: Iterable[str | Path], writers: Sequence[Any], *, strict: bool = False,
                 progress: bool = False, guard: str | Path | None = None) -> PredictionSummary:
    """Score ``paths`` (files and folders) with ``predictor`` and write every result to each of ``writers``.

    Args:
        predictor: a :class:`~birdspec.prediction.predictor.Predictor`.
        writers: :class:`~birdspec.prediction.outputs.PredictionWriter` objects; the first one lists the
            recordings that failed in its failed file.
        strict: stop at the first recording that cannot be decoded.
        progress: tqdm bars on stderr.
        guard: the output a disk error names (``--out``); None: the writers' own messages.

    Raises:
        AudioError: no recording could be scored (the outputs keep what they held), or ``strict`` and one failed.
    """
    t0 = time.perf_counter()
    n_ok = n_failed = 0
    audio_s = 0.0
    failed_file = None
    try:
        with writing(guard) if guard is not None else contextlib.nullcontext():  # a full disk: the message names it
            for result in predictor.predict_paths(paths, strict=strict, progress=progress):
                for w in writers:
                    w.write(result)
                if result.ok:
                    n_ok += 1
                    audio_s += result.duration_s
                else:
                    n_failed += 1
            if n_failed and not n_ok:  # nothing scored is no success: the outputs keep what they held
                raise nothing_scored(writers[0].failed, where=str(guard or "the output"))
            for i, w in enumerate(writers):
                closed = w.close(write_failed=i == 0)
                failed_file = failed_file or closed
    except BaseException:
        for w in writers:
            w.abort()  # nothing half-written is published, and no temporary file stays
        raise
    return PredictionSummary(n_ok, n_failed, audio_s, time.perf_counter() - t0, sum(w.rows for w in writers), failed_file)
