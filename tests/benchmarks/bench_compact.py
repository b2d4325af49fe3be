"""Accuracy of the compact projection against exact chi2-soft: the table that chose its defaults.

Run by hand (a few minutes on two cores; the sets are made once under ``--work``)::

    cbir datasets fetch wang && cbir datasets fetch skimage-dup    # or pass --wang DIR --skimage-dup DIR
    python tests/benchmarks/bench_compact.py [--wang DIR] [--skimage-dup DIR] [--work DIR] [--json] [--neighbourhood]

Three sets, each indexed by a real ``cbir index`` run (default codebook and layout, its
own database): Wang (1,000 photos, 10 classes), skimage-dup and wang-dup (near-duplicate
sets made by ``cbir make-benchmark``; see ``bench_accuracy.py``). On the stored
histograms, leave-one-out, ties broken by row id as the index does, it measures mAP of

* exact chi2-soft on the full histograms (today's ranking);
* the projection (:mod:`cbir.projection`) at 64, 128 and 256 dimensions, whitening
  powers 0 to 0.5, and without the L2 normalization;
* the compact first stage with its top R candidates re-ranked by exact chi2-soft;
* with ``--neighbourhood``: on top of the compact default (128 dimensions, top 20
  re-ranked), database-side augmentation (:func:`cbir.augment.augment`, 1-4 neighbours,
  alpha 1 and 3, whitening 0 and 0.15) and alpha-query expansion (1-3 results), each
  against the default measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import _dataset, _fetched, _wang_dup

from cbir.distances import distance_function
from cbir.evaluation import evaluate
from cbir.projection import MAX_FIT_SAMPLE, fit_projection, project
from cbir.store import Store
from indexer import index_folder


def _stored(data, work: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(centers, histograms in id order, paths in id order) of a default ``cbir index`` run of the set."""
    db = work / f"{data.name}-default.db"
    with Store(db, create=True) as store:
        index_folder(data.root, store, workers=2)
        centers = store.codebook()[1].centers
        ids, X = store.all_histograms()
        paths = store.paths(ids)
    return centers, X, [paths[int(i)] for i in ids]


def _map(data, paths: list[str], rank) -> float:  # type: ignore[no-untyped-def]
    row = {p: i for i, p in enumerate(paths)}

    def ranker(batch: list[str]) -> list[list[str]]:
        return [[paths[j] for j in rank(row[p])] for p in batch]

    return evaluate(data.items, ranker, protocol=data.name, metric="x").mean_ap


def _variants(centers: np.ndarray, X: np.ndarray) -> dict[str, object]:
    """label -> rank(i) function giving the order of all rows for query row i."""
    order_key = np.arange(len(X))
    chi2_soft = distance_function("chi2-soft", centers)
    sample = np.random.default_rng(0).permutation(len(X))[:MAX_FIT_SAMPLE]
    exact = {}

    def exact_distances(i: int) -> np.ndarray:
        if i not in exact:
            exact[i] = chi2_soft(X[i], X)
        return exact[i]

    out: dict[str, object] = {"exact chi2-soft": lambda i: np.lexsort((order_key, exact_distances(i)))}

    def compact(V: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda i: np.lexsort((order_key, ((V - V[i]) ** 2).sum(axis=1)))

    projected = {}
    for m, whiten in ((64, 0.0), (128, 0.0), (256, 0.0), (128, 0.15), (128, 0.3), (128, 0.5)):
        projection = fit_projection(X[sample], centers, n_components=m, whiten=whiten, seed=0)
        projected[m, whiten] = project(X, projection)
        out[f"compact m={m} whiten={whiten}"] = compact(projected[m, whiten])
    projection = fit_projection(X[sample], centers, n_components=128, seed=0)
    # Without the final normalization: undo it by re-projecting by hand.
    from cbir.distances import soften

    Z = np.sqrt(soften(X.astype(np.float64), projection.spread)).astype(np.float32) - projection.mean
    out["compact m=128, no L2 normalization"] = compact(Z @ projection.components.T)
    for whiten, r in ((0.0, 20), (0.0, 50), (0.0, 100), (0.15, 50)):
        def reranked(i: int, r: int = r, V: np.ndarray = projected[128, whiten]) -> np.ndarray:
            first = np.lexsort((order_key, ((V - V[i]) ** 2).sum(axis=1)))
            head = first[:r]
            d = exact_distances(i)[head]
            return np.concatenate([head[np.lexsort((head, d))], first[r:]])

        out[f"compact m=128 whiten={whiten} + chi2-soft re-rank of top {r}"] = reranked
    return out


def _neighbourhood(centers: np.ndarray, X: np.ndarray) -> dict[str, object]:
    """label -> rank(i): the compact default (top 20 re-ranked) with DBA and/or aQE."""
    from cbir.augment import augment, expand

    order_key = np.arange(len(X))
    chi2_soft = distance_function("chi2-soft", centers)
    sample = np.random.default_rng(0).permutation(len(X))[:MAX_FIT_SAMPLE]
    exact: dict[int, np.ndarray] = {}

    def exact_distances(i: int) -> np.ndarray:
        if i not in exact:
            exact[i] = chi2_soft(X[i], X)
        return exact[i]

    def ranked(i: int, q: np.ndarray, D: np.ndarray, r: int = 20) -> np.ndarray:
        first = np.lexsort((order_key, ((D.astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1)))
        head = first[:r]
        return np.concatenate([head[np.lexsort((head, exact_distances(i)[head]))], first[r:]])

    def variant(V: np.ndarray, D: np.ndarray, expand_n: int = 0, alpha: float = 3.0):  # type: ignore[no-untyped-def]
        def rank(i: int) -> np.ndarray:
            q = V[i]
            if expand_n:
                first = np.lexsort((order_key, ((D - q) ** 2).sum(axis=1)))[:expand_n]
                q = expand(q, D[first], alpha=alpha)[0]
            return ranked(i, q, D)
        return rank

    out: dict[str, object] = {}
    plain = {w: project(X, fit_projection(X[sample], centers, whiten=w, seed=0)) for w in (0.0, 0.15)}
    out["compact default (top 20 re-ranked)"] = variant(plain[0.0], plain[0.0])
    out["whiten 0.15 (top 20 re-ranked)"] = variant(plain[0.15], plain[0.15])
    for whiten, V in plain.items():
        for k in (1, 2, 3, 4):
            for alpha in (1.0, 3.0):
                out[f"DBA k={k} alpha={alpha:g} whiten={whiten:g}"] = variant(V, augment(V, k, alpha=alpha))
    for n in (1, 2, 3):
        out[f"aQE n={n} alpha=3"] = variant(plain[0.0], plain[0.0], n)
        out[f"DBA k=2 alpha=3 + aQE n={n}"] = variant(plain[0.0], augment(plain[0.0], 2, alpha=3.0), n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wang", type=Path, default=None, help="Wang's folder [default: the fetched set 'wang'].")
    parser.add_argument("--skimage-dup", type=Path, default=None, help="[default: the fetched set 'skimage-dup'].")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cbir-bench-accuracy"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--neighbourhood", action="store_true", help="DBA and aQE variants only (issue 17)")
    parser.add_argument("--only", action="append", default=None, help="measure only this set (repeatable)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.wang = _fetched("wang", args.wang)  # bench_accuracy no longer builds skimage-dup: 'cbir datasets fetch'
    second = _fetched("skimage-dup", args.skimage_dup)
    dup = _wang_dup(args.work, args.wang)
    from cbir.evaluation.transforms import GROUND_TRUTH

    sets = [
        _dataset("wang", args.wang, "wang"),
        _dataset("skimage-dup", second, f"csv:{second / GROUND_TRUTH}"),
        _dataset("wang-dup", dup, f"csv:{dup / GROUND_TRUTH}"),
    ]
    sets = [d for d in sets if args.only is None or d.name in args.only]
    table: dict[str, dict[str, float]] = {}
    for data in sets:
        started = time.perf_counter()
        centers, X, paths = _stored(data, args.work)
        print(f"{data.name}: {len(X)} images indexed ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        for label, rank in (_neighbourhood if args.neighbourhood else _variants)(centers, X).items():
            table.setdefault(label, {})[data.name] = _map(data, paths, rank)
            print(f"  {label}: {table[label][data.name]:.4f}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(table, indent=1))
        return
    names = [d.name for d in sets]
    print("| variant | " + " | ".join(f"{n} mAP" for n in names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, row in table.items():
        print(f"| {label} | " + " | ".join(f"{row[n]:.4f}" for n in names) + f" | {np.mean([row[n] for n in names]):.4f} |")


if __name__ == "__main__":
    main()
