"""Model registry, backbones, pretrained-weight adaptation and checkpoints."""

from birdspec.models import birdnet_head  # noqa: E402,F401  (registers birdnet-linear/-mlp; imports no BirdNET code)
from birdspec.models.checkpoint import load_model, make_checkpoint, read_checkpoint, save_checkpoint
from birdspec.models.registry import BirdspecModel, ModelSpec, build_model, get_spec, list_models, register

__all__ = [
    "BirdspecModel",
    "ModelSpec",
    "build_model",
    "get_spec",
    "list_models",
    "register",
    "load_model",
    "make_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
