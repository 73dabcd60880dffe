"""Checkpoints have one owner: this module finds, reads, validates and describes them.

A checkpoint is a ``torch.save`` of plain data (dicts, lists, strings,
numbers, tensors), so it loads with ``torch.load(weights_only=True)``:

    format            "birdspec-checkpoint"
    format_version    1 (this birdspec reads :data:`READABLE_VERSIONS`)
    birdspec_version  version that wrote it
    model             {"name", "in_channels", "num_classes", "options", "input_norm", "input", ...}
    classes           list of labels (output index -> label)
    class_info        [{"label", "scientific_name", "common_name"}, ...]
    frontend          FrontendConfig as a dict
    encoding          EncodingConfig as a dict
    train_config      the training settings as a dict
    state_dict        model weights (frontend buffers are rebuilt from ``frontend``)
    epoch, metrics    where training was and what it measured
    extra             anything else (dataset path, run id, ...)

- :func:`resolve_checkpoint_path`: a file, or a run folder (``checkpoints/best.pt``,
  ``checkpoints/last.pt``); no PyTorch import.
- :func:`read_checkpoint`: reads a file once (``weights_only=True``) or takes a dict,
  validates it and returns a :class:`Checkpoint`: the :class:`CheckpointInfo`
  (model, classes, frontend, encoding, input kind, activation, training config)
  plus the weights. :meth:`Checkpoint.build_model` rebuilds the network.
- :class:`CheckpointInfo` alone is everything but the weights, JSON round-trip and
  torch-free, so an exported runtime carries it and prediction never needs PyTorch.

Every inconsistency is a :class:`~birdspec.errors.CheckpointError` naming what is
wrong: no weights, a class list whose length differs from the network's outputs,
an encoding whose channel count contradicts the first layer's weights, an invalid
frontend, an unknown model, a format version from the future.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from birdspec import __version__
from birdspec.config import EncodingConfig, FrontendConfig, to_dict
from birdspec.errors import BirdspecError, CheckpointError
from birdspec.fileio import atomic_path
from birdspec.models.activation import ACTIVATIONS
from birdspec.models.checkpoint_info import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    MODEL_INPUTS,
    READABLE_VERSIONS,
    CheckpointInfo,
    Detection,
)

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVATIONS", "CHECKPOINT_FORMAT", "CHECKPOINT_NAMES", "CHECKPOINT_VERSION", "CHECKPOINTS_DIR", "Detection", "MODEL_INPUTS",
    "READABLE_VERSIONS", "Checkpoint", "CheckpointInfo", "load_model", "make_checkpoint", "peek_checkpoint",
    "read_checkpoint", "resolve_checkpoint_path", "run_checkpoint", "save_checkpoint",
]

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_NAMES = ("best", "last")
"""A run folder's checkpoints: ``checkpoints/best.pt`` (best validation accuracy) and ``last.pt``."""


# --------------------------------------------------------------------------- paths


def run_checkpoint(run_dir: str | Path, which: str) -> Path:
    """``RUN_DIR/checkpoints/<which>.pt`` (the path; it may not exist)."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"{which}.pt"


def resolve_checkpoint_path(path: str | Path, *, which: str | None = None) -> Path:
    """The checkpoint file ``path`` names: the file itself, or a run folder's checkpoint.

    Args:
        path: a ``.pt`` file, a run folder (``checkpoints/{best,last}.pt``) or a
            ``checkpoints`` folder.
        which: 'best' or 'last' to require that checkpoint of a folder; None takes
            best.pt, else last.pt (an interrupted run).

    Raises:
        CheckpointError: nothing usable there (the message says what to pass).
    """
    if which is not None and which not in CHECKPOINT_NAMES:
        raise CheckpointError(f"unknown checkpoint {which!r}; use {' or '.join(CHECKPOINT_NAMES)} (or a .pt file)")
    p = Path(path)
    if p.is_dir():
        names = [which] if which else list(CHECKPOINT_NAMES)
        for name in names:
            for cand in (p / CHECKPOINTS_DIR / f"{name}.pt", p / f"{name}.pt"):
                if cand.is_file():
                    return cand
        wanted = f"{which}.pt" if which else "best.pt or last.pt"
        raise CheckpointError(
            f"{p}: no {wanted} in this folder (nor in {CHECKPOINTS_DIR}/); pass a checkpoint file, or a run "
            "folder whose training finished an epoch (`birdspec train --resume` continues an unfinished one)"
        )
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file or run folder")
    return p


# --------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class Checkpoint(CheckpointInfo):
    """A read and validated checkpoint: its :class:`CheckpointInfo` and its weights.

    Attributes:
        state_dict: parameter name -> tensor (on the CPU).
    """

    state_dict: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path | None:
        """The file it was read from (None for a checkpoint made in memory)."""
        return None if self.source.startswith("<") else Path(self.source)

    @property
    def info(self) -> CheckpointInfo:
        """The metadata alone (what an exported runtime keeps)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(CheckpointInfo)}
        return CheckpointInfo(**values)

    def build_model(self, *, device: Any = "cpu") -> Any:
        """The network with its weights, in eval mode on ``device``.

        Raises:
            CheckpointError: the weights do not fit the architecture the checkpoint describes.
        """
        from birdspec.models.registry import model_from_config

        try:
            model = model_from_config(self.model, self.frontend)
        except BirdspecError as exc:
            raise CheckpointError(f"{self.source}: cannot rebuild model {self.name!r} ({exc})") from exc
        try:
            model.load_state_dict(dict(self.state_dict))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(x.strip() for x in first[:3])
            raise CheckpointError(f"{self.source}: the weights do not fit model {self.name!r} ({detail[:300]})") from exc
        return model.to(device).eval()


def _check_weights(info: CheckpointInfo, state: Any) -> dict[str, Any]:
    """The state dict, checked against what the metadata says (outputs, input channels)."""
    import torch

    src = info.source
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(
            f"{src}: no weights (state_dict) in this checkpoint; use a checkpoint written by `birdspec train` "
            "(RUN/checkpoints/best.pt)"
        )
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{src}: the state_dict must map parameter names to tensors")
    matrices = [v for v in state.values() if v.ndim == 2]
    if matrices and int(matrices[-1].shape[0]) != len(info.classes):
        raise CheckpointError(
            f"{src}: lists {len(info.classes)} classes but the network's last layer has {int(matrices[-1].shape[0])} "
            "outputs; the class list does not belong to these weights"
        )
    if info.input == "waveform":
        convs = [v for k, v in state.items() if v.ndim == 4 and k.startswith("backbone.")]
        if convs and int(convs[0].shape[1]) != info.encoding.in_channels:
            raise CheckpointError(
                f"{src}: encoding {info.encoding.name} ({info.encoding.in_channels} channel(s) per sample) but the "
                f"first layer's weights take {int(convs[0].shape[1])}; the encoding does not belong to these weights"
            )
    return dict(state)


def read_checkpoint(checkpoint: str | Path | Mapping[str, Any] | Checkpoint, *, which: str | None = None) -> Checkpoint:
    """Read (``weights_only=True``, once) and validate a checkpoint file, run folder or dict.

    Raises:
        CheckpointError: missing, unreadable or inconsistent (the message says what is wrong).
    """
    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    if isinstance(checkpoint, Mapping):
        raw, source = checkpoint, str(checkpoint.get("path") or "<memory>")
    else:
        import torch

        p = resolve_checkpoint_path(checkpoint, which=which)
        source = str(p)
        try:
            raw = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors come in many types
            raise CheckpointError(
                f"{p}: not a loadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                "birdspec reads only plain-data checkpoints it wrote (weights_only)"
            ) from exc
    info = CheckpointInfo.from_json(raw, source=source)
    state = _check_weights(info, raw.get("state_dict"))
    values = {f.name: getattr(info, f.name) for f in dataclasses.fields(CheckpointInfo)}
    return Checkpoint(**values, state_dict=state)


def peek_checkpoint(path: str | Path) -> CheckpointInfo | None:
    """The metadata of a checkpoint file read without PyTorch (the weights are skipped).

    Unpickles ``data.pkl`` of the ``torch.save`` archive with every PyTorch object
    replaced by a placeholder and nothing else allowed, so it is as safe as
    ``weights_only`` loading. None when the file is not such an archive (the caller
    then reads it with :func:`read_checkpoint`).

    Raises:
        CheckpointError: the metadata is there and inconsistent.
    """
    import collections
    import io
    import pickle
    import zipfile

    def placeholder(*_args: Any, **_kwargs: Any) -> None:
        return None

    class _Peek(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            if module == "torch" or module.startswith("torch."):
                return placeholder
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint")

        def persistent_load(self, pid: Any) -> None:
            return None

    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            names = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(names) != 1:
                return None
            raw = _Peek(io.BytesIO(z.read(names[0]))).load()
    except Exception:  # not a zip, a truncated file, an unexpected pickle: let torch.load report it
        log.debug("cannot peek into %s", p, exc_info=True)
        return None
    return CheckpointInfo.from_json(raw, source=str(p))


def check_resume_state(path: str | Path) -> None:
    """Refuse a run's Lightning resume state (``lightning/last.ckpt``) that is damaged or holds code.

    Lightning's own state is plain data too, so it must load with ``weights_only=True``.

    Raises:
        CheckpointError: what is wrong and how to go on.
    """
    import torch

    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(
            f"{p}: the resume state is damaged or not plain data ({type(exc).__name__}: {first}); delete it to train the "
            "run again from its first epoch, or start a new run with another --out"
        ) from exc
    if not isinstance(state, Mapping) or "state_dict" not in state or "epoch" not in state:
        raise CheckpointError(f"{p}: not a resume state written by `birdspec train`; delete it or start a new run")


def load_model(checkpoint: str | Path | Mapping[str, Any] | Checkpoint, *, map_location: Any = "cpu") -> tuple[Any, Checkpoint]:
    """``(model in eval mode, checkpoint)`` of a checkpoint file, run folder or dict."""
    ckpt = read_checkpoint(checkpoint)
    return ckpt.build_model(device=map_location), ckpt


# --------------------------------------------------------------------------- writing


def make_checkpoint(
    model: Any,
    *,
    model_config: Mapping[str, Any],
    classes: list[str],
    frontend: FrontendConfig,
    encoding: EncodingConfig,
    class_info: list[dict[str, Any]] | None = None,
    train_config: Mapping[str, Any] | None = None,
    epoch: int | None = None,
    metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
    activation: str | None = None,
    detection: Detection | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of ``model`` (weights copied to the CPU); ``activation`` None: implied by the
    training config (sigmoid for multi-label runs, else softmax)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    out = {
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
    if activation is not None:
        out["activation"] = str(activation)
    if detection is not None:
        out["detection"] = _plain(detection.to_json())
    return out


def set_detection(path: str | Path, detection: Detection | None) -> CheckpointInfo:
    """Rewrite the checkpoint file ``path`` with other detection settings (atomically); its metadata after.

    Raises:
        CheckpointError: the file is not a readable checkpoint, or the settings do not fit its classes.
    """
    import torch

    ckpt = read_checkpoint(path)
    raw = torch.load(Path(path), map_location="cpu", weights_only=True)
    if detection is None:
        raw.pop("detection", None)
    else:
        Detection.from_json(detection.to_json(), num_classes=len(ckpt.classes), source=str(path))
        raw["detection"] = _plain(detection.to_json())
    save_checkpoint(raw, path)
    return ckpt.info.with_detection(detection)


def _plain(value: Any) -> Any:
    """Turn paths, tuples and numpy scalars into what ``weights_only`` loading accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not hasattr(value, "detach"):
        return value.item()
    return value


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """Write atomically, so an interrupt never leaves a half file.

    PyTorch writes through a Python file object that keeps the first ``OSError`` of a write: a full
    or failing disk is then that ``OSError``, naming ``path`` (the CLI's one-line exit-2 message),
    not the zip writer's ``RuntimeError`` ("unexpected pos ...") it turns into.
    """
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        sink = _WriteErrors(f)
        try:
            torch.save(dict(checkpoint), sink)  # type: ignore[arg-type]  # torch.save only calls write and flush; its annotation asks for IO[bytes]
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise
    return Path(path)


class _WriteErrors:
    """A binary file's ``write``/``flush`` that remember the first ``OSError`` (PyTorch's zip writer hides it)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise
