"""What the benchmarks share, defined once: the machine description, the memory measurements, the reed-warbler
protocol's data preparation and the logging setup.

Memory, three kinds (each answers a different question; a script says which one it reports):

- :class:`TreeMemory`: the RSS **summed over a process tree** (a command and everything it starts), sampled
  every 20 ms on a thread (a peak shorter than that can be missed); also each process's own peak and the
  summed anonymous memory (``RssAnon``: file pages mapped by several processes counted once per process
  left out). Reads ``/proc`` (Linux), needs nothing installed.
- :func:`run_command`: a whole command from process start to exit, with the kernel's peak RSS of its
  **largest single process** (``wait4``'s ``ru_maxrss``, what ``/usr/bin/time`` reports; children are
  not summed) and its CPU time, plus the sampled tree peak above. It runs the command under
  ``/usr/bin/time`` when present, so that nothing of this driver is counted: Linux carries a parent's
  peak RSS into a child's ``ru_maxrss`` across ``exec``, and ``time`` is tiny.
- :func:`own_peak_mb`: the calling process's own peak since its ``exec`` (``VmHWM``), for a measured
  child that reports its own figure.

Only the standard library is imported at module level: predict_speed.py's measured child processes import
this module (their peak memory is the measurement) and so does its BirdNET child, which may run in another
interpreter without birdspec. The reed-warbler functions import pandas, scikit-learn and birdspec when called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
"""The shared data folder beside the repository (../shared/data)."""
DEFAULT_DATA = SHARED_DATA / "xc-reed-warblers"
"""The reed warblers (98 recordings, 4 species, BirdCLEF 2021 layout): the data of the accuracy protocol."""
GNU_TIME = Path("/usr/bin/time")

# --------------------------------------------------------------------------- the machine


def describe_machine(ran_on: str | None = None) -> str:
    """The machine, in one line: the ``machine`` of a result file, the ``Machine:`` line of a table.

    ``ran_on`` (what the run used, e.g. ``CPU (2 threads)`` or the GPU's name) comes first when given,
    then: the CPU model, the cores this process may use (affinity) of all and the container's CPU quota
    if any, RAM (the container's limit when lower than the host's), the NVIDIA GPUs (``nvidia-smi``),
    Python, torch and birdspec versions. Imports neither torch nor birdspec (their versions come from the
    installed packages' metadata), so a timing driver stays small.
    """
    import platform

    parts = [_cpu_model(), _cores(), _ram(), _gpus(), f"Python {platform.python_version()}",
             f"torch {_version('torch')}", f"birdspec {_version('birdspec')}"]
    text = ", ".join(p for p in parts if p)
    return f"{ran_on}; {text}" if ran_on else text


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def _cores() -> str:
    total = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    text = f"{usable} of {total} cores usable"
    quota = _read("/sys/fs/cgroup/cpu.max").split()  # cgroup v2: "max 100000" or "200000 100000"
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]):
        text += f" (CPU quota {int(quota[0]) / int(quota[1]):g})"
    return text


def _ram() -> str:
    total_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal:")), 0)
    if not total_kb and hasattr(os, "sysconf"):
        try:
            total_kb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        except (ValueError, OSError):
            total_kb = 0
    if not total_kb:
        return ""
    limit = (_read("/sys/fs/cgroup/memory.max") or _read("/sys/fs/cgroup/memory/memory.limit_in_bytes")).strip()
    gib = total_kb / 2**20
    if limit.isdigit() and int(limit) // 1024 < total_kb:
        return f"{int(limit) / 2**30:.1f} GiB RAM (container limit; host {gib:.1f} GiB)"
    return f"{gib:.1f} GiB RAM"


def _gpus() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "no NVIDIA GPU"
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []
    if not names:
        return "no NVIDIA GPU"
    return ("GPU " if len(names) == 1 else f"{len(names)} GPUs ") + " + ".join(names)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- memory


def own_peak_mb() -> float:
    """This process's peak resident memory since its ``exec`` (``VmHWM``), MB.

    Not ``ru_maxrss``: Linux carries the parent's RSS at fork time into the child's ``ru_maxrss``
    across ``exec``, so a parent that imported PyTorch would inflate every child's figure.
    """
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tree_memory_kb(root: int) -> dict[int, tuple[int, int]]:
    """``pid -> (VmRSS kB, RssAnon kB)`` of ``root`` and all its descendants, from one pass over ``/proc``
    (empty once they have exited)."""
    children: dict[int, list[int]] = {}
    memory: dict[int, tuple[int, int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "status").read_text()
        except OSError:
            continue
        ppid = rss = anon = 0
        for line in text.splitlines():
            if line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
        children.setdefault(ppid, []).append(int(d.name))
        memory[int(d.name)] = (rss, anon)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in memory:
            tree[pid] = memory[pid]
        todo.extend(children.get(pid, []))
    return tree


class TreeMemory:
    """Peak memory of a process tree (``pid`` and all its descendants), sampled every ``interval_s`` on a
    thread while in the ``with`` block.

    ``rss_kb``: the peak of the summed VmRSS (a page mapped by several processes counts once per process);
    ``anon_kb``: the peak of the summed RssAnon (the file pages that several processes map, e.g. data-loader
    workers mapping the same prepared waveforms, left out); ``per_pid_kb``: each process's own peak VmRSS.
    """

    def __init__(self, pid: int, *, interval_s: float = 0.02) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.rss_kb, self.anon_kb = 0, 0
        self.per_pid_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            tree = tree_memory_kb(self.pid)
            self.rss_kb = max(self.rss_kb, sum(rss for rss, _ in tree.values()))
            self.anon_kb = max(self.anon_kb, sum(anon for _, anon in tree.values()))
            for pid, (rss, _) in tree.items():
                self.per_pid_kb[pid] = max(self.per_pid_kb.get(pid, 0), rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_command(cmd: list[str], env: dict | None = None, *, merge_output: bool = True,
                interval_s: float | None = 0.02) -> dict:
    """Run ``cmd`` from process start to exit and measure it (see the module docstring).

    Returns ``rc``, ``wall_s``, ``peak_mb_tree`` (:class:`TreeMemory`'s summed VmRSS every ``interval_s``;
    absent when ``interval_s`` is None: no sampling thread beside the command), ``peak_mb_wait4`` and
    ``cpu_s`` (user + system seconds of the command and the children it waited for; both absent when
    ``/usr/bin/time`` printed nothing readable), ``output`` (stdout, with stderr when ``merge_output``) and
    ``stderr`` (else). Without ``/usr/bin/time`` the command runs directly and ``wait4`` of it gives the figures;
    its peak is then at least this driver's own peak (inherited across ``exec``).
    """
    report = None
    full = list(cmd)
    if GNU_TIME.exists():
        fd, report = tempfile.mkstemp(prefix="birdspec-time-", suffix=".txt")
        os.close(fd)
        full = [str(GNU_TIME), "-o", report, "-f", "%M %U %S", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_output else subprocess.PIPE)
    memory = TreeMemory(proc.pid, interval_s=interval_s) if interval_s else None
    with memory if memory is not None else contextlib.nullcontext():
        out, err = _drain(proc)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    res = {"rc": proc.returncode, "wall_s": wall}
    if memory is not None:
        res["peak_mb_tree"] = memory.rss_kb / 1024
    if report is None:
        res.update(peak_mb_wait4=usage.ru_maxrss / 1024, cpu_s=usage.ru_utime + usage.ru_stime)
    else:
        fields = Path(report).read_text().split()
        os.unlink(report)
        if len(fields) >= 3 and fields[-3].isdigit():
            res.update(peak_mb_wait4=int(fields[-3]) / 1024, cpu_s=float(fields[-2]) + float(fields[-1]))
    res["output"] = out.decode(errors="replace")
    if not merge_output:
        res["stderr"] = err.decode(errors="replace")
    return res


def _drain(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    """Read the child's stdout and stderr pipes to their end without reaping it (``wait4`` does, after)."""
    err: list[bytes] = []
    reader = None
    if proc.stderr is not None:
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
        reader.start()
    out = proc.stdout.read() if proc.stdout is not None else b""
    if reader is not None:
        reader.join()
    return out, b"".join(err)


# --------------------------------------------------------------------------- logging


def setup_logging() -> None:
    """A benchmark's log: birdspec's INFO messages as plain lines on stderr, Lightning's warnings only."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


# --------------------------------------------------------------------------- the reed-warbler protocol


def reference_folds(root: Path, *, n_splits: int = 5, seed: int = 0) -> dict[str, int]:
    """filename -> fold, exactly the benchmark protocol, from train_metadata.csv alone."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    meta = pd.read_csv(root / "train_metadata.csv").sort_values("filename", kind="mergesort").reset_index(drop=True)
    folds: dict[str, int] = {}
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(meta)), meta["primary_label"])):
        folds.update({str(f): k for f in meta["filename"].iloc[test]})
    return folds


def encoding_dir(out: Path, encoding: str) -> Path:
    """Where :func:`prepare_encoding` puts the prepared dataset of ``encoding``."""
    return out / f"data-{encoding}"


def prepare_encoding(root: Path, out: Path, encoding: str) -> Path:
    """``birdspec prepare`` of ``root`` with ``encoding`` (tile policy, 5 folds, seed 0) into
    :func:`encoding_dir`; exits when the folds differ from :func:`reference_folds` or files were skipped."""
    import pandas as pd

    from birdspec.config import EncodingConfig
    from birdspec.data.prepare import prepare

    enc = EncodingConfig(name=encoding, short_policy="tile")
    ds = prepare(root, encoding_dir(out, encoding), encoding=enc, folds=5, seed=0, progress=False)
    manifest = pd.read_csv(ds / "manifest.csv", dtype={"filename": str})
    ref = reference_folds(root)
    got = dict(zip(manifest["filename"], manifest["fold"], strict=True))
    if any(ref[f] != got[f] for f in got) or len(got) != len(ref):
        raise SystemExit(f"fold assignment of {ds} differs from the protocol (or files were skipped)")
    return ds


def start_run(data: str, out_dir: str, device: str) -> tuple[Path, Path, str, str]:
    """Logging, the data check and the device of a benchmark run: ``(root, out, device, machine)``.

    ``machine`` is :func:`describe_machine` after what the run trains on (``CPU (N threads)`` or the GPU's name).
    """
    setup_logging()
    root, out = Path(data), Path(out_dir)
    if not (root / "train_metadata.csv").is_file():
        raise SystemExit(f"{root}: no train_metadata.csv (give a BirdCLEF-2021-format folder)")
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ran_on = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return root, out, device, describe_machine(ran_on)


if __name__ == "__main__":  # python -m benchmarks.common: the line the results would carry
    print(describe_machine())
