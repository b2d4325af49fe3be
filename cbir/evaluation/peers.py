"""Two peer descriptors, re-implemented as baselines to measure cbir against.

* ``rgb-grid3`` -- pochih/CBIR's color feature: an RGB histogram of 12x12x12 equal bins
  in each cell of a 3x3 grid, the 9 cell histograms concatenated and the whole
  normalized to sum to 1 (so each cell weighs by its pixel count); L1 distance.
* ``hsv-regions`` -- the color descriptor of PyImageSearch's 2014 guide "The complete
  guide to building an image search engine": an OpenCV HSV histogram of 8x12x3 bins in
  each of four corner regions with a centred ellipse (axes 75% of the image) cut out
  of them, and in the ellipse; each region's histogram L2-normalized (``cv2.normalize``);
  chi-squared distance.

They are not codebook histograms, so they do not go through the store: :class:`PeerIndex`
keeps the histograms of a collection in memory and ranks it by brute force with the
distance functions of :mod:`cbir.distances`, ties broken by path order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cbir.distances import Distance, chi2, l1
from cbir.errors import BadInputError
from cbir.images import load_image

#: Peers analyse images at up to this longer side (Wang's 384x256 photos stay whole).
PEER_MAX_SIDE = 512


def rgb_grid_histogram(rgb: np.ndarray, *, bins: int = 12, cells: int = 3) -> np.ndarray:
    """pochih/CBIR's region RGB histogram.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    bins : int
        Equal bins per channel (value v falls in bin ``v * bins // 256``).
    cells : int
        The grid is ``cells`` x ``cells``; cell borders at ``round(linspace(0, H, cells + 1))``.

    Returns
    -------
    ndarray, shape (cells * cells * bins**3,), float32
        Cell histograms in row-major cell order, summing to 1 together.

    Raises
    ------
    BadInputError
        If ``rgb`` is not a non-empty uint8 (H, W, 3) array.
    """
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    level = (rgb.astype(np.int64) * bins) // 256
    codes = (level[..., 0] * bins + level[..., 1]) * bins + level[..., 2]
    rows = np.around(np.linspace(0, height, cells + 1)).astype(int)
    cols = np.around(np.linspace(0, width, cells + 1)).astype(int)
    blocks = [
        np.bincount(codes[rows[r] : rows[r + 1], cols[c] : cols[c + 1]].reshape(-1), minlength=bins**3)
        for r in range(cells)
        for c in range(cells)
    ]
    hist = np.concatenate(blocks).astype(np.float64)
    return (hist / hist.sum()).astype(np.float32)


def hsv_region_histogram(rgb: np.ndarray, *, bins: tuple[int, int, int] = (8, 12, 3)) -> np.ndarray:
    """PyImageSearch's 2014 region HSV histogram (four corners minus a centre ellipse, then the ellipse).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    bins : (int, int, int)
        Bins over OpenCV's H (0..180), S and V (0..256).

    Returns
    -------
    ndarray, shape (5 * prod(bins),), float32
        Top-left, top-right, bottom-right, bottom-left, ellipse; each block of unit L2 norm
        (or zero when the region is empty).

    Raises
    ------
    BadInputError
        If ``rgb`` is not a non-empty uint8 (H, W, 3) array.
    """
    rgb = _check_rgb(rgb)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, w = hsv.shape[:2]
    cx, cy = int(w * 0.5), int(h * 0.5)
    segments = [(0, cx, 0, cy), (cx, w, 0, cy), (cx, w, cy, h), (0, cx, cy, h)]
    axes = (int(w * 0.75) // 2, int(h * 0.75) // 2)
    ellipse = np.zeros((h, w), dtype=np.uint8)
    cv2.ellipse(ellipse, (cx, cy), axes, 0, 0, 360, 255, -1)
    features = []
    for x0, x1, y0, y1 in segments:
        corner = np.zeros((h, w), dtype=np.uint8)
        cv2.rectangle(corner, (x0, y0), (x1, y1), 255, -1)
        features.append(_region_histogram(hsv, cv2.subtract(corner, ellipse), bins))
    features.append(_region_histogram(hsv, ellipse, bins))
    return np.concatenate(features).astype(np.float32)


def _region_histogram(hsv: np.ndarray, mask: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    hist = cv2.calcHist([hsv], [0, 1, 2], mask, list(bins), [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, hist).reshape(-1)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
        raise BadInputError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


@dataclass(frozen=True)
class Peer:
    """A peer baseline: how an image becomes a vector, and the distance that ranks them."""

    name: str
    describe: Callable[[np.ndarray], np.ndarray]
    distance: Distance
    metric: str
    summary: str


PEERS: dict[str, Peer] = {
    "rgb-grid3": Peer(
        "rgb-grid3", rgb_grid_histogram, l1, "l1",
        "pochih/CBIR: RGB 12x12x12 histogram on a 3x3 grid, L1",
    ),
    "hsv-regions": Peer(
        "hsv-regions", hsv_region_histogram, chi2, "chi2",
        "PyImageSearch 2014: HSV 8x12x3 histogram, 4 corners + centre ellipse, chi2",
    ),
}


def peer(name: str) -> Peer:
    """The peer baseline called ``name``.

    Raises
    ------
    BadInputError
        If no peer has that name.
    """
    if name not in PEERS:
        raise BadInputError(f"unknown peer descriptor {name!r}; choose from {', '.join(PEERS)}")
    return PEERS[name]


class PeerIndex:
    """The histograms of a collection under a peer descriptor, ranked by brute force.

    Parameters
    ----------
    peer : Peer
    paths : sequence of str
        The collection; rankings list these paths, ties broken by this order.
    vectors : ndarray, shape (n, d)
    """

    def __init__(self, peer: Peer, paths: Sequence[str], vectors: np.ndarray) -> None:
        if len(paths) != len(vectors):
            raise BadInputError(f"{len(paths)} paths but {len(vectors)} vectors")
        self.peer = peer
        self.paths = list(paths)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self._row = {path: i for i, path in enumerate(self.paths)}

    @classmethod
    def build(
        cls,
        peer: Peer,
        paths: Iterable[str | os.PathLike[str]],
        *,
        max_side: int | None = PEER_MAX_SIDE,
        progress: Callable[[int, int], None] | None = None,
    ) -> PeerIndex:
        """Describe every image file (read with :func:`cbir.images.load_image`).

        Raises
        ------
        BadImageError
            If a file cannot be read as an image.
        BadInputError
            If ``paths`` is empty.
        """
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise BadInputError("no images to describe")
        vectors = []
        for done, path in enumerate(paths, 1):
            vectors.append(peer.describe(load_image(path, max_side=max_side)))
            if progress is not None:
                progress(done, len(paths))
        return cls(peer, paths, np.stack(vectors))

    def rank(self, query: np.ndarray) -> list[str]:
        """Every path of the collection, nearest to the query vector first (ties: collection order)."""
        distances = self.peer.distance(query, self.vectors)
        order = np.lexsort((np.arange(len(distances)), distances))
        return [self.paths[i] for i in order]

    def rank_paths(self, queries: Sequence[str]) -> list[list[str]]:
        """Rankings of collection images given by path (their stored vectors are the queries).

        Raises
        ------
        BadInputError
            If a query is not in the collection.
        """
        out = []
        for query in queries:
            if query not in self._row:
                raise BadInputError(f"{query} is not in the collection")
            out.append(self.rank(self.vectors[self._row[query]]))
        return out
