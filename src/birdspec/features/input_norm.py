"""What the CNN sees: the input normalisations of a spectrogram, each defined once.

:func:`normalise` is written against a tiny array interface (:class:`NormOps`) that NumPy
(:data:`NUMPY_NORM_OPS`, the fast CPU path) and PyTorch (``TORCH_NORM_OPS`` in
:mod:`birdspec.features.torch_frontend`: training, evaluation, the ONNX export) both implement, so the
three paths compute the same thing. ``x`` is ``(..., F, T)`` (rows, frames) of one window.

``instance``
    ``(x - mean) / (std + eps_db)`` per map: gain-invariant, and blind to level: a -80 dBFS noise bed is
    stretched to the same contrast as a loud song (the study's choice).
``band``
    each row's (lower) median over time, its noise floor, removed first, then as ``instance``.
``level`` (the default of new runs on dB spectrograms)
    ``(y - median_t(y) - center_db) / scale_db`` with ``y = max(x, floor_db)``: values under an
    **absolute** floor (``floor_db``: what white noise at :data:`LEVEL_FLOOR_DBFS` gives in this
    spectrogram) count as silence, each row's noise floor is removed, and the result is in fixed units:
    ``center_db`` and ``scale_db`` are the mean and standard deviation of ``y - median_t(y)`` over windows
    of the **training** recordings (:func:`fit_level`, stored with the model), never stretched per window.
    A quiet bed stays near ``-center/scale``, a call stands out by its dB above the floor, and a window
    scaled by 0.01 loses what falls under the floor: level matters.
``none``
    the spectrogram as it is.

The medians are lower medians (``sort`` in PyTorch, which the ONNX exporter can express; ``partition``
in NumPy). :func:`norm_settings` resolves a kind into the settings a checkpoint stores (the floor is
computed once, from the frontend's own tables, and travels with the model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, cast

import numpy as np

from birdspec.config import DB_FRONTENDS, INPUT_NORM_EPS_DB, INPUT_NORMS, FrontendConfig
from birdspec.errors import ConfigError

LEVEL_FLOOR_DBFS = -70.0
"""The ``level`` norm's absolute floor: spectrogram cells under what white noise at this RMS level (dB re
full scale) gives count as silence (dithered silence is ~-101 dBFS, a quiet night ~-60 to -70 dBFS)."""
LEVEL_SCALE_DB = 20.0
"""The ``level`` norm's unit before it is fitted to training data (:func:`fit_level`)."""
LEVEL_FIT_WINDOWS = 256
"""Training windows :func:`fit_level` measures (evenly spread over the training samples)."""


class NormOps(Protocol):
    """The array operations :func:`normalise` needs."""

    def lower_median_last(self, x: Any) -> Any: ...  # (..., F, T) -> (..., F, 1)
    def mean_std(self, x: Any) -> tuple[Any, Any]: ...  # over the last two axes, kept; unbiased std
    def clamp_min(self, x: Any, value: float) -> Any: ...


class NumpyNormOps:
    def lower_median_last(self, x: np.ndarray) -> np.ndarray:
        k = (x.shape[-1] - 1) // 2
        return np.partition(x, k, axis=-1)[..., k : k + 1]

    def mean_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[-2] * x.shape[-1]
        mean = x.mean(axis=(-2, -1), keepdims=True, dtype=np.float64)
        var = np.square(x - mean.astype(np.float32)).sum(axis=(-2, -1), keepdims=True, dtype=np.float64) / max(1, n - 1)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)

    def clamp_min(self, x: np.ndarray, value: float) -> np.ndarray:
        return cast(np.ndarray, np.maximum(x, np.float32(value)))  # NumPy types a ufunc's result as Any


NUMPY_NORM_OPS = NumpyNormOps()


def normalise(ops: NormOps, x: Any, settings: Mapping[str, Any]) -> Any:
    """The input norm ``settings`` (:func:`norm_settings`) of spectrograms ``x`` ``(..., F, T)``."""
    kind = settings["kind"]
    if kind == "none":
        return x
    if kind == "level":
        y = ops.clamp_min(x, float(settings["floor_db"]))
        return (y - (ops.lower_median_last(y) + float(settings.get("center_db", 0.0)))) * (1.0 / float(settings["scale_db"]))
    if kind == "band":
        x = x - ops.lower_median_last(x)
    elif kind != "instance":
        raise ConfigError(f"unknown input norm {kind!r}; one of {', '.join(INPUT_NORMS)}")
    mean, std = ops.mean_std(x)
    return (x - mean) / (std + float(settings.get("eps_db", INPUT_NORM_EPS_DB)))


def white_noise_db(config: FrontendConfig, *, dbfs: float) -> float:
    """The expected value, in the spectrogram's dB, of white noise at ``dbfs`` RMS: the median over rows of
    ``10 log10(sigma^2 * sum(window^2) * sum_k filterbank[row, k])`` (power spectrum, ``power=2``)."""
    from birdspec.features import tables

    window = tables.analysis_window(config)
    fb = tables.filterbank(config)
    gain = float(np.sum(np.square(window, dtype=np.float64))) * float(np.median(fb.sum(axis=1)))
    power = 10.0 ** (dbfs / 10.0) * gain
    if config.power != 2.0:
        power = power ** (config.power / 2.0)
    return 10.0 * math.log10(max(power, config.amin))


def norm_settings(kind: str, frontend: FrontendConfig) -> dict[str, Any]:
    """The settings of input norm ``kind`` for spectrograms of ``frontend`` (what a checkpoint stores).

    Raises:
        ConfigError: an unknown kind, or ``level`` on a spectrogram that is not in dB (pcen, mfcc).
    """
    if kind not in INPUT_NORMS:
        raise ConfigError(f"unknown input norm {kind!r}; choose one of {', '.join(INPUT_NORMS)}")
    if kind in ("instance", "band"):
        return {"kind": kind, "eps_db": INPUT_NORM_EPS_DB}
    if kind == "none":
        return {"kind": kind}
    if frontend.kind not in DB_FRONTENDS:
        raise ConfigError(
            f"input norm 'level' needs a spectrogram in dB ({', '.join(DB_FRONTENDS)}), not {frontend.kind}; "
            "use --input-norm band or instance with it"
        )
    return {
        "kind": "level",
        "floor_dbfs": LEVEL_FLOOR_DBFS,
        "floor_db": round(white_noise_db(frontend, dbfs=LEVEL_FLOOR_DBFS), 4),
        "center_db": 0.0,
        "scale_db": LEVEL_SCALE_DB,
        "fitted_on": "",
    }


def fit_level(settings: Mapping[str, Any], spectrograms: np.ndarray, *, what: str) -> dict[str, Any]:
    """``level`` settings whose ``center_db`` / ``scale_db`` are the mean / standard deviation of the
    floored, floor-removed ``spectrograms`` ``(n, ..., F, T)`` (dB): the training data's own units, so
    the network's first layer sees inputs of about unit scale from the start. ``what`` says which windows.
    Other kinds come back unchanged."""
    out = dict(settings)
    if out.get("kind") != "level":
        return out
    x = np.asarray(spectrograms, dtype=np.float32)
    y = NUMPY_NORM_OPS.clamp_min(x, float(out["floor_db"]))
    d = (y - NUMPY_NORM_OPS.lower_median_last(y)).astype(np.float64)
    if d.size == 0:
        return out
    out["center_db"] = round(float(d.mean()), 4)
    out["scale_db"] = round(max(float(d.std()), 1.0), 4)  # at least 1 dB: a silent training set stays finite
    out["fitted_on"] = what
    return out


def default_norm(frontend_kind: str) -> str:
    """The input norm of a new run that does not choose one: ``level`` on dB spectrograms, else ``band``."""
    return "level" if frontend_kind in DB_FRONTENDS else "band"
