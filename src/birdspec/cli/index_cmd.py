"""``birdspec index``: an embedding index of every window of an archive (for ``birdspec search``)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

DESCRIPTION = """\
Embed every window of every recording under ARCHIVE (searched recursively for
audio; the top folder under ARCHIVE is a recording's deployment) and store the
vectors with a vector index in the folder INDEX, for `birdspec search`.

Backbones: `birdnet` (BirdNET v2.4: 3 s windows, 1024-d embeddings; needs
pip install 'birdspec[birdnet]', model licence CC BY-NC-SA 4.0), or a birdspec
run folder / checkpoint of a window model (its window, and its features before
the final classifier layer: 1280-d for mobilenetv2-seed, 512-d for resnet18).
Windows start every --hop-s seconds (default: the window length) and follow
`birdspec predict`: the last partial window is kept when it holds >= 1 s.

The run is resumable like `birdspec predict --out FOLDER`: each recording is
kept in INDEX/parts/ as soon as it is embedded, so running the command again
after a crash embeds only what is left; later runs embed only recordings that
were added or changed (another size or modification time), then rewrite the
index. --jobs N embeds on N processes; --engine dask on a Dask cluster (--scheduler
ADDRESS, or a local one), with ARCHIVE and INDEX on storage every worker sees.

INDEX holds index.json (backbone, checkpoint SHA-256, window, hop, dimension,
dtype), windows.csv (recording, deployment, start_s, end_s), vectors.npy
(unit vectors, float16 by default), recordings.csv (each recording's windows
and their keys in the graph) and vectors.usearch (an HNSW graph for fast
approximate search; built when usearch is installed: pip install
'birdspec[index]'). Without it, search compares every vector (exact; fine up
to about 100,000 windows). A rerun updates the graph in place (the windows of
added recordings inserted, those of changed or removed ones removed); it is
built whole the first time, for other settings, or once most of its vectors
are gone.
"""

_EPILOG = """\
examples:
  birdspec index /data/archive/ --backbone birdnet --out /data/archive-index/
  birdspec index /data/archive/ --backbone runs/mobilenet/ --hop-s 2.5 --out idx/ --jobs 2
  birdspec index /shared/archive/ --backbone birdnet --out /shared/index/ --engine dask --scheduler tcp://head:8786
  birdspec search /data/archive-index/ call.wav --start-s 12 --end-s 15 --top 100
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.prediction.choices import ENGINE_HELP, ENGINES, SCHEDULER_HELP
    from birdspec.similarity.build import APPROXIMATE_CHOICES
    from birdspec.similarity.index_store import VECTOR_DTYPES

    p = subparsers.add_parser(
        "index",
        help="embed every window of an archive into a searchable index (BirdNET or a run)",
        description=DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("archive", metavar="ARCHIVE", help="folder of recordings (ARCHIVE/DEPLOYMENT/..., searched recursively)")
    p.add_argument("--backbone", required=True, metavar="birdnet|RUN",
                   help="birdnet, or a run folder / checkpoint file of a birdspec window model")
    p.add_argument("--out", required=True, metavar="INDEX", help="the index folder (created, resumed or extended)")
    p.add_argument("--hop-s", type=float, default=None, metavar="S", help="seconds between window starts (default: the window length)")
    p.add_argument("--dtype", choices=VECTOR_DTYPES, default=None,
                   help="how vectors are stored (default: the index's, else float16: int8 halves them but loses recall)")
    p.add_argument("--approximate", choices=APPROXIMATE_CHOICES, default="auto",
                   help="build the approximate vector index: auto (when usearch is installed), always, never")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes (default: one per core)")
    p.add_argument("--engine", choices=ENGINES, default="local", help=ENGINE_HELP)
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help=SCHEDULER_HELP)
    p.add_argument("--threads", type=int, default=None, metavar="N", help="backbone threads per worker (default: cores / jobs)")
    p.add_argument("--overwrite", action="store_true", help="discard an index made with other settings (backbone, checkpoint, hop)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.errors import ConfigError
    from birdspec.fileio import refuse_output_over_inputs
    from birdspec.similarity.ann_update import BUILD, UPDATE
    from birdspec.similarity.build import build_index

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    refuse_output_over_inputs(args.out, [args.archive])
    s = build_index(args.archive, args.out, backbone=args.backbone, hop_s=args.hop_s, dtype=args.dtype, jobs=args.jobs,
                    threads=args.threads, engine=args.engine, scheduler=args.scheduler, approximate=args.approximate,
                    overwrite=args.overwrite, progress=not args.no_progress)
    failed = f", {s['failed']} failed (see {args.out}/failed.csv)" if s["failed"] else ""
    graph = {BUILD: " (graph built whole)", UPDATE: " (graph updated in place)"}.get(s.get("ann_update") or "", "")
    state = f"rewritten{graph}" if s["rewritten"] else "up to date"
    search = "exact and approximate search" if s["approximate"] else "exact search only (pip install 'birdspec[index]' for approximate)"
    print(f"{s['num_recordings']} recording(s){failed}, {s['audio_hours']:.2f} h of audio, {s['num_vectors']} windows "
          f"({s['dtype']}); {s['embedded_now']} embedded now in {s['wall_s']:.1f} s; index {state}: {s['index']} ({search})")
    return 0
