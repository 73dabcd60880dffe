"""``birdspec demo``: the whole pipeline on built-in synthetic calls, in about 4 minutes on a 2-core CPU.

synthesize a BirdCLEF-2021-format dataset -> prepare -> train the study's two
models (mobilenetv2-seed and resnet18, CPU) -> evaluate -> predict a longer
synthetic soundscape that no model saw -> compare -> one HTML report. The
classes are synthetic call types (trill, down-slurred whistle, harmonic stack,
buzz) with varied pitch, tempo, loudness, noise and silence — never presented
as real species.

Where the time goes on 2 idle CPU cores with the defaults (218 s measured for
``time birdspec demo`` on a 2-core Intel Xeon, 2026-12-07): synthesis and
prepare 4 s (one process: worker start-up would cost more than decoding
8 minutes of audio), training 88 s (MobileNetV2) + 117 s (ResNet18; 6 epochs
of random 2 s crops, a fixed number per recording and epoch, and 40 % no-bird
samples, one model after the other in this process with all cores given to
torch), evaluation 4 s, the soundscape 3 s and the report 3 s; the rest is
start-up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdspec.config import EncodingConfig
from birdspec.errors import ConfigError
from birdspec.models.checkpoint import run_checkpoint

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DemoModel:
    """One model of the demo and its training budget (per epoch: ``crops_per_recording`` crops of every
    training recording, in batches of ``batch_size``; ``lr`` is the one-cycle schedule's peak)."""

    name: str
    lr: float
    batch_size: int
    crops_per_recording: int


DEMO_MODELS = (
    DemoModel("mobilenetv2-seed", lr=0.01, batch_size=16, crops_per_recording=10),
    DemoModel("resnet18", lr=0.002, batch_size=8, crops_per_recording=6),
)
"""The study's two models. ResNet18 costs ~3x MobileNetV2 per sample on a CPU, so it sees fewer crops,
in smaller batches (more updates for the same compute)."""

DEMO_NOCALL_FRACTION = 0.4
"""The demo's share of no-bird training samples (new runs' default: 0.2). Its synthetic buzzes and trills are
close to its synthetic noise and rain backgrounds: with 0.2 and 4 epochs, one CPU's arithmetic (a 2-core Intel
Xeon, 2026-12-07) gave a model at chance that labelled silence and noise, another's (AMD EPYC) a good one. With
0.4 and 6 epochs, seeds 0 and 1 there left silence, white and pink noise, wind and rain unlabelled."""
SOUNDSCAPE_SEED_OFFSET = 1_000_003
"""The soundscape's seed is the demo seed plus this, so it never repeats a training recording's calls."""
NOISE_STRETCH_DBFS = -30.0
"""The level (RMS) of the pink noise of the soundscape's noise-only stretch."""
SOUNDSCAPE_FILE = "soundscape.ogg"
"""The demo's 60 s synthetic soundscape, in ``OUT/soundscape/``."""


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (the defaults finish in about 4 minutes on 2 otherwise idle CPU cores).

    Attributes:
        per_class: synthetic training/validation recordings per class (split 70/30).
        min_duration_s / max_duration_s: their length range.
        epochs: training epochs of each model (each epoch draws the model's
            :attr:`DemoModel.crops_per_recording` random crops of every training recording).
        crop_s: training crop length (validation and evaluation score full 5 s windows).
        soundscape_s: length of the calls part of the synthetic soundscape predicted after training (0: skip it).
        silence_s / noise_s: after the calls, a stretch of digital silence and one of pink noise alone
            (:data:`NOISE_STRETCH_DBFS`): the model must leave both unlabelled.
        detect_min_conf: a window's top class counts as a detection at this score or above (None: the
            model's own per-class detection thresholds, as ``birdspec predict`` uses them).
        threads: torch CPU threads (None: all cores available to this process).
    """

    per_class: int = 10
    min_duration_s: float = 8.0
    max_duration_s: float = 16.0
    epochs: int = 6
    crop_s: float = 2.0
    soundscape_s: float = 60.0
    silence_s: float = 10.0
    noise_s: float = 10.0
    detect_min_conf: float | None = None
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.per_class < 4:
            raise ConfigError(f"--per-class must be >= 4, got {self.per_class}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ConfigError(f"need 0 < min_duration_s <= max_duration_s, got {self.min_duration_s}, {self.max_duration_s}")
        if not 0 < self.crop_s <= 5.0:
            raise ConfigError(f"crop_s must be in (0, 5], got {self.crop_s}")
        if self.soundscape_s != 0 and not self.soundscape_s >= 10:
            raise ConfigError(f"--soundscape-s must be 0 (skip) or >= 10, got {self.soundscape_s}")
        if self.detect_min_conf is not None and not 0 <= self.detect_min_conf <= 1:
            raise ConfigError(f"detect_min_conf must be in [0, 1], got {self.detect_min_conf}")
        if self.silence_s < 0 or self.noise_s < 0:
            raise ConfigError(f"silence_s and noise_s must be >= 0, got {self.silence_s}, {self.noise_s}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


@dataclass
class DemoResult:
    """Where the demo wrote things, and what the models reached.

    ``scores`` maps each model to its recording-level validation accuracy and macro F1;
    ``soundscape`` is None when it was skipped (see :class:`birdspec.evaluation.soundscape_plot.SoundscapeSummary`).
    """

    out_dir: Path
    dataset_dir: Path
    runs: list[Path]
    report: Path
    scores: dict[str, dict[str, float | None]]
    chance: float
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    soundscape: Any = None


def _set_threads(threads: int | None) -> int:
    """Give torch ``threads`` CPU threads (default: every core this process may use); return the number."""
    import torch

    from birdspec.runtime import cpu_count, set_cpu_threads

    set_cpu_threads(cpu_count() if threads is None else threads)  # DemoConfig refuses threads < 1
    return torch.get_num_threads()


def _synthesize(out: Path, cfg: DemoConfig) -> Path:
    """The synthetic BirdCLEF-format source (made once; reused on a re-run)."""
    import shutil

    from birdspec.data.catalog_layouts import BIRDCLEF_METADATA_FILES
    from birdspec.data.synthetic import CLASSES, make_synthetic_birdclef

    source = out / "synthetic-birdclef"
    if (source / BIRDCLEF_METADATA_FILES[0]).is_file():
        log.info("1/6 reusing synthetic recordings in %s", source)
        return source
    log.info("1/6 synthesizing %d recordings of %d synthetic call types in %s", cfg.per_class * len(CLASSES), len(CLASSES), source)
    tmp = out / "synthetic-birdclef.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    make_synthetic_birdclef(
        tmp, per_class=cfg.per_class, min_duration_s=cfg.min_duration_s, max_duration_s=cfg.max_duration_s, seed=cfg.seed
    )
    tmp.rename(source)
    return source


def prepare_demo_data(out: Path, cfg: DemoConfig) -> Path:
    """The demo's synthetic recordings, prepared (32 kHz mono, 5 s windows, 70/30 split) into ``out/prepared``."""
    from birdspec.data.prepare import prepare

    source = _synthesize(out, cfg)
    log.info("2/6 preparing (32 kHz mono, 5 s windows, 70/30 split)")
    # one process: starting decoding workers costs more than decoding this little audio
    return Path(prepare(
        source, out / "prepared", encoding=EncodingConfig(name="window", short_policy="pad"), val_fraction=0.3, seed=cfg.seed,
        workers=1, progress=False,
    ))


def train_demo_model(spec: DemoModel, dataset: Path, out: Path, cfg: DemoConfig) -> Path:
    """Train one of :data:`DEMO_MODELS` into ``out/runs/<model>`` (replaced) with birdspec's defaults for new
    runs (the level-aware input, no-bird samples: :data:`DEMO_NOCALL_FRACTION` of them, detection thresholds);
    returns the run folder."""
    import shutil

    from birdspec.prediction.onnx_runtime import export_beside
    from birdspec.training import TrainConfig, train

    log.info(
        "3/6 training %s on the %s: %d epochs of %d random %.1f s crops per recording, batch %d",
        spec.name, cfg.device, cfg.epochs, spec.crops_per_recording, cfg.crop_s, spec.batch_size,
    )
    run_dir = out / "runs" / spec.name
    shutil.rmtree(run_dir, ignore_errors=True)
    train_cfg = TrainConfig(
        model=spec.name,
        epochs=cfg.epochs,
        lr=spec.lr,
        batch_size=spec.batch_size,
        schedule="onecycle",
        random_crop=True,
        crops_per_recording=spec.crops_per_recording,
        crop_s=cfg.crop_s,
        time_mask_frames=10,
        freq_mask_bins=12,
        nocall_fraction=DEMO_NOCALL_FRACTION,
        device=cfg.device,
        seed=cfg.seed,
        workers=cfg.workers,
    )
    train(dataset, run_dir, train_cfg, export=export_beside)
    return run_dir


def run_demo(out_dir: str | Path, config: DemoConfig | None = None) -> DemoResult:
    """Run the demo into ``out_dir`` and return where everything is.

    Re-running reuses the synthetic data and the prepared dataset; the run
    directories, the soundscape and the report are replaced.
    """
    from birdspec.data.synthetic import CLASSES
    from birdspec.evaluation.compare import compare_runs
    from birdspec.evaluation.evaluate import evaluate_run

    cfg = config or DemoConfig()
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    threads = _set_threads(cfg.threads)

    cpu = [time.process_time()]

    def step(name: str, started: float) -> None:
        steps[name] = round(time.perf_counter() - started, 1)
        used, cpu[0] = time.process_time() - cpu[0], time.process_time()
        log.info("  %s done in %.1f s (CPU time of this process %.1f s)", name, steps[name], used)

    t = time.perf_counter()
    dataset = prepare_demo_data(out, cfg)
    step("synthesize and prepare", t)

    runs = []
    for spec in DEMO_MODELS:
        t = time.perf_counter()
        runs.append(train_demo_model(spec, dataset, out, cfg))
        step(f"train {spec.name} ({threads} CPU threads)", t)

    t = time.perf_counter()
    log.info("4/6 evaluating the best checkpoints on the validation recordings")
    evaluations = [evaluate_run(run, device=cfg.device) for run in runs]
    step("evaluate", t)

    extra = []
    summary = None
    if cfg.soundscape_s:
        t = time.perf_counter()
        log.info("5/6 predicting a %.0f s synthetic soundscape (not used in training) with %s", cfg.soundscape_s, runs[0].name)
        summary, section = run_soundscape(out / "soundscape", run_checkpoint(runs[0], "best"), cfg)
        extra.append(section)
        step("soundscape", t)

    t = time.perf_counter()
    log.info("6/6 writing the comparison report")
    compared = compare_runs(
        runs, out_dir=out / "report", device=cfg.device, title="birdspec demo (synthetic calls)", timing_repeats=3,
        extra_sections=extra,
    )
    step("compare", t)

    scores = {}
    for run, evaluation in zip(runs, evaluations, strict=True):
        rec = dict(evaluation.metrics.get("recording") or {})
        scores[run.name] = {"accuracy": rec.get("accuracy"), "macro_f1": rec.get("macro_f1")}
    return DemoResult(
        out_dir=out,
        dataset_dir=Path(dataset),
        runs=runs,
        report=compared.report,
        scores=scores,
        chance=1.0 / len(CLASSES),
        seconds=round(time.perf_counter() - t0, 1),
        steps=steps,
        soundscape=summary,
    )


def run_soundscape(out_dir: Path, checkpoint: Path, cfg: DemoConfig) -> tuple[Any, Any]:
    """Synthesize the soundscape (calls, then a silent and a noise-only stretch), predict it with
    ``checkpoint`` at its own detection thresholds and draw it.

    Writes ``soundscape.ogg``, ``calls.csv`` (the truth), ``predictions.csv``
    (every window's class scores) and ``soundscape.png`` into ``out_dir``.
    Returns ``(SoundscapeSummary, report Section)``.
    """
    import shutil

    import numpy as np

    from birdspec.data.backgrounds import synth_background
    from birdspec.data.soundscape import CALLS_FILE
    from birdspec.data.synthetic import make_soundscape, write_ogg
    from birdspec.evaluation.soundscape_plot import (
        plot_soundscape,
        soundscape_section,
        summarize_detections,
    )
    from birdspec.prediction.predictor import Predictor

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    scape = make_soundscape(cfg.soundscape_s, seed=cfg.seed + SOUNDSCAPE_SEED_OFFSET)
    sr = scape.sample_rate_hz
    rng = np.random.default_rng(cfg.seed + SOUNDSCAPE_SEED_OFFSET)
    silence = np.zeros(round(cfg.silence_s * sr), dtype=np.float32)
    noise = synth_background("pink", num_samples=round(cfg.noise_s * sr), level_dbfs=NOISE_STRETCH_DBFS, rng=rng)
    wave = np.concatenate([scape.wave, silence, noise])
    t0, t1 = scape.duration_s, scape.duration_s + silence.size / sr
    stretches = [(name, a, b) for name, a, b in (("silent", t0, t1), ("noise-only", t1, wave.size / sr)) if b > a]
    audio_path = out_dir / SOUNDSCAPE_FILE
    write_ogg(audio_path, wave, sr)
    scape.calls.to_csv(out_dir / CALLS_FILE, index=False, float_format="%.4f")
    predictor = Predictor(str(checkpoint), scores="all", min_conf=cfg.detect_min_conf)
    predictions = predictor.predict_file(str(audio_path))
    predictions.to_csv(out_dir / "predictions.csv", index=False, float_format="%.4f")
    thresholds = predictor.min_conf
    summary = summarize_detections(scape.calls, predictions, min_conf=thresholds, duration_s=wave.size / sr,
                                   classes=predictor.classes, stretches=stretches)
    png = plot_soundscape(
        wave, sr, scape.calls, predictions, out_dir / "soundscape.png", min_conf=thresholds, classes=predictor.classes,
        title=f"{wave.size / sr:.0f} s synthetic soundscape, predicted by {checkpoint.parent.parent.name}",
    )
    log.info("soundscape: %s", summary.text())
    return summary, soundscape_section(png, summary, model=checkpoint.parent.parent.name, folder=out_dir)
