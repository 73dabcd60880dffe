"""``birdspec demo``: synthetic data -> prepare -> train -> evaluate -> compare -> HTML report."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on built-in synthetic calls (a few minutes on a CPU)",
        description="Synthesize a small BirdCLEF-2021-format dataset of four synthetic call types (trill, whistle, "
        "harmonic stack, buzz — not real species), then prepare it, train mobilenetv2-seed on the CPU, evaluate it "
        "and write an HTML report. Finishes in a few minutes on 2 CPU cores.",
    )
    p.add_argument("--out", default="birdspec-demo", help="output folder (default: ./birdspec-demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 10)")
    p.add_argument("--per-class", type=int, default=None, help="synthetic recordings per class (default 16)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"), help="where to train (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from birdspec.demo import DemoConfig, run_demo

    cfg = DemoConfig(device=args.device, seed=args.seed)
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    if args.per_class is not None:
        cfg = replace(cfg, per_class=args.per_class)
    res = run_demo(args.out, cfg)
    acc = "n/a" if res.accuracy is None else f"{res.accuracy:.2f}"
    f1 = "n/a" if res.macro_f1 is None else f"{res.macro_f1:.2f}"
    print()
    print(f"birdspec demo finished in {res.seconds:.0f} s")
    print(f"  validation accuracy (recordings): {acc}, macro F1 {f1} (chance: {res.chance:.2f})")
    print(f"  report:   {res.report}")
    print(f"  run:      {res.run_dir}  (metrics.csv, curves.png, checkpoints/best.pt)")
    print(f"  dataset:  {res.dataset_dir}")
    print()
    print("Next, on real recordings (e.g. Kaggle's BirdCLEF 2021 train_short_audio):")
    print("  birdspec prepare BIRDCLEF_DIR --species sonspa,comrav,gbwwre1,houspa,norcar,redcro --out data/six")
    print("  birdspec train data/six --model mobilenetv2-seed --out runs/mnv2")
    print("  birdspec evaluate runs/mnv2")
    print(f"  birdspec predict {res.run_dir}/checkpoints/best.pt YOUR_RECORDINGS/ --format raven --out detections/")
    return 0
