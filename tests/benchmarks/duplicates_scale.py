"""The self-join at scale for bench_duplicates.py (``--scale N``): a real store of N perturbed real histograms, timed cold and warm.

The N histograms have the default layout: real histograms of an indexed set (wang-dup),
each perturbed; a tenth of them near copies of another, their hash 0-3 bits off. The
compact vectors are made as ``cbir index`` makes them, and ``Searcher.duplicates`` is timed
cold (FAISS indexes built) and warm, wall and CPU; a digest of the groups shows that two
runs (or two versions of the code) gave the same output.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cbir.store import Store
from indexer.project import update_vectors
from search import Searcher


def _fill(path: Path, n: int, source_db: Path) -> tuple[float, float]:
    """A real SQLite store at ``path`` of n perturbed real histograms with hashes, and its compact vectors.

    Returns (fill seconds, projection seconds)."""
    from cbir.store import ImageRecord

    source = Searcher.open(source_db)
    _, base = source.histograms()
    _, codebook, layout = source.store.codebook()  # type: ignore[misc]
    source.store.close()
    rng = np.random.default_rng(0)
    blocks = codebook.n_colors
    store = Store(path, create=True)
    codebook_id = store.save_codebook(codebook, layout)
    t0 = time.perf_counter()
    made = 0
    previous = previous_hashes = None
    while made < n:
        m = min(20_000, n - made)
        rows = base[rng.integers(0, len(base), m)].astype(np.float64)
        noise = rng.lognormal(0.0, 1.0, rows.shape)  # far from its source: a new image
        hashes = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, m, dtype=np.int64)
        if previous is not None:  # a tenth are mild edits of an image made before (hash: 0-3 bits flipped)
            near = rng.random(m) < 0.1
            source = rng.integers(0, len(previous), near.sum())
            rows[near] = previous[source]
            noise[near] = rng.lognormal(0.0, 0.05, (near.sum(), rows.shape[1]))
            flips = rng.integers(0, 63, (near.sum(), 3))
            mask = np.where(rng.random((near.sum(), 3)) < 0.5, np.int64(1) << flips, 0)
            hashes[near] = previous_hashes[source] ^ np.bitwise_or.reduce(mask, axis=1)
        mass = rows.reshape(m, -1, blocks).sum(axis=2, keepdims=True)
        shaped = (rows * noise).reshape(m, -1, blocks)
        shaped *= mass / np.maximum(shaped.sum(axis=2, keepdims=True), 1e-12)
        rows = shaped.reshape(m, -1).astype(np.float32)
        store.write_batch(codebook_id=codebook_id, added=[
            ImageRecord(f"/synthetic/{made + i:07d}.jpg", 1, 0.0, f"{made + i}", 1, 1, h, phash=int(p))
            for i, (h, p) in enumerate(zip(rows, hashes))])
        previous, previous_hashes = rows, hashes
        made += m
    fill_s = time.perf_counter() - t0
    print(f"filled {n:,} rows in {fill_s:.0f} s", file=sys.stderr)
    t0 = time.perf_counter()
    update_vectors(store, codebook_id, codebook)  # the compact vectors, as cbir index makes them
    store.close()
    return fill_s, time.perf_counter() - t0


def _digest(found) -> str:  # type: ignore[no-untyped-def]
    """SHA-256 of the groups (ids and distances to 6 places): equal digests, equal output."""
    import hashlib

    groups = [[(m.id, round(m.distance, 6)) for m in g.members] for g in found.groups]
    return hashlib.sha256(json.dumps(groups).encode()).hexdigest()[:16]


def scale(n: int, work: Path, k: int, keep: Path | None = None, *, source: Callable[[], Path]) -> dict:
    """Time Searcher.duplicates over n perturbed real histograms in a real SQLite store.

    ``keep``: the store is made there once and reused by later runs (else in a temporary folder);
    ``source``: makes (or finds) the indexed set whose real histograms are perturbed.
    "Cold" is the first call of this process on a freshly opened store with an empty
    derived-file cache (histograms read, FAISS indexes built); "warm" the second call."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        os.environ["CBIR_CACHE"] = tmp
        path = keep or Path(tmp) / "scale.db"
        fill_s = project_s = 0.0
        if not path.exists():
            fill_s, project_s = _fill(path, n, source())
        store = Store(path)
        if store.count() != n:
            raise SystemExit(f"{path} holds {store.count()} images, not {n}: delete it to make it again")
        searcher = Searcher(store)
        t0, c0 = time.perf_counter(), time.process_time()
        cold = searcher.duplicates(k=k)
        cold_s, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"cold: {cold_s:.1f} s wall, {cold_cpu:.1f} s CPU; {len(cold.groups)} groups, {cold.compared} compared, "
            f"groups digest {_digest(cold)}; load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        t0, c0 = time.perf_counter(), time.process_time()
        warm = searcher.duplicates(k=k)
        warm_s, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
        compact = searcher.compact_state() is not None
        store.close()
    out = {"images": n, "k": k, "fill_s": fill_s, "project_s": project_s, "cold_s": cold_s, "warm_s": warm_s,
           "cold_cpu_s": cold_cpu, "warm_cpu_s": warm_cpu, "load_average": os.getloadavg(),
           "hamming": warm.hamming, "veto": warm.veto, "compact_candidates": compact,
           "groups": len(warm.groups), "pairs": warm.pairs, "compared": warm.compared, "digest": _digest(warm),
           "kind": "ivf" if Searcher.approximate_at(n) else "flat"}
    print(f"{n:,} histograms; duplicates: cold {cold_s:.1f} s, warm {warm_s:.1f} s ({warm_cpu:.1f} s CPU); "
        f"{len(warm.groups)} groups, {warm.pairs} pairs, {warm.compared} compared exactly, digest {_digest(warm)}; "
        f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return out
