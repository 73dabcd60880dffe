"""API of the Review, Train and Runs pages: detections, verdicts, precision, manifest export,
training from the manifest (a background job running ``birdspec prepare`` and ``birdspec train``),
run folders and their comparison (``birdspec compare``)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from birdspec.app import predictions as preds
from birdspec.app import review as rv
from birdspec.app.paths import NotFound, PathRefused
from birdspec.errors import ConfigError, DataError, TrainingError

log = logging.getLogger(__name__)

SERVED_SUFFIXES = (".png", ".html", ".csv", ".json", ".txt")
"""What /api/file serves (figures, reports, tables); never checkpoints or audio."""
MAX_CARDS_PER_SPECIES = 300


def _file_resolver(roots: Any, csv: Path):
    """``file`` column value -> (reference, real path) when the recording is in a served folder, else None."""
    def resolve(file: str) -> tuple[str, Path] | None:
        p = Path(str(file))
        for cand in ([p] if p.is_absolute() else [csv.parent / p, Path.cwd() / p]):
            ref = roots.ref(cand) if cand.exists() else None
            if ref is not None:
                return ref, cand.resolve()
        return None
    return resolve


def _class_info(csv: Path, detections: Any) -> list[dict[str, str]]:
    meta = preds.read_meta(csv.parent) if csv.name == preds.DETECTIONS_FILE else None
    if meta and meta.get("class_info"):
        return list(meta["class_info"])
    names = detections.drop_duplicates("label")
    return [{"label": r.label, "scientific_name": r.scientific_name, "common_name": r.common_name} for r in names.itertuples()]


def review_payload(roots: Any, ref: str, *, mode: str, per_bin: int) -> dict[str, Any]:
    csv = preds.prediction_csv(roots, ref)
    det = rv.read_detections(csv)
    if mode == "sample":
        shown = rv.sample_per_bin(det, per_bin=per_bin)
    elif mode == "score":
        shown = det.sort_values(["label", "confidence"], ascending=[True, False], kind="mergesort")
        shown = shown.groupby("label", sort=True).head(MAX_CARDS_PER_SPECIES)
    else:
        raise ConfigError(f"unknown review order {mode!r}; use score or sample")
    resolve = _file_resolver(roots, csv)
    top = {k: g.sort_values("rank")[["label", "confidence"]].values.tolist()[:3] for k, g in det.groupby(["file", "start_s"])}
    verdicts = rv.verdict_map(csv)
    audio_refs: dict[str, str | None] = {}
    cards = []
    for r in shown.sort_values(["label", "confidence"], ascending=[True, False], kind="mergesort").itertuples():
        if r.file not in audio_refs:
            found = resolve(r.file)
            audio_refs[r.file] = found[0] if found else None
        cards.append({"key": r.key, "file": r.file, "audio": audio_refs[r.file], "start_s": float(r.start_s),
                      "end_s": float(r.end_s), "label": r.label, "common_name": r.common_name,
                      "confidence": round(float(r.confidence), 4),
                      "top": [[lab, round(float(c), 4)] for lab, c in top.get((r.file, r.start_s), [])],
                      **verdicts.get(r.key, {"verdict": "", "species": ""})})
    return {"ref": ref, "mode": mode, "cards": cards, "classes": _class_info(csv, det),
            "detections": int(len(det)), "verified": len(verdicts), "verdicts_file": str(rv.verdicts_path(csv))}


def export_manifest(roots: Any, config: Any, ref: str) -> dict[str, Any]:
    from birdspec.fileio import write_csv

    csv = preds.prediction_csv(roots, ref)
    det = rv.read_detections(csv)
    verdicts = rv.read_verdicts(rv.verdicts_path(csv))
    resolve = _file_resolver(roots, csv)
    rows = rv.manifest_rows(det, verdicts, _class_info(csv, det), source=ref,
                            resolve_file=lambda f: (resolve(f) or (None, None))[1])
    if rows.empty:
        raise DataError("no verified windows to export yet: mark detections correct (c) or other species (o) first")
    name = re.sub(r"[^\w.-]+", "_", csv.parent.name if csv.name == preds.DETECTIONS_FILE else csv.stem)
    out = write_csv(config.exports_dir / f"{name}.verified.csv", rows, float_format=None)
    return {"manifest": roots.ref(out), "path": str(out), "rows": int(len(rows)),
            "labels": rows["label"].value_counts().to_dict(),
            "command": f"birdspec prepare {out} --encoding window --short-policy tile --out DATASET"}


def _run_step(argv: list[str], log_path: Path, what: str, on_poll: Any = None) -> None:
    """Run one ``birdspec`` command in a child process, its output into ``log_path``; ``on_poll()`` every second."""
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


def train_from_manifest(job: Any, roots: Any, config: Any, *, manifest: str, model: str, epochs: int, name: str) -> dict[str, Any]:
    """prepare + train in child processes (the server stays responsive); the run appears under the runs folder."""
    from birdspec.training.rundir import EPOCH_METRICS_FILE

    src = roots.resolve(manifest)
    ds = config.datasets_dir / name
    run = config.runs_dir / name
    log_path = config.datasets_dir / f"{name}.log"
    config.datasets_dir.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "birdspec"]
    job.update(message=f"preparing {src.name}", progress=0.02)
    _run_step([*py, "prepare", str(src), "--encoding", "window", "--short-policy", "tile", "--out", str(ds),
               "--workers", "1"], log_path, "birdspec prepare")
    job.update(message=f"training {model} for {epochs} epochs", progress=0.1)
    job.result = {**job.result, "run": f"runs/{name}"}

    def epochs_done() -> None:
        metrics = run / EPOCH_METRICS_FILE
        done = max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0
        job.update(progress=0.1 + 0.9 * min(done, epochs) / epochs, message=f"training {model}: epoch {done} of {epochs}")

    _run_step([*py, "train", str(ds), "--model", model, "--epochs", str(epochs), "--out", str(run)], log_path,
              "birdspec train", on_poll=epochs_done)
    return {"run": f"runs/{name}", "log": str(log_path)}


def start_training(state: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Check a train request and start prepare + train of the manifest as a background job."""
    import pandas as pd

    roots, cfg = state.roots, state.config
    manifest, model = str(body.get("manifest") or ""), str(body.get("model") or "mobilenetv2-seed")
    try:
        epochs = int(body.get("epochs") or 10)
    except (TypeError, ValueError):
        raise ConfigError(f"epochs must be a whole number, got {body.get('epochs')!r}") from None
    if not re.fullmatch(r"[\w.-]+", model):
        raise ConfigError(f"unknown model {model!r}; `birdspec models` lists them")
    if not 1 <= epochs <= 500:
        raise ConfigError(f"epochs must be in 1..500, got {epochs}")
    try:
        labels = pd.read_csv(roots.resolve(manifest), usecols=["label"])["label"].nunique() if manifest else 0
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{manifest}: not a manifest with a label column ({exc}); export one from Review") from exc
    if labels < 2:
        raise ConfigError(f"{manifest or 'no manifest'}: training needs verified windows of at least 2 species "
                          f"(this one has {labels}); verify detections of another species, or mark them 'other species'")
    name = re.sub(r"[^\w.-]+", "_", str(body.get("name") or f"verified-{model}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if (cfg.runs_dir / name).exists():
        raise ConfigError(f"runs/{name} exists; choose another run name")
    job = state.jobs.start("train", f"train {name}", lambda j: train_from_manifest(
        j, roots, cfg, manifest=manifest, model=model, epochs=epochs, name=name),
        result={"run": f"runs/{name}", "run_path": str(cfg.runs_dir / name)})
    return job.as_dict()


def run_details(roots: Any, ref: str) -> dict[str, Any]:
    """A run's epoch curves, its ``summary`` and validation metrics (``eval_val``), and its figures."""
    import pandas as pd

    from birdspec.evaluation.evaluate import CONFUSION_FILE, METRICS_FILE, PER_CLASS_PLOT, eval_dir_name
    from birdspec.fileio import read_json
    from birdspec.training.rundir import CURVES_FILE, EPOCH_METRICS_FILE, SUMMARY_FILE

    path = roots.resolve(ref)
    if not ref.startswith("runs/") or not path.is_dir():
        raise NotFound(f"{ref}: not a run folder under the runs folder")
    metrics = path / EPOCH_METRICS_FILE
    curves = pd.read_csv(metrics).to_dict(orient="list") if metrics.is_file() and metrics.stat().st_size else {}
    out: dict[str, Any] = {"ref": ref, "curves": curves, "figures": []}
    ev = eval_dir_name("val")
    for key, rel in (("summary", SUMMARY_FILE), (ev, f"{ev}/{METRICS_FILE}")):
        data = read_json(path / rel)
        if data is not None:
            out[key] = data
    for fig in (CURVES_FILE, f"{ev}/{CONFUSION_FILE}", f"{ev}/{PER_CLASS_PLOT}"):
        if (path / fig).is_file():
            out["figures"].append(f"{ref}/{fig}")
    return out


def router(state: Any):
    from fastapi import APIRouter
    from fastapi.responses import FileResponse

    api = APIRouter()
    roots, cfg = state.roots, state.config

    @api.get("/review")
    def review(prediction: str, mode: str = "score", per_bin: int = 3) -> dict[str, Any]:
        return review_payload(roots, prediction, mode=mode, per_bin=max(1, min(int(per_bin), 50)))

    @api.post("/verdict")
    def verdict(body: dict[str, Any]) -> dict[str, Any]:
        csv = preds.prediction_csv(roots, str(body.get("prediction") or ""))
        det = body.get("detection") or {}
        if not set(rv.DETECTION_KEYS) <= set(det):
            raise ConfigError(f"a verdict needs the detection's {', '.join(sorted(rv.DETECTION_KEYS))}")
        detections = rv.read_detections(csv)
        if rv.detection_key(det["file"], det["start_s"], det["label"]) not in set(detections["key"]):
            raise NotFound("this detection is not in the prediction (reload the page)")
        species = str(body.get("species") or "").strip()
        names = {str(n).lower(): c["label"] for c in _class_info(csv, detections)
                 for n in (c["label"], c.get("common_name"), c.get("scientific_name")) if n}
        species = names.get(species.lower(), species)  # a common or scientific name becomes the class label
        df = rv.save_verdict(csv, det, str(body.get("verdict") or ""), species)
        return {"saved": True, "verified": int(len(df))}

    @api.get("/summary")
    def summary(prediction: str, target: float = 0.9) -> dict[str, Any]:
        if not 0 < target <= 1:
            raise ConfigError(f"the target precision must be in (0, 1], got {target}")
        csv = preds.prediction_csv(roots, prediction)
        return {"species": rv.precision_summary(rv.read_detections(csv), rv.verdict_map(csv), target=target)}

    @api.post("/export")
    def export(body: dict[str, Any]) -> dict[str, Any]:
        return export_manifest(roots, cfg, str(body.get("prediction") or ""))

    @api.get("/manifests")
    def manifests() -> dict[str, Any]:
        return {"manifests": [r for r in roots.list_files("exports", (".verified.csv",))]}

    @api.post("/train")
    def train(body: dict[str, Any]) -> dict[str, Any]:
        return start_training(state, body)

    @api.get("/runs")
    def runs() -> dict[str, Any]:
        root = roots.folders["runs"]
        found = sorted({p.parent.name for p in root.glob("*/config.json")} | {p.parent.parent.name for p in root.glob("*/checkpoints/*.pt")})
        return {"runs": [f"runs/{n}" for n in found]}

    @api.get("/run")
    def run(ref: str) -> dict[str, Any]:
        return run_details(roots, ref)

    @api.post("/compare")
    def compare(body: dict[str, Any]) -> dict[str, Any]:
        refs = [str(r) for r in body.get("runs") or []]
        if not refs:
            raise ConfigError("select at least one run to compare")
        dirs = [roots.resolve(r) for r in refs]
        stamp = time.strftime('%Y%m%d-%H%M%S')

        def work(job: Any) -> dict[str, Any]:
            from birdspec.evaluation.compare import compare_runs
            from birdspec.evaluation.compare_report import REPORT_HTML

            job.update(message=f"evaluating {len(dirs)} run(s)")
            result = compare_runs(dirs, out_dir=cfg.exports_dir / f"compare-{stamp}-{job.id}", timing=False)
            return {"report": roots.ref(result.out_dir / REPORT_HTML)}

        return state.jobs.start("compare", f"compare {len(dirs)} runs", work).as_dict()

    @api.get("/file")
    def file(ref: str) -> FileResponse:
        path = roots.resolve(ref)
        if path.suffix.lower() not in SERVED_SUFFIXES or not path.is_file():
            raise PathRefused(f"{ref}: only figures, reports and tables ({', '.join(SERVED_SUFFIXES)}) are served here")
        return FileResponse(path)

    return api
