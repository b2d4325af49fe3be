"""Drift of the incremental DBA update: 80% of Wang indexed, 20% added in steps, against a full build.

Run by hand (a few minutes on two cores)::

    python tests/benchmarks/bench_augment.py [--wang DIR] [--work DIR] [--neighbours K] [--alpha A] [--json]

A folder of links to a seeded 80% of the Wang photos is indexed by ``index_folder``
(the product's path), its search vectors augmented with K neighbours; the other 20%
are linked in and indexed in ``--steps`` runs, each updating the search vectors
incrementally (:func:`indexer.neighbours.update_augmented`). Then Wang mAP through
``Searcher`` (the compact default, top 20 re-ranked) is measured, the search vectors
are recomputed by a full self-join (what ``cbir index --refit`` does) and mAP is
measured again; also reported: mAP without augmentation, and the seconds of each pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cbir.evaluation import evaluate
from cbir.evaluation.benchmarks import load_benchmark
from cbir.store import Store
from indexer import index_folder
from indexer.neighbours import update_augmented
from search import Searcher


def _map(store: Store, folder: Path) -> float:
    benchmark = load_benchmark(folder, "wang")
    searcher = Searcher(store)
    n = store.count()

    def ranker(batch):  # type: ignore[no-untyped-def]
        return [[r.path for r in results] for results in searcher.search_images(list(batch), k=n)]

    return evaluate(benchmark.items, ranker, protocol="wang", metric="compact").mean_ap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wang", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wang")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cbir-bench-augment"))
    parser.add_argument("--neighbours", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    folder = args.work / "wang"
    folder.mkdir(parents=True)
    names = sorted(p.name for p in args.wang.glob("*.jpg"))
    order = np.random.default_rng(0).permutation(len(names))
    first, rest = order[: int(0.8 * len(names))], order[int(0.8 * len(names)) :]
    for i in first:
        os.symlink(args.wang / names[i], folder / names[i])
    out: dict[str, float] = {}
    with Store(args.work / "index.db", create=True) as store:
        index_folder(folder, store, workers=2)
        pid = store.projection_row()[0]
        started = time.perf_counter()
        update_augmented(store, pid, neighbours=args.neighbours, alpha=args.alpha)
        out["full_pass_800_s"] = time.perf_counter() - started
        updated = []
        for step in np.array_split(rest, args.steps):
            for i in step:
                os.symlink(args.wang / names[i], folder / names[i])
            report = index_folder(folder, store, workers=2)  # the incremental update runs inside
            updated.append(report.vectors["augmented"])
        out["incremental_rows_updated"] = float(sum(updated))
        out["map_incremental"] = _map(store, folder)
        started = time.perf_counter()
        update_augmented(store, pid, full=True)
        out["full_pass_1000_s"] = time.perf_counter() - started
        out["map_full"] = _map(store, folder)
        update_augmented(store, pid, neighbours=0, full=True)
        out["map_plain"] = _map(store, folder)
    out["drift"] = out["map_full"] - out["map_incremental"]
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for key, value in out.items():
        print(f"{key}: {value:.4f}")


if __name__ == "__main__":
    main()
