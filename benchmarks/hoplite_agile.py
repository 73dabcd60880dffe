"""perch-hoplite's own agile workflow on the agile benchmark's archive and queries (issue 31, side by side).

    /work/hoplite-venv/bin/python benchmarks/hoplite_agile.py --archive A --queries Q --model TFLITE \\
        --classes c1,c2,.. --out O [--rounds 3] [--per-round 20] [--hop-s 3] [--threads 2] [--density-per-bin 4]

Runs in perch-hoplite's environment (perch-hoplite, TensorFlow; no birdspec): the archive and queries are those
``benchmarks/agile.py`` made, the truth is the same rule (:mod:`benchmarks.agile_truth`). It mirrors that protocol
with hoplite's notebooks (``perch_hoplite/agile/01_embed_audio``, ``02_agile_modeling``, ``03_call_density``):
- embed: ``EmbedWorker.process_all`` with hoplite's ``BirdNet`` wrapper on the local BirdNET 2.4 tflite (3 s windows,
  hop ``--hop-s``, 48 kHz, 60 s shards as notebook 01) into ``db_loader.create_new_usearch_db`` (sqlite + usearch,
  float16, on disk under OUT/db; reused by a rerun, its annotations cleared); deployment = the site folder;
- search: per species the query (Q/<species>.wav) embedded by the same wrapper, ``db.search(..., approximate=False)``
  as notebook 02 calls it (``approximate=exact_search`` with ``exact_search=False``: exact usearch inner product,
  reranked by dot product), top ``--per-round``; verdicts from the truth;
- rounds: the verdicts as hoplite annotations (POSITIVE / NEGATIVE on the window's offsets), ``AgileDataManager`` +
  ``train_linear_classifier`` with notebook 02's defaults (lr 1e-3, weak_neg_weight 0.05, 128 steps, batch 128 +
  128 weak negatives, train_ratio 0.9, min_eval_examples 1, bce, rng seed 5), every window scored
  (OUT/round{r}_scores.csv, sigmoid of the logit), the next ``--per-round`` per species by notebook 02's margin
  sampling (``threaded_brute_search`` with ``get_score_fn('dot', bias, target_score=0)``) minus windows already
  labelled for that species; verdicts from the truth;
- call density: ``CallDensityATB`` per species and site (and all sites) on the last classifier, quantile bins
  0, .5, .75, .875, 1 (notebook 03's, also birdspec's), ``--density-per-bin`` examples a bin (notebook: 25;
  birdspec's benchmark: 4 a bin and site), verdicts from the truth, ``estimate_call_density`` (10 000 beta draws,
  prior 0.1) -> OUT/call_density.json.
Writes OUT/hoplite.json. Differences from birdspec's protocol are listed in its ``notes``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__" and not __package__:  # run as a file: import the benchmarks package, as python -m does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.agile_truth import MIN_OVERLAP_S, window_scores, window_truth  # noqa: E402

DATASET = "archive"
SHARD_S = 60.0
TRAIN = {"learning_rate": 1e-3, "weak_neg_weight": 0.05, "num_train_steps": 128}  # notebook 02's defaults; keras seed 0
DATA = {"train_ratio": 0.9, "min_eval_examples": 1, "batch_size": 128, "weak_negatives_batch_size": 128, "seed": 5}
DENSITY_BOUNDS = [0.0, 0.5, 0.75, 0.875, 1.0]
NOTES = [
    "search ranks by raw dot product of BirdNET embeddings (hoplite: usearch 'IP', reranked by np.dot); birdspec "
    "searches unit vectors (cosine)",
    "the classifier is hoplite's: Adam, 128 steps, weak negatives (every unlabelled window) at weight 0.05, on raw "
    "embeddings; 10 % of each species' verdicts (at least 1 positive and 1 negative) are held out for hoplite's own "
    "eval and not trained on; birdspec: L-BFGS logistic regression on unit vectors, all verdicts, positives and "
    "negatives weighted equally, random weak negatives",
    "hoplite selects the labelled windows of a label by Window.intersects (<=), so a window's two neighbours "
    "(touching at the edge) join the labelled set of every verdict; they carry no annotation of their own "
    "(get_window_annotations is strict) and so train as weak negatives and are left out of the weak-negative pool",
    "the Keras initial weights are seeded (tf.keras.utils.set_random_seed(0) before each training; hoplite leaves "
    "them unseeded, and on the 20-minute test archive two unseeded runs of round 1 gave mean AP 0.38 and 0.59)",
    "a window labelled for one species is a weak negative (weight 0.05) for the others, as in hoplite",
    "margin sampling targets logit 0 (score 0.5) over all windows and skips windows already labelled for the "
    "species (notebook 02 shows them again with their labels)",
    "embedding uses audio_worker_threads=1 (one TFLite interpreter is shared by EmbedWorker's threads, whose invoke "
    "releases the GIL) and num_tflite_threads=--threads; notebook 01 uses 8 worker threads",
    "the query is loaded at the model's 48 kHz (notebook 02's QueryDisplay hard-codes 32 kHz and 5 s)",
    "call density: hoplite's estimate is the bin-weighted MLE and notebook 03's interval is 5-95 % of 10 000 beta "
    "draws (low/high); low_95/high_95 are 2.5-97.5 % (birdspec's level); 'all' is its own study over all sites with "
    "per-bin x sites examples (birdspec pools the per-site samples)",
]


def model_config(tflite: Path, hop_s: float, threads: int):
    from ml_collections import config_dict
    from perch_hoplite.agile import embed

    cfg = config_dict.ConfigDict({"model_path": str(tflite), "class_list_name": "birdnet_v2_4", "window_size_s": 3.0,
                                  "hop_size_s": float(hop_s), "sample_rate": 48000, "num_tflite_threads": int(threads)})
    return embed.ModelConfig(model_key="birdnet", embedding_dim=1024, model_config=cfg)


def embed_archive(archive: Path, out: Path, mcfg) -> tuple[object, dict]:
    """The hoplite DB under OUT/db with every window of the archive (reused when OUT/embed.json says it is done)."""
    import soundfile as sf
    from perch_hoplite.agile import embed, source_info
    from perch_hoplite.db import db_loader, sqlite_usearch_impl

    db_dir, done = out / "db", out / "embed.json"
    if done.is_file():
        return sqlite_usearch_impl.SQLiteUSearchDB.create(str(db_dir)), {**json.loads(done.read_text()), "reused": True}
    shutil.rmtree(db_dir, ignore_errors=True)
    db = db_loader.create_new_usearch_db(str(db_dir), mcfg.embedding_dim)
    glob = source_info.AudioSourceConfig(dataset_name=DATASET, base_path=str(archive.resolve()), file_glob="site*/audio/*.flac",
                                         min_audio_len_s=1.0, target_sample_rate_hz=-2, shard_len_s=SHARD_S)
    hours = sum(sf.info(str(f)).duration for f in archive.glob("site*/audio/*.flac")) / 3600
    t0 = time.perf_counter()
    worker = embed.EmbedWorker(audio_sources=source_info.AudioSources((glob,)), model_config=mcfg, db=db,
                               audio_worker_threads=1)
    worker.process_all(target_dataset_name=DATASET)
    db.commit()
    wall = time.perf_counter() - t0
    mb = sum(f.stat().st_size for f in db_dir.iterdir() if f.is_file()) / 2**20
    stats = {"db": "sqlite_usearch (on disk)", "audio_hours": round(hours, 3), "wall_s": round(wall, 1),
             "x_real_time": round(hours * 3600 / wall, 1), "windows": int(db.count_embeddings()),
             "mb_per_audio_hour": round(mb / hours, 2)}
    done.write_text(json.dumps(stats, indent=1))
    return db, {**stats, "reused": False}


def window_table(db) -> pd.DataFrame:
    """One row per window: hoplite id, recording (relative to the archive), deployment, start_s, end_s."""
    deps = {d.id: d.name for d in db.get_all_deployments()}
    recs = {r.id: (r.filename, deps[r.deployment_id]) for r in db.get_all_recordings()}
    rows = [(w.id, *recs[w.recording_id], float(w.offsets[0]), float(w.offsets[1]), w.recording_id) for w in db.get_all_windows()]
    t = pd.DataFrame(rows, columns=["id", "recording", "deployment", "start_s", "end_s", "recording_id"])
    return t.sort_values(["recording", "start_s"], kind="stable").reset_index(drop=True)


def clear_annotations(db) -> None:
    for a in db.get_all_annotations():
        db.remove_annotation(a.id)
    db.commit()


def label(db, table: pd.DataFrame, rows: np.ndarray, truth: np.ndarray, k: int, species: str, provenance: str) -> None:
    """The truth's verdicts on ``rows`` as hoplite annotations (the window's offsets, as harvest_labels writes them)."""
    from perch_hoplite.db import datatypes

    for i in rows:
        kind = datatypes.LabelType.POSITIVE if truth[i, k] else datatypes.LabelType.NEGATIVE
        db.insert_annotation(recording_id=int(table.recording_id[i]), offsets=[float(table.start_s[i]), float(table.end_s[i])],
                             label=species, label_type=kind, provenance=provenance, handle_duplicates="skip")
    db.commit()


def first_search(db, table, truth, classes, queries: Path, top: int) -> tuple[dict, dict, dict]:
    """Per species: query embedded, ``db.search`` as notebook 02; rows of the hits, precision, latency (ms)."""
    from perch_hoplite import audio_io
    from perch_hoplite.zoo import model_configs

    mc = db.get_metadata("model_config")
    model = model_configs.get_model_class(mc.model_key).from_config(mc.model_config)
    row_of = pd.Series(np.arange(len(table)), index=table["id"].to_numpy())
    rows, precision, ms = {}, {}, {}
    for k, c in enumerate(classes):
        q = model.embed(audio_io.load_audio(str(queries / f"{c}.wav"), model.sample_rate)).embeddings[0, 0]
        t0 = time.perf_counter()
        res = db.search(q, search_list_size=top, approximate=False)
        ms[c] = round(1000 * (time.perf_counter() - t0), 1)
        rows[c] = row_of.loc[[int(r.window_id) for r in res]].to_numpy()
        precision[c] = round(float(truth[rows[c], k].mean()), 3)
    return rows, precision, ms


def train(db, classes):
    """Notebook 02's classifier cell: ``(classifier, info)`` with the training time and hoplite's own eval."""
    import tensorflow as tf
    from perch_hoplite.agile import classifier, classifier_data

    def manager():
        return classifier_data.AgileDataManager(
            target_labels=tuple(classes), db=db, train_ratio=DATA["train_ratio"], min_eval_examples=DATA["min_eval_examples"],
            batch_size=DATA["batch_size"], weak_negatives_batch_size=DATA["weak_negatives_batch_size"],
            rng=np.random.default_rng(seed=DATA["seed"]))

    tf.keras.utils.set_random_seed(0)  # the Dense layer's initial weights (unseeded in hoplite): reruns agree
    t0 = time.perf_counter()
    clf, ev = classifier.train_linear_classifier(data_manager=manager(), loss="bce", **TRAIN)
    seconds = time.perf_counter() - t0
    train_ids, eval_ids = manager().get_train_test_split()  # the same split (same seed): what was labelled
    return clf, {"train_s": round(seconds, 2), "labelled_windows": len(train_ids) + len(eval_ids), "eval_windows": len(eval_ids),
                 "eval_roc_auc": _num(ev["roc_auc"]), "eval_cmap": _num(ev["cmap"])}


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def logits_all(db, clf, table) -> np.ndarray:
    """``(N, K)`` logits of every window (table order), hoplite's classifier on its stored embeddings."""
    from perch_hoplite.agile import classifier

    out = [clf(np.asarray(e, dtype=np.float32)) for _, e in classifier.batched_embedding_iterator(db, table["id"].to_numpy())]
    return np.concatenate(out, axis=0)


def margin_rows(db, clf, table, k: int, labelled: set[int], count: int, threads: int) -> np.ndarray:
    """Notebook 02's margin sampling (logit near 0) for class ``k``, windows already labelled for it skipped."""
    from perch_hoplite.db import brutalism, score_functions

    size = count + len(labelled)
    n = len(table)
    batch = 1024 if n % 1024 == 0 or n % 1024 > size else n  # argpartition needs every batch larger than the list
    score_fn = score_functions.get_score_fn("dot", bias=float(clf.beta_bias[k]), target_score=0.0)
    res = brutalism.threaded_brute_search(db, clf.beta[:, k], size, score_fn=score_fn, batch_size=batch,
                                          max_workers=threads, sample_size=1_000_000)
    row_of = pd.Series(np.arange(n), index=table["id"].to_numpy())
    picked = [int(row_of[int(r.window_id)]) for r in res]
    return np.asarray([i for i in picked if i not in labelled][:count], dtype=np.int64)


def call_density(db, clf, table, truth, classes, per_bin: int) -> list[dict]:
    """``CallDensityATB`` per species and site (and all sites), verdicts from the truth, against the true fraction."""
    from ml_collections import config_dict
    from perch_hoplite.agile import call_density as cd

    row_of = pd.Series(np.arange(len(table)), index=table["id"].to_numpy())
    sites = sorted(table["deployment"].unique())
    out = []
    for k, c in enumerate(classes):
        for group in [*sites, "all"]:
            filt = None if group == "all" else config_dict.create(eq=dict(name=group))
            n = per_bin * (len(sites) if group == "all" else 1)
            study = cd.CallDensityATB.create(db, 42, study_name="benchmark", classifier=clf, target_class=c,
                                             bin_bounds=DENSITY_BOUNDS, binning_strategy="quantile", samples_per_bin=n,
                                             deployments_filter=filt)
            todo = [row_of[ex.window_id] for ex in study.get_validation_examples() if ex.label_type is None]
            label(db, table, np.asarray(todo, dtype=np.int64), truth, k, c, "density")
            ev, draws = study.estimate_call_density(db, num_beta_samples=10_000, beta_prior=0.1, verbose=False)
            in_group = np.ones(len(table), bool) if group == "all" else (table["deployment"] == group).to_numpy()
            true = float(truth[in_group, k].mean())
            low, high, low95, high95 = np.quantile(draws, [0.05, 0.95, 0.025, 0.975])
            out.append({"species": c, "group": group, "verdicts": len(study.get_validation_examples().examples),
                        "true": round(true, 4), "estimate": round(float(ev), 4), "low": round(float(low), 4),
                        "high": round(float(high), 4), "covered": bool(low <= true <= high), "low_95": round(float(low95), 4),
                        "high_95": round(float(high95), 4), "covered_95": bool(low95 <= true <= high95)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--model", required=True, help="BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite (labels file beside it)")
    p.add_argument("--classes", required=True, help="comma-separated species (every label of the archive's calls)")
    p.add_argument("--out", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--hop-s", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--density-per-bin", type=int, default=4, help="examples per bin and site (0: skip call density)")
    args = p.parse_args(argv)
    import tensorflow as tf

    archive, out, classes = Path(args.archive), Path(args.out), args.classes.split(",")
    out.mkdir(parents=True, exist_ok=True)
    mcfg = model_config(Path(args.model).resolve(), args.hop_s, args.threads)
    db, stats = embed_archive(archive, out, mcfg)
    clear_annotations(db)
    table = window_table(db)
    truth = window_truth(table["recording"], table["start_s"], table["end_s"], archive, classes)
    result = {"versions": {"perch-hoplite": metadata.version("perch-hoplite"), "tensorflow": tf.__version__,
                           "usearch": metadata.version("usearch"), "python": sys.version.split()[0]},
              "settings": {"classes": classes, "rounds": args.rounds, "per_round": args.per_round, "hop_s": args.hop_s,
                           "window_s": 3.0, "sample_rate_hz": 48000, "shard_s": SHARD_S, "threads": args.threads,
                           "model": str(args.model), "min_overlap_s": MIN_OVERLAP_S, "train": TRAIN, "data_manager": DATA,
                           "search": "db.search(approximate=False): exact usearch IP (float16), rerank np.dot",
                           "margin": "threaded_brute_search, get_score_fn('dot', bias, target_score=0.0)",
                           "density": {"bounds": DENSITY_BOUNDS, "per_bin_and_site": args.density_per_bin,
                                       "rng_seed": 42, "beta_prior": 0.1, "num_beta_samples": 10_000}},
              "embed": stats, "windows_with_calls": {c: int(truth[:, k].sum()) for k, c in enumerate(classes)}}
    rows, result["precision_at_first_search"], result["search_ms"] = first_search(db, table, truth, classes, Path(args.queries),
                                                                                  args.per_round)
    labelled = {c: set() for c in classes}
    rounds, clf = [], None
    for r in range(1, args.rounds + 1):
        for k, c in enumerate(classes):
            label(db, table, rows[c], truth, k, c, "truth")
            labelled[c].update(int(i) for i in rows[c])
        clf, info = train(db, classes)
        t1 = time.perf_counter()
        scores = 1.0 / (1.0 + np.exp(-logits_all(db, clf, table)))
        t2 = time.perf_counter()
        frame = table[["recording", "start_s", "end_s"]].assign(**{c: np.round(scores[:, k], 5) for k, c in enumerate(classes)})
        frame.to_csv(out / f"round{r}_scores.csv", index=False)
        rows = {c: margin_rows(db, clf, table, k, labelled[c], args.per_round, args.threads) for k, c in enumerate(classes)}
        rounds.append({"round": r, "verdicts": sum(len(v) for v in labelled.values()), **info,
                       "score_s": round(t2 - t1, 2), "margin_s": round(time.perf_counter() - t2, 2),
                       **window_scores(scores, truth)})
        print(f"round {r}: {rounds[-1]}", flush=True)
    result["rounds"] = rounds
    if args.density_per_bin > 0 and clf is not None:
        t0 = time.perf_counter()
        density = call_density(db, clf, table, truth, classes, args.density_per_bin)
        (out / "call_density.json").write_text(json.dumps(density, indent=1))
        result["call_density"] = {"file": str(out / "call_density.json"), "seconds": round(time.perf_counter() - t0, 1),
                                  "covered": sum(d["covered"] for d in density), "covered_95": sum(d["covered_95"] for d in density),
                                  "rows": len(density)}
    result["notes"] = NOTES
    (out / "hoplite.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
