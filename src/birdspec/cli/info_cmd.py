"""``birdspec info DIR [--json]``: print :func:`~birdspec.data.prepared.describe` of a prepared dataset."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a prepared dataset",
        description="Describe a prepared dataset: classes, recordings per class, splits, folds, encoding, "
        "sample shape and skipped files. --json prints one stable JSON object for scripts.",
    )
    p.add_argument("dataset", metavar="DIR", help="a folder written by `birdspec prepare`")
    p.add_argument("--json", action="store_true", help="print one JSON object (stable keys)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
