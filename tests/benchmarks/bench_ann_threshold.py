"""Where an IVF index starts to beat an exact flat scan of compact vectors, and what IVF-PQ costs in recall.

    python tests/benchmarks/bench_ann_threshold.py [--sizes 10000 30000 100000 300000] [--queries 200] [--json]

Compact vectors (128-d, the product's projection) of default-descriptor histograms derived from the
real Wang photos (``compact_scale.derived``: blended block by block and perturbed; never noise) are
searched one query at a time on one FAISS thread, top 10, at each size N:

* ``flat_ms``: ``IndexFlatL2`` (exact; the ground truth of the recalls);
* ``ivf_ms`` / ``ivf_nprobe``: ``IndexIVFFlat`` with sqrt(N) lists (as ``cbir.vectors`` builds it) at the
  smallest nprobe whose recall@10 reaches 0.95;
* ``ivfpq_*``: ``IndexIVFPQ`` (``cbir.vectors.PQ_BYTES`` bytes a vector) at the shipped nprobe,
  its candidates re-ranked exactly from the full vectors, as the ``ivfpq`` kind searches.

The flat -> IVF threshold (``cbir.vectors.COMPACT_ANN_MIN_SIZE``) is the smallest N where ``ivf_ms``
is below ``flat_ms``. Flat and IVF are timed interleaved, so machine load hits both alike.
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

from compact_scale import derived, wang_histograms  # noqa: E402

from cbir.projection import fit_projection, project  # noqa: E402
from cbir.store import as_stored  # noqa: E402


def timed(search, queries: np.ndarray) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(search(q[None, :]))
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times)), np.vstack(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--wang", default=str(Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wang"))
    parser.add_argument("--work", default="/tmp/cbir-bench-compact")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    import faiss

    from cbir.vectors import COMPACT_NPROBE, VectorIndex, Stamp

    faiss.omp_set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sources, codebook, _ = wang_histograms(Path(args.wang), work)
    rng = np.random.default_rng(1)
    projection = fit_projection(as_stored(derived(sources, 5000, rng)), codebook.centers)
    largest = max(args.sizes)
    t0 = time.perf_counter()
    V = np.vstack([project(as_stored(derived(sources, min(5000, largest - s), rng)), projection)
                   for s in range(0, largest, 5000)])
    queries = project(as_stored(derived(sources, args.queries, np.random.default_rng(2))), projection)
    log(f"{largest:,} compact vectors made in {time.perf_counter() - t0:.0f} s")
    rows = []
    for n in sorted(args.sizes):
        X = V[:n]
        flat = faiss.IndexFlatL2(X.shape[1])
        flat.add(X)
        n_lists = int(max(1, min(np.sqrt(n), n // 39)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(X.shape[1]), X.shape[1], n_lists)
        ivf.cp.seed, ivf.cp.niter = 0, 10
        ivf.train(X[:: max(1, n // (64 * n_lists))])
        ivf.add(X)
        flat_ms, truth = timed(lambda q: flat.search(q, args.k)[1], queries)
        row: dict = {"n": n, "flat_ms": round(flat_ms, 3), "ivf_lists": n_lists}
        for nprobe in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128):
            ivf.nprobe = nprobe
            ivf_ms, found = timed(lambda q: ivf.search(q, args.k)[1], queries)
            flat_again, _ = timed(lambda q: flat.search(q, args.k)[1], queries[: len(queries) // 4])
            r = recall(found, truth)
            if r >= 0.95:
                row.update(ivf_nprobe=nprobe, ivf_ms=round(ivf_ms, 3), ivf_recall_at_10=round(r, 4),
                           flat_ms_beside=round(flat_again, 3), ivf_beats_flat=bool(ivf_ms < flat_again))
                break
        stamp = Stamp("bench", "compact", 0, n, "ivfpq")
        pq = VectorIndex.empty(X.shape[1], stamp, train=X[:: max(1, n // (64 * n_lists))])
        pq.add(np.arange(n), X)
        pq.attach_refine(np.arange(n), X)
        pq.set_nprobe(COMPACT_NPROBE)
        pq_ms, found = timed(lambda q: pq.search(q, args.k)[1], queries)
        row.update(ivfpq_ms=round(pq_ms, 3), ivfpq_recall_at_10=round(recall(found, truth), 4),
                   ivfpq_nprobe=COMPACT_NPROBE)
        log("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
        rows.append(row)
        del flat, ivf, pq
    beats = [r["n"] for r in rows if r.get("ivf_beats_flat")]
    out = {"k": args.k, "queries": args.queries, "rows": rows, "ivf_beats_flat_from": min(beats) if beats else None}
    print(json.dumps(out, indent=2) if args.json else f"IVF beats flat from N = {out['ivf_beats_flat_from']}")


if __name__ == "__main__":
    main()
