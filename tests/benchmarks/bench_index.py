"""Indexing throughput, memory and re-sync time, next to a plain cv2.imread loop, in one run.

    python tests/benchmarks/bench_index.py [--images 5000] [--workdir DIR] [--json]

1. Makes (or reuses, in --workdir) a folder of JPEGs: near-duplicate copies of
   ../shared/datasets/wang made by ``cbir.transforms.make_benchmark`` (crops,
   rescales, re-encodes, color shifts, flips, rotations, blur), enough copies per
   source to reach --images.
2. ``imread``: a single-process loop that only decodes every file with cv2.imread.
3. ``index``: ``cbir index`` on the folder into a new SQLite file, codebook
   learning included, default workers (the number of cores), in a child process
   whose peak RSS is measured.
4. ``reindex``: the same command again over the unchanged folder.
Prints wall times, their ratios and where the indexing time went.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
WANG = ROOT.parent / "shared" / "datasets" / "wang"


def make_folder(workdir: Path, images: int) -> Path:
    folder = workdir / f"wang-copies-{images}"
    if folder.exists():
        return folder
    from cbir.transforms import make_benchmark

    sources = len(list(WANG.glob("*.jpg")))
    copies = max(1, -(-images // sources) - 1)
    print(f"making {images} JPEGs in {folder} ...", file=sys.stderr)
    make_benchmark(WANG, folder, copies=copies, seed=0)
    return folder


def run_index(folder: Path, db: Path, *extra: str) -> tuple[float, dict, int]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c",
         "import resource, sys; from cbir.cli import main; sys.argv = ['cbir'] + sys.argv[1:]\n"
         "try:\n    main()\nfinally:\n"
         "    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
         "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)",
         "index", str(folder), "--db", str(db), "--json", "-q", *extra],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr)
    peak_line = [line for line in result.stderr.splitlines() if line.startswith("PEAK")][-1]
    main_kb, child_kb = map(int, peak_line.split()[1:])
    return wall, json.loads(result.stdout), max(main_kb, child_kb) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--workdir", default=None, help="keep the generated folder here between runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="cbir-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    folder = make_folder(workdir, args.images)
    files = sorted(str(p) for p in folder.rglob("*.jpg"))
    for f in files:  # warm the page cache for everyone
        Path(f).read_bytes()

    cv2.setNumThreads(1)
    start = time.perf_counter()
    for f in files:
        cv2.imread(f)
    imread_s = time.perf_counter() - start

    db = workdir / f"bench-{os.getpid()}.db"
    index_s, report, index_rss = run_index(folder, db)
    reindex_s, again, reindex_rss = run_index(folder, db)
    figures = {
        "images": len(files),
        "cores": os.cpu_count(),
        "imread_loop_s": round(imread_s, 2),
        "index_s": round(index_s, 2),
        "index_over_imread": round(index_s / imread_s, 2),
        "index_phases_s": report["phases"],
        "index_peak_rss_mb": index_rss,
        "reindex_s": round(reindex_s, 2),
        "reindex_over_index": round(reindex_s / index_s, 3),
        "reindex_unchanged": again["unchanged"],
        "reindex_peak_rss_mb": reindex_rss,
        "added": report["added"],
        "failed": len(report["failed"]),
    }
    for leftover in [db, *db.parent.glob(f"{db.name}[-.]*")]:
        leftover.unlink(missing_ok=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{len(files)} JPEGs, {os.cpu_count()} cores")
    print(f"  cv2.imread loop, one process   {imread_s:7.2f} s")
    print(f"  cbir index (codebook included) {index_s:7.2f} s   ratio {index_s / imread_s:.2f}   peak RSS {index_rss} MB")
    print(f"    phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["phases"].items()))
    print(f"  cbir index again, unchanged    {reindex_s:7.2f} s   {reindex_s / index_s:.1%} of the first run")


if __name__ == "__main__":
    main()
