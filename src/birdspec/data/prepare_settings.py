"""What a ``prepare`` run is asked for, and what it keeps: :class:`PrepareSettings`, :func:`skip_reason`.

This module owns the options that change what :func:`birdspec.data.prepare.prepare`
writes (:class:`PrepareSettings`, stored as ``settings`` in ``dataset.json``:
a complete dataset with equal settings is reused) and the rules that leave a
recording out, with the reason written to ``skipped.csv``: a low rating
(:func:`rating_reason`, before decoding), then, once decoded, missing,
empty, unreadable, non-finite, all silent (peak below :data:`SILENCE_PEAK`),
shorter than ``min_duration_s`` or too short for the encoding under
``short_policy='drop'`` (:func:`skip_reason`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdspec.config import LAYOUTS, SAMPLE_RATE_HZ, EncodingConfig, to_dict
from birdspec.data.prepared import min_samples_kept
from birdspec.data.species import split_names
from birdspec.errors import ConfigError

SILENCE_PEAK = 1e-4
"""A recording whose peak absolute amplitude is below this is "all silent"."""


@dataclass(frozen=True)
class PrepareSettings:
    """Every option that changes what ``prepare`` writes (not ``workers``/``progress``).

    Stored as ``settings`` in ``dataset.json``; a complete output directory
    with equal settings is reused as is.
    """

    source: str
    layout: str = "auto"
    species: tuple[str, ...] | None = None
    top_n: int | None = None
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    min_rating: float | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    val_fraction: float = 0.3
    folds: int | None = None
    seed: int = 0
    path_column: str | None = None
    label_column: str | None = None
    fold_column: str | None = None
    sample_rate_hz: int = SAMPLE_RATE_HZ
    annotations: Any = None  # AnnotationSettings (birdspec.data.annotation_windows) for prepare --annotations

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)}")
        if not isinstance(self.encoding, EncodingConfig):
            raise ConfigError(f"encoding must be an EncodingConfig, got {type(self.encoding).__name__}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.folds is not None and (isinstance(self.folds, bool) or int(self.folds) != self.folds or self.folds < 2):
            raise ConfigError(f"--folds must be an integer >= 2, got {self.folds}")
        if self.top_n is not None and (isinstance(self.top_n, bool) or int(self.top_n) != self.top_n or self.top_n < 1):
            raise ConfigError(f"--top-n must be a positive integer, got {self.top_n}")
        for name in ("min_duration_s", "max_duration_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds, got {value}")
        if self.min_rating is not None and not math.isfinite(self.min_rating):
            raise ConfigError(f"--min-rating must be a number, got {self.min_rating}")
        if self.min_duration_s and self.max_duration_s and self.min_duration_s > self.max_duration_s:
            raise ConfigError(
                f"--min-duration-s {self.min_duration_s:g} > --max-duration-s {self.max_duration_s:g}: "
                "nothing would be kept"
            )
        need = self.encoding.min_duration_s() if self.encoding.name == "stack10" else self.encoding.window_s
        if self.annotations is not None and self.encoding.name != "window":
            raise ConfigError("prepare --annotations makes window samples; use --encoding window")
        if self.max_duration_s is not None and self.encoding.short_policy == "drop" and self.max_duration_s < need:
            raise ConfigError(
                f"--max-duration-s {self.max_duration_s:g} is shorter than the {need:g} s the {self.encoding.name} "
                f"encoding needs under --short-policy drop: every recording would be dropped"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (as stored in ``dataset.json``)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["species"] = list(self.species) if self.species is not None else None
        d["encoding"] = to_dict(self.encoding)
        if self.annotations is None:  # datasets prepared before --annotations keep equal settings
            del d["annotations"]
        else:
            d["annotations"] = self.annotations.to_dict()
        return json.loads(json.dumps(d))


def settings_from_args(
    source: str | Path,
    *,
    species: str | Sequence[str] | None,
    encoding: EncodingConfig | None,
    min_rating: float | None,
    min_duration_s: float | None,
    max_duration_s: float | None,
    val_fraction: float,
    folds: int | None,
    seed: int,
    **options: Any,
) -> PrepareSettings:
    """:class:`PrepareSettings` from :func:`~birdspec.data.prepare.prepare`'s arguments.

    Normalised so that equal requests give equal settings: absolute source,
    order-free species, numbers as float/int; ``options`` are passed as they are.
    """
    species_list = None if species is None else tuple(sorted(set(split_names(species))))
    return PrepareSettings(
        source=os.path.abspath(source),
        species=species_list,
        encoding=encoding if encoding is not None else EncodingConfig(),
        min_rating=None if min_rating is None else float(min_rating),
        min_duration_s=None if min_duration_s is None else float(min_duration_s),
        max_duration_s=None if max_duration_s is None else float(max_duration_s),
        val_fraction=float(val_fraction),
        folds=None if folds is None else int(folds),
        seed=int(seed),
        **options,
    )


# --------------------------------------------------------------------------- what is kept


def _fmt_s(value: float, threshold: float) -> str:
    text = f"{value:.1f}"
    return f"{value:.3f}" if float(text) >= threshold else text


def skip_reason(
    result: dict[str, Any],
    *,
    settings: PrepareSettings,
) -> str | None:
    """Why a decoded recording is left out, or None to keep it."""
    if "error" in result:
        kind = result.get("kind", "unreadable")
        if kind == "empty":
            return "empty"
        if kind == "missing":
            return "missing: no such file"
        return f"unreadable: {result['error']}"
    n = int(result["num_samples"])
    if n == 0:
        return "empty"
    peak = result.get("peak")
    if peak is None:
        return "unreadable: non-finite samples"
    if peak < SILENCE_PEAK:
        return "all silent"
    sr = settings.sample_rate_hz
    duration = n / sr
    if settings.min_duration_s is not None and n < int(round(settings.min_duration_s * sr)):
        return f"duration {_fmt_s(duration, settings.min_duration_s)} s < min {settings.min_duration_s:g} s"
    enc = settings.encoding
    if enc.short_policy == "drop":
        need = min_samples_kept(enc, sample_rate_hz=sr)
        if n < need:
            return f"too short ({_fmt_s(duration, need / sr)} s < {need / sr:g} s, policy drop)"
    return None


def rating_reason(rating: float, min_rating: float | None) -> str | None:
    """Why ``rating`` is too low, or None. NaN and 0 (BirdCLEF's "no score") count as unrated and pass."""
    if min_rating is None or not math.isfinite(rating) or rating == 0 or rating >= min_rating:
        return None
    return f"rating {rating:g} < min {min_rating:g}"
