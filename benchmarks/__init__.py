"""birdspec's benchmarks: one script per question (see benchmarks/README.md), and what they share.

:mod:`benchmarks.common` holds the shared parts: the machine description, the memory measurements, the
reed-warbler protocol's data preparation and the logging setup. :mod:`benchmarks.keep` keeps a long
run's small results under version control. Every script runs as a file from the repository root
(``python benchmarks/NAME.py``) or as a module (``python -m benchmarks.NAME``).
"""
