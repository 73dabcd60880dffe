"""The small results of a long benchmark, kept in the repository so that a run spanning several sessions
(each in a fresh checkout, where the git-ignored ``bench-out/`` is gone) continues where it stopped.

A benchmark's work folder holds checkpoints, logs and prepared data (large, rebuilt on demand); the files
a resumed run and its report need are small. :func:`save` copies them into a kept folder under
``benchmarks/results/`` (CSV files gzip-compressed), :func:`restore` copies back the ones the work folder
lacks. Files already in the work folder always win: restoring never overwrites a result.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path

from birdspec.fileio import write_with

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COMPRESSED = (".csv",)


def _kept_name(rel: Path) -> Path:
    return rel.with_name(rel.name + ".gz") if rel.suffix in COMPRESSED else rel


def _work_name(rel: Path) -> Path:
    return rel.with_name(rel.name[: -len(".gz")]) if rel.name.endswith(".gz") else rel


def _write(path: Path, data: bytes) -> None:
    write_with(path, lambda tmp: tmp.write_bytes(data))  # atomic, parent folders made


def save(work: Path, kept: Path, files: Iterable[Path]) -> int:
    """Copy ``files`` (paths inside ``work``) to the same places under ``kept``; returns how many changed.

    A file whose kept copy already holds the same bytes is left alone, so calling this after every step
    of a run costs a few reads.
    """
    changed = 0
    for path in files:
        rel = Path(path).resolve().relative_to(Path(work).resolve())
        changed += store(Path(kept) / rel, Path(path).read_bytes())
    return changed


def store(dest: Path, data: bytes) -> bool:
    """Keep ``data`` as ``dest`` (a kept path as in the work folder; CSV compressed); False if already so."""
    dest = _kept_name(Path(dest))
    packed = dest.suffix == ".gz"
    if dest.is_file() and (gzip.decompress(dest.read_bytes()) if packed else dest.read_bytes()) == data:
        return False
    _write(dest, gzip.compress(data, mtime=0) if packed else data)
    return True


def restore(kept: Path, work: Path, *, edit: Callable[[Path, bytes], bytes] | None = None) -> list[Path]:
    """Copy every kept file that ``work`` lacks back into it (decompressed); returns the paths written.

    ``edit(work_path, data)``, when given, returns what to write instead of ``data`` (e.g. a path made
    relative when kept, made absolute again for this work folder).
    """
    written = []
    if not Path(kept).is_dir():
        return written
    for src in sorted(p for p in Path(kept).rglob("*") if p.is_file()):
        rel = _work_name(src.relative_to(kept))
        dest = Path(work) / rel
        if dest.exists():
            continue
        data = src.read_bytes()
        data = gzip.decompress(data) if src.name.endswith(".gz") else data
        _write(dest, data if edit is None else edit(dest, data))
        written.append(dest)
    return written
