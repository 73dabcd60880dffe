"""``birdspec search``: the windows of an index most like a query clip, as a table for review."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

DEFAULT_OUT = "search_results.csv"
SUMMARY_ROWS = 10

DESCRIPTION = """\
Find the windows of an embedding index (`birdspec index`) that sound most
like a query: QUERY.wav, or its stretch from --start-s to --end-s. The query
is cut into the index's windows and embedded by the index's backbone (BirdNET,
or the run it was built with); its vector is the mean of its windows'.
Similarity is cosine, from -1 to 1 (BirdNET: 0 to 1).

Writes the --top N windows, best first, to --out (CSV: rank, recording,
deployment, start_s, end_s, similarity; recording is relative to the
archive), and prints the best ones and how many each deployment has.

--mode exact compares every vector (NumPy); approximate searches the index's
HNSW graph (needs pip install 'birdspec[index]'; its recall@100 against exact
search is measured in benchmarks/README.md) and computes the similarities of
what it finds exactly; auto (default) is exact up to 100,000 windows.
"""

_EPILOG = """\
examples:
  birdspec search idx/ call.wav --top 50
  birdspec search idx/ long.flac --start-s 61.5 --end-s 64.5 --top 200 --out candidates.csv
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from birdspec.similarity.query import SEARCH_MODES

    p = subparsers.add_parser(
        "search",
        help="find the windows of an index most like a query clip (CSV for review)",
        description=DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("index", metavar="INDEX", help="an index folder (`birdspec index`)")
    p.add_argument("query", metavar="QUERY", help="the query recording (wav, flac, ogg, mp3, ...)")
    p.add_argument("--start-s", type=float, default=None, metavar="S", help="start of the query in the recording (default 0)")
    p.add_argument("--end-s", type=float, default=None, metavar="S", help="end of the query (default: the end of the recording)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="windows written, best first (default 20)")
    p.add_argument("--mode", choices=SEARCH_MODES, default="auto", help="exact, approximate, or auto (default)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="CSV", help=f"the results table (default {DEFAULT_OUT}; '-': stdout)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="a run index: its checkpoint, when it moved since the index was built")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out that is not a table")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import sys

    from birdspec.fileio import refuse_replacing, write_csv
    from birdspec.similarity.query import RESULT_COLUMNS, search

    if args.out != "-":
        refuse_replacing(args.out, suffixes=(".csv", ".tsv", ".txt"), overwrite=args.overwrite)
    res = search(args.index, args.query, start_s=args.start_s, end_s=args.end_s, top=args.top, mode=args.mode,
                 checkpoint=args.checkpoint)
    table = res.table.loc[:, list(RESULT_COLUMNS)]
    if args.out == "-":
        table.to_csv(sys.stdout, index=False)
    else:
        write_csv(args.out, table, float_format=None)
    t = res.table
    print(f"{len(t)} window(s) most like {args.query} ({res.query_s:.1f} s), {res.mode} search in {res.seconds:.2f} s"
          f"{'' if args.out == '-' else ' -> ' + args.out}", file=sys.stderr if args.out == "-" else sys.stdout)
    if args.out == "-" or not len(t):
        return 0
    print(t.head(SUMMARY_ROWS).loc[:, list(RESULT_COLUMNS)].to_string(index=False))
    per = t.assign(deployment=t["deployment"].replace("", "(top level)")).groupby("deployment")["similarity"]
    lines = per.agg(["size", "max"]).sort_values(["size", "max"], ascending=False)
    print("per deployment (windows in the top, best similarity): "
          + ", ".join(f"{d} {int(r['size'])} ({r['max']:.3f})" for d, r in lines.head(8).iterrows()))
    return 0
