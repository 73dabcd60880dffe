"""What a checkpoint says about its model, without the weights: :class:`CheckpointInfo` (torch-free).

Parsed and checked from a checkpoint dict by :meth:`CheckpointInfo.from_json`
(also the form an exported runtime keeps, so prediction from an export needs
no PyTorch). Reading checkpoint files, checking the weights and rebuilding the
network: :mod:`birdspec.models.checkpoint`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from birdspec import __version__
from birdspec.config import SAMPLE_RATE_HZ, EncodingConfig, FrontendConfig, from_dict, to_dict
from birdspec.errors import BirdspecError, CheckpointError
from birdspec.models.activation import ACTIVATIONS, scores_numpy

CHECKPOINT_FORMAT = "birdspec-checkpoint"
CHECKPOINT_VERSION = 1
READABLE_VERSIONS = (1,)
MODEL_INPUTS = ("waveform", "embedding")


def _activation(raw: Mapping[str, Any]) -> str:
    """'sigmoid' when the checkpoint says it was trained multi-label (a BCE-type loss), else 'softmax'."""
    for section in (raw.get("train_config") or {}, raw.get("model") or {}, raw.get("extra") or {}):
        if not isinstance(section, Mapping):
            continue
        if section.get("multilabel") or section.get("multi_label"):
            return "sigmoid"
        loss = str(section.get("loss", "")).lower()
        if any(k in loss for k in ("bce", "binary", "sigmoid", "asymmetric")):
            return "sigmoid"
        act = str(section.get("activation", "")).lower()
        if act in ACTIVATIONS:
            return act
    return "softmax"


def _class_info(classes: tuple[str, ...], given: Any) -> tuple[dict[str, str], ...]:
    """``class_info`` completed with empty names, one entry per class in order."""
    by_label = {str(c.get("label")): c for c in given or [] if isinstance(c, Mapping)}
    out = []
    for label in classes:
        c = by_label.get(label, {})
        out.append({
            "label": label,
            "scientific_name": str(c.get("scientific_name") or ""),
            "common_name": str(c.get("common_name") or ""),
        })
    return tuple(out)


def describe_thresholds(thresholds: Any) -> str:
    """``0.3`` when every class shares one threshold, else ``per class 0.21-0.64``."""
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.size and np.all(t == t[0]):
        return f"{t[0]:g}"
    return f"per class {t.min():.3g}-{t.max():.3g}" if t.size else "none"


@dataclass(frozen=True)
class Detection:
    """How a model decides that a class is there: what training chose on held-out windows.

    Attributes:
        thresholds: per class (in class order), the score from which a window counts as a detection
            (scores after the temperature). ``birdspec predict`` uses them unless ``--min-conf`` is given.
        temperature: logits are divided by it before the activation (1.0: no temperature scaling).
        chosen_on: which windows chose them, in words (e.g. validation recordings + no-bird windows).
        rule: how they were chosen, in words.
        per_class: per class, what the windows gave at its threshold (precision, recall, F1, counts).
    """

    thresholds: tuple[float, ...]
    temperature: float = 1.0
    chosen_on: str = ""
    rule: str = ""
    per_class: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"thresholds": [float(t) for t in self.thresholds], "temperature": float(self.temperature),
                "chosen_on": self.chosen_on, "rule": self.rule, "per_class": [dict(c) for c in self.per_class]}

    @classmethod
    def from_json(cls, raw: Any, *, num_classes: int, source: str) -> Detection | None:
        """The detection settings of a checkpoint dict's ``detection`` entry (None when absent).

        Raises:
            CheckpointError: thresholds that are not one number in [0, 1] per class, or a temperature <= 0.
        """
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise CheckpointError(f"{source}: the detection settings must be a mapping")
        try:
            thresholds = tuple(float(t) for t in raw.get("thresholds") or ())
            temperature = float(raw.get("temperature", 1.0))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid detection thresholds or temperature ({exc})") from exc
        if len(thresholds) != num_classes or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise CheckpointError(
                f"{source}: the detection settings need one threshold in [0, 1] per class ({num_classes}), got "
                f"{list(thresholds)[:8]}"
            )
        if not (np.isfinite(temperature) and temperature > 0):
            raise CheckpointError(f"{source}: the detection temperature must be positive, got {temperature}")
        per_class = tuple(dict(c) for c in raw.get("per_class") or () if isinstance(c, Mapping))
        return cls(thresholds, temperature, str(raw.get("chosen_on") or ""), str(raw.get("rule") or ""), per_class)


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything a checkpoint says about its model, without the weights (torch-free).

    Attributes:
        source: the file it was read from ('<memory>' for a dict).
        model: the model config (``name``, ``in_channels``, ``num_classes``, ``options``, ...).
        classes: output index -> label.
        class_info: ``{label, scientific_name, common_name}`` per class, in class order.
        frontend / encoding: the configs the model was trained with.
        activation: 'softmax' (single-label: a window's scores sum to 1) or 'sigmoid'.
        train_config: the training settings (a dict; empty when unknown).
        epoch / metrics / extra: where training was, what it measured, anything else.
        detection: the per-class detection thresholds and temperature chosen after training (None for
            checkpoints written before birdspec chose them, or whose activation was overridden).
        birdspec_version / format_version: who wrote it.
    """

    source: str
    model: Mapping[str, Any]
    classes: tuple[str, ...]
    class_info: tuple[Mapping[str, str], ...]
    frontend: FrontendConfig
    encoding: EncodingConfig
    activation: str = "softmax"
    train_config: Mapping[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    detection: Detection | None = None
    birdspec_version: str = ""
    format_version: int = CHECKPOINT_VERSION

    @property
    def name(self) -> str:
        """The registered model name."""
        return str(self.model.get("name"))

    @property
    def input(self) -> str:
        """What the network reads: 'waveform' (frontend inside: the CNNs) or 'embedding' (BirdNET heads)."""
        return str(self.model.get("input", "waveform"))

    @property
    def in_channels(self) -> int:
        """Input channels (10 for stack10, 1 for window; the embedding size for heads)."""
        return int(self.model.get("in_channels", self.encoding.in_channels))

    @property
    def input_norm(self) -> dict[str, Any]:
        """The spectrogram normalisation of a waveform model (:func:`~birdspec.features.input_norm.norm_settings`:
        ``{"kind": instance|band|level|none, ...}``), as stored, or as older checkpoints implied it."""
        stored = self.model.get("input_norm_settings")
        if isinstance(stored, Mapping) and stored.get("kind"):
            return dict(stored)
        from birdspec.features.input_norm import norm_settings

        return norm_settings(str(self.model.get("input_norm") or "instance"), self.frontend)

    @property
    def temperature(self) -> float:
        """The temperature logits are divided by before the activation (1.0 without calibration)."""
        return self.detection.temperature if self.detection is not None else 1.0

    @property
    def thresholds(self) -> tuple[float, ...] | None:
        """Per-class detection thresholds chosen after training (None: the model has none)."""
        return self.detection.thresholds if self.detection is not None else None

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Scores ``(B, K)`` float32 of logits ``(B, K)``: this model's activation at its temperature."""
        return scores_numpy(logits, self.activation, temperature=self.temperature)

    def with_activation(self, activation: str) -> CheckpointInfo:
        """A copy scoring with ``activation`` ('auto' keeps the checkpoint's). Another activation than the
        checkpoint's drops its detection settings (thresholds chosen on other scores do not apply)."""
        if activation == "auto" or activation == self.activation:
            return self
        if activation not in ACTIVATIONS:
            raise CheckpointError(f"unknown activation {activation!r}; use auto, {', '.join(ACTIVATIONS)}")
        return dataclasses.replace(self, activation=activation, detection=None)

    def with_detection(self, detection: Detection | None) -> CheckpointInfo:
        """A copy with other detection settings."""
        return dataclasses.replace(self, detection=detection)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON dict (:meth:`from_json` reads it back)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": self.format_version,
            "birdspec_version": self.birdspec_version,
            "source": self.source,
            "model": dict(self.model),
            "classes": list(self.classes),
            "class_info": [dict(c) for c in self.class_info],
            "frontend": to_dict(self.frontend),
            "encoding": to_dict(self.encoding),
            "activation": self.activation,
            "train_config": dict(self.train_config),
            "epoch": self.epoch,
            "metrics": dict(self.metrics),
            "extra": dict(self.extra),
            "detection": self.detection.to_json() if self.detection is not None else None,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], *, source: str | None = None) -> CheckpointInfo:
        """Parse and check the metadata of a checkpoint dict (or of :meth:`to_json`).

        Raises:
            CheckpointError: a missing or invalid field (see :func:`validate_raw`).
        """
        if not isinstance(raw, Mapping) or raw.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source or 'checkpoint'}: not a birdspec checkpoint (no format marker)")
        src = source or str(raw.get("source") or raw.get("path") or "<memory>")
        version = raw.get("format_version", 0)
        if not isinstance(version, int) or version not in READABLE_VERSIONS:
            newer = isinstance(version, int) and version > max(READABLE_VERSIONS)
            raise CheckpointError(
                f"{src}: checkpoint format version {version!r} (written by birdspec {raw.get('birdspec_version', '?')}); "
                f"this birdspec ({__version__}) reads format version{'s' if len(READABLE_VERSIONS) > 1 else ''} "
                f"{', '.join(map(str, READABLE_VERSIONS))}" + ("; upgrade birdspec to read it" if newer else "")
            )
        model = raw.get("model")
        if not isinstance(model, Mapping) or not model.get("name"):
            raise CheckpointError(f"{src}: the checkpoint has no model description (model.name); it cannot be rebuilt")
        classes = raw.get("classes")
        fewest = 1 if str(raw.get("activation") or _activation(raw)) == "sigmoid" else 2  # one detector needs no rival
        if not isinstance(classes, (list, tuple)) or len(classes) < fewest or not all(isinstance(c, str) and c for c in classes):
            raise CheckpointError(f"{src}: the class list must hold at least {fewest} non-empty labels, got {classes!r:.80}")
        if len(set(classes)) != len(classes):
            raise CheckpointError(f"{src}: the class list repeats labels")
        num_classes = model.get("num_classes")
        if num_classes is not None and int(num_classes) != len(classes):
            raise CheckpointError(
                f"{src}: lists {len(classes)} classes but its model config has {num_classes} outputs; "
                "the checkpoint is inconsistent (was it edited?)"
            )
        try:
            frontend = from_dict(FrontendConfig, raw.get("frontend") or {})
            encoding = from_dict(EncodingConfig, raw.get("encoding") or {})
        except (BirdspecError, TypeError) as exc:
            raise CheckpointError(f"{src}: invalid frontend or encoding settings ({exc})") from exc
        kind = str(model.get("input", "waveform"))
        if kind not in MODEL_INPUTS:
            raise CheckpointError(f"{src}: unknown model input {kind!r}; this birdspec knows {', '.join(MODEL_INPUTS)}")
        if kind == "waveform":
            if frontend.sample_rate_hz != SAMPLE_RATE_HZ:
                raise CheckpointError(
                    f"{src}: the frontend runs at {frontend.sample_rate_hz} Hz; birdspec models take {SAMPLE_RATE_HZ} Hz audio"
                )
            in_ch = model.get("in_channels")
            if in_ch is not None and int(in_ch) != encoding.in_channels:
                raise CheckpointError(
                    f"{src}: encoding {encoding.name} gives {encoding.in_channels} channel(s) but the model config "
                    f"takes {in_ch}; the checkpoint is inconsistent"
                )
        stored = raw.get("activation")
        act = stored if isinstance(stored, str) and stored in ACTIVATIONS else _activation(raw)
        epoch = raw.get("epoch")
        return cls(
            source=src,
            model=dict(model),
            classes=tuple(classes),
            class_info=_class_info(tuple(classes), raw.get("class_info")),
            frontend=frontend,
            encoding=encoding,
            activation=act,
            train_config=dict(raw.get("train_config") or {}),
            epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
            metrics=dict(raw.get("metrics") or {}),
            extra=dict(raw.get("extra") or {}),
            detection=Detection.from_json(raw.get("detection"), num_classes=len(classes), source=src),
            birdspec_version=str(raw.get("birdspec_version") or ""),
            format_version=int(version),
        )
