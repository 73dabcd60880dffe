"""``birdspec serve``: a local web app to see, hear and verify predictions, and to train from what was verified.

Needs the ``app`` extra (``pip install -e ".[app]"``: FastAPI and uvicorn). Pages (static files in
``static/``): Analyze (predict a recording in the background, a tiled zoomable spectrogram with
species tracks, playback), Review (verdicts per detection, precision per score bin, manifest
export), Train from verified, and Runs. Modules: :mod:`~birdspec.app.server` (the app),
:mod:`~birdspec.app.api_analyze` and :mod:`~birdspec.app.api_review` (routes),
:mod:`~birdspec.app.paths` (served folders), :mod:`~birdspec.app.tiles` (spectrogram tiles),
:mod:`~birdspec.app.jobs` (background work), :mod:`~birdspec.app.predictions`,
:mod:`~birdspec.app.review`.
"""
