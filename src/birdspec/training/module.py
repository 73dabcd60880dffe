"""The LightningModule: loss, augmentation on the device, metrics, optimizer and schedule."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from birdspec.errors import TrainingError
from birdspec.models.activation import background_logits, has_background
from birdspec.training.augment import mixup, random_gain, spec_augment
from birdspec.training.config import TrainConfig
from birdspec.training.multilabel import multilabel_loss, top1_hits
from birdspec.training.schedule import build_optimizer, lr_multiplier

log = logging.getLogger(__name__)


def validation_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The logged ``val_loss`` of a batch: cross entropy on label ids ``(B,)``, plain BCE on
    multi-label targets ``(B, K)`` (no label smoothing, no focal/ASL terms); ``logits`` ``(B, K)``, or
    ``(B, K + 1)`` with the no-bird logit (:func:`fit_logits`)."""
    if y.ndim == 1:
        return F.cross_entropy(logits, y)
    return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))


def validation_parts(hits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[hits, count]`` of the species samples (the validation recordings' own) and of the no-bird samples
    of a validation batch, as a ``(4,)`` float tensor: ``hits`` per sample (:func:`top1_hits`), ``y`` label
    ids ``(B,)`` (a no-bird sample's is ``num_classes``, the implicit class K) or multi-label targets
    ``(B, K)`` (a no-bird sample's are all zero)."""
    nobird = (y == num_classes) if y.ndim == 1 else ~(y > 0).any(dim=1)
    species = ~nobird
    hits = hits.float()
    return torch.stack([(hits * species).sum(), species.sum().float(), (hits * nobird).sum(), nobird.sum().float()])


def part_accuracies(parts: torch.Tensor) -> tuple[float, float]:
    """``(val_acc_species, val_acc_nobird)`` of summed :func:`validation_parts`: NaN for a part without samples."""
    hits_species, n_species, hits_nobird, n_nobird = parts.detach().cpu().double().tolist()
    return (hits_species / n_species if n_species > 0 else float("nan"),
            hits_nobird / n_nobird if n_nobird > 0 else float("nan"))


def fit_logits(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """The logits the loss and the accuracy see: ``(B, K + 1)`` with the implicit no-bird class (logit 0,
    label id K) for ``softmax-background`` runs, else ``logits`` as they are."""
    return background_logits(logits) if has_background(activation) else logits


class BirdspecLightning(pl.LightningModule):
    """Trains a birdspec model (raw waveforms ``(B, C, T)`` -> logits ``(B, K)``).

    Augmentations run here, on the training device: random gain and mixup on
    the waveforms, SpecAugment masks on the normalised spectrogram between
    the model's frontend and its backbone. Validation sees clean audio.

    Logged per epoch (also synced across DDP processes): ``train_loss``,
    ``train_acc`` (with mixup: against the dominant label of each mixed
    pair), ``val_loss`` (plain cross entropy, no label smoothing), ``val_acc``;
    with multi-label targets (``labels='multi'``) the configured sigmoid loss, plain BCE for
    ``val_loss``, and accuracy = the arg-max class is a true label (:func:`top1_hits`); a
    single-label run with no-bird samples (activation ``softmax-background``) has K + 1 classes in
    its loss and accuracy, the last one "no bird" (its logit fixed at 0). ``val_acc`` is over all the
    validation samples, the fixed no-bird ones included (:mod:`birdspec.training.samples`: at least
    :data:`~birdspec.training.samples.MIN_NOCALL_VAL` of them, which can outnumber a small validation
    set's species samples); ``val_acc_species`` and ``val_acc_nobird`` are its two parts: the accuracy
    on the validation recordings' samples (a "no bird" answer counts as wrong there, so it is at most
    ``birdspec evaluate``'s accuracy of the same checkpoint, an arg-max over the K species) and on the
    no-bird samples (NaN when the run has none; :func:`validation_parts`).
    The progress bar shows the running ``loss``/``acc`` of the current epoch.

    Raises:
        TrainingError: when the training loss is not finite.
    """

    def __init__(self, model: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self._sum_loss = 0.0
        self._sum_correct = 0.0
        self._seen = 0
        self.uses_waveforms = all(hasattr(model, a) for a in ("features", "backbone"))
        self.activation = config.activation
        self._val_parts: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # ------------------------------------------------------------------ training
    def _train_logits(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if self.uses_waveforms and (c.time_mask_frames > 0 or c.freq_mask_bins > 0):
            model: Any = self.model  # a waveform model: features() and backbone (uses_waveforms)
            spec = model.features(x)  # (B, C, n_mels, frames), normalised
            spec = spec_augment(
                spec, time_mask_frames=c.time_mask_frames, freq_mask_bins=c.freq_mask_bins, num_masks=c.num_masks
            )
            return model.backbone(spec)
        return self.model(x)

    def on_train_start(self) -> None:
        """Apply the configured lr and weight decay (also after a resume that changed them).

        A restored optimizer keeps the lr of its last step; the schedule's multiplier for the
        current step is re-applied here so a resumed run with more epochs continues smoothly.
        """
        c = self.config
        lr = c.lr
        if lr is None:  # pragma: no cover - train() resolves its config (TrainConfig.resolved) first
            raise RuntimeError("BirdspecLightning needs a resolved TrainConfig (its lr is None)")
        schedulers = [s.scheduler for s in self.trainer.lr_scheduler_configs]
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
                group["initial_lr"] = lr
                group["weight_decay"] = c.weight_decay
        for s in schedulers:
            if isinstance(s, torch.optim.lr_scheduler.LambdaLR):
                s.base_lrs = [lr for _ in s.base_lrs]
                for group, fn in zip(s.optimizer.param_groups, s.lr_lambdas, strict=True):
                    group["lr"] = lr * fn(s.last_epoch)

    def on_train_epoch_start(self) -> None:
        self._sum_loss, self._sum_correct, self._seen = 0.0, 0.0, 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        c = self.config
        x, y = batch
        if self.uses_waveforms and c.gain_db > 0:
            x = random_gain(x, max_db=c.gain_db)
        if c.mixup_alpha > 0:
            x, y_a, y_b, lam = mixup(x, y, alpha=c.mixup_alpha)
        else:
            y_a, y_b, lam = y, y, 1.0
        logits = fit_logits(self._train_logits(x).float(), self.activation)
        loss = self._loss(logits, y_a, smoothing=c.label_smoothing)
        if lam < 1.0:
            loss = lam * loss + (1.0 - lam) * self._loss(logits, y_b, smoothing=c.label_smoothing)
        if not torch.isfinite(loss):
            if self._trainer is not None:
                opt = self.optimizers()  # one optimizer (a list only with several)
                lr = (opt[0] if isinstance(opt, list) else opt).param_groups[0]["lr"]
            else:
                lr = c.lr
            raise TrainingError(
                f"loss became NaN at epoch {self.current_epoch + 1} step {batch_idx + 1} "
                f"(global step {self.global_step + 1}); lower --lr (now {lr:.3g}), add --grad-clip, "
                "or train with --precision 32-true; if it happens at the first step, check the data"
            )
        target = y_a if lam >= 0.5 else y_b
        correct = top1_hits(logits, target)
        n = int(y.shape[0])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log("train_acc", correct.mean(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self._sum_loss += float(loss.detach()) * n
        self._sum_correct += float(correct.sum())
        self._seen += n
        self.log("loss", self._sum_loss / self._seen, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        self.log("acc", self._sum_correct / self._seen, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return loss

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.0) -> torch.Tensor:
        """Cross entropy on label ids; with multi-label targets ``(B, K)`` the configured sigmoid loss
        (validation: :func:`validation_loss`)."""
        if not self.training:
            return validation_loss(logits, y)
        if y.ndim == 1:
            return F.cross_entropy(logits, y, label_smoothing=smoothing)
        return multilabel_loss(logits, y, self.config, smoothing=smoothing)

    # ---------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_parts = None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        raw = self.model(x).float()
        logits = fit_logits(raw, self.activation)
        n = int(y.shape[0])
        self.log("val_loss", self._loss(logits, y), on_step=False, on_epoch=True, batch_size=n, sync_dist=True, prog_bar=True)
        hits = top1_hits(logits, y)
        self.log("val_acc", hits.mean(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True, prog_bar=True)
        parts = validation_parts(hits, y, int(raw.shape[1]))
        self._val_parts = parts if self._val_parts is None else self._val_parts + parts

    def on_validation_epoch_end(self) -> None:
        """``val_acc_species`` and ``val_acc_nobird``: the two parts of ``val_acc`` (summed over DDP processes)."""
        if self._val_parts is None:
            return
        parts = self.trainer.strategy.reduce(self._val_parts, reduce_op="sum")
        species, nobird = part_accuracies(parts)
        self.log("val_acc_species", species, on_step=False, on_epoch=True, sync_dist=False)
        self.log("val_acc_nobird", nobird, on_step=False, on_epoch=True, sync_dist=False)

    # ----------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Any:
        c = self.config
        assert c.lr is not None and c.weight_decay is not None and c.optimizer is not None  # resolved by train()
        optimizer = build_optimizer(self.model.parameters(), name=c.optimizer, lr=c.lr, weight_decay=c.weight_decay)
        if c.schedule == "constant" and c.warmup_epochs == 0:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = total / max(1, int(self.trainer.max_epochs or c.epochs))
        warmup = int(round(c.warmup_epochs * steps_per_epoch))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(c.schedule, total_steps=total, warmup_steps=warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
