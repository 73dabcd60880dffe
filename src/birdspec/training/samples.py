"""What the training and validation loaders yield, in one place: targets, no-bird samples, mixing.

- **Targets**: label ids for single-label runs; ``(K,)`` vectors from primary + secondary labels for
  ``labels='multi'`` (:func:`~birdspec.data.multilabel.label_targets`).
- **No-bird samples** (``nocall_fraction`` > 0; the default for per-window runs): crops of quiet
  stretches of the recordings, of ``--background`` recordings and of the built-in synthetic
  backgrounds (:class:`~birdspec.data.nocall.NoCallSource`). Their target is the implicit no-bird
  class K of a single-label run (activation ``softmax-background``) or all zeros. Training draws new
  crops every epoch; validation gets its own fixed ones (from the validation recordings' quiet
  stretches, the same background folders and the synthetic kinds), so ``val_loss``/``val_acc`` and the
  detection thresholds (:mod:`birdspec.training.detection`) see "no bird" too.
- **Background mixing** (``background_mix_dir``, ``mix_nocall``: the training side's no-bird audio): under
  training samples only.
- **Models that read embeddings** (``birdnet-*`` heads): a sample is a recording's window embeddings and
  a no-bird sample one of the no-bird clips ``birdspec embed`` cached (an output window as prediction
  embeds it: :mod:`birdspec.data.nocall_embeddings`), with the same share, targets and fixed validation
  samples: the training rows' quiet-stretch clips and the training part of the synthetic (and
  ``--background``) clips in training, the validation rows' and the validation part in validation
  (:func:`embedding_sample_sets`, :func:`embedding_threshold_sets`). No mixing (it is audio).

:func:`sample_sets` returns the three datasets a run needs (:class:`SampleSets`);
:func:`threshold_sets` the windows and no-bird samples the thresholds are chosen on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdspec.errors import ConfigError

log = logging.getLogger(__name__)

MIN_NOCALL_VAL = 32
"""At least this many fixed no-bird validation samples when a run has no-bird samples."""
VAL_SEED_OFFSET = 7_919
"""Fixed no-bird samples are seeded ``(seed + VAL_SEED_OFFSET, i)`` (validation) and ``(seed +
2 * VAL_SEED_OFFSET, i)`` (thresholds on the training rows): never the training draws."""


@dataclass
class SampleSets:
    """The datasets of a run.

    Attributes:
        train: training samples (targets, no-bird samples, mixing).
        val: the validation recordings' samples with the run's targets (no no-bird samples): what
            ``predictions_val.csv`` and evaluation describe.
        val_fit: ``val`` followed by the fixed no-bird validation samples: what Lightning validates on.
    """

    train: Any
    val: Any
    val_fit: Any


def nocall_target(cfg: Any, num_classes: int) -> Any:
    """The target of a no-bird sample: class id K (single-label) or a ``(K,)`` zero vector (multi-label)."""
    return np.zeros(num_classes, dtype=np.float32) if cfg.labels == "multi" else int(num_classes)


def nocall_count(num_samples: int, fraction: float, *, minimum: int = 0) -> int:
    """No-bird samples to add so that they are ``fraction`` of all samples (at least ``minimum`` when > 0)."""
    if fraction <= 0:
        return 0
    return max(int(minimum), int(round(num_samples * fraction / (1.0 - fraction))))


class _Backgrounds:
    """Background folders read once each (``--background`` and ``--background-mix`` may name the same)."""

    def __init__(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._loaded: dict[str, list] = {}

    def __call__(self, folder: str | None) -> list:
        if not folder:
            return []
        from birdspec.data.nocall import load_backgrounds

        key = str(Path(folder).resolve())
        if key not in self._loaded:
            self._loaded[key] = load_backgrounds(folder, sample_rate_hz=self.sample_rate_hz)
        return self._loaded[key]


def nocall_source(cfg: Any, data: Any, rows: Sequence[int] | np.ndarray, backgrounds: Callable[[str | None], list],
                  stretches: list[tuple[int, int, int, int]] | None = None) -> Any:
    """The no-bird audio of manifest ``rows``: their quiet stretches (``stretches`` when already found),
    ``--background`` recordings, (``synthetic_nocall``) the synthetic backgrounds and (``synthetic_calls``)
    synthetic other calls."""
    from birdspec.data.nocall import NoCallSource, find_stretches

    if stretches is None:
        stretches = find_stretches(data, sorted({int(r) for r in rows}))
    return NoCallSource(data.store, stretches, backgrounds(cfg.background_dir), synthetic=cfg.synthetic_nocall,
                        calls=cfg.synthetic_calls, sample_rate_hz=data.sample_rate_hz)


def _targets(cfg: Any, data: Any) -> Callable[[Any], Any]:
    """Wraps a dataset of label ids into one of the run's targets."""
    if cfg.labels != "multi":
        return lambda ds: ds
    from birdspec.data.multilabel import MultiLabelDataset, label_targets, log_targets

    found = label_targets(data.manifest, data.classes, secondary_weight=cfg.secondary_weight)
    log_targets(found, rows=len(data.manifest))
    return lambda ds: MultiLabelDataset(ds, found.targets)


def check_model_input(cfg: Any, model_input: str) -> None:
    """No-bird crops and background mixing are audio: refuse them for models that read other inputs.

    Raises:
        ConfigError: ``nocall_fraction`` > 0, ``background_mix_dir`` or ``mix_nocall`` for a non-waveform model.
    """
    if model_input != "waveform" and ((cfg.nocall_fraction or 0) > 0 or cfg.background_mix_dir or cfg.mix_nocall):
        raise ConfigError(f"no-bird crops, --background-mix and --mix-nocall need a waveform model; {cfg.model} reads "
                          f"{model_input}s (give --nocall-fraction 0)")


def sample_sets(cfg: Any, data: Any, *, model_input: str) -> Callable[[Any, Any], SampleSets]:
    """``(train_set, val_set) -> SampleSets`` for the datasets of label ids :func:`~birdspec.data.inputs.model_dataset`
    built (see the module doc)."""
    if model_input == "embedding":
        return embedding_sample_sets(cfg, data)
    check_model_input(cfg, model_input)
    targets = _targets(cfg, data)
    backgrounds = _Backgrounds(data.sample_rate_hz)
    fraction = float(cfg.nocall_fraction or 0.0)

    def wrap(train_set: Any, val_set: Any) -> SampleSets:
        from birdspec.data.nocall import BackgroundMixer, WithNoCall

        quiet = None
        if cfg.crop_rule == "calls":  # crops labelled with a species start where the quiet stretches are not
            from birdspec.data.nocall import find_stretches

            quiet = find_stretches(data, sorted({int(r) for r in train_set.sample_rows}))
            train_set.avoid_quiet(quiet)
        train, val = targets(train_set), targets(val_set)
        train_src = (nocall_source(cfg, data, train_set.sample_rows, backgrounds, quiet)
                     if fraction > 0 or cfg.mix_nocall else None)
        mixer = None
        if cfg.background_mix_dir or cfg.mix_nocall:
            mixer = BackgroundMixer(backgrounds(cfg.background_mix_dir), snr_db=cfg.background_snr_db,
                                    probability=cfg.background_mix_probability,
                                    source=train_src if cfg.mix_nocall else None)
        if cfg.mix_nocall and train_src is not None:
            log.info("mixing no-bird audio (%s) under %.0f %% of the training samples at %g-%g dB SNR", ", ".join(train_src.kinds),
                     100 * cfg.background_mix_probability, *cfg.background_snr_db)
        if fraction <= 0 or train_src is None:
            return SampleSets(WithNoCall(train, None, 0, None, mixer=mixer) if mixer else train, val, val)
        target = nocall_target(cfg, len(data.classes))
        n_train = nocall_count(len(train), fraction)
        n_val = nocall_count(len(val), fraction, minimum=MIN_NOCALL_VAL)
        val_src = nocall_source(cfg, data, val_set.sample_rows, backgrounds)
        log.info("no-bird samples: %d in training (%.0f %%; %s), %d fixed ones in validation", n_train, 100 * fraction,
                 ", ".join(train_src.kinds), n_val)
        return SampleSets(
            WithNoCall(train, train_src, n_train, target, mixer=mixer),
            val,
            WithNoCall(val, val_src, n_val, target, seed=int(cfg.seed) + VAL_SEED_OFFSET),
        )

    return wrap


def threshold_sets(cfg: Any, data: Any, rows: Sequence[int] | np.ndarray, *, model_input: str, encoding: Any) -> Any:
    """The samples detection thresholds are chosen on over manifest ``rows``: every window of them with
    the run's targets, followed by fixed no-bird samples (as many as validation would get) when the run
    has no-bird samples (seeded apart from validation's)."""
    if model_input == "embedding":
        return embedding_threshold_sets(cfg, data, rows)
    from birdspec.data.inputs import model_dataset
    from birdspec.data.nocall import WithNoCall

    base = model_dataset(data, model_input=model_input, rows=rows, encoding=encoding, random_crop=False)
    windows = _targets(cfg, data)(base)
    fraction = float(cfg.nocall_fraction or 0.0)
    if fraction <= 0:
        return windows
    count = nocall_count(len(windows), fraction, minimum=MIN_NOCALL_VAL)
    source = nocall_source(cfg, data, rows, _Backgrounds(data.sample_rate_hz))
    return WithNoCall(windows, source, count, nocall_target(cfg, len(data.classes)),
                      seed=int(cfg.seed) + 2 * VAL_SEED_OFFSET)


def _nocall_clips(cfg: Any, dataset: Any, rows: Sequence[int] | np.ndarray, part: str) -> Any:
    """The cached no-bird clips of one side of an embedding run (:class:`~birdspec.data.nocall_embeddings.NoCallClips`)."""
    from birdspec.data.nocall_embeddings import NoCallClips

    return NoCallClips(dataset.cache, rows=np.unique(np.asarray(rows, dtype=np.int64)), part=part,
                       synthetic=cfg.synthetic_nocall, background_dir=cfg.background_dir)


def embedding_sample_sets(cfg: Any, data: Any) -> Callable[[Any, Any], SampleSets]:
    """:func:`sample_sets` of models that read cached embeddings: no-bird samples are the cache's no-bird clips.

    Raises:
        ConfigError: ``background_mix_dir`` or ``mix_nocall`` (mixing is audio), or a ``background_dir`` the cache
            has no clips of.
        DataError: no-bird samples asked for and the cache has none (says to run ``birdspec embed`` again).
    """
    if cfg.background_mix_dir or cfg.mix_nocall:
        flag = "--background-mix" if cfg.background_mix_dir else "--mix-nocall"
        raise ConfigError(f"{flag} mixes audio; {cfg.model} reads cached embeddings (drop {flag})")
    targets = _targets(cfg, data)
    fraction = float(cfg.nocall_fraction or 0.0)

    def wrap(train_set: Any, val_set: Any) -> SampleSets:
        from birdspec.data.nocall_embeddings import WithNoCallEmbeddings

        train, val = targets(train_set), targets(val_set)
        if fraction <= 0:
            return SampleSets(train, val, val)
        target = nocall_target(cfg, len(data.classes))
        n_train = nocall_count(len(train), fraction)
        n_val = nocall_count(len(val), fraction, minimum=MIN_NOCALL_VAL)
        train_src = _nocall_clips(cfg, train_set, train_set.sample_rows, "train")
        val_src = _nocall_clips(cfg, val_set, val_set.sample_rows, "val")
        log.info("no-bird samples: %d in training (%.0f %%; cached clips: %s), %d fixed ones in validation (%s)", n_train,
                 100 * fraction, train_src.describe(), n_val, val_src.describe())
        return SampleSets(
            WithNoCallEmbeddings(train, train_src, n_train, target),
            val,
            WithNoCallEmbeddings(val, val_src, n_val, target, seed=int(cfg.seed) + VAL_SEED_OFFSET),
        )

    return wrap


def embedding_threshold_sets(cfg: Any, data: Any, rows: Sequence[int] | np.ndarray, *, part: str = "train") -> Any:
    """:func:`threshold_sets` of models that read cached embeddings: every cached window of the recordings of
    ``rows`` as a sample of its own (prediction scores a head on the few windows of one output window, not
    on a whole recording, whose pooled scores run higher), and fixed no-bird samples from their
    quiet-stretch clips and the ``part`` of the synthetic (and background) clips."""
    from birdspec.data.embedding_dataset import EmbeddingDataset
    from birdspec.data.nocall_embeddings import WithNoCallEmbeddings

    base = EmbeddingDataset(data, rows=rows, level="window")
    recordings = _targets(cfg, data)(base)
    fraction = float(cfg.nocall_fraction or 0.0)
    if fraction <= 0:
        return recordings
    count = nocall_count(len(recordings), fraction, minimum=MIN_NOCALL_VAL)
    return WithNoCallEmbeddings(recordings, _nocall_clips(cfg, base, rows, part), count,
                                nocall_target(cfg, len(data.classes)), seed=int(cfg.seed) + 2 * VAL_SEED_OFFSET)


def input_norm_settings(cfg: Any, data: Any, rows: Sequence[int] | np.ndarray, *, encoding: Any, frontend: Any) -> dict:
    """The input norm of a new waveform run (:func:`~birdspec.features.input_norm.norm_settings`); ``level``
    fitted to up to :data:`~birdspec.features.input_norm.LEVEL_FIT_WINDOWS` windows of the training ``rows``
    (evenly spread, no augmentation)."""
    import torch

    from birdspec.data.inputs import model_dataset
    from birdspec.features import build_frontend
    from birdspec.features.input_norm import LEVEL_FIT_WINDOWS, fit_level, norm_settings

    settings = norm_settings(cfg.input_norm, frontend)
    if settings["kind"] != "level":
        return settings
    windows = model_dataset(data, model_input="waveform", rows=rows, encoding=encoding, random_crop=False)
    picks = np.unique(np.linspace(0, len(windows) - 1, num=min(LEVEL_FIT_WINDOWS, len(windows))).round().astype(int))
    fe = build_frontend(frontend).eval()
    with torch.no_grad():
        specs = [fe(windows[int(i)][0][None]).numpy()[0] for i in picks]
    fitted = fit_level(settings, np.stack(specs), what=f"{len(picks)} windows of {len(np.unique(rows))} training recordings")
    log.info("level input norm: floor %.1f dB (white noise at %g dBFS), centre %.2f dB, scale %.2f dB (%s)",
             fitted["floor_db"], fitted["floor_dbfs"], fitted["center_db"], fitted["scale_db"], fitted["fitted_on"])
    return fitted
