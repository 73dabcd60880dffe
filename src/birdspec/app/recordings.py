"""What the app knows of a recording: its header, and how much of it decodes.

A cut-off file (an interrupted copy, a card pulled while writing) declares more audio than it holds:
libsndfile decodes up to the damage and then refuses to seek past it ("cannot seek to 5.37 s"). ``birdspec
predict`` scores the part that decodes and says so (:func:`birdspec.truncation.truncation`); the app does the
same everywhere (upload, Analyze, tiles, clips): :func:`probe` checks that the start decodes and seeks near the
declared end; when that seek fails, it decodes the file once, as predict does, to learn how much of it
decodes. The answer is kept per file (path, size and modification time), so the decoding is paid once.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from birdspec.errors import AudioError

log = logging.getLogger(__name__)

_PROBED: dict[tuple[str, int, int], Recording] = {}
_GUARD = threading.Lock()
MAX_PROBED = 1000


@dataclass(frozen=True)
class Recording:
    """A recording as the app uses it.

    Attributes:
        path: the file.
        duration_s: the seconds that decode (the declared length for an intact file).
        declared_s: the seconds its header declares.
        sample_rate_hz / channels: from the header.
        warning: why it looks cut off (the note ``birdspec predict`` prints), or None.
    """

    path: str
    duration_s: float
    declared_s: float
    sample_rate_hz: int
    channels: int
    warning: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"duration_s": self.duration_s, "declared_s": self.declared_s, "sample_rate_hz": self.sample_rate_hz,
                "channels": self.channels, "warning": self.warning}


def _decoded_s(path: Path) -> float:
    """Seconds of ``path`` that decode from its start (what ``birdspec predict`` scores)."""
    from birdspec import audio
    from birdspec.config import SAMPLE_RATE_HZ

    samples = sum(block.size for block in audio.iter_blocks(path, sample_rate_hz=SAMPLE_RATE_HZ, block_s=60.0))
    return samples / SAMPLE_RATE_HZ


def _probe(path: Path) -> Recording:
    from birdspec import audio
    from birdspec.truncation import truncation

    info = audio.info(path)
    if info.num_frames <= 0:
        raise AudioError(f"{path.name}: no audio frames")
    audio.load(path, duration_s=min(1.0, info.duration_s))  # a file whose start does not decode is refused
    declared = info.duration_s
    try:
        audio.load(path, offset_s=max(0.0, declared - 1.0))
        decoded = declared
    except AudioError as exc:  # cut off: what decodes, as predict reads it
        log.info("%s: %s; decoding it to learn how much decodes", path.name, exc)
        decoded = _decoded_s(path)
        if decoded <= 0:
            raise AudioError(f"{path.name}: no audio decodes ({exc})") from None
    note = truncation(path, decoded_s=decoded, header=info)
    if note is None and decoded < declared - 0.05:
        note = f"truncated: decoded {decoded:.2f} s of the {declared:.2f} s its header declares"
    return Recording(str(path), duration_s=decoded, declared_s=declared, sample_rate_hz=info.sample_rate_hz,
                     channels=info.channels, warning=note)


def probe(path: str | Path) -> Recording:
    """The :class:`Recording` of ``path`` (cached while the file is unchanged).

    Raises:
        AudioError: the file cannot be read, holds no frames, or its start does not decode.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise AudioError(f"{p}: cannot read the recording ({exc.strerror or exc})") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _GUARD:
        found = _PROBED.get(key)
    if found is not None:
        return found
    rec = _probe(p)
    with _GUARD:
        if len(_PROBED) >= MAX_PROBED:
            _PROBED.clear()
        _PROBED[key] = rec
    return rec
