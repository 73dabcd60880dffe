"""Test helpers: synthetic audio and tiny prepared datasets written without `prepare`.

Used by several test modules; kept deterministic and small so the suite stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from birdspec.config import EncodingConfig, FrontendConfig, to_dict
from birdspec.data.store import STORE_DTYPE, STORE_FILE

REPO = Path(__file__).resolve().parents[1]


class StoreWriter:
    """Append recordings to a store file (what prepare writes, for tests that build datasets by hand);
    returns where each one landed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "wb")
        self._n = 0

    def append(self, wave: np.ndarray) -> tuple[int, int]:
        """Write ``wave`` (``(n,)`` float) and return ``(offset, n)`` in samples."""
        if wave.dtype == STORE_DTYPE:
            data = np.ascontiguousarray(wave)
        else:
            data = np.ascontiguousarray(np.clip(wave, -65504.0, 65504.0), dtype=STORE_DTYPE)
        offset = self._n
        self._f.write(memoryview(data).cast("B"))
        self._n += data.size
        return offset, data.size

    @property
    def total_samples(self) -> int:
        return self._n

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._f.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repo, or ``$BIRDSPEC_SHARED_DATA``; None when absent."""
    env = os.environ.get("BIRDSPEC_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


def tone(freq_hz: float, *, duration_s: float, sample_rate_hz: int = 32000, amplitude: float = 0.3,
         noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(duration_s * sample_rate_hz))) / sample_rate_hz
    x = amplitude * np.sin(2 * np.pi * freq_hz * t)
    if noise:
        x = x + noise * np.random.default_rng(seed).standard_normal(t.size)
    return x.astype(np.float32)


def class_signal(class_index: int, *, duration_s: float, sample_rate_hz: int = 32000, seed: int = 0) -> np.ndarray:
    """An easy, learnable signal for class ``k``: chirped tone pulses around a class frequency, plus noise."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz
    base = 1500.0 * (class_index + 1) * rng.uniform(0.95, 1.05)
    phase = 2 * np.pi * (base * t + 200.0 * np.sin(2 * np.pi * 3 * t) / (2 * np.pi * 3))
    envelope = (np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 6)) > 0).astype(np.float64)
    x = 0.3 * envelope * np.sin(phase) + 0.02 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, sample_rate_hz: int, *, fmt: str | None = None) -> Path:
    """Write mono or ``(n, channels)`` audio; Ogg is written in 1 s blocks (libsndfile crashes otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or path.suffix.lstrip(".").upper()
    channels = 1 if wave.ndim == 1 else wave.shape[1]
    if fmt == "OGG":
        with sf.SoundFile(str(path), "w", sample_rate_hz, channels, format="OGG", subtype="VORBIS") as f:
            for i in range(0, len(wave), sample_rate_hz):
                f.write(wave[i : i + sample_rate_hz])
    else:
        sf.write(str(path), wave, sample_rate_hz, format=fmt)
    return path


def write_prepared(
    out: Path,
    *,
    num_classes: int = 3,
    per_class: int = 8,
    duration_s: float = 3.0,
    encoding: EncodingConfig | None = None,
    frontend: FrontendConfig | None = None,
    folds: int | None = None,
    val_fraction: float = 0.25,
    seed: int = 0,
) -> Path:
    """A prepared dataset in the on-disk format of `birdspec prepare`, from synthetic class signals."""
    encoding = encoding or EncodingConfig(name="stack10", num_windows=2, window_s=1.0, short_policy="tile")
    frontend = frontend or FrontendConfig()
    out.mkdir(parents=True, exist_ok=True)
    classes = [f"synth{k}" for k in range(num_classes)]
    rows = []
    with StoreWriter(out / STORE_FILE) as writer:
        for k, label in enumerate(classes):
            for i in range(per_class):
                wave = class_signal(k, duration_s=duration_s, seed=seed * 1000 + k * 100 + i)
                offset, n = writer.append(wave)
                n_val = max(1, int(round(per_class * val_fraction)))
                rows.append({
                    "id": f"{label}_{i:02d}", "source_path": f"/synthetic/{label}/{i:02d}.wav",
                    "filename": f"{label}/{i:02d}.wav", "label": label, "label_id": k, "secondary_labels": "[]",
                    "scientific_name": f"Synthetica {label}", "common_name": f"Synthetic {label}", "rating": 5.0,
                    "duration_s": n / 32000, "offset": offset, "num_samples": n,
                    "split": "val" if i < n_val else "train", "fold": (i % folds) if folds else -1,
                })
        total = writer.total_samples
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    pd.DataFrame(columns=["path", "label", "reason"]).to_csv(out / "skipped.csv", index=False)
    split_counts = pd.DataFrame(rows)["split"].value_counts().to_dict()
    meta = {
        "format": "birdspec-dataset", "format_version": 1, "birdspec_version": "test", "created_utc": "",
        "source": "synthetic", "layout": "synthetic", "settings": {"seed": seed}, "sample_rate_hz": 32000,
        "encoding": to_dict(encoding), "frontend": to_dict(frontend), "classes": classes,
        "class_info": [{"label": c, "scientific_name": f"Synthetica {c}", "common_name": f"Synthetic {c}"} for c in classes],
        "num_recordings": len(rows), "num_samples": len(rows), "splits": split_counts, "folds": folds,
        "skipped": 0, "store": {"file": STORE_FILE, "dtype": "float16", "total_samples": total},
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out


def make_run(
    root: Path,
    dataset: Path,
    *,
    model: str = "mobilenetv2-seed",
    seed: int = 0,
    epochs: int = 4,
    train_time_s: float = 12.5,
) -> Path:
    """A run directory in `birdspec train`'s layout, built by hand (untrained weights, made-up curves)."""
    import torch

    from birdspec.data.prepared import PreparedDataset
    from birdspec.models.checkpoint import make_checkpoint, save_checkpoint
    from birdspec.models.registry import build_model, count_parameters
    from birdspec.training.plots import plot_curves

    data = PreparedDataset(dataset)
    torch.manual_seed(seed)
    net = build_model(model, in_channels=data.encoding.in_channels, num_classes=len(data.classes), frontend=data.frontend)
    ckpt = make_checkpoint(
        net, model_config=net.config, classes=data.classes, frontend=data.frontend, encoding=data.encoding,
        class_info=data.class_info, train_config={"model": model}, epoch=epochs - 1,
    )
    save_checkpoint(ckpt, root / "checkpoints" / "best.pt")
    save_checkpoint(ckpt, root / "checkpoints" / "last.pt")
    ids = data.manifest["id"].astype(str).to_numpy()
    config = {
        "format": "birdspec-run", "format_version": 1, "train_config": {"model": model, "optimizer": "adamw", "lr": 0.01,
                                                                          "epochs": epochs, "batch_size": 8, "seed": seed},
        "model": net.config, "num_parameters": count_parameters(net), "dataset": {"path": str(Path(dataset).resolve())},
        "encoding": to_dict(data.encoding), "frontend": to_dict(data.frontend), "classes": data.classes,
        "class_info": data.class_info,
        "rows": {"train": ids[data.select(split="train")].tolist(), "val": ids[data.select(split="val")].tolist()},
        "runtime": {"device": "cpu"},
    }
    (root / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    epochs_ = np.arange(1, epochs + 1)
    curves = pd.DataFrame({
        "epoch": epochs_, "train_loss": 1.1 / epochs_, "train_acc": 1 - 0.6 / epochs_,
        "val_loss": 1.2 / epochs_ + rng.uniform(0, 0.1, epochs), "val_acc": 1 - 0.7 / epochs_ - rng.uniform(0, 0.1, epochs),
        "lr": 0.01, "epoch_time_s": train_time_s / epochs, "elapsed_s": epochs_ * train_time_s / epochs,
    })
    curves.to_csv(root / "metrics.csv", index=False)
    plot_curves(curves, root / "curves.png", title=f"Training & Validation Metrics: {model}")
    best = int(curves["val_acc"].idxmax())
    summary = {
        "model": model, "encoding": data.encoding.name, "best_epoch": int(curves.loc[best, "epoch"]),
        "best_val_acc": float(curves.loc[best, "val_acc"]), "best_val_loss": float(curves.loc[best, "val_loss"]),
        "train_time_s": train_time_s, "epochs_run": epochs, "num_parameters": count_parameters(net), "device": "cpu",
    }
    (root / "summary.json").write_text(json.dumps(summary))
    return root
