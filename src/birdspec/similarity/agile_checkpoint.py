"""An agile classifier as a normal birdspec checkpoint (``birdspec predict`` runs it).

The classifier was fitted on the index's unit vectors, one window each; the checkpoint does the same on new
audio, with sigmoid scores per species and the round's threshold stored:

- a BirdNET index: a ``birdnet-linear`` head: BirdNET embeddings of the windows inside an output window (its
  window rule ``inside``), their
  mean scaled to unit length (:class:`~birdspec.models.birdnet_head.UnitNorm`), one linear layer. Its output
  windows are the index's (3 s, so each is scored from exactly the one BirdNET window an index row holds);
- an index of a birdspec run's features: that run's network (frontend, input norm, every layer and weight) with
  its final Linear layer replaced by the classifier, which reads its features scaled to unit length
  (the model config's ``feature_norm: unit``, :func:`~birdspec.models.registry.set_feature_norm`). The run must
  be the one the index was built with (its SHA-256 is checked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def save_agile_checkpoint(path: Path, weights: Sequence[tuple[np.ndarray, float]], *, species: list[str], index: Any,
                          threshold: float, summary: Sequence[Mapping[str, Any]]) -> Path:
    """Write the classifiers ``weights`` (per species ``(w (D,), b)``) as the checkpoint ``path``; returns it.

    Raises:
        CheckpointError: a run index whose run is gone or has changed since it was indexed.
    """
    from birdspec.models.checkpoint import make_checkpoint, save_checkpoint
    from birdspec.models.checkpoint_info import Detection

    detection = Detection(thresholds=tuple(float(threshold) for _ in species),
                          chosen_on="the agile round's setting (birdspec agile --threshold)",
                          rule="a window is a call when its sigmoid score reaches the threshold",
                          per_class=tuple(_at_threshold(s) for s in summary))
    agile = {"index": str(index.folder), "backbone": index.info.backbone, "backbone_version": index.info.backbone_version}
    if index.info.backbone == "birdnet":
        head, model_config, frontend, encoding, train_config = _birdnet_head(weights, species=species, index=index)
    else:
        head, model_config, frontend, encoding, train_config = _run_network(weights, species=species, index=index)
        agile["checkpoint"] = index.info.checkpoint
    ckpt = make_checkpoint(head, model_config=model_config, classes=list(species), frontend=frontend, encoding=encoding,
                           train_config={**train_config, "agile": True, "index": str(index.folder)},
                           activation="sigmoid", detection=detection, extra={"agile": agile})
    return save_checkpoint(ckpt, path)


def _at_threshold(species: Mapping[str, Any]) -> dict[str, Any]:
    """A species' round summary as a checkpoint's per-class figures (``birdspec info``): the verdicts'
    cross-validated precision and recall at the threshold, their F1, and the counts."""
    p, r = species.get("cv_precision"), species.get("cv_recall")
    f1 = round(2 * p * r / (p + r), 4) if p is not None and r is not None and p + r > 0 else None
    return {"precision": p, "recall": r, "f1": f1, "on": "the round's verdicts, cross-validated",
            **{k: species[k] for k in ("positives", "negatives", "random_negatives") if k in species}}


def _stack(weights: Sequence[tuple[np.ndarray, float]]) -> tuple[Any, Any]:
    import torch

    return (torch.as_tensor(np.stack([w for w, _b in weights]), dtype=torch.float32),
            torch.as_tensor([b for _w, b in weights], dtype=torch.float32))


def _birdnet_head(weights: Sequence[tuple[np.ndarray, float]], *, species: list[str], index: Any) -> tuple[Any, ...]:
    import torch

    from birdspec.birdnet.geometry import INSIDE_RULE
    from birdspec.config import EncodingConfig, FrontendConfig
    from birdspec.models.birdnet_head import build_head

    head = build_head("birdnet-linear", num_classes=len(species), in_channels=int(index.info.dim),
                      options={"pooling": "mean", "layer_norm": False, "unit_norm": True, "dropout": 0.0})
    head.config["window_rule"] = INSIDE_RULE  # an output window of the index's is exactly one BirdNET window
    linear = head.classifier[-1]
    if not isinstance(linear, torch.nn.Linear):  # build_head's linear family ends in one
        raise TypeError(f"a birdnet-linear head ends in a Linear layer, not {type(linear).__name__}")
    weight, bias = _stack(weights)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    encoding = EncodingConfig(name="window", window_s=float(index.info.window_s), short_policy="pad")
    return head, head.config, FrontendConfig(), encoding, {"model": "birdnet-linear"}


def _run_network(weights: Sequence[tuple[np.ndarray, float]], *, species: list[str], index: Any) -> tuple[Any, ...]:
    """The indexed run's network, its final Linear layer the classifier (reading unit-length features)."""
    from birdspec.errors import BirdspecError, CheckpointError
    from birdspec.models.checkpoint import read_checkpoint, resolve_checkpoint_path
    from birdspec.models.registry import final_linear, model_from_config
    from birdspec.prediction.onnx_runtime import file_sha256

    try:  # the run folder or file the index was built with, resolved as it was then
        source = resolve_checkpoint_path(str(index.info.checkpoint or ""))
    except BirdspecError as exc:
        raise CheckpointError(f"{index.folder}: its run's checkpoint is gone ({exc}); the classifier needs that network "
                              "(put it back, or index the archive again with the run you keep)") from exc
    if index.info.checkpoint_sha256 and file_sha256(source) != index.info.checkpoint_sha256:
        raise CheckpointError(f"{source} has changed since {index.folder} was built; its features are not the index's: "
                              "index again (birdspec index ... --overwrite) or restore that checkpoint")
    run = read_checkpoint(source)
    config = {**run.model, "num_classes": len(species), "feature_norm": "unit"}
    model = model_from_config(config, run.frontend)
    linear = final_linear(model)
    name = next(n for n, m in model.named_modules() if m is linear)
    weight, bias = _stack(weights)
    state = {**run.state_dict, f"{name}.weight": weight, f"{name}.bias": bias}
    model.load_state_dict(state)
    return model, config, run.frontend, run.encoding, {"model": run.name, "backbone_checkpoint": str(source)}
