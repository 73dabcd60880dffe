"""Decoding for ``prepare``, on worker processes: one recording -> one float16 chunk file.

This module owns the decoded-chunk cache of a prepare run
(``OUT.partial/chunks/``): :func:`decode` turns one source file into
``<key>.f16`` (the store's exact bytes: little-endian float16, 32 kHz mono)
and ``<key>.json`` (``{"num_samples", "peak"[, "warning"]}`` or ``{"error", "kind"}``),
keyed by the file's identity (:func:`cache_key`), so a rerun after a crash
only decodes what is missing. Chunks are not flushed to the disk one by one
(that made prepare up to 5x slower on short recordings): the cache notes the
boot of the machine that wrote it, and chunks of another boot (a power cut may
have lost some of their content) are decoded again (:func:`keep_chunks_of_this_boot`). :func:`decode_all` runs it on a process pool
and survives a decoder that kills its worker. :class:`ChunkConcatenator`
then joins the kept chunks into ``waveforms.f16``. What is kept is decided
on the main side (:mod:`birdspec.data.prepare`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.data.store import STORE_DTYPE
from birdspec.errors import AudioError
from birdspec.fileio import WRITE_FAULTS, atomic_path, this_boot, write_text, writing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeTask:
    """One recording to decode into ``chunk_dir/<key>.f16`` (picklable, sent to a worker)."""

    path: str
    key: str
    chunk_dir: str
    max_duration_s: float | None
    sample_rate_hz: int
    offset_s: float = 0.0  # a window of the file (CSV manifests with start_s/end_s), else 0


def cache_key(path: str, *, max_duration_s: float | None, sample_rate_hz: int, offset_s: float = 0.0) -> str:
    """Identity of a decoded recording: file path, size, mtime, start (when not 0), crop and rate."""
    try:
        st = os.stat(path)
        ident = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        ident = "missing"
    text = f"{os.path.abspath(path)}\0{ident}\0{max_duration_s!r}\0{sample_rate_hz}" + (f"\0{offset_s!r}" if offset_s else "")
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def read_cached(chunk_dir: str, key: str) -> dict[str, Any] | None:
    """The result of an earlier :func:`decode` of ``key``, or None when it is not complete."""
    try:
        with open(os.path.join(chunk_dir, key + ".json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_result(chunk_dir: str, key: str, result: dict[str, Any]) -> None:
    """Write ``<key>.json`` atomically: its presence means the chunk is complete."""
    write_text(os.path.join(chunk_dir, key + ".json"), json.dumps(result), durable=this_boot() is None)


CACHE_BOOT_FILE = "boot.txt"
"""The boot that wrote a chunk folder (:func:`birdspec.fileio.this_boot`)."""


def keep_chunks_of_this_boot(chunk_dir: Path) -> None:
    """Drop the chunks of ``chunk_dir`` written by another boot of this machine (or another machine), which a
    power cut may have damaged, and note this boot as the folder's; nothing to do where chunks are flushed."""
    boot = this_boot()
    if boot is None:
        return
    note = chunk_dir / CACHE_BOOT_FILE
    try:
        noted = note.read_text(encoding="utf-8").strip()
    except OSError:
        noted = None
    if noted == boot:
        return
    stale = [p for p in chunk_dir.iterdir() if p.is_file() and p.name != CACHE_BOOT_FILE]
    if stale:
        log.info("%s: the decoded chunks were written before this machine restarted (or on another one); "
                 "decoding those recordings again", chunk_dir)
    for p in stale:
        p.unlink(missing_ok=True)
    write_text(note, boot)


def error_text(exc: BaseException, path: str) -> str:
    """A short, path-free message for skipped.csv (the row names the path already)."""
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    msg = msg.replace(f"{path}: ", "").replace(f"Error opening {path!r}: ", "")
    match = re.fullmatch(r"unreadable audio \((.*)\)", msg)
    if match:
        msg = match.group(1)
    return msg if isinstance(exc, AudioError) else f"{type(exc).__name__}: {msg}"


def decode(task: DecodeTask) -> dict[str, Any]:
    """Decode one recording into ``chunk_dir/<key>.f16`` (+ ``.json`` result).

    Returns ``{"num_samples", "peak"}`` (plus ``"warning"`` for a file that looks cut
    off: what decodes is kept) or ``{"error", "kind"}``; never raises for a bad file. The ``.json`` is written last, so its presence means the
    chunk is complete.
    """
    cached = read_cached(task.chunk_dir, task.key)
    if cached is not None:
        return cached
    result: dict[str, Any]
    if not os.path.exists(task.path):
        result = {"kind": "missing", "error": "no such file"}
    elif os.path.getsize(task.path) == 0:
        result = {"kind": "empty", "error": "0 bytes"}
    else:
        try:
            wave, header = load_audio(task)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
            msg = error_text(exc, task.path)
            kind = "empty" if msg.endswith("no audio frames") else "unreadable"
            result = {"kind": kind, "error": msg}
        else:
            chunk = os.path.join(task.chunk_dir, task.key + ".f16")
            peak = write_f16(wave, chunk) if wave.size else 0.0
            scaled = None
            if math.isfinite(peak) and peak > F16_MAX:  # rare: written again, scaled to full scale
                scaled, peak = fit_f16(wave, chunk, peak=peak)
            result = {"num_samples": int(wave.size), "peak": peak if math.isfinite(peak) else None}
            warning = "; ".join(w for w in (truncation_warning(task, wave.size, header), scaled) if w)
            if warning:
                result["warning"] = warning
    _write_result(task.chunk_dir, task.key, result)
    return result


_WRITE_BLOCK = 1 << 18
"""Samples converted to float16 and written at a time (stays in the CPU cache)."""

F16_MAX = float(np.finfo(STORE_DTYPE).max)
"""The largest magnitude the store holds (65504); larger samples would become infinite."""


def fit_f16(wave: np.ndarray, path: str, *, peak: float) -> tuple[str, float]:
    """Write ``wave`` (``(n,)`` float32, ``peak`` beyond :data:`F16_MAX`) to ``path`` scaled by a power of two
    to full scale (peak in (0.5, 1]), so no sample overflows the store; ``(the manifest's warning, new peak)``.

    A power of two scales exactly: the recording keeps its shape, only its level changes.
    """
    exponent = math.ceil(math.log2(peak))
    new_peak = write_f16(wave, path, scale=2.0 ** -exponent)
    return (f"scaled: samples reach {peak:.3g}, beyond the float16 store's range (+-{F16_MAX:g}); "
            f"the recording was scaled by 2^-{exponent} (peak now {new_peak:.3g})"), new_peak


def write_f16(wave: np.ndarray, path: str, *, scale: float = 1.0) -> float:
    """Write ``wave * scale`` (``(n,)`` float32) to ``path`` as little-endian float16; return its peak ``max |x|``.

    Converts block by block, so no float16 copy of the whole recording is made.
    The file appears under its name only when complete. A non-finite sample
    gives a NaN peak; a peak beyond :data:`F16_MAX` means samples were written as infinite
    (:func:`fit_f16` writes such a recording).
    """
    peak, finite = 0.0, True
    with atomic_path(path, durable=this_boot() is None) as tmp, open(tmp, "wb") as f:
        for start in range(0, wave.shape[0], _WRITE_BLOCK):
            block = wave[start : start + _WRITE_BLOCK]
            if scale != 1.0:
                block = block * np.float32(scale)
            hi, lo = float(block.max()), float(block.min())
            finite = finite and math.isfinite(hi) and math.isfinite(lo)
            peak = max(peak, hi, -lo)
            with np.errstate(over="ignore"):  # beyond F16_MAX: told by the peak, written again by fit_f16
                f.write(block.astype(STORE_DTYPE).data)
    return peak if finite else math.nan


def truncation_warning(task: DecodeTask, num_samples: int, header: Any = None) -> str | None:
    """:func:`birdspec.truncation.truncation` of a decoded task (None when the file looks whole); ``header``:
    the :class:`~birdspec.audio.AudioInfo` read while decoding."""
    from birdspec.truncation import truncation

    return truncation(task.path, decoded_s=num_samples / task.sample_rate_hz, max_duration_s=task.max_duration_s,
                      header=header)


def load_audio(task: DecodeTask) -> tuple[np.ndarray, Any]:
    """The decoded recording of ``task`` and its file's header: ``((n,) float32 at task.sample_rate_hz, AudioInfo)``."""
    from birdspec import audio

    return audio.load_with_header(task.path, sample_rate_hz=task.sample_rate_hz, offset_s=task.offset_s, duration_s=task.max_duration_s)


def decode_all(tasks: Sequence[DecodeTask], *, workers: int) -> Generator[dict[str, Any], None, None]:
    """Results of :func:`decode` for ``tasks``, in order, decoded on ``workers`` processes.

    A worker that dies (a decoder crash) is survived: the task at the head is
    retried alone, and reported as unreadable if it kills a worker again.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield decode(task)
        return
    pos = 0
    while pos < len(tasks):
        rest = tasks[pos:]
        chunksize = max(1, min(8, len(rest) // (workers * 8)))
        pool = ProcessPoolExecutor(max_workers=min(workers, len(rest)))
        try:
            for result in pool.map(decode, rest, chunksize=chunksize):
                yield result
                pos += 1
            return
        except BrokenProcessPool:
            log.warning("a decoding worker died at %s; retrying it alone", tasks[pos].path)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        yield decode_isolated(tasks[pos])
        pos += 1


def decode_isolated(task: DecodeTask) -> dict[str, Any]:
    """:func:`decode` on a process of its own; a crash there makes the file unreadable."""
    pool = ProcessPoolExecutor(max_workers=1)
    try:
        return pool.submit(decode, task).result()
    except BrokenProcessPool:
        result = {"kind": "unreadable", "error": "the decoder crashed on this file"}
        _write_result(task.chunk_dir, task.key, result)
        return result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class ChunkConcatenator:
    """Writes ``waveforms.f16`` by concatenating decoded chunk files.

    The chunks already hold the store's exact bytes (little-endian float16),
    so they are copied file to file by the kernel (``os.sendfile``) instead of
    being read into arrays and written back: the store's bytes, without the copies.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "wb", buffering=0)
        self.total_samples = 0

    def append_chunk(self, chunk_path: str, *, num_samples: int) -> tuple[int, int] | None:
        """Append a chunk of ``num_samples`` samples; ``(offset, num_samples)`` or None if it is not intact."""
        nbytes = num_samples * STORE_DTYPE.itemsize
        try:
            if os.path.getsize(chunk_path) != nbytes:
                return None
            with open(chunk_path, "rb", buffering=0) as src:
                copy_file(src, self._f, nbytes)
        except OSError as exc:
            self._f.truncate(self.total_samples * STORE_DTYPE.itemsize)
            self._f.seek(0, os.SEEK_END)
            if exc.errno in WRITE_FAULTS:  # the store cannot be written: no recording is usable, say why
                if exc.filename is None:  # a failed write names no file: name the store
                    raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
                raise
            return None  # this chunk is damaged: the recording is skipped
        offset = self.total_samples
        self.total_samples += num_samples
        return offset, num_samples

    def close(self, *, sync: bool = True) -> None:
        """Close the store, flushed to the disk with ``sync`` (it is published with its folder, not by
        :func:`~birdspec.fileio.atomic_path`)."""
        if self._f.closed:
            return
        try:
            if sync:
                with writing(self.path):
                    os.fsync(self._f.fileno())
        finally:
            self._f.close()

    def __enter__(self) -> ChunkConcatenator:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(sync=exc_type is None)


def copy_file(src: Any, dst: Any, nbytes: int) -> None:
    """Copy ``nbytes`` from the start of ``src`` to the end of ``dst`` (both unbuffered)."""
    sent = 0
    if hasattr(os, "sendfile"):
        try:
            while sent < nbytes:
                n = os.sendfile(dst.fileno(), src.fileno(), sent, nbytes - sent)
                if n == 0:
                    raise OSError(f"{src.name}: shorter than expected")
                sent += n
            return
        except OSError as exc:  # no file-to-file sendfile here: copy in user space
            if sent or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
    src.seek(0)
    shutil.copyfileobj(src, dst, length=1 << 22)
