"""Export a checkpoint as one self-contained model: raw waveforms ``(B, C, T)`` -> logits.

``birdspec export CHECKPOINT --format onnx|torchscript --out FILE`` writes

- ``FILE``: the model with its log-mel frontend inside, so it takes raw 32 kHz
  audio. Inputs: ``waveform`` float32 ``(batch, channels, samples)`` with a
  dynamic batch (``channels`` = 10 for stack10 checkpoints: 10 consecutive
  windows; 1 for window checkpoints); outputs: ``logits`` ``(batch, K)`` and
  ``scores`` (the checkpoint's activation of the logits at its temperature: softmax, sigmoid, or
  softmax with the implicit no-bird class, :mod:`birdspec.models.activation`).
- ``FILE`` with the suffix ``.json``: a sidecar with the classes, class info,
  frontend and encoding configs, the input norm, the activation, the detection thresholds per class
  (``detection.thresholds``, on ``scores``; absent for models trained before birdspec chose them)
  and the input layout.

ONNX and ``torch.stft``: the TorchScript-based ONNX exporter cannot export a
complex STFT (and ONNX Runtime's own STFT kernel is ~4x slower than this), so
the exported graph is the checkpoint's own :class:`~birdspec.features.Frontend`
with ``stft="dft"``: the STFT as a strided ``conv1d`` with precomputed windowed
DFT bases for the FFT bins the filterbank uses; it agrees with ``torch.stft``
to ~1e-5 dB (every spectrogram type; tests check it). Every export is
checked: ONNX Runtime (or the reloaded TorchScript module) against the
PyTorch model on real audio when given (``--check-audio``) or a synthetic
signal; the largest absolute logit difference must be <= 1e-4.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from birdspec import __version__
from birdspec.config import SAMPLE_RATE_HZ, to_dict
from birdspec.errors import CheckpointError, ConfigError, DependencyError
from birdspec.features.torch_frontend import Frontend
from birdspec.fileio import atomic_path, write_json
from birdspec.models.activation import scores_torch
from birdspec.prediction.choices import CHECK_TOLERANCE, EXPORT_FORMATS, ONNX_OPSET

log = logging.getLogger(__name__)



class WaveformModel(nn.Module):
    """``(B, C, T)`` waveforms -> ``(logits, scores)``: frontend, input norm, backbone, activation (at the
    checkpoint's temperature; :mod:`birdspec.models.activation`)."""

    def __init__(self, frontend: nn.Module, norm: nn.Module, backbone: nn.Module, *, activation: str,
                 temperature: float = 1.0) -> None:
        super().__init__()
        self.frontend = frontend
        self.norm = norm
        self.backbone = backbone
        self.activation = activation
        self.temperature = float(temperature)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.frontend(wave)
        logits = self.backbone(self.norm(spec))
        return logits, scores_torch(logits, self.activation, temperature=self.temperature)


def export_backbone_onnx(backbone: nn.Module, *, input_shape: tuple[int, int, int], path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """The CNN alone to ONNX: input ``spectrogram (batch, C, n_mels, frames)``, output ``logits``.

    Exported in eval mode (batch norm folded into convolutions), dynamic batch.
    Used by the fast ONNX Runtime predictor, which computes the log-mel itself.
    """
    p = Path(path)
    backbone = backbone.eval()
    example = torch.randn(2, *input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            backbone,
            (example,),
            str(p),
            input_names=["spectrogram"],
            output_names=["logits"],
            dynamic_axes={"spectrogram": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    _check_onnx_against(p, backbone, example, name="spectrogram")
    return p


def _check_onnx_against(path: Path, module: nn.Module, example: torch.Tensor, *, name: str, tol: float = 1e-3) -> float:
    """Compare an ONNX file with ``module`` on ``example``; raise when they disagree."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError("checking an ONNX export needs onnxruntime: pip install onnx onnxruntime (core dependencies of birdspec)") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    got = session.run(None, {name: example.numpy()})[0]
    with torch.no_grad():
        ref = module(example)
    ref = ref[0] if isinstance(ref, tuple) else ref
    diff = float(np.abs(got - ref.numpy()).max())
    if not diff <= tol:
        raise CheckpointError(f"{path}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {tol:g}); export with --format torchscript instead")
    return diff


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote and how well it matched PyTorch."""

    path: Path
    sidecar: Path
    format: str
    max_abs_diff: float
    checked_on: str


def check_waveforms(*, channels: int, window_samples: int, audio: str | Path | None = None, batch: int = 2) -> tuple[np.ndarray, str]:
    """A ``(batch, channels, window_samples)`` float32 check batch and where it came from.

    From ``audio`` (decoded at 32 kHz, cut into consecutive windows, tiled when
    short) or a deterministic synthetic signal (chirps, tones and noise).
    """
    need = batch * channels * window_samples
    if audio is not None:
        from birdspec.audio import load

        wave = load(audio, sample_rate_hz=SAMPLE_RATE_HZ)
        what = str(audio)
    else:
        rng = np.random.default_rng(0)
        t = np.arange(need) / SAMPLE_RATE_HZ
        wave = 0.2 * np.sin(2 * np.pi * (2000 + 1500 * np.sin(2 * np.pi * 0.3 * t)) * t) + 0.05 * rng.standard_normal(need)
        wave = wave * (0.3 + 0.7 * (np.sin(2 * np.pi * 1.7 * t) > 0))
        what = "synthetic signal"
    wave = np.resize(wave.astype(np.float32), need)  # tiles when short
    return wave.reshape(batch, channels, window_samples), what


def export_checkpoint(
    checkpoint: str | Path | Mapping[str, Any] | Any,
    *,
    fmt: str,
    out: str | Path,
    check_audio: str | Path | None = None,
    tolerance: float = CHECK_TOLERANCE,
    opset: int = ONNX_OPSET,
) -> ExportResult:
    """Export ``checkpoint`` as ONNX or TorchScript plus a ``.json`` sidecar; check it against PyTorch.

    Both files are written beside their targets and renamed into place only when the export passed its
    check: a failure (a full disk, an export that disagrees with PyTorch) leaves an older ``out`` and
    sidecar as they were, or nothing.

    Raises:
        ConfigError: unknown format.
        CheckpointError: the model cannot be exported, or the export disagrees with PyTorch.
        DependencyError: onnx / onnxruntime missing.
        OSError: ``out`` cannot be written (naming it: a full disk, a read-only folder).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as model_tmp:
        diff, checked_on, sidecar = _export(checkpoint, fmt=fmt, out=out, model_tmp=model_tmp, check_audio=check_audio,
                                            tolerance=tolerance, opset=opset)
        write_json(out.with_suffix(".json"), sidecar)  # the model follows it into place
    log.info("exported %s (%s); max |logit difference| vs PyTorch %.2e on %s", out, fmt, diff, checked_on)
    return ExportResult(path=out, sidecar=out.with_suffix(".json"), format=fmt, max_abs_diff=diff, checked_on=checked_on)


def _export(checkpoint: Any, *, fmt: str, out: Path, model_tmp: Path, check_audio: str | Path | None, tolerance: float,
            opset: int) -> tuple[float, str, dict[str, Any]]:
    """:func:`export_checkpoint` into the temporary file ``model_tmp`` (``out`` names the target in messages);
    ``(max |logit difference|, what it was checked on, the sidecar)``."""
    from birdspec.models.checkpoint import read_checkpoint
    from birdspec.models.registry import BirdspecModel

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    meta = read_checkpoint(checkpoint)
    model = meta.build_model()
    enc, fe = meta.encoding, meta.frontend
    channels = meta.in_channels
    window_samples = enc.window_samples(fe.sample_rate_hz)
    if not isinstance(model, BirdspecModel):
        raise CheckpointError(f"model {meta.name!r} is not a frontend + CNN model; it cannot be exported yet")
    x_np, checked_on = check_waveforms(channels=channels, window_samples=window_samples, audio=check_audio)
    x = torch.from_numpy(x_np)
    reference = WaveformModel(model.frontend, model.norm, model.backbone, activation=meta.activation,
                              temperature=meta.temperature).eval()
    with torch.no_grad():
        ref_logits = reference(x)[0].numpy()

    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DependencyError("ONNX export needs onnx and onnxruntime: pip install onnx onnxruntime (core dependencies of birdspec)") from exc
        frontend = Frontend(fe, stft="dft")
        frontend.load_state_dict(model.frontend.state_dict())  # a learnable filterbank's trained weights
        wrapper = WaveformModel(frontend, model.norm, model.backbone, activation=meta.activation,
                                temperature=meta.temperature).eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    wrapper,
                    (x[:1],),
                    str(model_tmp),
                    input_names=["waveform"],
                    output_names=["logits", "scores"],
                    dynamic_axes={"waveform": {0: "batch"}, "logits": {0: "batch"}, "scores": {0: "batch"}},
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            except OSError:  # a full disk: the CLI names the file and the cause
                raise
            except Exception as exc:
                raise CheckpointError(f"ONNX export failed: {exc}") from exc
        so = ort.SessionOptions()
        session = ort.InferenceSession(str(model_tmp), so, providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {"waveform": x_np})[0]
    else:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(reference, (x[:1],), check_trace=False)
            traced = torch.jit.freeze(traced.eval()) if hasattr(torch.jit, "freeze") else traced
            with open(model_tmp, "wb") as f:  # through Python: a full disk is an OSError, not torch's RuntimeError
                torch.jit.save(traced, f)
            loaded = torch.jit.load(str(model_tmp), map_location="cpu")
            got = loaded(x)[0].numpy()  # a different batch size than traced: checks the dynamic batch
    diff = float(np.abs(got - ref_logits).max())
    if not diff <= tolerance:
        raise CheckpointError(
            f"{out}: the {fmt} export differs from PyTorch by {diff:.2e} in the logits (> {tolerance:g}) on {checked_on}; "
            "nothing was written (try --format torchscript, or pass a larger --tolerance to accept it)"
        )
    return diff, checked_on, _sidecar(meta, fmt=fmt, channels=channels, window_samples=window_samples, diff=diff,
                                      checked_on=checked_on)


def _sidecar(meta: Any, *, fmt: str, channels: int, window_samples: int, diff: float, checked_on: str) -> dict[str, Any]:
    enc = meta.encoding
    return {
        "format": "birdspec-export",
        "format_version": 1,
        "birdspec_version": __version__,
        "export_format": fmt,
        "source_checkpoint": meta.source,
        "model": dict(meta.model),
        "classes": list(meta.classes),
        "class_info": [dict(c) for c in meta.class_info],
        "frontend": to_dict(meta.frontend),
        "encoding": to_dict(enc),
        "activation": meta.activation,
        "input_norm": meta.input_norm,
        "detection": meta.detection.to_json() if meta.detection is not None else None,
        "input": {
            "name": "waveform",
            "shape": ["batch", channels, window_samples],
            "dtype": "float32",
            "sample_rate_hz": meta.frontend.sample_rate_hz,
            "layout": (
                f"{channels} consecutive {enc.window_s:g} s windows of mono audio as channels"
                if enc.name == "stack10"
                else f"one {enc.window_s:g} s window of mono audio"
            ),
        },
        "outputs": {"logits": ["batch", len(meta.classes)], "scores": ["batch", len(meta.classes)]},
        "check": {"max_abs_logit_diff": diff, "tolerance": CHECK_TOLERANCE, "on": checked_on},
    }
