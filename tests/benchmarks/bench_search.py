"""Search at scale, timed on the path users run, next to a bare FAISS flat scan.

    python tests/benchmarks/bench_search.py [--n 100000] [--queries 100] [--metric chi2] [--cli 5] [--json]

N synthetic L1-normalized histograms of the default codebook size (global layout:
one bin per codeword) are written to a real SQLite store (in a temporary folder) and
searched as ``cbir serve`` and ``cbir search`` search them: through one long-lived
``search.Searcher`` whose exact re-ranking reads its candidates' histograms from the
store row by row (nothing is preloaded that the product does not load), and through
real ``cbir search`` processes. In one run it reports:

* ``faiss_flat_ms``: a bare ``faiss.IndexFlatL2`` over the same embedded vectors
  (sqrt(x) for chi2) in memory, top-10, one query at a time;
* ``exact_ms``: the exact top-10 (flat FAISS scan + exact re-ranking of candidates
  read from the store, with a proven stopping rule), one query at a time, warm
  (the FAISS index already loaded, as in a running ``cbir serve``);
* ``ann_default_*``: the approximate mode (IVF + exact re-ranking) at the shipped
  settings, its time and its recall of the exact top 10;
* ``ann_tuned_*``: the fastest (nprobe, candidates) reaching recall@10 >= 0.99 on a
  *tuning* query set, with time and recall measured on a separate *held-out* set;
* ``cli_*_ms``: wall time of whole ``cbir search --colors ... --json`` processes (cold:
  interpreter start-up, imports, loading the saved FAISS index from disk, the query),
  the default mode (approximate from 100,000 images) and ``--exact``.

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

from cbir.codebook import DEFAULT_N_COLORS, Codebook
from cbir.store import ImageRecord, Store
from search import Searcher


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


def cli_ms(db: Path, queries: np.ndarray, codebook: Codebook, mode: str, k: int) -> float:
    """Median wall time of whole ``cbir search --colors`` processes, one per query (its 3 largest bins as colors)."""
    import subprocess

    from cbir.color import lab_to_rgb
    from cbir.color_query import format_colors

    rgb = lab_to_rgb(codebook.centers)
    times = []
    for q in queries:
        top = np.argsort(q)[::-1][:3]
        colors = format_colors([(tuple(int(v) for v in rgb[i]), float(q[i])) for i in top])
        command = [sys.executable, "-m", "cbir", "search", "--colors", colors, "--db", str(db), "-k", str(k), "--json"]
        if mode == "exact":
            command.append("--exact")
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0 or not json.loads(done.stdout)["results"]:
            raise SystemExit(f"cbir search failed: {done.stderr.strip()}")
    return round(float(np.median(times)) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--metric", default="chi2")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="FAISS (OpenMP) threads for both sides; 1 by default: single queries gain nothing from "
                             "more, and on a busy 2-core machine spinning OpenMP threads made flat scans 4x slower")
    parser.add_argument("--cli", type=int, default=5, help="whole 'cbir search' processes timed per mode")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--compact", action="store_true",
                        help="The compact search on default-descriptor histograms derived from real photos "
                             "(tests/benchmarks/compact_scale.py) instead of the synthetic global histograms.")
    parser.add_argument("--wang", default=str(Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wang"),
                        help="With --compact: the Wang photos the histograms are derived from.")
    parser.add_argument("--work", default="/tmp/cbir-bench-compact",
                        help="With --compact: where stores are made; WORK/compact-N is kept and reused by the next "
                             "run with the same --n (only the query phase runs again; delete it to rebuild).")
    parser.add_argument("--compare", type=int, nargs="*", default=[],
                        help="With --compact: also time today's exact chi2-soft path beside the default at these sizes.")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.compact:
        compact(args, log)
        return

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
    held_out = synthetic(args.queries, dim, rng, prototypes)  # settings are tuned on `queries`, reported on these
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
        searcher.vector_index(embedding)  # built and saved, as the first search does
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        searcher.vector_index(embedding, kind="ivf")
        ivf_build_s = time.perf_counter() - t0
        log(f"store filled in {insert_s:.1f} s; flat index built in {build_s:.1f} s; IVF built in {ivf_build_s:.1f} s")

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
        assert searcher._matrix is None, "the benchmark must not time candidates read from a preloaded matrix"
        held_out_exact = [exact_search(q) for q in held_out]

        def ann(nprobe: int, candidates: int, on: np.ndarray, truth: list) -> tuple[float, float]:  # type: ignore[type-arg]
            searcher.nprobe, searcher.ann_candidates = nprobe, candidates
            ms, ids = per_query_ms(
                lambda q: [r.id for r in searcher.search_histogram(q, k=args.k, metric=args.metric, method="ann")], on,
            )
            return ms, float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(ids, truth)]))

        shipped = (searcher.nprobe, searcher.ann_candidates)
        default_ms, default_recall = ann(*shipped, held_out, held_out_exact)
        # Tuning: the fastest (nprobe, candidates) with recall@10 >= 0.99 on the tuning queries...
        tried = []
        chosen = None
        for nprobe in (8, 16, 32, 64, 128):
            for candidates in (200, 500, 1000, 2000):
                ms, recall = ann(nprobe, candidates, queries, exact_ids)
                tried.append({"nprobe": nprobe, "candidates": candidates, "ms": round(ms, 3), "recall_at_10": round(recall, 4)})
                log(f"  ann nprobe={nprobe:<4} candidates={candidates:<5} {ms:8.2f} ms  recall@10 {recall:.4f} (tuning set)")
                if recall >= 0.99 and (chosen is None or ms < chosen["ms"]):
                    chosen = tried[-1]
                if recall >= 0.999:
                    break
        best = chosen or max(tried, key=lambda t: t["recall_at_10"])
        # ... reported on the held-out queries.
        tuned_ms, tuned_recall = ann(best["nprobe"], best["candidates"], held_out, held_out_exact)
        searcher.nprobe, searcher.ann_candidates = shipped
        cli = {mode: cli_ms(Path(tmp) / "bench.db", held_out[: args.cli], codebook, mode, args.k) for mode in ("auto", "exact")}
        figures = {
            "n": args.n,
            "dim": dim,
            "metric": args.metric,
            "queries": args.queries,
            "k": args.k,
            "faiss_flat_ms": round(faiss_flat_ms, 3),
            "exact_ms": round(exact_ms, 3),
            "exact_over_flat": round(exact_ms / faiss_flat_ms, 3),
            "ann_default_ms": round(default_ms, 3),
            "ann_default_recall_at_10": round(default_recall, 4),
            "ann_default_nprobe": shipped[0],
            "ann_default_candidates": shipped[1],
            "ann_tuned_ms": round(tuned_ms, 3),
            "ann_tuned_recall_at_10_held_out": round(tuned_recall, 4),
            "ann_tuned_recall_at_10_tuning": best["recall_at_10"],
            "ann_tuned_nprobe": best["nprobe"],
            "ann_tuned_candidates": best["candidates"],
            "exact_over_ann_default": round(exact_ms / default_ms, 2),
            "ann_tried_on_tuning_set": tried,
            "cli_default_ms": cli["auto"],
            "cli_exact_ms": cli["exact"],
            "cli_processes_per_mode": args.cli,
            "ivf_lists": searcher.vector_index(embedding, kind="ivf").n_lists,
            "store_insert_s": round(insert_s, 1),
            "flat_index_build_s": round(build_s, 1),
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
    print(f"  cbir exact, warm            {exact_ms:9.2f} ms/query   ({exact_ms / faiss_flat_ms:.2f}x the bare scan; "
          "candidates read from the store)")
    print(f"  cbir approximate, shipped   {default_ms:9.2f} ms/query   (speed-up over exact {exact_ms / default_ms:.2f}x, "
          f"recall@10 {default_recall:.4f}, nprobe {shipped[0]}, {shipped[1]} candidates)")
    print(f"  cbir approximate, tuned     {tuned_ms:9.2f} ms/query   (recall@10 {tuned_recall:.4f} held out, "
          f"{best['recall_at_10']:.4f} on the tuning set; nprobe {best['nprobe']}, {best['candidates']} candidates)")
    print(f"  'cbir search' process       {cli['auto']:9.1f} ms (default mode), {cli['exact']:.1f} ms (--exact); "
          "cold: start-up, imports, index load, query")


def compact(args: argparse.Namespace, log) -> None:  # type: ignore[no-untyped-def]
    """``--compact``: the figures of issue 11's goals (see compact_scale.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compact_scale import run, side_by_side, startup

    from cbir.vectors import use_threads

    use_threads(args.threads)  # FAISS and BLAS, as cbir search and cbir serve run
    figures = {"startup": startup(args, log) if args.cli else None,
               "compact": run(args, log) if args.n else None,
               "side_by_side": [side_by_side(args, n, log) for n in args.compare]}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in (figures["compact"] or {}).items():
        print(f"  {key:<24} {value}")
    for key, value in (figures["startup"] or {}).items():
        print(f"  {key:<24} {value}")
    for row in figures["side_by_side"]:
        print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
