"""Evaluation: metrics, figures, reports and run comparison (sweeps and cross-validation: :mod:`birdspec.experiments`).

- :func:`evaluate_run` / :func:`evaluate_checkpoint` (``birdspec evaluate``): recording- and
  sample-level metrics, ``predictions.csv``, confusion matrix and per-class figures.
- :func:`compare_runs` (``birdspec compare``): table, overlaid curves, HTML report.
- :class:`Section` / :func:`write_report`: self-contained HTML reports (figures embedded).
- :func:`score_soundscapes` (``birdspec score-soundscapes``): BirdCLEF's row-wise micro F1 of a submission.

Names are imported lazily, so ``import birdspec.evaluation.metrics`` stays light.
"""

from __future__ import annotations

from birdspec.lazy import lazy_exports

_EXPORTS = {
    "evaluate_run": "birdspec.evaluation.evaluate",
    "evaluate_checkpoint": "birdspec.evaluation.evaluate",
    "EvaluationResult": "birdspec.evaluation.evaluate",
    "compare_runs": "birdspec.evaluation.compare",
    "CompareResult": "birdspec.evaluation.compare",
    "Section": "birdspec.evaluation.report",
    "write_report": "birdspec.evaluation.report",
    "classification_metrics": "birdspec.evaluation.metrics",
    "profile_model": "birdspec.evaluation.profile",
    "ModelProfile": "birdspec.evaluation.profile",
    "score_soundscapes": "birdspec.evaluation.scoring",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports('birdspec.evaluation', _EXPORTS)
