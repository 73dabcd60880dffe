"""The fast CPU runtime: a checkpoint's ONNX runtime export, run with NumPy and ONNX Runtime.

A runtime export is a folder:

    model.onnx      the CNN alone (spectrogram in, logits out; batch norm folded)
    frontend.npz    the analysis window and the (effective, for a learned one) filterbank of the frontend
    info.json       the checkpoint's :class:`~birdspec.models.checkpoint.CheckpointInfo`,
                    the SHA-256 of the checkpoint file it was made from, and the format

Where exports live: ``birdspec train`` writes one beside each checkpoint it
keeps (``RUN/checkpoints/best.runtime/``), so the first prediction of a fresh
checkpoint is as fast and as small as every later one; other checkpoints are
exported once into the cache (``$BIRDSPEC_CACHE_DIR``, else
``$XDG_CACHE_HOME/birdspec``, else ``~/.cache/birdspec``; ``onnx/<key>/``).
An export is used only when its recorded hash matches the checkpoint file
(a retrained ``best.pt`` is never paired with an old export) and it loads; a
stale or corrupt one is rebuilt with a warning, never a traceback.

At run time the log-mel and input normalisation run in NumPy/SciPy
(:mod:`birdspec.features.numpy_frontend`) and the CNN in ONNX Runtime; PyTorch
(~600 MB of resident memory) is never imported. Writing an export needs
PyTorch; :func:`export_in_subprocess` does it in a child process for callers
that have not loaded PyTorch (run as ``python -m birdspec.prediction.onnx_runtime``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from birdspec import __version__
from birdspec.config import to_dict
from birdspec.errors import BirdspecError, CheckpointError, DependencyError
from birdspec.features.input_norm import NUMPY_NORM_OPS, normalise
from birdspec.features.numpy_frontend import NumpyFrontend
from birdspec.fileio import replace_dir, write_json
from birdspec.models.checkpoint import Checkpoint, CheckpointInfo
from birdspec.prediction.runtime_types import WindowRuntime

log = logging.getLogger(__name__)

EXPORT_FORMAT = "birdspec-runtime-v3"
"""Bump when the files of an export change meaning; older exports are then rebuilt."""
MODEL_FILE = "model.onnx"
TABLES_FILE = "frontend.npz"
INFO_FILE = "info.json"
RUN_EXPORT_SUFFIX = ".runtime"
"""``best.pt`` -> ``best.runtime/`` beside it."""
EXPORT_TIMEOUT_S = 900


# --------------------------------------------------------------------------- where exports are


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where exports of checkpoints without their own are cached (see the module doc)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("BIRDSPEC_CACHE_DIR"):
        return Path(os.environ["BIRDSPEC_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "birdspec"
    return Path.home() / ".cache" / "birdspec"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def run_export_dir(checkpoint_path: str | Path) -> Path:
    """``checkpoints/best.pt`` -> ``checkpoints/best.runtime``."""
    p = Path(checkpoint_path)
    return p.with_name(p.stem + RUN_EXPORT_SUFFIX)


def cache_entry(sha256: str, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of a checkpoint with this file hash."""
    key = hashlib.sha256(f"{EXPORT_FORMAT}|{__version__}|{sha256}".encode()).hexdigest()[:32]
    return cache_root(cache_dir) / "onnx" / key


def _read_info(entry: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((entry / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def find_export(checkpoint_path: Path, *, cache_dir: str | Path | None = None) -> Path | None:
    """The export of this checkpoint file (beside it, else in the cache), or None.

    Only an export whose recorded hash and format match is returned (it may still
    turn out corrupt when loaded: see :func:`try_open`).
    """
    sha = file_sha256(checkpoint_path)
    for entry in (run_export_dir(checkpoint_path), cache_entry(sha, cache_dir)):
        meta = _read_info(entry) if entry.is_dir() else None
        if meta is None:
            if entry.is_dir():
                log.warning("%s: incomplete or corrupt runtime export; it will be rebuilt", entry)
                discard(entry)
            continue
        if meta.get("export_format") == EXPORT_FORMAT and meta.get("checkpoint_sha256") == sha:
            return entry
        log.info("%s is not the export of the current %s (stale); ignoring it", entry, checkpoint_path.name)
    return None


def discard(entry: Path) -> None:
    """Remove a corrupt export (best effort: a read-only folder is left and ignored)."""
    shutil.rmtree(entry, ignore_errors=True)


# --------------------------------------------------------------------------- runtime


class OnnxRuntime(WindowRuntime):
    """NumPy log-mel + ONNX Runtime over a runtime export (see the module doc)."""

    def __init__(self, entry: Path, *, threads: int, device: str, activation: str = "auto") -> None:
        meta = _read_info(entry)
        if meta is None:
            raise CheckpointError(f"{entry}: no readable info.json")
        info = CheckpointInfo.from_json(meta["checkpoint"], source=str(meta["checkpoint"].get("source") or entry))
        super().__init__(info.with_activation(activation), backend="onnx", device=device)
        tables = np.load(entry / TABLES_FILE)
        self._logmel = NumpyFrontend(info.frontend, window=tables["window"], filterbank=tables["filterbank"], threads=threads)
        self._session = _ort_session(entry / MODEL_FILE, threads=threads, device=device)
        self._input = self._session.get_inputs()[0].name
        self._norm = info.input_norm
        self.entry = entry

    def features(self, waves: np.ndarray) -> np.ndarray:
        x: np.ndarray = normalise(NUMPY_NORM_OPS, self._logmel(waves), self._norm)  # normalise: any array type
        return x

    def head(self, x: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, self._session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})[0])  # untyped

    def close(self) -> None:
        self._logmel.close()


def _ort_session(path: Path, *, threads: int, device: str) -> Any:
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


def try_open(entry: Path, *, threads: int, device: str, activation: str = "auto") -> OnnxRuntime | None:
    """The runtime of an export, or None (with a warning) when its files are corrupt."""
    try:
        return OnnxRuntime(entry, threads=threads, device=device, activation=activation)
    except DependencyError:
        raise
    except Exception as exc:  # a damaged protobuf, npz or json: rebuild rather than fail
        log.warning("%s: corrupt runtime export (%s: %s); rebuilding it", entry, type(exc).__name__, str(exc)[:120])
        return None


# --------------------------------------------------------------------------- writing exports


def write_export(ckpt: Checkpoint, dest: Path, *, sha256: str | None, files_from: Path | None = None) -> Path:
    """Export ``ckpt``'s CNN and frontend tables into the folder ``dest`` (atomically; replaces it).

    ``files_from``: the export of a checkpoint with the same weights, whose ``model.onnx`` and
    ``frontend.npz`` are copied instead of exporting again (only ``info.json`` differs).

    Raises:
        CheckpointError: the model is not a frontend + CNN model, or the export disagrees with PyTorch.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        if files_from is not None:
            for name in (MODEL_FILE, TABLES_FILE):
                shutil.copyfile(files_from / name, tmp / name)
        else:
            _export_model_files(ckpt, tmp)
        write_json(tmp / INFO_FILE, {
            "export_format": EXPORT_FORMAT,
            "birdspec_version": __version__,
            "checkpoint_sha256": sha256,
            "checkpoint": ckpt.info.to_json(),
        })
        try:
            replace_dir(tmp, dest)
        except OSError:  # another process won the race with the same export
            if _read_info(dest) is None:
                raise
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_model_files(ckpt: Checkpoint, folder: Path) -> None:
    """``model.onnx`` (the CNN) and ``frontend.npz`` (window and effective filterbank) of ``ckpt`` into ``folder``."""
    from birdspec.models.registry import BirdspecModel
    from birdspec.prediction.export import export_backbone_onnx

    model = ckpt.build_model()
    if not isinstance(model, BirdspecModel):
        raise CheckpointError(f"model {ckpt.name!r} is not a frontend + CNN model; it has no ONNX runtime")
    fe = ckpt.frontend
    w = ckpt.encoding.window_samples(fe.sample_rate_hz)
    export_backbone_onnx(model.backbone, input_shape=(ckpt.in_channels, fe.num_bins(), fe.num_frames(w)),
                         path=folder / MODEL_FILE)
    np.savez(folder / TABLES_FILE, window=model.frontend.window.detach().cpu().numpy(),
             filterbank=model.frontend.full_filterbank())


def export_beside(*checkpoint_paths: str | Path) -> list[Path]:
    """Write the runtime export of each checkpoint file beside it (``best.pt`` -> ``best.runtime/``).

    Checkpoints with the same weights (``best.pt`` and ``last.pt`` of a run whose best epoch is its
    last) share one ONNX export: the second copies the first's model files.
    """
    from birdspec.models.checkpoint import read_checkpoint

    made: dict[str, Path] = {}
    out = []
    for raw in checkpoint_paths:
        p = Path(raw)
        ckpt = read_checkpoint(p)
        key = _weights_sha256(ckpt)
        out.append(write_export(ckpt, run_export_dir(p), sha256=file_sha256(p), files_from=made.get(key)))
        made.setdefault(key, out[-1])
    return out


def _weights_sha256(ckpt: Checkpoint) -> str:
    """What the model files of an export depend on: architecture, frontend, input shape and weights."""
    h = hashlib.sha256(json.dumps([dict(ckpt.model), to_dict(ckpt.frontend), to_dict(ckpt.encoding)],
                                  sort_keys=True, default=str).encode())
    for name, tensor in sorted(ckpt.state_dict.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_to_cache(ckpt: Checkpoint, *, path: Path | None, cache_dir: str | Path | None = None) -> Path:
    """Export ``ckpt`` into the cache (a private temporary folder when the cache is read-only)."""
    sha = file_sha256(path) if path is not None else _state_sha256(ckpt)
    entry = cache_entry(sha, cache_dir)
    try:
        return write_export(ckpt, entry, sha256=sha)
    except OSError as exc:
        log.warning("cannot write the export cache in %s (%s); exporting to a temporary folder", entry.parent, exc)
        return write_export(ckpt, Path(tempfile.mkdtemp(prefix="birdspec-onnx-")) / entry.name, sha256=sha)


def _state_sha256(ckpt: Checkpoint) -> str:
    """Key of an in-memory checkpoint: hash of its metadata and weights."""
    h = hashlib.sha256(json.dumps(ckpt.info.to_json(), sort_keys=True, default=str).encode())
    h.update(_weights_sha256(ckpt).encode())
    return h.hexdigest()


def export_in_subprocess(checkpoint_path: Path, *, cache_dir: str | Path | None = None) -> Path | None:
    """Export a checkpoint file into the cache from a child process; the entry, or None when that failed.

    Raises:
        CheckpointError: the child found the checkpoint unreadable or inconsistent.
    """
    root = cache_root(cache_dir)
    cmd = [sys.executable, "-m", "birdspec.prediction.onnx_runtime", str(checkpoint_path), str(root)]
    log.info("exporting %s for the fast CPU runtime (once; cached in %s)", checkpoint_path, root)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("the export process failed (%s); exporting in this process", exc)
        return None
    if done.returncode == 2:
        raise CheckpointError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "unreadable checkpoint")
    if done.returncode != 0:
        log.warning("the export process failed (exit %d: %s); exporting in this process", done.returncode,
                    done.stderr.strip()[-300:])
        return None
    entry = Path(done.stdout.strip().splitlines()[-1])
    return entry if _read_info(entry) is not None else None


def _main(argv: list[str]) -> int:
    """``python -m birdspec.prediction.onnx_runtime CHECKPOINT CACHE_ROOT``: export, print the entry."""
    from birdspec.models.checkpoint import read_checkpoint

    try:
        path = Path(argv[0])
        entry = export_to_cache(read_checkpoint(path), path=path, cache_dir=argv[1])
    except BirdspecError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(entry)
    return 0


if __name__ == "__main__":  # pragma: no cover - run by export_in_subprocess
    sys.exit(_main(sys.argv[1:]))
