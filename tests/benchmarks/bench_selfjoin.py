"""DBA's k-NN self-join at scale: time and neighbour recall of the join `cbir index` runs on its compact vectors.

    python tests/benchmarks/bench_selfjoin.py --db wang.db [--n 1000000] [--k 3] [--json]

The vectors are derived from a real index's compact vectors (``--db``, e.g. Wang indexed
with the defaults): each one is a blend of two real vectors, (1 - w) a + w b with w drawn
from U(0, 0.3), plus Gaussian noise of 0.02 per component, L2-normalized, so the collection
has the real vectors' spread and near-duplicate clusters. It times
``cbir.augment.self_join`` (IVF above 50,000 rows, as the index run uses) and the whole
``cbir.augment.augment`` pass, and measures recall@k of the join's neighbours against an
exact inner-product search for a seeded sample of rows. One FAISS thread, as the index run.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from cbir.augment import augment, self_join
from cbir.store import Store
from cbir.vectors import use_threads


def derived_vectors(real: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """``n`` unit vectors blended from pairs of ``real`` rows (m,) with noise; float32 (n, m)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        a = real[rng.integers(len(real), size=size)]
        b = real[rng.integers(len(real), size=size)]
        w = rng.uniform(0, 0.3, size=(size, 1)).astype(np.float32)
        v = (1 - w) * a + w * b + rng.normal(0, 0.02, size=a.shape).astype(np.float32)
        out[start : start + size] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="an index made by cbir index (its compact vectors are the source)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--sample", type=int, default=1000, help="rows whose neighbours are checked exactly")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_threads(1)
    with Store(args.db) as store:
        projection = store.projection_row()
        if projection is None:
            raise SystemExit(f"{args.db} has no compact vectors: run cbir index on it first")
        real = np.concatenate([v for _, v in store.iter_vectors(projection[0])])
    vectors = derived_vectors(real, args.n, seed=0)
    start = time.perf_counter()
    found = self_join(vectors, args.k)
    join_s = time.perf_counter() - start
    start = time.perf_counter()
    augment(vectors, args.k)
    augment_s = time.perf_counter() - start
    rows = np.sort(np.random.default_rng(1).choice(args.n, size=min(args.sample, args.n), replace=False))
    exact = np.empty((len(rows), args.k), dtype=np.int64)
    for start in range(0, len(rows), 50):  # (50, n) similarities at a time
        part = rows[start : start + 50]
        sims = vectors[part] @ vectors.T
        sims[np.arange(len(part)), part] = -np.inf
        exact[start : start + len(part)] = np.argsort(-sims, axis=1)[:, : args.k]
    recall = float(np.mean([len(set(f) & set(e)) / args.k for f, e in zip(found[rows], exact, strict=True)]))
    figures = {
        "n": args.n, "k": args.k, "source_vectors": len(real), "self_join_s": round(join_s, 1),
        "augment_s": round(augment_s, 1), "recall_at_k": round(recall, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"  {key:<16} {value}")


if __name__ == "__main__":
    main()
