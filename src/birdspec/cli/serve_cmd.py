"""``birdspec serve``: the local web app (Analyze, Review, Train from verified, Runs)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

DESCRIPTION = """\
Start a local web app and print its URL. Pages:

  Analyze   pick a recording from the served folders (or upload one) and a checkpoint from
            --runs; prediction runs in the background with a progress bar; then a zoomable,
            tiled spectrogram with a track per species, a minimum-score slider, a species
            filter, click-to-play with a following cursor, CSV and Raven downloads; mel or
            linear axis to Nyquist, dB colour bar, brightness/contrast, pointer readout; boxes
            drawn, played, labelled and saved as a Raven table beside the recording; a whole
            folder analysed as one run.
  Review    the detections of a prediction by species and score (or a random sample per score
            bin), the top choice of each window at or above the model's thresholds (or a minimum
            score), species by count or name, 300 cards a page; one card each with its
            spectrogram, audio and the model's top 3; verdicts by key (c correct, x wrong,
            o other species: one of the model's classes or --species-list) saved at once next
            to the prediction; precision per score bin with its lower confidence bound and a
            suggested threshold; export of the verified windows as a CSV manifest.
  Train     pool the verified windows of any predictions and manifests; prepare, train (recipe,
            model, epochs, device) and evaluate them in the background, with live curves; a
            species with too few recordings is validated on time blocks (said so).
  Similar   with --index: "find similar" on a box drawn in Analyze or a card in Review (f) searches an
            embedding index (`birdspec index`) for the windows most like it, for a species you name; the
            hits open in Review as cards with the same verdict keys. An agile round (r, on a search or
            round table) trains a linear classifier from every verdict on that index's tables, scores
            the whole index and opens the next windows to verify in Review (`birdspec agile`'s round);
            a BirdNET index's classifier is saved under --runs, a checkpoint Analyze can use.
  Runs      run folders with date, model, status, key metric; curves, metrics, confusion
            matrices; compare selected runs.

Only the folders given here are served (paths with '..', absolute paths and symlinks out of
them are refused). The app writes into --work (uploads, predictions, exports) and --runs
(training). Verdicts are saved next to their prediction table (X.verdicts.csv): in --work
for the app's predictions, and beside a `birdspec predict` table opened from another
served folder (a --recordings folder included); no lock file is left behind.
Needs the app extra: pip install 'birdspec[app]'.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="local web app: analyze, review and verify predictions, train from them",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", metavar="DIR", help="run folders: checkpoints to predict with, where training writes (default runs)")
    p.add_argument("--recordings", nargs="+", default=[], metavar="DIR", help="folders of recordings the pages may open (searched recursively)")
    p.add_argument("--index", nargs="+", default=[], metavar="DIR", help="embedding indexes (`birdspec index`) find similar "
                   "searches, or folders of them; their archives are served to read")
    p.add_argument("--work", default="birdspec-serve", metavar="DIR", help="where the app writes uploads, predictions (with their verdicts) "
        "and exports (default birdspec-serve)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--max-upload-mb", type=float, default=512.0, help="largest upload accepted (default 512 MB)")
    p.add_argument("--species-list", metavar="FILE",
                   help="species an 'other species' verdict may name besides the model's classes: a CSV with a label "
                        "column (and scientific_name, common_name), or a text file with one species a line")
    p.set_defaults(func=run)
    return p


def _check_port(host: str, port: int) -> None:
    """A clear message now for a port that is taken, instead of a server that stops after starting."""
    import socket

    from birdspec.errors import ConfigError

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port "
                          "(another birdspec serve may be running there)") from None


def run(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    from birdspec.errors import ConfigError, DependencyError

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyError(f"birdspec serve needs the app extra ({', '.join(missing)} missing): pip install 'birdspec[app]'")
    from birdspec.app.paths import ServeConfig
    from birdspec.app.server import serve

    for d in args.recordings:
        if not Path(d).is_dir():
            raise ConfigError(f"--recordings {d}: no such folder")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    _check_port(args.host, args.port)
    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.index:
        from birdspec.app.similar import discover

        discover([Path(d) for d in args.index])  # a folder with no index is refused now
    if args.species_list and not Path(args.species_list).is_file():
        raise ConfigError(f"--species-list {args.species_list}: no such file")
    config = ServeConfig(runs_dir=Path(args.runs), recording_dirs=tuple(Path(d) for d in args.recordings),
                         work_dir=Path(args.work), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
                         species_list=Path(args.species_list) if args.species_list else None,
                         index_dirs=tuple(Path(d) for d in args.index))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: other machines can reach this app (it has no login)", args.host)
    serve(config, ready=lambda url: print(f"birdspec serve: open {url} (Ctrl+C stops)", flush=True))
    return 0
