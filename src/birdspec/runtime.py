"""Process-wide runtime choices: fast CPU math, malloc arenas and the device to run on.

Flushing denormal floats to zero matters a lot here: the backward pass of the
small CNNs produces denormals, which the CPU handles in microcode, and a
MobileNetV2 training step then takes 4-10x longer, erratically (measured on
a 2-core x86 machine: 0.4-0.55 s instead of 1-4.6 s per batch of 16 windows).

This module imports PyTorch only when it has to, so the ONNX prediction path
can resolve its device without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from birdspec.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Where training and evaluation may run (auto: cuda > mps > cpu)."""
PREDICT_DEVICES = ("auto", "cpu", "cuda")
"""Where prediction may run (no MPS path)."""


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity: a container or ``taskset`` limits it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def use_passive_openmp_wait() -> bool:
    """Let PyTorch's idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).

    With spinning threads, two PyTorch processes on the same cores take each other's time slices to
    wait in: measured on 2 cores, a training beside another one ran at a fraction of half its solo speed
    (benchmarks/concurrency.py). The OpenMP runtime reads the policy once, when PyTorch is first
    imported, so this is called by the CLI before anything imports it; a policy the user set is kept.

    Returns:
        Whether the policy is PASSIVE now in the environment (False when PyTorch was already imported
        or the user chose another policy).
    """
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def set_cpu_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for PyTorch's operators in this process (None: leave PyTorch's default).

    Raises:
        ConfigError: ``threads`` below 1.
    """
    if threads is None:
        return
    if int(threads) < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(int(threads))


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """PyTorch uses ``threads`` CPU threads inside the block and the count it had before after it (None or 0:
    leave it as is). Float sums differ with the count, so code that sets it for a while gives it back.

    Raises:
        ConfigError: ``threads`` below 0.
    """
    if threads is None or int(threads) == 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    set_cpu_threads(threads)  # checks it
    try:
        yield
    finally:
        torch.set_num_threads(before)


def use_fast_cpu_math() -> None:
    """Flush denormals to zero on the CPU (no effect on results beyond ~1e-38)."""
    import torch

    torch.set_flush_denormal(True)


_MALLOC_LIMITED = False


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for a process that decodes on one thread and frees on another.

    Prediction decodes blocks on a background thread and frees them on the main thread; with
    glibc's default (8 arenas per core) the freed memory stays spread over per-thread arenas and
    the resident size grows with every file: measured +30 MB per hour of audio over a folder of
    recordings (770 MB after 20 h), flat at ~230 MB with two arenas, for the same speed. No effect
    off glibc (macOS, musl) or when ``MALLOC_ARENA_MAX`` is set by the user.
    """
    global _MALLOC_LIMITED
    if _MALLOC_LIMITED or not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    _MALLOC_LIMITED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, int(arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def restore_dynamic_mmap_threshold() -> None:
    """Give glibc back the large-block behaviour its dynamic mmap threshold would have reached.

    Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``; setting any malloc
    threshold switches glibc's dynamic mmap threshold off, so every decoded audio block above 128 kB
    is mapped, page-faulted and unmapped again: measured 2.4 M page faults instead of 0.18 M and 30 %
    more wall time for the same recordings on 2 cores. This sets fixed thresholds above those blocks
    (mmap above 4 MB, trim above 8 MB): the page faults and nearly the wall time of a ``--jobs``
    worker again, for a worker peak of 380 MB instead of ~290 MB over 20 h of audio (32/64 MB
    thresholds were at most 4 % faster and peaked at 490 MB). No effect off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 8 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def cuda_available() -> bool:
    """Whether CUDA can be used, without importing PyTorch on machines with no NVIDIA driver."""
    if "torch" not in sys.modules and not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
        return False
    import torch

    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    """Whether Apple's MPS backend can be used (never on Linux; no PyTorch import there)."""
    if sys.platform != "darwin":
        return False
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(device: str | None, *, allowed: Sequence[str] = DEVICES) -> str:
    """The device to run on, as a string: 'auto' (or None) -> cuda > mps > cpu.

    An explicit device must be in ``allowed`` (``cuda:N`` counts as cuda) and available.

    Raises:
        ConfigError: an unknown or unavailable device.
    """
    name = (device or "auto").lower()
    kind = name.split(":", 1)[0]
    if kind not in allowed:
        raise ConfigError(f"unknown device {device!r}; use one of {', '.join(allowed)}")
    if name == "auto":
        if cuda_available():
            return "cuda"
        return "mps" if "mps" in allowed and mps_available() else "cpu"
    if kind == "cuda" and not cuda_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible to PyTorch here; use --device cpu (or auto)")
    if kind == "mps" and not mps_available():
        raise ConfigError("--device mps: Apple's MPS backend is not available here; use --device cpu (or auto)")
    return name
