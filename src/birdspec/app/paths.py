"""What the app may read and write: the folders given on the command line, and nothing else.

Every file the browser names is a *reference* ``"<root>/<relative path>"``: ``<root>`` is the key of
one served folder (:class:`Roots`), the rest a relative POSIX path inside it. :meth:`Roots.resolve`
refuses absolute paths, ``..`` parts, and anything whose real path (symlinks followed) leaves its
folder, so a page can never read a file the command line did not offer; a path no file can have
(a NUL byte) is a bad request (:class:`BadPath`, HTTP 400), never a server error.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from birdspec.errors import BirdspecError
from birdspec.fileio import safe_name

log = logging.getLogger(__name__)

MAX_LISTED = 5000
"""Most files one listing returns (a page with more would be unusable anyway)."""


class PathRefused(BirdspecError):
    """A path outside the served folders (traversal, absolute, symlink out) or an unknown folder."""


class BadPath(BirdspecError):
    """A path no file can have (a NUL byte): a bad request, not a refusal."""


class NotFound(BirdspecError):
    """A file, checkpoint, prediction or job the page names does not exist."""


class UploadTooLarge(BirdspecError):
    """An upload over the size limit."""


@dataclass(frozen=True)
class ServeConfig:
    """The settings of ``birdspec serve``.

    Attributes:
        runs_dir: run folders (checkpoints to predict with; where training from verified writes).
        recording_dirs: folders of recordings the pages may open.
        work_dir: where the app writes: uploads, predictions (with their verdicts), exports, datasets.
        host / port: where the server listens.
        max_upload_mb: the largest upload accepted.
        tile_cache_mb: memory for rendered spectrogram tiles.
        species_list: a file of species an "other species" verdict may name besides the model's classes
            (:mod:`birdspec.app.species_list`); None: the model's classes only.
        index_dirs: embedding indexes (``birdspec index``) "find similar" searches, or folders of them
            (:mod:`birdspec.app.similar`); their archives are served to read, not listed.
    """

    runs_dir: Path
    recording_dirs: tuple[Path, ...] = ()
    work_dir: Path = Path("birdspec-serve")
    host: str = "127.0.0.1"
    port: int = 8765
    max_upload_mb: float = 512.0
    tile_cache_mb: float = 256.0
    species_list: Path | None = None
    index_dirs: tuple[Path, ...] = ()

    @property
    def uploads_dir(self) -> Path:
        return self.work_dir / "uploads"

    @property
    def predictions_dir(self) -> Path:
        return self.work_dir / "predictions"

    @property
    def exports_dir(self) -> Path:
        return self.work_dir / "exports"

    @property
    def datasets_dir(self) -> Path:
        return self.work_dir / "datasets"

    @property
    def jobs_file(self) -> Path:
        """The job journal: the page's jobs outlive a restart of the server."""
        return self.work_dir / "jobs.json"


def _key(name: str, taken: set[str]) -> str:
    base = safe_name(name) or "folder"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    taken.add(key)
    return key


class Roots:
    """The served folders by key: ``runs``, ``uploads``, ``predictions`` and one per recordings folder."""

    def __init__(self, config: ServeConfig) -> None:
        taken = {"runs", "uploads", "predictions", "exports"}
        self.folders: dict[str, Path] = {
            "runs": config.runs_dir.resolve(),
            "uploads": config.uploads_dir.resolve(),
            "predictions": config.predictions_dir.resolve(),
            "exports": config.exports_dir.resolve(),
        }
        self.recording_keys: list[str] = []
        for d in config.recording_dirs:
            key = _key(Path(d).resolve().name, taken)
            self.folders[key] = Path(d).resolve()
            self.recording_keys.append(key)
        self._taken = taken

    def add_folder(self, folder: Path, name: str) -> str:
        """Serve ``folder`` (to read, not listed: an index's archive) under a new key made from ``name``; its key.
        A folder served already keeps its key."""
        real = Path(folder).resolve()
        for key, root in self.folders.items():
            if root == real:
                return key
        key = _key(name, self._taken)
        self.folders[key] = real
        return key

    def resolve(self, ref: str, *, must_exist: bool = True) -> Path:
        """The file ``ref`` names.

        Raises:
            BadPath: ``ref`` holds a NUL byte (the operating system refuses such names).
            PathRefused: an unknown folder key, an absolute path, a ``..`` part, or a real path
                (symlinks followed) outside the folder.
            NotFound: ``must_exist`` and there is no such file.
        """
        text = str(ref or "").replace("\\", "/")
        if "\0" in text:
            raise BadPath(f"{ref!r}: a path cannot hold a NUL byte (\\x00); name a file inside one of the served folders")
        if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
            raise PathRefused(f"{ref!r}: give a path inside one of the served folders (<folder>/<file>), not an absolute path")
        parts = PurePosixPath(text).parts
        if any(p in ("..", ".") for p in parts) or len(parts) < 1:
            raise PathRefused(f"{ref!r}: '..' and '.' are not allowed in paths; name a file inside a served folder")
        root = self.folders.get(parts[0])
        if root is None:
            raise PathRefused(f"{ref!r}: {parts[0]!r} is not a served folder; the served folders are {', '.join(self.folders)}")
        path = root.joinpath(*parts[1:]).resolve()
        if path != root and root not in path.parents:
            raise PathRefused(f"{ref!r} leads outside its served folder (a symlink?); only files inside {root} are served")
        if must_exist and not path.exists():
            raise NotFound(f"{ref}: no such file in the served folders")
        return path

    def ref(self, path: str | Path) -> str | None:
        """The reference of a real path inside a served folder, or None."""
        p = Path(path).resolve()
        for key, root in self.folders.items():
            if p == root or root in p.parents:
                return "/".join([key, *p.relative_to(root).parts])
        return None

    def list_files(self, key: str, suffixes: tuple[str, ...]) -> list[str]:
        """References of the files ending in ``suffixes`` under folder ``key`` (symlinks out are left out)."""
        root = self.folders[key]
        suffixes = tuple(s.lower() for s in suffixes)  # any case: .WAV, .Table.1.selections.txt
        out: list[str] = []
        if not root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not name.lower().endswith(suffixes):
                    continue
                p = Path(dirpath) / name
                real = p.resolve()
                if real != root and root not in real.parents:
                    continue
                out.append("/".join([key, *p.relative_to(root).parts]))
                if len(out) >= MAX_LISTED:
                    log.warning("%s: more than %d files; listing the first", root, MAX_LISTED)
                    return out
        return out
