"""A trained ``birdnet-*`` head on raw audio: BirdNET embeddings -> per-window scores.

How BirdNET's 3 s windows (every :data:`~birdspec.birdnet.geometry.EMBED_HOP_S` = 1 s) map onto the
requested output windows (``window_s`` / ``hop_s``, e.g. 5 s / 5 s as the CNN models) is owned by
:mod:`birdspec.birdnet.geometry` (:func:`output_windows`, :func:`assign_windows`): an output window is
scored from the BirdNET windows its head's window rule gives it (those centred in it: 5 for 5 s windows;
heads saved before the rule was recorded: those fully inside it, 3), pooled like in training.

Scores are the checkpoint's activation at its temperature (:mod:`birdspec.models.activation`: softmax, or
softmax with the implicit no-bird class for heads trained with no-bird samples). Cost: BirdNET runs
``3 / embed_hop_s`` times per 3 s of audio (``embed_hop_s=3`` is cheapest but then a 5 s window sees one
3 s window).

Output windows: pass the caller's own ``bounds_s`` (``(M, 2)`` start/end
seconds, e.g. from :mod:`birdspec.windowing`) so both agree; without
them, :func:`output_windows` applies the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from birdspec.birdnet.backend import BIRDNET_SAMPLE_RATE_HZ, WINDOW_SAMPLES, BirdnetBackbone, to_birdnet_rate
from birdspec.birdnet.geometry import (
    EMBED_HOP_S,
    WINDOW_RULE,
    assign_windows,
    check_window_rule,
    embed_window_starts,
    output_windows,
    window_rule,
)
from birdspec.config import SAMPLE_RATE_HZ as STORE_RATE_HZ
from birdspec.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from birdspec.models.checkpoint import Checkpoint

log = logging.getLogger(__name__)

__all__ = ["EMBED_HOP_S", "BirdnetAudioClassifier", "WindowProbabilities", "assign_windows", "output_windows",
           "predict_windows"]

EMBED_CHUNK_WINDOWS = 64
"""BirdNET windows materialised at once (bounds memory on long recordings)."""


@dataclass(frozen=True)
class WindowProbabilities:
    """Per-output-window predictions.

    Attributes:
        probs: ``(M, K)`` scores in ``classes`` order (the head's activation: softmax, or softmax with
            the implicit no-bird class, whose ``1 - sum`` is "no bird").
        starts_s / ends_s: ``(M,)`` window bounds in seconds (ends clipped to the recording).
        classes: the checkpoint's labels.
    """

    probs: np.ndarray
    starts_s: np.ndarray
    ends_s: np.ndarray
    classes: tuple[str, ...]


class BirdnetAudioClassifier:
    """A ``birdnet-*`` head with the BirdNET backbone in front: raw audio -> window scores.

    Args:
        head: a trained head (``(B, W, 1024)`` -> ``(B, K)`` logits), e.g. from
            :meth:`~birdspec.models.checkpoint.Checkpoint.build_model`.
        backbone: a :class:`BirdnetBackbone` (default: a new one on all cores).
        classes: the head's labels (default ``class_0 ...``).
        embed_hop_s: hop of the BirdNET windows (default :data:`EMBED_HOP_S`, 1 s).
        activation / temperature: how logits become scores (:mod:`birdspec.models.activation`; a
            checkpoint's own with :meth:`from_checkpoint`).
        rule: which BirdNET windows an output window pools (:mod:`birdspec.birdnet.geometry`; a
            checkpoint's own with :meth:`from_checkpoint`).
    """

    def __init__(
        self,
        head: nn.Module,
        backbone: BirdnetBackbone | None = None,
        *,
        classes: Sequence[str] | None = None,
        embed_hop_s: float = EMBED_HOP_S,
        activation: str = "softmax",
        temperature: float = 1.0,
        rule: str = WINDOW_RULE,
    ) -> None:
        from birdspec.models.activation import check_activation

        if embed_hop_s <= 0:
            raise ConfigError(f"embed_hop_s must be positive, got {embed_hop_s}")
        self.head = head.eval()
        self.backbone = backbone if backbone is not None else BirdnetBackbone()
        num_classes = int(getattr(head, "num_classes", 0) or 0)
        self.classes = tuple(classes) if classes is not None else tuple(f"class_{i}" for i in range(num_classes))
        self.embed_hop_s = float(embed_hop_s)
        self.activation = check_activation(activation)
        self.temperature = float(temperature)
        self.rule = check_window_rule(rule)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Mapping[str, Any] | str | Path | Checkpoint,
        *,
        backbone: BirdnetBackbone | None = None,
        num_threads: int | None = None,
        embed_hop_s: float = EMBED_HOP_S,
    ) -> BirdnetAudioClassifier:
        """From a checkpoint (file, run folder, dict or :class:`~birdspec.models.checkpoint.Checkpoint`) of a ``birdnet-*`` head."""
        from birdspec.models.checkpoint import read_checkpoint

        ckpt = read_checkpoint(checkpoint)
        if ckpt.input != "embedding":
            raise CheckpointError(f"{ckpt.source}: model {ckpt.name!r} is not a BirdNET head")
        backbone = backbone or BirdnetBackbone(num_threads=num_threads)
        return cls(ckpt.build_model(), backbone, classes=ckpt.classes, embed_hop_s=embed_hop_s,
                   activation=ckpt.info.activation, temperature=ckpt.info.temperature, rule=window_rule(ckpt.model))

    def embed(self, wave: np.ndarray, *, sample_rate_hz: int = STORE_RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
        """BirdNET embeddings of a recording: ``((N, 1024) float32, starts_s (N,))``.

        Windows follow :func:`~birdspec.birdnet.geometry.embed_window_starts` (full 3 s windows every
        ``embed_hop_s``; a shorter recording gives one zero-padded window), made
        :data:`EMBED_CHUNK_WINDOWS` at a time so memory stays bounded on long recordings.
        """
        from birdspec.windowing import fit_window

        x = to_birdnet_rate(np.asarray(wave, dtype=np.float32).reshape(-1), sample_rate_hz=sample_rate_hz)
        starts = embed_window_starts(x.shape[0], embed_hop_s=self.embed_hop_s)
        parts = []
        for i in range(0, starts.size, EMBED_CHUNK_WINDOWS):
            chunk = np.stack([fit_window(x, length=WINDOW_SAMPLES, fill="pad", start=int(s)) for s in starts[i : i + EMBED_CHUNK_WINDOWS]])
            parts.append(self.backbone.embed(chunk))
        return np.concatenate(parts), starts / BIRDNET_SAMPLE_RATE_HZ

    @torch.no_grad()
    def logits_embeddings(self, embeddings: np.ndarray, starts_s: np.ndarray, bounds_s: np.ndarray, *, duration_s: float) -> np.ndarray:
        """Head logits ``(M, K)`` for output windows ``bounds_s`` ``(M, 2)`` from window embeddings."""
        groups = assign_windows(starts_s, bounds_s, duration_s=duration_s, rule=self.rule)
        if not groups:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        w = max(len(g) for g in groups)
        x = torch.zeros(len(groups), w, embeddings.shape[1])
        mask = torch.zeros(len(groups), w, dtype=torch.bool)
        emb = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        for i, g in enumerate(groups):
            x[i, : len(g)] = emb[torch.from_numpy(g)]
            mask[i, : len(g)] = True
        param = next(self.head.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        return cast(np.ndarray, self.head(x.to(device), mask.to(device)).float().cpu().numpy())  # Module calls are typed Any

    def predict_embeddings(self, embeddings: np.ndarray, starts_s: np.ndarray, bounds_s: np.ndarray, *, duration_s: float) -> np.ndarray:
        """Head scores ``(M, K)`` (its activation) for output windows ``bounds_s`` from window embeddings."""
        from birdspec.models.activation import scores_numpy

        logits = self.logits_embeddings(embeddings, starts_s, bounds_s, duration_s=duration_s)
        return scores_numpy(logits, self.activation, temperature=self.temperature)

    def predict_windows(
        self,
        wave: np.ndarray,
        *,
        sample_rate_hz: int = STORE_RATE_HZ,
        window_s: float = 5.0,
        hop_s: float = 5.0,
        bounds_s: np.ndarray | Sequence[tuple[float, float]] | None = None,
        min_partial_s: float = 1.0,
    ) -> WindowProbabilities:
        """Per-output-window scores of a mono recording ``(n,)`` at ``sample_rate_hz``."""
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        duration_s = wave.shape[0] / sample_rate_hz
        bounds = (
            output_windows(duration_s, window_s=window_s, hop_s=hop_s, min_partial_s=min_partial_s)
            if bounds_s is None
            else np.asarray(bounds_s, dtype=np.float64).reshape(-1, 2)
        )
        emb, starts = self.embed(wave, sample_rate_hz=sample_rate_hz)
        probs = self.predict_embeddings(emb, starts, bounds, duration_s=duration_s)
        return WindowProbabilities(probs, bounds[:, 0].copy(), np.minimum(bounds[:, 1], max(duration_s, 0.0)), self.classes)


def predict_windows(
    checkpoint: Mapping[str, Any] | str | Path,
    wave_32k: np.ndarray,
    *,
    window_s: float = 5.0,
    hop_s: float = 5.0,
    bounds_s: np.ndarray | Sequence[tuple[float, float]] | None = None,
    embed_hop_s: float = EMBED_HOP_S,
    backbone: BirdnetBackbone | None = None,
) -> np.ndarray:
    """``(num_windows, K)`` scores (the checkpoint's activation) of a ``birdnet-*`` checkpoint on 32 kHz audio ``(n,)``.

    A convenience wrapper of :class:`BirdnetAudioClassifier` (builds the
    backbone unless given one; reuse a classifier for many files).
    """
    clf = BirdnetAudioClassifier.from_checkpoint(checkpoint, backbone=backbone, embed_hop_s=embed_hop_s)
    return clf.predict_windows(wave_32k, window_s=window_s, hop_s=hop_s, bounds_s=bounds_s).probs
