"""HTTP API latency next to the same searches made directly on a Searcher (run by hand).

    python tests/benchmarks/bench_http.py [FOLDER] [--db DB] [--repeat 20]

FOLDER defaults to the Wang dataset; it is indexed into DB (default: a temporary
file) first. Prints the median time of each kind of request, in-process through
FastAPI's TestClient (so without network), and the ratio to the direct library call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from cbir.store import Store
from indexer import index_folder
from search import Searcher
from search.http import create_app


def median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="/work/shared/datasets/wang")
    parser.add_argument("--db", default=None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    db = args.db or str(Path(tempfile.mkdtemp()) / "bench.db")
    with Store(db, create=True) as store:
        report = index_folder(args.folder, store)
        print(f"index: {report.scanned} images, {report.n_colors} colors ({report.seconds:.1f} s)")
    files = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    query = files[len(files) // 2]
    data = query.read_bytes()
    colors = [((224, 192, 128), 0.6), ((48, 96, 192), 0.4)]
    body = {"colors": [{"hex": "#e0c080", "weight": 0.6}, {"hex": "#3060c0", "weight": 0.4}]}

    searcher = Searcher.open(db)
    with TestClient(create_app(db)) as client:
        first = client.post("/api/search", params={"k": 20}, files={"image": (query.name, data, "image/jpeg")}).json()
        ids = [r["id"] for r in first["results"]]
        rows = [
            ("search by upload (k=20)",
             lambda: client.post("/api/search", params={"k": 20}, files={"image": (query.name, data, "image/jpeg")}),
             lambda: searcher.search_histogram(searcher.descriptor.of_bytes(data).histogram, k=20)),
            ("search by colors (k=20)",
             lambda: client.post("/api/search/colors", params={"k": 20}, json=body),
             lambda: searcher.search_colors(colors, k=20)),
            ("search by id (k=20)",
             lambda: client.get(f"/api/images/{ids[0]}/similar", params={"k": 20}),
             None),
            ("search by upload, qfd (k=20)",
             lambda: client.post("/api/search", params={"k": 20, "metric": "qfd"},
                                 files={"image": (query.name, data, "image/jpeg")}),
             lambda: searcher.search_histogram(searcher.descriptor.of_bytes(data).histogram, k=20, metric="qfd")),
        ]
        print(f"{'request':32} {'HTTP ms':>9} {'library ms':>11} {'ratio':>6}")
        for name, over_http, direct in rows:
            http_ms = median_ms(over_http, args.repeat)
            if direct is None:
                print(f"{name:32} {http_ms:9.1f} {'':>11} {'':>6}")
                continue
            lib_ms = median_ms(direct, args.repeat)
            print(f"{name:32} {http_ms:9.1f} {lib_ms:11.1f} {http_ms / lib_ms:6.2f}")
        cold = []
        for image_id in ids:
            started = time.perf_counter()
            client.get(f"/api/images/{image_id}/thumbnail")
            cold.append(time.perf_counter() - started)
        warm = median_ms(lambda: client.get(f"/api/images/{ids[0]}/thumbnail"), args.repeat)
        print(f"{'thumbnail, first request':32} {1000 * statistics.median(cold):9.1f}")
        print(f"{'thumbnail, cached':32} {warm:9.1f}")
    searcher.store.close()


if __name__ == "__main__":
    main()
