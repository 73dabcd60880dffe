"""The inference runtimes behind :class:`~birdspec.prediction.predictor.Predictor`.

A runtime splits a model into two stages so that the streaming engine can
batch, cache and re-use work:

- ``features(waves (n, W) float32) -> X (n, n_mels, frames)``: the log-mel and
  the per-window input normalisation of **one window** (both are per channel,
  so a stack10 context is just 10 of these stacked; each window's features
  are computed once and re-used by the 10 contexts that contain it);
- ``head(X (B, C, n_mels, frames)) -> logits (B, K)``: the CNN.

Backends:

``onnx`` (the CPU default)
    The log-mel in NumPy/SciPy (:class:`NumpyLogMel`: chunked real FFT, only
    the FFT bins the mel filterbank touches, a banded mel product; matches
    :class:`~birdspec.features.LogMelFrontend` to ~1e-5 dB) and the CNN in
    ONNX Runtime (batch norm folded into the convolutions by the exporter,
    graph optimisations on). The ONNX file, the model metadata and the
    frontend tables are exported once per checkpoint into a cache folder
    (``$BIRDSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/birdspec``, else
    ``~/.cache/birdspec``; key: SHA-256 of the checkpoint file), so a warm
    run never imports PyTorch (which alone costs ~600 MB of resident memory).
``torch``
    The model's own PyTorch modules (the reference numerics); on CUDA the
    only backend used by ``auto``; on the CPU the backbone runs channels-last.

Models that do not have the ``frontend -> norm -> backbone`` layout run whole
in PyTorch on raw waveforms ``(B, C, T)`` (``features`` is the identity).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from birdspec import __version__
from birdspec.config import EncodingConfig, FrontendConfig, from_dict, to_dict
from birdspec.errors import CheckpointError, ConfigError, DependencyError
from birdspec.prediction.logmel_numpy import NumpyLogMel, instance_norm
from birdspec.runtime import resolve_device

log = logging.getLogger(__name__)

CACHE_FORMAT = "birdspec-fast-v1"
"""Bump when the cached files change meaning; old cache entries are then ignored."""

BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
ACTIVATIONS = ("auto", "softmax", "sigmoid")


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class ModelMeta:
    """What prediction needs to know about a checkpoint besides its weights.

    Attributes:
        classes: output index -> label.
        class_info: ``[{label, scientific_name, common_name}]`` per class.
        frontend / encoding: the checkpoint's configs.
        activation: 'softmax' (single-label training: scores sum to 1 per window) or 'sigmoid'.
        norm: ``{"kind": "instance" | "band", "eps_db": 1.0}`` or ``{"kind": "none"}``; None when the
            model is not split into frontend / norm / backbone.
        model: the checkpoint's model config (name, in_channels, num_classes, ...).
        source: the checkpoint path (or '<memory>').
    """

    classes: tuple[str, ...]
    class_info: tuple[Mapping[str, Any], ...]
    frontend: FrontendConfig
    encoding: EncodingConfig
    activation: str
    norm: Mapping[str, Any] | None
    model: Mapping[str, Any]
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "class_info": [dict(c) for c in self.class_info],
            "frontend": to_dict(self.frontend),
            "encoding": to_dict(self.encoding),
            "activation": self.activation,
            "norm": dict(self.norm) if self.norm is not None else None,
            "model": dict(self.model),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ModelMeta":
        return cls(
            classes=tuple(data["classes"]),
            class_info=tuple(data["class_info"]),
            frontend=from_dict(FrontendConfig, data["frontend"]),
            encoding=from_dict(EncodingConfig, data["encoding"]),
            activation=data["activation"],
            norm=data.get("norm"),
            model=data.get("model") or {},
            source=data.get("source", ""),
        )


def checkpoint_activation(ckpt: Mapping[str, Any]) -> str:
    """'sigmoid' when the checkpoint says it was trained multi-label (a BCE-type loss), else 'softmax'."""
    for section in (ckpt.get("train_config") or {}, ckpt.get("model") or {}, ckpt.get("extra") or {}):
        if not isinstance(section, Mapping):
            continue
        if section.get("multilabel") or section.get("multi_label"):
            return "sigmoid"
        loss = str(section.get("loss", "")).lower()
        if any(k in loss for k in ("bce", "binary", "sigmoid", "asymmetric")):
            return "sigmoid"
        act = str(section.get("activation", "")).lower()
        if act in ("softmax", "sigmoid"):
            return act
    return "softmax"


def class_info_of(ckpt: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
    """``class_info`` completed with empty names, one entry per class in order."""
    classes = list(ckpt["classes"])
    by_label = {str(c.get("label")): c for c in ckpt.get("class_info") or [] if isinstance(c, Mapping)}
    out = []
    for label in classes:
        c = by_label.get(str(label), {})
        out.append(
            {
                "label": str(label),
                "scientific_name": str(c.get("scientific_name") or ""),
                "common_name": str(c.get("common_name") or ""),
            }
        )
    return tuple(out)


def apply_activation(logits: np.ndarray, activation: str) -> np.ndarray:
    """Scores from logits ``(B, K)``: softmax over classes or element-wise sigmoid, float32."""
    z = logits.astype(np.float64)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- runtime


@dataclass
class Runtime:
    """The two stages the engine calls, plus what it needs to know.

    Attributes:
        meta: the checkpoint's metadata.
        features: ``(n, W) float32 ndarray -> X (n, ...)`` per-window features.
        head: ``X (B, C, ...) -> (B, K) float32 ndarray`` logits.
        stack: stacks a list of per-window feature rows (``np.stack`` or ``torch.stack``).
        backend / device: what actually runs ('onnx' or 'torch'; 'cpu' or 'cuda').
    """

    meta: ModelMeta
    features: Callable[[np.ndarray], Any]
    head: Callable[[Any], np.ndarray]
    stack: Callable[[list], Any]
    backend: str
    device: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for c in self.closers:
            try:
                c()
            except Exception:  # pragma: no cover - best effort
                pass
        self.closers.clear()


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where exported runtimes are cached (see the module docstring)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("BIRDSPEC_CACHE_DIR"):
        return Path(os.environ["BIRDSPEC_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "birdspec"
    return Path.home() / ".cache" / "birdspec"


def file_key(path: str | Path) -> str:
    """Cache key of a checkpoint file: SHA-256 of its bytes and the cache format."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{__version__}|".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:32]


def _cached_entry(root: Path, key: str) -> Path | None:
    d = root / "onnx" / key
    if all((d / n).is_file() for n in ("meta.json", "backbone.onnx", "frontend.npz")):
        return d
    return None


def _read_checkpoint(checkpoint: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    from birdspec.models.checkpoint import read_checkpoint

    if isinstance(checkpoint, Mapping):
        if "state_dict" not in checkpoint or "classes" not in checkpoint:
            raise CheckpointError("a checkpoint dict needs 'state_dict' and 'classes' (see birdspec.models.checkpoint)")
        return dict(checkpoint)
    return read_checkpoint(checkpoint)


def _split_layout(model: Any) -> bool:
    """True when the model is ``frontend (LogMelFrontend) -> InputNorm|Identity -> backbone``."""
    from torch import nn

    from birdspec.features import LogMelFrontend
    from birdspec.models.registry import InputNorm

    return (
        isinstance(getattr(model, "frontend", None), LogMelFrontend)
        and isinstance(getattr(model, "norm", None), (InputNorm, nn.Identity))
        and isinstance(getattr(model, "backbone", None), nn.Module)
    )


def _meta_from(ckpt: Mapping[str, Any], model: Any, *, activation: str) -> ModelMeta:
    from birdspec.models.registry import InputNorm

    norm: dict[str, Any] | None = None
    if _split_layout(model):
        if isinstance(model.norm, InputNorm):
            kind = "band" if getattr(model.norm, "per_band", False) else "instance"
            norm = {"kind": kind, "eps_db": float(model.norm.eps_db)}
        else:
            norm = {"kind": "none"}
    return ModelMeta(
        classes=tuple(str(c) for c in ckpt["classes"]),
        class_info=class_info_of(ckpt),
        frontend=from_dict(FrontendConfig, ckpt["frontend"]),
        encoding=from_dict(EncodingConfig, ckpt["encoding"]),
        activation=checkpoint_activation(ckpt) if activation == "auto" else activation,
        norm=norm,
        model=dict(ckpt.get("model") or {}),
        source=str(ckpt.get("path", "<memory>")),
    )


def _write_cache_entry(dest: Path, *, meta: ModelMeta, model: Any) -> Path:
    """Export the backbone to ONNX with the frontend tables and metadata, atomically."""
    from birdspec.prediction.export import export_backbone_onnx

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        fe = meta.frontend
        w = meta.encoding.window_samples(fe.sample_rate_hz)
        export_backbone_onnx(
            model.backbone,
            input_shape=(int(meta.model.get("in_channels", meta.encoding.in_channels)), fe.n_mels, fe.num_frames(w)),
            path=tmp / "backbone.onnx",
        )
        np.savez(
            tmp / "frontend.npz",
            window=model.frontend.window.detach().cpu().numpy(),
            mel_fb=model.frontend.mel_fb.detach().cpu().numpy(),
        )
        (tmp / "meta.json").write_text(json.dumps({"format": CACHE_FORMAT, **meta.to_json()}, indent=1))
        try:
            tmp.rename(dest)
        except OSError:  # another process won the race
            if _cached_entry(dest.parent, dest.name) is None:
                raise
        return dest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _ort_session(path: Path, *, threads: int, device: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Do not let idle pool threads spin: the log-mel runs between ONNX calls on the same cores.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DependencyError("onnxruntime here has no CUDA provider; install onnxruntime-gpu or use --backend torch")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), so, providers=providers)


def _onnx_runtime(entry: Path, *, threads: int, device: str, frontend_threads: int) -> Runtime:
    meta = ModelMeta.from_json(json.loads((entry / "meta.json").read_text()))
    tables = np.load(entry / "frontend.npz")
    logmel = NumpyLogMel(meta.frontend, window=tables["window"], mel_fb=tables["mel_fb"], threads=frontend_threads)
    session = _ort_session(entry / "backbone.onnx", threads=threads, device=device)
    input_name = session.get_inputs()[0].name
    norm = meta.norm or {"kind": "none"}
    eps = float(norm.get("eps_db", 1.0))

    def features(waves: np.ndarray) -> np.ndarray:
        x = logmel(waves)
        kind = norm.get("kind")
        return instance_norm(x, eps_db=eps, per_band=kind == "band") if kind in ("instance", "band") else x

    def head(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return Runtime(meta=meta, features=features, head=head, stack=np.stack, backend="onnx", device=device, closers=[logmel.close])


def _torch_runtime(model: Any, meta: ModelMeta, *, device: str) -> Runtime:
    import torch

    model = model.to(device).eval()
    split = meta.norm is not None
    if split and device == "cpu":
        model.backbone.to(memory_format=torch.channels_last)  # ~2x faster depthwise/pointwise convs on CPU
    lock = threading.Lock()

    def features(waves: np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(device, non_blocking=True)
        if not split:
            return x
        with torch.inference_mode():
            return model.norm(model.frontend(x[:, None]))[:, 0]

    def head(x) -> np.ndarray:
        with lock, torch.inference_mode():
            if split:
                if device == "cpu":
                    x = x.contiguous(memory_format=torch.channels_last)
                out = model.backbone(x)
            else:
                out = model(x)
        return out.float().cpu().numpy()

    return Runtime(meta=meta, features=features, head=head, stack=torch.stack, backend="torch", device=device)


def load_runtime(
    checkpoint: str | Path | Mapping[str, Any],
    *,
    device: str = "auto",
    backend: str = "auto",
    threads: int | None = None,
    activation: str = "auto",
    cache_dir: str | Path | None = None,
) -> Runtime:
    """Build the fastest runtime available for ``checkpoint`` (see the module docstring).

    Args:
        checkpoint: a checkpoint file (or run folder) or a checkpoint dict.
        device: 'auto' (CUDA when present), 'cpu' or 'cuda'.
        backend: 'auto' (ONNX Runtime on the CPU when installed, else PyTorch), 'onnx' or 'torch'.
        threads: CPU threads for the log-mel and the network (None: PyTorch's / ONNX Runtime's default).
        activation: 'auto' (from the checkpoint), 'softmax' or 'sigmoid'.
        cache_dir: where ONNX exports are cached.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}")
    dev = resolve_device(device, allowed=DEVICES)
    if backend == "auto":
        backend = "onnx" if dev == "cpu" and onnxruntime_available() else "torch"
    if backend == "onnx" and not onnxruntime_available():
        raise DependencyError("backend 'onnx' needs onnxruntime: pip install 'birdspec[export]' (or use --backend torch)")
    n_threads = int(threads) if threads else _cpu_count()
    if threads and ("torch" in sys.modules or backend == "torch"):
        import torch

        torch.set_num_threads(int(threads))

    if backend == "onnx":
        root = cache_root(cache_dir)
        key = None
        if not isinstance(checkpoint, Mapping):
            p = Path(checkpoint)
            p = _resolve_checkpoint_file(p)
            if not p.is_file():
                raise CheckpointError(f"{p}: no such checkpoint")
            key = file_key(p)
            entry = _cached_entry(root, key)
            if entry is not None:
                rt = _onnx_runtime(entry, threads=n_threads, device=dev, frontend_threads=n_threads)
                if activation != "auto":
                    rt.meta = _replace_activation(rt.meta, activation)
                log.debug("using cached ONNX runtime %s", entry)
                return rt
        ckpt = _read_checkpoint(checkpoint)
        from birdspec.models.registry import model_from_checkpoint

        model = model_from_checkpoint(ckpt).eval()
        meta = _meta_from(ckpt, model, activation="auto")
        if meta.norm is None:
            log.info("%s is not a frontend + CNN model; running it with PyTorch", meta.model.get("name"))
            return _torch_runtime(model, _replace_activation(meta, activation), device=dev)
        if key is None:
            key = _state_key(ckpt)
        try:
            try:
                entry = _write_cache_entry(root / "onnx" / key, meta=meta, model=model)
            except OSError as exc:  # read-only cache: export into a private temp folder
                log.warning("cannot write the ONNX cache in %s (%s); exporting to a temporary folder", root, exc)
                tmp_root = Path(tempfile.mkdtemp(prefix="birdspec-onnx-"))
                entry = _write_cache_entry(tmp_root / "onnx" / key, meta=meta, model=model)
        except DependencyError:
            raise
        except Exception as exc:  # an exporter failure must not stop prediction
            log.warning("ONNX export failed (%s); falling back to PyTorch", exc)
            return _torch_runtime(model, _replace_activation(meta, activation), device=dev)
        rt = _onnx_runtime(entry, threads=n_threads, device=dev, frontend_threads=n_threads)
        if activation != "auto":
            rt.meta = _replace_activation(rt.meta, activation)
        return rt

    ckpt = _read_checkpoint(checkpoint)
    from birdspec.models.registry import model_from_checkpoint

    model = model_from_checkpoint(ckpt).eval()
    meta = _meta_from(ckpt, model, activation=activation)
    return _torch_runtime(model, meta, device=dev)


def has_cached_runtime(checkpoint: str | Path | Mapping[str, Any], *, cache_dir: str | Path | None = None) -> bool:
    """True when an ONNX export of this checkpoint file is cached (it then loads without PyTorch)."""
    if isinstance(checkpoint, Mapping):
        return False
    p = _resolve_checkpoint_file(Path(checkpoint))
    return p.is_file() and _cached_entry(cache_root(cache_dir), file_key(p)) is not None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _resolve_checkpoint_file(p: Path) -> Path:
    """A run folder's best/last checkpoint (as :func:`~birdspec.models.checkpoint.read_checkpoint`), without torch."""
    if p.is_dir():
        for name in ("best.pt", "checkpoints/best.pt", "last.pt", "checkpoints/last.pt"):
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"{p}: no best.pt or last.pt in this folder; pass a checkpoint file")
    return p


def _replace_activation(meta: ModelMeta, activation: str) -> ModelMeta:
    if activation == "auto":
        return meta
    import dataclasses

    return dataclasses.replace(meta, activation=activation)


def _state_key(ckpt: Mapping[str, Any]) -> str:
    """Cache key of an in-memory checkpoint: hash of its weights and configs."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{__version__}|".encode())
    h.update(json.dumps({k: ckpt.get(k) for k in ("model", "classes", "frontend", "encoding")}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(ckpt["state_dict"].items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]
