"""Call density: the fraction of an archive's windows that hold a species' call, with a credible interval.

The method of Navine et al. (2024), "All thresholds barred: direct estimation of call density in
bioacoustic data" (arXiv 2402.15360), the one behind perch-hoplite's call-density notebook; no
threshold is chosen:

1. every window of the archive has a classifier score for the species; the windows are cut into
   score bins at quantiles of those scores (:func:`geometric_quantiles`: 0, 0.5, 0.75, 0.875, 1 for
   4 bins, so each bin above the first holds half as many windows as the one below it and the rare
   high scores get bins of their own);
2. a fixed number of windows is drawn uniformly at random from each bin (:func:`stratified_sample`)
   and a person says whether the species calls in each (yes / no; unsure verdicts are dropped);
3. per bin ``b``, ``P(call | b)`` has the posterior ``Beta(a0 + yes_b, b0 + no_b)``, and the density
   of a set of windows is ``sum_b w_b P(call | b)``, ``w_b`` the share of those windows in bin ``b``;
   its posterior is sampled by drawing every bin's Beta (:func:`estimate_density`): the point
   estimate is the posterior mean, the interval the equal-tailed quantiles (2.5 % and 97.5 % for
   ``level=0.95``).

Groups (a deployment, a day): a group's weights ``w_b`` come from its own windows, and ``P(call | b)``
from the verdicts of all groups pooled (:func:`estimate_groups`). This assumes ``P(call | b)`` is the
same in every group: the score means the same everywhere. It is not when the groups' densities differ
much, even for a classifier equally good everywhere: a middling score is more often a call where the
species is common, so pooled verdicts pull each group towards the others (two simulated sites at 5 %
and 20 %, 25 verdicts a bin: the sites' intervals held their densities in 23 and 64 of 100 samples).
A group with verdicts of its own (``own_min``, or all its windows, in every bin that holds its windows)
is estimated from those alone, which needs no such assumption (20 verdicts per site and bin: 97 and 94
of 100). Draw the sample per group
(``stratified_sample(groups=...)``) to give every group its own; when every group uses its own, all
windows (``verdicts`` ``groups``) take per bin the groups' own rates weighted by their share of the bin's
windows, right however the sample was spread over the groups, as one Beta per bin whose counts are the
effective sample size of that weighted mean (:func:`_weighted_counts`). Summing the groups' own
posteriors instead adds every group's prior once per bin: with 4 verdicts per site and bin, 4 sites and
1-2 % density (benchmarks/agile.py), that put all windows' interval above the truth in 17-30 of 100
samples, the weighted counts in 0-4. Conditional on how many of a pooled random sample fell into a group,
those are a uniform sample of the group's windows in each bin, so own verdicts from it are fine too.

Prior: ``Beta(0.1, 0.1)``, perch-hoplite's. The prior acts as ``a0`` calls and ``b0`` silent windows
seen in every bin, and the lowest bins hold most of the archive (half of it in the first): Jeffreys'
``Beta(0.5, 0.5)`` adds 0.5 / 26 = 0.019 to a bin verified 0 out of 25, so a species calling in 1 window
in 200 gets an interval above the truth (66 of 100 simulated samples covered it; the uniform prior: 0).
With ``Beta(0.1, 0.1)`` the interval held the true density in 90 to 100 of 100 samples from 0.5 % to
50 % density, for classifiers from poor to good (ROC-AUC 0.86 to 0.998; :func:`simulate_coverage`).

Every window is one Bernoulli draw of its bin's rate; the interval is for the archive's windows as
they are (the bins are large next to the sample). NumPy only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from birdspec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DEFAULT_SCORE_BINS = 4
"""Score bins (geometric quantiles: 0, 0.5, 0.75, 0.875, 1)."""
DEFAULT_PER_BIN = 25
"""Windows to verify per bin (100 in all with 4 bins)."""
DEFAULT_PRIOR = (0.1, 0.1)
"""The prior ``Beta(a0, b0)`` of ``P(call | bin)``, perch-hoplite's (see the module doc)."""
DEFAULT_LEVEL = 0.95
DEFAULT_POSTERIOR_DRAWS = 10_000
VERDICTS_POOLED = "pooled"
VERDICTS_OWN = "own"
VERDICTS_GROUPS = "groups"
"""All windows from the groups' own verdicts, each group's rate per bin weighted by its windows."""


def geometric_quantiles(*, n_bins: int = DEFAULT_SCORE_BINS) -> tuple[float, ...]:
    """Quantile edges ``0, 1/2, 3/4, ..., 1 - 2**-(n_bins-1), 1`` (``n_bins + 1`` of them).

    Raises:
        ConfigError: fewer than 2 bins.
    """
    if n_bins < 2:
        raise ConfigError(f"call density needs at least 2 score bins, got {n_bins}")
    return (0.0, *(1.0 - 2.0 ** -k for k in range(1, n_bins)), 1.0)


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """``quantiles`` as a tuple, checked: from 0 to 1, increasing, at least 3 edges.

    Raises:
        ConfigError: anything else (the message says what is wrong).
    """
    q = tuple(float(x) for x in quantiles)
    if len(q) < 3 or q[0] != 0.0 or q[-1] != 1.0 or any(b <= a for a, b in zip(q, q[1:], strict=False)):
        raise ConfigError(f"quantile edges must rise from 0 to 1 with at least 2 bins (e.g. 0,0.5,0.75,0.875,1), got {q}")
    return q


def bin_edges(scores: np.ndarray, *, quantiles: Sequence[float]) -> np.ndarray:
    """The score values at ``quantiles`` of ``scores`` ``(n,)``: ``(n_bins + 1,)`` edges.

    Raises:
        DataError: no scores, or a score that is not finite.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise DataError("no windows with a score: call density needs the scores of an archive's windows")
    if not np.isfinite(s).all():
        raise DataError(f"{int((~np.isfinite(s)).sum())} scores are not finite numbers; predict again (the scores file is damaged)")
    return np.quantile(s, check_quantiles(quantiles))


def assign_bins(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin ``0 .. len(edges) - 2`` of each score ``(n,)``: ``edges[b] <= score < edges[b + 1]``, the top
    bin including its upper edge; scores outside the edges go to the first or last bin."""
    inner = np.asarray(edges, dtype=np.float64)[1:-1]
    return np.searchsorted(inner, np.asarray(scores, dtype=np.float64), side="right").astype(np.int64)


def stratified_sample(bins: np.ndarray, *, n_bins: int, per_bin: int, seed: int = 0,
                      groups: np.ndarray | None = None) -> np.ndarray:
    """Indices (sorted) of ``per_bin`` windows drawn uniformly without replacement from each bin (all of a
    smaller bin's windows), or from each bin of each group (``groups`` ``(n,)``); the same for the same ``seed``.

    Raises:
        ConfigError: ``per_bin`` below 1.
    """
    if per_bin < 1:
        raise ConfigError(f"--per-bin must be at least 1, got {per_bin}")
    rng = np.random.default_rng(seed)
    b = np.asarray(bins, dtype=np.int64)
    if groups is not None:
        _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        b = g.reshape(-1) * n_bins + b
    picked = [rng.choice(idx, size=min(per_bin, idx.size), replace=False)
              for idx in (np.flatnonzero(b == k) for k in np.unique(b))]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class DensityEstimate:
    """The call density of one group of windows (``group`` ``"all"``: every window).

    Per bin (lowest scores first): ``windows_per_bin`` of the group, ``yes_per_bin`` and ``no_per_bin``
    the verdicts the estimate used (the pooled ones, or the group's own: ``verdicts``). The density is a
    fraction of windows: ``density_mean`` (posterior mean, the point estimate), ``density_median``, and
    ``density_low`` .. ``density_high`` holding ``level`` of the posterior (equal tails).
    """

    group: str
    n_windows: int
    windows_per_bin: tuple[int, ...]
    yes_per_bin: tuple[int, ...]
    no_per_bin: tuple[int, ...]
    verdicts: str
    density_mean: float
    density_median: float
    density_low: float
    density_high: float
    level: float

    @property
    def weights(self) -> tuple[float, ...]:
        """Each bin's share of the group's windows."""
        return tuple(n / self.n_windows for n in self.windows_per_bin) if self.n_windows else ()

    @property
    def width(self) -> float:
        return self.density_high - self.density_low

    def covers(self, density: float) -> bool:
        return self.density_low <= density <= self.density_high


def _check_settings(prior: tuple[float, float], level: float, draws: int) -> None:
    if len(prior) != 2 or min(prior) <= 0:
        raise ConfigError(f"the prior Beta(a0, b0) needs a0 > 0 and b0 > 0, got {prior}")
    if not 0 < level < 1:
        raise ConfigError(f"the interval's level must be between 0 and 1 (e.g. 0.95), got {level}")
    if draws < 100:
        raise ConfigError(f"at least 100 posterior draws are needed for an interval, got {draws}")


def posterior_draws(yes: np.ndarray, no: np.ndarray, *, prior: tuple[float, float] = DEFAULT_PRIOR,
                    draws: int = DEFAULT_POSTERIOR_DRAWS, seed: int = 0) -> np.ndarray:
    """``(n_bins, draws)`` draws of ``P(call | bin)`` from ``Beta(a0 + yes, b0 + no)`` (``yes``, ``no``: ``(n_bins,)``)."""
    rng = np.random.default_rng(seed)
    a = prior[0] + np.asarray(yes, dtype=np.float64)[:, None]
    b = prior[1] + np.asarray(no, dtype=np.float64)[:, None]
    return rng.beta(a, b, size=(a.shape[0], draws))


def _require_verdicts(counts: np.ndarray, yes: np.ndarray, no: np.ndarray, group: str, edges: np.ndarray | None) -> None:
    missing = [k for k in range(counts.size) if counts[k] and yes[k] + no[k] == 0]
    if missing:
        where = ", ".join(f"bin {k}" + (f" (scores {edges[k]:.4g} to {edges[k + 1]:.4g})" if edges is not None else "")
                          + f": {int(counts[k])} windows" for k in missing)
        raise DataError(f"{group}: no yes/no verdict in {where}; every bin that holds windows needs verdicts: "
                        "verify the windows `birdspec call-density sample` drew from it (unsure ones do not count)")


def _summary(density: np.ndarray, mean: float, counts: np.ndarray, yes: np.ndarray, no: np.ndarray, *, group: str,
             verdicts: str, level: float) -> DensityEstimate:
    tail = (1.0 - level) / 2.0
    low, median, high = np.quantile(density, [tail, 0.5, 1.0 - tail])
    return DensityEstimate(group=group, n_windows=int(counts.sum()), windows_per_bin=tuple(int(c) for c in counts),
                           yes_per_bin=tuple(int(v) for v in yes), no_per_bin=tuple(int(v) for v in no), verdicts=verdicts,
                           density_mean=float(mean), density_median=float(median), density_low=float(low),
                           density_high=float(high), level=float(level))


def _window_counts(window_bins: np.ndarray, n_bins: int, group: str) -> np.ndarray:
    counts = np.bincount(np.asarray(window_bins, dtype=np.int64), minlength=n_bins)[:n_bins]
    if counts.sum() == 0:
        raise DataError(f"{group}: no windows to estimate a call density from")
    return counts


def _posterior_mean(yes: np.ndarray, no: np.ndarray, prior: tuple[float, float]) -> np.ndarray:
    return (prior[0] + yes) / (prior[0] + prior[1] + yes + no)


def estimate_density(window_bins: np.ndarray, yes: np.ndarray, no: np.ndarray, *, n_bins: int, group: str = "all",
                     prior: tuple[float, float] = DEFAULT_PRIOR, level: float = DEFAULT_LEVEL,
                     draws: int = DEFAULT_POSTERIOR_DRAWS, seed: int = 0, edges: np.ndarray | None = None) -> DensityEstimate:
    """The density of the windows whose bins are ``window_bins`` ``(n,)``, from ``yes`` and ``no`` verdicts per
    bin ``(n_bins,)`` (``edges``: the bins' scores, for the messages).

    Raises:
        DataError: no windows, or a bin that holds windows has no verdict.
        ConfigError: a prior, level or number of draws out of range.
    """
    _check_settings(prior, level, draws)
    counts = _window_counts(window_bins, n_bins, group)
    y, n = np.asarray(yes, dtype=np.int64), np.asarray(no, dtype=np.int64)
    _require_verdicts(counts, y, n, group, edges)
    w = counts / counts.sum()
    density = w @ posterior_draws(y, n, prior=prior, draws=draws, seed=seed)
    return _summary(density, float(w @ _posterior_mean(y, n, prior)), counts, y, n, group=group, verdicts=VERDICTS_POOLED,
                    level=level)


def _counts(bins: np.ndarray, called: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(bins, dtype=np.int64)
    c = np.asarray(called, dtype=bool)
    return np.bincount(b[c], minlength=n_bins)[:n_bins], np.bincount(b[~c], minlength=n_bins)[:n_bins]


def _weighted_counts(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All windows' yes / no pseudo-counts per bin ``(n_bins,)`` from each group's own verdicts (``parts``: per group
    its windows, yes and no per bin): the bin's rate is the groups' rates weighted by their share of the bin's
    windows, its count Kish's effective sample size ``1 / sum(share^2 / verdicts)`` (the pooled counts when every
    group has the same share and verdicts; fewer when a few verdicts stand for many windows)."""
    n = np.array([p[0] for p in parts], dtype=np.float64)
    yes = np.array([p[1] for p in parts], dtype=np.float64)
    seen = yes + np.array([p[2] for p in parts], dtype=np.float64)
    share = np.divide(n, n.sum(axis=0), out=np.zeros_like(n), where=n.sum(axis=0) > 0)
    used = (share > 0) & (seen > 0)
    rate = (share * np.divide(yes, seen, out=np.zeros_like(yes), where=used)).sum(axis=0)
    inv = np.divide(share**2, seen, out=np.zeros_like(share), where=used).sum(axis=0)
    n_eff = np.divide(1.0, inv, out=np.zeros_like(inv), where=inv > 0)
    return n_eff * rate, n_eff * (1.0 - rate)


def estimate_groups(window_bins: np.ndarray, window_groups: np.ndarray | None, verified_bins: np.ndarray,
                    verified_groups: np.ndarray | None, verified_called: np.ndarray, *, n_bins: int,
                    own_min: int | None = None, prior: tuple[float, float] = DEFAULT_PRIOR, level: float = DEFAULT_LEVEL,
                    draws: int = DEFAULT_POSTERIOR_DRAWS, seed: int = 0,
                    edges: np.ndarray | None = None) -> list[DensityEstimate]:
    """The density of all windows (first), then of each group (sorted), from verified windows.

    ``window_bins``, ``window_groups``: ``(n,)`` every window's bin and group (None: no groups);
    ``verified_bins``, ``verified_groups``, ``verified_called``: ``(m,)`` the verified windows' bins, groups
    and verdicts (True: the species calls). A group uses the pooled verdicts, or its own where ``own_min`` is
    given and it has that many (or all its windows) verified in every bin holding its windows. When every
    group uses its own, all windows take per bin the groups' rates weighted by their windows
    (:func:`_weighted_counts`, ``verdicts`` ``groups``): right for a sample drawn per group too (see the module doc).

    Raises:
        DataError: a bin that holds windows and has no verdict (pooled), or no windows.
    """
    _check_settings(prior, level, draws)
    vbins, vcalled = np.asarray(verified_bins, dtype=np.int64), np.asarray(verified_called, dtype=bool)
    yes, no = _counts(vbins, vcalled, n_bins)
    counts = _window_counts(window_bins, n_bins, "all")
    pooled = posterior_draws(yes, no, prior=prior, draws=draws, seed=seed)
    pooled_mean = _posterior_mean(yes, no, prior)
    if window_groups is None:
        _require_verdicts(counts, yes, no, "all", edges)
        w = counts / counts.sum()
        return [_summary(w @ pooled, float(w @ pooled_mean), counts, yes, no, group="all", verdicts=VERDICTS_POOLED, level=level)]
    groups = np.asarray(window_groups).astype(str)
    vgroups = None if verified_groups is None else np.asarray(verified_groups).astype(str)
    out, parts = [], []  # parts: each group's (windows, own yes, own no) per bin
    for i, g in enumerate(sorted(set(groups.tolist()))):
        gc = _window_counts(np.asarray(window_bins)[groups == g], n_bins, g)
        gy, gn, kind, p, mean = yes, no, VERDICTS_POOLED, pooled, pooled_mean
        if own_min is not None and vgroups is not None:
            oy, on = _counts(vbins[vgroups == g], vcalled[vgroups == g], n_bins)
            if np.all((oy + on)[gc > 0] >= np.minimum(own_min, gc[gc > 0])):
                gy, gn, kind = oy, on, VERDICTS_OWN
                p, mean = posterior_draws(oy, on, prior=prior, draws=draws, seed=seed + 1 + i), _posterior_mean(oy, on, prior)
        _require_verdicts(gc, gy, gn, g, edges)
        w = gc / gc.sum()
        out.append(_summary(w @ p, float(w @ mean), gc, gy, gn, group=g, verdicts=kind, level=level))
        parts.append((gc, gy, gn))
    if all(e.verdicts == VERDICTS_OWN for e in out):
        ey, en = _weighted_counts(parts)
        w = counts / counts.sum()
        summed = w @ posterior_draws(ey, en, prior=prior, draws=draws, seed=seed)
        return [_summary(summed, float(w @ _posterior_mean(ey, en, prior)), counts, yes, no, group="all",
                         verdicts=VERDICTS_GROUPS, level=level), *out]
    _require_verdicts(counts, yes, no, "all", edges)
    w = counts / counts.sum()
    return [_summary(w @ pooled, float(w @ pooled_mean), counts, yes, no, group="all", verdicts=VERDICTS_POOLED, level=level), *out]


@dataclass(frozen=True)
class Coverage:
    """How often the interval held the true density over ``draws`` verification samples of one simulated archive."""

    true_density: float
    covered: int
    draws: int
    widths: tuple[float, ...]
    estimates: tuple[float, ...]

    @property
    def median_width(self) -> float:
        return float(np.median(self.widths))


def simulate_archive(*, n_windows: int, density: float, separation: float = 2.5,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A simulated archive: ``(called, scores)``, each ``(n_windows,)``.

    A window holds a call with probability ``density``; its score is ``sigmoid(z)``, ``z`` normal with
    unit spread around ``-separation / 2`` without a call and ``+separation / 2`` with one (``separation``
    2.5: a fair classifier, ROC-AUC about 0.96).
    """
    rng = np.random.default_rng(seed)
    called = rng.random(n_windows) < density
    z = rng.normal(np.where(called, separation / 2, -separation / 2), 1.0)
    return called, 1.0 / (1.0 + np.exp(-z))


def simulate_coverage(*, n_windows: int = 20_000, density: float = 0.05, separation: float = 2.5,
                      per_bin: int = DEFAULT_PER_BIN, n_bins: int = DEFAULT_SCORE_BINS, draws: int = 100, seed: int = 0,
                      prior: tuple[float, float] = DEFAULT_PRIOR, level: float = DEFAULT_LEVEL,
                      posterior_samples: int = 4000) -> Coverage:
    """Coverage check: one archive (:func:`simulate_archive`), ``draws`` stratified verification samples of it
    (seeds ``seed + 1 ..``), a person who is always right; how often the interval holds the archive's true
    fraction of windows with a call."""
    called, scores = simulate_archive(n_windows=n_windows, density=density, separation=separation, seed=seed)
    truth = float(called.mean())
    edges = bin_edges(scores, quantiles=geometric_quantiles(n_bins=n_bins))
    bins = assign_bins(scores, edges)
    covered, widths, means = 0, [], []
    for k in range(draws):
        idx = stratified_sample(bins, n_bins=n_bins, per_bin=per_bin, seed=seed + 1 + k)
        yes, no = _counts(bins[idx], called[idx], n_bins)
        est = estimate_density(bins, yes, no, n_bins=n_bins, prior=prior, level=level, draws=posterior_samples,
                               seed=seed + 1 + k)
        covered += est.covers(truth)
        widths.append(est.width)
        means.append(est.density_mean)
    log.debug("coverage %d/%d at density %.4f", covered, draws, truth)
    return Coverage(true_density=truth, covered=covered, draws=draws, widths=tuple(widths), estimates=tuple(means))
