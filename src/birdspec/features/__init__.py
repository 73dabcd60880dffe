"""Spectrogram types, each defined once (:mod:`~birdspec.features.definition`), with their tables
(:mod:`~birdspec.features.tables`, NumPy), the NumPy/SciPy path of the fast CPU prediction
(:mod:`~birdspec.features.numpy_frontend`), the PyTorch module (:mod:`~birdspec.features.torch_frontend`)
and the input normalisations that follow them (:mod:`~birdspec.features.input_norm`).

The types are listed in :data:`birdspec.config.FRONTENDS`; their settings are a
:class:`~birdspec.config.FrontendConfig` (``FrontendConfig.for_kind("pcen", pcen_gain=0.9)``).
Names are imported lazily, so the NumPy parts load without PyTorch.
"""

from __future__ import annotations

from birdspec.lazy import lazy_exports

_EXPORTS = {
    "Frontend": "birdspec.features.torch_frontend",
    "build_frontend": "birdspec.features.torch_frontend",
    "FRONTEND_TYPES": "birdspec.config",
    "finish": "birdspec.features.definition",
    "mel_filterbank": "birdspec.features.tables",
    "mel_band_of": "birdspec.features.tables",
    "filterbank": "birdspec.features.tables",
    "frequency_axis": "birdspec.features.tables",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports("birdspec.features", _EXPORTS)
