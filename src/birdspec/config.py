"""Frozen configuration dataclasses shared by every stage.

The frontend and encoding configs travel inside prepared datasets
(``dataset.json``) and checkpoints, so a checkpoint rebuilds exactly the
features it was trained on. Units are in the field names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping, TypeVar

from birdspec.errors import ConfigError

T = TypeVar("T")

SAMPLE_RATE_HZ = 32_000
"""The study's sample rate: every stored waveform and every model input is at 32 kHz."""

LAYOUTS = ("auto", "birdclef2021", "birdclef2022", "folders", "csv")
"""Source layouts ``birdspec prepare`` reads (:mod:`birdspec.data.catalog_layouts`)."""
BACKBONES = ("birdnet",)
"""Frozen backbones whose embeddings ``birdspec embed`` caches (:mod:`birdspec.data.embeddings`)."""
ENCODINGS = ("stack10", "window")
SHORT_POLICIES = ("drop", "tile", "pad")
"""What a recording shorter than one window gives: nothing, one tiled window, one zero-padded window."""
INPUT_NORMS = ("instance", "band", "none")
"""Input normalisations of a CNN's spectrogram (see :class:`~birdspec.models.registry.InputNorm`)."""
INPUT_NORM_EPS_DB = 1.0
"""The ``eps`` (in dB) of the input normalisation's ``(x - mean) / (std + eps)``."""
EVAL_SPLITS = ("val", "train", "all")
"""Recordings a run can be evaluated on: its validation or training recordings, or all."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain-JSON dict of a config dataclass (lists instead of tuples)."""
    out = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build ``cls`` from a dict, ignoring unknown keys (forward compatibility).

    Tuple-typed fields given as lists are turned back into tuples.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping to build {cls.__name__}, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            continue
        if isinstance(value, list) and "tuple" in str(known[key].type):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)  # type: ignore[call-arg]


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel spectrogram settings (the study's defaults).

    A 5 s window at 32 kHz with hop 500 and centered frames gives
    ``1 + 160000 // 500 = 321`` frames of ``n_mels = 128`` bins.
    """

    kind: str = "logmel"
    sample_rate_hz: int = SAMPLE_RATE_HZ
    n_fft: int = 2048
    hop_length: int = 500
    win_length: int | None = None
    n_mels: int = 128
    fmin_hz: float = 50.0
    fmax_hz: float = 14_000.0
    power: float = 2.0
    top_db: float | None = 80.0
    amin: float = 1e-10
    center: bool = True
    pad_mode: str = "constant"

    def __post_init__(self) -> None:
        if self.kind != "logmel":
            raise ConfigError(f"unknown frontend kind {self.kind!r}; use 'logmel'")
        if self.sample_rate_hz <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ConfigError("sample_rate_hz, n_fft, hop_length and n_mels must be positive")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise ConfigError(f"win_length must be in (0, n_fft={self.n_fft}], got {self.win_length}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ConfigError(
                f"need 0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2, got fmin_hz={self.fmin_hz}, "
                f"fmax_hz={self.fmax_hz} at {self.sample_rate_hz} Hz"
            )
        if self.top_db is not None and self.top_db <= 0:
            raise ConfigError(f"top_db must be positive or None, got {self.top_db}")
        if self.pad_mode not in ("constant", "reflect"):
            raise ConfigError(f"pad_mode must be 'constant' or 'reflect', got {self.pad_mode!r}")

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples."""
        if self.center:
            return 1 + num_samples // self.hop_length
        return 1 + (num_samples - self.n_fft) // self.hop_length


@dataclass(frozen=True)
class EncodingConfig:
    """How recordings become samples.

    - ``stack10``: ``num_windows`` consecutive ``window_s`` windows stacked as
      channels: one sample per recording, shape ``(num_windows, n_mels, frames)``.
      Recordings shorter than ``num_windows * window_s`` follow ``short_policy``:
      ``drop`` (the study), ``tile`` (repeat the recording) or ``pad`` (zeros).
    - ``window``: every full ``window_s`` window of a recording is one sample of
      shape ``(1, n_mels, frames)``. A trailing partial window is dropped,
      unless the recording is shorter than one window: then ``short_policy``
      applies (``drop`` skips it, ``tile``/``pad`` make one window).
    """

    name: str = "stack10"
    num_windows: int = 10
    window_s: float = 5.0
    short_policy: str = "drop"

    def __post_init__(self) -> None:
        if self.name not in ENCODINGS:
            raise ConfigError(f"unknown encoding {self.name!r}; choose one of {', '.join(ENCODINGS)}")
        if self.short_policy not in SHORT_POLICIES:
            raise ConfigError(
                f"unknown short policy {self.short_policy!r}; choose one of {', '.join(SHORT_POLICIES)}"
            )
        if self.num_windows < 1:
            raise ConfigError(f"num_windows must be >= 1, got {self.num_windows}")
        if self.window_s <= 0:
            raise ConfigError(f"window_s must be positive, got {self.window_s}")

    @property
    def in_channels(self) -> int:
        """Channels of one sample: ``num_windows`` for stack10, 1 for window."""
        return self.num_windows if self.name == "stack10" else 1

    def window_samples(self, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
        return int(round(self.window_s * sample_rate_hz))

    @property
    def context_s(self) -> float:
        """Audio one sample covers (50 s for stack10, 5 s for window)."""
        return self.window_s * self.in_channels

    def min_duration_s(self) -> float:
        """Shortest recording kept under the ``drop`` policy."""
        return self.context_s
