"""What issue 17 part 5 changed for 397 classes: the column-wise CSV writer, the vectorised birdclef rows and
threshold search (each equal to what they replaced), and the 397-call-type synthesizer."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdspec.data.synthetic_many import MAX_CLASSES, class_code, make_many_birdclef, many_classes
from birdspec.errors import ConfigError
from birdspec.evaluation.scoring import birdclef_f1, score_soundscapes, sets_at, threshold_f1
from birdspec.formats import NOCALL
from birdspec.prediction.csv_text import write_csv_text
from birdspec.prediction.outputs import PredictionWriter, birdclef_rows, scores_table
from birdspec.prediction.predictor import FileResult
from birdspec.prediction.selection import topk_indices


def awkward_table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    s = rng.random((n, 6)).astype(np.float32)
    s[0, 0], s[1, 1], s[2, 2], s[3, 3], s[4, 4] = np.nan, 1e-12, -0.0, np.inf, 123456789.0
    df = pd.DataFrame(s, columns=["a", "b,c", 'q"x', "x y", "\u00e9", ""])
    df.insert(0, "file", ["/p/a,b.flac"] * (n // 2) + ['x"y\n.wav'] * (n - n // 2))
    df.insert(1, "window", np.arange(n))
    df["start_s"] = np.arange(n) * 5.0
    df["name"] = (["", None, "a\rb", "ok"] * n)[:n]
    df["flag"] = (np.arange(n) % 2).astype(bool)
    df["u"] = np.arange(n, dtype=np.uint64)
    return df


@pytest.mark.parametrize("kw", [dict(lineterminator="\n", float_format="%.6g"), dict(lineterminator="\r\n", float_format="%.4f"),
                                dict(lineterminator="\n", float_format="%.6g", sep="\t"), dict(float_format=None),
                                dict(float_format="%.6g", na_rep="NA")])
@pytest.mark.parametrize("header", [True, False])
def test_csv_text_is_to_csv_byte_for_byte(kw, header):
    df = awkward_table()
    for table in (df, df.iloc[:0], df.iloc[:1], df[["name"]], df.astype({"name": "category"})):
        want, got = io.StringIO(), io.StringIO()
        table.to_csv(want, index=False, header=header, **kw)
        write_csv_text(got, table, header=header, **kw)
        assert got.getvalue() == want.getvalue()


def info_397() -> list[dict]:
    return [{"label": c.label, "scientific_name": c.scientific_name, "common_name": c.common_name + (", x" if i % 50 == 0 else "")}
            for i, c in enumerate(many_classes(397))]


def results_397(n_files: int = 2, windows: int = 30) -> list[FileResult]:
    rng = np.random.default_rng(1)
    out = []
    for f in range(n_files):
        logits = rng.standard_normal((windows, 397)) * 3
        s = np.exp(logits)
        s /= s.sum(1, keepdims=True)
        s[3] = 0.001  # a window where nothing is kept
        w = pd.DataFrame({"window": np.arange(windows), "start_s": 5.0 * np.arange(windows), "end_s": 5.0 * np.arange(windows) + 5})
        out.append(FileResult(f"/d/site,{f}.flac", f"site,{f}.flac", 5.0 * windows, w, s.astype(np.float32)))
    return out


@pytest.mark.parametrize("opts", [dict(scores="all"), dict(top_k=0, min_conf=0.0), dict()])
def test_prediction_csv_is_what_pandas_wrote(tmp_path, opts):
    """The writer's CSV equals header + to_csv of every result's table (what it wrote before, row by row)."""
    info = info_397()
    kw = dict(class_info=info, min_conf=0.1, top_k=3)
    kw.update(opts)
    w = PredictionWriter("csv", tmp_path / "p.csv", **kw)
    want = io.StringIO()
    for i, r in enumerate(results_397()):
        w.write(r)
        table = scores_table(r, class_info=info, mode=kw.get("scores", "topk"), min_conf=kw["min_conf"], top_k=kw["top_k"])
        table.to_csv(want, index=False, header=i == 0, lineterminator="\n", float_format="%.6g")
    w.close()
    assert (tmp_path / "p.csv").read_text() == want.getvalue()


def birdclef_rows_loop(result, class_info, min_conf, top_k):
    """The per-score loop birdclef_rows used to run."""
    labels = [str(c["label"]) for c in class_info]
    rows, _, cls = topk_indices(result.scores, min_conf=min_conf, top_k=top_k)
    birds = [[] for _ in range(len(result.windows))]
    for r, c in zip(rows, cls, strict=True):
        birds[r].append(labels[c])
    return [" ".join(b) if b else NOCALL for b in birds]


@pytest.mark.parametrize("min_conf,top_k", [(0.1, 3), (0.0, 0), (0.01, 5), (2.0, 3)])
def test_birdclef_rows_vectorised(min_conf, top_k):
    info = info_397()
    for r in results_397():
        got = birdclef_rows(r, class_info=info, min_conf=min_conf, top_k=top_k)
        assert got["birds"].tolist() == birdclef_rows_loop(r, info, min_conf, top_k)
        assert got["row_id"].iloc[0] == "site,0_5" or got["row_id"].iloc[0] == "site,1_5"


def test_threshold_search_equals_the_set_loop():
    rng = np.random.default_rng(2)
    ts = np.arange(0.05, 0.96, 0.05)
    for trial in range(20):
        cols = [f"c{i}" for i in range(int(rng.integers(1, 40)))] + ([NOCALL] if trial % 3 == 0 else [])
        n = int(rng.integers(1, 60))
        scores = pd.DataFrame(rng.random((n, len(cols))), columns=cols, index=[f"r{i}" for i in range(n)])
        scores.iloc[0, 0] = np.nan
        truth = {f"r{i}": frozenset(rng.choice(cols + ["unknown", NOCALL], size=int(rng.integers(1, 4)), replace=False))
                 for i in range(n + 4)}  # 4 truth rows without a prediction
        want = np.asarray([birdclef_f1(sets_at(scores, float(t)), truth) for t in ts])
        assert np.array_equal(threshold_f1(scores, truth, ts), want)


def test_score_soundscapes_on_a_397_class_table(tmp_path):
    info = info_397()
    rs = results_397(1)
    w = PredictionWriter("csv", tmp_path / "all.csv", class_info=info, min_conf=0.1, top_k=3, scores="all")
    w.write(rs[0])
    w.close()
    top = rs[0].scores.argmax(1)
    truth = pd.DataFrame({"row_id": [f"site,0_{5 * (i + 1)}" for i in range(30)], "birds": [info[c]["label"] for c in top]})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    res = score_soundscapes(tmp_path / "all.csv", tmp_path / "truth.csv", thresholds="0.0,1.0")
    assert res.curve["f1"].iloc[1] == 0.0  # nothing predicted: nocall against birds
    assert 0.0 < res.curve["f1"].iloc[0] < 0.01  # every class predicted: 2 / (397 + 1)


def test_many_classes():
    classes = many_classes(MAX_CLASSES)
    codes = [c.label for c in classes]
    assert len(set(codes)) == MAX_CLASSES and all(len(c) == 6 and c.isalpha() and c.islower() for c in codes)
    assert codes[:397] == [c.label for c in many_classes(397)] and class_code(0) == "syaaaa"
    assert len({(c.make_call.family, round(c.make_call.pitch_hz), c.make_call.pattern) for c in classes}) == MAX_CLASSES
    rng = np.random.default_rng(0)
    for c in classes[:6] + classes[-6:]:
        call = c.make_call(rng, 32000)
        assert call.ndim == 1 and call.size > 1000 and np.isfinite(call).all() and np.abs(call).max() <= 2
    with pytest.raises(ConfigError):
        many_classes(MAX_CLASSES + 1)


def test_make_many_birdclef_is_deterministic(tmp_path):
    a = make_many_birdclef(tmp_path / "a", num_classes=7, per_class=2, min_duration_s=1.0, max_duration_s=2.0, seed=3)
    b = make_many_birdclef(tmp_path / "b", num_classes=7, per_class=2, min_duration_s=1.0, max_duration_s=2.0, seed=3, workers=2)
    ma, mb = pd.read_csv(a / "train_metadata.csv"), pd.read_csv(b / "train_metadata.csv")
    pd.testing.assert_frame_equal(ma, mb)
    assert len(ma) == 14 and ma["primary_label"].nunique() == 7
    for _, row in ma.iterrows():
        assert (Path(a) / "train_short_audio" / row["primary_label"] / row["filename"]).is_file()
        for s in eval(row["secondary_labels"]):  # noqa: S307 - our own repr of a list of codes
            assert s in set(ma["primary_label"]) and s != row["primary_label"]


@pytest.mark.parametrize("chunk", [4_000_000, 7])
def test_one_vs_rest_scores_are_sklearns(monkeypatch, chunk):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from birdspec.evaluation import metrics

    monkeypatch.setattr(metrics, "OVR_CHUNK_CELLS", chunk)  # several column chunks
    rng = np.random.default_rng(3)
    for trial in range(12):
        n, k = int(rng.integers(1, 50)), int(rng.integers(2, 10))
        y, p = rng.integers(0, k, n), rng.random((n, k))
        if trial % 2:
            p = np.round(p, 1)  # tied scores
        ap, auc = metrics.one_vs_rest_scores(y, p)
        for i in range(k):
            pos = (y == i).astype(int)
            if not pos.any():
                assert np.isnan(ap[i]) and np.isnan(auc[i])
                continue
            assert ap[i] == pytest.approx(average_precision_score(pos, p[:, i]), abs=1e-12)
            if pos.all():
                assert np.isnan(auc[i])
            else:
                assert auc[i] == pytest.approx(roc_auc_score(pos, p[:, i]), abs=1e-12)
    table = metrics.per_class_metrics(y, p, classes=[f"c{i}" for i in range(k)])
    assert table["predicted"].sum() == n and list(table["label_id"]) == list(range(k))


def test_distractor_draw_is_the_demos():
    """synth_recording now draws 'any class but k' as integers(K - 1) shifted past k; for the demo's 4 classes
    that is the same draw (and the same generator state after it) as the rng.choice over a list it replaced,
    so the demo's recordings are unchanged."""
    for seed in range(50):
        for k in range(4):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            old = int(a.choice([c for c in range(4) if c != k]))
            new = int(b.integers(3))
            new += new >= k
            assert old == new and a.random() == b.random()
