"""BirdNET + a trained ``birdnet-*`` head as a prediction runtime (needs the optional extra).

A :class:`~birdspec.prediction.runtime_types.RecordingRuntime`: the predictor gives it
a whole decoded recording and the output windows (from
:mod:`birdspec.windowing`, as for every model); BirdNET embeds its own 3 s
windows every second at 48 kHz and the head scores each output window from
the BirdNET windows its window rule gives it (:mod:`birdspec.birdnet.geometry`). Memory grows
with the length of a recording (about 0.2 GB per hour of audio besides
BirdNET itself), as BirdNET's windows are embedded over the whole recording.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from birdspec.birdnet.predict import BirdnetAudioClassifier
from birdspec.config import SAMPLE_RATE_HZ
from birdspec.models.checkpoint import Checkpoint
from birdspec.prediction.runtime_types import RecordingRuntime


class BirdnetHeadRuntime(RecordingRuntime):
    """Scores recordings with BirdNET embeddings and a ``birdnet-*`` head checkpoint.

    Raises:
        DependencyError: the ``birdspec[birdnet]`` extra is not installed.
    """

    def __init__(self, ckpt: Checkpoint, *, threads: int | None = None, activation: str = "auto") -> None:
        info = ckpt.info.with_activation(activation)
        # the head scores every output window on its own, whatever the training encoding was
        info = dataclasses.replace(info, encoding=dataclasses.replace(info.encoding, name="window"))
        super().__init__(info, backend="birdnet", device="cpu")
        self.classifier = BirdnetAudioClassifier.from_checkpoint(ckpt, num_threads=threads)

    def score(self, wave: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Head logits ``(M, K)`` of the output windows ``bounds`` (samples) of a 32 kHz recording."""
        sr = SAMPLE_RATE_HZ
        bounds_s = np.asarray(bounds, dtype=np.float64).reshape(-1, 2) / sr
        emb, starts = self.classifier.embed(wave, sample_rate_hz=sr)
        return self.classifier.logits_embeddings(emb, starts, bounds_s, duration_s=wave.shape[0] / sr)
