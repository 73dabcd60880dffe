"""Synthetic sources for the dataset-layer tests: BirdCLEF 2021/2022 folders,
folder-per-class trees and CSV manifests, with a few broken files.

Audio is short (about 1-2 s at 8-16 kHz) so tests stay fast; encodings in the
tests are scaled down accordingly (e.g. stack of 2 x 0.5 s windows).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import tone, write_audio

SPECIES = [
    # code, scientific name, common name, tone frequency
    ("grrwar1", "Acrocephalus arundinaceus", "Great Reed Warbler", 1000.0),
    ("blrwar1", "Acrocephalus dumetorum", "Blyth's Reed Warbler", 1500.0),
    ("marwar3", "Acrocephalus palustris", "Marsh Warbler", 2000.0),
    ("sedwar1", "Acrocephalus schoenobaenus", "Sedge Warbler", 2500.0),
]


@dataclass(frozen=True)
class Rec:
    """One synthetic recording: label, file name, format and signal."""

    label: str
    name: str
    duration_s: float = 1.5
    sample_rate_hz: int = 16000
    channels: int = 1
    rating: float = 4.0
    kind: str = "tone"  # tone | silent | empty | corrupt | junk-mp3

    @property
    def ext(self) -> str:
        return Path(self.name).suffix.lower()


def signal(rec: Rec, seed: int = 0) -> np.ndarray:
    freq = {code: f for code, _, _, f in SPECIES}.get(rec.label, 3000.0)
    wave = tone(
        freq, duration_s=rec.duration_s, sample_rate_hz=rec.sample_rate_hz, amplitude=0.3, noise=0.01, seed=seed
    )
    if rec.kind == "silent":
        wave = np.zeros_like(wave)
    if rec.channels == 2:
        wave = np.stack([wave, 0.5 * wave], axis=1)
    return wave


def write_rec(path: Path, rec: Rec, seed: int = 0) -> Path:
    """Write ``rec`` at ``path`` (broken kinds written as such)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rec.kind == "empty":
        path.write_bytes(b"")
    elif rec.kind == "corrupt":
        path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        write_audio(path, signal(rec, seed), rec.sample_rate_hz)
        if rec.kind == "junk-mp3":
            with open(path, "ab") as f:
                f.write(b"TAG-garbage" + np.random.default_rng(seed).integers(0, 256, 777, dtype=np.uint8).tobytes())
    return path


def basic_recordings(per_class: int = 4, duration_s: float = 1.5) -> list[Rec]:
    """``per_class`` good wav recordings for each of the four species."""
    return [
        Rec(code, f"XC{100 * k + i:04d}.wav", duration_s=duration_s, rating=float(1 + (i % 5)))
        for k, (code, *_rest) in enumerate(SPECIES)
        for i in range(per_class)
    ]


def messy_recordings() -> list[Rec]:
    """Every format, stereo 48 kHz, a short one, and the broken ones (one species each)."""
    return [
        Rec("grrwar1", "XC0001.wav"),
        Rec("grrwar1", "XC0002.flac"),
        Rec("grrwar1", "XC0003.ogg"),
        Rec("grrwar1", "XC0004.mp3", sample_rate_hz=32000),
        Rec("blrwar1", "XC0101.wav", sample_rate_hz=48000, channels=2),
        Rec("blrwar1", "XC0102.flac", sample_rate_hz=32000),
        Rec("blrwar1", "XC0103.ogg", sample_rate_hz=44100, channels=2),
        Rec("blrwar1", "XC0104.mp3", sample_rate_hz=44100, kind="junk-mp3"),
        Rec("marwar3", "XC0201.wav", duration_s=0.4),  # too short for a 2 x 0.5 s stack
        Rec("marwar3", "XC0202.ogg", kind="empty"),
        Rec("marwar3", "XC0203.ogg", kind="corrupt"),
        Rec("marwar3", "XC0204.wav", kind="silent"),
        Rec("marwar3", "XC0205.flac"),
        Rec("marwar3", "XC0206.wav"),
    ]


def _names(label: str) -> tuple[str, str]:
    for code, sci, common, _ in SPECIES:
        if code == label:
            return sci, common
    return "", ""


def metadata_rows(recs: list[Rec], *, filename_with_folder: bool) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(recs):
        sci, common = _names(r.label)
        rows.append(
            {
                "primary_label": r.label,
                "secondary_labels": "['eurwre1', 'comcuc']" if i % 3 == 0 else "[]",
                "type": "['song']",
                "latitude": 50.0 + i,
                "longitude": 10.0,
                "scientific_name": sci,
                "common_name": common,
                "date": "2020-05-01",
                "filename": f"{r.label}/{r.name}" if filename_with_folder else r.name,
                "license": "CC BY-NC-SA",
                "rating": r.rating,
                "time": "06:00",
                "url": f"https://www.xeno-canto.org/{i}",
            }
        )
    return pd.DataFrame(rows)


def make_birdclef2021(root: Path, recs: list[Rec]) -> Path:
    """``root/train_metadata.csv`` + ``root/train_short_audio/<label>/<name>``."""
    for i, r in enumerate(recs):
        write_rec(root / "train_short_audio" / r.label / r.name, r, seed=i)
    metadata_rows(recs, filename_with_folder=False).to_csv(root / "train_metadata.csv", index=False)
    return root


def make_birdclef2022(root: Path, recs: list[Rec], *, metadata_name: str = "train_metadata.csv") -> Path:
    """``root/train_metadata.csv`` (filename ``<label>/<name>``) + ``root/train_audio/``."""
    for i, r in enumerate(recs):
        write_rec(root / "train_audio" / r.label / r.name, r, seed=i)
    metadata_rows(recs, filename_with_folder=True).to_csv(root / metadata_name, index=False)
    return root


def make_folders(root: Path, recs: list[Rec], *, nested: bool = True) -> Path:
    """``root/<label>/[sub/]<name>`` (every other file one folder deeper when ``nested``)."""
    for i, r in enumerate(recs):
        sub = ("site_a",) if nested and i % 2 else ()
        write_rec(root.joinpath(r.label, *sub, r.name), r, seed=i)
    return root


def make_csv(root: Path, recs: list[Rec], *, folds: list | None = None, csv_name: str = "meta/list.csv") -> Path:
    """Audio under ``root/audio/<label>/`` and a CSV (``path,species[,split_id]``) in ``root/meta/``.

    Paths in the CSV are relative to the CSV's folder (``../audio/...``).
    """
    csv = root / csv_name
    csv.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in enumerate(recs):
        p = write_rec(root / "audio" / r.label / r.name, r, seed=i)
        row = {"path": os.path.relpath(p, csv.parent).replace(os.sep, "/"), "species": r.label, "site": f"s{i % 3}"}
        if folds is not None:
            row["split_id"] = folds[i]
        rows.append(row)
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv
