"""Background jobs of the app (predictions, training): a thread each, progress the page polls.

The server answers every request while a job runs (prediction runs in ONNX Runtime and NumPy,
which release the GIL; training runs in a child process). A job's failure is kept as its
message: a :class:`~birdspec.errors.BirdspecError` (a corrupt recording, a damaged checkpoint)
as it is, anything else as a bug report line.

With a journal (``birdspec serve`` keeps ``WORK/jobs.json``), every job's state is written when it
starts and when it ends, so a restarted server still answers for the jobs of its earlier life: a
finished job with its result (the files it wrote are on disk), and a job the stop cut short as
failed, with a message that says so. Progress is not journalled (it changes many times a second).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdspec.errors import BirdspecError

log = logging.getLogger(__name__)

JOURNAL_FORMAT = "birdspec-jobs"
JOURNAL_KEEP = 500
"""Most jobs a journal keeps (the newest)."""
INTERRUPTED = "the server stopped before this job finished; start it again"
INTERRUPTED_TRAIN = (" ({run}: `birdspec train --resume {run}` continues a training that had begun; or delete the folder,"
                     " or give the new run another name)")


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

    def record(self) -> dict[str, Any]:
        """What the journal keeps of the job."""
        return {**self.as_dict(), "started_s": self.started_s, "finished_s": self.finished_s, "saved_s": time.time()}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Job:
        """A job of an earlier server life; one that had not ended is failed with :data:`INTERRUPTED`."""
        job = cls(id=str(rec["id"]), kind=str(rec["kind"]), title=str(rec.get("title", "")), status=str(rec["status"]),
                  progress=float(rec.get("progress", 0.0)), message=str(rec.get("message", "")),
                  result=dict(rec.get("result") or {}), started_s=float(rec["started_s"]),
                  finished_s=None if rec.get("finished_s") is None else float(rec["finished_s"]))
        if job.status not in ("done", "failed"):
            run = job.result.get("run_path")
            job.status, job.message = "failed", INTERRUPTED + (INTERRUPTED_TRAIN.format(run=run) if run else "")
            job.finished_s = float(rec.get("saved_s") or job.started_s)
        return job


class Jobs:
    """Runs jobs on their own threads; keeps every job for the page, across restarts with a ``journal``."""

    def __init__(self, journal: str | Path | None = None) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._journal = None if journal is None else Path(journal)
        self._next_id = 1
        if self._journal is not None:
            self._load()

    def _load(self) -> None:
        from birdspec.fileio import read_json

        if self._journal is None:
            return
        data = read_json(self._journal) or {}
        for rec in data.get("jobs", []) if data.get("format") == JOURNAL_FORMAT else []:
            try:
                job = Job.from_record(rec)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s: skipping a damaged job entry (%s)", self._journal, exc)
                continue
            self._jobs[job.id] = job
            number = job.id.rpartition("-")[2]
            if number.isdigit():
                self._next_id = max(self._next_id, int(number) + 1)
        if any(j.message.startswith(INTERRUPTED) for j in self._jobs.values()):
            self._save()

    def _save(self) -> None:
        """Write the journal (the newest :data:`JOURNAL_KEEP` jobs); a write that fails is logged, not raised."""
        if self._journal is None:
            return
        from birdspec.fileio import describe_os_error, write_json

        with self._lock:
            records = [j.record() for j in list(self._jobs.values())[-JOURNAL_KEEP:]]
            try:
                write_json(self._journal, {"format": JOURNAL_FORMAT, "jobs": records})
            except OSError as exc:
                log.warning("could not write the job journal %s: %s", self._journal, describe_os_error(exc))

    def start(self, kind: str, title: str, work: Callable[[Job], dict[str, Any] | None], *,
              result: dict[str, Any] | None = None) -> Job:
        """Run ``work(job)`` on a new thread; its return value becomes ``job.result``.

        ``result``: what is known from the start (journalled at once), e.g. the run folder a training writes
        (``run_path``: a restarted server then says how to resume it).
        """
        with self._lock:
            job = Job(id=f"{kind}-{self._next_id}", kind=kind, title=title, result=dict(result or {}))
            self._next_id += 1
            self._jobs[job.id] = job
        self._save()

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
                self._save()

        threading.Thread(target=run, name=f"birdspec-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())
