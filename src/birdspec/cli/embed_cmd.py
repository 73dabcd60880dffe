"""``birdspec embed DIR --backbone birdnet``: cache per-window backbone embeddings of a prepared dataset."""

from __future__ import annotations

import argparse
from typing import Any

from birdspec.birdnet.backend import DEFAULT_BATCH

DESCRIPTION = """\
Run a frozen backbone over every recording of the prepared dataset DIR and
cache its per-window embeddings in DIR/embeddings/BACKBONE/ (embeddings.f16,
index.csv, embeddings.json), for the embedding models (`birdspec models`:
birdnet-linear, birdnet-mlp).

birdnet: BirdNET v2.4 on 3 s windows at 48 kHz (resampled from the stored
32 kHz audio), 1024-d embeddings. Windows start every --hop-s seconds; the
last partial window is dropped and recordings shorter than 3 s become one
zero-padded window. Needs the optional extra: pip install 'birdspec[birdnet]'.
The BirdNET model is licensed CC BY-NC-SA 4.0 (non-commercial use only).

No-bird clips: then it embeds clips without a bird, each one output window
and the second on each side its BirdNET windows reach into (7 s for 5 s
windows), embedded as `birdspec predict` embeds a window (3 s BirdNET windows
every 1 s, those centred in the window), into the same folder
(nocall.f16, nocall.csv): 320 synthetic backgrounds (silence, noise, wind,
rain, hum; a training and a disjoint validation part), up to 4 clips from
the quiet stretches of every recording, and with --background DIR up to 12
clips of every recording there (kept by later runs without --background).
Training a birdnet-* head draws its no-bird samples from them
(--nocall-fraction, default 0.2). A cache made before them gets them when
`embed` runs again, without recomputing the recordings' embeddings.

An interrupted run resumes where it stopped; re-running on a finished cache
with the same settings does nothing.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``embed`` on ``subparsers``; sets ``func``."""
    from birdspec.config import BACKBONES

    p = subparsers.add_parser(
        "embed",
        help="cache BirdNET embeddings of a prepared dataset (optional extra)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET_DIR", help="prepared dataset directory (`birdspec prepare`)")
    p.add_argument("--backbone", default="birdnet", choices=BACKBONES, help="embedding backbone (default birdnet)")
    p.add_argument("--hop-s", type=float, default=3.0, metavar="S", help="seconds between window starts (default 3: no overlap)")
    p.add_argument("--threads", type=int, metavar="N", help="backbone threads (default: all cores)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N",
                   help=f"windows per backbone call (default {DEFAULT_BATCH}; BirdNET's memory grows ~220 MB a window)")
    p.add_argument("--background", metavar="DIR", help="recordings without the classes' birds: embed no-bird clips of them too")
    p.add_argument("--synthetic-clips", type=int, metavar="N", help="synthetic no-bird clips (default: as many as the cache has, else 320)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache computed with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_embed)
    return p


def run_embed(args: argparse.Namespace) -> int:
    from birdspec.data.embed import embed_dataset

    report = embed_dataset(
        args.dataset,
        backbone=args.backbone,
        hop_s=args.hop_s,
        num_threads=args.threads,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        background_dir=args.background,
        synthetic_clips=args.synthetic_clips,
    )
    if report.computed_recordings:
        print(
            f"Embedded {report.computed_recordings} recordings ({report.computed_windows} windows, "
            f"{report.audio_s / 60:.1f} min of audio) in {report.elapsed_s:.1f} s "
            f"({report.realtime_factor:.0f}x real time); cache: {report.path} "
            f"({report.num_recordings} recordings, {report.num_windows} windows)"
        )
    elif not report.computed_nocall_clips:
        print(f"Embeddings up to date: {report.path} ({report.num_recordings} recordings, {report.num_windows} windows; "
              f"{report.nocall_clips} no-bird clips)")
    if report.computed_nocall_clips:
        print(f"Embedded {report.computed_nocall_clips} no-bird clips ({report.computed_nocall_windows} windows) in "
              f"{report.nocall_elapsed_s:.1f} s; cache: {report.path} ({report.nocall_clips} no-bird clips, "
              f"{report.nocall_windows} windows)")
    return 0
