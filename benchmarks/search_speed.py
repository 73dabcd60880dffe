"""Search speed and recall of embedding indexes (issue 31 items 1-2: ``birdspec index`` / ``birdspec search``).

    python benchmarks/search_speed.py                          # 1,000,000 x 1024-d, float16, 2 threads
    python benchmarks/search_speed.py --n 100000 --compare-faiss   # + faiss-cpu's HNSW on the same vectors

Synthetic vectors shaped like BirdNET embeddings (1024-d, non-negative, on a low-dimensional manifold, in
clusters): ``relu(z @ A) + noise`` with ``z`` drawn around one of ``--clusters`` centres in a 64-d latent
space, then L2-normalised (what an index stores). Uniform random vectors would be the wrong test: they have
no neighbours to speak of, and real embeddings are nothing like them.

It writes an index folder in ``birdspec index``'s layout (windows.csv, vectors.npy, index.json) in a temporary
folder, builds the approximate index with birdspec's own code (:func:`birdspec.similarity.ann.build_ann`:
usearch HNSW, the shipped settings) and then, for ``--queries`` held-out query vectors:

- exact top-100 (:func:`birdspec.similarity.query.exact_search`, the ground truth; its latency is that of
  ``--mode exact``);
- approximate top-100 at several ``expansion_search`` values through
  :func:`birdspec.similarity.query.search_vector` (HNSW candidates rescored exactly: what ``birdspec search``
  does), one query at a time on one thread: latency (median, p95) and recall@100 against exact; and the
  graph's own search alone (``usearch_raw``: what compares with faiss's ``search`` under ``--compare-faiss``);
- the vector dtype: recall@100 of exact search over float16 and int8 stored vectors against float32 (on the
  first ``--dtype-n`` vectors);
- sizes on disk per vector and per audio hour (3 s windows: 1,200 an hour at a 3 s hop).

Needs ``birdspec[index]`` (usearch); ``--compare-faiss`` needs faiss-cpu.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python benchmarks/search_speed.py`: import the package
    sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import numpy as np

from benchmarks.common import describe_machine, own_peak_mb

DIM = 1024
LATENT = 64
K = 100


def synthetic(n: int, *, seed: int, clusters: int) -> np.ndarray:
    """``(n, DIM)`` float32 unit vectors (see the module doc), made in blocks."""
    space = np.random.default_rng(0)
    a = space.standard_normal((LATENT, DIM)).astype(np.float32) / 8
    centres = space.standard_normal((clusters, LATENT)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for i in range(0, n, 50_000):
        m = min(50_000, n - i)
        z = centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, LATENT)).astype(np.float32)
        x = np.maximum(z @ a, 0) + 0.05 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def write_index(folder: Path, n: int, *, clusters: int) -> None:
    """An index folder of ``n`` synthetic float16 vectors in ``birdspec index``'s layout (no parts)."""
    from birdspec.similarity.index_store import VECTORS_FILE, WINDOWS_FILE, IndexInfo

    store = np.lib.format.open_memmap(folder / VECTORS_FILE, mode="w+", dtype=np.float16, shape=(n, DIM))
    for i in range(0, n, 200_000):
        m = min(200_000, n - i)
        store[i : i + m] = synthetic(m, seed=1 + i // 200_000, clusters=clusters).astype(np.float16)
    store.flush()
    del store
    with open(folder / WINDOWS_FILE, "w") as f:
        f.write("recording,deployment,start_s,end_s\n")
        for i in range(n):
            rec, w = divmod(i, 1200)  # one-hour recordings of 3 s windows
            f.write(f"site{rec % 10}/rec{rec}.flac,site{rec % 10},{w * 3},{w * 3 + 3}\n")
    IndexInfo(backbone="birdnet", window_s=3.0, hop_s=3.0, min_partial_s=1.0, dim=DIM, dtype="float16", num_vectors=n,
              num_recordings=-(-n // 1200), audio_hours=n / 1200, archive="synthetic").write(folder)


def exact_truth(index, queries: np.ndarray) -> list[np.ndarray]:
    """The exact top-100 rows of every query (all queries per block of vectors: one pass over the index)."""
    from birdspec.similarity.index_store import as_unit_float32

    best_s = np.full((len(queries), K), -np.inf, np.float32)
    best_r = np.zeros((len(queries), K), np.int64)
    for a in range(0, len(index), 65_536):
        sims = queries @ as_unit_float32(index.vectors[a : a + 65_536]).T
        s = np.concatenate([best_s, sims], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(a, a + sims.shape[1]), sims.shape)], axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :K]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return list(best_r)


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(set(f[:K].tolist()) & set(t[:K].tolist())) / K for f, t in zip(found, truth, strict=True)]))


def dtype_recall(n: int, queries: np.ndarray, *, clusters: int) -> dict[str, float]:
    """recall@100 of exact search over stored float16 / int8 vectors against float32."""
    from birdspec.similarity.index_store import as_unit_float32, quantise

    x = synthetic(n, seed=1, clusters=clusters)
    truth = [np.argsort(-s, kind="stable")[:K] for s in queries @ x.T]
    out = {}
    for dtype in ("float16", "int8"):
        stored = as_unit_float32(quantise(x, dtype))
        out[dtype] = recall([np.argsort(-s, kind="stable")[:K] for s in queries @ stored.T], truth)
    return out


def raw_usearch(index, queries: np.ndarray, truth: list[np.ndarray]) -> list[dict]:
    """The graph's own search (no exact rescoring, no table): what compares with faiss's ``search``."""
    from birdspec.similarity.index_store import quantise

    rows = []
    for ef in (128, 256):
        times, found = [], []
        for q in queries:
            stored = quantise(q[None], "float16")[0]
            t = time.perf_counter()
            found.append(index.ann().search(stored, K, expansion_search=ef))
            times.append(time.perf_counter() - t)
        rows.append({"library": "usearch HNSW (float16)", "expansion_search": ef,
                     "median_ms": round(1000 * float(np.median(times)), 2), "recall_at_100": round(recall(found, truth), 4)})
    return rows


def compare_faiss(folder: Path, queries: np.ndarray, truth: list[np.ndarray], *, threads: int) -> list[dict]:
    """faiss-cpu's HNSW (float32, and float16 scalar-quantised) on the same vectors, same M and efConstruction."""
    import faiss

    from birdspec.similarity.ann import CONNECTIVITY, EXPANSION_ADD

    x = np.load(folder / "vectors.npy").astype(np.float32)
    rows = []
    for name, make in (("HNSWFlat (float32)", lambda: faiss.IndexHNSWFlat(DIM, CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)),
                       ("HNSWSQ (float16)", lambda: faiss.IndexHNSWSQ(DIM, faiss.ScalarQuantizer.QT_fp16, CONNECTIVITY,
                                                                     faiss.METRIC_INNER_PRODUCT))):
        faiss.omp_set_num_threads(threads)
        index = make()
        index.hnsw.efConstruction = EXPANSION_ADD
        t0 = time.perf_counter()
        if not index.is_trained:
            index.train(x[:20_000])
        index.add(x)
        build = time.perf_counter() - t0
        path = folder / "faiss.index"
        faiss.write_index(index, str(path))
        faiss.omp_set_num_threads(1)
        for ef in (128, 256):
            index.hnsw.efSearch = ef
            times, found = [], []
            for q in queries:
                t = time.perf_counter()
                found.append(index.search(q[None], K)[1][0])
                times.append(time.perf_counter() - t)
            rows.append({"library": f"faiss {faiss.__version__} {name}", "build_s": round(build, 1),
                         "file_mb": round(path.stat().st_size / 1e6), "expansion_search": ef,
                         "median_ms": round(1000 * float(np.median(times)), 2), "recall_at_100": round(recall(found, truth), 4)})
        path.unlink()
    return rows


def main(argv: list[str] | None = None) -> int:
    import usearch

    from birdspec.runtime import cpu_count
    from birdspec.similarity import ann, query
    from birdspec.similarity.index_store import ANN_FILE, VECTORS_FILE, IndexInfo, SimilarityIndex

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the index (default 1,000,000)")
    p.add_argument("--queries", type=int, default=100, help="held-out query vectors (default 100)")
    p.add_argument("--clusters", type=int, default=2000, help="cluster centres of the synthetic vectors (default 2000)")
    p.add_argument("--dtype-n", type=int, default=100_000, help="vectors of the dtype comparison (default 100,000)")
    p.add_argument("--threads", type=int, default=None, help="build threads (default: all cores)")
    p.add_argument("--compare-faiss", action="store_true", help="also build faiss-cpu's HNSW on the same vectors")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    threads = args.threads or cpu_count()
    results: dict = {"machine": describe_machine(f"CPU ({threads} threads)"), "n": args.n, "dim": DIM,
                     "usearch": usearch.__version__}
    queries = synthetic(args.queries, seed=10_000, clusters=args.clusters)
    with tempfile.TemporaryDirectory(prefix="birdspec-search-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        write_index(folder, args.n, clusters=args.clusters)
        results["write_s"] = round(time.perf_counter() - t0, 1)
        vectors = np.load(folder / VECTORS_FILE, mmap_mode="r")
        t0 = time.perf_counter()
        settings = ann.build_ann(vectors, folder / ANN_FILE, dtype="float16", threads=threads)
        results["build_s"] = round(time.perf_counter() - t0, 1)
        print(f"built {args.n} in {results['build_s']} s", flush=True)
        info = IndexInfo.read(folder)
        IndexInfo(**{**info.__dict__, "ann": settings}).write(folder)
        index = SimilarityIndex(folder)
        truth = exact_truth(index, queries)
        t0 = time.perf_counter()
        for q in queries[:3]:  # what `--mode exact` costs (one query a call: every vector read and compared)
            query.exact_search(index, q, K)
        results["exact_ms_per_query"] = round(1000 * (time.perf_counter() - t0) / 3, 1)
        rows = []
        for ef in (64, 128, 256, 512):
            times, found = [], []
            for q in queries[:5]:  # warm the memory-mapped graph's pages
                query.search_vector(index, q, top=K, mode="approximate", expansion_search=ef)
            for q in queries:
                t = time.perf_counter()
                table, _ = query.search_vector(index, q, top=K, mode="approximate", expansion_search=ef)
                times.append(time.perf_counter() - t)
                found.append(table["row"].to_numpy())
            rows.append({"expansion_search": ef, "median_ms": round(1000 * float(np.median(times)), 2),
                         "p95_ms": round(1000 * float(np.percentile(times, 95)), 2), "recall_at_100": round(recall(found, truth), 4)})
            print(rows[-1], flush=True)
        results["approximate"] = rows
        results["usearch_raw"] = raw_usearch(index, queries, truth)
        sizes = {name: os.path.getsize(folder / name) for name in ("vectors.npy", "vectors.usearch", "windows.csv")}
        per_vector = {k: round(v / args.n, 1) for k, v in sizes.items()}
        results["bytes_per_vector"] = per_vector
        results["index_mb_per_audio_hour_3s_hop"] = round(sum(per_vector.values()) * 1200 / 1e6, 2)
        results["parts_mb_per_audio_hour_3s_hop"] = round(2 * DIM * 1200 / 1e6, 2)  # float16 parts, kept for extension
        if args.compare_faiss:
            results["faiss"] = compare_faiss(folder, queries, truth, threads=threads)
    results["dtype_recall_at_100"] = dtype_recall(min(args.dtype_n, args.n), queries, clusters=args.clusters)
    results["peak_mb"] = round(own_peak_mb())
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
