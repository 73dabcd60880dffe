"""Frozen configuration dataclasses shared by every stage.

The frontend and encoding configs travel inside prepared datasets
(``dataset.json``) and checkpoints, so a checkpoint rebuilds exactly the
features it was trained on. Units are in the field names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from birdspec.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

SAMPLE_RATE_HZ = 32_000
"""The study's sample rate: every stored waveform and every model input is at 32 kHz."""

LAYOUTS = ("auto", "birdclef2021", "birdclef2022", "folders", "csv")
"""Source layouts ``birdspec prepare`` reads (:mod:`birdspec.data.catalog_layouts`)."""
BACKBONES = ("birdnet",)
"""Frozen backbones whose embeddings ``birdspec embed`` caches (:mod:`birdspec.data.embeddings`)."""
ENCODINGS = ("stack10", "window")
SHORT_POLICIES = ("drop", "tile", "pad")
"""What a recording shorter than one window gives: nothing, one tiled window, one zero-padded window."""
INPUT_NORMS = ("instance", "band", "level", "none")
"""Input normalisations of a CNN's spectrogram (defined in :mod:`birdspec.features.input_norm`)."""
INPUT_NORM_EPS_DB = 1.0
"""The ``eps`` (in dB) of the input normalisation's ``(x - mean) / (std + eps)``."""
FIRST_CONV_MODES = ("repeat", "average")
"""How pretrained RGB kernels of a first convolution become C input channels (:mod:`birdspec.models.pretrained`)."""
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
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            continue
        if isinstance(value, list) and "tuple" in str(known[key].type):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class FrontendType:
    """One spectrogram type: everything birdspec knows about it besides its math (the math is
    :func:`birdspec.features.definition.finish`, its tables :mod:`birdspec.features.tables`).

    Attributes:
        name: what ``--frontend`` takes.
        description: one line for ``birdspec models``.
        title: its name in figures (``birdspec spectrogram``).
        unit: what its values are (a colour bar's label).
        rows: what a row is: 'mel' (mel bands), 'linear' (STFT bins) or 'coefficients' (cepstral).
        db: its values are dB of power (the ``level`` input norm needs that).
        learnable: its filterbank is trained with the network.
        defaults: the :class:`FrontendConfig` settings it changes from the study's.
    """

    name: str
    description: str
    title: str
    unit: str
    rows: str
    db: bool
    learnable: bool = False
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


FRONTEND_TYPES: dict[str, FrontendType] = {t.name: t for t in (
    FrontendType("logmel", "the study's log-mel: 128 Slaney mel bands 50 Hz-14 kHz, dB with an 80 dB floor",
                 "log-mel spectrogram (128 mel bands)", "dB", "mel", db=True),
    FrontendType("pcen", "per-channel energy normalisation of the mel energies (librosa.pcen: gain 0.98, bias 2, "
                 "power 0.5, time constant 0.4 s): adaptive gain against field noise",
                 "per-channel energy normalisation of the mel energies", "PCEN (dimensionless)", "mel", db=False),
    FrontendType("linear", "log-magnitude STFT bins from 50 Hz to 14 kHz (n_fft 512: 224 bins), no mel warping",
                 "log-magnitude STFT (linear frequency)", "dB", "linear", db=True,
                 defaults={"n_fft": 512}),  # with n_fft 2048 a linear STFT would have 897 rows
    FrontendType("mfcc", "40 MFCCs: orthonormal DCT-II of the 128-band log-mel", "DCT of the log-mel (cepstral coefficients)",
                 "coefficient value", "coefficients", db=False),
    FrontendType("learnable-mel", "log-mel whose filterbank is trained with the network (starts as the mel filters, "
                 "kept non-negative)", "log-mel with its initial (mel) filters", "dB", "mel", db=True, learnable=True),
)}
"""The spectrogram types (:mod:`birdspec.features`), each described once."""
FRONTENDS = tuple(FRONTEND_TYPES)
"""Their names: the choices of ``--frontend``."""
DB_FRONTENDS = tuple(name for name, t in FRONTEND_TYPES.items() if t.db)
"""Spectrogram types whose values are dB of power (the ``level`` input norm needs one)."""


@dataclass(frozen=True)
class FrontendConfig:
    """Spectrogram settings (the study's log-mel by default); ``kind`` picks the type.

    A 5 s window at 32 kHz with hop 500 and centered frames gives ``1 + 160000 // 500 = 321``
    frames of :meth:`num_bins` rows: ``n_mels`` (128) for logmel, pcen and learnable-mel, the STFT
    bins from ``fmin_hz`` to ``fmax_hz`` for linear (224 with n_fft 512), ``n_mfcc`` (40) for mfcc.
    The ``pcen_*`` fields follow ``librosa.pcen`` (the mel energies are multiplied by
    ``pcen_input_scale`` first, as librosa's documentation does for float audio).
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
    n_mfcc: int = 40
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    pcen_time_constant_s: float = 0.4
    pcen_eps: float = 1e-6
    pcen_input_scale: float = 2.0**31

    def __post_init__(self) -> None:
        if self.kind not in FRONTENDS:
            raise ConfigError(f"unknown frontend {self.kind!r}; choose one of {', '.join(FRONTENDS)}")
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
        if self.type.rows == "coefficients" and not 0 < self.n_mfcc <= self.n_mels:
            raise ConfigError(f"n_mfcc must be in [1, n_mels={self.n_mels}], got {self.n_mfcc}")
        if min(self.pcen_time_constant_s, self.pcen_eps, self.pcen_input_scale, self.pcen_power) <= 0:
            raise ConfigError("pcen_time_constant_s, pcen_eps, pcen_input_scale and pcen_power must be positive")
        if self.pcen_gain < 0 or self.pcen_bias < 0:
            raise ConfigError("pcen_gain and pcen_bias must be >= 0")
        if self.type.rows == "linear" and self.num_bins() < 1:
            raise ConfigError(f"no STFT bin between fmin_hz={self.fmin_hz} and fmax_hz={self.fmax_hz} at n_fft={self.n_fft}")

    @property
    def type(self) -> FrontendType:
        """The registry entry of this spectrogram type (:data:`FRONTEND_TYPES`)."""
        return FRONTEND_TYPES[self.kind]

    @classmethod
    def for_kind(cls, kind: str, **options: Any) -> FrontendConfig:
        """The settings of spectrogram type ``kind``: the study's, the type's own defaults, then ``options``."""
        return cls().with_kind(kind, **options)

    def with_kind(self, kind: str, **options: Any) -> FrontendConfig:
        """These settings as type ``kind``: the type's own defaults (when it changes type), then ``options``."""
        if kind not in FRONTENDS:
            raise ConfigError(f"unknown frontend {kind!r}; choose one of {', '.join(FRONTENDS)}")
        known = {f.name for f in fields(self)} - {"kind"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown frontend option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        defaults = dict(FRONTEND_TYPES[kind].defaults) if kind != self.kind else {}
        try:
            return dataclasses.replace(self, kind=kind, **{**defaults, **options})
        except TypeError as exc:
            raise ConfigError(f"bad frontend options: {exc}") from exc

    def linear_bins(self) -> tuple[int, int]:
        """``[lo, hi)``: the STFT bins with centre frequency in ``[fmin_hz, fmax_hz]`` (the linear type's rows)."""
        step = self.sample_rate_hz / self.n_fft
        lo = int(math.ceil(self.fmin_hz / step - 1e-9))
        hi = int(math.floor(self.fmax_hz / step + 1e-9)) + 1
        return lo, min(hi, self.n_fft // 2 + 1)

    def num_bins(self) -> int:
        """Rows of one spectrogram: the frequency (or coefficient) axis."""
        if self.type.rows == "linear":
            lo, hi = self.linear_bins()
            return hi - lo
        return self.n_mfcc if self.type.rows == "coefficients" else self.n_mels

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
