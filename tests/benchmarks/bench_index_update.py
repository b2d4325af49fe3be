"""New images into a saved IVF compact index: added in place, next to a full rebuild, in one run.

    python tests/benchmarks/bench_index_update.py [--n 60000] [--add 1000] [--json]

N default-descriptor histograms derived from the Wang photos (``compact_scale``) are written
to a real store as index runs write them; the first search builds and saves the IVF index.
Then ``--add`` more rows are written with their vectors and DBA search vectors
(``update_vectors``), and the first search after that is timed twice: updating the saved
index (``update_s``: reading the stored vectors, digests, add/remove) and, after the saved
files are deleted, rebuilding it (``rebuild_s``: training and adding everything). Both
results are checked to find every added row first when it is the query.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compact_scale import derived, fill, wang_histograms  # noqa: E402

from cbir.store import ImageRecord, Store, as_stored  # noqa: E402
from cbir.vectors import use_threads  # noqa: E402
from indexer.project import update_vectors  # noqa: E402
from search import Searcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--wang", default=str(Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wang"))
    parser.add_argument("--work", default="/tmp/cbir-bench-compact")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    use_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sources, codebook, layout = wang_histograms(Path(args.wang), work)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        os.environ["CBIR_CACHE"] = tmp
        with Store(Path(tmp) / "update.db", create=True) as store:
            fill(store, sources, codebook, layout, args.n, seed=1, log=log)
            update_vectors(store, store.codebook()[0], codebook)
            searcher = Searcher(store)
            t0 = time.perf_counter()
            searcher.search_histogram(sources[0], k=10)
            first_build_s = time.perf_counter() - t0
            extra = derived(sources, args.add, np.random.default_rng(3))
            store.write_batch(codebook_id=store.codebook()[0], added=[
                ImageRecord(f"/added/{i:07d}.jpg", 1, 0.0, f"a{i}", 1, 1, h) for i, h in enumerate(extra)])
            update_vectors(store, store.codebook()[0], codebook)
            new_ids = list(range(args.n + 1, args.n + args.add + 1))
            timings = {}
            for mode in ("update", "rebuild"):
                if mode == "rebuild":
                    for saved in Path(tmp).glob("update.db.compact-*"):
                        saved.unlink()
                searcher = Searcher(store)
                searcher.rerank = 0
                t0 = time.perf_counter()
                searcher.search_histogram(sources[0], k=10)
                timings[f"{mode}_s"] = round(time.perf_counter() - t0, 2)
                missed = sum(searcher.search_histogram(as_stored(h), k=1)[0].id != i
                             for h, i in zip(extra[::50], new_ids[::50]))
                timings[f"{mode}_added_rows_missed"] = int(missed)
    figures = {"n": args.n, "added": args.add, "first_build_s": round(first_build_s, 2), **timings,
               "rebuild_over_update": round(timings["rebuild_s"] / timings["update_s"], 2)}
    print(json.dumps(figures, indent=2) if args.json else figures)


if __name__ == "__main__":
    main()
