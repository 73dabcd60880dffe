"""``birdspec agile``: one round of the agile loop over an embedding index (verdicts in, classifier, scores and
the next windows to verify out)."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Grow a classifier for a call from a few verified windows of an embedding
index (`birdspec index`), one round at a time:

  1. verdicts: windows of the index marked yes / no / unsure (or the Review
     app's correct / wrong / other) in --verdicts files: a `birdspec search`
     table with a `verdict` column added, the next.csv of an earlier round
     filled in, or the Review app's <table>.verdicts.csv;
  2. a linear classifier per --species on the windows' vectors (logistic
     regression; yes and no weigh the same, plus --random-negatives windows
     drawn from the rest of the index as weak negatives: most of an archive
     holds no call);
  3. every window of the index scored (OUT/scores.csv: a column per species,
     what `birdspec call-density sample/estimate` read);
  4. the next --next windows to verify (OUT/next.csv, a detection table the
     Review app opens; fill in its verdict column or verify it in Review):
     margin (default: nearest the threshold), top (the highest scores not
     verified yet) or bins (a stratified draw over score bins);
  5. with a BirdNET index, OUT/model.pt: a normal birdspec checkpoint
     (`birdspec predict OUT/model.pt RECORDINGS`), its threshold stored.

Run it again with every verdict so far (earlier rounds' files too) for the
next round. OUT/agile.json says how many verdicts each species has and
their cross-validated precision and recall at the threshold.
"""

_EPILOG = """\
examples:
  birdspec search idx/ call.wav --top 20 --out round0.csv   # add a verdict column: yes / no
  birdspec agile idx/ --species sedwar1 --verdicts round0.csv --out agile1
  birdspec agile idx/ --species sedwar1 --verdicts round0.csv agile1/next.csv --out agile2
  birdspec call-density sample agile2/scores.csv --species sedwar1 --out sample.csv
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from birdspec.similarity.agile_config import AGILE_STRATEGIES, AgileConfig

    d = AgileConfig()
    p = subparsers.add_parser(
        "agile",
        help="train a classifier from verified windows of an index; score it; the next windows to verify",
        description=DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("index", metavar="INDEX", help="an index folder (`birdspec index`)")
    p.add_argument("--species", nargs="+", required=True, metavar="NAME",
                   help="the label(s) to learn (a verdict row with another label is left out; rows without one count)")
    p.add_argument("--verdicts", nargs="+", required=True, metavar="CSV", help="tables of verified windows (see above)")
    p.add_argument("--out", required=True, metavar="DIR", help="the round's folder (scores.csv, next.csv, agile.json, model.pt)")
    p.add_argument("--next", type=int, default=d.next_count, metavar="N", dest="next_count",
                   help=f"windows to verify next, per species (default {d.next_count})")
    p.add_argument("--strategy", choices=AGILE_STRATEGIES, default=d.strategy, help=f"how they are chosen (default {d.strategy})")
    p.add_argument("--threshold", type=float, default=d.threshold, metavar="P",
                   help=f"score from which a window is a call (default {d.threshold:g}; stored in model.pt)")
    p.add_argument("--random-negatives", type=int, default=d.random_negatives, metavar="N",
                   help=f"unverified windows drawn as weak negatives (default {d.random_negatives}; 0: none)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="N", help=f"random draws (default {d.seed})")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from birdspec.similarity.agile import run_agile
    from birdspec.similarity.agile_config import AgileConfig

    config = AgileConfig(next_count=args.next_count, strategy=args.strategy, threshold=args.threshold,
                         random_negatives=args.random_negatives, seed=args.seed)
    res = run_agile(args.index, args.verdicts, species=args.species, out=args.out, config=config)
    for s in res.summary["species"]:
        cv = ("" if s["cv_recall"] is None else
              f"; cross-validated on the verdicts: precision {s['cv_precision'] if s['cv_precision'] is not None else '-'}, "
              f"recall {s['cv_recall']}")
        print(f"{s['species']}: {s['positives']} yes, {s['negatives']} no ({s['unsure']} unsure left out); "
              f"{s['windows_above_threshold']} of {res.summary['windows']} windows score >= {config.threshold:g}{cv}")
    print(f"scores -> {res.scores}; next {config.next_count} per species ({config.strategy}) -> {res.next_windows}")
    print(f"model -> {res.model}")
    return 0
