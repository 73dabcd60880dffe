"""Call density (Navine et al. 2024): score bins, the stratified sample, known answers, the interval's coverage
over 100 simulated verification samples, groups (pooled and own verdicts), and `birdspec call-density` end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdspec.cli.main import main
from birdspec.errors import DataError
from birdspec.evaluation import call_density as cd
from birdspec.evaluation.call_density_io import SAMPLE_COLUMNS, days, deployments
from birdspec.evaluation.call_density_report import (
    DENSITY_FIGURE_FILE,
    DENSITY_MARKDOWN_FILE,
    DENSITY_TABLE_FILE,
    plot_call_density,
)


def test_geometric_bins_halve_and_hold_every_score():
    assert cd.geometric_quantiles(n_bins=4) == (0.0, 0.5, 0.75, 0.875, 1.0)
    scores = np.linspace(0, 1, 800)
    edges = cd.bin_edges(scores, quantiles=cd.geometric_quantiles())
    bins = cd.assign_bins(scores, edges)
    assert np.bincount(bins).tolist() == [400, 200, 100, 100]
    assert bins[-1] == 3 and bins[0] == 0  # the top edge is in the top bin
    with pytest.raises(DataError, match="not finite"):
        cd.bin_edges(np.array([0.1, np.nan]), quantiles=cd.geometric_quantiles())


def test_stratified_sample_draws_per_bin_and_per_group_the_same_for_a_seed():
    bins = np.repeat([0, 1, 2, 3], [500, 250, 125, 3])
    idx = cd.stratified_sample(bins, n_bins=4, per_bin=10, seed=5)
    assert np.bincount(bins[idx]).tolist() == [10, 10, 10, 3]  # a small bin gives all it has
    assert np.array_equal(idx, cd.stratified_sample(bins, n_bins=4, per_bin=10, seed=5))
    assert not np.array_equal(idx, cd.stratified_sample(bins, n_bins=4, per_bin=10, seed=6))
    groups = np.where(np.arange(bins.size) % 2 == 0, "east", "west")
    idx = cd.stratified_sample(bins, n_bins=4, per_bin=4, seed=5, groups=groups)
    table = pd.crosstab(groups[idx], bins[idx])
    assert table.loc["east"].tolist() == [4, 4, 4, 1] and table.loc["west"].tolist() == [4, 4, 4, 2]


def test_known_answers_all_yes_all_no_and_the_bin_weights():
    bins = np.repeat([0, 1, 2, 3], [400, 200, 100, 100])
    ones = np.full(4, 25)
    full = cd.estimate_density(bins, ones, np.zeros(4), n_bins=4)
    assert full.density_mean > 0.99 and full.density_high > 0.999 and full.density_low > 0.97
    empty = cd.estimate_density(bins, np.zeros(4), ones, n_bins=4)
    assert empty.density_mean < 0.01 and empty.density_low < 1e-6 and empty.density_high < 0.03
    # half the windows in a bin verified all yes, half in one verified all no: 0.5; the weights are the shares
    half = cd.estimate_density(np.repeat([0, 1], [300, 300]), np.array([0, 20]), np.array([20, 0]), n_bins=2)
    assert half.weights == (0.5, 0.5)
    assert half.density_mean == pytest.approx(0.5) and half.covers(0.5) and half.width < 0.06
    quarter = cd.estimate_density(np.repeat([0, 1], [450, 150]), np.array([0, 20]), np.array([20, 0]), n_bins=2)
    assert quarter.density_mean == pytest.approx(0.75 * 0.1 / 20.2 + 0.25 * 20.1 / 20.2)  # the prior: 0.1 each way
    mixed = cd.estimate_density(np.repeat([0, 1], [500, 500]), np.array([5, 15]), np.array([15, 5]), n_bins=2)
    assert mixed.density_mean == pytest.approx(0.5) and mixed.density_low < 0.45 < 0.55 < mixed.density_high


def test_a_bin_with_windows_and_no_verdict_is_an_error_that_says_what_to_do():
    bins = np.repeat([0, 1, 2, 3], [400, 200, 100, 100])
    with pytest.raises(DataError, match=r"no yes/no verdict in bin 0: 400 windows.*call-density sample"):
        cd.estimate_density(bins, np.array([0, 1, 5, 9]), np.array([0, 9, 5, 1]), n_bins=4)
    # a bin without windows needs no verdicts (ties at the quantiles leave a bin empty)
    est = cd.estimate_density(np.repeat([1, 2], 50), np.array([0, 0, 5, 0]), np.array([0, 5, 0, 0]), n_bins=4)
    assert est.density_mean == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("density, max_median_width", [(0.01, 0.05), (0.05, 0.07), (0.3, 0.15)])
def test_the_interval_covers_the_true_density_in_at_least_90_of_100_samples(density, max_median_width):
    """100 seeded stratified samples (25 windows a bin, a person always right) of one simulated archive of 20,000
    windows scored by a fair classifier (ROC-AUC 0.96): the 95 % interval holds the archive's true density."""
    cov = cd.simulate_coverage(n_windows=20_000, density=density, draws=100, seed=3)
    assert cov.draws == 100
    assert cov.covered >= 90, (cov.covered, cov.true_density)
    assert cov.median_width < max_median_width, cov.median_width  # covering by being vague does not count
    assert abs(np.mean(cov.estimates) - cov.true_density) < 0.25 * cov.median_width


def _two_sites(sep: float = 2.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    c1, s1 = cd.simulate_archive(n_windows=8000, density=0.05, separation=sep, seed=11)
    c2, s2 = cd.simulate_archive(n_windows=8000, density=0.2, separation=sep, seed=12)
    called, scores = np.r_[c1, c2], np.r_[s1, s2]
    groups = np.repeat(["east", "west"], 8000)
    return called, scores, groups, {"all": float(called.mean()), "east": float(c1.mean()), "west": float(c2.mean())}


def test_all_windows_from_few_own_verdicts_per_site_cover_a_rare_call():
    """4 sites at 1 % density, 4 verdicts per site and bin (benchmarks/agile.py's sample): all windows come from the
    sites' rates weighted by their windows, one Beta per bin; adding up the sites' own posteriors (4 priors per bin)
    put the interval above the truth in a quarter of the samples."""
    parts = [cd.simulate_archive(n_windows=3000, density=0.01, separation=3.0, seed=20 + g) for g in range(4)]
    called, scores = np.concatenate([c for c, _ in parts]), np.concatenate([s for _, s in parts])
    groups = np.repeat([f"site{g}" for g in range(4)], 3000)
    bins = cd.assign_bins(scores, cd.bin_edges(scores, quantiles=cd.geometric_quantiles()))
    covered = 0
    for k in range(100):
        idx = cd.stratified_sample(bins, n_bins=4, per_bin=4, seed=300 + k, groups=groups)
        est = cd.estimate_groups(bins, groups, bins[idx], groups[idx], called[idx], n_bins=4, own_min=4, draws=2000, seed=k)
        assert est[0].verdicts == cd.VERDICTS_GROUPS
        covered += est[0].covers(float(called.mean()))
    assert covered >= 90, covered


def test_weighted_counts_are_the_pooled_ones_for_equal_sites_and_fewer_for_unequal():
    equal = [(np.array([100, 50]), np.array([1, 2]), np.array([3, 2])), (np.array([100, 50]), np.array([0, 4]), np.array([4, 0]))]
    yes, no = cd._weighted_counts(equal)
    assert np.allclose(yes, [1, 6]) and np.allclose(no, [7, 2])
    unequal = [(np.array([900]), np.array([0]), np.array([4])), (np.array([100]), np.array([4]), np.array([0]))]
    yes, no = cd._weighted_counts(unequal)  # rate 0.9 * 0 + 0.1 * 1; 1 / (0.81 / 4 + 0.01 / 4) = 4.88 verdicts
    assert np.isclose(yes / (yes + no), 0.1).all() and np.isclose(yes + no, 4 / 0.82).all()


def test_groups_own_verdicts_cover_each_site_and_pooled_ones_pull_sites_together():
    called, scores, groups, truth = _two_sites()
    bins = cd.assign_bins(scores, cd.bin_edges(scores, quantiles=cd.geometric_quantiles()))
    covered = {"all": 0, "east": 0, "west": 0}
    pooled_east = []
    for k in range(100):
        idx = cd.stratified_sample(bins, n_bins=4, per_bin=20, seed=100 + k, groups=groups)  # per site and bin
        own = cd.estimate_groups(bins, groups, bins[idx], groups[idx], called[idx], n_bins=4, own_min=1, draws=2000, seed=k)
        assert [e.group for e in own] == ["all", "east", "west"]
        assert own[0].verdicts == cd.VERDICTS_GROUPS and {e.verdicts for e in own[1:]} == {cd.VERDICTS_OWN}
        for e in own:
            covered[e.group] += e.covers(truth[e.group])
        if k < 20:
            pooled = cd.estimate_groups(bins, groups, bins[idx], groups[idx], called[idx], n_bins=4, draws=2000, seed=k)
            assert {e.verdicts for e in pooled} == {cd.VERDICTS_POOLED}
            pooled_east.append(pooled[1].density_mean)
    assert min(covered.values()) >= 90, covered
    # the pooled verdicts' assumption (P(call | bin) the same at both sites) fails at 5 % against 20 %
    assert np.mean(pooled_east) > truth["east"] + 0.02


def test_pooled_groups_weigh_the_bins_by_their_own_windows():
    bins = np.repeat([0, 1, 0, 1], [90, 10, 10, 90])
    groups = np.repeat(["a", "b"], 100)
    vb = np.repeat([0, 1], 20)
    called = vb == 1  # bin 0: no call, bin 1: all calls
    ests = cd.estimate_groups(bins, groups, vb, None, called, n_bins=2)
    assert [round(e.density_mean, 2) for e in ests] == [0.5, 0.1, 0.9]
    assert ests[1].windows_per_bin == (90, 10) and ests[1].yes_per_bin == (0, 20)


def test_deployments_and_days_from_the_recording_paths():
    files = ["/data/arch/S1/20240501_235800.wav", "/data/arch/S2/a.wav", "/data/arch/S2/sub/b.wav"]
    assert deployments(files).tolist() == ["S1", "S2", "S2"]
    assert deployments(["/x/only/r1.wav", "/x/only/r2.wav"]).tolist() == ["only", "only"]
    assert deployments(["r1.wav", "S3/r2.wav"]).tolist() == [".", "S3"]
    got = days(pd.Series(["S1_20240501_235800.wav", "S1_20240501_235800.wav", "AM_2024-06-30.flac"]),
               pd.Series([60.0, 300.0, 7200.0]))
    assert got.tolist() == ["2024-05-01", "2024-05-02", "2024-06-30"]  # a window after midnight is the next day
    with_column = days(pd.Series(["x.wav"]), pd.Series([10.0]), pd.Series(["2023-12-31 23:59:55"]))
    assert with_column.tolist() == ["2024-01-01"]
    with pytest.raises(DataError, match="no start date.*group by deployment"):
        days(pd.Series(["field.wav"]), pd.Series([0.0]))


def test_the_figure_draws_many_groups_as_a_band(tmp_path):
    est = [cd.DensityEstimate(group="all" if i == 0 else f"2024-05-{i:02d}", n_windows=100, windows_per_bin=(50, 50),
                              yes_per_bin=(0, 5), no_per_bin=(5, 0), verdicts=cd.VERDICTS_POOLED, density_mean=0.1,
                              density_median=0.1, density_low=0.05, density_high=0.2, level=0.95) for i in range(51)]
    assert plot_call_density(est, tmp_path / "many.png", species="x").stat().st_size > 1000
    assert plot_call_density(est[:4], tmp_path / "few.png", species="x").stat().st_size > 1000


# --- the command ---------------------------------------------------------------------------------------------


def _archive(tmp_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A `birdspec predict --scores all` table of two deployments (folders) over two days, and the truth."""
    rows = []
    for site, density, seed in (("S1", 0.1, 1), ("S2", 0.1, 2)):
        called, scores = cd.simulate_archive(n_windows=2400, density=density, seed=seed)
        for i in range(2400):
            rec, w = divmod(i, 120)
            rows.append({"file": f"{tmp_path}/archive/{site}/{site}_202405{1 + rec // 10:02d}_{rec % 10:02d}0000.wav",
                         "window": w, "start_s": 5.0 * w, "end_s": 5.0 * w + 5, "grewar": scores[i],
                         "comrav": 1 - scores[i], "truth": bool(called[i])})
    df = pd.DataFrame(rows)
    return df.drop(columns="truth"), df


def _fill(sample_csv, truth: pd.DataFrame, *, unsure: int = 0) -> pd.DataFrame:
    s = pd.read_csv(sample_csv)
    m = s.merge(truth[["file", "start_s", "truth"]], on=["file", "start_s"], how="left")
    s["verdict"] = np.where(m["truth"].to_numpy(dtype=bool), "yes", "no")
    s.loc[: unsure - 1, "verdict"] = "unsure"
    s.to_csv(sample_csv, index=False)
    return s


def test_cli_sample_then_estimate_per_deployment_and_day(tmp_path, capsys):
    scores, truth = _archive(tmp_path)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    sample = tmp_path / "verify.csv"
    assert main(["-q", "call-density", "sample", str(tmp_path / "scores.csv"), "--species", "GREWAR", "--out", str(sample)]) == 0
    s = pd.read_csv(sample)
    assert tuple(s.columns) == SAMPLE_COLUMNS and len(s) == 100 and s["verdict"].isna().all()
    assert s["bin"].value_counts().tolist() == [25] * 4 and set(s["label"]) == {"grewar"}
    _fill(sample, truth, unsure=3)
    out = tmp_path / "density"
    assert main(["-q", "call-density", "estimate", str(tmp_path / "scores.csv"), str(sample), "--species", "grewar",
                 "--group-by", "deployment", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "97 verdicts (3 unsure, left out)" in printed and "S1" in printed
    table = pd.read_csv(out / DENSITY_TABLE_FILE)
    assert table["group"].tolist() == ["all", "S1", "S2"] and (table["verdicts"] == "pooled").all()
    assert table["n_windows"].tolist() == [4800, 2400, 2400]
    overall = table.iloc[0]
    true_density = truth["truth"].mean()
    assert overall["density_low"] <= true_density <= overall["density_high"]
    assert sum(table.loc[0, [f"yes_bin{k}" for k in range(4)]]) + sum(table.loc[0, [f"no_bin{k}" for k in range(4)]]) == 97
    assert "| S2 | 2400 | pooled |" in (out / DENSITY_MARKDOWN_FILE).read_text()
    assert (out / DENSITY_FIGURE_FILE).stat().st_size > 1000
    # per day: the date is in the recordings' names
    assert main(["-q", "call-density", "estimate", str(tmp_path / "scores.csv"), str(sample), "--species", "grewar",
                 "--group-by", "day", "--out", str(tmp_path / "days")]) == 0
    assert pd.read_csv(tmp_path / "days" / DENSITY_TABLE_FILE)["group"].tolist() == ["all", "2024-05-01", "2024-05-02"]


def test_cli_reads_an_archive_run_folder_and_the_review_apps_verdicts(tmp_path):
    scores, truth = _archive(tmp_path)
    run = tmp_path / "run1"
    run.mkdir()
    scores.to_parquet(run / "predictions.parquet", index=False)
    sample = tmp_path / "verify.csv"
    assert main(["-q", "call-density", "sample", str(run), "--species", "grewar", "--group-by", "deployment",
                 "--per-bin", "15", "--seed", "4", "--out", str(sample)]) == 0
    s = pd.read_csv(sample)
    assert len(s) == 120 and set(s["group"]) == {"S1", "S2"}
    filled = _fill(sample, truth)
    # what Review stores beside a detection table it was given (sample.verdicts.csv): correct / wrong / other
    review = filled.assign(verdict=filled["verdict"].map({"yes": "correct", "no": "wrong"}),
                           species=np.where(filled["verdict"] == "yes", "grewar", ""), updated="2026-01-01 00:00:00")
    review.loc[review.index[:2], ["verdict", "species"]] = ["other", "comrav"]
    review[["file", "start_s", "end_s", "label", "confidence", "verdict", "species", "updated"]].to_csv(
        tmp_path / "verify.verdicts.csv", index=False)
    assert main(["-q", "call-density", "estimate", str(run), str(tmp_path / "verify.verdicts.csv"), "--species", "grewar",
                 "--group-by", "deployment", "--own-verdicts", "1", "--out", str(tmp_path / "d")]) == 0
    table = pd.read_csv(tmp_path / "d" / DENSITY_TABLE_FILE)
    assert table["verdicts"].tolist() == ["groups", "own", "own"]
    for _, row in table.iterrows():
        sel = truth if row["group"] == "all" else truth[truth["file"].str.contains(f"/{row['group']}/")]
        assert row["density_low"] <= sel["truth"].mean() <= row["density_high"], row


def test_cli_errors_exit_2_and_say_what_to_do(tmp_path, capsys):
    scores, truth = _archive(tmp_path)
    csv = tmp_path / "scores.csv"
    scores.to_csv(csv, index=False)
    sample = tmp_path / "verify.csv"
    assert main(["-q", "call-density", "sample", str(csv), "--species", "grewar", "--out", str(sample)]) == 0
    filled = _fill(sample, truth)

    def fails(argv: list[str], message: str) -> None:
        assert main(["-q", "call-density", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv

    est = ["estimate", str(csv)]
    fails(["sample", str(csv), "--species", "sonspa", "--out", str(tmp_path / "x.csv")], "must be one of its classes: grewar, comrav")
    fails(["sample", str(csv), "--species", "grewar", "--out", str(sample)], "pass --overwrite")
    fails(["sample", str(csv), "--species", "grewar", "--per-bin", "0", "--out", str(tmp_path / "x.csv")], "at least 1")
    fails(["sample", str(csv), "--species", "grewar", "--quantiles", "0,0.5,0.4,1", "--out", str(tmp_path / "x.csv")],
          "must rise from 0 to 1")
    only_top = filled.assign(verdict=np.where(filled["bin"] == 3, filled["verdict"], ""))
    only_top.to_csv(tmp_path / "top.csv", index=False)
    fails([*est, str(tmp_path / "top.csv"), "--species", "grewar", "--out", str(tmp_path / "o")], "no yes/no verdict in bin 0")
    filled.assign(verdict="dunno").to_csv(tmp_path / "odd.csv", index=False)
    fails([*est, str(tmp_path / "odd.csv"), "--species", "grewar"], "dunno are not yes, no or unsure")
    fails([*est, str(sample), "--species", "grewar", "--bins", "3", "--out", str(tmp_path / "o")], "same --bins/--quantiles")
    filled.assign(file=filled["file"] + ".moved").to_csv(tmp_path / "other.csv", index=False)
    fails([*est, str(tmp_path / "other.csv"), "--species", "grewar"], "not in the scores table")
    filled.assign(verdict="").to_csv(tmp_path / "blank.csv", index=False)
    fails([*est, str(tmp_path / "blank.csv"), "--species", "grewar"], "no yes/no verdict for grewar")
    fails([*est, str(sample), "--species", "grewar", "--group-by", "site"], "--group-by 'site'")
    fails([*est, str(sample), "--species", "grewar", "--prior", "0.1"], "--prior takes two numbers")
    scores.assign(file=scores["file"].str.replace(r"_2024(\d+)_", r"_rec\1_", regex=True)).to_csv(tmp_path / "undated.csv", index=False)
    fails(["sample", str(tmp_path / "undated.csv"), "--species", "grewar", "--group-by", "day", "--out", str(tmp_path / "u.csv")],
          "have no start date")
    per_group = tmp_path / "per_group.csv"
    assert main(["-q", "call-density", "sample", str(csv), "--species", "grewar", "--group-by", "deployment",
                 "--out", str(per_group)]) == 0
    _fill(per_group, truth)
    fails([*est, str(per_group), "--species", "grewar", "--group-by", "deployment"], "--own-verdicts N")
    # the long table needs every window's score for the species
    long = scores.melt(id_vars=["file", "window", "start_s", "end_s"], var_name="label", value_name="confidence")
    long[long["confidence"] > 0.3].to_csv(tmp_path / "long.csv", index=False)
    fails(["sample", str(tmp_path / "long.csv"), "--species", "grewar", "--out", str(tmp_path / "l.csv")], "--scores all")
    long[long["window"] % 10 > 0].to_csv(tmp_path / "long_gaps.csv", index=False)  # windows where no class was kept
    fails(["sample", str(tmp_path / "long_gaps.csv"), "--species", "grewar", "--out", str(tmp_path / "l.csv")], "--scores all")
    long.to_csv(tmp_path / "long_all.csv", index=False)
    assert main(["-q", "call-density", "sample", str(tmp_path / "long_all.csv"), "--species", "grewar",
                 "--out", str(tmp_path / "l.csv")]) == 0
    assert pd.read_csv(tmp_path / "l.csv").equals(pd.read_csv(sample).assign(verdict=np.nan))
    fails(["sample", str(tmp_path / "nothing"), "--species", "grewar", "--out", str(tmp_path / "n.csv")], "no such file")
