"""Resuming an experiment folder: which training settings may change, and the refusal when others did.

A sweep, a cross-validation and a learning curve write their settings into their folder and resume when
run again with the same ones. :func:`comparable_config` is the one rule for comparing training settings:
a stored config is completed with today's defaults (fields added since it was written) and the
:data:`RESUMABLE_FIELDS` (where and how it runs, how thresholds are chosen after training: not what is
trained) are left out; :func:`refuse_other_settings` says what differs and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from birdspec.errors import ConfigError

RESUMABLE_FIELDS = ("device", "workers", "progress_bar", "precision", "devices", "max_minutes", "thresholds_on",
                    "temperature_scaling")
"""Training settings a resumed experiment may change: where and how it runs, and how the detection thresholds
are chosen after training (not what is trained)."""


def comparable_config(train_config: Mapping[str, Any], *, ignore: Sequence[str] = ()) -> dict[str, Any]:
    """``train_config`` (a :meth:`~birdspec.training.TrainConfig.to_dict`, stored or new) completed with
    today's defaults, without :data:`RESUMABLE_FIELDS` and ``ignore`` (e.g. what a sweep varies)."""
    from birdspec.training.config import TrainConfig

    done = TrainConfig.completed(train_config) if train_config else {}
    return {k: v for k, v in done.items() if k not in (*RESUMABLE_FIELDS, *ignore)}


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"key old -> new"`` for every key of ``new`` whose value differs in ``old``."""
    return [f"{k} {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]


def refuse_other_settings(folder: Path, what: str, diffs: Sequence[str], *, resume: str = "resume it") -> None:
    """Raise when ``diffs`` is not empty: ``folder`` holds ``what`` made with other settings.

    Raises:
        ConfigError: naming the differences and what to do.
    """
    if diffs:
        raise ConfigError(f"{folder} holds {what} with other settings ({'; '.join(diffs)}); "
                          f"{resume} with the same settings, or choose another --out")
