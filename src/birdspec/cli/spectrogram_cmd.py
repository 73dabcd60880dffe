"""``birdspec spectrogram``: one stretch of a recording under each spectrogram type, stacked."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

DEFAULT_KINDS = "logmel,pcen,linear,mfcc"
DEFAULT_DURATION_S = 10.0

DESCRIPTION = """\
Draw the same stretch of one recording under each spectrogram type (one panel
per type, stacked, sharing the time axis) and write a PNG. The spectrograms are
computed by the frontend the models use (32 kHz mono, the types' own settings);
time is in seconds from the start of the recording, frequency in kHz at the
true row centres (mel rows are evenly spaced in mel, not in Hz), or the
coefficient index for mfcc. Each panel has a colour bar with its unit: dB for
logmel, linear and learnable-mel, PCEN units for pcen, coefficient values for
mfcc. `birdspec models` lists the types.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.config import FRONTENDS

    p = subparsers.add_parser(
        "spectrogram",
        help="draw a stretch of a recording under each spectrogram type (PNG)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="recording (wav, flac, ogg, mp3, ...; any rate, resampled to 32 kHz mono)")
    p.add_argument("--start-s", type=float, default=0.0, metavar="S", help="start of the stretch in seconds (default 0)")
    p.add_argument("--duration-s", type=float, default=DEFAULT_DURATION_S, metavar="D",
                   help=f"length of the stretch in seconds (default {DEFAULT_DURATION_S:g}; shorter at the end of the file)")
    p.add_argument("--frontend", default=DEFAULT_KINDS, metavar="NAME[,NAME...]",
                   help=f"spectrogram types, top to bottom, comma-separated (default {DEFAULT_KINDS}; "
                        f"choose from {', '.join(FRONTENDS)})")
    p.add_argument("--frontend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="spectrogram setting applied to every type, e.g. n_fft=1024 (repeatable; JSON values)")
    p.add_argument("--title", default=None, help="figure title (default: the file name and the stretch)")
    p.add_argument("--dpi", type=int, default=120, help="resolution of the PNG (default 120)")
    p.add_argument("--out", required=True, metavar="PNG", help="the figure to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out that is not a PNG image")
    p.set_defaults(func=run)
    return p


def _kinds(text: str) -> list[str]:
    from birdspec.config import FRONTENDS
    from birdspec.errors import ConfigError

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in FRONTENDS]
    if not kinds or unknown:
        what = f"unknown spectrogram type(s) {', '.join(unknown)}" if unknown else "no spectrogram type given"
        raise ConfigError(f"--frontend: {what}; choose from {', '.join(FRONTENDS)}")
    return kinds


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from birdspec import audio
    from birdspec.cli.train_cmd import parse_key_values
    from birdspec.config import SAMPLE_RATE_HZ
    from birdspec.errors import ConfigError
    from birdspec.evaluation.spectrogram_plot import plot_spectrograms
    from birdspec.fileio import refuse_output_over_inputs, refuse_replacing

    kinds = _kinds(args.frontend)
    options = parse_key_values(args.frontend_option, flag="--frontend-option")
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name such as {out / 'spectrograms.png'}")
    refuse_output_over_inputs(out, [args.file])
    refuse_replacing(out, suffixes=(".png",), magic="png", overwrite=args.overwrite)
    if args.start_s < 0 or args.duration_s <= 0:
        raise ConfigError("--start-s must be >= 0 and --duration-s positive")
    length_s = audio.info(args.file).duration_s  # AudioError when missing or unreadable
    if length_s and args.start_s >= length_s:
        raise ConfigError(f"--start-s {args.start_s:g} is beyond the end of {args.file} ({length_s:.2f} s long)")
    wave = audio.load(args.file, sample_rate_hz=SAMPLE_RATE_HZ, offset_s=args.start_s, duration_s=args.duration_s)
    if wave.size == 0:
        raise ConfigError(f"no audio in {args.file} from {args.start_s:g} s")
    end_s = args.start_s + wave.size / SAMPLE_RATE_HZ
    title = args.title if args.title is not None else f"{Path(args.file).name}, {args.start_s:g}-{end_s:.3g} s"
    path = plot_spectrograms(wave, SAMPLE_RATE_HZ, kinds, out, start_s=args.start_s, title=title,
                             options=options, dpi=args.dpi)
    print(f"wrote {path} ({', '.join(kinds)}; {args.start_s:g}-{end_s:.2f} s)")
    return 0
