"""Writing files so that readers never see half of one: the one atomic-write helper, and JSON.

A folder built in a work folder beside its target is moved into place whole by :func:`replace_dir`.

Every file birdspec writes (checkpoints, CSV tables, JSON state, figures,
reports) goes through :func:`atomic_path`: the content is written to a
temporary file in the same folder (named after the target, the process and
a counter, so concurrent writers never share one), then renamed over the
target in one step. An interrupt or an error leaves the old file (or no
file) in place, never a truncated one, and removes the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger(__name__)

_COUNTER = itertools.count()


def temp_path_for(target: Path) -> Path:
    """A private temporary name beside ``target`` (``name.tmp-<pid>-<n>.suffix``) to write before a rename."""
    return target.with_name(f"{target.stem}.tmp-{os.getpid()}-{next(_COUNTER)}{target.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary name keeps the target's suffix (``name.tmp-<pid>-<n>.png``), so
    writers that pick a format from the suffix (matplotlib, pandas) still do.
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        named = naming_target(exc, target, tmp)
        if named is exc:
            raise
        raise named from exc
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:  # pragma: no cover - best effort
                log.debug("could not remove %s", tmp)


WRITE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
"""Errors of a file being written (a full or failing disk), as opposed to one being read."""


def naming_target(exc: OSError, target: Path, tmp: Path | None = None) -> OSError:
    """``exc`` naming ``target`` when it names nothing (a failed ``write()``) or the temporary file ``tmp``
    it was being written to (as source or destination of a copy); else ``exc`` itself.

    The one-line message of :func:`describe_os_error` then says which output could not be written.
    """
    names = {str(n) for n in (exc.filename, exc.filename2) if n is not None}
    unnamed = exc.filename is None and exc.errno in WRITE_FAULTS
    if not unnamed and (tmp is None or str(tmp) not in names):
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(target))


def replace_dir(partial: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``partial`` to ``final`` (same file system), replacing an older ``final``.

    Readers see the old folder or the new one, never a mix: the old one is first renamed aside
    (``final.old-<pid>``), then ``partial`` is renamed into place, then the old one is deleted.
    An ``OSError`` from the second rename (another process put a ``final`` there first) propagates;
    the old folder then goes back in place if nothing took it, and is never left aside.
    """
    partial, final = Path(partial), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f"{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(partial, final)
    except OSError:
        if old is not None and not final.exists():
            os.replace(old, final)
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return final


_OS_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space, or choose an --out on another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space, or choose an --out on another disk"),
    errno.EROFS: ("the file system is read-only", "choose an --out on a writable disk"),
    errno.EACCES: ("permission denied", "choose a path you may write (or read), or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a path you may write (or read), or fix its permissions"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another path"),
    errno.EEXIST: ("it exists and is not a folder", "choose another path, or remove it"),
    errno.EISDIR: ("it is a folder", "give a file path"),
    errno.ENOENT: ("no such file or folder", "check the path"),
}


def describe_os_error(exc: OSError) -> str:
    """A one-line message for a file-system error: the path, the cause in words and what to do."""
    cause, advice = _OS_ERRORS.get(exc.errno or -1, (exc.strerror or type(exc).__name__, "check the path and the disk"))
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{cause} ({exc.strerror or exc}); {advice}"


def refuse_output_over_inputs(out: str | Path, inputs: Iterable[str | Path], *, option: str = "--out") -> None:
    """Refuse an output that is one of the inputs, or inside an input folder (nothing a command reads is overwritten).

    Raises:
        ConfigError: ``out`` is, or is inside, an input (the message names both).
    """
    from birdspec.errors import ConfigError

    target = Path(out).resolve()
    for raw in inputs:
        src = Path(raw).resolve()
        if target == src or (src.is_dir() and src in target.parents):
            where = "is" if target == src else "is inside"
            raise ConfigError(f"{option} {out} {where} the input {raw}; write the output somewhere else "
                              "(birdspec never overwrites what it reads)")


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", "audio"), (b"fLaC", "audio"), (b"OggS", "audio"), (b"ID3", "audio"), (b"\xff\xfb", "audio"),
    (b"\xff\xf3", "audio"), (b"\xff\xf2", "audio"), (b"FORM", "audio"),
    (b"PK\x03\x04", "zip"), (b"\x89PNG", "png"), (b"PAR1", "parquet"),
)
_KIND_WORDS = {"audio": "an audio recording", "zip": "a zip archive (a PyTorch checkpoint or model)",
               "png": "a PNG image", "parquet": "a Parquet table"}


def sniff_kind(path: str | Path) -> str | None:
    """What a file's first bytes say it is: 'audio', 'zip', 'png', 'parquet', or None (text, ONNX, unknown)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def refuse_replacing(out: str | Path, *, suffixes: Iterable[str], magic: str | None = None, overwrite: bool,
                     folder: bool = False, option: str = "--out") -> None:
    """Refuse to replace an existing file of another kind than the one a command writes there.

    A file output may replace a file with one of ``suffixes`` whose content sniffs as ``magic``
    (None: no known binary signature, e.g. CSV or ONNX); a folder output (``folder=True``) may
    only go where there is no file. Anything else needs ``overwrite``; a folder is never
    replaced by a file.

    Raises:
        ConfigError: the message names the path, what is there and what to do.
    """
    from birdspec.errors import ConfigError

    target = Path(out)
    if not target.exists():
        return
    if target.is_dir():
        if folder:
            return
        raise ConfigError(f"{option} {out} is a folder; give a file path")
    found = sniff_kind(target)
    same = not folder and target.suffix.lower() in {s.lower() for s in suffixes} and found == magic
    if same or overwrite:
        if folder:
            target.unlink()
        return
    what = _KIND_WORDS.get(found or "", f"a {target.suffix or 'suffix-less'} file")
    wants = "a folder" if folder else f"a {'/'.join(suffixes)} file"
    raise ConfigError(f"{option} {out} exists and is {what}, not {wants} this command writes; "
                      f"choose another {option}, or pass --overwrite to replace it")


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically; return ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(path: str | Path, df: Any, *, float_format: str | None = "%.6g", **kwargs: Any) -> Path:
    """Write a DataFrame as CSV atomically (``float_format=None`` keeps full precision)."""
    kwargs.setdefault("index", False)
    return write_with(path, lambda tmp: df.to_csv(tmp, float_format=float_format, **kwargs))


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically (paths and other objects as strings)."""
    return write_text(path, json.dumps(obj, indent=indent, default=str))


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG atomically."""
    return write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


LOCK_SUFFIX = ".lock"

try:  # POSIX; elsewhere locks are the JSON note only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


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
    try:
        yield held
    finally:
        try:
            now = os.stat(lock)
            if not held.keep_file and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
                lock.unlink()
        except OSError:
            pass
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
        os.ftruncate(held.fd, 0)
        os.pwrite(held.fd, json.dumps(me).encode("utf-8"), 0)
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


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing or corrupt (logged)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is corrupt; ignoring it", p)
        return None
