"""Self-describing checkpoints.

A checkpoint is a ``torch.save`` of plain data (dicts, lists, strings,
numbers, tensors), so it loads with ``torch.load(weights_only=True)``:

    format            "birdspec-checkpoint"
    format_version    1
    birdspec_version  version that wrote it
    model             {"name", "in_channels", "num_classes", "options", "input_norm", ...}
    classes           list of labels (output index -> label)
    class_info        [{"label", "scientific_name", "common_name"}, ...]
    frontend          FrontendConfig as a dict
    encoding          EncodingConfig as a dict
    train_config      the training settings as a dict
    state_dict        model weights (frontend buffers are rebuilt from ``frontend``)
    epoch, metrics    where training was and what it measured
    extra             anything else (dataset path, run id, ...)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from birdspec import __version__
from birdspec.config import EncodingConfig, FrontendConfig, from_dict, to_dict
from birdspec.errors import CheckpointError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "birdspec-checkpoint"
CHECKPOINT_VERSION = 1


def make_checkpoint(
    model: nn.Module,
    *,
    model_config: Mapping[str, Any],
    classes: list[str],
    frontend: FrontendConfig,
    encoding: EncodingConfig,
    class_info: list[dict] | None = None,
    train_config: Mapping[str, Any] | None = None,
    epoch: int | None = None,
    metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of ``model`` (weights copied to the CPU)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "birdspec_version": __version__,
        "model": dict(model_config),
        "classes": list(classes),
        "class_info": list(class_info or [{"label": c} for c in classes]),
        "frontend": to_dict(frontend),
        "encoding": to_dict(encoding),
        "train_config": _plain(dict(train_config or {})),
        "state_dict": state,
        "epoch": epoch,
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "extra": _plain(dict(extra or {})),
    }


def _plain(value: Any) -> Any:
    """Turn paths, tuples and numpy scalars into what ``weights_only`` loading accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """Write atomically (a temp file renamed), so an interrupt never leaves a half file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(dict(checkpoint), tmp)
    tmp.replace(p)
    return p


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint dict (``weights_only=True``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "checkpoints/best.pt", "last.pt", "checkpoints/last.pt"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise CheckpointError(f"{path}: no best.pt or last.pt in this folder; pass a checkpoint file")
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types
        raise CheckpointError(f"{p}: not a loadable checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not a birdspec checkpoint (no format marker)")
    if int(ckpt.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{p}: written by a newer birdspec ({ckpt.get('birdspec_version')}); upgrade birdspec")
    ckpt["path"] = str(p)
    return ckpt


def checkpoint_frontend(ckpt: Mapping[str, Any]) -> FrontendConfig:
    return from_dict(FrontendConfig, ckpt["frontend"])


def checkpoint_encoding(ckpt: Mapping[str, Any]) -> EncodingConfig:
    return from_dict(EncodingConfig, ckpt["encoding"])


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, load its weights, put it in eval mode.

    Returns ``(model, checkpoint_dict)``.
    """
    ckpt = read_checkpoint(path)
    from birdspec.models.registry import model_from_checkpoint

    model = model_from_checkpoint(ckpt)
    model.to(map_location).eval()
    return model, ckpt
