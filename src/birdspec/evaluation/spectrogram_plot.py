"""The same stretch of a recording under several spectrogram types, stacked (``birdspec spectrogram``).

- :func:`compute_spectrograms`: each type's spectrogram of a waveform, computed by the very
  :class:`~birdspec.features.Frontend` the models use, with what its rows and values mean;
- :func:`plot_spectrograms`: one panel per type sharing the time axis (seconds in the recording),
  frequency in kHz at the true row centres (or coefficient index for mfcc), a colour bar per panel.

Mel rows are evenly spaced in mel, not in Hz: panels are drawn on the row index and the kHz ticks
sit where the band centres equal those frequencies (interpolated), so the axis is exact while the
spectrogram keeps the resolution the model sees.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from birdspec.config import FRONTEND_TYPES, FrontendConfig
from birdspec.evaluation.plots import DPI
from birdspec.fileio import save_figure

log = logging.getLogger(__name__)

KHZ_TICK_CANDIDATES = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0)
MIN_TICK_GAP = 0.07
"""Smallest distance between two frequency ticks, as a fraction of the panel height."""
ROBUST_PERCENTILES = (1.0, 99.5)
"""Colour limits of PCEN panels (outliers would wash the rest out; the colour bar shows the clip)."""
MFCC_PERCENTILE = 95.0
"""MFCC colours span +-this percentile of |value| over coefficients 1 and up (c0, and often c1, go off scale)."""


@dataclass(frozen=True)
class SpectrogramPanel:
    """One type's spectrogram of the stretch, with what its axes mean.

    Attributes:
        kind: the type (:data:`birdspec.config.FRONTENDS`).
        values: ``(rows, frames)`` float32, as the model's frontend computes them.
        row_values: each row's centre frequency in Hz, or coefficient index.
        row_unit: ``"Hz"`` or ``"coefficient"``.
        times_s: each frame's centre in seconds from the start of the recording.
        value_label: the colour bar's unit.
        config: the type's settings.
    """

    kind: str
    values: np.ndarray
    row_values: np.ndarray
    row_unit: str
    times_s: np.ndarray
    value_label: str
    config: FrontendConfig


def compute_spectrograms(wave: np.ndarray, kinds: Sequence[str], *, start_s: float = 0.0,
                         options: Mapping[str, Any] | None = None) -> list[SpectrogramPanel]:
    """Each type's spectrogram of ``wave`` (mono float32 at 32 kHz), one :class:`SpectrogramPanel` each.

    ``options`` (e.g. ``{"n_fft": 1024}``) apply to every type (:meth:`FrontendConfig.for_kind`).

    Raises:
        ConfigError: an unknown type or option, or an invalid setting.
    """
    import torch

    from birdspec.features.tables import frequency_axis
    from birdspec.features.torch_frontend import Frontend

    configs = [FrontendConfig.for_kind(kind, **dict(options or {})) for kind in kinds]  # validate all first
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    panels = []
    for cfg in configs:
        with torch.no_grad():
            values = Frontend(cfg)(x)[0].numpy()
        rows, unit = frequency_axis(cfg)
        times = start_s + np.arange(values.shape[-1]) * cfg.hop_length / cfg.sample_rate_hz
        panels.append(SpectrogramPanel(cfg.kind, values, rows, unit, times, cfg.type.unit, cfg))
    return panels


def _frequency_ticks(row_hz: np.ndarray) -> tuple[list[float], list[str]]:
    """Row positions (fractional row index) and labels of kHz ticks at the true row centres."""
    n = len(row_hz)
    linear_rows = np.allclose(np.diff(row_hz), row_hz[1] - row_hz[0]) if n > 2 else True
    candidates = np.arange(1.0, 17.0) if linear_rows else np.array(KHZ_TICK_CANDIDATES)
    positions: list[float] = []
    labels: list[str] = []
    for khz in candidates:
        hz = khz * 1000.0
        if not row_hz[0] <= hz <= row_hz[-1]:
            continue
        pos = float(np.interp(hz, row_hz, np.arange(n)))
        if positions and pos - positions[-1] < MIN_TICK_GAP * n:
            continue
        positions.append(pos)
        labels.append(f"{khz:g}")
    return positions, labels


def _colour_limits(panel: SpectrogramPanel) -> tuple[float, float, str]:
    """``vmin, vmax`` and the colour bar's ``extend`` for a panel."""
    v = panel.values
    if panel.value_label == "dB":
        top = float(v.max())
        floor = panel.config.top_db if panel.config.top_db is not None else 80.0
        return top - floor, top, "neither"
    if FRONTEND_TYPES[panel.kind].rows == "coefficients":  # diverging, centred on 0; c0 (overall level) would swamp the rest
        rest = v[1:] if v.shape[0] > 1 else v
        lim = float(max(np.percentile(np.abs(rest), MFCC_PERCENTILE), 1e-6))
        return -lim, lim, "both"
    lo, hi = np.percentile(v, ROBUST_PERCENTILES)
    return float(lo), float(max(hi, lo + 1e-6)), "both"


def _draw_panel(fig: Figure, ax: Any, panel: SpectrogramPanel) -> None:
    """One spectrogram with its frequency axis and colour bar."""
    rows, frames = panel.values.shape
    hop_s = panel.config.hop_length / panel.config.sample_rate_hz
    x_edges = panel.times_s[0] + (np.arange(frames + 1) - 0.5) * hop_s
    y_edges = np.arange(rows + 1) - 0.5
    vmin, vmax, extend = _colour_limits(panel)
    cmap = "RdBu_r" if FRONTEND_TYPES[panel.kind].rows == "coefficients" else "magma"
    mesh = ax.pcolormesh(x_edges, y_edges, panel.values, cmap=cmap, vmin=vmin, vmax=vmax,
                         shading="flat", rasterized=True)
    cbar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04, extend=extend)
    cbar.set_label(panel.value_label)
    if panel.row_unit == "Hz":
        positions, labels = _frequency_ticks(panel.row_values)
        ax.set_yticks(positions)
        ax.set_yticklabels(labels)
        mel = FRONTEND_TYPES[panel.kind].rows == "mel"
        ax.set_ylabel("frequency (kHz)\nmel-spaced rows" if mel else "frequency (kHz)")
    else:
        ax.set_ylabel("MFCC index")
    ax.set_ylim(-0.5, rows - 0.5)
    title = f"{panel.kind}: {FRONTEND_TYPES[panel.kind].title}"
    if FRONTEND_TYPES[panel.kind].rows == "coefficients":
        title += f"; colours clipped at \u00b1{vmax:.0f} (|c0| up to {np.abs(panel.values[0]).max():.0f})"
    ax.set_title(title, loc="left", fontsize=10)


def plot_spectrograms(wave: np.ndarray, sample_rate_hz: int, kinds: Sequence[str], out_path: str | Path, *,
                      start_s: float = 0.0, title: str | None = None, options: Mapping[str, Any] | None = None,
                      dpi: int = DPI) -> Path:
    """Draw ``wave`` under each type in ``kinds``, stacked with a shared time axis; write a PNG.

    Args:
        wave: mono float32 audio at ``sample_rate_hz`` (the frontends' rate, 32 kHz).
        sample_rate_hz: its rate (checked against the types' settings).
        kinds: spectrogram types, top to bottom.
        out_path: the PNG to write (atomically).
        start_s: where ``wave`` starts in the recording (the time axis shows recording time).
        title: the figure's title (default: none).
        options: settings applied to every type (:meth:`FrontendConfig.for_kind`).

    Raises:
        ConfigError: unknown type or option, a sample-rate mismatch, or empty audio.
    """
    from birdspec.errors import ConfigError

    if wave.size == 0:
        raise ConfigError("no audio to draw (empty stretch)")
    panels = compute_spectrograms(wave, kinds, start_s=start_s, options=options)
    if any(p.config.sample_rate_hz != sample_rate_hz for p in panels):
        raise ConfigError(f"audio at {sample_rate_hz} Hz, the spectrogram types expect {panels[0].config.sample_rate_hz} Hz")
    fig = Figure(figsize=(11, 2.3 * len(panels) + (0.5 if title else 0.2)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw_panel(fig, ax, panel)
    axes[-1].set_xlim(start_s, start_s + wave.size / sample_rate_hz)
    axes[-1].set_xlabel("time in the recording (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    path = save_figure(fig, out_path, dpi=dpi)
    log.debug("wrote %s", path)
    return path
