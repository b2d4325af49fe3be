"""Codes -> L1-normalized color histograms, globally or per region (spatial layouts).

A layout is one or more *components* joined by ``+`` (e.g. ``"global+grid2"``):

``global``  the whole image;
``grid2``   a 2x2 grid of cells; ``grid3`` a 3x3 grid;
``center``  an ellipse at the centre plus the four corner quadrants around it
            (the region scheme of PyImageSearch's 2014 search-engine guide);
``bic``     two blocks by pixel class rather than by place: *interior* pixels (the
            four neighbours have the same code) and *border* pixels (Stehling et al.,
            "A compact and efficient image retrieval approach based on border/interior
            pixel classification", CIKM 2002) -- a cheap hint of texture, still color only.

Every region's histogram is normalized to sum to 1 and weighted so that each
component carries an equal share and the concatenated vector sums to 1.
Equal mass per region is what the quadratic-form embedding needs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cbir.errors import BadInputError

COMPONENTS = {"global": 1, "grid2": 4, "grid3": 9, "center": 5, "bic": 2}
#: Measured on Wang and on a near-duplicate set (README, "Retrieval accuracy"): border/interior
#: histograms plus a 3x3 grid beat a global histogram on both.
DEFAULT_LAYOUT = "bic+grid3"


def parse_layout(layout: str) -> tuple[str, ...]:
    """Split and check a layout name, e.g. ``"global+grid2"`` -> ``("global", "grid2")``."""
    parts = tuple(part.strip() for part in layout.split("+"))
    for part in parts:
        if part not in COMPONENTS:
            raise BadInputError(
                f"unknown layout component {part!r} in {layout!r}; choose from {', '.join(COMPONENTS)}"
            )
    if len(set(parts)) != len(parts):
        raise BadInputError(f"layout {layout!r} repeats a component")
    return parts


def n_regions(layout: str) -> int:
    """Number of regions (histogram blocks) of a layout."""
    return sum(COMPONENTS[part] for part in parse_layout(layout))


def region_weights(layout: str) -> np.ndarray:
    """Weight of every region, shape (n_regions,), summing to 1."""
    parts = parse_layout(layout)
    return np.concatenate([np.full(COMPONENTS[p], 1.0 / (len(parts) * COMPONENTS[p])) for p in parts])


def _grid_labels(height: int, width: int, cells: int) -> np.ndarray:
    rows = np.minimum(np.arange(height) * cells // height, cells - 1)
    cols = np.minimum(np.arange(width) * cells // width, cells - 1)
    return (rows[:, None] * cells + cols[None, :]).astype(np.int64)


def _center_labels(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    inside = ((y - cy) / (0.375 * height)) ** 2 + ((x - cx) / (0.375 * width)) ** 2 <= 1.0
    corner = (y > cy).astype(np.int64) * 2 + (x > cx).astype(np.int64)
    return np.where(inside, 4, corner)


def border_labels(codes: np.ndarray) -> np.ndarray:
    """BIC pixel classes of a code image: 0 interior (4-neighbours share its code), 1 border; shape (H, W) int64.

    Pixels on the image edge are compared with their neighbours inside the image only.
    """
    padded = np.pad(np.asarray(codes), 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    interior = (
        (centre == padded[:-2, 1:-1]) & (centre == padded[2:, 1:-1]) & (centre == padded[1:-1, :-2]) & (centre == padded[1:-1, 2:])
    )
    return (~interior).astype(np.int64)


_PER_IMAGE = np.empty((0, 0), dtype=np.int64)


@lru_cache(maxsize=64)
def _labels(layout: str, height: int, width: int) -> tuple[np.ndarray, ...]:
    maps = []
    for part in parse_layout(layout):
        if part == "global":
            maps.append(np.zeros((height, width), dtype=np.int64))
        elif part == "bic":
            maps.append(_PER_IMAGE)  # depends on the codes, made in histogram()
        elif part == "center":
            maps.append(_center_labels(height, width))
        else:
            maps.append(_grid_labels(height, width, int(part[-1])))
    for labels in maps:
        labels.setflags(write=False)  # cached and shared: never modified
    return tuple(maps)


def histogram(codes: np.ndarray, n_colors: int, *, layout: str = DEFAULT_LAYOUT) -> np.ndarray:
    """Normalized (spatial) color histogram of a code image.

    Parameters
    ----------
    codes : ndarray, shape (H, W), integer
        Codeword index of every pixel, in 0..n_colors-1.
    n_colors : int
        Codebook size.
    layout : str
        See the module docstring.

    Returns
    -------
    ndarray, shape (n_regions * n_colors,), float32
        Region blocks in layout order; each block sums to its region weight, the whole to 1.
        A region with no pixels (tiny images) takes the whole image's histogram.

    Raises
    ------
    BadInputError
        If ``codes`` is not 2-D and non-empty, or the layout is unknown.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.size == 0:
        raise BadInputError(f"expected a non-empty (H, W) code image, got shape {codes.shape}")
    flat = codes.reshape(-1).astype(np.intp)
    blocks = []
    for labels, n in zip(_labels(layout, *codes.shape), (COMPONENTS[p] for p in parse_layout(layout))):
        if labels is _PER_IMAGE:
            labels = border_labels(codes)
        if n == 1:
            counts = np.bincount(flat, minlength=n_colors)[None, :n_colors].astype(np.float64)
        else:
            counts = np.bincount(labels.reshape(-1) * n_colors + flat, minlength=n * n_colors)
            counts = counts.reshape(n, n_colors).astype(np.float64)
        sums = counts.sum(axis=1, keepdims=True)
        empty = sums[:, 0] == 0
        if empty.any():
            whole = np.bincount(flat, minlength=n_colors)[:n_colors].astype(np.float64)
            counts[empty] = whole / whole.sum()
            sums[empty] = 1.0
        blocks.append(counts / sums)
    stacked = np.concatenate(blocks) * region_weights(layout)[:, None]
    return stacked.reshape(-1).astype(np.float32)


def global_distribution(hist: np.ndarray, n_colors: int, *, layout: str | None = None) -> np.ndarray:
    """The image's overall color distribution recovered from a (spatial) histogram, shape (n_colors,), sums to 1.

    Without ``layout`` every block is summed. With it, only blocks that split the image
    by place into equal areas are used -- the ``global`` block, else the cells of a
    grid -- because blocks of pixel classes (``bic``: interior and border pixels,
    each normalized on its own) do not weigh colors by their share of the image.

    Raises
    ------
    BadInputError
        If the layout is unknown or does not fit the histogram's length.
    """
    blocks = np.asarray(hist, dtype=np.float64).reshape(-1, n_colors)
    if layout is not None:
        parts = parse_layout(layout)
        if n_regions(layout) != len(blocks):
            raise BadInputError(f"a {layout!r} histogram has {n_regions(layout)} blocks, got {len(blocks)}")
        starts = np.cumsum([0] + [COMPONENTS[part] for part in parts])
        for wanted in ("global", "grid3", "grid2"):
            if wanted in parts:
                i = parts.index(wanted)
                blocks = blocks[starts[i] : starts[i + 1]]
                break
    total = blocks.sum(axis=0)
    return total / max(total.sum(), 1e-12)


def dominant_colors(hist: np.ndarray, n_colors: int, *, top: int = 8, layout: str | None = None) -> list[tuple[int, float]]:
    """The ``top`` codewords with the largest share of a histogram, as (code, share), largest first.

    The blocks are turned back into one global distribution first (see :func:`global_distribution`).
    """
    hist = global_distribution(hist, n_colors, layout=layout)
    hist /= max(hist.sum(), 1e-12)
    order = np.lexsort((np.arange(n_colors), -hist))[:top]
    return [(int(code), float(hist[code])) for code in order if hist[code] > 0]
