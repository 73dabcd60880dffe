"""Training from verified windows, as a background job of the app.

A request names any number of sources (predictions with verdicts, exported manifests) and the training
choices (recipe, model from the registry, epochs, device; :func:`train_options`). At once, in the request:
the verified windows are pooled and split (:mod:`birdspec.app.verified`), and refused with a message when
they cannot be trained on. Then, in child processes so the server stays responsive:
``birdspec prepare`` of the pooled manifest, the training on its split
(:mod:`birdspec.app.train_runner`), and ``birdspec evaluate`` of the run on its validation windows, as a
CLI run is evaluated (metrics, confusion matrix). The split is recorded in the run
(:data:`~birdspec.app.verified.SPLIT_RECORD_FILE`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from birdspec.app import verified as vf
from birdspec.errors import ConfigError, TrainingError

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "small-data"
"""Verified windows are few: the recipe for a few dozen examples per class."""
DEFAULT_MODEL = "mobilenetv2-seed"
MANIFEST_SUFFIX = ".verified.csv"
"""What an exported manifest's name ends with (the Train page lists them)."""
MAX_EPOCHS = 500


def train_options() -> dict[str, Any]:
    """The choices of the Train page: recipes (with their epochs), the registry's waveform models, devices."""
    from birdspec.models.registry import list_models
    from birdspec.runtime import DEVICES
    from birdspec.training.config import TrainConfig
    from birdspec.training.recipes import RECIPES

    recipes = [{"name": "", "summary": "the model's defaults (no recipe)", "epochs": TrainConfig().epochs}]
    recipes += [{"name": r.name, "summary": r.summary, "epochs": int(r.settings.get("epochs", TrainConfig().epochs))}
                for r in RECIPES.values()]
    models = [{"name": s.name, "description": s.description} for s in list_models() if s.input == "waveform"]
    return {"recipes": recipes, "models": models, "devices": list(DEVICES),
            "defaults": {"recipe": DEFAULT_RECIPE, "model": DEFAULT_MODEL, "device": "auto"}}


def _run_step(argv: list[str], log_path: Path, what: str, on_poll: Any = None) -> None:
    """Run one command in a child process, its output into ``log_path``; ``on_poll()`` every second."""
    with open(log_path, "a", encoding="utf-8") as logf:
        logf.write(f"$ {' '.join(argv)}\n")
        logf.flush()
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        while proc.poll() is None:
            time.sleep(1.0)
            if on_poll is not None:
                on_poll()
    if proc.returncode != 0:
        lines = [ln for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if "error" in ln.lower()]
        raise TrainingError(f"{what} failed (exit {proc.returncode}): {lines[-1] if lines else 'see ' + str(log_path)}")


def _source_rows(roots: Any, refs: list[str]) -> list[Any]:
    """Each source's verified windows (an exported manifest as it is, a prediction's from its verdicts, a box
    table's boxes as the windows that hold them)."""
    from birdspec.app import boxes as bx
    from birdspec.app.api_boxes import box_recording
    from birdspec.app.recordings import probe

    frames = []
    for ref in refs:
        if ref.endswith(MANIFEST_SUFFIX):
            frames.append(vf.read_manifest(roots.resolve(ref)))
        elif ref.endswith(bx.BOX_TABLE_SUFFIX):  # boxes drawn on a recording: strong labels
            table = roots.resolve(ref)
            rec = box_recording(table)
            if rec is None:
                raise ConfigError(f"{ref}: no recording beside this box table")
            frames.append(bx.box_rows(table, rec.resolve(), duration_s=probe(rec).duration_s, source=ref))
        else:
            frames.append(vf.verified_rows(roots, ref))
    return frames


def _choices(body: dict[str, Any]) -> dict[str, Any]:
    """The checked training choices of a request: recipe, model, epochs (None: the recipe's), device."""
    from birdspec.models.registry import get_spec
    from birdspec.runtime import DEVICES
    from birdspec.training.recipes import get_recipe

    recipe = str(body.get("recipe", DEFAULT_RECIPE) or "")
    if recipe:
        get_recipe(recipe)  # ConfigError names the recipes
    model = str(body.get("model") or DEFAULT_MODEL)
    if get_spec(model).input != "waveform":
        raise ConfigError(f"{model} trains on BirdNET embeddings, which the app does not prepare; pick a waveform model")
    device = str(body.get("device") or "auto")
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    epochs = body.get("epochs")
    if epochs not in (None, ""):
        try:
            epochs = int(epochs)
        except (TypeError, ValueError):
            raise ConfigError(f"epochs must be a whole number, got {epochs!r}") from None
        if not 1 <= epochs <= MAX_EPOCHS:
            raise ConfigError(f"epochs must be in 1..{MAX_EPOCHS}, got {epochs}")
    else:
        epochs = None
    return {"recipe": recipe or None, "model": model, "epochs": epochs, "device": device}


def start_training(state: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Pool and split the verified windows of the request's sources, then start prepare + train + evaluate."""
    from birdspec.fileio import safe_name, write_csv

    roots, cfg = state.roots, state.config
    refs = [str(r) for r in (body.get("sources") or ([body["manifest"]] if body.get("manifest") else []))]
    if not refs:
        raise ConfigError("pick the predictions or manifests whose verified windows to train on")
    choices = _choices(body)
    rows, conflicts = vf.pool(_source_rows(roots, refs))
    plan = vf.plan_split(rows)
    name = safe_name(str(body.get("name") or f"verified-{choices['model']}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if (cfg.runs_dir / name).exists():
        raise ConfigError(f"runs/{name} exists; choose another run name")
    cfg.datasets_dir.mkdir(parents=True, exist_ok=True)
    manifest = write_csv(cfg.datasets_dir / f"{name}.manifest.csv", rows.assign(**{vf.SPLIT_COLUMN: plan.sides}),
                         float_format=None)
    record = {**plan.record(), "sources": refs, "windows": int(len(rows)), "conflicting_windows": conflicts,
              "manifest": str(manifest), "choices": choices}
    notes = plan.describe() + (f" {conflicts} window(s) named as two species by the sources are left out." if conflicts else "")
    job = state.jobs.start("train", f"train {name}", lambda j: _train(j, cfg, manifest=manifest, name=name,
                                                                    choices=choices, record=record, notes=notes),
                           result={"run": f"runs/{name}", "run_path": str(cfg.runs_dir / name), "split": plan.mode,
                                   "split_notes": notes})
    return {**job.as_dict(), "split": plan.mode, "split_notes": notes, "per_class": plan.per_class}


def _train(job: Any, config: Any, *, manifest: Path, name: str, choices: dict[str, Any], record: dict[str, Any],
           notes: str) -> dict[str, Any]:
    """The job: prepare, train on the split, record the split in the run, evaluate it on its validation windows."""
    from birdspec.fileio import write_json
    from birdspec.training.rundir import EPOCH_METRICS_FILE

    ds, run = config.datasets_dir / name, config.runs_dir / name
    log_path = config.datasets_dir / f"{name}.log"
    py = [sys.executable, "-m"]
    job.update(message=f"preparing {int(record['windows'])} verified windows", progress=0.02)
    _run_step([*py, "birdspec", "prepare", str(manifest), "--encoding", "window", "--short-policy", "tile",
               "--out", str(ds), "--workers", "1", "--no-progress"], log_path, "birdspec prepare")
    settings = {"model": choices["model"], "device": choices["device"], "workers": 0, "progress_bar": False}
    if choices["epochs"] is not None:
        settings["epochs"] = choices["epochs"]
    spec = {"dataset": str(ds), "out": str(run), "split_column": vf.SPLIT_COLUMN, "recipe": choices["recipe"],
            "settings": settings}
    spec_path = config.datasets_dir / f"{name}.train.json"
    write_json(spec_path, spec)
    epochs = choices["epochs"] or _recipe_epochs(choices["recipe"])
    what = f"training {choices['model']}" + (f" ({choices['recipe']})" if choices["recipe"] else "")
    job.update(message=f"{what} for {epochs} epochs", progress=0.1)

    def epochs_done() -> None:
        metrics = run / EPOCH_METRICS_FILE
        done = max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0
        if done and not job.result.get("curves"):
            job.result = {**job.result, "curves": True}  # the page may ask for them now
        job.update(progress=0.1 + 0.8 * min(done, epochs) / epochs, message=f"{what}: epoch {done} of {epochs}")

    _run_step([*py, "birdspec.app.train_runner", str(spec_path)], log_path, "training", on_poll=epochs_done)
    write_json(run / vf.SPLIT_RECORD_FILE, record)
    job.update(message="evaluating on the validation windows", progress=0.92)
    _run_step([*py, "birdspec", "evaluate", str(run), "--split", "val", "--device", choices["device"]], log_path,
              "birdspec evaluate")
    job.update(message="trained and evaluated")
    return {"run": f"runs/{name}", "log": str(log_path), "split": record["mode"], "split_notes": notes}


def _recipe_epochs(recipe: str | None) -> int:
    from birdspec.training.config import TrainConfig

    return (TrainConfig.from_recipe(recipe) if recipe else TrainConfig()).epochs
