"""Few-shot benchmark: accuracy against recordings per species on the reed warblers (issue 19).

    python benchmarks/few_shot.py [BIRDCLEF_DIR] [--out bench-out/few_shot] [--models M1,M2] [--draws 5]
        [--per-class 1,2,4,8,all] [--report-only]

Protocol: the fixed 5-fold protocol of ``benchmarks/accuracy.py`` (``prepare --folds 5 --seed 0``, window
encoding, tile; the folds are checked against ``train_metadata.csv``); ``birdspec learning-curve``: for
every held-out fold, k in {1, 2, 4, 8, all} recordings of each species drawn from the four training folds
(5 draws; ``all``: one), trained for a fixed number of epochs, the last epoch scored on the held-out fold
(recording level); per draw the test folds are pooled (98 recordings).

Models (:data:`MODELS`, in this order, BirdNET-based first: they are fast once the embeddings are cached):
``birdnet-closed`` (BirdNET as it is), ``birdnet-prior`` (BirdNET's rows + L2-SP, strength chosen on an inner
validation split), ``birdnet-linear`` (a head from zero on BirdNET embeddings), ``mobilenetv2-seed`` with the
``small-data`` recipe from scratch.

Every (model, k, draw, fold) cell is its own result file under ``OUT/curves/<model>/``: rerunning resumes,
and several processes can share the work with ``--models`` (one process per model folder), e.g.::

    nice -n 10 python benchmarks/few_shot.py --models birdnet-closed,birdnet-linear,mobilenetv2-seed &
    nice -n 10 python benchmarks/few_shot.py --models birdnet-prior &
    python benchmarks/few_shot.py --report-only          # the table and figure of what has finished

Writes OUT/few_shot.json, OUT/few_shot.md (the table for benchmarks/README.md) and OUT/few_shot.png.

The run takes longer than a working session on 2 CPU cores (the from-scratch rows: hours), and a fresh
checkout has no ``bench-out/``: so every finished cell's small files (``result.json``, its test
predictions, the model's ``settings.json``) are also kept in ``benchmarks/results/few_shot/`` (see
``keep.py``), a folder under version control, and copied back into OUT before a run or report.
``--no-keep`` turns this off.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks import keep  # noqa: E402
from benchmarks.common import DEFAULT_DATA, encoding_dir, prepare_encoding, start_run  # noqa: E402

MODELS = ("birdnet-closed", "birdnet-prior", "birdnet-linear", "mobilenetv2-seed")
HEAD_EPOCHS = 30
ENCODING = "window"
KEPT = keep.RESULTS_DIR / "few_shot"
KEPT_DATASET = "OUT"  # a kept settings.json names the dataset relative to OUT (absolute paths differ per checkout)


def model_config(model: str, *, device: str, seed: int):
    """The training settings of a benchmark row."""
    from birdspec.training import TrainConfig

    if model.startswith("birdnet"):
        return TrainConfig(model=model, epochs=HEAD_EPOCHS, device="cpu", workers=0, seed=seed, progress_bar=False,
                           nocall_fraction=0.0)
    # the settings the kept cells were trained with (before no-bird samples and the level input were defaults)
    return TrainConfig.from_recipe("small-data", model=model, device=device, seed=seed, progress_bar=False,
                                   input_norm="band", nocall_fraction=0.0)


def curves_dir(out: Path, model: str) -> Path:
    return out / "curves" / model


def keep_cell(out: Path, kept: Path, model_dir: Path, cell: Path) -> int:
    """Keep one finished cell's result, its test predictions and its model's settings (see ``keep.py``)."""
    from birdspec.evaluation.evaluate import PREDICTIONS_FILE, eval_dir_name
    from birdspec.experiments.learning_curve import CELL_RESULT, CURVE_SETTINGS_FILE

    settings = json.loads((model_dir / CURVE_SETTINGS_FILE).read_text())
    settings["dataset"] = str(Path(KEPT_DATASET) / encoding_dir(out, ENCODING).relative_to(out))
    changed = keep.store(kept / model_dir.relative_to(out) / CURVE_SETTINGS_FILE, (json.dumps(settings, indent=2) + "\n").encode())
    files = [cell / CELL_RESULT] + [p for p in [cell / eval_dir_name("test") / PREDICTIONS_FILE] if p.is_file()]
    return changed + keep.save(out, kept, files)


def restore_cells(kept: Path, out: Path) -> int:
    """Copy kept cells the work folder lacks back into it; a restored settings.json names this OUT's dataset."""
    from birdspec.experiments.learning_curve import CURVE_SETTINGS_FILE

    def edit(path: Path, data: bytes) -> bytes:
        if path.name != CURVE_SETTINGS_FILE:
            return data
        settings = json.loads(data)
        settings["dataset"] = str(encoding_dir(out, ENCODING).resolve())
        return json.dumps(settings, indent=2).encode()

    return len(keep.restore(kept, out, edit=edit))


def report(out: Path, machine: str, models: list[str]) -> pd.DataFrame:
    """Assemble every model's summary into OUT/few_shot.{json,md,png}."""
    from birdspec.experiments.learning_curve import SUMMARY_CSV, write_tables
    from birdspec.experiments.learning_curve_plot import plot_learning_curve

    parts = []
    for model in models:
        d = curves_dir(out, model)
        if d.is_dir():
            write_tables(d)
            if (d / SUMMARY_CSV).is_file():
                parts.append(pd.read_csv(d / SUMMARY_CSV, dtype={"k": str}))
    if not parts:
        return pd.DataFrame()
    summary = pd.concat(parts, ignore_index=True)
    summary["k_order"] = summary["k"].map(lambda k: float("inf") if k == "all" else float(k))
    plot_learning_curve(summary, out / "few_shot.png",
                        title="Reed warblers (98 recordings, 4 species), 5-fold CV: accuracy against training recordings per species")
    (out / "few_shot.json").write_text(json.dumps({"machine": machine, "rows": summary.drop(columns="k_order").to_dict("records")},
                                                  indent=2, default=str))
    (out / "few_shot.md").write_text(f"Machine: {machine}\n\n{markdown(summary)}\n")
    return summary


def markdown(summary: pd.DataFrame) -> str:
    """One row per model and k: accuracy and macro F1 (mean ± std over draws), correct of 98, draws done."""
    lines = ["| model | k per species | draws | recording accuracy | macro F1 | correct (mean) | range over draws |",
             "|---|---|---|---|---|---|---|"]
    for r in summary.sort_values(["k_order"], kind="stable").itertuples(index=False):
        std = 0.0 if r.accuracy_std != r.accuracy_std else r.accuracy_std
        f1_std = 0.0 if r.macro_f1_std != r.macro_f1_std else r.macro_f1_std
        lines.append(f"| {r.model} | {r.k} | {r.draws} | {r.accuracy_mean:.3f} ± {std:.3f} | {r.macro_f1_mean:.3f} ± {f1_std:.3f} | "
                     f"{r.correct_mean:.1f}/{r.n} | {r.accuracy_min * r.n:.0f}-{r.accuracy_max * r.n:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="a BirdCLEF-2021-format folder")
    p.add_argument("--out", default="bench-out/few_shot", help="work and output folder")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, in this order (default {','.join(MODELS)})")
    p.add_argument("--per-class", default="1,2,4,8,all")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--device", default="auto", help="for the CNN rows (the heads train on the CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: right when several processes share the cores; one process alone: the core count)")
    p.add_argument("--report-only", action="store_true", help="only assemble the table and figure of finished cells")
    p.add_argument("--no-keep", action="store_true", help=f"do not keep finished cells in {KEPT} nor restore them")
    args = p.parse_args(argv)
    root, out, device, machine = start_run(args.data, args.out, args.device)
    kept = None if args.no_keep else KEPT
    if kept is not None:
        print(f"{restore_cells(kept, out)} kept file(s) restored from {kept}", flush=True)
    for name in ("birdspec.training", "birdspec.evaluation"):  # per-epoch lines of hundreds of runs
        logging.getLogger(name).setLevel(logging.WARNING)
    models = [m for m in args.models.split(",") if m]
    if not args.report_only:
        import torch

        from birdspec.birdnet.backend import birdnet_available
        from birdspec.data.embed import embed_dataset
        from birdspec.experiments.learning_curve import parse_per_class, run_learning_curve

        torch.set_num_threads(max(1, args.threads))
        ds = prepare_encoding(root, out, ENCODING)
        if any(m.startswith("birdnet") for m in models):
            if not birdnet_available():
                print("BirdNET rows skipped (pip install 'birdspec[birdnet]')")
                models = [m for m in models if not m.startswith("birdnet")]
            else:
                embed_dataset(ds, progress=False)
        for model in models:
            print(f"{model}: learning curve", flush=True)
            on_cell = None if kept is None else (lambda model_dir, cell, _result: keep_cell(out, kept, model_dir, cell))
            run_learning_curve(ds, curves_dir(out, model), [model_config(model, device=device, seed=args.seed)],
                               per_class=parse_per_class(args.per_class), draws=args.draws, seed=args.seed,
                               on_cell=on_cell)
            report(out, machine, list(MODELS))
    summary = report(out, machine, list(MODELS))
    print(markdown(summary) if len(summary) else "no finished cells yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
