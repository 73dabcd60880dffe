"""Background jobs of the app (predictions, training): a thread each, progress the page polls.

The server answers every request while a job runs (prediction runs in ONNX Runtime and NumPy,
which release the GIL; training runs in a child process). A job's failure is kept as its
message: a :class:`~birdspec.errors.BirdspecError` (a corrupt recording, a damaged checkpoint)
as it is, anything else as a bug report line.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from birdspec.errors import BirdspecError

log = logging.getLogger(__name__)

_IDS = itertools.count(1)


@dataclass
class Job:
    """One background task and what the page shows of it."""

    id: str
    kind: str
    title: str
    status: str = "queued"  # queued | running | done | failed
    progress: float = 0.0  # 0..1
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    started_s: float = field(default_factory=time.time)
    finished_s: float | None = None

    def update(self, *, progress: float | None = None, message: str | None = None) -> None:
        if progress is not None:
            self.progress = float(min(max(progress, 0.0), 1.0))
        if message is not None:
            self.message = message

    def as_dict(self) -> dict[str, Any]:
        end = self.finished_s or time.time()
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "progress": round(self.progress, 4), "message": self.message, "result": self.result,
                "elapsed_s": round(end - self.started_s, 2)}


class Jobs:
    """Runs jobs on their own threads; keeps every job of this server's life for the page."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, title: str, work: Callable[[Job], dict[str, Any] | None]) -> Job:
        """Run ``work(job)`` on a new thread; its return value becomes ``job.result``."""
        job = Job(id=f"{kind}-{next(_IDS)}", kind=kind, title=title)
        with self._lock:
            self._jobs[job.id] = job

        def run() -> None:
            job.status = "running"
            try:
                job.result = dict(work(job) or {})
                job.progress = 1.0
                job.status = "done"
            except BirdspecError as exc:
                job.message, job.status = str(exc), "failed"
                log.warning("%s failed: %s", job.title, exc)
            except OSError as exc:
                from birdspec.fileio import describe_os_error

                job.message, job.status = describe_os_error(exc), "failed"
                log.warning("%s failed: %s", job.title, job.message)
            except Exception as exc:  # noqa: BLE001 - a bug: say so in the page, log the traceback
                job.message, job.status = f"internal error ({type(exc).__name__}: {exc}); please report it", "failed"
                log.error("%s failed:\n%s", job.title, traceback.format_exc())
            finally:
                job.finished_s = time.time()

        threading.Thread(target=run, name=f"birdspec-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())
