"""The waveform store of a prepared dataset.

All kept recordings, decoded to 32 kHz mono, are concatenated in one raw
little-endian float16 file (``waveforms.f16``): half the size of float32,
about 66 dB of quantisation headroom relative to the signal at any level,
and memory-mapped, so a Dataset reads any crop of any recording without
loading the file. A recording is addressed by ``(offset, num_samples)``
stored in the manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from birdspec.errors import DataError

STORE_FILE = "waveforms.f16"
STORE_DTYPE = np.dtype("<f2")


class WaveformStore:
    """Read-only, memory-mapped view of a store file.

    The memory map is opened lazily, so a store object can be pickled to
    data-loader worker processes and each opens its own map.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: waveform store missing; run `birdspec prepare` again")
        self._map: np.ndarray | None = None

    @property
    def data(self) -> np.ndarray:
        if self._map is None:
            if self.path.stat().st_size == 0:
                self._map = np.zeros(0, dtype=STORE_DTYPE)
            else:
                self._map = np.memmap(self.path, dtype=STORE_DTYPE, mode="r")
        return self._map

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def read(self, offset: int, num_samples: int, *, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples ``[start, start + length)`` of the recording at ``offset`` as float32.

        Shorter than ``length`` when the recording ends first.
        """
        end = num_samples if length is None else min(num_samples, start + length)
        start = max(0, min(start, num_samples))
        return np.asarray(self.data[offset + start : offset + end], dtype=np.float32)

    def __getstate__(self) -> dict:
        return {"path": self.path, "_map": None}
