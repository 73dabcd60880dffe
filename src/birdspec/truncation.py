"""Whether a decoded recording is cut off: what decoded against what the file declares.

libsndfile decodes what it can of a damaged file without an error (a WAV whose data chunk runs past
the end is clipped silently, an Ogg stream cut mid-page ends early); prepare and predict keep what
decodes and report it with :func:`truncation`'s note.
"""

from __future__ import annotations

import struct
from pathlib import Path

from birdspec.audio import AudioInfo, info
from birdspec.errors import AudioError


def truncation(path: str | Path, *, decoded_s: float, max_duration_s: float | None = None,
               header: AudioInfo | None = None) -> str | None:
    """Why a recording looks cut off, or None: a note for reports, with the decoded length.

    Compares the ``decoded_s`` seconds that :func:`~birdspec.audio.load` returned with what the file declares:
    the header's length (FLAC, MP3 with a VBR header), the RIFF data size (WAV, which
    libsndfile silently clips to the file) and the end-of-stream flag of the last Ogg page (an
    Ogg file cut off mid-stream has none). Audio past ``max_duration_s`` is not asked for, so
    a file decoded up to that crop is never reported. ``header``: the file's :func:`~birdspec.audio.info`
    when the caller has it (:func:`~birdspec.audio.load_with_header`), so the file is not opened again.
    """
    if max_duration_s is not None and decoded_s >= max_duration_s - 0.01:
        return None
    if header is None:
        try:
            header = info(path)
        except AudioError:
            return None
    sr, header_frames, fmt = header.sample_rate_hz, header.num_frames, header.format
    declared_s = max(header_frames, _riff_data_frames(path) if fmt == "WAV" else 0) / sr if sr else 0.0
    if max_duration_s is not None:
        declared_s = min(declared_s, max_duration_s)
    if declared_s - decoded_s > 0.05:
        return f"truncated: decoded {decoded_s:.2f} s of the {declared_s:.2f} s its header declares"
    if fmt == "OGG" and not _ogg_ends(path):
        return f"truncated: the Ogg stream stops without its end page (decoded {decoded_s:.2f} s)"
    return None


def _riff_data_frames(path: str | Path) -> int:
    """Frames a WAV file's ``data`` chunk declares (0 when unknown or not a plain RIFF file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return 0
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and pos + 22 <= len(head):
            block_align = struct.unpack("<H", head[pos + 20 : pos + 22])[0]
        elif cid == b"data":
            return size // block_align if block_align and 0 < size < 0xFFFFFFFF else 0
        pos += 8 + size + (size & 1)
    return 0


def _ogg_ends(path: str | Path) -> bool:
    """True when the last Ogg page of the file carries the end-of-stream flag (or the file is not plain Ogg)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - (1 << 16)))
            tail = f.read()
    except OSError:
        return True
    at = tail.rfind(b"OggS")
    if at < 0 or at + 6 > len(tail):
        return True
    return bool(tail[at + 5] & 0x04)
