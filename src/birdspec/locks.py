"""One writer per output: the OS lock of birdspec (:func:`os_lock`) and the output lock on it (:func:`output_lock`).

``prepare``, ``train``, ``cv``, ``sweep``, ``embed`` and folder ``predict`` runs hold ``OUT.lock`` while they
write ``OUT``; the review app holds ``X.verdicts.csv.lock`` while it merges a verdict. Both are ``flock``
locks on the file (the kernel drops them when their process ends, however it ends), and the file is
removed when the lock is given back. A forked child (a data-loader worker) closes its copy of a held lock's
descriptor at once, so a worker that outlives its killed parent for a few seconds holds nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"

try:  # POSIX; elsewhere locks are the JSON note only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


_HELD: set[int] = set()
"""Descriptors of the locks this process holds (closed in forked children: see :func:`_drop_in_child`)."""


def _drop_in_child() -> None:
    """In a forked child: close the copies of the parent's lock descriptors. A flock belongs to the open file,
    which a forked worker would otherwise keep locked after its parent was killed, until it noticed."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


@dataclass
class HeldLock:
    """A lock file held by :func:`os_lock`: its open ``fd``, whether the OS lock is ``locked`` (False on a file
    system without locks), and ``keep_file`` (set it to leave the file in place when the block ends)."""

    fd: int
    locked: bool
    keep_file: bool = False


@contextlib.contextmanager
def os_lock(lock: str | Path, *, wait: bool) -> Iterator[HeldLock]:
    """Hold an OS lock (``flock``) on the file ``lock`` (created when missing) for the block, then remove the
    file. The one lock of birdspec: :func:`output_lock` and the app's verdicts (:mod:`birdspec.app.review`).

    The kernel releases the lock when its process ends, however it ends (killed, crashed), so a lock file
    left behind holds nothing. Removing the file is safe: a process that got the lock of a file removed
    meanwhile (the path shows another file, or none) locks the file now at the path instead.

    Raises:
        BlockingIOError: ``wait`` is false and another process holds the lock.
    """
    lock = Path(lock)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        locked = fcntl is not None
        try:
            if locked:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    raise
                except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system without locks
                    log.warning("%s: this file system cannot lock files (%s); only the lock file's note is checked",
                                lock, exc.strerror or exc)
                    locked = False
            mine = os.fstat(fd)
            try:
                now = os.stat(lock)
                same = (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # its holder removed it before we got it: lock the file at the path now
    held = HeldLock(fd, locked)
    _HELD.add(fd)
    try:
        yield held
    finally:
        try:
            now = os.stat(lock)
            if not held.keep_file and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
                lock.unlink()
        except OSError:
            pass
        _HELD.discard(fd)
        os.close(fd)  # releases the OS lock


def _note(fd: int) -> dict[str, Any]:
    """The note in a lock file (``{"pid", "host", "started", "command"}``), ``{}`` when empty or unreadable."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8")
        note = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def _read_note(lock: Path) -> dict[str, Any]:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return {}
    try:
        return _note(fd)
    finally:
        os.close(fd)


def _this_command() -> str:
    import sys

    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    argv = [first.parent.name if first.name == "__main__.py" else first.name, *sys.argv[1:]]  # `python -m birdspec` too
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


def _holder(note: dict[str, Any]) -> str:
    command = f", `{note['command']}`" if note.get("command") else ""
    return f"process {note.get('pid', '?')} (started {note.get('started', '?')}{command})"


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold ``OUT.lock`` (beside ``out``) while a command writes ``out``; one writer per output folder.

    The lock is an OS lock on that file (:func:`os_lock`), held for the block; the file holds a note of
    its holder (pid, host, start time, command) for the message a second writer gets: a
    :class:`~birdspec.errors.ConfigError` naming that process. A lock file left by a process of this
    host that is gone (killed, crashed) holds no OS lock and is taken over. One whose note names another
    host (shared storage) cannot be checked from here: it is refused, saying how to remove it, never
    taken over.
    """
    from birdspec.errors import ConfigError

    target = Path(out).absolute()
    lock = target.with_name(target.name + LOCK_SUFFIX)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": _this_command()}
    stack = contextlib.ExitStack()
    try:
        held = stack.enter_context(os_lock(lock, wait=False))
    except BlockingIOError:
        note: dict[str, Any] = {}
        for _attempt in range(20):  # its holder writes its note right after taking the lock
            note = _read_note(lock)
            if note:
                break
            time.sleep(0.05)
        who = _holder(note) if note else "another process (that has not written its note yet)"
        where = f" on {note['host']}" if note.get("host") not in (None, me["host"]) else ""
        raise ConfigError(f"{target} is being written by {who}{where}; wait for it or choose another --out") from None
    with stack:
        note = _note(held.fd)
        pid = int(note.get("pid") or 0)
        if note.get("host") not in (None, me["host"]):
            held.keep_file = True
            raise ConfigError(
                f"{target} is locked by {_holder(note)} on host {note['host']}, which cannot be checked from "
                f"{me['host']}; if that process is no longer running, remove {lock} and run again")
        if pid and pid != me["pid"]:
            if not held.locked and _pid_alive(pid):  # no OS lock on this file system: the note is all there is
                held.keep_file = True
                raise ConfigError(f"{target} is being written by {_holder(note)}; wait for it or choose another --out")
            why = "it holds no lock on the file" if _pid_alive(pid) else "no longer running"
            log.warning("%s: taking over the lock of %s (%s)", target, _holder(note), why)
        try:
            os.ftruncate(held.fd, 0)
            os.pwrite(held.fd, json.dumps(me).encode("utf-8"), 0)
        except OSError as exc:  # a full disk: name the file (the CLI's one-line message)
            raise OSError(exc.errno, exc.strerror, str(lock)) from exc
        yield lock


def locks_output(param: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function that writes the folder given as its argument ``param``: it runs under
    :func:`output_lock` of that folder."""
    import functools
    import inspect

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with output_lock(signature.bind(*args, **kwargs).arguments[param]):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
