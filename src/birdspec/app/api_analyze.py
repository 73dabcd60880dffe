"""API of the Analyze page: recordings, uploads, checkpoints, prediction jobs, tiles, audio, downloads.

Handlers are plain functions (FastAPI runs them on its thread pool), so rendering a tile or
decoding a clip never blocks other requests; predictions run as background jobs.
"""

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.app import batch, recordings
from birdspec.app import predictions as preds
from birdspec.app import tiles as tl
from birdspec.app.paths import NotFound, PathRefused
from birdspec.audio import AUDIO_EXTENSIONS
from birdspec.errors import AudioError, ConfigError
from birdspec.fileio import safe_name

log = logging.getLogger(__name__)

MAX_CLIP_S = 120.0
MAX_SPEC_WIDTH_PX = 2048
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".aif": "audio/aiff", ".aiff": "audio/aiff"}


def _check_audio(path: Path) -> dict[str, Any]:
    """Header and how much decodes (:func:`birdspec.app.recordings.probe`): a file whose start does not decode
    fails here, with libsndfile's reason; a cut-off one is kept, its decodable part used, with a warning."""
    return recordings.probe(path).as_dict()


async def save_upload(request: Any, name: str, cfg: Any, roots: Any) -> dict[str, Any]:
    """Stream an upload into the uploads folder (refused past the size limit), keep it only if it decodes."""
    from starlette.concurrency import run_in_threadpool

    from birdspec.app.paths import UploadTooLarge

    clean = safe_name(Path(name).name).lstrip(".")
    if not clean or Path(clean).suffix.lower() not in AUDIO_EXTENSIONS:
        raise ConfigError(f"{name!r}: upload an audio file ({', '.join(AUDIO_EXTENSIONS)})")
    limit = int(cfg.max_upload_mb * (1 << 20))
    too_big = (f"{name}: the upload is larger than the limit of {cfg.max_upload_mb:g} MB; "
               "put the file in a served recordings folder instead (birdspec serve --recordings DIR)")
    if int(request.headers.get("content-length") or 0) > limit:
        raise UploadTooLarge(too_big)
    target = cfg.uploads_dir / clean
    n, stem = 2, target.stem
    while target.exists():
        target, n = target.with_name(f"{stem}-{n}{target.suffix}"), n + 1
    tmp = target.with_name(f".{target.name}.partial")
    size = 0
    try:
        with open(tmp, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(too_big)
                f.write(chunk)
        try:
            info = await run_in_threadpool(_check_audio, tmp)
        except AudioError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise AudioError(f"{name}: the upload is not audio birdspec can decode ({reason}); "
                             "upload a WAV, FLAC, Ogg or MP3 file") from None
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"ref": roots.ref(target), "bytes": size, **info}


def _check_display(axis: str, floor_db: float | None, ceiling_db: float | None) -> None:
    if axis not in tl.AXES:
        raise ConfigError(f"unknown frequency axis {axis!r}; use {' or '.join(tl.AXES)}")
    if floor_db is None and ceiling_db is None:
        return
    if floor_db is None or ceiling_db is None or not -300 < floor_db < ceiling_db < 300:
        raise ConfigError("give floor_db and ceiling_db together, floor below ceiling (dB of the colour map's ends)")


def prediction_payload(roots: Any, ref: str) -> dict[str, Any]:
    """A prediction's metadata and every class's score per window (the species tracks)."""
    import pandas as pd

    csv = preds.prediction_csv(roots, ref)
    meta = preds.read_meta(csv.parent)
    if meta is None or not (csv.parent / preds.SCORES_FILE).is_file():
        raise NotFound(f"{ref}: not a prediction made by this app (no {preds.META_FILE}); open it in Review")
    scores = pd.read_csv(csv.parent / preds.SCORES_FILE)
    classes = [c for c in meta["classes"] if c in scores.columns]
    return {"ref": ref, "meta": meta, "start_s": scores["start_s"].round(3).tolist(),
            "end_s": scores["end_s"].round(3).tolist(), "scores": {c: scores[c].round(4).tolist() for c in classes},
            "raven": bool(list((csv.parent / preds.RAVEN_DIR).glob("*.txt")))}


def router(state: Any):
    from fastapi import APIRouter, Request

    api = APIRouter()
    roots, cfg = state.roots, state.config

    @api.get("/config")
    def config() -> dict[str, Any]:
        return {"levels_s": list(tl.LEVELS_S), "tile_width_px": tl.TILE_WIDTH_PX, "axes": list(tl.AXES),
                "colormap": tl.colormap_hex(),
                "max_upload_mb": cfg.max_upload_mb, "folders": {k: str(v) for k, v in roots.folders.items()}}

    @api.get("/recordings")
    def recordings() -> dict[str, Any]:
        keys = [*roots.recording_keys, "uploads"]
        return {"folders": [{"key": k, "path": str(roots.folders[k]), "files": roots.list_files(k, AUDIO_EXTENSIONS)}
                            for k in keys]}

    @api.get("/checkpoints")
    def checkpoints() -> dict[str, Any]:
        return {"checkpoints": preds.checkpoint_choices(roots)}

    @api.get("/recording")
    def recording(ref: str) -> dict[str, Any]:
        info = _check_audio(roots.resolve(ref))
        return {"ref": ref, **info, "initial_level": tl.initial_level(info["duration_s"])}

    @api.post("/upload")
    async def upload(request: Request, name: str) -> dict[str, Any]:
        return await save_upload(request, name, cfg, roots)

    @api.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        rec, ckpt = str(body.get("recording") or ""), str(body.get("checkpoint") or "")
        path = roots.resolve(rec)
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            raise ConfigError(f"{rec}: not an audio file ({', '.join(AUDIO_EXTENSIONS)})")
        preds.checkpoint_path(roots, ckpt)  # an unknown checkpoint is refused now, not in the job
        job = state.jobs.start("predict", f"{Path(rec).name} with {ckpt}",
                               lambda j: preds.run_prediction(j, cfg, roots, recording_ref=rec, checkpoint_ref=ckpt,
                                                              tiles=state.tiles))
        return job.as_dict()

    @api.get("/folders")
    def folders() -> dict[str, Any]:
        return {"folders": batch.folder_choices(roots)}

    @api.post("/predict-folder")
    def predict_folder(body: dict[str, Any]) -> dict[str, Any]:
        folder, ckpt = str(body.get("folder") or "").rstrip("/"), str(body.get("checkpoint") or "")
        count = len(batch.folder_recordings(roots, folder))  # refused now, not in the job
        preds.checkpoint_path(roots, ckpt)
        job = state.jobs.start("batch", f"{folder} ({count} recordings) with {ckpt}",
                               lambda j: batch.run_batch(j, cfg, roots, folder=folder, checkpoint_ref=ckpt))
        return job.as_dict()

    @api.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        j = state.jobs.get(job_id)
        if j is None:
            raise NotFound(f"no job {job_id!r}; start it again")
        return j.as_dict()

    @api.get("/jobs")
    def jobs() -> dict[str, Any]:
        return {"jobs": [j.as_dict() for j in state.jobs.all()]}

    @api.get("/prediction")
    def prediction(ref: str) -> dict[str, Any]:
        return prediction_payload(roots, ref)

    @api.get("/predictions")
    def predictions() -> dict[str, Any]:
        return {"predictions": preds.list_predictions(roots)}

    _media_routes(api, state)
    return api


def _media_routes(api: Any, state: Any) -> None:
    """Downloads, tiles, card spectrograms, audio files and clips."""
    from fastapi.responses import FileResponse, Response

    roots = state.roots

    @api.get("/download")
    def download(ref: str, format: str = "csv", min_score: str | None = None) -> Response:
        """The detections (CSV) or Raven selection table of a prediction; with ``min_score`` (a number, or
        ``model``: the model's per-class thresholds) only the rows at or above it, as the page shows them."""
        csv = preds.prediction_csv(roots, ref)
        if format == "csv":
            path, label_column, sep, name = csv, "label", ",", f"{csv.parent.name}.detections.csv"
        elif format == "raven":
            found = sorted((csv.parent / preds.RAVEN_DIR).glob("*.txt"))
            if not found:
                raise NotFound(f"{ref}: no Raven selection table (predictions made by this app have one)")
            path, label_column, sep, name = found[0], preds.RAVEN_LABEL_COLUMN, "\t", found[0].name
        elif format == "audacity":  # a label track: start, end, "label confidence" (as predict --format audacity)
            from birdspec.formats import AUDACITY_SUFFIX

            meta = preds.read_meta(csv.parent) or {}
            stem = Path(str(meta.get("recording") or csv.parent.name)).stem
            body = preds.audacity_text(csv, min_score=min_score or "0", thresholds=preds.model_thresholds(csv))
            return Response(body, media_type="text/plain",
                            headers={"Content-Disposition": f'attachment; filename="{stem}{AUDACITY_SUFFIX}"'})
        else:
            raise ConfigError(f"unknown download format {format!r}; use csv, raven or audacity")
        if min_score is None:
            return FileResponse(path, media_type="text/csv" if sep == "," else "text/plain", filename=name)
        body = preds.filtered_table(path, min_score=min_score, thresholds=preds.model_thresholds(csv),
                                    label_column=label_column, sep=sep)
        suffix = "model-thresholds" if str(min_score) == "model" else f"min{float(min_score):.2f}"
        return Response(body, media_type="text/csv" if sep == "," else "text/plain",
                        headers={"Content-Disposition": f'attachment; filename="{Path(name).stem}.{suffix}{Path(name).suffix}"'})

    @api.get("/tile")
    def tile(ref: str, level: int, index: int, axis: str = "mel", floor_db: float | None = None,
             ceiling_db: float | None = None) -> Response:
        if not 0 <= level < len(tl.LEVELS_S) or index < 0:
            raise ConfigError(f"no tile {index} at zoom level {level}; levels are 0..{len(tl.LEVELS_S) - 1}")
        _check_display(axis, floor_db, ceiling_db)
        png = state.tiles.tile(roots.resolve(ref), level=level, index=index, axis=axis, floor_db=floor_db, ceiling_db=ceiling_db)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @api.get("/display")
    def display(ref: str, axis: str = "mel") -> dict[str, Any]:
        """A recording's frequency rows and ticks on ``axis`` and its colour scale (dB at the map's ends)."""
        _check_display(axis, None, None)
        return state.tiles.display(str(roots.resolve(ref)), axis)

    @api.get("/spectrogram")
    def spectrogram(ref: str, start_s: float, duration_s: float, width_px: int = 400, axis: str = "mel") -> Response:
        if not (0 <= start_s and 0 < duration_s <= MAX_CLIP_S and 16 <= width_px <= MAX_SPEC_WIDTH_PX):
            raise ConfigError(f"a spectrogram needs start_s >= 0, 0 < duration_s <= {MAX_CLIP_S:g} and "
                              f"16 <= width_px <= {MAX_SPEC_WIDTH_PX}")
        _check_display(axis, None, None)
        key = tl.TileKey(str(roots.resolve(ref)), start_s=float(start_s), duration_s=float(duration_s), width_px=int(width_px),
                         axis=axis)
        return Response(state.tiles.get(key), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @api.get("/audio")
    def audio_file(ref: str) -> FileResponse:
        path = roots.resolve(ref)
        kind = AUDIO_TYPES.get(path.suffix.lower())
        if kind is None or not path.is_file():
            raise PathRefused(f"{ref}: only audio files are served here")
        return FileResponse(path, media_type=kind)

    @api.get("/clip")
    def clip(ref: str, start_s: float, end_s: float) -> Response:
        """A stretch of a recording as WAV (32 kHz mono), for a Review card's play button."""
        import soundfile as sf

        from birdspec import audio
        from birdspec.config import SAMPLE_RATE_HZ

        if not (0 <= start_s < end_s and end_s - start_s <= MAX_CLIP_S):
            raise ConfigError(f"a clip needs 0 <= start_s < end_s and at most {MAX_CLIP_S:g} s")
        path = roots.resolve(ref)
        end_s = min(end_s, recordings.probe(path).duration_s)  # a cut-off file: up to where it decodes
        wave = audio.load(path, offset_s=start_s, duration_s=end_s - start_s) if end_s > start_s else np.zeros(0, np.float32)
        buf = io.BytesIO()
        sf.write(buf, wave, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
        return Response(buf.getvalue(), media_type="audio/wav")

