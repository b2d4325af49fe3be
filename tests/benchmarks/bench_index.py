"""Indexing throughput, memory and re-sync time, next to a plain cv2.imread loop, in one run.

    python tests/benchmarks/bench_index.py [--images 5000] [--workdir DIR] [--repeat 3] [--scale 1] [--json]

1. Makes (or reuses, in --workdir) a folder of JPEGs: near-duplicate copies of
   ../shared/datasets/wang made by ``cbir.evaluation.transforms.make_benchmark`` (crops,
   rescales, re-encodes, color shifts, flips, rotations, blur), enough copies per
   source to reach --images; with --scale, every copy enlarged by that factor
   (photo-sized files, which cbir decodes at a reduced scale).
2. ``imread``: a single-process loop that only decodes every file with cv2.imread.
3. ``index``: ``cbir index`` on the folder into a new SQLite file, codebook
   learning included, default workers (the number of cores), in a child process
   whose peak RSS is measured.
4. ``reindex``: the same command again over the unchanged folder.
5. The floor under ``index``: what any run with cbir's descriptor must spend, measured
   the same way: ``startup`` (a fresh interpreter importing the indexer), the codebook
   phase (from step 3) and ``decode`` (every file decoded at the analysis resolution,
   cbir's own decoder, in as many forked processes as ``index`` uses).
Steps 2-5 run --repeat times, interleaved; medians are printed with the range.
Prints wall times, their ratios and where the indexing time went.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
WANG = ROOT.parent / "shared" / "datasets" / "wang"


def make_folder(workdir: Path, images: int, scale: float = 1.0) -> Path:
    folder = workdir / f"wang-copies-{images}" if scale == 1 else workdir / f"wang-copies-{images}-x{scale:g}"
    if folder.exists():
        return folder
    from cbir.evaluation.transforms import make_benchmark

    sources = len(list(WANG.glob("*.jpg")))
    copies = max(1, -(-images // sources) - 1)
    print(f"making {images} JPEGs in {folder} ...", file=sys.stderr)
    make_benchmark(WANG, folder, copies=copies, seed=0)
    if scale != 1:  # photo-sized files: every copy enlarged and re-encoded
        for path in folder.rglob("*.jpg"):
            image = cv2.imread(str(path))
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            cv2.imwrite(str(path), cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


def run_index(folder: Path, db: Path, *extra: str) -> tuple[float, dict, int]:
    start = time.perf_counter()
    script = (
        "import resource, sys; from cbir.cli import main; sys.argv = ['cbir'] + sys.argv[1:]\n"
        "try:\n    main()\nfinally:\n"
        "    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "index", str(folder), "--db", str(db), "--json", "-q", *extra],
        capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr)
    peak_line = [line for line in result.stderr.splitlines() if line.startswith("PEAK")][-1]
    main_kb, child_kb = map(int, peak_line.split()[1:])
    return wall, json.loads(result.stdout), max(main_kb, child_kb) // 1024


def _decode_chunk(paths: list[str]) -> int:
    from cbir.images import load_image

    return sum(load_image(path).size for path in paths)


def decode_floor(files: list[str], workers: int) -> float:
    """Wall time to decode every file at the analysis resolution in ``workers`` forked processes."""
    chunks = [files[i : i + 32] for i in range(0, len(files), 32)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_decode_chunk, chunks[:workers])  # the processes exist before the clock starts
        start = time.perf_counter()
        pool.map(_decode_chunk, chunks, chunksize=1)
        return time.perf_counter() - start


def startup() -> float:
    """Wall time of a fresh interpreter that imports what ``cbir index`` imports."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cbir.cli, indexer.sync, cbir.vectors, cv2, tqdm"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--workdir", default=None, help="keep the generated folder here between runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every measurement, interleaved (medians)")
    parser.add_argument("--scale", type=float, default=1.0, help="enlarge the copies by this factor (e.g. 4: photo-sized files)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="cbir-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    folder = make_folder(workdir, args.images, args.scale)
    files = sorted(str(p) for p in folder.rglob("*.jpg"))
    for f in files:  # warm the page cache for everyone
        Path(f).read_bytes()
    workers = os.cpu_count() or 1

    cv2.setNumThreads(1)
    runs: dict[str, list] = {key: [] for key in ("imread", "index", "reindex", "startup", "decode", "codebook", "extract")}
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        for f in files:
            cv2.imread(f)
        runs["imread"].append(time.perf_counter() - start)
        db = workdir / f"bench-{os.getpid()}.db"
        index_s, report, index_rss = run_index(folder, db)
        reindex_s, again, reindex_rss = run_index(folder, db)
        for leftover in [db, *db.parent.glob(f"{db.name}[-.]*")]:
            leftover.unlink(missing_ok=True)
        runs["index"].append(index_s)
        runs["reindex"].append(reindex_s)
        runs["codebook"].append(report["phases"]["codebook"])
        runs["extract"].append(report["phases"]["extract"])
        runs["startup"].append(startup())
        runs["decode"].append(decode_floor(files, workers))
    med = {key: statistics.median(values) for key, values in runs.items()}
    floor = med["startup"] + med["codebook"] + med["decode"]
    figures = {
        "images": len(files),
        "cores": workers,
        "repeat": len(runs["index"]),
        "imread_loop_s": round(med["imread"], 2),
        "index_s": round(med["index"], 2),
        "index_over_imread": round(med["index"] / med["imread"], 2),
        "index_over_imread_runs": [round(i / r, 2) for i, r in zip(runs["index"], runs["imread"])],
        "index_phases_s": report["phases"],
        "index_peak_rss_mb": index_rss,
        "reindex_s": round(med["reindex"], 2),
        "reindex_over_index": round(med["reindex"] / med["index"], 3),
        "reindex_unchanged": again["unchanged"],
        "reindex_peak_rss_mb": reindex_rss,
        "startup_s": round(med["startup"], 2),
        "codebook_s": round(med["codebook"], 2),
        "decode_floor_s": round(med["decode"], 2),
        "floor_s": round(floor, 2),
        "floor_over_imread": round(floor / med["imread"], 2),
        "added": report["added"],
        "failed": len(report["failed"]),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return

    def spread(key: str) -> str:
        return f"(runs {min(runs[key]):.2f}-{max(runs[key]):.2f})" if len(runs[key]) > 1 else ""

    ratios = figures["index_over_imread_runs"]
    print(f"{len(files)} JPEGs, {workers} cores, medians of {len(runs['index'])} interleaved runs")
    print(f"  cv2.imread loop, one process      {med['imread']:7.2f} s  {spread('imread')}")
    print(f"  cbir index (codebook included)    {med['index']:7.2f} s  {spread('index')}   ratio {figures['index_over_imread']:.2f}"
          f" (runs {min(ratios):.2f}-{max(ratios):.2f})   peak RSS {index_rss} MB")
    print("    phases of the last run: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["phases"].items()))
    print(f"  cbir index again, unchanged       {med['reindex']:7.2f} s   {med['reindex'] / med['index']:.1%} of the first run")
    print(f"  floor: start-up {med['startup']:.2f} s + codebook {med['codebook']:.2f} s + decode at analysis resolution "
          f"in {workers} processes {med['decode']:.2f} s = {floor:.2f} s   ratio {floor / med['imread']:.2f}")
    print(f"  above the floor (quantize, histogram, hash, write): {med['index'] - floor:.2f} s")


if __name__ == "__main__":
    main()
