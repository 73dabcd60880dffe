"""Pretrained-weight adaptation, in one place (after timm's ``adapt_input_conv``).

A torchvision-format state dict (ImageNet, 3 input channels, 1000 classes)
is adapted to a birdspec backbone with C input channels and K classes:

- the first conv goes from 3 to C channels by ``repeat`` (the RGB kernels
  tiled over C channels and scaled by 3 / C, so activations keep their scale:
  exactly for a constant input when 3 divides C, approximately otherwise) or ``average`` (the mean of the RGB kernels in every
  channel, the study's other option);
- the final layer is dropped and re-initialised for K classes.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import torch
from torch import nn

from birdspec.config import FIRST_CONV_MODES
from birdspec.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)


def adapt_input_conv(weight: torch.Tensor, in_channels: int, *, mode: str = "repeat") -> torch.Tensor:
    """Adapt a first-conv kernel ``(O, 3, kh, kw)`` to ``(O, in_channels, kh, kw)``.

    Args:
        weight: the pretrained kernel (any input-channel count ``I``).
        in_channels: the channel count wanted (``C``).
        mode: ``repeat``: channel ``c`` gets input kernel ``c mod I``, all scaled by
            ``I / C``; ``average``: every channel gets the mean over the ``I`` input kernels.
    """
    if mode not in FIRST_CONV_MODES:
        raise ConfigError(f"unknown first-conv mode {mode!r}; use one of {', '.join(FIRST_CONV_MODES)}")
    if weight.ndim != 4:
        raise CheckpointError(f"expected a 4-d conv kernel, got shape {tuple(weight.shape)}")
    orig = weight.shape[1]
    if in_channels == orig and mode == "repeat":
        return weight.clone()
    if mode == "average":
        return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)
    reps = math.ceil(in_channels / orig)
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (orig / in_channels)


def adapt_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    *,
    first_conv_key: str,
    classifier_prefix: str,
    first_conv: str = "repeat",
    drop_unmatched: bool = False,
) -> dict[str, torch.Tensor]:
    """A copy of ``state`` that loads into ``model``: first conv adapted, classifier dropped.

    ``drop_unmatched`` skips weights whose names the model lacks (a truncated
    network such as ``mobilenetv2-seed`` takes the base network's first blocks).
    """
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(classifier_prefix + "."):
            continue
        if drop_unmatched and key not in target:
            continue
        if key == first_conv_key:
            want = target[key].shape[1]
            value = adapt_input_conv(value, want, mode=first_conv)
        if key in target and target[key].shape != value.shape:
            if drop_unmatched and key != first_conv_key:
                continue
            raise CheckpointError(
                f"pretrained weight {key} has shape {tuple(value.shape)} but the model needs {tuple(target[key].shape)}; "
                "is it a state dict of the same architecture?"
            )
        out[key] = value
    return out


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision-format state dict from ``path`` (``.pth``/``.pt``, or ``.safetensors``)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such weights file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and safetensors errors come in many types
        raise CheckpointError(f"{p}: cannot read weights ({type(exc).__name__}: {exc}); pass a torchvision-format state dict") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: not a state dict of tensors")
    return state


def _online(host: str = "download.pytorch.org", *, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def imagenet_state_dict(torchvision_arch: str) -> dict[str, torch.Tensor]:
    """ImageNet weights through torchvision's weights API (cached download).

    Fails fast, with what to do, when the weights are neither cached nor downloadable.
    """
    from torchvision.models import get_model_weights

    weights = get_model_weights(torchvision_arch).DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cache.is_file() and not _online():
        raise CheckpointError(
            f"ImageNet weights for {torchvision_arch} are not cached ({cache}) and download.pytorch.org cannot be "
            f"reached. On a machine online, download {weights.url} and pass it with --pretrained PATH."
        )
    try:
        return cast("dict[str, torch.Tensor]", weights.get_state_dict(progress=True, check_hash=True))  # torchvision is untyped
    except Exception as exc:  # network errors come in many types
        raise CheckpointError(
            f"downloading ImageNet weights for {torchvision_arch} failed ({exc}); download {weights.url} "
            "yourself and pass it with --pretrained PATH"
        ) from exc
