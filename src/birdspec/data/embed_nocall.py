"""``birdspec embed``'s no-bird clips: which clips, embedding them (resumable), adding them to the cache.

:mod:`birdspec.data.embeddings` owns the format (``nocall.f16``, ``nocall.csv``, ``"nocall"`` in
``embeddings.json``). After the recordings' windows (:mod:`birdspec.data.embed`), :func:`add_nocall`
embeds one clip per planned no-bird output window (:func:`plan_clips`):

- :data:`SYNTHETIC_CLIPS` synthetic backgrounds (or ``--synthetic-clips N``, kept by later runs), clip ``i``
  drawn from ``numpy.random.default_rng((NOCALL_SEED, i))`` (the same clips in every cache of every dataset
  with the same clip length);
- up to :data:`MAX_STRETCH_CLIPS` clips per recording, cut from its quiet stretches (the rule of
  :func:`~birdspec.data.nocall.quiet_stretches`; a stretch shorter than a clip is repeated, as the
  waveform models' no-bird crops are), evenly spread over them;
- with ``--background DIR``, up to :data:`MAX_BACKGROUND_CLIPS` clips per recording of DIR (its first
  :data:`~birdspec.data.nocall.MAX_BACKGROUND_S`), evenly spread. A later ``embed`` without
  ``--background`` keeps them (a folder that is gone: they are dropped, with a warning).

Every clip is embedded as ``birdspec predict`` embeds an output window (:func:`~birdspec.birdnet.geometry.clip_windows`).
The work goes to ``<cache>.nocall.partial/`` in chunks (data flushed before index rows); an interrupted
run resumes there, and clips a cache already holds are reused by key (adding ``--background`` embeds
only its clips). When every clip is there they are written into the cache in plan order and
``embeddings.json`` gets its ``"nocall"`` entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdspec.data.embeddings import (
    EMBED_SETTINGS_FILE,
    EMBEDDINGS_DTYPE,
    EMBEDDINGS_FORMAT_VERSION,
    EMBEDDINGS_META_FILE,
    NOCALL_COLUMNS,
    NOCALL_EMBEDDINGS_FILE,
    NOCALL_INDEX_FILE,
    NOCALL_KINDS,
    NOCALL_VAL_EVERY,
    append_embeddings,
    load_partial,
    nocall_partial_dir,
    read_nocall_index,
)
from birdspec.errors import DataError
from birdspec.fileio import atomic_path, write_csv, write_text

log = logging.getLogger("birdspec.data.embeddings")

SYNTHETIC_CLIPS = 320
"""Synthetic background clips per cache (256 training + 64 validation ones)."""
NOCALL_SEED = 20_240
MAX_STRETCH_CLIPS = 4
"""At most this many quiet-stretch clips per recording."""
MAX_BACKGROUND_CLIPS = 12
"""At most this many clips per ``--background`` recording."""
BASE_KEYS = ("backbone", "sample_rate_hz", "dim", "dataset", "clip_s", "embed_hop_s", "window_rule", "store_rate_hz")
"""Settings under which a clip's key names the same embedding (clips may be reused across runs)."""


@dataclass(frozen=True)
class Clip:
    """One planned no-bird clip (a ``nocall.csv`` row before it is embedded) and where its audio is.

    ``offset``/``num_samples``/``start``/``end``: the stretch in the waveform store (stretch clips);
    ``path``: the background file; ``index``: the synthetic clip's seed index.
    """

    key: str
    kind: str
    part: str = ""
    row: int = -1
    id: str = ""
    source: str = ""
    start_s: float = 0.0
    index: int = 0
    path: str = ""
    offset: int = 0
    num_samples: int = 0
    start: int = 0
    end: int = 0


def _audio_files(folder: Path) -> list[Path]:
    from birdspec.audio import is_audio_file

    return sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p))


def _background_settings(background_dir: str | Path | None, recorded: Any) -> dict[str, Any] | None:
    """What the background part is made of: the folder given, else the one recorded in the cache (if still there)."""
    if background_dir is None:
        if not isinstance(recorded, dict) or not recorded.get("dir"):
            return None
        if not Path(recorded["dir"]).is_dir():
            log.warning("the background folder %s of the cached no-bird clips is gone: its clips are dropped", recorded["dir"])
            return None
        background_dir = recorded["dir"]
    root = Path(background_dir).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give a folder of background recordings (wav, flac, ogg, mp3)")
    files = _audio_files(root)
    if not files:
        raise DataError(f"{root}: no audio file; give a folder of background recordings (wav, flac, ogg, mp3)")
    h = hashlib.sha1()
    for p in files:
        h.update(f"{p.relative_to(root).as_posix()}:{p.stat().st_size};".encode())
    return {"dir": str(root), "files": len(files), "sha1": h.hexdigest(), "max_clips_per_file": MAX_BACKGROUND_CLIPS}


def nocall_settings(ds: Any, geometry: Any, fingerprint: dict[str, Any], *, final: Path, synthetic_clips: int | None,
                    background_dir: str | Path | None) -> dict[str, Any]:
    """The settings that define a cache's no-bird part (compared with ``embeddings.json``'s to decide the work);
    ``synthetic_clips`` / ``background_dir`` None: those the cache has (default :data:`SYNTHETIC_CLIPS` / none)."""
    from birdspec.birdnet.geometry import EMBED_HOP_S, WINDOW_RULE, nocall_clip_s
    from birdspec.data.nocall import QuietRule

    recorded = (_read_meta(final).get("nocall") or {}).get("settings") or {}
    if synthetic_clips is None:
        synthetic_clips = int(recorded.get("synthetic_clips", SYNTHETIC_CLIPS))
    return {
        "backbone": geometry.name, "sample_rate_hz": int(geometry.sample_rate_hz), "dim": int(geometry.embedding_dim),
        "dataset": fingerprint["sha1"], "clip_s": nocall_clip_s(ds.encoding.window_s, rule=WINDOW_RULE, embed_hop_s=EMBED_HOP_S),
        "embed_hop_s": EMBED_HOP_S, "window_rule": WINDOW_RULE,
        "store_rate_hz": int(ds.sample_rate_hz), "synthetic_clips": int(synthetic_clips), "seed": NOCALL_SEED,
        "val_every": NOCALL_VAL_EVERY, "quiet_rule": dataclasses.asdict(QuietRule()), "max_stretch_clips": MAX_STRETCH_CLIPS,
        "background": _background_settings(background_dir, recorded.get("background")),
    }


def _read_meta(final: Path) -> dict[str, Any]:
    return json.loads((final / EMBEDDINGS_META_FILE).read_text()) if (final / EMBEDDINGS_META_FILE).is_file() else {}


def nocall_up_to_date(final: Path, settings: dict[str, Any]) -> bool:
    """True when the finished cache ``final`` holds the no-bird part of these settings."""
    return ((_read_meta(final).get("nocall") or {}).get("settings")) == settings


def _evenly(items: list, most: int) -> list:
    if len(items) <= most:
        return items
    return [items[int(i)] for i in np.unique(np.linspace(0, len(items) - 1, num=most).round().astype(int))]


def _part(i: int) -> str:
    return "val" if i % NOCALL_VAL_EVERY == NOCALL_VAL_EVERY - 1 else "train"


def _stretch_clips(ds: Any, clip_len: int) -> Iterator[Clip]:
    from birdspec.data.nocall import quiet_stretches

    m, sr = ds.manifest, ds.sample_rate_hz
    for row in range(len(m)):
        offset, n, rid = int(m["offset"].iloc[row]), int(m["num_samples"].iloc[row]), str(m["id"].iloc[row])
        found = []
        for s, e in quiet_stretches(ds.store.read(offset, n), sr):
            starts = range(s, e - clip_len + 1, clip_len) if e - s >= clip_len else [s]
            found += [(a, e if e - s < clip_len else a + clip_len) for a in starts]
        for a, b in _evenly(found, MAX_STRETCH_CLIPS):
            yield Clip(f"stretch:{rid}:{a}:{b}", "stretch", "", row, rid, rid, round(a / sr, 4), offset=offset,
                       num_samples=n, start=a, end=b)


def _background_clips(bg: dict[str, Any], clip_s: float) -> Iterator[Clip]:
    from birdspec.audio import info
    from birdspec.data.nocall import MAX_BACKGROUND_S
    from birdspec.errors import AudioError

    root, i = Path(bg["dir"]), 0
    for path in _audio_files(root):
        try:
            seconds = min(info(path).duration_s, MAX_BACKGROUND_S)
        except AudioError as exc:
            log.warning("skipping background %s: %s", path, exc)
            continue
        rel, size = path.relative_to(root).as_posix(), path.stat().st_size
        starts = [k * clip_s for k in range(int(seconds // clip_s))] or ([0.0] if seconds > 0 else [])
        for start in _evenly(starts, MAX_BACKGROUND_CLIPS):
            yield Clip(f"background:{rel}:{size}:{start:g}", "background", _part(i), source=rel, start_s=float(start),
                       path=str(path))
            i += 1


def plan_clips(ds: Any, settings: dict[str, Any]) -> list[Clip]:
    """Every no-bird clip of these settings, in cache order: synthetic, quiet stretches, background."""
    clip_len = int(round(settings["clip_s"] * ds.sample_rate_hz))
    seed = settings["seed"]
    plan = [Clip(f"synthetic:{seed}:{i}", "synthetic", _part(i), index=i) for i in range(settings["synthetic_clips"])]
    plan += list(_stretch_clips(ds, clip_len))
    if settings["background"]:
        plan += list(_background_clips(settings["background"], float(settings["clip_s"])))
    return plan


def clip_audio(clip: Clip, ds: Any, settings: dict[str, Any]) -> tuple[np.ndarray, str]:
    """``(audio (clip_len,) float32 at the store rate, source description)`` of a planned clip."""
    from birdspec.windowing import fit_window

    sr = int(ds.sample_rate_hz)
    clip_len = int(round(settings["clip_s"] * sr))
    if clip.kind == "synthetic":
        from birdspec.data.backgrounds import random_background

        rng = np.random.default_rng((int(settings["seed"]), int(clip.index)))
        audio, kind, level = random_background(num_samples=clip_len, rng=rng, sample_rate_hz=sr)
        return audio, f"{kind} {level:.1f} dBFS"
    if clip.kind == "stretch":
        wave = ds.store.read(clip.offset, clip.num_samples, start=clip.start, length=clip.end - clip.start)
    else:
        from birdspec.audio import load

        wave = load(clip.path, sample_rate_hz=sr, offset_s=clip.start_s, duration_s=settings["clip_s"])
    return fit_window(np.asarray(wave, dtype=np.float32), length=clip_len, fill="tile"), clip.source


def _windows_file(path: Path, dim: int) -> np.ndarray:
    """A raw float16 windows file as ``(N, dim)`` (memory-mapped; an empty file gives ``(0, dim)``)."""
    n = path.stat().st_size // (dim * EMBEDDINGS_DTYPE.itemsize) if path.is_file() else 0
    if n == 0:
        return np.zeros((0, dim), dtype=EMBEDDINGS_DTYPE)
    return np.memmap(path, dtype=EMBEDDINGS_DTYPE, mode="r", shape=(n, dim))


def _open_partial(partial: Path, final: Path, settings: dict[str, Any], keys: set[str]) -> pd.DataFrame:
    """Resume ``partial`` (same base settings) or start it afresh from the cache's reusable clips."""
    dim = int(settings["dim"])
    if partial.is_dir():
        old = json.loads((partial / EMBED_SETTINGS_FILE).read_text()) if (partial / EMBED_SETTINGS_FILE).is_file() else {}
        if all(old.get(k) == settings[k] for k in BASE_KEYS) and (partial / NOCALL_INDEX_FILE).is_file():
            write_text(partial / EMBED_SETTINGS_FILE, json.dumps(settings, indent=2))
            return load_partial(partial, dim, index_file=NOCALL_INDEX_FILE, data_file=NOCALL_EMBEDDINGS_FILE,
                                reader=read_nocall_index)
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    write_text(partial / EMBED_SETTINGS_FILE, json.dumps(settings, indent=2))
    index = pd.DataFrame(columns=list(NOCALL_COLUMNS))
    meta = _read_meta(final)
    cached = (meta.get("nocall") or {}).get("settings") or {}
    if cached and all(cached.get(k) == settings[k] for k in BASE_KEYS) and (final / NOCALL_INDEX_FILE).is_file():
        old = read_nocall_index(final / NOCALL_INDEX_FILE)
        old = old[old["key"].isin(keys)].reset_index(drop=True)
        data = _windows_file(final / NOCALL_EMBEDDINGS_FILE, dim)
        parts = [data[f : f + n] for f, n in zip(old["first_window"], old["num_windows"], strict=True)]
        old["first_window"] = np.concatenate([[0], np.cumsum(old["num_windows"].to_numpy())[:-1]]).astype(np.int64) if len(old) else []
        index = old
        with open(partial / NOCALL_EMBEDDINGS_FILE, "wb") as f:
            for p in parts:
                f.write(np.ascontiguousarray(p, dtype=EMBEDDINGS_DTYPE).tobytes())
        if len(old):
            log.info("reusing %d no-bird clips of %s", len(old), final)
    else:
        (partial / NOCALL_EMBEDDINGS_FILE).touch()
    write_csv(partial / NOCALL_INDEX_FILE, index[list(NOCALL_COLUMNS)], float_format=None)
    return index


def _embed_clips(ds: Any, model: Any, partial: Path, todo: list[Clip], settings: dict[str, Any], *, first_window: int,
                 chunk_windows: int, progress: bool) -> int:
    """Embed ``todo`` into ``partial`` (chunks: data flushed first, then index rows); windows embedded."""
    from birdspec.birdnet.geometry import clip_windows

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="clip", desc="embed no-bird clips", leave=False, dynamic_ncols=True)
    pending: list[tuple[Clip, str, np.ndarray]] = []
    done = 0

    def flush() -> None:
        nonlocal first_window, done
        if not pending:
            return
        append_embeddings(partial / NOCALL_EMBEDDINGS_FILE, model, np.concatenate([w for _, _, w in pending]))
        rows = []
        for clip, source, w in pending:
            rows.append({"key": clip.key, "kind": clip.kind, "part": clip.part, "row": clip.row, "id": clip.id,
                         "source": source, "start_s": clip.start_s, "first_window": first_window, "num_windows": int(w.shape[0])})
            first_window += int(w.shape[0])
            done += int(w.shape[0])
        pd.DataFrame(rows, columns=list(NOCALL_COLUMNS)).to_csv(partial / NOCALL_INDEX_FILE, mode="a", header=False, index=False)
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    try:
        for clip in todo:
            audio, source = clip_audio(clip, ds, settings)
            pending.append((clip, source, clip_windows(audio, sample_rate_hz=ds.sample_rate_hz, embed_hop_s=settings["embed_hop_s"],
                                                               rule=settings["window_rule"])))
            if sum(w.shape[0] for _, _, w in pending) >= chunk_windows:
                flush()
        flush()
    finally:
        if bar is not None:
            bar.close()
    return done


def _publish(partial: Path, final: Path, plan: list[Clip], settings: dict[str, Any], *, elapsed_s: float) -> dict[str, Any]:
    """Write the partial run's clips into the cache in plan order and record them in ``embeddings.json``."""
    dim = int(settings["dim"])
    index = read_nocall_index(partial / NOCALL_INDEX_FILE).drop_duplicates("key", keep="last").set_index("key", drop=False)
    missing = [c.key for c in plan if c.key not in index.index]
    if missing:
        raise DataError(f"{partial}: {len(missing)} no-bird clips missing (e.g. {missing[0]}); run `birdspec embed` again")
    data = _windows_file(partial / NOCALL_EMBEDDINGS_FILE, dim)
    out = index.loc[[c.key for c in plan]].reset_index(drop=True)
    meta = _read_meta(final)
    meta.pop("nocall", None)  # while the files change, the cache has no no-bird part
    write_text(final / EMBEDDINGS_META_FILE, json.dumps(meta, indent=2))
    with atomic_path(final / NOCALL_EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as f:
        for first, n in zip(out["first_window"], out["num_windows"], strict=True):
            f.write(np.ascontiguousarray(data[first : first + n], dtype=EMBEDDINGS_DTYPE).tobytes())
    out["first_window"] = np.concatenate([[0], np.cumsum(out["num_windows"].to_numpy())[:-1]]).astype(np.int64) if len(out) else []
    write_csv(final / NOCALL_INDEX_FILE, out[list(NOCALL_COLUMNS)], float_format=None)
    counts = {f"{k}{'_' + p if p else ''}": int(n) for (k, p), n in out.groupby(["kind", "part"]).size().items()}
    meta["format_version"] = EMBEDDINGS_FORMAT_VERSION
    meta["nocall"] = {
        "settings": settings, "file": NOCALL_EMBEDDINGS_FILE, "index": NOCALL_INDEX_FILE, "num_clips": int(len(out)),
        "total_windows": int(out["num_windows"].sum()), "clips": counts, "kinds": list(NOCALL_KINDS),
        "elapsed_s": round(float(elapsed_s), 3), "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_text(final / EMBEDDINGS_META_FILE, json.dumps(meta, indent=2))
    shutil.rmtree(partial)
    return meta["nocall"]


def add_nocall(ds: Any, model: Any, final: Path, settings: dict[str, Any], *, backbone: str, chunk_windows: int,
               progress: bool) -> tuple[dict[str, Any], int, int, float]:
    """Embed the no-bird clips of ``settings`` into the finished cache ``final`` (reusing what is there).

    Returns:
        ``(the "nocall" entry of embeddings.json, clips embedded, windows embedded, seconds it took)``.
    """
    started = time.perf_counter()
    plan = plan_clips(ds, settings)
    partial = nocall_partial_dir(ds.root, backbone)
    index = _open_partial(partial, final, settings, {c.key for c in plan})
    have = set(index["key"].tolist())
    todo = [c for c in plan if c.key not in have]
    first = int(index["first_window"].iloc[-1] + index["num_windows"].iloc[-1]) if len(index) else 0
    windows = _embed_clips(ds, model, partial, todo, settings, first_window=first, chunk_windows=chunk_windows, progress=progress)
    elapsed = time.perf_counter() - started
    entry = _publish(partial, final, plan, settings, elapsed_s=elapsed)
    log.info("no-bird clips: %d embedded (%d windows) in %.1f s, %d reused -> %s (%s)", len(todo), windows, elapsed,
             len(plan) - len(todo), final, ", ".join(f"{k} {n}" for k, n in entry["clips"].items()))
    return entry, len(todo), windows, elapsed
