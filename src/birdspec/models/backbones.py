"""Backbone constructors: torchvision networks built for C input channels and K classes.

Every constructor has the signature ``(in_channels, num_classes, **options) -> nn.Module``
taking a ``(B, C, n_mels, frames)`` spectrogram batch to ``(B, K)`` logits.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import MobileNetV2, ResNet
from torchvision.models.resnet import BasicBlock

# [t, c, n, s]: expansion, output channels, repeats, first stride.
STUDY_MOBILENETV2_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 2, 2], [6, 64, 1, 1]]
"""The study's shortened MobileNetV2 ('seed' model): the base network up to its fourth stage."""

BASE_MOBILENETV2_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
"""torchvision's (the paper's) MobileNetV2 settings."""


def _replace_conv_in(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )


def mobilenetv2(
    in_channels: int,
    num_classes: int,
    *,
    setting: list[list[int]] | None = None,
    width_mult: float = 1.0,
    dropout: float = 0.2,
) -> MobileNetV2:
    """torchvision's MobileNetV2 with the given inverted-residual ``setting`` and C input channels."""
    model = MobileNetV2(
        num_classes=num_classes,
        width_mult=width_mult,
        inverted_residual_setting=[list(s) for s in (setting or BASE_MOBILENETV2_SETTING)],
        dropout=dropout,
    )
    if in_channels != 3:
        first = model.features[0][0]
        model.features[0][0] = _replace_conv_in(first, in_channels)
        nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    return model


def mobilenetv2_seed(in_channels: int, num_classes: int, *, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """The study's custom MobileNetV2 (:data:`STUDY_MOBILENETV2_SETTING`)."""
    return mobilenetv2(in_channels, num_classes, setting=STUDY_MOBILENETV2_SETTING, width_mult=width_mult, dropout=dropout)


def resnet18(in_channels: int, num_classes: int) -> ResNet:
    """torchvision's ResNet18 with C input channels (state-dict keys as torchvision's)."""
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = _replace_conv_in(model.conv1, in_channels)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model
