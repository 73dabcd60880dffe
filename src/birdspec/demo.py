"""``birdspec demo``: the whole pipeline on built-in synthetic calls, in a few minutes on a laptop CPU.

synthesize a BirdCLEF-2021-format dataset -> prepare -> train the study's two
models (mobilenetv2-seed and resnet18, CPU) -> evaluate -> compare -> one HTML report. The classes are synthetic
call types (trill, down-slurred whistle, harmonic stack, buzz) with varied
pitch, tempo, loudness, noise and silence — never presented as real species.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from birdspec.config import EncodingConfig
from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

DEMO_MODELS = (("mobilenetv2-seed", 0.003), ("resnet18", 0.001))
"""The study's two models, with the peak learning rates of the demo's one-cycle schedule."""


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (the defaults finish in a few minutes on 2 CPU cores)."""

    per_class: int = 16
    min_duration_s: float = 12.0
    max_duration_s: float = 30.0
    epochs: int = 10
    batch_size: int = 16
    seed: int = 0
    device: str = "cpu"
    workers: int = 0

    def __post_init__(self) -> None:
        if self.per_class < 4:
            raise ConfigError(f"--per-class must be >= 4, got {self.per_class}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")


@dataclass
class DemoResult:
    """Where the demo wrote things, and what the models reached.

    ``scores`` maps each model to its recording-level validation accuracy and macro F1.
    """

    out_dir: Path
    dataset_dir: Path
    runs: list[Path]
    report: Path
    scores: dict[str, dict[str, float | None]]
    chance: float
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)


def run_demo(out_dir: str | Path, config: DemoConfig | None = None) -> DemoResult:
    """Run the demo into ``out_dir`` and return where everything is.

    Re-running reuses the synthetic data and the prepared dataset; the run
    directory is replaced.
    """
    import shutil

    from birdspec.data.prepare import prepare
    from birdspec.data.synthetic import CLASSES, make_synthetic_birdclef
    from birdspec.evaluation.compare import compare_runs
    from birdspec.evaluation.evaluate import evaluate_run
    from birdspec.training import TrainConfig, train

    cfg = config or DemoConfig()
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        steps[name] = round(time.perf_counter() - started, 1)
        log.info("  %s done in %.1f s", name, steps[name])

    source = out / "synthetic-birdclef"
    t = time.perf_counter()
    if not (source / "train_metadata.csv").is_file():
        log.info("1/5 synthesizing %d recordings of %d synthetic call types in %s", cfg.per_class * len(CLASSES), len(CLASSES), source)
        tmp = out / "synthetic-birdclef.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        make_synthetic_birdclef(
            tmp, per_class=cfg.per_class, min_duration_s=cfg.min_duration_s, max_duration_s=cfg.max_duration_s, seed=cfg.seed
        )
        tmp.rename(source)
    else:
        log.info("1/5 reusing synthetic recordings in %s", source)
    step("synthesize", t)

    t = time.perf_counter()
    log.info("2/5 preparing (32 kHz mono, 5 s windows, 70/30 split)")
    dataset = prepare(
        source, out / "prepared", encoding=EncodingConfig(name="window", short_policy="pad"), val_fraction=0.3, seed=cfg.seed,
        workers=None, progress=False,
    )
    step("prepare", t)

    runs = []
    for model, lr in DEMO_MODELS:
        t = time.perf_counter()
        log.info("3/5 training %s on the %s (%d epochs)", model, cfg.device, cfg.epochs)
        run_dir = out / "runs" / model
        shutil.rmtree(run_dir, ignore_errors=True)
        train_cfg = TrainConfig(
            model=model,
            epochs=cfg.epochs,
            lr=lr,
            batch_size=cfg.batch_size,
            schedule="onecycle",
            time_mask_frames=20,
            freq_mask_bins=12,
            device=cfg.device,
            seed=cfg.seed,
            workers=cfg.workers,
        )
        train(dataset, run_dir, train_cfg)
        runs.append(run_dir)
        step(f"train {model}", t)

    t = time.perf_counter()
    log.info("4/5 evaluating the best checkpoints on the validation recordings")
    evaluations = [evaluate_run(run, device=cfg.device) for run in runs]
    step("evaluate", t)

    t = time.perf_counter()
    log.info("5/5 writing the comparison report")
    compared = compare_runs(runs, out_dir=out / "report", device=cfg.device, title="birdspec demo (synthetic calls)")
    step("compare", t)

    scores = {}
    for run, evaluation in zip(runs, evaluations):
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
    )

