"""Accuracy benchmark: 5-fold cross-validation on real recordings (the reed warblers by default).

    python benchmarks/accuracy.py [BIRDCLEF_DIR] [--out bench-out/accuracy] [--epochs N] [--window-epochs N]
        [--configs MODEL/ENCODING/RECIPE,...] [--no-ablations] [--device auto] [--no-birdnet]
        [--pretrained none|imagenet|PATH --first-conv repeat|average]

Protocol (fixed, so the numbers compare across machines and with BirdNET):
- folds: the rows of ``train_metadata.csv`` sorted by filename,
  ``StratifiedKFold(n_splits=5, shuffle=True, random_state=0)`` on ``primary_label``
  (``birdspec prepare --folds 5 --seed 0`` assigns exactly these; the script checks it);
- encodings: ``stack10`` with the ``tile`` policy (so every recording counts) and ``window``;
- every fold trains on the other four folds and is scored on the held-out one, which is never
  looked at before the final score (``birdspec cv``): the ``study`` rows select their epoch on an
  inner validation split of the training folds (20 % of each species, seeded); the ``small-data``
  rows train the recipe's fixed epoch budget on all training folds and score the last epoch;
- scores: recording-level accuracy and macro F1 (windows averaged per recording), mean +- std
  over the 5 folds; training time summed over folds;
- recipes (``birdspec.training.recipes``, the same as ``birdspec train --recipe``): ``study`` =
  the study's settings (constant lr: 0.01 MobileNetV2 / 0.001 ResNet18, AdamW, batch 16, every
  window once per epoch, at most ``--epochs`` epochs); ``small-data`` = birdspec's from-scratch
  recipe; ``small-data-*`` = the recipe with one change (:data:`ABLATIONS`), the ablation table;
- starts: every model from random weights unless ``--pretrained`` (for ResNet18: ``imagenet`` is the
  study's start, which needs a download, so offline machines run without it; a row then reads
  ``resnet18+imagenet-repeat``);
- if the optional extra is installed (``pip install 'birdspec[birdnet]'``): BirdNET as a closed-set
  classifier over the species (argmax of its per-recording maximum confidence), and the
  ``birdnet-linear`` head on BirdNET embeddings under the same cross-validation.

The default configurations (:data:`DEFAULT_CONFIGS`) are the study's two models x two encodings
with the ``study`` recipe, the ``small-data`` recipe for both models per window, then (unless
``--no-ablations``) the ablations of the recipe with ``mobilenetv2-seed``.

Writes OUT/accuracy.json and OUT/accuracy.md (the tables for benchmarks/README.md) and prints them.
Re-running resumes: finished folds are not trained again (delete OUT to start over).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.common import DEFAULT_DATA, prepare_encoding, start_run  # noqa: E402

ABLATIONS = {
    "small-data-no-band": ({"input_norm": "instance"}, "- the level-aware input (per-window standardisation, the study's)"),
    "small-data-every-window": ({"crops_per_recording": 0, "epochs": 10},
                                "- equal weight per recording (a crop per 5 s window: long recordings weigh more; 10 epochs, as many steps)"),
    "small-data-5s-crops": ({"crop_s": None}, "- short crops (5 s crops, the full window)"),
    "small-data-no-aug": ({"time_mask_frames": 0, "freq_mask_bins": 0, "mixup_alpha": 0.0}, "- SpecAugment masks and mixup"),
    "small-data-constant-lr": ({"schedule": "constant"}, "- one-cycle schedule (constant lr)"),
    "small-data-no-smoothing": ({"label_smoothing": 0.0}, "- label smoothing"),
    "small-data-inner-val": ({}, "- fixed epoch budget: epoch selected on an inner validation split (20 % fewer training recordings)"),
}
"""The ``small-data`` recipe with one change each, for the ablation table (``--configs MODEL/window/NAME``)."""

RECIPE_NAMES = ("study", "small-data", *ABLATIONS)

DEFAULT_CONFIGS = (
    "mobilenetv2-seed/stack10/study,resnet18/stack10/study,mobilenetv2-seed/window/study,resnet18/window/study,"
    "mobilenetv2-seed/window/small-data,resnet18/window/small-data"
)
ABLATION_MODEL = "mobilenetv2-seed"


def recipe_settings(recipe: str, model: str, encoding: str) -> dict:
    """TrainConfig fields of ``recipe`` (a birdspec recipe or an ablation of ``small-data``)."""
    from birdspec.training.recipes import recipe_fields

    base, changes = (recipe, {}) if recipe in ("study", "small-data") else ("small-data", ABLATIONS[recipe][0])
    settings = {**recipe_fields(base, model=model, encoding=encoding), **changes, "recipe": base}
    if encoding != "window":
        settings.pop("crop_s", None)
    return settings


def fixed_epochs(recipe: str) -> bool:
    """The CV protocol: ``study`` selects its epoch on inner validation; the recipe trains a fixed budget."""
    return recipe != "study" and recipe != "small-data-inner-val"


def cv_row(name: str, model: str, encoding: str, recipe: str, summary: dict, seconds: float) -> dict:
    folds = summary["folds"]
    return {
        "name": name,
        "model": model,
        "encoding": encoding,
        "recipe": recipe,
        "accuracy_mean": summary["accuracy_mean"],
        "accuracy_std": summary["accuracy_std"],
        "macro_f1_mean": summary["macro_f1_mean"],
        "macro_f1_std": summary["macro_f1_std"],
        "correct": int(round(sum(f["accuracy"] * f["n"] for f in folds))),
        "total": int(sum(f["n"] for f in folds)),
        "train_time_min": round(sum(float(f.get("train_time_s") or 0) for f in folds) / 60, 1),
        "epochs": (summary.get("train_config") or {}).get("epochs"),
        "wall_min": round(seconds / 60, 1),
    }


def pretrained_start(model: str, pretrained: str | None, first_conv: str) -> tuple[dict, str]:
    """``(TrainConfig fields, name suffix)`` of ``--pretrained``: only for models whose whole network has
    ImageNet weights (resnet18, as the study; torchvision's mobilenetv2); the study's ``mobilenetv2-seed``
    (only its first layers match) always starts from random weights, as in the study."""
    from birdspec.models.registry import get_spec

    spec = get_spec(model)
    if not pretrained or pretrained == "none" or spec.torchvision_arch is None or spec.partial_pretrained:
        return {}, ""
    source = "imagenet" if pretrained == "imagenet" else Path(pretrained).stem
    return {"pretrained": pretrained, "first_conv": first_conv}, f"+{source}-{first_conv}"


def run_cnn(ds: Path, out: Path, *, model: str, encoding: str, recipe: str, epochs: int, device: str, seed: int,
            pretrained: str | None = None, first_conv: str = "repeat") -> dict:
    from birdspec.experiments.cv import run_cv
    from birdspec.training import TrainConfig

    settings = {"epochs": epochs, **recipe_settings(recipe, model, encoding)}  # a recipe fixes its own budget
    start, suffix = pretrained_start(model, pretrained, first_conv)
    cfg = TrainConfig(model=model, device=device, seed=seed, progress_bar=False, **settings, **start)
    name = f"{model}{suffix} / {encoding} / {recipe}"
    t0 = time.perf_counter()
    result = run_cv(ds, out / f"cv-{model}{suffix}-{encoding}-{recipe}", cfg, inner_val_fraction=0.2,
                    fixed_epochs=fixed_epochs(recipe))
    return cv_row(name, model + suffix, encoding, recipe, result.summary, time.perf_counter() - t0)


def run_birdnet(ds: Path, out: Path, *, epochs: int, seed: int) -> list[dict]:
    """BirdNET closed-set and the birdnet-linear head (needs the optional extra)."""
    from birdspec.birdnet.backend import birdnet_available
    from birdspec.data.embed import embed_dataset
    from birdspec.data.embedding_dataset import load_embedding_cache
    from birdspec.data.prepared import PreparedDataset
    from birdspec.experiments.cv import run_cv
    from birdspec.training import TrainConfig

    if not birdnet_available():
        print("BirdNET: skipped (pip install 'birdspec[birdnet]' to compare with it)")
        return []
    from benchmarks.birdnet_baseline import birdnet_closed_set

    embed_dataset(ds, progress=False)
    data = PreparedDataset(ds)
    closed = birdnet_closed_set(data, load_embedding_cache(data))
    rows = [{
        "name": "BirdNET closed set (no training)", "model": "birdnet", "encoding": "3 s windows", "recipe": "-",
        "accuracy_mean": closed["accuracy"], "accuracy_std": None, "macro_f1_mean": None, "macro_f1_std": None,
        "correct": closed["correct"], "total": closed["total"], "train_time_min": 0.0, "epochs": None, "wall_min": None,
    }]
    cfg = TrainConfig(model="birdnet-linear", epochs=epochs, device="cpu", seed=seed, progress_bar=False)
    t0 = time.perf_counter()
    result = run_cv(ds, out / "cv-birdnet-linear", cfg, inner_val_fraction=0.2)
    rows.append(cv_row("birdnet-linear (BirdNET embeddings)", "birdnet-linear", "3 s windows", "head",
                       result.summary, time.perf_counter() - t0))
    return rows


def markdown(rows: list[dict]) -> str:
    def pm(mean, std):
        if mean is None:
            return "-"
        return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"

    lines = [
        "| model | encoding | recipe | epochs | recording accuracy | macro F1 | correct | training time (min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["recipe"] in ABLATIONS:
            continue
        lines.append(
            f"| {r['model']} | {r['encoding']} | {r['recipe']} | {r['epochs'] or '-'} | "
            f"{pm(r['accuracy_mean'], r['accuracy_std'])} | {pm(r['macro_f1_mean'], r['macro_f1_std'])} | "
            f"{r['correct']}/{r['total']} | {r['train_time_min']} |"
        )
    return "\n".join(lines)


def ablation_markdown(rows: list[dict]) -> str:
    """The recipe against each of its ablations ('' when none ran)."""
    base = {r["model"]: r for r in rows if r["recipe"] == "small-data" and r["encoding"] == "window"}
    abl = [r for r in rows if r["recipe"] in ABLATIONS]
    if not abl:
        return ""
    lines = ["| model | change to small-data | recording accuracy | macro F1 | correct | difference |", "|---|---|---|---|---|---|"]
    for m in dict.fromkeys(r["model"] for r in abl):
        ref = base.get(m)
        if ref:
            lines.append(f"| {m} | none (the recipe) | {ref['accuracy_mean']:.3f} | {ref['macro_f1_mean']:.3f} | "
                         f"{ref['correct']}/{ref['total']} | - |")
        for r in (x for x in abl if x["model"] == m):
            diff = f"{r['correct'] - ref['correct']:+d} recordings" if ref else "-"
            lines.append(f"| {m} | {ABLATIONS[r['recipe']][1]} | {r['accuracy_mean']:.3f} | {r['macro_f1_mean']:.3f} | "
                         f"{r['correct']}/{r['total']} | {diff} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from birdspec.config import FIRST_CONV_MODES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="a BirdCLEF-2021-format folder")
    p.add_argument("--out", default="bench-out/accuracy", help="work and output folder")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="MODEL/ENCODING/RECIPE,... in this order "
                   f"(RECIPE: {', '.join(RECIPE_NAMES)}; default: the study's models x encodings, and small-data per window)")
    p.add_argument("--no-ablations", action="store_true", help=f"skip the ablations of small-data ({ABLATION_MODEL}, window)")
    p.add_argument("--epochs", type=int, default=30,
                   help="maximum epochs per fold of the study recipe (selection on inner validation); small-data fixes its own")
    p.add_argument("--window-epochs", type=int, help="maximum epochs of the study recipe for the window encoding (default --epochs)")
    p.add_argument("--head-epochs", type=int, default=60, help="epochs of the birdnet-linear head")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrained", default="none", metavar="none|imagenet|PATH",
                   help="start of the models with ImageNet weights (resnet18): none (default: random weights, "
                        "as offline), imagenet (torchvision's, downloaded once) or a torchvision state-dict file")
    p.add_argument("--first-conv", default=FIRST_CONV_MODES[0], choices=FIRST_CONV_MODES,
                   help="how --pretrained RGB kernels become the input channels (the study tried both)")
    p.add_argument("--no-birdnet", action="store_true", help="skip BirdNET even when installed")
    args = p.parse_args(argv)
    root, out, device, machine = start_run(args.data, args.out, args.device)
    print(f"accuracy benchmark on {root} ({machine}), folds verified against the protocol")

    configs = [tuple(c.split("/")) for c in args.configs.split(",") if c]
    if not args.no_ablations:
        configs += [(ABLATION_MODEL, "window", a) for a in ABLATIONS if (ABLATION_MODEL, "window", a) not in configs]
    bad = [c for c in configs if len(c) != 3 or c[1] not in ("stack10", "window") or c[2] not in RECIPE_NAMES]
    if bad:
        raise SystemExit(f"bad --configs entries {bad}; use MODEL/stack10|window/{'|'.join(RECIPE_NAMES)}")
    rows: list[dict] = []
    datasets = {enc: prepare_encoding(root, out, enc) for enc in dict.fromkeys(e for _, e, _ in configs)}
    if not args.no_birdnet:
        window_ds = datasets.get("window") or prepare_encoding(root, out, "window")
        print("BirdNET: embedding the recordings and cross-validating the birdnet-linear head", flush=True)
        rows.extend(run_birdnet(window_ds, out, epochs=args.head_epochs, seed=args.seed))
        _write(out, machine, root, rows)
    for model, enc, recipe in configs:
        epochs = args.window_epochs if (enc == "window" and args.window_epochs) else args.epochs
        rows.append(run_cnn(datasets[enc], out, model=model, encoding=enc, recipe=recipe, epochs=epochs,
                            device=device, seed=args.seed, pretrained=args.pretrained, first_conv=args.first_conv))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        _write(out, machine, root, rows)
    _write(out, machine, root, rows)
    print()
    print(markdown(rows))
    if ablation_markdown(rows):
        print()
        print(ablation_markdown(rows))
    return 0


def _write(out: Path, machine: str, root: Path, rows: list[dict]) -> None:
    """accuracy.json and accuracy.md, rewritten after every configuration (partial results survive)."""
    (out / "accuracy.json").write_text(json.dumps({"machine": machine, "data": str(root), "rows": rows}, indent=2))
    ablations = ablation_markdown(rows)
    (out / "accuracy.md").write_text(f"Machine: {machine}\n\n{markdown(rows)}\n" + (f"\n{ablations}\n" if ablations else ""))


if __name__ == "__main__":
    sys.exit(main())
