"""The cost of going distributed: local workers vs a Dask cluster, into PostgreSQL, in one run; and the writer's rate.

    python tests/benchmarks/bench_cluster.py [--images 5000] [--workdir DIR] [--repeat 1] [--postgres URL] [--json]

1. Makes (or reuses, in --workdir) the folder of bench_index.py: near-duplicate JPEG
   copies of ../shared/datasets/wang.
2. Times ``cbir index FOLDER --db postgresql://...`` (a new database each time,
   codebook learning included, cold: fresh processes, empty quantization tables) with
   - ``local``:    ``--workers 2``
   - ``local:2``:  ``--cluster local:2`` (the LocalCluster's start-up is part of the time)
   - ``external``: ``--cluster tcp://...``, a ``dask scheduler`` and two ``dask worker
     --nthreads 1 --preload indexer.dask_worker`` started fresh before the timer (an
     existing cluster, started as the README says), killed after.
   Prints wall times, the ratios to ``local`` (every run's, and the medians) and the client's peak RSS.
   ``startup``: a LocalCluster of 2 one-thread worker processes started and closed alone
   (bare, and with the workers preloading cbir's extraction code as ``local:2`` does), next
   to 0.2 x the ``local`` run: the most the 1.2x goal leaves for it.
3. ``writer``: the rows of the ``local`` run written again into a new database by
   ``Store.write_batch`` alone (500 rows per transaction; binary COPY, lz4 histograms),
   next to the same rows by SQLAlchemy executemany INSERTs, and by those INSERTs into a
   table with PostgreSQL's default pglz compression (how cbir wrote before).
4. An estimate for 50 million images on 20 machines of 16 cores, from the measured
   per-image cost (extraction phase wall time x workers / images) and the write rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import make_folder

POSTGRES = os.environ.get("CBIR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DASK = str(Path(sys.executable).with_name("dask"))
PEAK = (
    "import resource, sys; from cbir.cli import main; sys.argv = ['cbir'] + sys.argv[1:]\n"
    "try:\n    main()\nfinally:\n"
    "    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)


@contextmanager
def database(base: str) -> Iterator[str]:
    import psycopg

    name = f"cbir_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def external_cluster(workdir: Path, n_workers: int = 2) -> Iterator[str]:
    """A fresh ``dask scheduler`` and ``n_workers`` one-thread workers on 127.0.0.1; yields the address."""
    import signal

    from distributed import Client

    scheduler_file = workdir / f"scheduler-{uuid.uuid4().hex[:6]}.json"
    start = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **start)]
    try:
        while not scheduler_file.exists():
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        processes += [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-dashboard",
                                        "--memory-limit", "0", "--host", "127.0.0.1",
                                        "--preload", "indexer.dask_worker"], **start)
                      for _ in range(n_workers)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


STARTUP = """
import sys, time
if __name__ == "__main__":
    begin = time.perf_counter()
    from distributed import Client, LocalCluster
    imported = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", preload=sys.argv[1:])
    client = Client(cluster)
    started = time.perf_counter()
    client.close()
    cluster.close()
    print(imported - begin, started - imported, time.perf_counter() - started)
"""


def local_cluster_startup() -> dict[str, float]:
    """Seconds to import Dask, start a LocalCluster of 2 one-thread workers and close it; and to start it
    with the workers preloading cbir's extraction code (as ``local:2`` does)."""
    times = {}
    for name, preload in (("bare", []), ("preloaded", ["indexer.dask_worker"])):
        result = subprocess.run([sys.executable, "-c", STARTUP, *preload], capture_output=True, text=True, check=True)
        values = [float(v) for v in result.stdout.split()]
        times |= {f"{name}_import": values[0], f"{name}_start": values[1], f"{name}_close": values[2],
                  f"{name}_total": sum(values)}
    return times


def run_index(folder: Path, db: str, *extra: str) -> tuple[float, dict, int]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK, "index", str(folder), "--db", db, "--json", "-q", *extra],
                            capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr)
    peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK")][-1]
    return wall, json.loads(result.stdout), int(peak.split()[1]) // 1024


def writer_rates(source_db: str, base: str, *, limit: int = 5000, batch: int = 500) -> dict[str, float]:
    """Rows per second of Store.write_batch, of executemany INSERTs, and of those INSERTs under pglz."""
    from sqlalchemy import insert, text

    from cbir.store import ImageRecord, ImageRow, Store
    from cbir.store.engine import now
    from cbir.store.statements import image_values

    with Store(source_db) as source:
        ids, histograms = source.all_histograms()
        ids, histograms = ids[:limit], histograms[:limit]
        codebook_id, codebook, layout = source.codebook()
        rows = [source.image(int(i)) for i in ids]
    records = [ImageRecord(r.path, r.size, r.mtime, r.content_hash, r.width, r.height, h) for r, h in zip(rows, histograms)]
    rates = {}
    for name in ("write_batch", "executemany", "executemany_pglz"):
        with database(base) as url, Store(url, create=True) as store:
            codebook_id = store.save_codebook(codebook, layout)
            if name == "executemany_pglz":
                with store.engine.begin() as conn:
                    conn.execute(text("ALTER TABLE images ALTER COLUMN histogram SET COMPRESSION pglz"))
            start = time.perf_counter()
            for s in range(0, len(records), batch):
                chunk = records[s : s + batch]
                if name == "write_batch":
                    store.write_batch(codebook_id=codebook_id, added=chunk)
                else:
                    with store.engine.begin() as conn:
                        conn.execute(insert(ImageRow), [image_values(r, codebook_id, now(), None) for r in chunk])
            rates[name] = len(records) / (time.perf_counter() - start)
            assert store.count() == len(records)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--workdir", default=None, help="keep the generated folder here between runs")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every configuration, interleaved (medians)")
    parser.add_argument("--postgres", default=POSTGRES, help="a database URL on the server; a new database is made per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="cbir-bench-cluster-"))
    folder = make_folder(workdir, args.images)
    n_files = sum(1 for _ in folder.rglob("*.jpg"))

    walls: dict[str, list[float]] = {"local": [], "local:2": [], "external": []}
    startups: list[dict[str, float]] = []
    peaks: dict[str, int] = {}
    per_image_ms: list[float] = []
    writer: dict[str, float] = {}
    for _ in range(args.repeat):
        for mode, times in walls.items():
            with database(args.postgres) as url:
                if mode == "external":
                    with external_cluster(workdir) as address:
                        wall, report, peak = run_index(folder, url, "--cluster", address)
                else:
                    wall, report, peak = run_index(folder, url, *(["--workers", "2"] if mode == "local" else
                                                                  ["--cluster", "local:2"]))
                assert report["added"] + len(report["failed"]) == n_files, report
                times.append(wall)
                peaks[mode] = max(peaks.get(mode, 0), peak)
                if mode == "local":
                    startups.append(local_cluster_startup())
                    per_image_ms.append(1000 * report["phases"]["extract"] * 2 / max(1, report["added"]))
                    if not writer:
                        writer = writer_rates(url, args.postgres)
    median = {mode: statistics.median(values) for mode, values in walls.items()}
    startup = {part: statistics.median(s[part] for s in startups) for part in startups[0]}
    cost_ms = statistics.median(per_image_ms)
    images, cores = 50_000_000, 20 * 16
    extract_hours = images * cost_ms / 1000 / cores / 3600
    write_hours = images / writer["write_batch"] / 3600
    result = {
        "images": n_files,
        "repeat": args.repeat,
        "wall_seconds": {mode: round(value, 2) for mode, value in median.items()},
        "ratio_to_local": {mode: round(value / median["local"], 2) for mode, value in median.items()},
        "runs": [{mode: round(walls[mode][i], 2) for mode in walls} for i in range(args.repeat)],
        "local_cluster_startup_seconds": {part: round(value, 2) for part, value in startup.items()},
        "startup_budget_seconds": round(0.2 * median["local"], 2),
        "client_peak_rss_mb": peaks,
        "per_image_core_ms": round(cost_ms, 2),
        "writer_rows_per_second": {name: round(rate) for name, rate in writer.items()},
        "estimate_50M_on_320_cores_hours": {"extraction": round(extract_hours, 2), "one_writer": round(write_hours, 2)},
        "note": "cold runs: fresh processes and quantization tables; every run writes into a new PostgreSQL database",
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{n_files} files, median of {args.repeat} (cold runs, new PostgreSQL database each):")
    for mode, value in median.items():
        print(f"  {mode:9s} {value:6.1f} s  {value / median['local']:.2f}x local   client peak RSS {peaks[mode]} MB")
    for i in range(args.repeat):
        print(f"  run {i + 1}: " + ", ".join(f"{mode} {walls[mode][i]:.1f} s ({walls[mode][i] / walls['local'][i]:.2f}x)"
                                          for mode in walls))
    for name in ("bare", "preloaded"):
        print(f"  LocalCluster(2 workers, {name}) alone: import {startup[name + '_import']:.2f} s + start "
              f"{startup[name + '_start']:.2f} s + close {startup[name + '_close']:.2f} s = {startup[name + '_total']:.2f} s, "
              f"against 0.2 x local = {0.2 * median['local']:.2f} s")
    print(f"  per image: {cost_ms:.2f} core-ms (extraction phase x 2 workers / images)")
    print("  writer alone, rows/s: " + ", ".join(f"{k} {v:.0f}" for k, v in writer.items()))
    print(f"  50M images on 20x16 cores: extraction {extract_hours:.2f} h, one writer {write_hours:.2f} h")


if __name__ == "__main__":
    main()
