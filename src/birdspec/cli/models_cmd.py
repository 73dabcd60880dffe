"""``birdspec models [--json]``: list the model registry with sizes and study defaults."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "models",
        help="list the models `birdspec train --model` accepts",
        description="List the registered models: parameter counts for 10-channel (stack10) and 1-channel "
        "(window) input, the study's training defaults, ImageNet pretraining, a description and notes. "
        "Families that do not take waveforms (e.g. embedding heads) are listed with their note.",
    )
    p.add_argument("--classes", type=int, default=6, metavar="K", help="classes for the parameter counts (default 6, the study)")
    p.add_argument("--json", action="store_true", help="print one JSON list (stable keys)")
    p.set_defaults(func=run)
    return p


def describe_models(*, num_classes: int = 6) -> list[dict[str, Any]]:
    """One dict per registered model: name, input, params for C=10 and C=1, defaults, pretrained, description, note.

    Parameter counts are None for families that :func:`build_model` cannot build
    (``spec.input != 'waveform'``, e.g. a head on precomputed embeddings).
    """
    from birdspec.errors import ConfigError
    from birdspec.models.registry import build_model, count_parameters, list_models

    if num_classes < 2:
        raise ConfigError(f"--classes must be >= 2, got {num_classes}")
    out = []
    for spec in list_models():
        params: dict[str, int | None] = {"10": None, "1": None}
        if spec.input == "waveform":
            for channels in (10, 1):
                params[str(channels)] = count_parameters(build_model(spec.name, in_channels=channels, num_classes=num_classes))
        out.append(
            {
                "name": spec.name,
                "input": spec.input,
                "params_c10": params["10"],
                "params_c1": params["1"],
                "num_classes": num_classes,
                "train_defaults": dict(spec.train_defaults),
                "pretrained": spec.torchvision_arch if spec.torchvision_arch and spec.first_conv_key else None,
                "description": spec.description,
                "note": spec.note,
            }
        )
    return out


def _fmt_params(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def run(args: argparse.Namespace) -> int:
    rows = describe_models(num_classes=args.classes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "PARAMS C=10", "PARAMS C=1", "INPUT", "OPTIMIZER", "LR", "WEIGHT DECAY", "BATCH", "IMAGENET")
    table = []
    for r in rows:
        d = r["train_defaults"]
        table.append(
            (
                r["name"], _fmt_params(r["params_c10"]), _fmt_params(r["params_c1"]), r["input"],
                str(d.get("optimizer", "-")), f"{d['lr']:g}" if "lr" in d else "-",
                f"{d['weight_decay']:g}" if "weight_decay" in d else "-", str(d.get("batch_size", "-")),
                r["pretrained"] or "-",
            )
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(header)]
    right = {1, 2}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(f"{len(rows)} models (parameters for {args.classes} classes; C=10: stack10, C=1: window encoding)")
    print(line(header))
    for r, t in zip(rows, table, strict=True):
        print(line(t))
        print(f"    {r['description']}")
        if r["note"]:
            print(f"    note: {r['note']}")
    from birdspec.training.recipes import RECIPES

    print("train one with `birdspec train DATASET_DIR --model NAME --out RUN_DIR [--recipe NAME]`; recipes:")
    for recipe in RECIPES.values():
        print(f"    {recipe.name}: {recipe.summary}")
    print()
    print(frontends_text())
    return 0


def frontends_text() -> str:
    """The spectrogram types (``--frontend``) with the shape of one 5 s window at their defaults."""
    from birdspec.config import FRONTEND_TYPES, FrontendConfig

    lines = ["spectrogram types (`birdspec train ... --frontend NAME [--frontend-option KEY=VALUE]`; rows x frames of 5 s):"]
    for t in FRONTEND_TYPES.values():
        cfg = FrontendConfig.for_kind(t.name)
        shape = f"{cfg.num_bins()} x {cfg.num_frames(5 * cfg.sample_rate_hz)}"
        lines.append(f"    {t.name:<14} {shape:<10} {t.description}")
    return "\n".join(lines)
