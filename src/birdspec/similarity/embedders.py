"""What an index embeds with: BirdNET's 1024-d embeddings, or a birdspec run's penultimate features.

Both cut a recording with prediction's windower (:class:`~birdspec.prediction.windower.Windower`: the
windows of ``birdspec predict``, :mod:`birdspec.windowing`): full windows every ``hop_s``, then the last
partial window when it holds at least 1 s (zero-padded to a full window, reported with its true end: the
``own`` partial source; prediction scores it on the recording's last window length of audio since 2026-12-07,
an index keeps the padded window so that the vectors of indexes built before stay comparable).

- ``birdnet``: 3 s windows; each window (32 kHz) is resampled to 48 kHz on its own and embedded by
  :class:`~birdspec.birdnet.backend.BirdnetBackbone` (1024-d). Needs ``birdspec[birdnet]``.
- a run folder or checkpoint file: the checkpoint's window (a ``window`` model; stack10 models score
  contexts, not windows) and its features before the final classifier layer
  (:meth:`~birdspec.prediction.predictor.Predictor.penultimate`: same checkpoint loading, frontend and
  normalisation as prediction).

Every vector is L2-normalised, so the similarity of two windows is the dot product of their vectors (cosine).
Recordings are decoded in blocks: memory stays flat for long files.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.config import SAMPLE_RATE_HZ
from birdspec.errors import AudioError, ConfigError
from birdspec.windowing import DEFAULT_MIN_PARTIAL_S, PARTIAL_OWN, WindowGeometry

log = logging.getLogger(__name__)

BIRDNET = "birdnet"
"""The ``--backbone`` name of BirdNET (anything else is a run folder or a checkpoint file)."""
EMBED_BATCH = 16
"""Windows per backbone call."""
INDEX_PARTIAL_SOURCE = PARTIAL_OWN
"""An index's trailing partial window is its own audio zero-padded (:data:`birdspec.windowing.PARTIAL_SOURCES`)."""


@dataclass(frozen=True)
class EmbeddedRecording:
    """The window vectors of one recording.

    Attributes:
        starts_s / ends_s: ``(N,)`` window bounds in seconds (a last partial window ends at the recording's end).
        vectors: ``(N, D)`` float32, L2-normalised.
        duration_s: decoded length.
        warning: None, or a note on the audio (non-finite samples scored as silence).
    """

    starts_s: np.ndarray
    ends_s: np.ndarray
    vectors: np.ndarray
    duration_s: float
    warning: str | None = None


def unit_vectors(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` ``(N, D)`` scaled to unit length (all-zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class ArchiveEmbedder:
    """A backbone on 32 kHz windows; subclasses set :attr:`geometry`, :attr:`dim` and :meth:`embed_windows`.

    Attributes:
        name: 'birdnet' or 'run'.
        geometry: the windows (32 kHz samples).
        dim: the vector size.
        settings: what decides the vectors (stored with the index; another value means other vectors).
    """

    name = ""
    geometry: WindowGeometry
    dim: int
    settings: dict[str, Any]

    @property
    def window_s(self) -> float:
        return self.geometry.window_samples / SAMPLE_RATE_HZ

    @property
    def hop_s(self) -> float:
        return self.geometry.hop_samples / SAMPLE_RATE_HZ

    def embed_windows(self, waves: np.ndarray) -> np.ndarray:
        """``(n, W)`` float32 windows at 32 kHz -> ``(n, D)`` float32 raw (not normalised) vectors."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the backbone (idempotent)."""

    def __enter__(self) -> ArchiveEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BirdnetEmbedder(ArchiveEmbedder):
    """BirdNET v2.4 on 3 s windows (each resampled to 48 kHz): 1024-d embeddings.

    Raises:
        DependencyError: ``birdspec[birdnet]`` is not installed.
    """

    name = BIRDNET

    def __init__(self, *, hop_s: float | None = None, threads: int | None = None) -> None:
        from birdspec.birdnet.backend import EMBEDDING_DIM, WINDOW_S, BirdnetBackbone

        self.backbone = BirdnetBackbone(num_threads=threads)
        self.geometry = WindowGeometry.from_seconds(window_s=WINDOW_S, hop_s=hop_s, min_partial_s=DEFAULT_MIN_PARTIAL_S,
                                                    partial_source=INDEX_PARTIAL_SOURCE)
        self.dim = EMBEDDING_DIM
        self.settings = {"backbone": BIRDNET, "backbone_version": self.backbone.version, "checkpoint_sha256": None,
                         "window_s": self.window_s, "hop_s": self.hop_s, "min_partial_s": DEFAULT_MIN_PARTIAL_S}

    def embed_windows(self, waves: np.ndarray) -> np.ndarray:
        from birdspec.birdnet.backend import WINDOW_SAMPLES, to_birdnet_rate
        from birdspec.windowing import fit_window

        x = np.stack([fit_window(to_birdnet_rate(w, sample_rate_hz=SAMPLE_RATE_HZ), length=WINDOW_SAMPLES, fill="pad")
                      for w in np.asarray(waves, dtype=np.float32)])
        return self.backbone.embed(x)


class RunEmbedder(ArchiveEmbedder):
    """A birdspec window model (run folder or checkpoint): the features before its final classifier layer.

    Raises:
        CheckpointError: an unreadable checkpoint. ConfigError: a stack10 or BirdNET-head checkpoint.
    """

    name = "run"

    def __init__(self, checkpoint: str | Path, *, hop_s: float | None = None, threads: int | None = None) -> None:
        from birdspec.models.checkpoint import peek_checkpoint, resolve_checkpoint_path
        from birdspec.prediction.onnx_runtime import file_sha256
        from birdspec.prediction.predictor import Predictor

        path = resolve_checkpoint_path(checkpoint)
        info = peek_checkpoint(path)
        if info is not None and (info.input != "waveform" or info.encoding.name != "window"):
            raise ConfigError(f"{path}: an index needs a window model (its features per window); this is a "
                              f"{info.encoding.name} {info.name} model")
        self.predictor = Predictor(path, device="cpu", backend="torch", hop_s=hop_s, threads=threads, top_k=0)
        if self.predictor.stacked:
            self.predictor.close()
            raise ConfigError(f"{path}: an index needs a window model; this one scores stack10 contexts")
        self.geometry = dataclasses.replace(self.predictor.geometry, partial_source=INDEX_PARTIAL_SOURCE)
        self.dim = int(self.predictor.penultimate(np.zeros((1, self.geometry.window_samples), np.float32)).shape[1])
        self.settings = {"backbone": "run", "backbone_version": self.predictor.runtime.info.name,
                         "checkpoint_sha256": file_sha256(path), "window_s": self.window_s, "hop_s": self.hop_s,
                         "min_partial_s": self.geometry.min_partial_samples / SAMPLE_RATE_HZ}
        self.checkpoint = path

    def embed_windows(self, waves: np.ndarray) -> np.ndarray:
        return self.predictor.penultimate(waves)

    def close(self) -> None:
        self.predictor.close()


def open_embedder(backbone: str, *, hop_s: float | None = None, threads: int | None = None) -> ArchiveEmbedder:
    """``'birdnet'`` or a run folder / checkpoint file -> its :class:`ArchiveEmbedder`."""
    if hop_s is not None and not hop_s > 0:
        raise ConfigError(f"--hop-s must be positive, got {hop_s}")
    if backbone == BIRDNET:
        return BirdnetEmbedder(hop_s=hop_s, threads=threads)
    return RunEmbedder(backbone, hop_s=hop_s, threads=threads)


def embed_blocks(embedder: ArchiveEmbedder, blocks: Iterable[np.ndarray], *, geometry: WindowGeometry | None = None,
                 name: str = "recording") -> EmbeddedRecording:
    """The windows of a stream of 32 kHz blocks (prediction's windower), embedded and normalised.

    Raises:
        AudioError: no window (the audio is shorter than ``min_partial_s``) or no finite sample.
    """
    from birdspec.prediction.windower import Chunk, End, Windower

    win = Windower(0, geometry or embedder.geometry)
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    waiting: list[np.ndarray] = []
    total, warning = 0, None

    def flush(final: bool) -> None:
        while waiting and (final or sum(len(w) for w in waiting) >= EMBED_BATCH):
            batch = np.concatenate(waiting)
            waiting.clear()
            head, rest = batch[:EMBED_BATCH], batch[EMBED_BATCH:]
            if len(rest):
                waiting.append(rest)
            vectors.append(unit_vectors(embedder.embed_windows(head)))

    def take(items: list[Any]) -> None:
        nonlocal total, warning
        for item in items:
            if isinstance(item, Chunk):
                starts.append(np.asarray(item.starts))
                ends.append(np.asarray(item.ends))
                waiting.append(np.asarray(item.waves, dtype=np.float32))
            elif isinstance(item, End):
                total, warning = item.num_samples, item.warning
        flush(False)

    for block in blocks:
        take(win.push(block))
    take(win.finish())
    flush(True)
    if not starts:
        raise AudioError(f"{name}: {total / SAMPLE_RATE_HZ:.2f} s of audio, shorter than the "
                         f"{win.g.min_partial_samples / SAMPLE_RATE_HZ:.2f} s a window needs")
    if warning:
        log.warning("%s: %s", name, warning)
    return EmbeddedRecording(np.concatenate(starts) / SAMPLE_RATE_HZ, np.concatenate(ends) / SAMPLE_RATE_HZ,
                             np.concatenate(vectors), total / SAMPLE_RATE_HZ, warning)


def embed_file(embedder: ArchiveEmbedder, path: str | Path) -> EmbeddedRecording:
    """Every window of a recording, decoded in blocks (memory flat in its length).

    Raises:
        AudioError: the recording does not decode, or holds no window.
    """
    from birdspec import audio
    from birdspec.prediction.predictor import DECODE_BLOCK_S

    return embed_blocks(embedder, audio.iter_blocks(path, block_s=DECODE_BLOCK_S), name=str(path))


def embed_clip(embedder: ArchiveEmbedder, wave: np.ndarray) -> np.ndarray:
    """One query vector ``(D,)`` of a clip ``(n,)`` at 32 kHz: the normalised mean of its windows' vectors
    (a clip shorter than a window is one zero-padded window).

    Raises:
        AudioError: an empty clip or one without a finite sample.
    """
    g = embedder.geometry
    geometry = dataclasses.replace(g, min_partial_samples=1)
    rec = embed_blocks(embedder, [np.asarray(wave, dtype=np.float32).reshape(-1)], geometry=geometry, name="query")
    return unit_vectors(rec.vectors.mean(axis=0, keepdims=True))[0]
