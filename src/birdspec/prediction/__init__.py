"""Prediction on recordings of any length: the predictor, its streaming engine and runtimes, outputs and
export.

``predictor`` (the API) -> ``engine`` + ``windower`` (decode in blocks, cut windows by
:mod:`birdspec.windowing`, batch) -> a runtime chosen by ``loader``: ``onnx_runtime`` (the CPU
default: NumPy log-mel + ONNX Runtime over the checkpoint's runtime export) or ``torch_runtime``
(CUDA), or :mod:`birdspec.prediction.birdnet_runtime` for BirdNET heads -> ``outputs`` (CSV, Raven,
Audacity, BirdCLEF, Parquet; ``write.predict_into`` is the loop from recordings to those files).
``export`` writes whole-model ONNX / TorchScript files (BirdCLEF submissions are scored by
:mod:`birdspec.evaluation.scoring`). This package imports nothing heavy itself, so ``birdspec predict``
stays free of PyTorch when the checkpoint has its runtime export.
"""

from __future__ import annotations

from birdspec.lazy import lazy_exports

_EXPORTS = {
    "Predictor": "birdspec.prediction.predictor",
    "FileResult": "birdspec.prediction.sources",
    "clip_times": "birdspec.windowing",
    "export_checkpoint": "birdspec.prediction.export",
    "predict_into": "birdspec.prediction.write",
    "PredictionWriter": "birdspec.prediction.outputs",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports("birdspec.prediction", _EXPORTS)
