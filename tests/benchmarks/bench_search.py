"""Search at scale: the project's exact and approximate search next to a bare FAISS flat scan.

    python tests/benchmarks/bench_search.py [--n 1000000] [--queries 100] [--metric chi2] [--json]

N synthetic L1-normalized histograms of the default codebook size (global layout:
one bin per codeword) are written to a real SQLite store (in a temporary folder) and searched through ``search.Searcher``,
the same path ``cbir search`` takes. In one run it reports:

* ``faiss_flat_ms``: a bare ``faiss.IndexFlatL2`` over the same embedded vectors
  (sqrt(x) for chi2), top-10, one query at a time;
* ``exact_ms``: the project's exact top-10 (flat FAISS scan + exact re-ranking
  with a proven stopping rule), one query at a time;
* ``ann_ms`` and ``ann_recall_at_10``: the approximate mode (IVF + exact
  re-ranking) and its recall of the exact top 10, for the fastest setting
  (nprobe, candidates) that reaches recall@10 >= 0.99 among those tried.

The histograms are clustered like real collections (photos of a few scenes):
2,000 sparse Dirichlet prototypes, every histogram a Dirichlet draw around one.
Queries are fresh draws around random prototypes (not members of the index).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cbir.codebook import DEFAULT_N_COLORS, Codebook  # noqa: E402
from cbir.store import ImageRecord, Store  # noqa: E402
from search import Searcher  # noqa: E402


def synthetic(n: int, dim: int, rng: np.random.Generator, prototypes: np.ndarray) -> np.ndarray:
    owner = rng.integers(0, len(prototypes), n)
    alpha = prototypes[owner] * 60.0 + 0.01
    draws = rng.standard_gamma(alpha).astype(np.float32)
    return draws / draws.sum(axis=1, keepdims=True)


def fill_store(store: Store, X: np.ndarray, codebook: Codebook) -> None:
    codebook_id = store.save_codebook(codebook, "global")
    for start in range(0, len(X), 50_000):
        chunk = X[start : start + 50_000]
        store.write_batch(codebook_id=codebook_id, added=[
            ImageRecord(f"/synthetic/{start + i:07d}.jpg", 1, 0.0, f"{start + i}", 1, 1, h) for i, h in enumerate(chunk)
        ])


def per_query_ms(fn, queries: np.ndarray) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    out = []
    start = time.perf_counter()
    for q in queries:
        out.append(fn(q))
    return (time.perf_counter() - start) / len(queries) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--metric", default="chi2")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS (OpenMP) threads for both sides; 1 by default: single queries gain nothing from "
                             "more, and on a busy 2-core machine spinning OpenMP threads made flat scans 4x slower")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    import faiss

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    centers = np.column_stack([rng.uniform(0, 100, DEFAULT_N_COLORS), rng.uniform(-80, 80, (DEFAULT_N_COLORS, 2))])
    codebook = Codebook(centers)
    dim = DEFAULT_N_COLORS
    prototypes = rng.dirichlet(np.full(dim, 0.05), size=2000)
    t0 = time.perf_counter()
    X = synthetic(args.n, dim, rng, prototypes)
    queries = synthetic(args.queries, dim, rng, prototypes)
    log(f"{args.n:,} histograms of {dim} bins made in {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CBIR_CACHE", tmp)
        store = Store(Path(tmp) / "bench.db", create=True)
        t0 = time.perf_counter()
        fill_store(store, X, codebook)
        insert_s = time.perf_counter() - t0
        searcher = Searcher(store)
        embedding = searcher._metric(args.metric)[0]
        t0 = time.perf_counter()
        flat = searcher.vector_index(embedding)
        searcher.histograms()  # the exact re-ranking reads candidates from memory at this size
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        searcher.vector_index(embedding, kind="ivf")
        ivf_build_s = time.perf_counter() - t0
        log(f"store filled in {insert_s:.1f} s; flat index + matrix loaded in {build_s:.1f} s; IVF built in {ivf_build_s:.1f} s")

        vectors = embedding.transform(X)
        bare = faiss.IndexFlatL2(vectors.shape[1])
        bare.add(vectors)
        embedded_queries = embedding.transform(queries)
        del vectors

        def bare_search(q: np.ndarray):  # type: ignore[no-untyped-def]
            return bare.search(q[None, :], args.k)[1][0]

        def exact_search(q: np.ndarray) -> list[int]:
            return [r.id for r in searcher.search_histogram(q, k=args.k, metric=args.metric, method="exact")]

        # Warm both paths, then alternate them so drift in machine load hits both alike.
        bare_search(embedded_queries[0])
        exact_search(queries[0])
        flat_times, exact_times, exact_ids = [], [], []
        for half in (slice(0, args.queries // 2), slice(args.queries // 2, args.queries)):
            flat_times.append(per_query_ms(bare_search, embedded_queries[half])[0])
            ms, ids = per_query_ms(exact_search, queries[half])
            exact_times.append(ms)
            exact_ids += ids
        faiss_flat_ms = float(np.mean(flat_times))
        exact_ms = float(np.mean(exact_times))

        # Approximate: fastest (nprobe, candidates) with recall@10 >= 0.99.
        tried = []
        chosen = None
        for nprobe in (8, 16, 32, 64, 128):
            for candidates in (200, 500, 1000, 2000):
                searcher.nprobe, searcher.ann_candidates = nprobe, candidates
                ms, ids = per_query_ms(
                    lambda q: [r.id for r in searcher.search_histogram(q, k=args.k, metric=args.metric, method="ann")],
                    queries,
                )
                recall = float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(ids, exact_ids)]))
                tried.append({"nprobe": nprobe, "candidates": candidates, "ms": round(ms, 3), "recall_at_10": round(recall, 4)})
                log(f"  ann nprobe={nprobe:<4} candidates={candidates:<5} {ms:8.2f} ms  recall@10 {recall:.4f}")
                if recall >= 0.99 and (chosen is None or ms < chosen["ms"]):
                    chosen = tried[-1]
                if recall >= 0.999:
                    break
        best = chosen or max(tried, key=lambda t: t["recall_at_10"])
        figures = {
            "n": args.n,
            "dim": dim,
            "metric": args.metric,
            "queries": args.queries,
            "k": args.k,
            "faiss_flat_ms": round(faiss_flat_ms, 3),
            "exact_ms": round(exact_ms, 3),
            "exact_over_flat": round(exact_ms / faiss_flat_ms, 3),
            "ann_ms": best["ms"],
            "ann_recall_at_10": best["recall_at_10"],
            "ann_nprobe": best["nprobe"],
            "ann_candidates": best["candidates"],
            "exact_over_ann": round(exact_ms / best["ms"], 2),
            "ann_tried": tried,
            "ivf_lists": searcher.vector_index(embedding, kind="ivf").n_lists,
            "store_insert_s": round(insert_s, 1),
            "flat_index_and_matrix_load_s": round(build_s, 1),
            "ivf_build_s": round(ivf_build_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "faiss_threads": args.threads,
        }
        store.close()
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"\n{args.n:,} histograms, {dim} bins, metric {args.metric}, top-{args.k}, one query at a time, "
          f"{args.threads} FAISS thread(s):")
    print(f"  bare faiss.IndexFlatL2      {faiss_flat_ms:9.2f} ms/query")
    print(f"  cbir exact                  {exact_ms:9.2f} ms/query   ({exact_ms / faiss_flat_ms:.2f}x the bare scan)")
    print(f"  cbir approximate            {best['ms']:9.2f} ms/query   ({exact_ms / best['ms']:.1f}x faster than exact, "
          f"recall@10 {best['recall_at_10']:.4f}, nprobe {best['nprobe']}, {best['candidates']} candidates)")


if __name__ == "__main__":
    main()
