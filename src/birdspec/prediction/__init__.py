"""Prediction on recordings of any length: windowing, the fast runtime, outputs, export and scoring.

Import the pieces from their modules (``birdspec.prediction.predictor.Predictor``, ...);
this package imports nothing heavy itself, so ``birdspec predict`` stays free of
PyTorch when the ONNX runtime of a checkpoint is cached.
"""

from __future__ import annotations

__all__ = ["Predictor", "FileResult", "clip_times", "export_checkpoint", "score_soundscapes"]


def __getattr__(name: str):
    if name in ("Predictor", "FileResult"):
        from birdspec.prediction import predictor

        return getattr(predictor, name)
    if name == "clip_times":
        from birdspec.windowing import clip_times

        return clip_times
    if name == "export_checkpoint":
        from birdspec.prediction.export import export_checkpoint

        return export_checkpoint
    if name == "score_soundscapes":
        from birdspec.prediction.scoring import score_soundscapes

        return score_soundscapes
    raise AttributeError(name)
