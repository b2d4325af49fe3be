"""Sets built on this machine rather than downloaded: ``skimage-dup``.

``skimage-dup`` is :func:`cbir.evaluation.transforms.make_benchmark` (6 edited copies per source, seed 0,
every image a query) applied to the sample images that ship inside scikit-image
(``skimage/data``), each whole and in its four quadrants. It shares no image with Wang and
rewards other things: near-duplicates under crops, rescaling, JPEG, brightness/contrast and
hue shifts, flips, rotations and blur, many of them grayscale. Built with the same
scikit-image release it gives the same images; the manifest records that release.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cbir.errors import BadInputError
from cbir.images import load_image

COPIES = 6
SEED = 0
#: Sources narrower than this (icons, tiny masks) are left out.
MIN_SIDE = 96


def skimage_sources(out: str | os.PathLike[str]) -> int:
    """Write scikit-image's sample images, whole and as quadrants, as PNGs into ``out``; their number.

    Raises
    ------
    BadInputError
        If scikit-image is not installed.
    """
    try:
        import skimage.data
    except ImportError:
        raise BadInputError("skimage-dup is built from scikit-image's sample images: pip install scikit-image") from None
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(skimage.data.__file__).parent
    written = 0
    for file in sorted(data.iterdir()):
        try:
            rgb = load_image(file, max_side=1024)
        except Exception:  # noqa: BLE001, S112 - anything unreadable is simply not a source
            continue  # not an image (or a format Pillow cannot read)
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            continue
        quadrants = {
            f"q{i}": rgb[(i // 2) * h // 2 : (i // 2 + 1) * h // 2, (i % 2) * w // 2 : (i % 2 + 1) * w // 2]
            for i in range(4)
        }
        for tag, piece in ({"full": rgb} | quadrants).items():
            bgr = cv2.cvtColor(np.ascontiguousarray(piece), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(out / f"{file.stem}_{tag}.png"), bgr)
            written += 1
    return written


def build_skimage_dup(
    out: str | os.PathLike[str], *, on_progress: Callable[[str, int, int], None] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Build skimage-dup into ``out`` (which must not exist yet); the folder and its provenance.

    Raises
    ------
    BadInputError
        If scikit-image is not installed or ``out`` exists and is not empty.
    """
    import skimage

    from cbir.evaluation.transforms import make_benchmark

    out = Path(out)
    source = out.with_name(out.name + "-sources")
    sources = skimage_sources(source)
    summary = make_benchmark(
        source, out, copies=COPIES, seed=SEED, all_queries=True,
        progress=None if on_progress is None else lambda done, total: on_progress("build skimage-dup", done, total),
    )
    provenance = {"scikit-image": getattr(skimage, "__version__", "unknown"), "sources": sources, "copies": COPIES, "seed": SEED,
                  "groups": summary.groups}
    return out, provenance
