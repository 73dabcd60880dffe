"""The model registry: a name -> how to build the backbone, its study defaults, its pretrained mapping.

A birdspec model is ``frontend -> input normalisation -> backbone``: it takes
raw 32 kHz waveforms ``(B, C, T)`` and returns logits ``(B, K)``. Adding a
model is one :func:`register` call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from birdspec.config import INPUT_NORMS, FrontendConfig
from birdspec.errors import ConfigError
from birdspec.features.input_norm import norm_settings, normalise
from birdspec.features.torch_frontend import Frontend, build_frontend
from birdspec.models import backbones
from birdspec.models.pretrained import adapt_state_dict, imagenet_state_dict, load_state_dict_file

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model.

    Attributes:
        name: registry name (``birdspec train --model NAME``).
        build: ``(in_channels, num_classes, **options) -> backbone`` on spectrograms.
        description: one line for ``birdspec models``.
        train_defaults: the study's training settings for this model (lr, weight_decay, ...).
        torchvision_arch: name in torchvision's weights API (for ``--pretrained imagenet``).
        first_conv_key / classifier_prefix: state-dict names used by pretrained adaptation.
        input: 'waveform' (frontend inside) or 'embedding' (precomputed features).
    """

    name: str
    build: Callable[..., nn.Module]
    description: str
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    torchvision_arch: str | None = None
    first_conv_key: str | None = None
    classifier_prefix: str | None = None
    input: str = "waveform"
    note: str = ""
    partial_pretrained: bool = False
    """Pretrained weights of the base network load only where names and shapes match
    (a truncated network); the other layers keep their fresh initialisation."""
    from_config: Callable[[Mapping[str, Any]], nn.Module] | None = None
    """For families that are not ``frontend + CNN``: rebuild an untrained module from its model config."""
    needs_class_info: bool = False
    """The builder takes ``class_info=`` (the classes' names), e.g. to map them to BirdNET species."""
    l2sp_grid: tuple[float, ...] = ()
    """Weight decays (L2-SP strengths: the pull toward a prior) that :mod:`birdspec.training.l2sp`
    chooses from on an inner validation split when a run does not set ``--weight-decay``."""
    prior_only_options: Mapping[str, Any] = field(default_factory=dict)
    """Model options that leave only the prior, untrained: the "infinitely strong" L2-SP candidate."""


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ConfigError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint} (`birdspec models` lists them: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


register(
    ModelSpec(
        name="mobilenetv2-seed",
        build=backbones.mobilenetv2_seed,
        description="the study's custom MobileNetV2: settings [1,16,1,1],[6,24,2,2],[6,32,3,2],[6,64,2,2],[6,64,1,1]",
        train_defaults={"lr": 0.01, "weight_decay": 0.01, "optimizer": "adamw", "batch_size": 16},
        torchvision_arch="mobilenet_v2",
        first_conv_key="features.0.0.weight",
        classifier_prefix="classifier",
        partial_pretrained=True,
    )
)
register(
    ModelSpec(
        name="mobilenetv2",
        build=backbones.mobilenetv2,
        description="torchvision's MobileNetV2 (base inverted-residual settings)",
        train_defaults={"lr": 0.01, "weight_decay": 0.01, "optimizer": "adamw", "batch_size": 16},
        torchvision_arch="mobilenet_v2",
        first_conv_key="features.0.0.weight",
        classifier_prefix="classifier",
    )
)
register(
    ModelSpec(
        name="resnet18",
        build=backbones.resnet18,
        description="torchvision's ResNet18 (ImageNet-pretrainable, first conv adapted to C channels)",
        train_defaults={"lr": 0.001, "weight_decay": 1e-4, "optimizer": "adamw", "batch_size": 16},
        torchvision_arch="resnet18",
        first_conv_key="conv1.weight",
        classifier_prefix="fc",
    )
)


def _register_birdnet_heads() -> None:
    """The ``birdnet-*`` heads over frozen BirdNET embeddings: from zero (:mod:`birdspec.models.birdnet_head`)
    and from BirdNET's own classifier (:mod:`birdspec.models.birdnet_prior`)."""
    from birdspec.models import birdnet_head as heads
    from birdspec.models import birdnet_prior as prior

    # names, builder, descriptions, training defaults, note, from_config, more ModelSpec fields by name
    family = tuple[Sequence[str], Callable[[str], Callable[..., nn.Module]], Mapping[str, str], Mapping[str, Any], str,
                   Callable[[Mapping[str, Any]], nn.Module], Callable[[str], dict[str, Any]]]
    families: tuple[family, ...] = (
        (heads.HEAD_NAMES, heads.head_builder, heads.HEAD_DESCRIPTIONS, heads.HEAD_TRAIN_DEFAULTS, heads.LICENCE_NOTE,
         heads.head_from_config, lambda name: {}),
        (prior.PRIOR_NAMES, prior.prior_builder, prior.PRIOR_DESCRIPTIONS, prior.PRIOR_TRAIN_DEFAULTS, prior.PRIOR_NOTE,
         prior.prior_from_config,
         lambda name: {"needs_class_info": True, "prior_only_options": prior.PRIOR_ONLY_OPTIONS,
                       "l2sp_grid": prior.L2SP_GRID if name == "birdnet-prior" else ()}),
    )
    for names, builder, descriptions, defaults, note, from_config, extra in families:
        for name in names:
            register(ModelSpec(name=name, build=builder(name), description=descriptions[name], train_defaults=dict(defaults),
                               input="embedding", note=note, from_config=from_config, **extra(name)))


_register_birdnet_heads()


class InputNorm(nn.Module):
    """The input normalisation of a spectrogram ``(B, C, F, T)`` (:mod:`birdspec.features.input_norm`
    defines every kind once; this is its PyTorch form).

    ``band`` (each mel band's median over time, its noise floor, removed before standardising) was the
    largest single ingredient of the ``small-data`` recipe on the reed warbler cross-validation (0.75 ->
    0.92 recording accuracy); ``level`` keeps that floor removal but never stretches a window to unit
    variance and treats what lies under an absolute floor as silence, so quiet noise stays quiet.

    Args:
        settings: :func:`~birdspec.features.input_norm.norm_settings` (a checkpoint's ``input_norm_settings``).
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.settings = dict(settings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from birdspec.features.torch_frontend import TORCH_NORM_OPS

        out: torch.Tensor = normalise(TORCH_NORM_OPS, x, self.settings)  # normalise: any array type
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items())


class BirdspecModel(nn.Module):
    """Raw audio to class logits: ``(B, C, T)`` waveforms -> ``(B, K)``.

    Attributes:
        frontend: spectrogram module (:class:`~birdspec.features.Frontend`, ``(B, C, T) -> (B, C, rows, frames)``).
        norm: input normalisation of the spectrogram.
        backbone: the CNN on spectrograms.
        config: what :func:`build_model` needs to rebuild this model
            (``name``, ``in_channels``, ``num_classes``, ``options``, ``input_norm``, ``input_norm_settings``).
    """

    def __init__(self, frontend: Frontend, backbone: nn.Module, *, config: dict[str, Any],
                 input_norm: Mapping[str, Any]) -> None:
        super().__init__()
        self.frontend = frontend
        self.norm = InputNorm(input_norm) if input_norm["kind"] != "none" else nn.Identity()
        self.backbone = backbone
        self.config = config

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """The normalised spectrogram the backbone sees, ``(B, C, n_mels, frames)``.

        In channels-last memory order, like the backbone's weights: depthwise and
        1x1 convolutions run markedly faster that way on CPUs and tensor cores.
        """
        return _channels_last(self.norm(self.frontend(wave)))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.backbone(self.features(wave)))  # Module calls are typed Any


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def build_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    frontend: FrontendConfig | None = None,
    input_norm: str | None = "instance",
    input_norm_settings: Mapping[str, Any] | None = None,
    pretrained: str | None = None,
    first_conv: str = "repeat",
    options: Mapping[str, Any] | None = None,
    class_info: Sequence[Mapping[str, Any]] | None = None,
) -> nn.Module:
    """Build a registered model for ``in_channels`` (10 for stack10, 1 for window) and ``num_classes``.

    Waveform models come back as a :class:`BirdspecModel`; models of another
    input kind (``ModelSpec.input``, e.g. embedding heads with ``in_channels``
    the embedding size) as their family builds them, with a ``config`` dict.

    Args:
        pretrained: ``None``, ``"imagenet"`` (torchvision's weights API) or a path to a
            torchvision-format state dict; its first conv is adapted by ``first_conv``
            ('repeat' or 'average') and its classifier replaced.
        options: extra keyword arguments of the backbone (e.g. ``width_mult``, ``dropout``).
        class_info: the classes' ``{label, scientific_name, common_name}``, for models that
            need them (``ModelSpec.needs_class_info``: the BirdNET prior heads).
        input_norm / input_norm_settings: the input norm's kind (:data:`~birdspec.config.INPUT_NORMS`), or
            the settings a checkpoint stored (which win: an old model keeps exactly the norm it was trained with).
    """
    spec = get_spec(name)
    if in_channels < 1 or num_classes < 1:  # training asks for 2 (loop.py); one sigmoid detector is a model too
        raise ConfigError(f"need in_channels >= 1 and num_classes >= 1, got {in_channels} and {num_classes}")
    if input_norm not in INPUT_NORMS:
        raise ConfigError(f"unknown input_norm {input_norm!r}; use one of {', '.join(INPUT_NORMS)}")
    if spec.input == "waveform":
        norm = dict(input_norm_settings) if input_norm_settings else norm_settings(input_norm, frontend or FrontendConfig())
    opts = dict(options or {})
    if spec.input != "waveform":  # e.g. heads over precomputed embeddings: no frontend, no pretraining
        if pretrained:
            raise ConfigError(f"model {name!r} takes {spec.input}s; --pretrained applies to the CNNs only")
        if spec.needs_class_info:
            return spec.build(in_channels, num_classes, class_info=class_info, **opts)
        return spec.build(in_channels, num_classes, **opts)
    try:
        backbone = spec.build(in_channels, num_classes, **opts)
    except TypeError as exc:
        raise ConfigError(f"bad options for model {name!r}: {exc}") from exc
    if pretrained:
        if not (spec.torchvision_arch and spec.first_conv_key and spec.classifier_prefix):
            raise ConfigError(f"model {name!r} has no pretrained weights mapping")
        state = imagenet_state_dict(spec.torchvision_arch) if pretrained == "imagenet" else load_state_dict_file(pretrained)
        adapted = adapt_state_dict(
            state,
            backbone,
            first_conv_key=spec.first_conv_key,
            classifier_prefix=spec.classifier_prefix,
            first_conv=first_conv,
            drop_unmatched=spec.partial_pretrained,
        )
        if spec.first_conv_key not in adapted:
            from birdspec.errors import CheckpointError

            raise CheckpointError(f"pretrained weights have no {spec.first_conv_key}: not a {spec.torchvision_arch} state dict")
        missing, unexpected = backbone.load_state_dict(adapted, strict=False)
        missing = [k for k in missing if not k.startswith(spec.classifier_prefix + ".")]
        if spec.partial_pretrained and missing:
            log.info("%s: %d pretrained tensors loaded, %d layers keep their initial weights", name, len(adapted), len(missing))
            missing = []
        if missing or unexpected:
            from birdspec.errors import CheckpointError

            raise CheckpointError(
                f"pretrained weights do not fit {name}: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
    config = {
        "name": name,
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "options": opts,
        "input_norm": norm["kind"],
        "input_norm_settings": norm,
        "pretrained": str(pretrained) if pretrained else None,
        "first_conv": first_conv if pretrained else None,
    }
    backbone = backbone.to(memory_format=torch.channels_last)
    return BirdspecModel(build_frontend(frontend), backbone, config=config, input_norm=norm)


def model_from_config(config: Mapping[str, Any], frontend: FrontendConfig) -> nn.Module:
    """An untrained model of the architecture a checkpoint's model ``config`` describes
    (pretraining is not re-applied; :meth:`~birdspec.models.checkpoint.Checkpoint.build_model`
    loads the weights)."""
    spec = get_spec(str(config["name"]))
    if spec.from_config is not None:
        model = spec.from_config(config)
    else:
        model = build_model(
            spec.name,
            in_channels=int(config["in_channels"]),
            num_classes=int(config["num_classes"]),
            frontend=frontend,
            input_norm=config.get("input_norm") or "instance",
            input_norm_settings=config.get("input_norm_settings"),
            options=config.get("options") or {},
        )
    if config.get("feature_norm") is not None:
        set_feature_norm(model, str(config["feature_norm"]))
    model.config = dict(config)  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors and modules only
    return model


FEATURE_NORMS = ("unit",)
"""What a model may do to the features its final Linear layer reads (a model config's ``feature_norm``):
``unit`` scales each to unit length (the agile classifiers of ``birdspec agile`` on a run's index learned on
unit vectors)."""


def final_linear(model: nn.Module) -> nn.Linear:
    """The classifier layer of a waveform model: the last ``Linear`` of its backbone (its input is what
    ``birdspec index --backbone RUN`` stores per window).

    Raises:
        ConfigError: a network without a ``Linear`` layer.
    """
    root = getattr(model, "backbone", model)
    last = [m for m in root.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ConfigError(f"model {getattr(model, 'config', {}).get('name', type(model).__name__)!r} has no final Linear "
                          "layer")
    return last[-1]


def _unit_features(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (torch.nn.functional.normalize(inputs[0], dim=-1), *inputs[1:])


def set_feature_norm(model: nn.Module, kind: str) -> None:
    """Make :func:`final_linear` of ``model`` read its features normalised by ``kind`` (:data:`FEATURE_NORMS`;
    a forward pre-hook: the weights' names do not change, so the state dict of the model without it loads).

    Raises:
        ConfigError: an unknown kind, or no final Linear layer.
    """
    if kind not in FEATURE_NORMS:
        raise ConfigError(f"unknown feature_norm {kind!r}; use one of {', '.join(FEATURE_NORMS)}")
    final_linear(model).register_forward_pre_hook(_unit_features)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
