"""Training settings: :class:`TrainConfig`, resolved against a model's study defaults.

Fields left ``None`` (optimizer, lr, weight decay, batch size) are filled from
the model's :attr:`~birdspec.models.registry.ModelSpec.train_defaults` by
:meth:`TrainConfig.resolved`, so ``config.json`` of a run always records the
values actually used.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from birdspec.config import ENCODINGS, FIRST_CONV_MODES, FRONTENDS, INPUT_NORMS, FrontendConfig
from birdspec.errors import ConfigError
from birdspec.runtime import DEVICES

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "onecycle")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
EARLY_STOPPING_METRICS = ("val_loss", "val_acc")
THRESHOLD_SPLITS = ("val", "train")
"""Where the detection thresholds are chosen after training: the validation rows (default) or the training
rows (in-sample; for a fixed budget whose validation rows are a test fold: ``cv --fixed-epochs``)."""
CROP_RULES = ("anywhere", "calls")
"""Where random training crops may start: anywhere, or where at most half the crop is a quiet stretch
(:meth:`birdspec.data.dataset.RecordingDataset.avoid_quiet`)."""
DEFAULT_NOCALL_FRACTION = 0.2
"""No-bird share of the training samples of new per-window runs (``nocall_fraction`` None; 0 for stack10)."""

FALLBACK_DEFAULTS: Mapping[str, Any] = {"optimizer": "adamw", "lr": 0.001, "weight_decay": 0.01, "batch_size": 16}
"""Used when a model's ``train_defaults`` do not name a setting."""

ARCHITECTURE_FIELDS = ("model", "model_options", "frontend", "frontend_options", "input_norm", "encoding_override", "labels")
"""Fields a resumed run may not change (they define the network and its input)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (besides the data rows).

    Attributes:
        model: registry name (``birdspec models``).
        model_options: extra backbone keyword arguments (e.g. ``{"dropout": 0.3}``).
        frontend: the spectrogram type (:data:`~birdspec.config.FRONTENDS`; default the study's logmel).
        frontend_options: :class:`~birdspec.config.FrontendConfig` fields to change (e.g.
            ``{"pcen_gain": 0.9}``), on top of the dataset's frontend settings and the type's defaults.
        input_norm: None (default): 'level' on dB spectrograms (logmel, linear, learnable-mel), 'band' on
            the others; 'level' keeps absolute level (an absolute floor, each band's noise floor removed,
            fixed dB units: quiet noise stays quiet); 'instance' (per-sample standardised, the study's),
            'band' (each band's median over time removed, then standardised) or 'none'
            (:mod:`birdspec.features.input_norm`).
        pretrained: None, 'imagenet' or a path to a torchvision state dict.
        first_conv: how pretrained RGB kernels become C channels: 'repeat' or 'average'.
        optimizer: adamw | adam | sgd (momentum 0.9) | rmsprop; None = the model's default.
        lr: peak learning rate; None = the model's default (mobilenet 0.01, resnet 0.001).
        weight_decay: None = the model's default (AdamW 0.01; resnet 1e-4); for models with an L2-SP
            grid (``birdnet-prior``) None = chosen on an inner validation split (:mod:`birdspec.training.l2sp`).
        batch_size: samples per step and device; None = the model's default (16).
        epochs: maximum number of epochs.
        schedule: 'constant', 'cosine' (to 0 at the last epoch) or 'onecycle'
            (lr/25 -> lr over the warm-up, then cosine to ~0).
        warmup_epochs: linear warm-up from ~0 (constant/cosine); for onecycle the
            rising phase (default 30 % of the run when 0).
        early_stopping_patience: stop after this many epochs without improvement
            of ``early_stopping_metric``; None = never.
        early_stopping_metric: 'val_loss' (default, lower is better) or 'val_acc'.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        grad_clip_norm: clip the global gradient norm; None = no clipping.
        random_crop: training crops at random positions of longer recordings.
        crops_per_recording: 0 = an epoch sees every window once (long recordings
            weigh more); K > 0 = an epoch draws K random crops from anywhere in
            every training recording (recordings weigh equally; needs random_crop).
        crop_s: training crop length in seconds for the window encoding (None =
            the full window); validation and evaluation still score full windows.
        crop_rule: 'anywhere' (default) or 'calls': random crops (``crops_per_recording`` or
            ``crop_s``) start where at most half the crop lies in the recording's quiet stretches
            (the no-bird samples' rule), so a crop labelled with the recording's species holds more
            than background.
        gain_db: random gain, uniform in [-gain_db, +gain_db] dB per sample (0 = off).
        time_mask_frames / freq_mask_bins: SpecAugment mask widths (up to N frames /
            N mel bins, ``num_masks`` masks per axis and channel; 0 = off).
        num_masks: masks per axis for SpecAugment.
        mixup_alpha: mixup of waveforms with Beta(alpha, alpha) weights (0 = off).
        encoding_override: None, or 'window' to train a per-window model on a
            stack10-prepared dataset (or 'stack10' on a window one with enough audio).
        device: auto (cuda > mps > cpu) | cpu | cuda | mps.
        precision: None = '16-mixed' on CUDA, '32-true' elsewhere.
        devices: number of devices; > 1 trains with DDP (strategy 'ddp').
        seed: seeds Python, NumPy, torch and data-loader workers.
        workers: data-loader worker processes; None = min(8, CPU cores - 1).
        max_minutes: stop at the end of the epoch after which the next epoch would
            not finish within this many minutes (None = no limit).
        progress_bar: Lightning's progress bar (running loss and accuracy).
        recipe: the recipe the settings started from (:meth:`from_recipe`;
            recorded for the reader, the other fields hold the values used).
        labels: 'primary' (the study's: softmax over the primary label) or 'multi' (sigmoid outputs,
            targets from primary + secondary labels; :mod:`birdspec.training.multilabel`).
        secondary_weight: target value of a secondary label with ``labels='multi'``, in [0, 1].
        loss: 'ce' (primary labels) or, with ``labels='multi'``, 'bce' (default), 'focal' or 'asl'
            (asymmetric loss); None = the labels' default. ``focal_gamma``, ``asl_gamma_neg``,
            ``asl_gamma_pos`` and ``asl_clip`` are their parameters.
        nocall_fraction: share of no-bird samples among the training samples: quiet stretches of the
            training recordings, built-in synthetic backgrounds (``synthetic_nocall``) and recordings of
            ``background_dir``. Their target is the implicit "no bird" class of a single-label model
            (activation ``softmax-background``) or all zeros for ``labels='multi'``; validation gets its own
            fixed no-bird windows. None (default): :data:`DEFAULT_NOCALL_FRACTION` for per-window samples,
            0 for stack10 (the study's recording classifier); 0: a closed-world model.
        synthetic_nocall: draw no-bird samples from the built-in synthetic backgrounds too
            (:mod:`birdspec.data.backgrounds`: silence, noise, wind, rain, hum, a frog/insect chorus at -90 to -20 dBFS).
        synthetic_calls: draw no-bird samples from synthetic call-like sounds too (trills, whistles,
            harmonic stacks, buzzes at other pitches: :func:`~birdspec.data.synthetic.other_calls`), so that
            a call that is none of the classes is "no bird" (off by default; not for the demo's classes).
        background_dir: a folder of recordings without the classes' birds, for no-bird samples.
        background_mix_dir: a folder of recordings mixed under training samples, with probability
            ``background_mix_probability`` at an SNR uniform in ``background_snr_db``.
        mix_nocall: mix the run's no-bird audio (quiet stretches of the training recordings, the synthetic
            backgrounds, ``background_dir``) under training samples the same way (with ``background_mix_dir``:
            either, as likely), so calls are also heard over beds at 0-20 dB SNR.
        thresholds_on: where the per-class detection thresholds (and the temperature) are chosen after
            training (:mod:`birdspec.training.detection`): 'val' (the validation rows and their no-bird
            windows) or 'train' (the training rows, in-sample: for runs whose validation rows are a test fold).
        temperature_scaling: fit a temperature on the same windows before choosing the thresholds, so the
            scores are closer to probabilities (stored in the checkpoint, applied by every runtime).
    """

    model: str = "mobilenetv2-seed"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    frontend: str = "logmel"
    frontend_options: Mapping[str, Any] = field(default_factory=dict)
    input_norm: str | None = None
    pretrained: str | None = None
    first_conv: str = "repeat"
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    epochs: int = 30
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    early_stopping_patience: int | None = None
    early_stopping_metric: str = "val_loss"
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None
    random_crop: bool = True
    crops_per_recording: int = 0
    crop_s: float | None = None
    crop_rule: str = "anywhere"
    gain_db: float = 0.0
    time_mask_frames: int = 0
    freq_mask_bins: int = 0
    num_masks: int = 1
    mixup_alpha: float = 0.0
    encoding_override: str | None = None
    device: str = "auto"
    precision: str | None = None
    devices: int = 1
    seed: int = 0
    workers: int | None = None
    max_minutes: float | None = None
    progress_bar: bool = True
    recipe: str | None = None
    labels: str = "primary"
    secondary_weight: float = 0.5
    loss: str | None = None
    focal_gamma: float = 2.0
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 1.0
    asl_clip: float = 0.05
    nocall_fraction: float | None = None
    synthetic_nocall: bool = True
    synthetic_calls: bool = False
    background_dir: str | None = None
    background_mix_dir: str | None = None
    background_snr_db: tuple[float, float] = (0.0, 20.0)
    background_mix_probability: float = 0.5
    mix_nocall: bool = False
    thresholds_on: str = "val"
    temperature_scaling: bool = False

    def __post_init__(self) -> None:
        def choice(name: str, value: Any, options: tuple[str, ...], *, optional: bool = False) -> None:
            if value is None and optional:
                return
            if value not in options:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")

        choice("optimizer", self.optimizer, OPTIMIZERS, optional=True)
        choice("schedule", self.schedule, SCHEDULES)
        choice("device", self.device, DEVICES)
        choice("precision", self.precision, PRECISIONS, optional=True)
        choice("early-stopping metric", self.early_stopping_metric, EARLY_STOPPING_METRICS)
        choice("first-conv mode", self.first_conv, FIRST_CONV_MODES)
        choice("encoding override", self.encoding_override, ENCODINGS, optional=True)
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"--warmup-epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(f"--early-stopping needs a patience >= 1 epoch, got {self.early_stopping_patience}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ConfigError(f"--grad-clip must be positive, got {self.grad_clip_norm}")
        if self.gain_db < 0 or self.time_mask_frames < 0 or self.freq_mask_bins < 0 or self.mixup_alpha < 0:
            raise ConfigError("--gain-db, --time-mask, --freq-mask and --mixup must be >= 0 (0 turns them off)")
        if self.crops_per_recording < 0:
            raise ConfigError(f"--crops-per-recording must be >= 0, got {self.crops_per_recording}")
        if self.crops_per_recording and not self.random_crop:
            raise ConfigError("--crops-per-recording draws random crops; drop --no-random-crop")
        if self.crop_s is not None and not self.crop_s > 0:
            raise ConfigError(f"--crop-s must be positive, got {self.crop_s}")
        choice("crop rule", self.crop_rule, CROP_RULES)
        if self.crop_rule != "anywhere" and not (self.crops_per_recording or self.crop_s):
            raise ConfigError("--crop-rule applies to random crops: give --crops-per-recording or --crop-s too")
        if self.num_masks < 1:
            raise ConfigError(f"num_masks must be >= 1, got {self.num_masks}")
        if self.devices < 1:
            raise ConfigError(f"--devices must be >= 1, got {self.devices}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.recipe is not None:
            from birdspec.training.recipes import get_recipe

            get_recipe(self.recipe)  # a known name
        choice("input norm", self.input_norm, INPUT_NORMS, optional=True)
        choice("threshold split", self.thresholds_on, THRESHOLD_SPLITS)
        from birdspec.training.multilabel import check_label_settings

        check_label_settings(self)  # labels, loss, no-bird and background settings
        if not isinstance(self.model_options, Mapping):
            raise ConfigError("model_options must be a mapping of backbone keyword arguments")
        object.__setattr__(self, "model_options", dict(self.model_options))  # a private copy
        choice("frontend", self.frontend, FRONTENDS)
        if not isinstance(self.frontend_options, Mapping):
            raise ConfigError("frontend_options must be a mapping of FrontendConfig fields")
        object.__setattr__(self, "frontend_options", dict(self.frontend_options))
        FrontendConfig().with_kind(self.frontend, **self.frontend_options)  # known options, valid values

    def frontend_config(self, base: FrontendConfig) -> FrontendConfig:
        """The spectrogram settings to train with: ``base`` (the dataset's) as this config's type and options."""
        return base.with_kind(self.frontend, **self.frontend_options)

    def __hash__(self) -> int:  # model_options is a dict; hash the JSON form
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    @classmethod
    def from_recipe(cls, recipe: str, *, encoding: str = "window", **overrides: Any) -> TrainConfig:
        """Recipe ``recipe``'s settings (:mod:`birdspec.training.recipes`) with ``overrides`` on top.

        ``encoding`` is the samples' encoding ('window' or 'stack10'): window-only
        settings such as short training crops are left out for stack10.
        """
        from birdspec.training.recipes import recipe_fields

        model = overrides.get("model", cls.model)
        return cls(**{**recipe_fields(recipe, model=model, encoding=encoding), "recipe": recipe, **overrides})

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The study's settings for ``model`` (its ``train_defaults``), with ``overrides``."""
        return cls(model=model, **overrides).resolved()

    def resolved(self) -> TrainConfig:
        """A copy with optimizer, lr, weight decay and batch size filled from the model's defaults, and the
        input norm from the spectrogram type (:func:`~birdspec.features.input_norm.default_norm`)."""
        from birdspec.features.input_norm import default_norm
        from birdspec.models.registry import get_spec

        spec = get_spec(self.model)
        defaults = {**FALLBACK_DEFAULTS, **dict(spec.train_defaults)}
        changes: dict[str, Any] = {
            name: defaults[name]
            for name in ("optimizer", "lr", "weight_decay", "batch_size")
            if getattr(self, name) is None and not (name == "weight_decay" and spec.l2sp_grid)  # chosen per run
        }
        if self.input_norm is None:
            changes["input_norm"] = default_norm(self.frontend)
        return replace(self, **changes) if changes else self

    def for_samples(self, encoding: str, *, model_input: str = "waveform") -> TrainConfig:
        """A copy with ``nocall_fraction`` decided for samples of ``encoding`` ('window' or 'stack10') when it
        was left None: :data:`DEFAULT_NOCALL_FRACTION` for per-window waveform models and for models that read
        embeddings (whatever the encoding: they predict per output window, and their no-bird samples are
        the cache's no-bird clips, :mod:`birdspec.training.samples`), else 0.

        Raises:
            ConfigError: no-bird samples asked for stack10 samples of a waveform model (a 50 s recording is
                not a window); ``crop_rule`` 'calls' for anything but window samples of a waveform model
                (the only samples it places).
        """
        if self.crop_rule != "anywhere" and (encoding != "window" or model_input != "waveform"):
            raise ConfigError(f"--crop-rule {self.crop_rule} applies to the window encoding of a waveform model, "
                              f"not {encoding} samples of a model that reads {model_input}s")
        if self.nocall_fraction is None:
            on = model_input == "embedding" or (encoding == "window" and model_input == "waveform")
            return replace(self, nocall_fraction=DEFAULT_NOCALL_FRACTION if on else 0.0)
        if self.nocall_fraction > 0 and encoding != "window" and model_input != "embedding":
            raise ConfigError(
                f"--nocall-fraction adds no-bird windows; {encoding} samples are whole recordings (the study's "
                "recording classifier): use --nocall-fraction 0, or train per window (--encoding-override window)"
            )
        return self

    @property
    def activation(self) -> str:
        """The activation a model trained with these settings scores with (:mod:`birdspec.models.activation`):
        'sigmoid' for multi-label runs, 'softmax-background' for single-label runs with no-bird samples,
        else 'softmax'."""
        if self.labels == "multi":
            return "sigmoid"
        return "softmax-background" if (self.nocall_fraction or 0.0) > 0 else "softmax"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (``model_options`` as a dict)."""
        out = dataclasses.asdict(self)
        out["model_options"] = dict(self.model_options)
        out["frontend_options"] = dict(self.frontend_options)
        out["background_snr_db"] = list(self.background_snr_db)
        out["multi_label"] = self.labels == "multi"  # read by CheckpointInfo (sigmoid scores)
        if self.nocall_fraction is not None:
            out["activation"] = self.activation  # read by CheckpointInfo
        return out

    @classmethod
    def completed(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A stored :meth:`to_dict` completed with today's defaults for the fields it predates, so a
        cross-validation or sweep started by an older birdspec compares equal and resumes."""
        return cls.from_dict(data).to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys (from newer versions) are ignored."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping to build TrainConfig, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def architecture_changes(self, other: TrainConfig) -> list[str]:
        """Names of :data:`ARCHITECTURE_FIELDS` that differ between ``self`` and ``other``."""
        return [
            name
            for name in ARCHITECTURE_FIELDS
            if (dict(getattr(self, name)) if name.endswith("_options") else getattr(self, name))
            != (dict(getattr(other, name)) if name.endswith("_options") else getattr(other, name))
        ]
