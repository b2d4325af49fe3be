"""The compact search at scale: N default-descriptor histograms derived from real photos, in a real store.

Run through ``bench_search.py --compact`` (see its docstring)::

    python tests/benchmarks/bench_search.py --compact --n 1000000 [--wang DIR] [--json]

How the histograms are made: the Wang photos are indexed by a real ``cbir index`` run
(default codebook and layout: 30 regions x 128 colors = 3,840 bins). Every synthetic
row takes two random Wang photos and, region by region (block of 128 bins), takes the
block of one (40% each) or a random blend of both (20%); each non-zero bin is then scaled
by log-normal noise (sigma 0.35), bins below 1/1000 of their block are dropped with
probability 0.6, and each block is renormalized to its mass. So rows keep the sparsity
(~800 of 3,840 bins non-zero), the color statistics and the region structure of
real photos (measured: mean 836 non-zero bins, as the Wang rows), and are not copies of any of them. Queries are fresh rows made the same
way with another seed (not members of the index). Never Dirichlet noise.

The rows go into a real SQLite store with ``Store.write_batch`` (the sparse float16
encoding), get their vectors from ``indexer.project.update_vectors`` (the fit and
projection an index run does) and are searched through ``search.Searcher``, the
path ``cbir search`` takes, in a separate process that only searches (its peak RSS
is ``search_rss_mb``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cbir.projection import project, stored_projection
from cbir.store import ImageRecord, Store, as_stored
from indexer import index_folder
from indexer.project import update_vectors

_BLOCK = 128


def wang_histograms(wang: Path, work: Path) -> tuple[np.ndarray, object, str]:
    """(histograms (1000, 3840), codebook, layout) of a real default index of the Wang photos (made once)."""
    db = work / "wang-source.db"
    with Store(db, create=True) as store:
        index_folder(wang, store, workers=2)
        _, X = store.all_histograms()
        _, codebook, layout = store.codebook()
    return X, codebook, layout


def derived(sources: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows blended block by block from pairs of real rows, perturbed; float32 (n, d)."""
    n_blocks = sources.shape[1] // _BLOCK
    a = sources[rng.integers(0, len(sources), n)].reshape(n, n_blocks, _BLOCK).astype(np.float64)
    b = sources[rng.integers(0, len(sources), n)].reshape(n, n_blocks, _BLOCK).astype(np.float64)
    mass = a.sum(axis=2, keepdims=True)
    choice = rng.choice(3, size=(n, n_blocks, 1), p=[0.4, 0.4, 0.2])  # 0: a's block, 1: b's, 2: a blend of both
    weight = np.where(choice == 0, 1.0, np.where(choice == 1, 0.0, rng.uniform(0.2, 0.8, (n, n_blocks, 1))))
    bmass = b.sum(axis=2, keepdims=True)
    b = b * np.divide(mass, bmass, out=np.zeros_like(bmass), where=bmass > 0)
    rows = weight * a + (1 - weight) * b
    rows *= rng.lognormal(0.0, 0.35, rows.shape)
    small = rows < mass / 1000
    rows[small & (rng.random(rows.shape) < 0.6)] = 0.0
    total = rows.sum(axis=2, keepdims=True)
    rows *= np.divide(mass, total, out=np.zeros_like(total), where=total > 0)
    return rows.reshape(n, -1).astype(np.float32)


def fill(store: Store, sources: np.ndarray, codebook, layout: str, n: int, *, seed: int, log) -> dict:  # type: ignore[no-untyped-def]
    """Write n derived rows as index runs do: the first batch, the projection fitted on it, then rows with vectors.

    Like ``indexer.sync._BatchWriter`` once a projection exists, each later batch is
    projected (:func:`cbir.projection.project`) before ``Store.write_batch`` writes it.
    Returns seconds per phase.
    """
    codebook_id = store.save_codebook(codebook, layout)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    seconds = {"fit_s": 0.0, "project_s": 0.0}
    projection = None
    for start in range(0, n, 5000):
        rows = derived(sources, min(5000, n - start), rng)
        vectors: list = [None] * len(rows)
        if projection is not None:
            t = time.perf_counter()
            vectors = list(project(as_stored(rows), projection[1]))
            seconds["project_s"] += time.perf_counter() - t
        store.write_batch(codebook_id=codebook_id, projection_id=projection[0] if projection else None, added=[
            ImageRecord(f"/derived/{start + i:07d}.jpg", 1, 0.0, f"{start + i}", 1, 1, h, v)
            for i, (h, v) in enumerate(zip(rows, vectors))
        ])
        if projection is None:
            t = time.perf_counter()
            update_vectors(store, codebook_id, codebook)
            projection = stored_projection(store, codebook.centers)
            seconds["fit_s"] = time.perf_counter() - t
        if (start // 5000) % 20 == 0:
            log(f"  {start + len(rows):,} rows written ({time.perf_counter() - started:.0f} s)")
    seconds["write_s"] = time.perf_counter() - started - seconds["fit_s"] - seconds["project_s"]
    return {k: round(v, 1) for k, v in seconds.items()}


_SEARCH_CHILD = r"""
import json, resource, sys, time
import numpy as np
from cbir.vectors import use_threads
from search import Searcher
from search.searcher import COMPACT_RERANK
use_threads(1)
db, queries_file, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
queries = np.load(queries_file)
started = time.perf_counter()
searcher = Searcher.open(db)
out = {"ids": [], "reranked_ids": []}
searcher.rerank = 0
searcher.search_histogram(queries[0], k=k)  # opens (memory-maps) the index
out["open_s"] = time.perf_counter() - started
times = []
for q in queries:
    t = time.perf_counter()
    out["ids"].append([r.id for r in searcher.search_histogram(q, k=k)])
    times.append(time.perf_counter() - t)
out["ann_ms"] = 1000 * float(np.median(times))
out["ann_mean_ms"] = 1000 * float(np.mean(times))
searcher.rerank = COMPACT_RERANK
times = []
for q in queries:
    t = time.perf_counter()
    out["reranked_ids"].append([r.id for r in searcher.search_histogram(q, k=k)])
    times.append(time.perf_counter() - t)
out["default_ms"] = 1000 * float(np.median(times))
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the parent's peak.
out["search_rss_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps(out))
"""


def run(args, log) -> dict:  # type: ignore[no-untyped-def]
    """The compact figures for ``args.n`` rows (see the module docstring).

    The built store (and its saved index) is kept in ``WORK/compact-N`` with its build
    figures (``build.json``): a second run with the same ``--work`` and ``--n`` reuses it and
    re-runs only the query phase (delete the folder to build again).
    """
    import faiss

    from cbir.index_kind import COMPACT_NPROBE, compact_kind

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sources, codebook, layout = wang_histograms(Path(args.wang), work)
    log(f"{len(sources)} real Wang histograms of {sources.shape[1]} bins")
    figures: dict = {"n": args.n, "queries": args.queries, "k": args.k, "dim_histogram": int(sources.shape[1])}
    keep = work / f"compact-{args.n}"
    db, built_file = keep / "compact.db", keep / "build.json"
    os.environ["CBIR_CACHE"] = str(keep)
    queries = derived(sources, args.queries, np.random.default_rng(2))
    from search import Searcher

    if db.exists() and built_file.exists():
        figures.update(json.loads(built_file.read_text()))
        figures["reused_store"] = str(keep)
        log(f"reusing the store built in {keep} (delete it to build again)")
    else:
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        built: dict = {}
        with Store(db, create=True) as store:
            built.update(fill(store, sources, codebook, layout, args.n, seed=1, log=log))
            report = update_vectors(store, store.codebook()[0], codebook, batch=5000)
            assert report.projected == 0, "every row was written with its vector"
            with store.engine.connect() as conn:  # fold the WAL into the file before measuring it
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            built["store_bytes_per_image"] = round(db.stat().st_size / args.n)
            # The index build as the first search does it (trained and saved for the next processes).
            t0 = time.perf_counter()
            Searcher(store).search_histogram(queries[0], k=args.k)
            built["index_build_s"] = round(time.perf_counter() - t0, 1)
            built["build_s"] = round(built["fit_s"] + built["project_s"] + built["index_build_s"], 1)
            built["peak_rss_mb_builder"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        built_file.write_text(json.dumps(built))
        figures.update(built)
    figures["index_kind"] = compact_kind(args.n)
    figures["nprobe"] = COMPACT_NPROBE
    store = Store(db)
    _, projection = stored_projection(store, codebook.centers)
    searcher = Searcher(store)
    t0 = time.perf_counter()
    searcher.search_histogram(queries[0], k=args.k)  # opens the saved index (updated or rebuilt only if stale)
    figures["query_phase_first_search_s"] = round(time.perf_counter() - t0, 1)
    # Exact compact top 10: a bare flat scan over every stored vector (the ground truth of ann_recall_at_10).
    ids, vectors = searcher.compact_vectors()
    flat = faiss.IndexFlatL2(vectors.shape[1])
    flat.add(vectors)
    del vectors, searcher
    embedded = project(queries, projection)
    flat.search(embedded[:1], args.k)
    exact, times = [], []
    for v in embedded:
        t = time.perf_counter()
        exact.append(ids[flat.search(v[None, :], args.k)[1][0]].tolist())
        times.append(time.perf_counter() - t)
    figures["compact_exact_ms"] = round(1000 * float(np.median(times)), 3)
    del flat
    store.close()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        queries_file = Path(tmp) / "queries.npy"
        np.save(queries_file, queries)
        child = subprocess.run(
            [sys.executable, "-c", _SEARCH_CHILD, str(db), str(queries_file), str(args.k)],
            capture_output=True, text=True, check=False, env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
    if child.returncode:
        raise SystemExit(f"search process failed: {child.stderr[-2000:]}")
    found = json.loads(child.stdout)
    figures["ann_ms"] = round(found["ann_ms"], 3)
    figures["ann_mean_ms"] = round(found["ann_mean_ms"], 3)
    figures["default_search_ms"] = round(found["default_ms"], 3)
    figures["search_open_s"] = round(found["open_s"], 2)
    figures["search_rss_mb"] = round(found["search_rss_mb"])
    figures["ann_recall_at_10"] = round(float(np.mean(
        [len(set(a) & set(e)) / len(e) for a, e in zip(found["ids"], exact)])), 4)
    return figures


def startup(args, log) -> dict:  # type: ignore[no-untyped-def]
    """Median wall time of whole processes, interleaved: ``cbir search PHOTO`` on the 1,000-photo Wang index,
    ``cbir --help`` and a bare ``python -c "import numpy"`` (the floor any Python tool pays)."""
    work = Path(args.work)
    wang_histograms(Path(args.wang), work)  # the index exists (a sync of an unchanged folder)
    db = work / "wang-source.db"
    photo = sorted(Path(args.wang).glob("*.jpg"))[0]
    commands = {
        "cbir_search_s": [sys.executable, "-m", "cbir", "search", str(photo), "--db", str(db), "-k", "10", "--json"],
        "cbir_help_s": [sys.executable, "-m", "cbir", "--help"],
        "import_numpy_s": [sys.executable, "-c", "import numpy"],
    }
    subprocess.run(commands["cbir_search_s"], capture_output=True, check=True)  # builds and saves the index once
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(1, args.cli)):
        for name, command in commands.items():
            t = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times[name].append(time.perf_counter() - t)
    out = {name: round(float(np.median(t)), 3) for name, t in times.items()}
    out["search_over_numpy"] = round(out["cbir_search_s"] / out["import_numpy_s"], 1)
    out["help_over_numpy"] = round(out["cbir_help_s"] / out["import_numpy_s"], 1)
    out["processes_per_command"] = max(1, args.cli)
    log("start-up: " + ", ".join(f"{k} {v}" for k, v in out.items()))
    return out


def side_by_side(args, n: int, log) -> dict:  # type: ignore[no-untyped-def]
    """Median ms per query at ``n`` rows: today's exact chi2-soft path, the default search, compact alone."""
    from search import Searcher
    from search.searcher import COMPACT_RERANK

    work = Path(args.work)
    sources, codebook, layout = wang_histograms(Path(args.wang), work)
    queries = derived(sources, args.queries, np.random.default_rng(2))
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        os.environ["CBIR_CACHE"] = tmp
        store = Store(Path(tmp) / "side.db", create=True)
        fill(store, sources, codebook, layout, n, seed=1, log=log)
        searcher = Searcher(store)
        runs = {"chi2_soft_exact": ("chi2-soft", 0), "default": ("compact", COMPACT_RERANK), "compact_only": ("compact", 0)}
        t0 = time.perf_counter()
        searcher.search_histogram(queries[0], k=args.k, metric="chi2-soft")  # builds its flat index
        first_chi2 = time.perf_counter() - t0
        searcher.search_histogram(queries[0], k=args.k)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for q in queries:  # interleaved, so load drift hits every path alike
            for name, (metric, rerank) in runs.items():
                searcher.rerank = rerank
                t = time.perf_counter()
                searcher.search_histogram(q, k=args.k, metric=metric)
                times[name].append(time.perf_counter() - t)
        store.close()
    out = {f"{name}_ms": round(1000 * float(np.median(t)), 2) for name, t in times.items()}
    out["chi2_soft_first_query_s"] = round(first_chi2, 1)
    out["chi2_soft_over_default"] = round(out["chi2_soft_exact_ms"] / out["default_ms"], 1)
    return {"n": n, **out}
