"""``birdspec predict``: species scores for recordings of any length."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DESCRIPTION = """\
Score recordings (files, or folders searched recursively for audio) with a checkpoint.

Audio is decoded in blocks (memory stays flat for multi-hour files) and cut
into the checkpoint's windows (5 s) every --hop-s seconds. The last partial
window is scored when it holds at least --min-partial-s seconds of audio
(default 1 s): it is reported with its true start and end and scored on the
recording's last window length (5 s; the window shifted back to end with the
recording, so the model hears real audio only); a shorter tail is dropped. A
recording shorter than one window is zero-padded to it (tiled for checkpoints
trained with short_policy 'tile'), as is the partial window in a stack10
context.

stack10 checkpoints see 50 s (10 windows) at a time: each 5 s window is
scored from the 10 consecutive windows centred on it (4 before, 5 after;
--context trailing: the window and the 9 before it), shifted to stay inside
the recording at its start and end; the columns context_start_s and
context_end_s say which audio each score comes from. Recordings shorter than
50 s are scored once as a whole (tiled or zero-padded per the checkpoint).

Scores are softmax probabilities for single-label models (the study's: the
scores of one window sum to 1 over the classes) and sigmoid scores for
multi-label ones. For each window, the --top-k best classes scoring at least
--min-conf are written.

A recording that cannot be decoded is logged, listed in a failed list (OUT/failed.csv
for folder outputs, OUT.failed.csv beside a file output) and skipped; with --strict the
command stops with exit status 2. When no recording at all could be scored, a file
output fails with exit status 2 and keeps what it held. Non-finite samples (NaN or
infinite, in float files) are scored as silence, with one warning per recording
giving their count and time range; a recording with no finite sample fails like one
that does not decode.

Archives: an --out folder (a name without suffix, a trailing /, an existing folder, and
always for raven and audacity) is a resumable run: every recording's scores are kept in
OUT/parts/ as soon as it is done, so running the same command again after a crash or
Ctrl-C scores only what is left (and what changed); then one merge writes
OUT/predictions.csv (.parquet, submission.csv, or the per-recording tables), failed.csv
and summary.json. The merged output is the same, row for row, however the work was split.
--jobs N scores on N local processes; --engine dask on a Dask cluster (--scheduler
ADDRESS, or a local one), with the archive and OUT on storage every worker sees.
"""

EPILOG = """\
formats:
  csv       one table: file, window, start_s, end_s, [context_start_s, context_end_s,]
            rank, label, scientific_name, common_name, confidence
            (--scores all: one row per window, one score column per class)
  parquet   the same table as Parquet (needs pyarrow)
  raven     OUT/<stem>.BirdSpec.selection.table.txt per recording (Raven Pro selection tables)
  audacity  OUT/<stem>.BirdSpec.labels.txt per recording (start, end, "label confidence")
  birdclef  BirdCLEF 2021 submission: row_id (<stem>_<end second>), birds (codes or nocall)

examples:
  birdspec predict runs/best.pt soundscapes/ --format birdclef --out submission.csv
  birdspec predict runs/best.pt rec.flac --format raven --out selections/ --min-conf 0.3
  birdspec predict runs/best.pt rec.flac --scores all --out scores.csv
  birdspec predict runs/best.pt /data/archive/ --out /data/run1/ --jobs 2
  birdspec predict runs/best.pt /shared/archive/ --out /shared/run1/ --engine dask --scheduler tcp://head:8786
"""


OUT_KINDS: dict[str, dict[str, Any]] = {
    "csv": {"suffixes": (".csv", ".tsv", ".txt")},
    "birdclef": {"suffixes": (".csv",)},
    "parquet": {"suffixes": (".parquet", ".pq"), "magic": "parquet"},
    "folder": {"suffixes": (), "folder": True},
}
"""What an existing --out may be for each format to be replaced without --overwrite."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.formats import FORMATS, SCORE_MODES
    from birdspec.prediction.choices import ENGINE_HELP, ENGINES, SCHEDULER_HELP
    from birdspec.prediction.runtime_types import ACTIVATION_CHOICES, BACKENDS
    from birdspec.runtime import PREDICT_DEVICES
    from birdspec.windowing import CONTEXT_POSITIONS, DEFAULT_MIN_PARTIAL_S

    p = subparsers.add_parser(
        "predict",
        help="score recordings with a checkpoint (CSV, Raven, Audacity, BirdCLEF, Parquet)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint file (or a run folder with best.pt / last.pt)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recordings or folders (searched recursively)")
    p.add_argument("--window-s", type=float, default=None, help="window length; must be the checkpoint's (default: the checkpoint's, 5 s)")
    p.add_argument("--hop-s", type=float, default=None, help="seconds between window starts (default: the window length)")
    p.add_argument("--min-partial-s", type=float, default=DEFAULT_MIN_PARTIAL_S, help=f"least audio a last partial window needs to be "
        f"scored (default {DEFAULT_MIN_PARTIAL_S:g})")
    p.add_argument("--min-conf", type=float, default=None,
                   help="lowest score written, for every class (default: the model's per-class detection thresholds, "
                        "chosen on validation when it was trained, so a window where no class reaches its threshold "
                        "is written as nocall (birdclef) or not at all; 0.1 for models trained before birdspec chose them)")
    p.add_argument("--top-k", type=int, default=3, help="classes written per window, best first (default 3; 0: all above the thresholds)")
    p.add_argument("--scores", choices=SCORE_MODES, default="topk", help="csv/parquet: kept classes (topk) or every class score per window (all)")
    p.add_argument("--format", choices=FORMATS, default="csv", help="output format (default csv)")
    p.add_argument("--out", default=None, help="output file, '-' for stdout (csv, birdclef), or a resumable run folder (see Archives; "
        "always for raven, audacity); default predictions.csv / predictions.parquet / submission.csv / predictions/")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="folder --out: worker processes (default: one per core, one thread each)")
    p.add_argument("--engine", choices=ENGINES, default="local", help=f"folder --out: {ENGINE_HELP}")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help=SCHEDULER_HELP)
    p.add_argument("--batch-size", type=int, default=None, help="windows per network call (default 4 on CPU, 64 on CUDA)")
    p.add_argument("--device", choices=PREDICT_DEVICES, default="auto", help="where the network runs (default auto: CUDA when present)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: ONNX Runtime on CPU (from the run folder's export, else "
        "exported once and cached), PyTorch on CUDA")
    p.add_argument("--context", choices=CONTEXT_POSITIONS, default="centre", help="stack10: position of a window in its 50 s context "
        "(default centre)")
    p.add_argument("--activation", choices=ACTIVATION_CHOICES, default="auto", help="score function (default: the one the model was trained "
        "with: softmax, softmax-background for models that learned \"no bird\", sigmoid for multi-label; another one drops the model's thresholds)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out of another kind (e.g. a file that is not a table)")
    p.add_argument("--strict", action="store_true", help="stop with exit status 2 at the first recording that cannot be decoded")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.errors import ConfigError
    from birdspec.fileio import refuse_output_over_inputs, refuse_replacing
    from birdspec.models.checkpoint import resolve_checkpoint_path
    from birdspec.models.checkpoint_info import describe_thresholds
    from birdspec.prediction.archive import is_out_folder
    from birdspec.prediction.choices import check_engine
    from birdspec.prediction.outputs import PredictionWriter, default_out
    from birdspec.prediction.predictor import Predictor, collect_audio_paths
    from birdspec.prediction.write import predict_into

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.scores == "all" and args.format not in ("csv", "parquet"):
        raise ConfigError(f"--scores all is for csv and parquet, not {args.format}")
    out = args.out or default_out(args.format)
    folder = is_out_folder(out, args.format)
    if out != "-":
        refuse_output_over_inputs(out, [resolve_checkpoint_path(args.checkpoint), *args.paths])
        refuse_replacing(out, overwrite=args.overwrite, **(OUT_KINDS["folder"] if folder else OUT_KINDS[args.format]))
    if not folder and (args.jobs is not None or args.engine != "local" or args.scheduler):
        raise ConfigError(f"--jobs, --engine and --scheduler need a folder --out (a resumable run), not {out}; "
                          "e.g. --out predictions/")
    check_engine(args.engine, args.scheduler)
    collect_audio_paths(args.paths)  # missing paths are usage errors, before anything is loaded or written
    if folder:
        return _run_folder(args, out)
    predictor = Predictor(args.checkpoint, **_score_options(args), min_conf=args.min_conf, top_k=args.top_k,
                          scores=args.scores, threads=args.threads)
    fe = predictor.frontend
    writer = PredictionWriter(
        args.format,
        out,
        class_info=predictor.class_info,
        min_conf=predictor.min_conf,
        top_k=args.top_k,
        scores=args.scores,
        freq_band_hz=(fe.fmin_hz, fe.fmax_hz),
    )
    log.info(
        "%s: %s encoding, %d classes, %s scores, %s on %s; thresholds %s",
        args.checkpoint, predictor.encoding.name, len(predictor.classes), predictor.activation, predictor.backend, predictor.device,
        ("the model's (" + describe_thresholds(predictor.min_conf) + ")") if predictor.thresholds_from_model
        else describe_thresholds(predictor.min_conf),
    )
    where = "stdout" if out == "-" else out
    try:
        s = predict_into(predictor, args.paths, [writer], strict=args.strict, progress=not args.no_progress,
                         guard=None if out == "-" else out)
    finally:
        predictor.close()
    log.info("%d recording(s), %.1f min of audio in %.1f s (%.0fx real time); %d row(s) -> %s",
             s.recordings, s.audio_s / 60, s.wall_s, s.real_time_factor, s.rows, where)
    if s.failed:
        log.warning("%d recording(s) could not be decoded or were too short to score, and were skipped; see %s",
                    s.failed, s.failed_file)
    return 0


def _score_options(args: argparse.Namespace) -> dict:
    """The Predictor options that decide the scores and where they are computed (both output modes)."""
    return {"device": args.device, "batch_size": args.batch_size, "backend": args.backend, "window_s": args.window_s,
            "hop_s": args.hop_s, "min_partial_s": args.min_partial_s, "context": args.context, "activation": args.activation}


def _run_folder(args: argparse.Namespace, out: str) -> int:
    """A resumable folder prediction (prediction/archive_run.py) and its summary on stdout."""
    from birdspec.formats import FAILED_FILE
    from birdspec.prediction.archive_run import predict_folder

    s = predict_folder(args.checkpoint, args.paths, out, fmt=args.format, scores=args.scores, min_conf=args.min_conf,
                       top_k=args.top_k, options=_score_options(args), jobs=args.jobs, engine=args.engine, scheduler=args.scheduler,
                       threads=args.threads, overwrite=args.overwrite, progress=not args.no_progress)
    hours, wall = s["audio_hours"], s["wall_s"]
    speed = f"{hours * 3600 / wall:.0f}x real time" if wall > 0 and s["scored_now"] else "nothing left to score"
    top = ", ".join(f"{k} {v}" for k, v in list(s["detections_per_species"].items())[:8]) or "none"
    failed = f", {s['failed']} failed" if s["failed"] else ""
    print(f"{s['recordings']} recording(s) scored{failed}, {hours:.2f} h of audio; {s['scored_now']} file(s) processed now in {wall:.1f} s "
          f"({speed}; {s['engine']}, {s['workers']} worker(s) x {s['threads_per_worker']} thread(s)); {s['rows']} row(s) -> {s['output']}")
    limit = "the model's thresholds" if s.get("thresholds") == "model" else s.get("thresholds", "")
    print(f"detections (best class >= {limit}) per species: {top}")
    if s["failed"]:
        log.warning("%d recording(s) could not be scored; see %s", s["failed"], Path(out) / FAILED_FILE)
        if args.strict:  # a folder run scores every other recording first, then reports the failure
            log.error("--strict: %d recording(s) failed (the others were scored and merged)", s["failed"])
            return 2
    return 0
