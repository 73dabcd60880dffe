"""Optimizers and learning-rate schedules.

Schedules are ``LambdaLR`` multipliers stepped every optimizer step, built
from plain closures: a ``LambdaLR`` state dict then holds only the step
count, so a resumed run with more ``--epochs`` continues the schedule over
the new length instead of replaying the old one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from birdspec.errors import ConfigError

ONECYCLE_DIV_FACTOR = 25.0
"""onecycle starts at lr / 25 (as ``torch.optim.lr_scheduler.OneCycleLR``)."""
ONECYCLE_FINAL_DIV_FACTOR = 1e4
"""... and ends at lr / 25 / 1e4."""
ONECYCLE_DEFAULT_PCT = 0.3


def build_optimizer(params: Iterable[torch.nn.Parameter], *, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``adamw`` | ``adam`` (L2 weight decay) | ``sgd`` (momentum 0.9, Nesterov) | ``rmsprop`` (torch defaults)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9, nesterov=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose adamw, adam, sgd or rmsprop")


def lr_multiplier(schedule: str, *, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """The multiplier of the peak lr at optimizer step ``s`` (0-based).

    - ``constant``: linear warm-up over ``warmup_steps`` (from ``1/warmup_steps``), then 1.
    - ``cosine``: the same warm-up, then half a cosine from 1 to 0 at ``total_steps``.
    - ``onecycle``: cosine from 1/25 up to 1 over ``warmup_steps`` (30 % of the run
      when 0), then cosine down to 1/25/1e4 (the lr part of ``OneCycleLR``).
    """
    total = max(1, int(total_steps))
    warm = max(0, min(int(warmup_steps), total - 1))
    if schedule == "onecycle":
        rise = warm if warm > 0 else max(1, int(round(ONECYCLE_DEFAULT_PCT * total)))
        start = 1.0 / ONECYCLE_DIV_FACTOR
        end = start / ONECYCLE_FINAL_DIV_FACTOR

        def onecycle(step: int) -> float:
            if step < rise:
                p = step / rise
                return start + (1.0 - start) * 0.5 * (1 - math.cos(math.pi * p))
            p = min(1.0, (step - rise) / max(1, total - rise))
            return end + (1.0 - end) * 0.5 * (1 + math.cos(math.pi * p))

        return onecycle
    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"unknown schedule {schedule!r}; choose constant, cosine or onecycle")

    def warm_then(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        p = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * p))

    return warm_then
