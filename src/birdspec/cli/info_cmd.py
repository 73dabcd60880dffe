"""``birdspec info PATH [--json]``: describe a prepared dataset, or a model (a run folder or checkpoint)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a prepared dataset or a trained model",
        description="Describe a prepared dataset (classes, recordings per class, splits, folds, encoding, sample "
        "shape, skipped files) or a model: a run folder or checkpoint file (classes, input, activation, the "
        "per-class detection thresholds `birdspec predict` uses by default and where they were chosen). "
        "--json prints one stable JSON object for scripts.",
    )
    p.add_argument("dataset", metavar="PATH", help="a folder written by `birdspec prepare`, a run folder or a .pt checkpoint")
    p.add_argument("--json", action="store_true", help="print one JSON object (stable keys)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from birdspec.data.prepared import DATASET_FILE

    path = Path(args.dataset)
    if path.is_dir() and (path / DATASET_FILE).is_file():
        return _dataset(args)
    if path.is_file() or path.is_dir():
        return _model(path, as_json=args.json)
    return _dataset(args)  # says what is missing


def _dataset(args: argparse.Namespace) -> int:
    from birdspec.data.prepared import describe

    info = describe(args.dataset)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    enc = info["encoding"]
    print(f"dataset        {info['path']}")
    layout = (f"{enc.get('num_windows')} x {enc.get('window_s')} s windows as channels" if enc["name"] == "stack10"
              else f"every {enc.get('window_s')} s window is a sample")
    print(f"encoding       {enc['name']} ({layout}, short policy {enc.get('short_policy')})")
    print(f"sample shape   {' x '.join(str(d) for d in info['sample_shape'])}")
    print(f"recordings     {info['num_recordings']}  (samples: {info['num_samples']})")
    print(f"classes        {len(info['classes'])}")
    width = max((len(c) for c in info["classes"]), default=5)
    for label, n in info["per_class"].items():
        print(f"  {label:<{width}}  {n}")
    print("splits         " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()))
    if info.get("folds"):
        print("folds          " + ", ".join(f"{k}: {v}" for k, v in info["folds"].items()))
    reasons = info.get("skipped_reasons") or {}
    detail = f" ({', '.join(f'{k}: {v}' for k, v in reasons.items())})" if reasons else ""
    print(f"skipped        {info['skipped']}{detail}")
    return 0


def describe_model(path: Path) -> dict[str, Any]:
    """What ``birdspec info`` says about a checkpoint (a file, or a run folder's best.pt / last.pt)."""
    from birdspec.models.checkpoint import peek_checkpoint, read_checkpoint, resolve_checkpoint_path

    file = resolve_checkpoint_path(path)
    info = peek_checkpoint(file) or read_checkpoint(file).info
    det = info.detection
    return {
        "checkpoint": str(file),
        "model": info.name,
        "epoch": info.epoch,
        "encoding": info.encoding.name,
        "input": info.input,
        "input_norm": info.input_norm if info.input == "waveform" else None,
        "activation": info.activation,
        "classes": [
            {**dict(c), "threshold": det.thresholds[i] if det is not None else None,
             **({"at_threshold": dict(det.per_class[i])} if det is not None and i < len(det.per_class) else {})}
            for i, c in enumerate(info.class_info)
        ],
        "temperature": info.temperature,
        "thresholds_chosen_on": det.chosen_on if det is not None else None,
        "threshold_rule": det.rule if det is not None else None,
        "birdspec_version": info.birdspec_version,
    }


def _model(path: Path, *, as_json: bool) -> int:
    d = describe_model(path)
    if as_json:
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(f"checkpoint     {d['checkpoint']}")
    print(f"model          {d['model']} ({d['encoding']} encoding, {d['input']} input), epoch {d['epoch']}")
    if d["input_norm"]:
        norm = d["input_norm"]
        extra = (f": floor {norm['floor_db']:.1f} dB (white noise at {norm['floor_dbfs']:g} dBFS), centre "
                 f"{norm['center_db']:.2f} dB, scale {norm['scale_db']:.2f} dB" if norm["kind"] == "level" else "")
        print(f"input norm     {norm['kind']}{extra}")
    print(f"scores         {d['activation']}" + (f", temperature {d['temperature']:.3g}" if d["temperature"] != 1.0 else ""))
    if d["thresholds_chosen_on"] is None:
        print("thresholds     none stored (trained before birdspec chose them): predict writes scores >= 0.1 unless --min-conf")
    else:
        print(f"thresholds     per class, chosen on {d['thresholds_chosen_on']}")
    width = max((len(c["label"]) for c in d["classes"]), default=5)
    for c in d["classes"]:
        name = c.get("common_name") or c.get("scientific_name") or ""
        at = c.get("at_threshold") or {}
        nocall = f"; {at['fp_nocall']} no-bird samples above it" if "fp_nocall" in at else ""
        nocall += "; its scores did not separate it there, so it is never detected" if at.get("not_separated") else ""
        stats = f"  (there: precision {at.get('precision')}, recall {at.get('recall')}, F1 {at.get('f1')}{nocall})" if at else ""
        thr = f"{c['threshold']:.3f}" if c["threshold"] is not None else "-"
        print(f"  {c['label']:<{width}}  {thr}  {name}{stats}")
    return 0
