"""``birdspec soundscape make DATASET_DIR --fold K --out DIR``: synthetic soundscapes with known truth."""

from __future__ import annotations

import argparse

from birdspec.cli.train_cmd import float_pair

DESCRIPTION = """\
Mix long recordings from the recordings of ONE fold of a prepared dataset
(prepare it with --folds K): excerpts of its recordings placed at known times,
sometimes overlapping, at SNRs in --snr-db over a background bed (the quiet
stretches of the --background recordings, or pink noise). Writes DIR/audio/
(FLAC), DIR/truth.csv (BirdCLEF 2021 style: row_id per 5 s window, birds or
nocall; a window holds a species iff a placed call overlaps it by at least
--min-overlap-s), DIR/calls.csv (every placed call) and DIR/soundscapes.json.

A soundscape of fold k holds only fold k's recordings, so a model trained on
the other folds can be scored honestly:
  birdspec predict RUN/checkpoints/best.pt DIR/audio --format birdclef --out sub.csv
  birdspec score-soundscapes sub.csv DIR/truth.csv
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("soundscape", help="synthetic soundscapes with known truth (soundscape make)")
    sub = p.add_subparsers(dest="soundscape_command", metavar="ACTION")
    m = sub.add_parser("make", help="mix soundscapes from one fold's recordings", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("dataset", metavar="DATASET_DIR", help="a prepared dataset with folds")
    m.add_argument("--fold", type=int, required=True, help="the fold whose recordings are mixed")
    m.add_argument("--out", required=True, metavar="DIR", help="output folder (audio/, truth.csv, calls.csv)")
    m.add_argument("--count", type=int, default=4, help="number of soundscapes (default 4)")
    m.add_argument("--duration-s", type=float, default=60.0, help="length of each, a multiple of 5 s (default 60)")
    m.add_argument("--background", metavar="DIR", help="background recordings (default: pink noise)")
    m.add_argument("--snr-db", type=float_pair, default=(-5.0, 20.0), metavar="LO,HI", help="call SNR range (default -5,20)")
    m.add_argument("--event-s", type=float_pair, default=(2.0, 8.0), metavar="LO,HI", help="call excerpt length (default 2,8)")
    m.add_argument("--gap-s", type=float_pair, default=(0.0, 10.0), metavar="LO,HI", help="gap between calls (default 0,10)")
    m.add_argument("--overlap", type=float, default=0.3, metavar="P", help="chance a call overlaps the previous one (default 0.3)")
    m.add_argument("--min-overlap-s", type=float, default=0.5, help="overlap that puts a call in a window's truth (default 0.5)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=run)
    p.set_defaults(func=lambda args: p.print_help() or 2)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.data.soundscape import SoundscapeConfig, make_soundscapes
    from birdspec.fileio import refuse_output_over_inputs

    refuse_output_over_inputs(args.out, [args.dataset] + ([args.background] if args.background else []))
    cfg = SoundscapeConfig(duration_s=args.duration_s, snr_db=args.snr_db, event_s=args.event_s, gap_s=args.gap_s,
                           overlap_probability=args.overlap, min_overlap_s=args.min_overlap_s, seed=args.seed)
    made = make_soundscapes(args.dataset, args.out, fold=args.fold, count=args.count, config=cfg,
                            background_dir=args.background, progress=not args.no_progress)
    print(f"{len(made.audio)} soundscapes, {len(made.calls)} calls, {len(made.truth)} windows "
          f"({made.nocall_windows} nocall) in {made.out_dir}")
    return 0
