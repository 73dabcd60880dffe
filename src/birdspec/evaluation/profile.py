"""Model cost: parameters, multiply-adds per sample and CPU inference time per sample.

Multiply-adds are counted with forward hooks on every ``Conv2d`` and
``Linear`` layer for one sample (batch 1): a convolution costs
``out_elements * in_channels / groups * kh * kw``, a linear layer
``out_elements * in_features``. This is the usual "MACs" figure of CNN papers
(e.g. ~300 M for MobileNetV2 at 224 x 224); batch norm, activations, pooling
and the log-mel frontend (STFT + mel projection) are not included.

Inference time is wall-clock on the CPU for the whole model (frontend
included, raw audio in), in eval mode under ``torch.inference_mode``, after
warm-up, as the median over repeats of a small batch, divided by the batch
size. It depends on the machine and its load: compare numbers measured in one
process on one machine only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from birdspec.errors import ConfigError
from birdspec.runtime import cpu_threads

log = logging.getLogger(__name__)

MAX_WARMUP = 10


@dataclass(frozen=True)
class ModelProfile:
    """The cost of one model on one input shape.

    Attributes:
        num_parameters: all parameters (trainable and frozen).
        multiply_adds_per_sample: Conv2d + Linear multiply-adds for one sample.
        inference_ms_per_sample: CPU wall-clock per sample (median over repeats), None when not timed.
        input_shape: the per-sample input ``(C, T)`` (raw audio).
        batch_size: samples per timed forward pass.
        threads: torch CPU threads used for timing.
        note: what the figures leave out (e.g. the BirdNET backbone of an embedding head).
    """

    num_parameters: int
    multiply_adds_per_sample: int
    inference_ms_per_sample: float | None
    input_shape: tuple[int, ...]
    batch_size: int
    threads: int
    note: str = ""



def count_multiply_adds(model: nn.Module, example: torch.Tensor) -> int:
    """Conv2d + Linear multiply-adds of ``model(example)`` per sample (see the module doc).

    Args:
        model: any module; it runs once under ``torch.no_grad`` in eval mode.
        example: a batch ``(B, ...)``; the count is divided by ``B``.
    """
    if example.ndim < 1 or example.shape[0] < 1:
        raise ConfigError("count_multiply_adds needs a batch with at least one sample")
    total = [0]

    def conv_hook(module: nn.Conv2d, _inp, out) -> None:
        kh, kw = module.kernel_size
        total[0] += out.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inp, out) -> None:
        total[0] += out.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total[0] // example.shape[0])


def time_inference(
    model: nn.Module,
    example: torch.Tensor,
    *,
    repeats: int = 5,
    warmup: int = 2,
    threads: int | None = None,
) -> float:
    """Median CPU milliseconds per sample of ``model(example)`` (eval mode, inference mode).

    Warm-up runs at least ``warmup`` passes and continues (up to 10) while the
    passes still speed up by more than 20 %.

    Args:
        example: a batch ``(B, ...)`` on the CPU.
        threads: torch intra-op threads while timing (None: leave as is); restored afterwards.
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError("time_inference needs repeats >= 1 and warmup >= 0")
    was_training = model.training
    model.eval()
    try:
        times = []
        with cpu_threads(threads), torch.inference_mode():
            # Warm up (thread pools, kernel selection): at least `warmup` passes, and on while
            # passes still get faster by more than 20 % (at most MAX_WARMUP).
            previous = float("inf")
            for i in range(MAX_WARMUP):
                t0 = time.perf_counter()
                model(example)
                took = time.perf_counter() - t0
                if i + 1 >= warmup and took > previous / 1.2:
                    break
                previous = took
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(example)
                times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return float(np.median(times) * 1000.0 / example.shape[0])


def profile_model(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    timing: bool = True,
    batch_size: int = 4,
    repeats: int = 5,
    warmup: int = 2,
    threads: int | None = None,
    seed: int = 0,
) -> ModelProfile:
    """Parameters, multiply-adds and CPU time per sample of a raw-audio model.

    Args:
        model: raw audio ``(B, C, T)`` -> logits; moved to the CPU (a copy is not made).
        input_shape: one sample's shape ``(C, T)``.
        timing: also time inference on the CPU.
        batch_size / repeats / warmup / threads: timing settings.
    """
    from birdspec.models.registry import count_parameters

    model = model.to("cpu")
    gen = torch.Generator().manual_seed(seed)
    one = 0.1 * torch.randn((1, *input_shape), generator=gen)
    macs = count_multiply_adds(model, one)
    ms = None
    if timing:
        batch = 0.1 * torch.randn((batch_size, *input_shape), generator=gen)
        ms = time_inference(model, batch, repeats=repeats, warmup=warmup, threads=threads)
    return ModelProfile(
        num_parameters=count_parameters(model),
        multiply_adds_per_sample=macs,
        inference_ms_per_sample=ms,
        input_shape=tuple(int(s) for s in input_shape),
        batch_size=batch_size,
        threads=int(threads or torch.get_num_threads()),
    )


def profile_checkpoint(checkpoint: Any, **kwargs: Any) -> ModelProfile:
    """:func:`profile_model` of a checkpoint (file, run folder or Checkpoint) on its own input shape."""
    from dataclasses import replace

    from birdspec.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    model = ckpt.build_model()
    if ckpt.input == "embedding":
        # one recording of 60 s = 20 BirdNET windows of 3 s; the (frozen, TFLite) backbone is not counted
        shape = (EMBEDDING_PROFILE_WINDOWS, ckpt.in_channels)
        prof = profile_model(model, input_shape=shape, **kwargs)
        return replace(prof, note="head only, on 20 window embeddings (60 s); the BirdNET backbone is not included")
    shape = (ckpt.encoding.in_channels, ckpt.encoding.window_samples(ckpt.frontend.sample_rate_hz))
    return profile_model(model, input_shape=shape, **kwargs)


EMBEDDING_PROFILE_WINDOWS = 20
