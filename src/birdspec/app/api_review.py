"""API of the Review, Train and Runs pages: detections, verdicts, precision, manifest export,
training from verified windows (:mod:`birdspec.app.train_job`), run folders and their comparison
(``birdspec compare``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from birdspec.app import predictions as preds
from birdspec.app import review as rv
from birdspec.app import review_queue as rq
from birdspec.app import species_list as sl
from birdspec.app import train_job
from birdspec.app import verified as vf
from birdspec.app.paths import NotFound, PathRefused
from birdspec.app.runs import run_details, run_list
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SERVED_SUFFIXES = (".png", ".html", ".csv", ".json", ".txt")
"""What /api/file serves (figures, reports, tables); never checkpoints or audio."""


def review_payload(state: Any, ref: str, opts: rq.QueueOptions) -> dict[str, Any]:
    """One page of a prediction's review queue (:mod:`birdspec.app.review_queue`): its species groups and cards,
    each card with its verdict, audio reference and the model's top 3 for its window."""
    roots = state.roots
    csv = preds.prediction_csv(roots, ref)
    det = rv.read_detections(csv)
    info = vf.class_info(csv, det)
    thresholds = preds.model_thresholds(csv)
    groups, shown = rq.page(det, info, opts, thresholds)
    resolve = vf.file_resolver(roots, csv)
    windows = set(zip(shown["file"], shown["start_s"], strict=True))
    near = det[[w in windows for w in zip(det["file"], det["start_s"], strict=True)]]
    top = {k: g.sort_values("rank")[["label", "confidence"]].values.tolist()[:3] for k, g in near.groupby(["file", "start_s"])}
    verdicts = rv.verdict_map(csv)
    audio_refs: dict[str, str | None] = {}
    cards = []
    r: Any  # a row of the shown table
    for r in shown.itertuples():
        if r.file not in audio_refs:
            found = resolve(r.file)
            audio_refs[r.file] = found[0] if found else None
        cards.append({"key": r.key, "file": r.file, "audio": audio_refs[r.file], "start_s": float(r.start_s),
                      "end_s": float(r.end_s), "label": r.label, "common_name": r.common_name,
                      "confidence": round(float(r.confidence), 4), "rank": int(r.rank),
                      "top": [[lab, round(float(c), 4)] for lab, c in top.get((r.file, r.start_s), [])],
                      **verdicts.get(r.key, {"verdict": "", "species": ""})})
    return {"ref": ref, "mode": opts.mode, "groups": groups, "cards": cards, "classes": info,
            "species": sl.choices(info, state.species), "thresholds": thresholds,
            "min_score": "model" if opts.min_score is None else opts.min_score, "page_size": rq.PAGE_SIZE,
            "detections": int(len(det)), "verified": len(verdicts), "verdicts_file": str(rv.verdicts_path(csv))}


def export_manifest(roots: Any, config: Any, ref: str) -> dict[str, Any]:
    from birdspec.fileio import safe_name, write_csv

    csv = preds.prediction_csv(roots, ref)
    rows = vf.verified_rows(roots, ref)
    if rows.empty:
        raise DataError("no verified windows to export yet: mark detections correct (c) or other species (o) first")
    name = safe_name(csv.parent.name if csv.name == preds.DETECTIONS_FILE else csv.stem)
    out = write_csv(config.exports_dir / (name + train_job.MANIFEST_SUFFIX), rows, float_format=None)
    return {"manifest": roots.ref(out), "path": str(out), "rows": int(len(rows)),
            "labels": rows["label"].value_counts().to_dict(),
            "command": f"birdspec prepare {out} --encoding window --short-policy tile --out DATASET"}


def train_sources(roots: Any) -> list[dict[str, Any]]:
    """What training can pool: the predictions with verified windows (how many), the exported manifests and the
    recordings' box tables (how many boxes)."""
    out = []
    for p in preds.list_predictions(roots):
        verified = rv.read_verdicts(rv.verdicts_path(preds.prediction_csv(roots, p["ref"])))
        n = int(verified["verdict"].isin(["correct", "other"]).sum()) if len(verified) else 0
        if n:
            out.append({"ref": p["ref"], "kind": "prediction", "name": p["name"], "verified": n})
    for ref in roots.list_files("exports", (train_job.MANIFEST_SUFFIX,)):
        out.append({"ref": ref, "kind": "manifest", "name": ref.split("/", 1)[1], "verified": None})
    from birdspec.app.api_boxes import box_tables

    return out + box_tables(roots)


def router(state: Any):
    from fastapi import APIRouter

    api = APIRouter()
    roots, cfg = state.roots, state.config

    @api.get("/review")
    def review(prediction: str, mode: str = "score", per_bin: int = 3, choices: str = "top", min_score: str = "model",
               order: str = "count", species: str | None = None, offset: int = 0, limit: int = rq.PAGE_SIZE) -> dict[str, Any]:
        opts = rq.QueueOptions.parse(mode=mode, per_bin=per_bin, choices=choices, min_score=min_score, order=order,
                                     species=species, offset=offset, limit=limit)
        return review_payload(state, prediction, opts)

    @api.post("/verdict")
    def verdict(body: dict[str, Any]) -> dict[str, Any]:
        csv = preds.prediction_csv(roots, str(body.get("prediction") or ""))
        det = body.get("detection") or {}
        if not set(rv.DETECTION_KEYS) <= set(det):
            raise ConfigError(f"a verdict needs the detection's {', '.join(sorted(rv.DETECTION_KEYS))}")
        detections = rv.read_detections(csv)
        if rv.detection_key(det["file"], det["start_s"], det["label"]) not in set(detections["key"]):
            raise NotFound("this detection is not in the prediction (reload the page)")
        verdict = str(body.get("verdict") or "")
        species = ""
        if verdict == "other":  # one of the model's classes or the species list, by code or name; never free text
            species = sl.resolve_other(str(body.get("species") or ""), sl.choices(vf.class_info(csv, detections), state.species))
        df = rv.save_verdict(csv, det, verdict, species)
        return {"saved": True, "verified": int(len(df)), "species": species}

    @api.get("/summary")
    def summary(prediction: str, target: float = 0.9, choices: str = "top") -> dict[str, Any]:
        if not 0 < target <= 1:
            raise ConfigError(f"the target precision must be in (0, 1], got {target}")
        csv = preds.prediction_csv(roots, prediction)
        det = rv.read_detections(csv)
        pool = rq.eligible(det, rq.QueueOptions.parse(choices=choices, min_score="0"), None)  # every score: thresholds are chosen here
        return {"species": rv.precision_summary(pool, rv.verdict_map(csv), target=target)}

    @api.post("/export")
    def export(body: dict[str, Any]) -> dict[str, Any]:
        return export_manifest(roots, cfg, str(body.get("prediction") or ""))

    _train_and_run_routes(api, state)
    return api


def _train_and_run_routes(api: Any, state: Any) -> None:
    """Training from verified windows, run folders, their comparison and their files."""
    from fastapi.responses import FileResponse

    roots, cfg = state.roots, state.config

    @api.get("/manifests")
    def manifests() -> dict[str, Any]:
        return {"manifests": roots.list_files("exports", (train_job.MANIFEST_SUFFIX,))}

    @api.get("/train-sources")
    def sources() -> dict[str, Any]:
        return {"sources": train_sources(roots)}

    @api.get("/train-options")
    def options() -> dict[str, Any]:
        return train_job.train_options()

    @api.post("/train")
    def train(body: dict[str, Any]) -> dict[str, Any]:
        return train_job.start_training(state, body)

    @api.get("/runs")
    def runs() -> dict[str, Any]:
        return {"runs": run_list(roots)}

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
            from birdspec.evaluation.compare_report import COMPARE_REPORT_HTML

            job.update(message=f"evaluating {len(dirs)} run(s)")
            result = compare_runs(dirs, out_dir=cfg.exports_dir / f"compare-{stamp}-{job.id}", timing=False)
            return {"report": roots.ref(result.out_dir / COMPARE_REPORT_HTML)}

        return state.jobs.start("compare", f"compare {len(dirs)} runs", work).as_dict()

    @api.get("/file")
    def file(ref: str) -> FileResponse:
        path = roots.resolve(ref)
        if path.suffix.lower() not in SERVED_SUFFIXES or not path.is_file():
            raise PathRefused(f"{ref}: only figures, reports and tables ({', '.join(SERVED_SUFFIXES)}) are served here")
        return FileResponse(path)
