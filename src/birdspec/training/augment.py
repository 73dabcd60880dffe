"""Batch augmentations run inside the training step (on the training device).

- :func:`random_gain`: per-sample gain on waveforms ``(B, C, T)``.
- :func:`mixup`: convex combinations of waveform pairs and their labels.
- :func:`spec_augment`: time and frequency masks on (normalised) log-mel
  spectrograms ``(B, C, F, frames)``, after the model's frontend.

All draw from torch's global RNG (seeded by ``seed_everything``), on the
device of the batch.
"""

from __future__ import annotations

import torch


def random_gain(wave: torch.Tensor, *, max_db: float) -> torch.Tensor:
    """Scale every sample of ``wave`` ``(B, C, T)`` by a gain uniform in ``[-max_db, +max_db]`` dB.

    One gain per sample (all its channels), so the windows of a stack stay consistent.
    """
    if max_db <= 0:
        return wave
    shape = (wave.shape[0],) + (1,) * (wave.ndim - 1)
    gain_db = (torch.rand(shape, device=wave.device) * 2 - 1) * max_db
    return wave * torch.pow(10.0, gain_db / 20.0).to(wave.dtype)


def mixup(
    x: torch.Tensor, y: torch.Tensor, *, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix a batch with a shuffled copy of itself.

    Args:
        x: inputs ``(B, ...)``.
        y: label ids ``(B,)``.
        alpha: Beta(alpha, alpha) concentration (> 0).

    Returns:
        ``(x_mixed, y_a, y_b, lam)``: the loss is ``lam * CE(y_a) + (1 - lam) * CE(y_b)``.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def _axis_masks(batch: int, channels: int, size: int, max_width: int, num_masks: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(B, C, size)``: True where one of ``num_masks`` random spans of width 0..max_width lies."""
    max_width = min(max_width, size)
    width = torch.randint(0, max_width + 1, (batch, channels, num_masks, 1), device=device)
    start = (torch.rand(batch, channels, num_masks, 1, device=device) * (size - width + 1)).long()
    pos = torch.arange(size, device=device).view(1, 1, 1, size)
    return ((pos >= start) & (pos < start + width)).any(dim=2)


def spec_augment(
    spec: torch.Tensor, *, time_mask_frames: int = 0, freq_mask_bins: int = 0, num_masks: int = 1, fill: float = 0.0
) -> torch.Tensor:
    """SpecAugment masking of ``spec`` ``(B, C, F, frames)``.

    Every channel of every sample gets ``num_masks`` time masks of width
    ``0..time_mask_frames`` frames and ``num_masks`` frequency masks of width
    ``0..freq_mask_bins`` mel bins, set to ``fill`` (0 = the mean of an
    instance-normalised spectrogram). Returns a new tensor.
    """
    if time_mask_frames <= 0 and freq_mask_bins <= 0:
        return spec
    b, c, f, t = spec.shape
    mask = torch.zeros(b, c, f, t, dtype=torch.bool, device=spec.device)
    if freq_mask_bins > 0:
        mask |= _axis_masks(b, c, f, freq_mask_bins, num_masks, spec.device).unsqueeze(-1)
    if time_mask_frames > 0:
        mask |= _axis_masks(b, c, t, time_mask_frames, num_masks, spec.device).unsqueeze(-2)
    return spec.masked_fill(mask, fill)
