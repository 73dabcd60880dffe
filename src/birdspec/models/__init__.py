"""Models: the registry (:mod:`~birdspec.models.registry`), backbones, pretrained-weight adaptation,
the BirdNET heads and checkpoints (:mod:`~birdspec.models.checkpoint`, the one owner of checkpoint files).

Names are imported lazily, so ``birdspec.models.checkpoint`` (and the prediction path that
reads exported runtimes) does not import PyTorch.
"""

from __future__ import annotations

from birdspec.lazy import lazy_exports

_EXPORTS = {
    "BirdspecModel": "birdspec.models.registry",
    "ModelSpec": "birdspec.models.registry",
    "build_model": "birdspec.models.registry",
    "get_spec": "birdspec.models.registry",
    "list_models": "birdspec.models.registry",
    "register": "birdspec.models.registry",
    "Checkpoint": "birdspec.models.checkpoint",
    "load_model": "birdspec.models.checkpoint",
    "make_checkpoint": "birdspec.models.checkpoint",
    "read_checkpoint": "birdspec.models.checkpoint",
    "save_checkpoint": "birdspec.models.checkpoint",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports('birdspec.models', _EXPORTS)
