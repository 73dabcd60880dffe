"""BirdNET on a prepared dataset: closed-set BirdNET, and k-fold CV of the birdnet heads.

Needs the optional extra (``pip install 'birdspec[birdnet]'``; the BirdNET
model is CC BY-NC-SA 4.0) and an embedding cache::

    birdspec prepare /work/shared/data/xc-reed-warblers --species grrwar1,blrwar1,marwar3,sedwar1 \\
        --encoding window --short-policy tile --folds 5 --out /tmp/rw_window
    birdspec embed /tmp/rw_window --backbone birdnet
    python benchmarks/birdnet_baseline.py /tmp/rw_window [--heads birdnet-linear,birdnet-mlp] [--epochs 60]

What it measures, all at recording level over the dataset's ``fold`` column
(every recording is scored exactly once, by the model that did not see its fold):

1. **BirdNET closed set** (no training): BirdNET's confidences
   (``sigmoid(logits)``, from the cached embeddings through its class layer)
   restricted to the dataset's species (matched by scientific name), maximum
   over the recording's 3 s windows; the prediction is the argmax over those
   species.
2. **Logistic regression** on mean-pooled embeddings (standardised), a reference.
3. **birdnet-linear / birdnet-mlp** heads trained per fold with the family's
   train defaults (AdamW, constant lr, batch 16, random window crops), scored
   after the last epoch (no model selection on the test fold).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from birdspec.data.embedding_dataset import EmbeddingCache, EmbeddingDataset, collate_embeddings
from birdspec.data.prepared import PreparedDataset
from birdspec.models.birdnet_head import build_head
from birdspec.models.registry import get_spec


def birdnet_closed_set(data: PreparedDataset, cache: EmbeddingCache) -> dict:
    """Accuracy of BirdNET alone, restricted to the dataset's species: the ``birdnet-closed`` rule (its
    final-layer rows of the mapped species, :func:`birdspec.models.birdnet_classes.class_layer_rows`; a
    recording's class is the arg-max of its windows' maximum logit, i.e. of BirdNET's maximum confidence)."""
    from birdspec.models.birdnet_classes import class_layer_rows

    _, w, b, _ = class_layer_rows(data.class_info)
    y_true = data.manifest["label_id"].to_numpy()
    y_pred = np.array([int((cache.windows(row) @ w.T + b).max(axis=0).argmax()) for row in range(len(y_true))])
    correct = int((y_pred == y_true).sum())
    return {"correct": correct, "total": int(len(y_true)), "accuracy": correct / len(y_true)}


def logistic_regression_cv(data: PreparedDataset, cache: EmbeddingCache) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    m = data.manifest
    X = np.stack([cache.windows(r).mean(axis=0) for r in range(len(m))])
    y = m["label_id"].to_numpy()
    accs = []
    for k in sorted(m["fold"].unique()):
        test = (m["fold"] == k).to_numpy()
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        clf.fit(X[~test], y[~test])
        accs.append(float((clf.predict(X[test]) == y[test]).mean()))
    return {"per_fold": accs, "mean": float(np.mean(accs))}


def train_head(
    data: PreparedDataset, name: str, train_rows: np.ndarray, *, epochs: int, seed: int, max_windows: int | None
) -> torch.nn.Module:
    d = get_spec(name).train_defaults
    torch.manual_seed(seed)
    ds = EmbeddingDataset(data, rows=train_rows, level="recording", random_crop=True, max_windows=max_windows)
    head = build_head(name, num_classes=len(data.classes), in_channels=ds.in_channels)
    opt = torch.optim.AdamW(head.parameters(), lr=d["lr"], weight_decay=d["weight_decay"])
    loader = DataLoader(ds, batch_size=d["batch_size"], shuffle=True, collate_fn=collate_embeddings)
    head.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(head(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


@torch.no_grad()
def score_head(head: torch.nn.Module, data: PreparedDataset, rows: np.ndarray) -> np.ndarray:
    ds = EmbeddingDataset(data, rows=rows, level="recording")
    loader = DataLoader(ds, batch_size=32, shuffle=False, collate_fn=collate_embeddings)
    return np.concatenate([torch.softmax(head(x), dim=1).numpy() for x, _ in loader])


def heads_cv(data: PreparedDataset, names: list[str], *, epochs: int, seeds: list[int], max_windows: int | None) -> dict:
    m = data.manifest
    y = m["label_id"].to_numpy()
    out = {}
    for name in names:
        runs = []
        for seed in seeds:
            accs = []
            for k in sorted(m["fold"].unique()):
                test = np.flatnonzero((m["fold"] == k).to_numpy())
                train = np.flatnonzero((m["fold"] != k).to_numpy())
                head = train_head(data, name, train, epochs=epochs, seed=seed * 100 + int(k), max_windows=max_windows)
                accs.append(float((score_head(head, data, test).argmax(1) == y[test]).mean()))
            runs.append({"seed": seed, "per_fold": accs, "mean": float(np.mean(accs))})
        out[name] = {"runs": runs, "mean_over_seeds": float(np.mean([r["mean"] for r in runs]))}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="prepared dataset with folds and a BirdNET embedding cache")
    p.add_argument("--heads", default="birdnet-linear,birdnet-mlp", help="comma-separated head models ('' for none)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fold (default: the family's train default)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument("--max-windows", type=int, default=None, help="cap on windows per training crop")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-birdnet", action="store_true", help="skip the BirdNET closed-set score")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = PreparedDataset(args.dataset)
    if (data.manifest["fold"] < 0).all():
        raise SystemExit(f"{args.dataset} has no folds; prepare it with --folds 5")
    cache = EmbeddingCache(data)
    results: dict = {"dataset": str(data.root), "recordings": int(len(data.manifest)), "classes": data.classes}
    if not args.no_birdnet:
        results["birdnet_closed_set"] = birdnet_closed_set(data, cache)
        r = results["birdnet_closed_set"]
        print(f"BirdNET closed set ({len(data.classes)} species): {r['correct']}/{r['total']} = {r['accuracy']:.3f}")
    results["logreg_meanpool_cv"] = logistic_regression_cv(data, cache)
    r = results["logreg_meanpool_cv"]
    print(f"logistic regression (mean-pooled): folds {[round(a, 3) for a in r['per_fold']]} mean {r['mean']:.3f}")
    names = [n for n in args.heads.split(",") if n]
    if names:
        epochs = args.epochs or int(get_spec(names[0]).train_defaults.get("epochs", 60))
        t0 = time.perf_counter()
        results["heads_cv"] = heads_cv(data, names, epochs=epochs, seeds=[int(s) for s in args.seeds.split(",")], max_windows=args.max_windows)
        results["heads_cv_seconds"] = time.perf_counter() - t0
        for name, res in results["heads_cv"].items():
            for run in res["runs"]:
                print(f"{name} seed {run['seed']} ({epochs} epochs): folds {[round(a, 3) for a in run['per_fold']]} mean {run['mean']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
