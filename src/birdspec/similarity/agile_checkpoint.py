"""An agile classifier of a BirdNET index as a normal birdspec checkpoint (``birdspec predict`` runs it).

The classifier was fitted on the index's unit vectors, one BirdNET window (3 s) each; the checkpoint is a
``birdnet-linear`` head that does the same on new audio: BirdNET embeddings of the windows inside an output
window, their mean scaled to unit length (:class:`~birdspec.models.birdnet_head.UnitNorm`), one linear layer,
sigmoid scores per species. Its output windows are the index's (3 s, so each is scored from exactly the one
BirdNET window an index row holds), and its threshold is the round's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def save_agile_checkpoint(path: Path, weights: Sequence[tuple[np.ndarray, float]], *, species: list[str], index: Any,
                          threshold: float, summary: Sequence[Mapping[str, Any]]) -> Path:
    """Write the classifiers ``weights`` (per species ``(w (D,), b)``) as the checkpoint ``path``; returns it."""
    import torch

    from birdspec.config import EncodingConfig, FrontendConfig
    from birdspec.models.birdnet_head import build_head
    from birdspec.models.checkpoint import make_checkpoint, save_checkpoint
    from birdspec.models.checkpoint_info import Detection

    head = build_head("birdnet-linear", num_classes=len(species), in_channels=int(index.info.dim),
                      options={"pooling": "mean", "layer_norm": False, "unit_norm": True, "dropout": 0.0})
    linear = head.classifier[-1]
    if not isinstance(linear, torch.nn.Linear):  # build_head's linear family ends in one
        raise TypeError(f"a birdnet-linear head ends in a Linear layer, not {type(linear).__name__}")
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(np.stack([w for w, _b in weights])))
        linear.bias.copy_(torch.as_tensor([b for _w, b in weights], dtype=torch.float32))
    detection = Detection(thresholds=tuple(float(threshold) for _ in species),
                          chosen_on="the agile round's setting (birdspec agile --threshold)",
                          rule="a window is a call when its sigmoid score reaches the threshold",
                          per_class=tuple(dict(s) for s in summary))
    ckpt = make_checkpoint(
        head, model_config=head.config, classes=list(species), frontend=FrontendConfig(),
        encoding=EncodingConfig(name="window", window_s=float(index.info.window_s), short_policy="pad"),
        train_config={"model": "birdnet-linear", "agile": True, "index": str(index.folder)},
        activation="sigmoid", detection=detection,
        extra={"agile": {"index": str(index.folder), "backbone_version": index.info.backbone_version}},
    )
    return save_checkpoint(ckpt, path)
