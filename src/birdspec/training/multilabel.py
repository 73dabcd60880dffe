"""Labels and losses: the settings check and the sigmoid losses.

``labels='primary'`` (the study's) trains softmax cross entropy on the primary
label. ``labels='multi'`` trains K independent sigmoids on the targets of
:func:`~birdspec.data.multilabel.label_targets` (primary + weighted secondary
labels) with one of :data:`MULTI_LOSSES`:

- ``bce``: binary cross entropy with logits, mean over classes and samples;
- ``focal``: ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017), mean like BCE;
- ``asl``: asymmetric loss (Ridnik et al. 2021): positives
  ``-(1 - p)^gamma_pos log p``, negatives ``-p_m^gamma_neg log(1 - p_m)`` with the
  shifted probability ``p_m = max(p - clip, 0)``; soft targets weigh both terms.
  Summed over classes and averaged over samples, as in the paper's code.

No-bird samples (``nocall_fraction``) train the answer "no bird": all-zero targets for
multi-label runs, the implicit no-bird class of a single-label run (activation
``softmax-background``, :mod:`birdspec.models.activation`); what the loaders yield is
built by :mod:`birdspec.training.samples`. The checkpoint records the activation, so
prediction, evaluation and export score the same way (:mod:`birdspec.models.checkpoint_info`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from birdspec.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads the choices below without it
    import torch

log = logging.getLogger(__name__)

LABEL_MODES = ("primary", "multi")
MULTI_LOSSES = ("bce", "focal", "asl")
LOSSES = ("ce",) + MULTI_LOSSES


def check_label_settings(cfg: Any) -> None:
    """Validate the label/loss/no-bird fields of a TrainConfig; fill ``loss`` when None (ce / bce)."""
    if cfg.labels not in LABEL_MODES:
        raise ConfigError(f"unknown --labels {cfg.labels!r}; choose one of {', '.join(LABEL_MODES)}")
    multi = cfg.labels == "multi"
    if cfg.loss is None:
        object.__setattr__(cfg, "loss", "bce" if multi else "ce")
    if cfg.loss not in LOSSES:
        raise ConfigError(f"unknown --loss {cfg.loss!r}; choose one of {', '.join(MULTI_LOSSES)} (with --labels multi)")
    if multi and cfg.loss == "ce":
        raise ConfigError("--labels multi trains sigmoid outputs; use --loss bce, focal or asl")
    if not multi and cfg.loss != "ce":
        raise ConfigError(f"--loss {cfg.loss} is a sigmoid loss; it needs --labels multi")
    if not 0.0 <= cfg.secondary_weight <= 1.0:
        raise ConfigError(f"--secondary-weight must be in [0, 1], got {cfg.secondary_weight}")
    if cfg.nocall_fraction is not None and not 0.0 <= cfg.nocall_fraction < 1.0:
        raise ConfigError(f"--nocall-fraction must be in [0, 1), got {cfg.nocall_fraction}")
    if cfg.background_dir is not None and cfg.nocall_fraction == 0:
        raise ConfigError("--background gives no-bird samples; drop --nocall-fraction 0 (or give a share, e.g. 0.2)")
    snr = tuple(float(v) for v in cfg.background_snr_db)
    if len(snr) != 2 or snr[0] > snr[1]:
        raise ConfigError(f"--background-snr-db needs LO,HI with LO <= HI, got {cfg.background_snr_db}")
    object.__setattr__(cfg, "background_snr_db", snr)
    if not 0.0 < cfg.background_mix_probability <= 1.0:
        raise ConfigError(f"background_mix_probability must be in (0, 1], got {cfg.background_mix_probability}")
    if min(cfg.focal_gamma, cfg.asl_gamma_neg, cfg.asl_gamma_pos) < 0 or not 0.0 <= cfg.asl_clip < 1.0:
        raise ConfigError("--focal-gamma, --asl-gamma-neg and --asl-gamma-pos must be >= 0 and --asl-clip in [0, 1)")


# ------------------------------------------------------------------------------------------ losses
def focal_loss(logits: torch.Tensor, targets: torch.Tensor, *, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss, mean over samples and classes (``gamma=0`` is BCE)."""
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    return ((1 - p_t).clamp_min(0).pow(gamma) * bce).mean()


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, *, gamma_neg: float = 4.0, gamma_pos: float = 1.0,
                    clip: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021), summed over classes, mean over samples."""
    import torch

    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp_min(0) if clip > 0 else p
    loss_pos = targets * (1 - p).pow(gamma_pos) * torch.log(p.clamp_min(eps))
    loss_neg = (1 - targets) * p_neg.pow(gamma_neg) * torch.log((1 - p_neg).clamp_min(eps))
    return -(loss_pos + loss_neg).sum(dim=1).mean()


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor, cfg: Any, *, smoothing: float = 0.0) -> torch.Tensor:
    """The configured multi-label loss of ``logits`` ``(B, K)`` against soft targets ``(B, K)``.

    ``smoothing`` s (label smoothing, training only) moves every target towards 0.5: ``y (1 - s) + s / 2``.
    """
    import torch.nn.functional as F

    targets = targets.to(logits.dtype)
    if smoothing > 0:
        targets = targets * (1.0 - smoothing) + 0.5 * smoothing
    if cfg.loss == "focal":
        return focal_loss(logits, targets, gamma=cfg.focal_gamma)
    if cfg.loss == "asl":
        return asymmetric_loss(logits, targets, gamma_neg=cfg.asl_gamma_neg, gamma_pos=cfg.asl_gamma_pos, clip=cfg.asl_clip)
    return F.binary_cross_entropy_with_logits(logits, targets)


def top1_hits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample 1.0/0.0: label ids -> arg-max is the label; target vectors -> the arg-max class is a
    positive (target > 0), or, for a no-bird sample (no positive), every sigmoid score is below 0.5."""
    import torch

    if target.ndim == 1:
        return (logits.argmax(dim=1) == target).float()
    top = target.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1) > 0
    none = ~(target > 0).any(dim=1)
    quiet = (torch.sigmoid(logits) < 0.5).all(dim=1)
    return torch.where(none, quiet, top).float()
