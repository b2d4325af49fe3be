"""Speed and memory of `cbir palette` / `cbir quantize` on photo-sized images, on one core.

    python tests/benchmarks/bench_palette.py [--repeats 5] [--sizes 3,12]

Synthesizes photo-like JPEGs (smooth gradients, shapes and noise; 3 and 12
megapixels by default) in a temporary directory, then measures, each in a fresh
child process pinned to one core with every thread pool at one thread:

* ``decode``        load_image(max_side=None) alone, the floor;
* ``palette/<m>``   decode + sample + cluster (extract_palette, k=10) per method;
* ``quantize``      decode + palette (k=16) + posterize every pixel;
* ``cli``           the whole ``cbir palette IMAGE --json`` process, imports included.

Times are the median of the repeats (the first, which pays for imports, is
dropped); peak RSS is the child's maximum resident set size. Ratios to decode
and between sizes are printed side by side: the palette's cost beyond decoding
does not grow with the pixel count, and memory grows only linearly.
"""

from __future__ import annotations

import os

# One thread per pool, set before numpy is imported (the measuring children inherit it).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("minibatch", "kmeans", "agglomerative")


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def synthesize(path: Path, megapixels: float, seed: int = 0) -> Path:
    """A photo-like JPEG: sky-to-ground gradients, a few soft blobs, sensor-like noise."""
    import cv2
    import numpy as np

    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(megapixels * 1e6 / width)
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), dtype=np.float32)
    horizon = 0.55 + 0.05 * np.sin(7 * x)
    sky = y < horizon
    image[..., 0] = np.where(sky, 90 + 120 * y, 70 + 90 * (1 - y) + 30 * np.sin(9 * x))
    image[..., 1] = np.where(sky, 140 + 80 * y, 110 + 60 * np.cos(5 * x + 3 * y))
    image[..., 2] = np.where(sky, 230 - 60 * y, 40 + 40 * y)
    for _ in range(6):
        cy, cx, r = rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.15)
        blob = np.exp(-(((y - cy) / r) ** 2 + ((x - cx) / (r * 0.75)) ** 2))
        image += blob[..., None] * np.asarray(rng.uniform(-90, 90, 3), dtype=np.float32)
    image += np.asarray(rng.normal(0, 6, image.shape), dtype=np.float32)
    rgb = np.clip(image, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def child(task: str, path: str, repeats: int) -> None:
    """Run one measurement in this process and print {seconds: [...], peak_rss_mb} as JSON."""
    pin_one_core()
    import cv2

    cv2.setNumThreads(1)
    from cbir.images import load_image
    from cbir.palette import extract_palette
    from cbir.palette.posterize import posterize

    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        rgb = load_image(path, max_side=None)
        if task.startswith("palette/"):
            extract_palette(rgb, k=10, method=task.split("/", 1)[1])
        elif task == "quantize":
            posterize(rgb, k=16)
        seconds.append(time.perf_counter() - start)
        del rgb
    print(json.dumps({"seconds": seconds[1:], "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(task: str, path: Path, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", task, str(path), "--repeats", str(repeats)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def measure_cli(path: Path, repeats: int) -> dict:
    """Wall time of the whole command (a new Python process each time), pinned to one core."""
    command = [sys.executable, "-c", "import sys; from cbir.cli import main; sys.exit(main())",
               "palette", str(path), "--json"]
    pin = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] if hasattr(os, "sched_getaffinity") else []
    seconds, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        process = subprocess.Popen(pin + command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        seconds.append(time.perf_counter() - start)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
        peaks.append(usage.ru_maxrss / 1024)
    return {"seconds": seconds, "peak_rss_mb": max(peaks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="3,12", help="megapixels, comma-separated")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, path = args.child
        if task.startswith("synthesize/"):
            synthesize(Path(path), float(task.split("/", 1)[1]))
            import cv2

            thumbnail = cv2.imread(path, cv2.IMREAD_REDUCED_GRAYSCALE_8)
            if thumbnail is None:
                raise RuntimeError(f"could not write {path}")
            height, width = thumbnail.shape
            print(f"{float(task.split('/', 1)[1]):g} MP photo-like JPEG, ~{width * 8}x{height * 8}, "
                  f"{Path(path).stat().st_size / 1e6:.1f} MB", file=sys.stderr)
        else:
            child(task, path, args.repeats)
        return
    sizes = [float(s) for s in args.sizes.split(",")]
    tasks = ["decode", *(f"palette/{m}" for m in METHODS), "quantize"]
    results: dict[float, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            # In a child process: this one stays small, so the CLI runs' peak RSS is their own.
            path = Path(tmp) / f"photo-{size:g}mp.jpg"
            subprocess.run([sys.executable, __file__, "--child", f"synthesize/{size:g}", str(path)], check=True)
            results[size] = {task: measure(task, path, args.repeats) for task in tasks}
            results[size]["cli"] = measure_cli(path, args.repeats)
    print(f"one core, median of {args.repeats} runs (first run dropped, except cli); peak RSS of the measuring process")
    header = f"{'task':<24}" + "".join(f"{f'{s:g} MP s':>10}{'x decode':>10}{'RSS MB':>9}" for s in sizes)
    if len(sizes) > 1:
        header += f"{'time ratio ' + f'{sizes[-1]:g}/{sizes[0]:g}':>18}"
    print(header)
    for task in [*tasks, "cli"]:
        row = f"{task:<24}"
        medians = []
        for size in sizes:
            found = results[size][task]
            median = statistics.median(found["seconds"])
            medians.append(median)
            decode = statistics.median(results[size]["decode"]["seconds"])
            row += f"{median:>10.3f}{median / decode:>10.2f}{found['peak_rss_mb']:>9.0f}"
        if len(sizes) > 1:
            row += f"{medians[-1] / medians[0]:>18.2f}"
        print(row)
    for size in sizes:
        decode = statistics.median(results[size]["decode"]["seconds"])
        beyond = {m: statistics.median(results[size][f"palette/{m}"]["seconds"]) - decode for m in METHODS}
        print(f"{size:g} MP: palette cost beyond decoding: "
              + ", ".join(f"{m} {seconds:.3f} s" for m, seconds in beyond.items()))


if __name__ == "__main__":
    main()
