"""Shared fixtures: tiny synthetic prepared datasets (session-scoped), the real shared data, and the serve tests'
fixtures (serve_fixtures.py: the trained run, the app's folders and client)."""

from __future__ import annotations

from pathlib import Path

import pytest

from birdspec.config import EncodingConfig, FrontendConfig
from birdspec.runtime import use_fast_cpu_math

from helpers import shared_data_dir, write_prepared
from serve_fixtures import serve_client, serve_config, serve_run  # noqa: F401 - the serve tests' fixtures


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite: the tensors are tiny, and on a small (or shared)
    machine spinning thread pools made CPU training 3-5x slower. Denormals flushed as in training."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    use_fast_cpu_math()
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _threads_back_to_one():
    """Back to one thread after every test: code under test (the demo, ``predict --threads``, a Predictor)
    sets PyTorch's process-wide thread count, and sums differ with it, so a model trained by a later test
    depended on which tests ran before it (the toad test's model differed between a run of its file and of
    the whole suite)."""
    import torch

    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_stack_dataset(tmp_path_factory) -> Path:
    """3 classes x 8 recordings of 3 s; stack encoding of 2 x 1 s windows (tile)."""
    return write_prepared(
        tmp_path_factory.mktemp("tiny_stack") / "ds",
        encoding=EncodingConfig(name="stack10", num_windows=2, window_s=1.0, short_policy="tile"),
        folds=4,
    )


@pytest.fixture(scope="session")
def tiny_window_dataset(tmp_path_factory) -> Path:
    """3 classes x 8 recordings of 3 s; window encoding of 1 s windows (3 per recording)."""
    return write_prepared(
        tmp_path_factory.mktemp("tiny_window") / "ds",
        encoding=EncodingConfig(name="window", window_s=1.0, short_policy="pad"),
        folds=4,
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings in ../shared/data (skips the test when absent)."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("shared data (../shared/data or $BIRDSPEC_SHARED_DATA) not present")
    return d


@pytest.fixture(scope="session")
def reed_warblers(shared_data) -> Path:
    d = shared_data / "xc-reed-warblers"
    if not (d / "train_metadata.csv").is_file():
        pytest.skip("xc-reed-warblers not present in shared data")
    return d


FAST_FRONTEND = FrontendConfig(n_fft=512, hop_length=1000, n_mels=32)
"""A small log-mel (32 x 33 per 1 s window) keeps real training in tests well under a second per run."""


@pytest.fixture(scope="session")
def fast_dataset(tmp_path_factory) -> Path:
    """3 classes x 8 recordings of 2 s, stack of 2 x 1 s windows, small log-mel (fast training), 4 folds."""
    return write_prepared(
        tmp_path_factory.mktemp("fast") / "ds", duration_s=2.0, frontend=FAST_FRONTEND, folds=4,
        encoding=EncodingConfig(name="stack10", num_windows=2, window_s=1.0, short_policy="tile"),
    )
