"""The web server of ``birdspec serve``: a FastAPI app over the API routes and the static front end.

Why FastAPI + uvicorn: both are small, well kept and typed; FastAPI gives request validation and
JSON errors with no boilerplate, uvicorn serves it with no other process, and the front end is
plain hand-written HTML/JS/CSS under ``birdspec/app/static`` (no build step, no CDN: every asset
is served from here, so the app works offline). Uploads are read as the raw request body, so no
multipart parser is needed.

Every :class:`~birdspec.errors.BirdspecError` becomes ``{"error": message}`` with status 400
(403 for a refused path, 404 for a missing file, checkpoint or job, 413 for an oversized upload),
and the page shows the message: the same words the CLI would print.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdspec.app.jobs import Jobs
from birdspec.app.paths import NotFound, PathRefused, Roots, ServeConfig, UploadTooLarge
from birdspec.app.tiles import TileCache
from birdspec.errors import BirdspecError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


@dataclass
class AppState:
    """What every route shares: the settings, the served folders, the jobs and the tile cache."""

    config: ServeConfig
    roots: Roots
    jobs: Jobs = field(default_factory=Jobs)
    tiles: TileCache = field(default_factory=TileCache)
    species: list[dict[str, str]] = field(default_factory=list)
    """The species list (``--species-list``): what "other species" may name besides the model's classes."""
    indexes: Any = None
    """The embedding indexes "find similar" searches (``--index``; :class:`~birdspec.app.similar.Indexes`)."""


def status_of(exc: BaseException) -> int:
    if isinstance(exc, PathRefused):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, UploadTooLarge):
        return 413
    return 400


def create_app(config: ServeConfig):
    """The ASGI app for ``config`` (its work folders are created)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from birdspec.app import api_analyze, api_boxes, api_review, api_similar
    from birdspec.app.similar import Indexes

    for d in (config.work_dir, config.uploads_dir, config.predictions_dir, config.exports_dir, config.runs_dir):
        d.mkdir(parents=True, exist_ok=True)
    from birdspec.app.species_list import read_species_list

    roots = Roots(config)
    state = AppState(config=config, roots=roots, jobs=Jobs(journal=config.jobs_file),
                     tiles=TileCache(max_bytes=int(config.tile_cache_mb * (1 << 20))),
                     species=read_species_list(config.species_list) if config.species_list else [],
                     indexes=Indexes(config.index_dirs, roots))
    app = FastAPI(title="birdspec", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BirdspecError)
    async def _birdspec_error(_request: Request, exc: BirdspecError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status_of(exc))

    @app.exception_handler(OSError)
    async def _os_error(_request: Request, exc: OSError) -> JSONResponse:
        from birdspec.fileio import describe_os_error

        return JSONResponse({"error": describe_os_error(exc)}, status_code=400)

    app.include_router(api_analyze.router(state), prefix="/api")
    app.include_router(api_review.router(state), prefix="/api")
    app.include_router(api_boxes.router(state), prefix="/api")
    app.include_router(api_similar.router(state), prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def serve(config: ServeConfig, *, ready=None) -> None:
    """Run the server until interrupted; ``ready(url)`` is called once it listens."""
    import uvicorn

    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=2))
    if ready is not None:
        original = server.startup

        async def startup(sockets=None) -> None:
            await original(sockets=sockets)
            if server.started:
                ready(f"http://{config.host}:{config.port}/")

        server.startup = startup  # type: ignore[method-assign]
    server.run()
