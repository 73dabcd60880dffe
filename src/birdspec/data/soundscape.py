"""Synthetic soundscapes with known truth, mixed from the recordings of ONE fold of a prepared dataset.

Why a small mixer here rather than scaper: scaper works from folders of
labelled foreground/background *files* and JAMS annotations; birdspec's
calls live in the prepared waveform store (already decoded, 32 kHz), the
honesty rule "a soundscape of fold k holds only fold k's recordings" is a
manifest filter, and the truth must be BirdCLEF's 5 s ``row_id`` table. That
is ~150 lines of NumPy with no new dependency; scaper would add a dependency
and a JAMS round trip for the same result. ``birdspec soundscape make`` is the
command line (the benchmark calls :func:`make_soundscapes` too).

How a soundscape is made (:class:`SoundscapeConfig`, deterministic per seed):

- a background bed: the quiet stretches (:func:`~birdspec.data.nocall.quiet_stretches`)
  of the background recordings, i.e. their bird activity trimmed away where they
  have enough quiet audio, else the whole recordings; pink noise without
  backgrounds; pieces joined with short cross-fades, scaled to ``bed_rms_dbfs``;
- events one after another, separated by gaps (uniform in ``gap_s``, which leaves
  ``nocall`` windows) or, with probability ``overlap_probability``, starting inside
  the previous event (another species when the fold has one): overlapping species;
- an event is an excerpt (``event_s`` long, uniform) of a random fold recording of a
  random species, centred on one of its loud frames, with 20 ms fades, scaled to an
  SNR uniform in ``snr_db`` (excerpt RMS over bed RMS in the same span);
- recordings whose secondary labels include one of the classes are skipped (their
  excerpts might hold a second class that the truth would not list).

The truth (:func:`truth_table`): a 5 s window holds a species iff a placed
event of it overlaps the window by at least ``min_overlap_s``; a window
without one is ``nocall``. Row ids are those of ``birdspec predict --format
birdclef`` (:func:`~birdspec.prediction.outputs.birdclef_row_id`), so
``birdspec score-soundscapes`` reads predictions and truth as they are.
Audio is written as FLAC, in blocks (long Ogg writes crash libsndfile).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.audio import write_blocks
from birdspec.data.catalog import parse_label_list
from birdspec.data.nocall import QuietRule, frame_levels_db, quiet_stretches
from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TRUTH_FILE = "truth.csv"
CALLS_FILE = "calls.csv"
SOUNDSCAPES_META_FILE = "soundscapes.json"
AUDIO_DIR = "audio"
FADE_S = 0.02


@dataclass(frozen=True)
class SoundscapeConfig:
    """Settings of :func:`make_soundscapes` (see the module doc)."""

    duration_s: float = 60.0
    window_s: float = 5.0
    event_s: tuple[float, float] = (2.0, 8.0)
    gap_s: tuple[float, float] = (0.0, 10.0)
    overlap_probability: float = 0.3
    snr_db: tuple[float, float] = (-5.0, 20.0)
    min_overlap_s: float = 0.5
    bed_rms_dbfs: float = -40.0
    seed: int = 0

    def __post_init__(self) -> None:
        steps = self.duration_s / self.window_s
        if not (self.window_s > 0 and self.duration_s >= self.window_s and abs(steps - round(steps)) < 1e-9):
            raise ConfigError(f"--duration-s must be a positive multiple of the {self.window_s:g} s window, got {self.duration_s}")
        for name in ("event_s", "gap_s", "snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"{name} needs LO <= HI, got {getattr(self, name)}")
            object.__setattr__(self, name, (float(lo), float(hi)))
        if not (self.event_s[0] >= self.min_overlap_s > 0 and self.gap_s[0] >= 0 and 0 <= self.overlap_probability <= 1):
            raise ConfigError("need event_s >= min_overlap_s > 0, gap_s >= 0 and overlap_probability in [0, 1]")


def truth_table(calls: pd.DataFrame, durations_s: dict[str, float], *, window_s: float = 5.0,
                min_overlap_s: float = 0.5) -> pd.DataFrame:
    """BirdCLEF truth rows ``row_id, audio_id, seconds, birds`` of every window of every soundscape.

    Args:
        calls: placed events ``audio_id, label, start_s, end_s``.
        durations_s: soundscape stem -> duration (a multiple of ``window_s``).
    """
    from birdspec.formats import NOCALL, birdclef_row_id

    rows = []
    for stem, duration in durations_s.items():
        mine = calls[calls["audio_id"] == stem]
        for k in range(int(round(duration / window_s))):
            a, b = k * window_s, (k + 1) * window_s
            overlap = np.minimum(mine["end_s"].to_numpy(), b) - np.maximum(mine["start_s"].to_numpy(), a)
            birds = sorted(set(mine["label"].to_numpy()[overlap >= min_overlap_s - 1e-9]))
            rows.append({"row_id": birdclef_row_id(stem, b), "audio_id": stem, "seconds": int(round(b)),
                         "birds": " ".join(birds) if birds else NOCALL})
    return pd.DataFrame(rows, columns=["row_id", "audio_id", "seconds", "birds"])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, x.size // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.sqrt(np.arange(1, spec.size))
    return np.fft.irfft(spec, n).astype(np.float32)


def background_bed(backgrounds: Sequence[np.ndarray], n: int, rng: np.random.Generator, *, sample_rate_hz: int,
                   rms_dbfs: float) -> np.ndarray:
    """``n`` samples of background at ``rms_dbfs``: pieces of quiet stretches (or whole recordings) cross-faded."""
    pieces: list[np.ndarray] = []
    for wave in backgrounds:
        quiet = quiet_stretches(wave, sample_rate_hz, QuietRule(min_duration_s=2.0))
        pieces.extend(wave[a:b] for a, b in quiet)
    if sum(p.size for p in pieces) < 10 * sample_rate_hz:  # too little quiet audio: the recordings as they are
        pieces = [w for w in backgrounds if w.size > sample_rate_hz]
    if not pieces:
        bed = _pink(rng, n)
    else:
        fade = int(0.05 * sample_rate_hz)
        bed = np.zeros(n + fade, dtype=np.float32)
        pos = 0
        while pos < n:
            piece = pieces[int(rng.integers(len(pieces)))]
            start = int(rng.integers(max(1, piece.size - (n - pos + fade) + 1)))
            chunk = _fade(np.array(piece[start:start + n - pos + fade], dtype=np.float32), fade)
            bed[pos:pos + chunk.size] += chunk
            pos += max(1, chunk.size - fade)
        bed = bed[:n]
    rms = _rms(bed)
    return bed * (10 ** (rms_dbfs / 20) / rms if rms > 0 else 0.0)


def _excerpt(wave: np.ndarray, length: int, rng: np.random.Generator, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    """An excerpt of ``length`` samples centred on one of the loudest frames (top 30 %) of ``wave``."""
    if wave.size <= length:
        return wave.astype(np.float32), 0
    frame = int(0.1 * sample_rate_hz)
    levels = frame_levels_db(wave, frame)
    loud = np.flatnonzero(levels >= np.percentile(levels, 70)) if levels.size else np.zeros(1, np.int64)
    centre = int(loud[int(rng.integers(loud.size))]) * frame + frame // 2
    start = int(np.clip(centre - length // 2, 0, wave.size - length))
    return wave[start:start + length].astype(np.float32), start


def fold_sources(data: Any, fold: int) -> pd.DataFrame:
    """The manifest rows of ``fold`` usable as call sources (no in-class secondary label), with ``row``."""
    rows = data.select(folds=[fold])
    m = data.manifest.iloc[rows].assign(row=rows)
    classes = set(data.classes)
    clean = [not (set(parse_label_list(v)) & classes - {lab}) for v, lab in zip(m["secondary_labels"], m["label"], strict=True)]
    out = m[np.asarray(clean, dtype=bool)] if len(m) else m
    if out.empty:
        raise DataError(f"{data.root}: fold {fold} has no recordings to build soundscapes from; choose another --fold")
    return out


def mix_soundscape(data: Any, sources: pd.DataFrame, backgrounds: Sequence[np.ndarray], cfg: SoundscapeConfig, *,
                   stem: str, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """One soundscape ``(wave, events)``; events: ``audio_id, label, source_id, source_start_s, start_s, end_s, snr_db``."""
    rng = np.random.default_rng(seed)
    sr = data.sample_rate_hz
    n = int(round(cfg.duration_s * sr))
    out = background_bed(backgrounds, n, rng, sample_rate_hz=sr, rms_dbfs=cfg.bed_rms_dbfs)
    bed = out.copy()
    by_label: dict[Any, pd.DataFrame] = {lab: grp for lab, grp in sources.groupby("label")}
    labels = sorted(by_label)
    events: list[dict[str, Any]] = []
    t = float(rng.uniform(*cfg.gap_s))
    while t < cfg.duration_s - cfg.min_overlap_s:
        overlap = bool(events) and rng.random() < cfg.overlap_probability
        choices = [lab for lab in labels if not overlap or lab != events[-1]["label"]] or labels
        label = choices[int(rng.integers(len(choices)))]
        src = by_label[label].iloc[int(rng.integers(len(by_label[label])))]
        wave = data.store.read(int(src["offset"]), int(src["num_samples"]))
        length = int(round(rng.uniform(*cfg.event_s) * sr))
        if overlap:
            prev = events[-1]
            t = float(rng.uniform(prev["start_s"], max(prev["start_s"], prev["end_s"] - cfg.min_overlap_s)))
        start = int(round(t * sr))
        piece, src_start = _excerpt(wave, min(length, n - start), rng, sr)
        piece = _fade(piece.copy(), int(FADE_S * sr))
        snr = float(rng.uniform(*cfg.snr_db))
        bed_rms, call_rms = _rms(bed[start:start + piece.size]), _rms(piece)
        if piece.size < int(cfg.min_overlap_s * sr) or call_rms <= 0:
            t = (start + piece.size) / sr + float(rng.uniform(*cfg.gap_s))
            continue
        out[start:start + piece.size] += piece * (bed_rms * 10 ** (snr / 20) / call_rms)
        events.append({"audio_id": stem, "label": label, "source_id": str(src["id"]), "source_start_s": src_start / sr,
                       "start_s": start / sr, "end_s": (start + piece.size) / sr, "snr_db": snr})
        t = events[-1]["end_s"] + float(rng.uniform(*cfg.gap_s))
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32), pd.DataFrame(events, columns=["audio_id", "label", "source_id", "source_start_s",
                                                                 "start_s", "end_s", "snr_db"])


@dataclass(frozen=True)
class SoundscapeSet:
    """What :func:`make_soundscapes` wrote: ``out_dir`` with ``audio/``, the truth and the events."""

    out_dir: Path
    audio: tuple[Path, ...]
    truth: pd.DataFrame
    calls: pd.DataFrame

    @property
    def nocall_windows(self) -> int:
        """Windows of the truth without a call."""
        from birdspec.formats import NOCALL

        return int((self.truth["birds"] == NOCALL).sum())


def make_soundscapes(dataset_dir: str | Path, out_dir: str | Path, *, fold: int, count: int = 4,
                     config: SoundscapeConfig = SoundscapeConfig(), background_dir: str | Path | None = None,
                     progress: bool = True) -> SoundscapeSet:
    """Write ``count`` soundscapes of ``fold`` into ``out_dir``: ``audio/fold<k>-<i>.flac``, ``truth.csv``
    (BirdCLEF: ``row_id, audio_id, seconds, birds``), ``calls.csv`` (the placed events) and ``soundscapes.json``.

    Raises:
        ConfigError / DataError: bad settings, a dataset without folds, or a fold without usable recordings.
    """
    from birdspec.data.prepared import PreparedDataset
    from birdspec.fileio import write_csv, write_json

    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    data = PreparedDataset(dataset_dir)
    sources = fold_sources(data, fold)
    backgrounds: list[np.ndarray] = []
    if background_dir is not None:
        from birdspec.data.nocall import load_backgrounds

        backgrounds = load_backgrounds(background_dir, sample_rate_hz=data.sample_rate_hz)
    out = Path(out_dir)
    paths, events = [], []
    from tqdm.auto import tqdm

    for i in tqdm(range(count), desc=f"soundscapes of fold {fold}", unit="file", disable=not progress):
        stem = f"fold{fold}-{i:03d}"
        wave, ev = mix_soundscape(data, sources, backgrounds, config, stem=stem, seed=config.seed * 100003 + fold * 1009 + i)
        paths.append(write_blocks(out / AUDIO_DIR / f"{stem}.flac", wave, data.sample_rate_hz, format="FLAC",
                                  subtype="PCM_16", block_s=10.0))
        events.append(ev)
    calls = pd.concat(events, ignore_index=True)
    truth = truth_table(calls, {p.stem: config.duration_s for p in paths}, window_s=config.window_s,
                        min_overlap_s=config.min_overlap_s)
    write_csv(out / TRUTH_FILE, truth)
    write_csv(out / CALLS_FILE, calls, float_format=None)
    write_json(out / SOUNDSCAPES_META_FILE, {
        "dataset": str(data.root.resolve()), "fold": fold, "count": count, "config": asdict(config),
        "background_dir": str(background_dir) if background_dir else None,
        "source_recordings": sorted(sources["id"].astype(str)), "classes": list(data.classes),
        "truth_rule": f"a window holds a species iff a placed event overlaps it by >= {config.min_overlap_s:g} s",
    })
    made = SoundscapeSet(out, tuple(paths), truth, calls)
    log.info("wrote %d soundscapes of fold %d (%d events, %d windows, %d nocall) to %s",
             count, fold, len(calls), len(truth), made.nocall_windows, out)
    return made
