"""Speed of shot detection and of posterizing a video, as ratios to plain OpenCV loops over the same file.

    python tests/benchmarks/bench_video.py [--frames 2000] [--height 1080] [--repeats 2] [--json]

Writes a generated clip (MJPG in .avi: scenes of different colors with grain and
a moving object, cut every 40-240 frames) to a temporary
directory, then times, on one core (the process pinned, OpenCV and BLAS on one
thread) and in turn, so every figure shares the machine's load of the moment:

* ``decode``          ``while capture.read()``: the floor of anything that reads the video;
* ``detect``          decode + shot detection alone (signatures and thresholds);
* ``shots``           ``film_shots``: what ``cbir shots`` does (keyframes and palettes too);
* ``decode+encode``   decode and re-encode every frame to FFV1 .avi: the floor of writing a video;
* ``posterize``       ``posterize_video(k=8)`` to FFV1 .avi: what ``cbir quantize VIDEO`` does.

Each figure is the median of ``--repeats`` runs (the file is read once before, so
every run reads from the page cache: warm). Ratios are of the process's CPU time,
which a busy machine does not inflate as it does wall time (printed too). The
output codec is MJPG by default (FFV1, lossless, encodes about 10x slower). The
goal of the issue: shot detection within 1.3x of decoding alone.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

COLORS = [(40, 60, 200), (170, 90, 30), (60, 140, 40), (170, 210, 230), (90, 90, 90), (40, 200, 240), (150, 40, 120)]


def synthesize(path: Path, *, frames: int, height: int, seed: int = 0) -> list[int]:
    """Write the clip; return the true first frame of every shot after the first."""
    width = height * 16 // 9
    rng = np.random.default_rng(seed)
    grain = [rng.integers(0, 24, (height, width, 3), dtype=np.uint8) for _ in range(6)]
    shade = np.linspace(0.7, 1.2, width, dtype=np.float32)[None, :, None]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    starts: list[int] = []
    scene, t, length = 0, 0, int(rng.integers(40, 240))
    base = np.clip(np.array(COLORS[0], np.float32) * shade, 0, 255).astype(np.uint8).repeat(height, axis=0)
    for index in range(frames):
        if t == length:
            scene, t, length = scene + 1, 0, int(rng.integers(40, 240))
            starts.append(index)
            base = np.clip(np.array(COLORS[scene % len(COLORS)], np.float32) * shade, 0, 255).astype(np.uint8)
            base = base.repeat(height, axis=0)
        frame = cv2.subtract(cv2.add(base, grain[index % 6]), grain[(index + 3) % 6])
        size = height // 3
        x = int((width - size) * (0.5 + 0.45 * np.sin(t / 15 + scene)))
        y = int((height - size) * (0.5 + 0.45 * np.cos(t / 21 + scene)))
        cv2.rectangle(frame, (x, y), (x + size, y + size), COLORS[(scene + 3) % len(COLORS)], -1)
        writer.write(frame)
        t += 1
    writer.release()
    return starts


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """``(wall seconds, CPU seconds of this process, result)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def decode(path: Path) -> None:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    while capture.read()[0]:
        pass
    capture.release()


def detect(path: Path) -> list[int]:
    from cbir.films.shots import ANALYSIS_SIDE, ShotDetector, frame_signature
    from cbir.films.video import VideoReader, bgr_to_rgb, downscale

    detector, found = ShotDetector(), []
    with VideoReader(path) as reader:
        for bgr in reader.bgr_frames():
            boundary = detector.push(frame_signature(bgr_to_rgb(downscale(bgr, ANALYSIS_SIDE, sample=True))))
            if boundary is not None:
                found.append(boundary)
    boundary = detector.finish()
    if boundary is not None:
        found.append(boundary)
    return found


def shots(path: Path) -> list[int]:
    from cbir.films.stills import film_shots

    return [shot.start for shot in film_shots(path).shots[1:]]


def encode(path: Path, out: Path, codec: str) -> None:
    from cbir.films.posterize import decode_encode_seconds

    decode_encode_seconds(path, out, codec=codec)


def posterize(path: Path, out: Path, codec: str) -> None:
    from cbir.films.posterize import posterize_video

    posterize_video(path, out, k=8, codec=codec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--codec", default="MJPG", help="FourCC of the re-encoded and posterized .avi (FFV1: lossless, slow).")
    parser.add_argument("--shots-only", action="store_true", help="Time decode, detect and shots only (no writing).")
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.avi"
        truth = synthesize(clip, frames=args.frames, height=args.height)
        import sklearn.cluster  # noqa: F401 - imports paid before timing

        decode(clip)  # page cache warm
        names = ("decode", "detect", "shots") if args.shots_only else ("decode", "detect", "shots", "decode+encode", "posterize")
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        found: list[int] = []
        for _ in range(args.repeats):
            jobs = {
                "decode": (decode, clip), "detect": (detect, clip), "shots": (shots, clip),
                "decode+encode": (encode, clip, Path(folder) / "copy.avi", args.codec),
                "posterize": (posterize, clip, Path(folder) / "dark.avi", args.codec),
            }
            for name, (fn, *fn_args) in ((n, jobs[n]) for n in names):
                seconds, cpu_seconds, result = timed(fn, *fn_args)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
                if name == "detect":
                    found = result
        size = clip.stat().st_size
    seconds = {name: statistics.median(values) for name, values in cpu.items()}
    wall_seconds = {name: statistics.median(values) for name, values in wall.items()}
    hits = sum(any(abs(f - t) <= 1 for f in found) for t in truth)
    document = {
        "frames": args.frames,
        "size": f"{args.height * 16 // 9}x{args.height}",
        "clip_mb": round(size / 1e6, 1),
        "repeats": args.repeats,
        "codec": args.codec,
        "cpu_seconds": {k: round(v, 3) for k, v in seconds.items()},
        "wall_seconds": {k: round(v, 3) for k, v in wall_seconds.items()},
        "frames_per_second": {k: round(args.frames / v, 1) for k, v in seconds.items()},
        "ratio_to_decode": {k: round(seconds[k] / seconds["decode"], 3) for k in ("detect", "shots")},
        "posterize_ratio_to_decode_encode": round(seconds["posterize"] / seconds["decode+encode"], 3) if "posterize" in seconds else None,
        "true_boundaries": len(truth),
        "detected": len(found),
        "within_one_frame": hits,
    }
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print(f"{args.frames} frames of {document['size']} MJPG ({document['clip_mb']} MB), one core, median of {args.repeats}; "
          f"CPU seconds (wall in brackets), output {args.codec}")
    for name, value in seconds.items():
        print(f"  {name:>14}  {value:7.2f} s  ({wall_seconds[name]:7.2f} s)  {args.frames / value:7.1f} frames/s")
    print(f"  detect / decode          {document['ratio_to_decode']['detect']:.2f}x (goal <= 1.3x)")
    print(f"  shots / decode           {document['ratio_to_decode']['shots']:.2f}x")
    if document["posterize_ratio_to_decode_encode"] is not None:
        print(f"  posterize / (decode+encode) {document['posterize_ratio_to_decode_encode']:.2f}x")
    print(f"  boundaries: {hits} of {len(truth)} found within one frame, {len(found)} reported")


if __name__ == "__main__":
    main()
