"""Near-duplicate benchmark generator: transformed copies of a folder of images, with ground truth.

Every readable source image becomes one group: the source itself (re-encoded) and
``copies`` edited copies, each made by a seeded random chain of one to three edits
users' collections are full of -- crop, rescale, JPEG re-encode, brightness/contrast,
hue shift, horizontal flip, small rotation, blur. A ``groundtruth.csv`` (columns
``path, group, is_query, transform``) makes the folder a benchmark for
``cbir evaluate OUT --protocol csv:OUT/groundtruth.csv``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cbir.errors import BadImageError, BadInputError
from cbir.images import is_image_path, load_image

GROUND_TRUTH = "groundtruth.csv"
#: Sources are read at up to this longer side (copies are at most this large).
DEFAULT_MAX_SIDE = 1024

Edit = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, str]]


def crop(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Keep a random window of 60-90% of each side."""
    h, w = rgb.shape[:2]
    fh, fw = rng.uniform(0.6, 0.9, size=2)
    ch, cw = max(1, int(h * fh)), max(1, int(w * fw))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(rgb[y : y + ch, x : x + cw]), f"crop{fh:.2f}x{fw:.2f}"


def rescale(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Downscale to 35-80% (area averaging)."""
    factor = float(rng.uniform(0.35, 0.8))
    h, w = rgb.shape[:2]
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), f"scale{factor:.2f}"


def jpeg(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Re-encode as a low-quality JPEG (quality 15-50) and decode again."""
    quality = int(rng.integers(15, 51))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return rgb, "jpeg-failed"
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), f"jpeg{quality}"


def brightness_contrast(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``alpha * x + beta`` with contrast alpha in 0.75..1.3 and brightness beta in -30..30."""
    alpha, beta = float(rng.uniform(0.75, 1.3)), float(rng.uniform(-30, 30))
    out = np.clip(rgb.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    return out, f"contrast{alpha:.2f}+{beta:.0f}"


def hue_shift(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Rotate the hue by 6-20 degrees either way."""
    degrees = float(rng.uniform(6, 20)) * (1 if rng.random() < 0.5 else -1)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(degrees * 256 / 360)) % 256).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL), f"hue{degrees:+.0f}"


def flip(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Mirror left-right."""
    return np.ascontiguousarray(rgb[:, ::-1]), "flip"


def rotate(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Rotate by 3-12 degrees either way, borders reflected."""
    degrees = float(rng.uniform(3, 12)) * (1 if rng.random() < 0.5 else -1)
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out, f"rot{degrees:+.0f}"


def blur(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Gaussian blur, sigma 1-3 pixels (relative to a 512-pixel side)."""
    sigma = float(rng.uniform(1.0, 3.0)) * max(rgb.shape[:2]) / 512
    return cv2.GaussianBlur(rgb, (0, 0), max(sigma, 0.5)), f"blur{sigma:.1f}"


EDITS: dict[str, Edit] = {
    "crop": crop,
    "rescale": rescale,
    "jpeg": jpeg,
    "brightness": brightness_contrast,
    "hue": hue_shift,
    "flip": flip,
    "rotate": rotate,
    "blur": blur,
}


def near_duplicate(rgb: np.ndarray, rng: np.random.Generator, *, edits: Sequence[str] = tuple(EDITS)) -> tuple[np.ndarray, str]:
    """A copy of ``rgb`` after a random chain of one to three distinct edits.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    rng : numpy Generator
        The only source of randomness.
    edits : sequence of str
        Names from :data:`EDITS` to choose from.

    Returns
    -------
    copy : ndarray, shape (H', W', 3), uint8
    description : str
        The edits applied, e.g. ``"crop0.71x0.83+hue-12"``.

    Raises
    ------
    BadInputError
        If an edit name is unknown or ``rgb`` is not a uint8 (H, W, 3) image.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
        raise BadInputError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    unknown = [e for e in edits if e not in EDITS]
    if unknown or not edits:
        raise BadInputError(f"unknown edits {unknown}; choose from {', '.join(EDITS)}")
    count = int(rng.integers(1, min(3, len(edits)) + 1))
    chosen = [edits[i] for i in sorted(rng.choice(len(edits), size=count, replace=False))]
    applied = []
    for name in chosen:
        rgb, what = EDITS[name](np.ascontiguousarray(rgb), rng)
        applied.append(what)
    return np.ascontiguousarray(rgb, dtype=np.uint8), "+".join(applied)


@dataclass
class BenchmarkSummary:
    """What :func:`make_benchmark` wrote."""

    out: str
    ground_truth: str
    groups: int
    images: int
    queries: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return data


def _group_name(index: int, path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-")[:40] or "image"
    return f"{index:04d}-{stem}"


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise BadInputError(f"cannot write {path}")


def make_benchmark(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    copies: int = 6,
    seed: int = 0,
    max_side: int = DEFAULT_MAX_SIDE,
    all_queries: bool = False,
    edits: Sequence[str] = tuple(EDITS),
    progress: Callable[[int, int], None] | None = None,
) -> BenchmarkSummary:
    """Write a near-duplicate benchmark made from the images under ``source``.

    Parameters
    ----------
    source : path
        A folder of images (searched recursively, in sorted order).
    out : path
        A new (or empty) folder; it appears only when complete.
    copies : int
        Edited copies per source image, 1..50.
    seed : int
        The same sources, seed and options give the same benchmark.
    max_side : int
        Sources are read at up to this longer side.
    all_queries : bool
        Make every image a query; by default only the re-encoded sources are
        (INRIA Holidays style) and their copies are what they should find.
    edits : sequence of str
        Edit names from :data:`EDITS` to draw from.

    Returns
    -------
    BenchmarkSummary

    Raises
    ------
    BadInputError
        If ``source`` is not a folder or has no readable image, ``out`` exists and is
        not empty, or an option is out of range.
    """
    if not 1 <= copies <= 50:
        raise BadInputError(f"copies must be between 1 and 50, got {copies}")
    if max_side < 16:
        raise BadInputError(f"max_side must be at least 16, got {max_side}")
    unknown = [e for e in edits if e not in EDITS]
    if unknown or not edits:
        raise BadInputError(f"unknown edits {unknown}; choose from {', '.join(EDITS)}")
    src = Path(source).expanduser()
    if not src.is_dir():
        raise BadInputError(f"{source}: not a folder")
    src = src.resolve()
    target = Path(out).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BadInputError(f"{out} already exists and is not an empty folder; choose a new output folder")
    if target == src or src in target.parents:
        raise BadInputError(f"{out} is inside the source folder {source}; choose an output folder outside it")
    files = sorted(p for p in src.rglob("*") if p.is_file() and is_image_path(p))
    if not files:
        raise BadInputError(f"{source}: no image files found")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp", dir=target.parent))
    try:
        rows: list[tuple[str, str, int, str]] = []
        skipped: list[tuple[str, str]] = []
        groups = 0
        for done, file in enumerate(files, 1):
            try:
                rgb = load_image(file, max_side=max_side)
            except BadImageError as exc:
                skipped.append((str(file), exc.reason))
                continue
            name = _group_name(groups, file)
            groups += 1
            rng = np.random.default_rng([seed, groups])
            _write_jpeg(staging / f"{name}_00.jpg", rgb, 95)
            rows.append((f"{name}_00.jpg", name, 1, "original"))
            for c in range(1, copies + 1):
                copy, what = near_duplicate(rgb, rng, edits=edits)
                _write_jpeg(staging / f"{name}_{c:02d}.jpg", copy, int(rng.integers(70, 96)))
                rows.append((f"{name}_{c:02d}.jpg", name, int(all_queries), what))
            if progress is not None:
                progress(done, len(files))
        if not rows:
            raise BadInputError(f"{source}: none of the {len(files)} image files could be read")
        with open(staging / GROUND_TRUTH, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "group", "is_query", "transform"])
            writer.writerows(rows)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BenchmarkSummary(
        out=str(target),
        ground_truth=str(target / GROUND_TRUTH),
        groups=groups,
        images=len(rows),
        queries=sum(r[2] for r in rows),
        skipped=skipped,
    )
