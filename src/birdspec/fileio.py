"""Writing files so that readers never see half of one: the one atomic-write helper, and JSON.

A folder built in a work folder beside its target is moved into place whole by :func:`replace_dir`.

Every file birdspec writes (checkpoints, CSV tables, JSON state, figures,
reports) goes through :func:`atomic_path`: the content is written to a
temporary file in the same folder (named after the target, the process and
a counter, so concurrent writers never share one), then renamed over the
target in one step. An interrupt or an error leaves the old file (or no
file) in place, never a truncated one, and removes the temporary file.
The temporary file is flushed to the disk (``fsync``) before the rename and
its folder after it, so this holds after a power cut too, not only for a
killed process. The caches of resumable runs written one file per recording
(``prepare``'s decoded chunks, a folder ``predict``'s parts) skip the flush
(``durable=False``: a flush per file made those runs 2-5x slower on short
recordings) and check instead what a past boot of the machine wrote before
reusing it (:func:`this_boot`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

# owned by birdspec.locks; re-exported (many import them from here)
from birdspec.locks import LOCK_SUFFIX as LOCK_SUFFIX
from birdspec.locks import locks_output as locks_output
from birdspec.locks import output_lock as output_lock

log = logging.getLogger(__name__)

_COUNTER = itertools.count()


_UNSAFE = re.compile(r"[^\w.-]+")


def safe_name(text: str) -> str:
    """``text`` as a file or folder name: every run of characters other than letters, digits, ``_``, ``.``
    and ``-`` becomes one ``_`` (the one rule for names made from labels, stems and user input).

    >>> safe_name("Blyth's reed warbler (small-data)")
    'Blyth_s_reed_warbler_small-data_'
    """
    return _UNSAFE.sub("_", str(text))


def temp_path_for(target: Path) -> Path:
    """A private temporary name beside ``target`` (``name.tmp-<pid>-<n>.suffix``) to write before a rename."""
    return target.with_name(f"{target.stem}.tmp-{os.getpid()}-{next(_COUNTER)}{target.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, mkdir: bool = True, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary name keeps the target's suffix (``name.tmp-<pid>-<n>.png``), so
    writers that pick a format from the suffix (matplotlib, pandas) still do.
    On an exception the temporary file is removed and ``path`` is left as it was.
    ``durable`` (the default) flushes the file before the rename and its folder after it;
    only caches that check what another boot wrote pass False (see the module doc).
    """
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        with writing(target, tmp):
            yield tmp
            if durable:
                fsync_path(tmp)
            os.replace(tmp, target)
            if durable:
                fsync_path(target.parent, folder=True)
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:  # pragma: no cover - best effort
                log.debug("could not remove %s", tmp)


WRITE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
"""Errors of a file being written (a full or failing disk), as opposed to one being read."""


@contextlib.contextmanager
def writing(target: str | Path, tmp: str | Path | None = None) -> Iterator[None]:
    """Make the ``OSError`` of a block that writes ``target`` (through the temporary file ``tmp``) name ``target``.

    An error that names no file (a failed ``write()``: a full disk) or the temporary file (as the source or
    destination of a copy) is raised again naming ``target``, so the one-line message of
    :func:`describe_os_error` says which output could not be written; any other error passes unchanged.
    """
    try:
        yield
    except OSError as exc:
        names = {str(n) for n in (exc.filename, exc.filename2) if n is not None}
        unnamed = exc.filename is None and exc.errno in WRITE_FAULTS
        if not unnamed and (tmp is None or str(tmp) not in names):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc


def fsync_path(path: str | Path, *, folder: bool = False) -> None:
    """Flush the file (or the entries of the folder) ``path`` to the disk.

    A folder on a file system that cannot flush folders is left as it is; a file's failure (a full disk
    found only now, an I/O error) raises ``OSError``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0))
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if not folder or exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def this_boot() -> str | None:
    """``"<host>/<boot id>"``: this machine since it last started (Linux), or None where that is unknown.

    A file written with ``durable=False`` may lose what it holds in a power cut, but not while the
    machine runs: a cache notes the boot that wrote it and checks (or redoes) what another boot or
    another machine wrote. Where this is None, caches are written durable.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}" if boot else None


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
    fsync_path(final.parent, folder=True)
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


def write_with(path: str | Path, writer: Callable[[Path], Any], *, durable: bool = True) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically (:func:`atomic_path`); return ``path``."""
    with atomic_path(path, durable=durable) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | Path, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=durable)


def write_csv(path: str | Path, df: Any, *, float_format: str | None = "%.6g", **kwargs: Any) -> Path:
    """Write a DataFrame as CSV atomically (``float_format=None`` keeps full precision)."""
    kwargs.setdefault("index", False)
    return write_with(path, lambda tmp: df.to_csv(tmp, float_format=float_format, **kwargs))


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, durable: bool = True) -> Path:
    """Write ``obj`` as JSON atomically (paths and other objects as strings)."""
    return write_text(path, json.dumps(obj, indent=indent, default=str), durable=durable)


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG atomically."""
    return write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing or corrupt (logged)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is corrupt; ignoring it", p)
        return None
