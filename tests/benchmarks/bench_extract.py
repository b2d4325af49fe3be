"""Per-image extraction time, cold and warm, next to plain cv2.imread of the same files.

    python tests/benchmarks/bench_extract.py [FOLDER] [--repeat 3] [--json]

FOLDER defaults to ../shared/datasets/wang (Wang/Corel-1k). The loops run in this
one process on one core, alternated, best of --repeat runs each (the files' pages
cached for all of them):

* ``imread``: ``cv2.imread(path)`` (full-size BGR decode, nothing else);
* ``extract``: what an extraction worker of ``cbir index`` does, in tasks of 32
  files: read the bytes, hash them, probe the header, decode (reduced-size JPEG
  decoding where it applies), then quantize the task's images together through
  the 24-bit table and make their histograms;
* ``cold``: with a fresh, empty table, as every ``cbir index`` run starts (each
  color is looked up in L*a*b* the first time it is seen): the cost a run pays;
* ``warm``: the same loop again with the table that pass filled: the cost once
  the colors are known (the later part of a large run, or a re-run's share).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from cbir.codebook import Codebook, learn_codebook
from cbir.descriptor import Descriptor, content_hash
from cbir.histogram import DEFAULT_LAYOUT
from cbir.images import is_image_path, load_image, read_bytes

TASK = 32  # files per extraction task, as indexer/extract.py makes them

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
    for f in files:  # warm the page cache for every loop
        Path(f).read_bytes()

    def fresh_descriptor() -> Descriptor:
        """A descriptor whose codebook has a new, empty quantization table."""
        return Descriptor(Codebook(codebook.centers.copy(), params=dict(codebook.params)), layout=args.layout)

    def imread_loop() -> float:
        start = time.perf_counter()
        for f in files:
            cv2.imread(f)
        return time.perf_counter() - start

    def extract_loop(descriptor: Descriptor) -> float:
        start = time.perf_counter()
        for s in range(0, len(files), TASK):
            decoded = []
            for f in files[s : s + TASK]:
                data = read_bytes(f)
                content_hash(data)
                decoded.append(descriptor.decode(data, path=f))
            descriptor.of_decoded_many(decoded)
        return time.perf_counter() - start

    imread_times, cold_times, warm_times = [], [], []
    for _ in range(args.repeat):
        imread_times.append(imread_loop())
        descriptor = fresh_descriptor()
        cold_times.append(extract_loop(descriptor))
        warm_times.append(extract_loop(descriptor))
    imread_ms = min(imread_times) / len(files) * 1000
    cold_ms = min(cold_times) / len(files) * 1000
    warm_ms = min(warm_times) / len(files) * 1000
    figures = {
        "images": len(files),
        "folder": args.folder,
        "layout": args.layout,
        "n_colors": codebook.n_colors,
        "imread_ms_per_image": round(imread_ms, 3),
        "extract_cold_ms_per_image": round(cold_ms, 3),
        "extract_warm_ms_per_image": round(warm_ms, 3),
        "ratio_cold_to_imread": round(cold_ms / imread_ms, 3),
        "ratio_warm_to_imread": round(warm_ms / imread_ms, 3),
        "ratio_cold_to_warm": round(cold_ms / warm_ms, 3),
        "median_pixels": int(np.median([np.prod(cv2.imread(f).shape[:2]) for f in files[:50]])),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{len(files)} images from {args.folder} ({codebook.n_colors} colors, {args.layout} layout), one core")
    print(f"  cv2.imread only                        {imread_ms:7.3f} ms/image")
    print(f"  cbir extraction, cold (fresh table)    {cold_ms:7.3f} ms/image   ({cold_ms / imread_ms:.2f}x imread)")
    print(f"  cbir extraction, warm (table filled)   {warm_ms:7.3f} ms/image   ({warm_ms / imread_ms:.2f}x imread)")
    print(f"  cold / warm                            {cold_ms / warm_ms:7.2f}")


if __name__ == "__main__":
    main()
