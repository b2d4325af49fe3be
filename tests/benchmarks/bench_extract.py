"""Per-image extraction time next to plain cv2.imread of the same files.

    python tests/benchmarks/bench_extract.py [FOLDER] [--repeat 3] [--json]

FOLDER defaults to ../shared/datasets/wang (Wang/Corel-1k). Both loops run in
this one process on one core, alternated, best of --repeat runs each:

* ``imread``: ``cv2.imread(path)`` (full-size BGR decode, nothing else);
* ``extract``: what ``cbir index`` does per file: read the bytes, hash them,
  probe the header, decode (reduced-size JPEG decoding where it applies),
  quantize through the 24-bit table, histogram.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from cbir.codebook import learn_codebook  # noqa: E402
from cbir.descriptor import Descriptor  # noqa: E402
from cbir.histogram import DEFAULT_LAYOUT  # noqa: E402
from cbir.images import is_image_path, load_image  # noqa: E402

DEFAULT_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "wang"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layout", default=DEFAULT_LAYOUT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    files = sorted(str(p) for p in Path(args.folder).rglob("*") if is_image_path(p))
    if not files:
        sys.exit(f"no images under {args.folder}")
    codebook, _ = learn_codebook((load_image(f, max_side=256) for f in files[::5]), seed=0)
    descriptor = Descriptor(codebook, layout=args.layout)
    for f in files:  # warm the page cache for both loops
        Path(f).read_bytes()

    def imread_loop() -> float:
        start = time.perf_counter()
        for f in files:
            cv2.imread(f)
        return time.perf_counter() - start

    def extract_loop() -> float:
        start = time.perf_counter()
        for f in files:
            descriptor.of_file(f)
        return time.perf_counter() - start

    imread_times, extract_times = [], []
    for _ in range(args.repeat):
        imread_times.append(imread_loop())
        extract_times.append(extract_loop())
    imread_ms = min(imread_times) / len(files) * 1000
    extract_ms = min(extract_times) / len(files) * 1000
    figures = {
        "images": len(files),
        "folder": args.folder,
        "layout": args.layout,
        "n_colors": codebook.n_colors,
        "imread_ms_per_image": round(imread_ms, 3),
        "extract_ms_per_image": round(extract_ms, 3),
        "ratio_extract_to_imread": round(extract_ms / imread_ms, 3),
        "median_pixels": int(np.median([np.prod(cv2.imread(f).shape[:2]) for f in files[:50]])),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{len(files)} images from {args.folder} ({codebook.n_colors} colors, {args.layout} layout), one core")
    print(f"  cv2.imread only        {imread_ms:7.3f} ms/image")
    print(f"  cbir extraction        {extract_ms:7.3f} ms/image")
    print(f"  ratio extract/imread   {extract_ms / imread_ms:7.2f}")


if __name__ == "__main__":
    main()
