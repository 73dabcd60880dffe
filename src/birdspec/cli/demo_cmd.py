"""``birdspec demo``: synthetic data -> prepare -> train -> evaluate -> compare -> HTML report."""

from __future__ import annotations

import argparse

from birdspec.runtime import DEVICES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on built-in synthetic calls (about 4 minutes on 2 CPU cores)",
        description="Synthesize a small BirdCLEF-2021-format dataset of four synthetic call types (trill, whistle, "
        "harmonic stack, buzz — not real species), then prepare it, train the study's two models (mobilenetv2-seed "
        "and resnet18) on the CPU, evaluate them, predict a longer synthetic soundscape that no model saw, and "
        "compare everything in one HTML report (with the soundscape's spectrogram, true calls and detections). "
        "Finishes in about 4 minutes on 2 CPU cores.",
    )
    p.add_argument("--out", default="birdspec-demo", help="output folder (default: ./birdspec-demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of each model (default 6)")
    p.add_argument("--per-class", type=int, default=None, help="synthetic recordings per class (default 10)")
    p.add_argument("--soundscape-s", type=float, default=None,
                   help="length of the calls part of the synthetic soundscape predicted after training, seconds "
                        "(default 60, then 10 s of silence and 10 s of noise alone; 0: skip)")
    p.add_argument("--device", default="cpu", choices=DEVICES, help="where to train (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from birdspec.demo import SOUNDSCAPE_FILE, DemoConfig, run_demo
    from birdspec.models.checkpoint import run_checkpoint

    cfg = DemoConfig(device=args.device, seed=args.seed)
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    if args.per_class is not None:
        cfg = replace(cfg, per_class=args.per_class)
    if args.soundscape_s is not None:
        cfg = replace(cfg, soundscape_s=args.soundscape_s)
    res = run_demo(args.out, cfg)
    print()
    print(f"birdspec demo finished in {res.seconds:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in res.steps.items())})")
    print(f"  validation recordings, chance accuracy {res.chance:.2f}:")
    for model, sc in res.scores.items():
        acc = "n/a" if sc["accuracy"] is None else f"{sc['accuracy']:.2f}"
        f1 = "n/a" if sc["macro_f1"] is None else f"{sc['macro_f1']:.2f}"
        print(f"    {model:<18} accuracy {acc}, macro F1 {f1}")
    if res.soundscape is not None:
        sc = res.soundscape
        print(f"  soundscape ({res.runs[0].name}, a window's top class counts at score >= {sc.threshold_text}):")
        print(f"    {sc.text()}")
        for row in sc.per_class.itertuples(index=False):
            print(f"    {row.label:<8} {row.calls:>3} calls in {row.windows_with_calls:>2} windows, "
                  f"detected in {row.detected_windows:>2}, {row.correct:>2} of them right")
        print(f"    figure, audio, true calls, scores: {res.out_dir / 'soundscape'}")
    print(f"  report:   {res.report}")
    print(f"  runs:     {res.out_dir / 'runs'}  (metrics.csv, curves.png, checkpoints/best.pt each)")
    print(f"  dataset:  {res.dataset_dir}")
    print()
    print("Next, on real recordings (e.g. Kaggle's BirdCLEF 2021 train_short_audio):")
    print("  birdspec prepare BIRDCLEF_DIR --species sonspa,comrav,gbwwre1,houspa,norcar,redcro --out data/six")
    print("  birdspec train data/six --model mobilenetv2-seed --out runs/mnv2")
    print("  birdspec evaluate runs/mnv2")
    best = run_checkpoint(res.runs[0], "best")
    print(f"  birdspec predict {best} YOUR_RECORDINGS/ --format raven --out detections/")
    if res.soundscape is not None:
        print("Or the soundscape again, as a Raven selection table:")
        print(f"  birdspec predict {best} {res.out_dir / 'soundscape' / SOUNDSCAPE_FILE} --format raven --out detections/")
    return 0
