"""Where the time of ``birdspec predict`` goes, per 5 s window: each stage alone, then the whole command.

    python benchmarks/predict_profile.py RUN/checkpoints/best.pt field-60min-48k.flac
    python benchmarks/predict_profile.py CKPT FILE --minutes 10 --repeats 5 --json profile.json
    python benchmarks/predict_profile.py CKPT FILE --no-command        # the stages only

Stages, each timed alone on the same audio (the first ``--minutes`` of FILE), in the order the
CPU path runs them; figures are per 5 s output window, the best of ``--repeats`` runs:

- ``decode``: libsndfile via :func:`birdspec.audio.iter_blocks` at the file's own rate (no resampling);
- ``resample``: :func:`birdspec.audio.iter_blocks` to 32 kHz minus ``decode`` (soxr HQ, streamed);
- ``spectrogram``: :class:`~birdspec.features.numpy_frontend.NumpyFrontend`, one thread, batches of 8;
- ``input norm``: :func:`~birdspec.features.input_norm.normalise` (the checkpoint's norm);
- ``network``: the ONNX backbone in ONNX Runtime, batches of 8, 1 intra-op thread (and 2 threads, wall);
- ``scores``: softmax, the top-k table and its CSV (pandas; an approximation of the CLI's writer).

Two clocks: **CPU** (``time.thread_time`` of the thread doing the work, the figure that adds up:
on a shared machine it is much steadier than wall time) and **wall**. The stage sum divided by the
number of cores is the best wall time an engine could reach on them.

Then the whole command, ``birdspec predict CKPT FILE --out x.csv`` in a subprocess from process start
to exit (``--no-command`` skips it; :func:`benchmarks.common.run_command`): wall time, user + system CPU,
peak RSS from ``wait4`` (the largest single process of the tree, ``/usr/bin/time``'s "Maximum resident set
size": children are not summed) and the sampled peak of the summed RSS of the process tree (every 20 ms). A 10 s file gives the
fixed cost (interpreter start, imports, model loading, output). The command runs twice with the same
cache folder (``$BIRDSPEC_CACHE_DIR``, a fresh one unless ``--cache-dir``): the first run may export
the checkpoint to ONNX; the second is the warm run.

The ONNX model and frontend tables come from ``--onnx`` (an ONNX file with ``frontend.npz`` and
``info.json`` or ``meta.json`` beside it), else from the runtime export beside the checkpoint
(``RUN/checkpoints/best.runtime/``, written by ``birdspec train``), else from the cache folder the
command runs used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks import common  # noqa: E402

WINDOW_S = 5.0
BATCH = 8


def _best(fn, repeats: int) -> tuple[float, float, object]:
    """(best CPU seconds of this thread, best wall seconds, last result) over ``repeats`` calls."""
    cpu, wall, res = [], [], None
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        res = fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall), res


# --------------------------------------------------------------------------- whole command


def run_command(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; wall, CPU, ``wait4`` peak RSS and the sampled peak RSS summed over its process tree
    (:func:`benchmarks.common.run_command`)."""
    res = common.run_command(cmd, env)
    text = res["output"]
    return {
        "rc": res["rc"],
        "wall_s": res["wall_s"],
        "cpu_s": res.get("cpu_s", float("nan")),
        "peak_mb_wait4": res.get("peak_mb_wait4", float("nan")),
        "peak_mb_tree_sampled": res["peak_mb_tree"],
        "tail": text.strip().splitlines()[-1:] if text.strip() else [],
    }


# --------------------------------------------------------------------------- stages


def find_onnx(onnx: str | None, cache_dir: Path, checkpoint: Path) -> Path:
    """The ONNX model of the runtime export used by the command: beside the checkpoint, else in the cache."""
    if onnx:
        return Path(onnx)
    ck = checkpoint
    if ck.is_dir():
        ck = next((ck / n for n in ("checkpoints/best.pt", "best.pt", "checkpoints/last.pt", "last.pt") if (ck / n).is_file()), ck)
    found = sorted(ck.with_suffix(".runtime").glob("*.onnx")) if ck.with_suffix(".runtime").is_dir() else []
    if not found and cache_dir.exists():
        found = sorted(cache_dir.rglob("*.onnx"))
    if not found:
        raise SystemExit(f"no ONNX export found beside {checkpoint} or in {cache_dir}; pass --onnx")
    return found[0]


def frontend_of(onnx: Path):
    """(FrontendConfig, window, filterbank, norm dict) from the files beside the ONNX model.

    Reads ``info.json`` (runtime exports: ``{"checkpoint": {"frontend", "input_norm"}}``) or
    ``meta.json`` (older cache entries: ``{"frontend", "norm"}``).
    """
    from birdspec.config import FrontendConfig, from_dict

    meta: dict = {}
    for name in ("info.json", "meta.json"):
        if (onnx.parent / name).is_file():
            meta = json.loads((onnx.parent / name).read_text())
            break
    ck = meta.get("checkpoint") if isinstance(meta.get("checkpoint"), dict) else meta
    fe = from_dict(FrontendConfig, ck["frontend"]) if "frontend" in ck else FrontendConfig()
    norm = (ck.get("model") or {}).get("input_norm_settings") or ck.get("input_norm") or ck.get("norm") or {"kind": "instance", "eps_db": 1.0}
    if isinstance(norm, str):
        norm = {"kind": norm, "eps_db": 1.0}
    npz = onnx.parent / "frontend.npz"
    if npz.is_file():
        t = np.load(npz)
        window, fb = t["window"], t["filterbank"]
    else:  # the frontend's tables, from their one definition
        from birdspec.features import tables

        window, fb = tables.analysis_window(fe), tables.filterbank(fe)
    return fe, window, fb, norm


def profile_stages(audio_path: Path, onnx: Path, *, minutes: float | None, repeats: int) -> dict:
    import soundfile as sf

    from birdspec import audio
    from birdspec.features.input_norm import NUMPY_NORM_OPS, normalise
    from birdspec.features.numpy_frontend import NumpyFrontend

    info = sf.info(str(audio_path))
    sr_in = int(info.samplerate)
    src = audio_path
    tmp = None
    if minutes is not None and info.duration > minutes * 60 + 1:  # profile the first minutes: a cut copy
        tmp = tempfile.TemporaryDirectory(prefix="birdspec-profile-")
        src = Path(tmp.name) / ("cut" + audio_path.suffix)
        with sf.SoundFile(str(audio_path)) as f, sf.SoundFile(str(src), "w", sr_in, f.channels, format=f.format, subtype=f.subtype) as g:
            left = int(minutes * 60 * sr_in)
            while left > 0:
                b = f.read(min(left, 1 << 20), dtype="float32")
                if not len(b):
                    break
                g.write(b)
                left -= len(b)
    try:
        dec_cpu, dec_wall, _ = _best(lambda: sum(b.size for b in audio.iter_blocks(src, sample_rate_hz=sr_in, block_s=30.0)), repeats)
        both_cpu, both_wall, blocks = _best(lambda: list(audio.iter_blocks(src, block_s=30.0)), repeats)
    finally:
        if tmp is not None:
            tmp.cleanup()
    wave = np.concatenate(blocks)
    fe, window, fb, norm = frontend_of(onnx)
    w = int(round(WINDOW_S * fe.sample_rate_hz))
    n = wave.size // w
    waves = wave[: n * w].reshape(n, w)
    lm = NumpyFrontend(fe, window=window, filterbank=fb, threads=1)
    spec_cpu, spec_wall, _ = _best(lambda: [lm(waves[i : i + BATCH]) for i in range(0, n, BATCH)], repeats)
    feats = np.concatenate([lm(waves[i : i + BATCH]) for i in range(0, n, BATCH)])
    if norm.get("kind", "instance") != "none":
        norm_fn = lambda: [normalise(NUMPY_NORM_OPS, feats[i : i + BATCH].copy(), norm) for i in range(0, n, BATCH)]  # noqa: E731
        copy_cpu, copy_wall, _ = _best(lambda: [feats[i : i + BATCH].copy() for i in range(0, n, BATCH)], repeats)
        norm_cpu, norm_wall, normed = _best(norm_fn, repeats)
        norm_cpu, norm_wall = max(0.0, norm_cpu - copy_cpu), max(0.0, norm_wall - copy_wall)
        feats = np.concatenate(normed)
    else:
        norm_cpu = norm_wall = 0.0
    net = {}
    import onnxruntime as ort

    for threads in (1, 2):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x4 = feats[:, None]
        sess.run(None, {name: x4[:BATCH]})
        cpu, wall, logits = _best(lambda s=sess, nm=name, x=x4: [s.run(None, {nm: x[i : i + BATCH]})[0] for i in range(0, n, BATCH)], repeats)
        net[threads] = (cpu, wall, np.concatenate(logits))
    logits = net[1][2]

    def scores():
        import io

        import pandas as pd

        z = logits.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        k = min(3, p.shape[1])
        top = np.argsort(-p, axis=1)[:, :k]
        rows = pd.DataFrame({
            "file": audio_path.name,
            "window": np.repeat(np.arange(n), k),
            "start_s": np.repeat(np.arange(n) * WINDOW_S, k),
            "end_s": np.repeat(np.arange(1, n + 1) * WINDOW_S, k),
            "rank": np.tile(np.arange(1, k + 1), n),
            "label": np.asarray([f"class{c}" for c in range(p.shape[1])])[top.ravel()],
            "confidence": np.take_along_axis(p, top, axis=1).ravel(),
        })
        rows = rows[rows["confidence"] >= 0.1]
        buf = io.StringIO()
        rows.to_csv(buf, index=False)
        return len(buf.getvalue())

    scores()  # once untimed: the pandas import is part of the fixed cost, not of a window
    sc_cpu, sc_wall, _ = _best(scores, repeats)
    per = lambda s: s / n * 1e3  # noqa: E731  ms per window
    stages = {
        "decode": (per(dec_cpu), per(dec_wall)),
        "resample": (per(max(0.0, both_cpu - dec_cpu)), per(max(0.0, both_wall - dec_wall))),
        "spectrogram": (per(spec_cpu), per(spec_wall)),
        "input norm": (per(norm_cpu), per(norm_wall)),
        "network (1 thread)": (per(net[1][0]), per(net[1][1])),
        "scores + table": (per(sc_cpu), per(sc_wall)),
    }
    return {
        "audio": str(audio_path),
        "input_sample_rate_hz": sr_in,
        "windows": n,
        "audio_s": n * WINDOW_S,
        "stages_ms_per_window": {k: {"cpu": v[0], "wall": v[1]} for k, v in stages.items()},
        "network_2_threads_wall_ms_per_window": per(net[2][1]),
        "network_2_threads_cpu_ms_per_window_calling_thread": per(net[2][0]),
        "sum_cpu_ms_per_window": sum(v[0] for v in stages.values()),
    }


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("audio", type=Path)
    ap.add_argument("--minutes", type=float, default=10.0, help="profile the stages on the first minutes of AUDIO (default 10; 0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--onnx", help="backbone.onnx to use (default: found in the cache / run folder)")
    ap.add_argument("--cache-dir", type=Path, help="BIRDSPEC_CACHE_DIR for the commands (default: a fresh temporary folder)")
    ap.add_argument("--no-command", action="store_true", help="skip the whole-command runs")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    result: dict = {"machine": common.describe_machine()}
    tmp = tempfile.TemporaryDirectory(prefix="birdspec-profile-")
    cache = args.cache_dir or Path(tmp.name) / "cache"
    env = dict(os.environ, BIRDSPEC_CACHE_DIR=str(cache))
    exe = str(Path(sys.executable).with_name("birdspec"))
    out_csv = str(Path(tmp.name) / "x.csv")
    if not args.no_command:
        import soundfile as sf

        short = Path(tmp.name) / ("short" + args.audio.suffix)
        with sf.SoundFile(str(args.audio)) as f:
            sf.write(str(short), f.read(int(10 * f.samplerate), dtype="float32"), f.samplerate, format=f.format, subtype=f.subtype)
        dur = sf.info(str(args.audio)).duration
        runs = {}
        for label, path in (("first run (cold cache)", args.audio), ("second run (warm)", args.audio), ("fixed cost: 10 s file (warm)", short)):
            r = run_command([exe, "predict", str(args.checkpoint), str(path), "--out", out_csv], env)
            d = dur if path == args.audio else 10.0
            r["audio_s"] = d
            r["rtf"] = d / r["wall_s"]
            runs[label] = r
            print(f"{label:30} wall {r['wall_s']:7.2f} s  RTF {r['rtf']:6.0f}x  CPU {r['cpu_s']:6.2f} s  "
                  f"peak {r['peak_mb_wait4']:5.0f} MB (wait4) / {r['peak_mb_tree_sampled']:5.0f} MB (tree, sampled)  rc {r['rc']}", flush=True)
        result["command"] = runs
    onnx = find_onnx(args.onnx, cache, args.checkpoint)
    prof = profile_stages(args.audio, onnx, minutes=args.minutes or None, repeats=args.repeats)
    result["stages"] = prof
    print(f"\nper 5 s window, {prof['windows']} windows of {args.audio.name} ({prof['input_sample_rate_hz']} Hz), best of {args.repeats}:")
    print(f"{'stage':22} {'CPU ms':>8} {'share':>6} {'wall ms':>8}")
    total = prof["sum_cpu_ms_per_window"]
    for k, v in prof["stages_ms_per_window"].items():
        print(f"{k:22} {v['cpu']:8.2f} {v['cpu'] / total:6.0%} {v['wall']:8.2f}")
    print(f"{'sum':22} {total:8.2f}")
    print(f"network, 2 intra-op threads: {prof['network_2_threads_wall_ms_per_window']:.2f} ms wall per window")
    print(f"best possible on 2 cores (sum of CPU / 2): {5000 / (total / 2):.0f}x real time")
    if "command" in result:
        warm = result["command"]["second run (warm)"]
        print(f"whole command (warm): {warm['cpu_s'] / (warm['audio_s'] / WINDOW_S) * 1e3:.2f} ms CPU per window "
              "(fixed cost included)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
