"""Codes -> L1-normalized color histograms, globally or per region (spatial layouts).

A layout is one or more *components* joined by ``+`` (e.g. ``"global+grid2"``):

``global``  the whole image;
``grid2``   a 2x2 grid of cells; ``grid3`` a 3x3 grid;
``center``  an ellipse at the centre plus the four corner quadrants around it
            (the region scheme of PyImageSearch's 2014 search-engine guide);
``bic``     two blocks by pixel class rather than by place: *interior* pixels (the
            four neighbours have the same code) and *border* pixels (Stehling et al.,
            "A compact and efficient image retrieval approach based on border/interior
            pixel classification", CIKM 2002) -- a cheap hint of texture, still color only;
``classes`` three blocks by how many of the four neighbours share the pixel's code:
            all four (*interior*), three (*edge*: a straight boundary), two or fewer
            (*detail*: corners, thin lines, texture) -- BIC with its border class split;
``grid3-classes`` those three classes in each cell of a 3x3 grid (27 blocks, cell-major).

For the pixel classes, neighbours outside the image count as sharing the code.
Every region's histogram is normalized to sum to 1 and weighted so that each
component carries an equal share and the concatenated vector sums to 1.
Equal mass per region is what the quadratic-form embedding needs.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from cbir.errors import BadInputError

#: What a pixel's region depends on: its place (grids, centre ellipse) or its neighbours (pixel classes).
FACTORS = {"grid2": 4, "grid3": 9, "center": 5, "bic": 2, "classes": 3}
#: Each component splits the pixels by the factors listed (row-major, in this order).
COMPONENT_FACTORS: dict[str, tuple[str, ...]] = {
    "global": (),
    "grid2": ("grid2",),
    "grid3": ("grid3",),
    "center": ("center",),
    "bic": ("bic",),
    "classes": ("classes",),
    "grid3-classes": ("grid3", "classes"),
}
COMPONENTS = {name: int(np.prod([FACTORS[f] for f in factors])) for name, factors in COMPONENT_FACTORS.items()}
#: Measured on Wang and on two near-duplicate sets (README, "Retrieval accuracy"): the three pixel
#: classes in every cell of a 3x3 grid, plus the classes of the whole image, beat bic+grid3 on all.
DEFAULT_LAYOUT = "grid3-classes+classes"


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
    return rows[:, None] * cells + cols[None, :]  # (H, W) by broadcasting: cheap enough for any image size


def _center_labels(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    inside = ((y - cy) / (0.375 * height)) ** 2 + ((x - cx) / (0.375 * width)) ** 2 <= 1.0
    corner = (y > cy).astype(np.int64) * 2 + (x > cx).astype(np.int64)
    return np.where(inside, 4, corner)


def _as_cv_codes(codes: np.ndarray) -> np.ndarray:
    """Codes in a type OpenCV's histogram takes (uint8 up to 256 colors, else uint16)."""
    if codes.dtype in (np.uint8, np.uint16):
        return codes
    return codes.astype(np.uint8 if codes.size == 0 or codes.max() < 256 else np.uint16)


def _same_neighbours(codes: np.ndarray) -> np.ndarray:
    """How many of the 4 neighbours share each pixel's code (outside the image counts as sharing), uint8."""
    same = np.zeros(codes.shape, dtype=np.uint8)
    vertical = codes[1:] == codes[:-1]
    same[1:] += vertical
    same[:-1] += vertical
    horizontal = codes[:, 1:] == codes[:, :-1]
    same[:, 1:] += horizontal
    same[:, :-1] += horizontal
    same[0] += 1
    same[-1] += 1
    same[:, 0] += 1
    same[:, -1] += 1
    return same


def border_labels(codes: np.ndarray) -> np.ndarray:
    """BIC pixel classes of a code image: 0 interior (4-neighbours share its code), 1 border; shape (H, W) int64.

    Pixels on the image edge are compared with their neighbours inside the image only.
    """
    return (_same_neighbours(np.asarray(codes)) < 4).astype(np.int64)


def _classes(same: np.ndarray) -> np.ndarray:
    return (same < 4).view(np.uint8) + (same < 3).view(np.uint8)


def pixel_classes(codes: np.ndarray) -> np.ndarray:
    """The ``classes`` of a code image: 0 interior (4 neighbours share its code), 1 edge (3), 2 detail (<= 2);
    shape (H, W) uint8. Neighbours outside the image count as sharing the code."""
    return _classes(_same_neighbours(np.asarray(codes)))


def _factor_order(layout: str) -> tuple[str, ...]:
    """The factors a layout uses, in order of first use: the axes of its joint histogram."""
    order: list[str] = []
    for part in parse_layout(layout):
        order += [f for f in COMPONENT_FACTORS[part] if f not in order]
    return tuple(order)


@lru_cache(maxsize=256)  # a collection has images of many sizes: the entries are made fast, kept small
def _places(layout: str, height: int, width: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Each pixel's index in the joint grid of the layout's factors (row-major) counting only the place
    factors, shape (H, W) uint8 or uint16; and the steps of the bic and classes factors (0 when unused)."""
    order = _factor_order(layout)
    sizes = [FACTORS[f] for f in order]
    dtype = np.uint8 if np.prod(sizes) <= 256 else np.uint16
    place = np.zeros((height, width), dtype=dtype)
    steps = {"bic": 0, "classes": 0}
    for factor in order:
        place *= FACTORS[factor]
        for name in steps:
            steps[name] *= FACTORS[factor]
        if factor in steps:
            steps[factor] = 1
        elif factor == "center":
            place += _center_labels(height, width).astype(dtype)
        else:
            place += _grid_labels(height, width, int(factor[-1])).astype(dtype)
    place.setflags(write=False)  # cached and shared: never modified
    return place, (steps["bic"], steps["classes"])


@lru_cache(maxsize=64)
def _marginals(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The 0/1 matrix (n_regions, joint places) that sums the joint histogram's rows into every
    component's blocks (in the component's factor order, row-major), and the region weights (n_regions, 1)."""
    order = _factor_order(layout)
    sizes = [FACTORS[f] for f in order]
    places = int(np.prod(sizes))
    axes = np.indices(sizes).reshape(len(sizes), places)  # each joint place's index along every factor
    blocks = []
    for part in parse_layout(layout):
        region = np.zeros(places, dtype=np.int64)
        for factor in COMPONENT_FACTORS[part]:
            region = region * FACTORS[factor] + axes[order.index(factor)]
        block = np.zeros((COMPONENTS[part], places))
        block[region, np.arange(places)] = 1.0
        blocks.append(block)
    matrix, weights = np.concatenate(blocks), region_weights(layout)[:, None]
    matrix.setflags(write=False)
    weights.setflags(write=False)
    return matrix, weights


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
    codes = _as_cv_codes(codes)
    marginals, weights = _marginals(layout)
    places = marginals.shape[1]  # the joint grid of the layout's factors
    place, (bic_step, classes_step) = _places(layout, *codes.shape)
    if bic_step or classes_step:
        same = _same_neighbours(codes)
        place = place.copy()
        if bic_step:
            place += (same < 4).view(np.uint8).astype(place.dtype) * place.dtype.type(bic_step)
        if classes_step:
            place += _classes(same).astype(place.dtype) * place.dtype.type(classes_step)
    if codes.dtype != place.dtype:
        codes, place = codes.astype(np.uint16), place.astype(np.uint16)
    # One pass over the pixels (OpenCV): the joint histogram of every factor and the code, whose
    # marginals are the components' histograms. Counts are exact up to 2**24 per bin.
    joint = cv2.calcHist([place, codes], [0, 1], None, [places, n_colors], [0, places, 0, n_colors])
    joint = joint.astype(np.float64)
    counts = marginals @ joint  # every component's blocks: sums of joint rows
    sums = counts.sum(axis=1, keepdims=True)
    empty = sums[:, 0] == 0
    if empty.any():
        whole = joint.sum(axis=0)
        counts[empty] = whole / whole.sum()
        sums[empty] = 1.0
    stacked = counts / sums * weights
    return stacked.reshape(-1).astype(np.float32)


#: Components whose blocks split the image into equal areas, in the order global_distribution prefers them.
_AREA_COMPONENTS = ("global", "grid3", "grid2")


def keeps_areas(layout: str) -> bool:
    """Whether a layout has blocks that split the image into equal areas (global, grid2, grid3), from
    which :func:`global_distribution` recovers the image's color shares exactly."""
    return any(part in _AREA_COMPONENTS for part in parse_layout(layout))


def global_distribution(hist: np.ndarray, n_colors: int, *, layout: str | None = None) -> np.ndarray:
    """The image's overall color distribution recovered from a (spatial) histogram, shape (n_colors,), sums to 1.

    Without ``layout`` every block is summed. With it, only blocks that split the image
    by place into equal areas are used -- the ``global`` block, else the cells of a
    grid -- because blocks of pixel classes (``bic``, ``classes``: each normalized on
    its own) do not weigh colors by their share of the image. A layout made only of
    pixel-class blocks (the default, ``grid3-classes+classes``) has no such block: its
    blocks are summed, so each pixel class weighs the same and the shares are only an
    estimate of the image's.

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
        for wanted in _AREA_COMPONENTS:
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
