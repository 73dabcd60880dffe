"""How fast ``prepare`` decodes and stores audio (real-time factor).

Runs :func:`birdspec.data.prepare.prepare` on the reed warbler set (or a
source given) into a temporary directory and prints the audio decoded and
stored per wall-clock second::

    python benchmarks/prepare_speed.py                      # ../shared/data/xc-reed-warblers
    python benchmarks/prepare_speed.py SOURCE --workers 4 --repeat 3

The default encoding is ``stack10`` with ``short_policy tile`` so that every
recording is stored (a pure decoding + storage measure); ``--short-policy
drop`` measures the study setting, where short recordings are decoded and
then skipped. Figures: ``decoded`` counts all audio decoded, ``stored`` the
audio written to the store; CPU seconds (all processes) give a figure that
holds on a busy machine too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import DEFAULT_DATA, SHARED_DATA  # noqa: E402
from birdspec.config import EncodingConfig  # noqa: E402
from birdspec.data.prepare import prepare  # noqa: E402
from birdspec.data.prepared import describe  # noqa: E402
from birdspec.runtime import cpu_count  # noqa: E402


def default_source() -> Path:
    env = os.environ.get("BIRDSPEC_SHARED_DATA")
    return Path(env) / DEFAULT_DATA.relative_to(SHARED_DATA) if env else DEFAULT_DATA


def decoded_seconds(out: Path) -> float:
    """Audio decoded: the stored audio plus the recordings skipped after decoding."""
    import pandas as pd

    from birdspec import audio

    stored = describe(out)["duration_s"]
    skipped = pd.read_csv(out / "skipped.csv")
    extra = 0.0
    for path, reason in zip(skipped["path"], skipped["reason"], strict=True):
        if str(reason).startswith(("too short", "duration", "all silent")):
            extra += audio.info(path).duration_s
    return stored + extra


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its reaped children (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "source", nargs="?", type=Path, default=None, help="dataset folder or CSV (default: reed warblers)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--short-policy", default="tile", choices=("drop", "tile", "pad"))
    parser.add_argument("--repeat", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary output")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    source = args.source or default_source()
    if not source.exists():
        print(f"no source at {source}; give one or set BIRDSPEC_SHARED_DATA", file=sys.stderr)
        return 2
    encoding = EncodingConfig(short_policy=args.short_policy)
    walls, cpus, stored_s, decoded_s = [], [], 0.0, 0.0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="birdspec-bench-") as tmp:
            out = Path(tmp) / "ds"
            cpu0 = _cpu_s()
            t0 = time.perf_counter()
            prepare(source, out, encoding=encoding, workers=args.workers, progress=False)
            walls.append(time.perf_counter() - t0)
            cpus.append(_cpu_s() - cpu0)
            stored_s = describe(out)["duration_s"]
            decoded_s = decoded_seconds(out)
    wall = statistics.median(walls)
    cpu = statistics.median(cpus)
    result = {
        "source": str(source),
        "workers": args.workers,
        "cpu_count": cpu_count(),
        "short_policy": args.short_policy,
        "audio_decoded_s": round(decoded_s, 1),
        "audio_stored_s": round(stored_s, 1),
        "wall_s": round(wall, 2),
        "wall_s_all": [round(w, 2) for w in walls],
        "realtime_factor_decoded": round(decoded_s / wall, 1),
        "realtime_factor_stored": round(stored_s / wall, 1),
        "cpu_s": round(cpu, 2),
        "realtime_factor_per_cpu_s": round(decoded_s / cpu, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"prepare {source.name}: {decoded_s / 60:.1f} min decoded, {stored_s / 60:.1f} min stored, "
            f"median wall {wall:.2f} s of {args.repeat} (runs {', '.join(f'{w:.2f}' for w in walls)}), "
            f"{args.workers} workers on {cpu_count()} cores: "
            f"{decoded_s / wall:.0f}x real time decoded, {stored_s / wall:.0f}x stored; "
            f"{cpu:.2f} CPU s (all processes) = {decoded_s / cpu:.0f}x real time per CPU second; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
