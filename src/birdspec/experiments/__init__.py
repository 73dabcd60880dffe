"""Experiments that train several runs and evaluate them: the optimizer x learning-rate sweep and
K-fold cross-validation.

- :func:`~birdspec.experiments.sweep.run_sweep` (``birdspec sweep``)
- :func:`~birdspec.experiments.cv.run_cv` (``birdspec cv``)

They sit after training and evaluation in the pipeline: each trial or fold is an
ordinary run directory (:mod:`birdspec.training.rundir`), evaluated with
:mod:`birdspec.evaluation`.
"""
