"""Find a call in a whole archive: index speed, search by example, the agile loop, call density (issue 31).

    python benchmarks/agile.py [BIRDCLEF_DIR] [--out bench-out/agile] [--hours 20] [--fold 0] [--sites 4]
        [--rounds 3] [--per-round 20] [--prior-checkpoint PATH] [--jobs 2] [--draws 100] [--hoplite-python PY]
        [--memory-hours 1,5]

Needs ``pip install -e ".[birdnet,index]"`` (BirdNET embeds the archive; usearch builds the graph).

Protocol (the reed warblers, folds as every benchmark: ``prepare --folds 5 --seed 0``):
- archive: ``--hours`` of synthetic soundscapes (10 min each, ``birdspec soundscape make``'s mixer with 20-200 s
  between calls, so a few percent of the windows hold one, as in field audio) made from the held-out fold's
  recordings only, over the even-numbered real backgrounds of ../shared/data/recordings, in ``--sites``
  deployment folders (``site<d>/audio/*.flac``, each site its own seed); the placed calls are the truth;
- index: ``birdspec index ARCHIVE --backbone birdnet`` (3 s windows every 3 s, float16, usearch graph): wall time
  (audio hours per wall hour) and size per audio hour, beside BirdNET's own embedding speed on this machine
  (:func:`birdnet_speed`: the backbone alone on 3 s windows, the same threads);
- truth per index window: the species whose placed calls overlap it by >= 0.5 s (the soundscapes' own rule);
- search: per species one query, the loudest 3 s of a training-fold recording of it (folds != ``--fold``);
  precision@``--per-round`` of its top results;
- agile loop: those results' verdicts from the truth (yes when the window holds the species), then
  ``--rounds`` rounds of ``birdspec agile`` (all species at once, ``--per-round`` next windows each by margin,
  their verdicts from the truth added); after each round, the soundscape F1 (``score-soundscapes``' row-wise
  micro F1 on the soundscapes' 5 s rows at the stored threshold 0.5, a row scored by the highest of the 3 s
  windows overlapping it by >= 1.5 s), and on the 3 s windows themselves micro precision/recall/F1 and mean AP;
- reference: ``birdnet-prior`` trained on every focal recording of the training folds (``--prior-checkpoint``:
  soundscapes.py's fold run), ``birdspec predict --format birdclef`` on the archive (its 5 s windows, its
  stored thresholds), scored the same way;
- call density: for each species, ``call-density`` estimates per site from a stratified sample (score bins,
  4 per bin and site) of the last round's scores, verdicts from the truth, against the true fraction; and the
  interval's coverage over ``--draws`` such samples (each its own seed), per site and for all windows;
- memory (``--memory-hours``): peak memory of the ``birdspec index`` command (process tree) on the first hours of
  the archive, each a fresh index: flat in archive length;
- side by side (``--hoplite-python``): perch-hoplite's own loop (``benchmarks/hoplite_agile.py`` in its environment:
  its embedding of the archive with the same BirdNET model, its search, classifier and margin sampling) on the same
  archive, queries and truth, its rounds' scores scored here by the same functions.
Writes OUT/agile.json, OUT/agile.md, OUT/agile_rounds.png (F1 by round) and OUT/agile_density.png; every stage is kept and reused by a rerun.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.agile_report import density_coverage, plot_density, plot_rounds  # noqa: E402
from benchmarks.agile_truth import window_scores, window_truth  # noqa: E402
from benchmarks.common import DEFAULT_DATA, prepare_encoding, run_command, start_run  # noqa: E402
from benchmarks.soundscapes import birdspec, split_backgrounds  # noqa: E402

SOUNDSCAPE_S = 600.0


def make_archive(focal: Path, out: Path, *, hours: float, fold: int, sites: int, bg: Path) -> Path:
    """``--hours`` of soundscapes of ``fold`` in ``sites`` deployment folders under OUT/archive, calls sparse as in
    field audio (gaps of 20-200 s between calls: a few percent of the windows), the files named ``site<d>-...``
    (one name space for the truth); each site keeps ``calls.csv`` and ``truth_5s.csv`` (5 s rows) beside its audio."""
    from birdspec.data.soundscape import SoundscapeConfig, make_soundscapes

    archive = out / "archive"
    total = int(np.ceil(hours * 3600 / SOUNDSCAPE_S))
    for d in range(sites):
        n = total // sites + (1 if d < total % sites else 0)
        site = archive / f"site{d}"
        if (site / "truth_5s.csv").is_file():
            continue
        config = SoundscapeConfig(duration_s=SOUNDSCAPE_S, gap_s=(20.0, 200.0), overlap_probability=0.1, seed=d + 1)
        make_soundscapes(focal, site, fold=fold, count=n, config=config, background_dir=bg, progress=False)
        for f in sorted((site / "audio").glob("*.flac")):
            f.rename(f.with_name(f"{site.name}-{f.name}"))
        calls = pd.read_csv(site / "calls.csv")
        calls["audio_id"] = site.name + "-" + calls["audio_id"].astype(str)
        calls.to_csv(site / "calls.csv", index=False)
        truth = pd.read_csv(site / "truth.csv")
        truth["audio_id"] = site.name + "-" + truth["audio_id"].astype(str)
        truth["row_id"] = site.name + "-" + truth["row_id"].astype(str)
        truth.to_csv(site / "truth_5s.csv", index=False)
        (site / "truth.csv").unlink()
    return archive


def index_truth(index, archive: Path, classes: list[str]) -> np.ndarray:
    """``(N, K)`` bool: index window i holds a call of class k (:func:`benchmarks.agile_truth.window_truth`)."""
    w = index.windows
    return window_truth(w["recording"].tolist(), w["start_s"].to_numpy(), w["end_s"].to_numpy(), archive, classes)


def relative(file: str, archive: Path) -> str:
    """A table's file path as the index names it (relative to the archive)."""
    return Path(file).resolve().relative_to(archive.resolve()).as_posix()


def index_rows(index, table: pd.DataFrame, archive: Path) -> np.ndarray:
    """The index row of every window (``file`` a full path, ``start_s``) of a table: the key ``birdspec agile`` uses."""
    from birdspec.evaluation.call_density_io import window_keys
    from birdspec.similarity.agile import index_keys

    files = pd.Series([relative(f, archive) for f in table["file"]], index=table.index)
    return index_keys(index).loc[window_keys(files, table["start_s"])].to_numpy()


def birdnet_speed(seconds: float = 600.0) -> float:
    """Audio hours per wall hour of BirdNET's backbone alone on 3 s windows of noise (all cores)."""
    from birdspec.birdnet.backend import WINDOW_SAMPLES, BirdnetBackbone

    backbone = BirdnetBackbone()
    n = int(seconds / 3.0)
    x = (0.01 * np.random.default_rng(0).standard_normal((n, WINDOW_SAMPLES))).astype(np.float32)
    backbone.embed(x[:8])
    t0 = time.perf_counter()
    for i in range(0, n, 16):
        backbone.embed(x[i : i + 16])
    return seconds / (time.perf_counter() - t0)


def queries(focal: Path, fold: int, classes: list[str], out: Path) -> dict[str, Path]:
    """Per species the loudest 3 s of its first training-fold recording (a 3 s wav)."""
    import soundfile as sf

    from birdspec import audio
    from birdspec.data.prepared import PreparedDataset

    m = PreparedDataset(focal).manifest
    paths = {}
    for c in classes:
        row = m[(m["label"] == c) & (m["fold"] != fold)].iloc[0]
        wave = audio.load(row["source_path"], sample_rate_hz=32000)
        hop = 16000
        energy = [float(np.mean(wave[i : i + 96000] ** 2)) for i in range(0, max(1, wave.size - 96000), hop)]
        start = int(np.argmax(energy)) * hop
        path = out / "queries" / f"{c}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave[start : start + 96000], 32000)
        paths[c] = path
    return paths


def verdict_rows(index, rows: np.ndarray, truth: np.ndarray, k: int, label: str) -> pd.DataFrame:
    w = index.windows.iloc[rows]
    return pd.DataFrame({"recording": w["recording"].to_numpy(), "start_s": w["start_s"].to_numpy(), "label": label,
                         "verdict": np.where(truth[rows, k], "yes", "no")})


def rows_5s(scores: np.ndarray, w: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """3 s window scores ``(N, K)`` (windows ``w``: recording, start_s, end_s) on the soundscapes' 5 s rows: per row
    the highest score of the 3 s windows overlapping it by >= 1.5 s (half a window), as a wide table
    ``score-soundscapes`` reads."""
    out = []
    for rec, g in w.groupby("recording", sort=False):
        starts, ends = g["start_s"].to_numpy(), g["end_s"].to_numpy()
        sc = scores[g.index.to_numpy()]
        for a in np.arange(0.0, float(ends.max()) - 4.999, 5.0):
            over = np.minimum(ends, a + 5.0) - np.maximum(starts, a) >= 1.5
            out.append({"file": rec, "start_s": a, "end_s": a + 5.0,
                        **dict(zip(classes, sc[over].max(axis=0) if over.any() else np.zeros(len(classes)), strict=True))})
    return pd.DataFrame(out)


def round_metrics(scores: np.ndarray, windows: pd.DataFrame, truth: np.ndarray, classes: list[str],
                  truth_5s: dict) -> dict:
    """A round's scores ``(N, K)`` of 3 s ``windows`` at 0.5: row-wise micro F1 and species F1 on the soundscapes'
    5 s rows, micro precision/recall/F1 and mean AP on the windows themselves (``truth`` ``(N, K)``)."""
    from birdspec.evaluation.scoring import read_predictions, score_soundscapes, sets_at

    table = rows_5s(scores, windows, classes)
    return {"row_f1": round(score_soundscapes(table, truth_5s, thresholds=[0.5]).f1, 4),
            **species_f1(sets_at(read_predictions(table), 0.5), truth_5s),
            **window_scores(scores, truth)}


def hoplite_side(python: str, archive: Path, out: Path, classes: list[str], truth_5s: dict, *, rounds: int,
                 per_round: int) -> dict:
    """perch-hoplite's own loop on the same archive and queries (benchmarks/hoplite_agile.py in hoplite's
    environment, ``python``), its rounds' scores scored here exactly as birdspec's (:func:`round_metrics`)."""
    from birdspec.birdnet.backend import birdnet_files
    from birdspec.runtime import cpu_count

    folder = out / "hoplite"
    if not (folder / "hoplite.json").is_file():
        ran = run_command([python, str(Path(__file__).with_name("hoplite_agile.py")), "--archive", str(archive),
                           "--queries", str(out / "queries"), "--model", str(birdnet_files().model_path),
                           "--classes", ",".join(classes), "--out", str(folder), "--rounds", str(rounds),
                           "--per-round", str(per_round), "--threads", str(cpu_count())], interval_s=None)
        if ran["rc"] != 0:
            raise RuntimeError(f"hoplite_agile.py failed ({ran['rc']}):\n{ran['output'][-3000:]}")
    res = json.loads((folder / "hoplite.json").read_text())
    scored = []
    for r in res["rounds"]:
        df = pd.read_csv(folder / f"round{r['round']}_scores.csv")
        truth = window_truth(df["recording"].tolist(), df["start_s"].to_numpy(), df["end_s"].to_numpy(), archive, classes)
        scored.append({"round": r["round"], "verdicts": r["verdicts"],
                       **round_metrics(df[classes].to_numpy(), df, truth, classes, truth_5s)})
    res["rounds_scored"] = scored
    return res


def species_f1(predicted: dict, truth: dict) -> dict:
    """Micro precision/recall/F1 over the (row, species) pairs of the truth's rows, ``nocall`` left out: how well the
    calls are found (the row-wise F1 also counts rows both call empty, most rows of sparse field audio)."""
    tp = fp = fn = 0
    for row, birds in truth.items():
        got = set(predicted.get(row, ())) - {"nocall"}
        want = set(birds) - {"nocall"}
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"species_precision": round(p, 4), "species_recall": round(r, 4),
            "species_f1": round(2 * p * r / max(p + r, 1e-12), 4)}


def soundscape_truth(archive: Path) -> dict:
    from birdspec.evaluation.scoring import read_truth

    return {r: b for p in sorted(archive.glob("site*/truth_5s.csv")) for r, b in read_truth(p).items()}


def call_density(scores: Path, index, truth: np.ndarray, classes: list[str], archive: Path, out: Path, *,
                 per_bin: int = 4) -> list[dict]:
    """Per species and site: the call-density estimate from a stratified sample (score bins, ``per_bin`` per bin and
    site, verdicts from the truth) of ``scores``, its interval, and the true fraction of the site's windows."""
    from birdspec.evaluation.call_density import geometric_quantiles
    from birdspec.evaluation.call_density_io import estimate_call_density, read_scores, sample_table, window_groups

    site = index.windows["deployment"].to_numpy()
    rows = []
    for k, c in enumerate(classes):
        windows, _ = read_scores(scores, c)
        sample = sample_table(windows, c, quantiles=geometric_quantiles(), per_bin=per_bin, seed=0,
                              groups=window_groups(windows, "deployment"))
        idx = index_rows(index, sample, archive)
        sample["verdict"] = np.where(truth[idx, k], "yes", "no")
        path = out / "call_density" / f"{c}_sample.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        sample.to_csv(path, index=False)
        res = estimate_call_density(scores, [path], species=c, group_by="deployment", own_min=per_bin)
        for e in res.estimates:
            true = float(truth[:, k].mean() if e.group == "all" else truth[site == e.group, k].mean())
            rows.append({"species": c, "group": e.group, "verdicts": len(sample) if e.group == "all" else
                         int(sum(e.yes_per_bin) + sum(e.no_per_bin)), "true": round(true, 4),
                         "estimate": round(e.density_mean, 4), "low": round(e.density_low, 4),
                         "high": round(e.density_high, 4), "covered": bool(e.density_low <= true <= e.density_high)})
    return rows


def index_memory(archive: Path, out: Path, hours: list[float], *, jobs: int) -> list[dict]:
    """Peak memory of ``birdspec index --backbone birdnet`` (the whole process tree, sampled) on the first ``hours``
    of the archive's 10 min soundscapes (links in OUT/memory/<h>h/), each into a fresh index: flat in length?"""
    files = sorted(archive.glob("site*/audio/*.flac"), key=lambda f: (f.name.split("-", 1)[1], f.name))
    rows = []
    for h in hours:
        sub = out / "memory" / f"{h:g}h"
        for f in files[: int(round(h * 3600 / SOUNDSCAPE_S))]:
            link = sub / "archive" / f.parent.parent.name / f.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(f.resolve())
        shutil.rmtree(sub / "index", ignore_errors=True)
        ran = run_command([sys.executable, "-m", "birdspec", "-q", "index", str(sub / "archive"), "--backbone", "birdnet",
                           "--out", str(sub / "index"), "--jobs", str(jobs), "--no-progress"])
        if ran["rc"] != 0:
            raise RuntimeError(f"birdspec index failed ({ran['rc']}):\n{ran['output'][-2000:]}")
        rows.append({"audio_hours": h, "peak_mb_tree": round(ran["peak_mb_tree"], 1), "wall_s": round(ran["wall_s"], 1)})
        print(f"index memory: {rows[-1]}", flush=True)
    return rows


def coverage(scores: Path, index, truth: np.ndarray, classes: list[str], archive: Path, *, draws: int) -> dict:
    """The call-density interval's coverage over ``draws`` verification samples per species (per site and all
    windows; :func:`benchmarks.agile_report.density_coverage`), and all of them pooled."""
    from birdspec.evaluation.call_density_io import read_scores

    rows = []
    for k, c in enumerate(classes):
        windows, _ = read_scores(scores, c)
        rows += density_coverage(windows, truth[index_rows(index, windows, archive), k], draws=draws, species=c)
    covered, total = sum(r["covered"] for r in rows), sum(r["draws"] for r in rows)
    return {"draws": draws, "covered": covered, "total": total, "fraction": round(covered / max(total, 1), 4),
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="bench-out/agile")
    p.add_argument("--hours", type=float, default=20.0)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--draws", type=int, default=100, help="verification samples for the call-density coverage")
    p.add_argument("--memory-hours", help="e.g. 1,5: peak memory of `birdspec index` on that many hours of the archive")
    p.add_argument("--hoplite-python", help="perch-hoplite's Python (a venv with perch-hoplite and tensorflow-cpu): "
                   "its own loop side by side (benchmarks/hoplite_agile.py)")
    p.add_argument("--prior-checkpoint", help="a birdnet-prior checkpoint trained on the folds != --fold")
    args = p.parse_args(argv)
    root, out, _device, machine = start_run(args.data, args.out, "cpu")
    from birdspec.data.prepared import PreparedDataset
    from birdspec.evaluation.scoring import read_predictions, score_soundscapes
    from birdspec.fileio import read_json, write_json
    from birdspec.similarity.agile import run_agile
    from birdspec.similarity.agile_config import AgileConfig
    from birdspec.similarity.build import build_index
    from birdspec.similarity.index_store import SimilarityIndex, file_size_mb
    from birdspec.similarity.query import search

    focal = prepare_encoding(root, out, "window")
    classes = list(PreparedDataset(focal).classes)
    scape_bg, _ = split_backgrounds(out)
    t0 = time.perf_counter()
    archive = make_archive(focal, out, hours=args.hours, fold=args.fold, sites=args.sites, bg=scape_bg)
    result: dict = read_json(out / "agile.json") or {"machine": machine}
    result.setdefault("archive_s", round(time.perf_counter() - t0, 1))
    index_dir = out / "index"
    if "index" not in result:
        t0 = time.perf_counter()
        summary = build_index(archive, index_dir, backbone="birdnet", jobs=args.jobs, progress=False)
        wall = time.perf_counter() - t0
        hours = float(summary["audio_hours"])
        result["index"] = {"audio_hours": hours, "wall_s": round(wall, 1), "x_real_time": round(hours * 3600 / wall, 1),
                           "windows": int(summary["num_vectors"]), "jobs": args.jobs,
                           "mb_per_audio_hour": round(file_size_mb(index_dir, ["vectors.npy", "vectors.usearch",
                                                                                "windows.csv"]) / hours, 2),
                           "birdnet_alone_x_real_time": round(birdnet_speed(), 1)}
        write_json(out / "agile.json", result)
    index = SimilarityIndex(index_dir)
    truth = index_truth(index, archive, classes)
    result["windows_with_calls"] = {c: int(truth[:, k].sum()) for k, c in enumerate(classes)}
    verdicts = []
    first = {}
    for k, (c, q) in enumerate(queries(focal, args.fold, classes, out).items()):
        res = search(index_dir, q, top=args.per_round, mode="exact")
        rows = res.table["row"].to_numpy()
        first[c] = round(float(truth[rows, k].mean()), 3)
        verdicts.append(verdict_rows(index, rows, truth, k, c))
    result["precision_at_first_search"] = first
    rounds = []
    truth_5s = soundscape_truth(archive)
    for r in range(1, args.rounds + 1):
        vfile = out / "rounds" / f"verdicts_{r - 1}.csv"
        vfile.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(verdicts, ignore_index=True).to_csv(vfile, index=False)
        t0 = time.perf_counter()
        res_a = run_agile(index_dir, [vfile], species=classes, out=out / "rounds" / f"round{r}",
                          config=AgileConfig(next_count=args.per_round))
        seconds = time.perf_counter() - t0
        scores = pd.read_csv(res_a.scores)[classes].to_numpy()
        rounds.append({"round": r, "verdicts": int(sum(len(v) for v in verdicts)), "seconds": round(seconds, 1),
                       **round_metrics(scores, index.windows, truth, classes, truth_5s)})
        nxt = pd.read_csv(res_a.next_windows)
        for k, c in enumerate(classes):
            g = nxt[nxt["label"] == c]
            rows = index_rows(index, g, archive)
            verdicts.append(verdict_rows(index, rows, truth, k, c))
        print(f"round {r}: {rounds[-1]}", flush=True)
    result["rounds"] = rounds
    last = out / "rounds" / f"round{args.rounds}" / "scores.csv"
    result["call_density"] = call_density(last, index, truth, classes, archive, out)
    result["call_density_coverage"] = coverage(last, index, truth, classes, archive, draws=args.draws)
    if args.prior_checkpoint:
        sub = out / "prior_submission.csv"
        if not sub.is_file():  # its own 5 s windows, its stored thresholds
            t0 = time.perf_counter()
            birdspec("predict", args.prior_checkpoint, str(archive), "--format", "birdclef", "--top-k", "0",
                     "--out", str(sub))
            result["prior_predict_s"] = round(time.perf_counter() - t0, 1)
        result["birdnet_prior"] = {"checkpoint": args.prior_checkpoint,
                                   "row_f1": round(score_soundscapes(sub, truth_5s).f1, 4),
                                   **species_f1(read_predictions(sub), truth_5s)}
    if args.memory_hours:
        result["index_memory"] = index_memory(archive, out, [float(h) for h in args.memory_hours.split(",")],
                                              jobs=args.jobs)
    if args.hoplite_python:
        result["hoplite"] = hoplite_side(args.hoplite_python, archive, out, classes, truth_5s, rounds=args.rounds,
                                         per_round=args.per_round)
    result["per_round"] = args.per_round
    write_json(out / "agile.json", result)
    plot_rounds(result, out / "agile_rounds.png")
    plot_density(result["call_density"], out / "agile_density.png")
    (out / "agile.md").write_text(f"Machine: {machine}\n\n```\n{json.dumps(result, indent=1)}\n```\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
