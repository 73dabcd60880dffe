"""``birdspec call-density sample|estimate``: the fraction of an archive's windows with a species' call."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DESCRIPTION = """\
Estimate how often a species calls in an archive: the fraction of its windows
that hold a call, overall and per deployment or day, with an interval, from
a few verified windows and no threshold (Navine et al. 2024, "All thresholds
barred", as in perch-hoplite's call-density notebook).

1. sample: the windows are cut into score bins at quantiles of the species'
   scores (4 bins by default: the lowest 50 %, the next 25 %, 12.5 %, 12.5 %)
   and --per-bin windows are drawn at random from each; verify them: write
   yes, no or unsure in the verdict column, or open the CSV in the Review app
   (birdspec serve: correct = yes, wrong or other species = no).
2. estimate: per bin, P(call | bin) ~ Beta(0.1 + yes, 0.1 + no); the density
   is the sum over the bins of (share of windows in the bin) x P(call | bin);
   the interval holds --level of the posterior (equal tails). Writes
   OUT/call_density.csv, .md and .png.

Groups (--group-by): a group's windows give its bins' shares, the verdicts of
all groups pooled give P(call | bin). That assumes a score means the same in
every group, which fails where the groups' densities differ much (a middling
score is more often a call where the species is common): with --own-verdicts
N a group with N verdicts of its own in each of its bins uses those instead;
`sample --group-by` draws --per-bin windows per group and bin, so that every
group has its own (then estimate with --own-verdicts).

SCORES: birdspec predict's output with every window's score for the species:
--scores all (CSV or Parquet), or an archive run folder (its merged
predictions.csv / predictions.parquet).
"""

_EPILOG = """\
examples:
  birdspec predict runs/mnv2 /data/archive/ --out /data/run1/ --scores all
  birdspec call-density sample /data/run1/ --species grewar --out grewar_verify.csv
  birdspec call-density estimate /data/run1/ grewar_verify.csv --species grewar --group-by deployment --out density/
  birdspec call-density sample /data/run1/ --species grewar --group-by day --per-bin 10 --out grewar_days.csv
  birdspec call-density estimate /data/run1/ grewar_days.csv --species grewar --group-by day --own-verdicts 1
"""


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _binning(p: argparse.ArgumentParser) -> None:
    from birdspec.evaluation.call_density import DEFAULT_SCORE_BINS

    p.add_argument("--species", required=True, help="the species: a score column of SCORES (its code, as the model names it)")
    p.add_argument("--bins", type=int, default=DEFAULT_SCORE_BINS, metavar="N",
                   help=f"score bins at geometric quantiles 0, 1/2, 3/4, ... 1 (default {DEFAULT_SCORE_BINS})")
    p.add_argument("--quantiles", type=_floats, default=None, metavar="Q0,Q1,...",
                   help="the bins' quantile edges instead, from 0 to 1 (e.g. 0,0.5,0.9,1); estimate needs the same as sample")


def _grouping(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--group-by", default="none", metavar="KIND",
                   help="deployment (the recordings' top folder), day (from a datetime column or the recordings' names, "
                        f"e.g. 20240501_053000.wav), a column of SCORES, or none: {what}")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from birdspec.evaluation.call_density import DEFAULT_LEVEL, DEFAULT_PER_BIN, DEFAULT_POSTERIOR_DRAWS, DEFAULT_PRIOR

    p = subparsers.add_parser("call-density", help="fraction of an archive's windows with a species' call, with an interval",
                              description=DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="call_density_command", metavar="STEP", required=True)
    s = sub.add_parser("sample", help="draw the windows to verify, at random per score bin",
                       description="Draw --per-bin windows at random from each score bin of SCORES into a CSV to verify "
                                   "(file, start_s, end_s, label, confidence = the score, bin, an empty verdict column).")
    s.add_argument("scores", metavar="SCORES", help="birdspec predict --scores all output (file or archive run folder)")
    _binning(s)
    s.add_argument("--per-bin", type=int, default=DEFAULT_PER_BIN, metavar="N", help=f"windows per bin (default {DEFAULT_PER_BIN})")
    s.add_argument("--seed", type=int, default=0, help="which random sample (default 0)")
    _grouping(s, "draw --per-bin windows from each bin of each group (default none: from each bin of the whole archive); "
                 "estimate then needs the same --group-by and --own-verdicts")
    s.add_argument("--out", required=True, metavar="CSV", help="the windows to verify")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out (its verdicts are lost)")
    s.set_defaults(func=run_sample)
    e = sub.add_parser("estimate", help="the call density from verified windows: table and figure",
                       description="The call density of --species in SCORES from the verdicts (yes/no/unsure) in VERDICTS: "
                                   "the CSV of `call-density sample`, filled in, and/or the Review app's .verdicts.csv of it.")
    e.add_argument("scores", metavar="SCORES", help="the scores the windows were sampled from")
    e.add_argument("verdicts", nargs="+", metavar="VERDICTS", help="verdict tables")
    _binning(e)
    _grouping(e, "an estimate per group too (default none)")
    e.add_argument("--own-verdicts", type=int, default=None, metavar="N",
                   help="a group with N verdicts of its own in every bin holding its windows uses them instead of the pooled ones")
    e.add_argument("--prior", type=_floats, default=DEFAULT_PRIOR, metavar="A0,B0",
                   help=f"the Beta prior of P(call | bin) (default {DEFAULT_PRIOR[0]:g},{DEFAULT_PRIOR[1]:g}, perch-hoplite's)")
    e.add_argument("--level", type=float, default=DEFAULT_LEVEL, help=f"the interval's probability (default {DEFAULT_LEVEL:g})")
    e.add_argument("--draws", type=int, default=DEFAULT_POSTERIOR_DRAWS, help=f"posterior draws (default {DEFAULT_POSTERIOR_DRAWS})")
    e.add_argument("--seed", type=int, default=0, help="the posterior draws' seed (default 0)")
    e.add_argument("--out", default="call-density", metavar="DIR", help="report folder (default call-density)")
    e.set_defaults(func=run_estimate)
    return p


def _quantiles(args: argparse.Namespace) -> tuple[float, ...]:
    from birdspec.evaluation.call_density import check_quantiles, geometric_quantiles

    return check_quantiles(args.quantiles) if args.quantiles else geometric_quantiles(n_bins=args.bins)


def run_sample(args: argparse.Namespace) -> int:
    from birdspec.errors import ConfigError
    from birdspec.evaluation.call_density_io import DATETIME_COLUMN, read_scores, sample_table, window_groups
    from birdspec.fileio import refuse_output_over_inputs, write_csv

    quantiles = _quantiles(args)
    refuse_output_over_inputs(args.out, [args.scores], option="--out")
    if Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"--out {args.out} exists (it may hold verdicts); choose another --out, or pass --overwrite to replace it")
    windows, species = read_scores(args.scores, args.species, extra=(DATETIME_COLUMN, args.group_by))
    groups = window_groups(windows, args.group_by)
    table = sample_table(windows, species, quantiles=quantiles, per_bin=args.per_bin, seed=args.seed, groups=groups)
    write_csv(args.out, table, float_format=None)
    counts = table["bin"].value_counts().sort_index()
    per_group = "" if groups is None else f" in {len(set(groups.tolist()))} groups"
    print(f"{len(table)} of {len(windows)} windows to verify{per_group} ({', '.join(f'bin {b}: {n}' for b, n in counts.items())}): "
          f"{args.out}")
    then = "" if groups is None else f" --group-by {args.group_by} --own-verdicts 1"
    print("Write yes, no or unsure in its verdict column (or open it in `birdspec serve`'s Review), then run "
          f"`birdspec call-density estimate {args.scores} {args.out} --species {species}{then}`.")
    return 0


def run_estimate(args: argparse.Namespace) -> int:
    from birdspec.errors import ConfigError
    from birdspec.evaluation.call_density import VERDICTS_OWN
    from birdspec.evaluation.call_density_io import estimate_call_density
    from birdspec.evaluation.call_density_report import write_density_report
    from birdspec.fileio import refuse_output_over_inputs

    if args.own_verdicts is not None and args.own_verdicts < 1:
        raise ConfigError(f"--own-verdicts must be at least 1, got {args.own_verdicts}")
    if len(args.prior) != 2:
        raise ConfigError(f"--prior takes two numbers, a0,b0 (e.g. 0.1,0.1), got {','.join(map(str, args.prior))}")
    quantiles = _quantiles(args)
    refuse_output_over_inputs(args.out, [args.scores, *args.verdicts], option="--out")
    result = estimate_call_density(args.scores, args.verdicts, species=args.species, group_by=args.group_by, quantiles=quantiles,
                                   own_min=args.own_verdicts, prior=(args.prior[0], args.prior[1]), level=args.level, draws=args.draws,
                                   seed=args.seed)
    paths = write_density_report(result, args.out, scores=args.scores)
    pct = f"{args.level:.0%}"
    print(f"{result.species}: {result.n_verified} verdicts ({result.n_unsure} unsure, left out)")
    for est in result.estimates:
        print(f"  {est.group:<24} {est.n_windows:>9} windows  density {100 * est.density_mean:6.2f} %  "
              f"({pct} interval {100 * est.density_low:.2f} to {100 * est.density_high:.2f} %)"
              + ("  [own verdicts]" if est.verdicts == VERDICTS_OWN else ""))
    print(f"Table: {paths['table']} ({paths['markdown'].name}); figure: {paths['figure']}")
    return 0
