"""Named training recipes: sets of :class:`~birdspec.training.TrainConfig` settings.

A recipe is a starting point that was measured on real recordings
(``benchmarks/accuracy.py``, figures in ``benchmarks/README.md``); options
given explicitly (``birdspec train --recipe small-data --epochs 60``) replace
its values.

``study``
    The study's settings: the model's defaults (AdamW, batch 16, lr 0.01 for
    MobileNetV2, 0.001 for ResNet18), a constant learning rate, every window
    once per epoch, no augmentation besides random crops, per-sample
    standardised log-mel (``input_norm='instance'``) and no no-bird samples:
    the study's closed-world classifier, reproduced.
``small-data``
    birdspec's from-scratch recipe for a few dozen recordings per class:
    the default input of new runs (``input_norm='level'``: absolute floor,
    per-band noise-floor removal, fixed dB units; ``band`` on pcen and mfcc), K random 3 s crops of every
    recording per epoch (recordings weigh equally whatever their length) where its calls are
    (``crop_rule='calls'``: not mostly in its quiet stretches, which are no-bird samples),
    one-cycle learning rate, SpecAugment masks, mixup and label smoothing, for
    a fixed epoch budget; no-bird samples as every new per-window run.

Without a recipe, a run takes the model's defaults with birdspec's defaults for new runs: the
level-aware input and, per window, no-bird samples (:class:`~birdspec.training.TrainConfig`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from birdspec.errors import ConfigError

WINDOW_ONLY = ("crop_s", "crop_rule")
"""Recipe settings that apply to the window encoding only (dropped for stack10)."""
WAVEFORM_ONLY = ("crop_rule",)
"""Recipe settings that apply to models reading audio only (dropped for models that read embeddings)."""


@dataclass(frozen=True)
class Recipe:
    """A named set of training settings.

    Attributes:
        name: what ``--recipe`` takes.
        summary: one line for ``--help`` and reports.
        settings: TrainConfig fields and values.
        peak_lr: learning rate per model name (models not listed keep their default).
    """

    name: str
    summary: str
    settings: Mapping[str, Any]
    peak_lr: Mapping[str, float] = field(default_factory=dict)

    def fields(self, *, model: str, encoding: str = "window") -> dict[str, Any]:
        """The TrainConfig fields of this recipe for ``model`` trained on ``encoding`` samples."""
        from birdspec.models.registry import get_spec

        waveform = get_spec(model).input == "waveform"
        out = {k: v for k, v in self.settings.items()
               if (encoding == "window" or k not in WINDOW_ONLY) and (waveform or k not in WAVEFORM_ONLY)}
        if model in self.peak_lr:
            out["lr"] = self.peak_lr[model]
        return out


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("study", "the study's settings: model defaults, constant lr, every window once per epoch, "
               "instance-normalised input, no no-bird samples (closed-world)",
               {"schedule": "constant", "input_norm": "instance", "nocall_fraction": 0.0}),
        Recipe(
            "small-data",
            "from scratch on few recordings: level-aware input with band noise-floor removal, 8 random 3 s crops "
            "per recording and epoch where its calls are, one-cycle lr, SpecAugment, mixup, label smoothing, 20 epochs",
            {  # input_norm: the default of new runs (level on dB spectrograms, band on pcen and mfcc)
                "epochs": 20,
                "schedule": "onecycle",
                "crops_per_recording": 8,
                "crop_s": 3.0,
                "crop_rule": "calls",  # benchmarks/README.md, soundscapes.py: 85 against 81 of 98 recordings
                "time_mask_frames": 40,
                "freq_mask_bins": 16,
                "num_masks": 2,
                "mixup_alpha": 0.2,
                "label_smoothing": 0.1,
            },
            peak_lr={"mobilenetv2-seed": 0.003, "mobilenetv2": 0.003, "resnet18": 0.001},
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        ConfigError: no such recipe.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None


def recipe_fields(name: str | None, *, model: str, encoding: str = "window") -> dict[str, Any]:
    """TrainConfig fields of recipe ``name`` (none for None), to be overridden by explicit options."""
    if name is None:
        return {}
    return get_recipe(name).fields(model=model, encoding=encoding)
