"""The PyTorch runtime: a checkpoint's own modules (the reference numerics; the runtime on CUDA).

A ``frontend -> norm -> backbone`` model (:class:`~birdspec.models.registry.BirdspecModel`)
is split into its two stages (per-window features, then the CNN on stacked
inputs); on the CPU the backbone runs channels-last (~2x faster depthwise and
pointwise convolutions).
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any, cast

import numpy as np

from birdspec.errors import CheckpointError
from birdspec.models.checkpoint import Checkpoint
from birdspec.prediction.runtime_types import WindowRuntime
from birdspec.runtime import cpu_threads


class TorchRuntime(WindowRuntime):
    """Scores windows with the checkpoint's PyTorch model on ``device`` ('cpu' or 'cuda').

    ``threads`` (None: PyTorch's count as it is) is PyTorch's process-wide intra-op thread count while the
    runtime is open; :meth:`close` gives back the count it found (a library call must not change the
    arithmetic of the caller's later training: sums differ with the thread count).
    """

    def __init__(self, ckpt: Checkpoint, *, device: str, activation: str = "auto", threads: int | None = None) -> None:
        import torch

        from birdspec.models.registry import BirdspecModel

        super().__init__(ckpt.info.with_activation(activation), backend="torch", device=device)
        model = ckpt.build_model(device=device)
        if not isinstance(model, BirdspecModel):
            raise CheckpointError(f"model {ckpt.name!r} does not take waveforms; it cannot score windows")
        if device == "cpu":
            model.backbone.to(memory_format=torch.channels_last)
        self.model = model
        self._torch = torch
        self._lock = threading.Lock()
        self._threads = ExitStack()  # open: the thread count of this runtime; closed: the caller's again
        self._threads.enter_context(cpu_threads(threads))

    def features(self, waves: np.ndarray) -> Any:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device, non_blocking=True)
        with torch.inference_mode():
            return self.model.norm(self.model.frontend(x[:, None]))[:, 0]

    def head(self, x: Any) -> np.ndarray:
        torch = self._torch
        with self._lock, torch.inference_mode():
            if self.device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            return cast(np.ndarray, self.model.backbone(x).float().cpu().numpy())  # Module calls are typed Any

    def stack(self, rows: list[Any]) -> Any:
        return self._torch.stack(rows)

    def close(self) -> None:
        self._threads.close()
