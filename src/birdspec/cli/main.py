"""The ``birdspec`` command: argument parsing only; every subcommand calls the API.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``,
which registers the parser and sets ``func(args) -> int | None``.

Exit status: 0 success (also when bad recordings were skipped and reported),
2 usage or data errors (:class:`~birdspec.errors.BirdspecError`) and file-system
errors (:func:`~birdspec.fileio.describe_os_error`: disk full, read-only, permission
denied, not a folder), 1 bugs, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from birdspec import __version__
from birdspec.errors import BirdspecError

log = logging.getLogger("birdspec")

# Order here is the order in `birdspec --help`.
COMMAND_MODULES = (
    "birdspec.cli.demo_cmd",
    "birdspec.cli.prepare_cmd",
    "birdspec.cli.info_cmd",
    "birdspec.cli.models_cmd",
    "birdspec.cli.train_cmd",
    "birdspec.cli.evaluate_cmd",
    "birdspec.cli.sweep_cmd",
    "birdspec.cli.cv_cmd",
    "birdspec.cli.learning_curve_cmd",
    "birdspec.cli.compare_cmd",
    "birdspec.cli.predict_cmd",
    "birdspec.cli.score_cmd",
    "birdspec.cli.evaluate_detections_cmd",
    "birdspec.cli.call_density_cmd",
    "birdspec.cli.soundscape_cmd",
    "birdspec.cli.export_cmd",
    "birdspec.cli.spectrogram_cmd",
    "birdspec.cli.embed_cmd",
    "birdspec.cli.index_cmd",
    "birdspec.cli.search_cmd",
    "birdspec.cli.agile_cmd",
    "birdspec.cli.serve_cmd",
)


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is when the record is emitted, so a later replaced (captured,
    redirected) stderr gets it and a closed earlier one is never written to (``main`` called more than once in
    one process: tests, notebooks)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 1 else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"))
    root = logging.getLogger("birdspec")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Lightning and friends are chatty at INFO; keep them to warnings unless -v.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.INFO if verbosity > 0 else logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="birdspec",
        description="Bird species classification from recordings with log-mel spectrograms and CNNs.",
        epilog="Start with `birdspec demo`; `birdspec COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"birdspec {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output: module names (-vv: debug messages too)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from birdspec.runtime import use_passive_openmp_wait

    use_passive_openmp_wait()  # before anything imports PyTorch: its OpenMP threads sleep when idle
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(-1 if args.quiet else args.verbose)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
    except BirdspecError as exc:
        print(f"birdspec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"birdspec {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `birdspec ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a read-only --out, a file where a folder should be: the one place they are told
        from birdspec.fileio import describe_os_error

        print(f"birdspec {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
