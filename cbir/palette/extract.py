"""Dominant colors of an image (its palette), and the orders a palette can be shown in.

:func:`extract_palette` clusters an image's colors in L*a*b* and reports every
cluster's center and share of the image. The work is bounded whatever the image
size: proportions are measured on a regular-grid subsample of at most
:data:`ANALYSIS_PIXELS` pixels (nearest-neighbour, so no blended colors appear),
k-means runs on at most :data:`CLUSTER_SAMPLE` of those pixels (merged into
distinct colors with counts as weights), and ward agglomerative clustering, whose
memory is quadratic in its input, on at most :data:`AGGLOMERATIVE_SAMPLE`.

The orders are in :mod:`cbir.palette.order`; the palette of an indexed image,
from its stored histogram, in :mod:`cbir.palette.indexed`.

A palette color as a dict (what ``cbir palette --json`` prints)::

    {"hex": "#dc1e1e", "rgb": [220, 30, 30], "lab": [48.2, 68.9, 50.1], "proportion": 0.42}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbir.color import lab_to_rgb, nearest_codewords, pack_rgb, rgb_to_lab
from cbir.errors import BadInputError
from cbir.palette.order import DEFAULT_SORT, check_sort, palette_order

METHODS = ("minibatch", "kmeans", "agglomerative")
DEFAULT_METHOD = "minibatch"
DEFAULT_K = 10
MAX_K = 256
#: Pixels (a regular grid over the image) whose colors are assigned to measure the proportions.
ANALYSIS_PIXELS = 262_144
#: Pixels clustered by k-means / mini-batch k-means.
CLUSTER_SAMPLE = 20_000
#: Pixels clustered by ward agglomerative clustering (its memory grows with the square of this).
AGGLOMERATIVE_SAMPLE = 2_000


@dataclass(frozen=True)
class PaletteColor:
    """One palette color.

    Attributes
    ----------
    lab : tuple of 3 float
        The cluster center in L*a*b*.
    rgb : tuple of 3 int
        The center as 8-bit sRGB (out-of-gamut values clipped).
    proportion : float
        Share of the image's pixels in this cluster.
    """

    lab: tuple[float, float, float]
    rgb: tuple[int, int, int]
    proportion: float

    @property
    def hex(self) -> str:
        """``#rrggbb``, lowercase."""
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)

    def to_dict(self) -> dict:
        """``{"hex", "rgb", "lab", "proportion"}``, JSON-ready (Lab rounded to 0.01)."""
        return {
            "hex": self.hex,
            "rgb": [int(v) for v in self.rgb],
            "lab": [round(float(v), 2) for v in self.lab],
            "proportion": float(self.proportion),
        }


@dataclass(frozen=True)
class Palette:
    """The dominant colors of an image, in display order.

    Attributes
    ----------
    colors : tuple of PaletteColor
        Proportions sum to 1.
    note : str or None
        Set when the image has fewer distinct colors than were asked for.
    """

    colors: tuple[PaletteColor, ...]
    note: str | None = None

    def __len__(self) -> int:
        return len(self.colors)

    @property
    def lab(self) -> np.ndarray:
        """Centers in L*a*b*, shape (n, 3) float64."""
        return np.array([c.lab for c in self.colors], dtype=np.float64).reshape(-1, 3)

    @property
    def rgb(self) -> np.ndarray:
        """Centers as sRGB, shape (n, 3) uint8."""
        return np.array([c.rgb for c in self.colors], dtype=np.uint8).reshape(-1, 3)

    @property
    def proportions(self) -> np.ndarray:
        """Shares, shape (n,) float64."""
        return np.array([c.proportion for c in self.colors], dtype=np.float64)

    def to_dict(self) -> dict:
        """``{"colors": [color.to_dict(), ...]}``, what ``cbir palette --json`` prints."""
        return {"colors": [c.to_dict() for c in self.colors]}


def check_k(k: object, *, name: str = "k") -> int:
    """``k`` as an int in 1..MAX_K.

    Raises
    ------
    BadInputError
        If ``k`` is not an integer in range.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise BadInputError(f"{name} must be an integer between 1 and {MAX_K}, got {k!r}")
    return int(k)


def check_rgb(rgb: object) -> np.ndarray:
    """``rgb`` as a non-empty uint8 (H, W, 3) array.

    Raises
    ------
    BadInputError
        If it has another dtype or shape.
    """
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or array.size == 0:
        raise BadInputError(f"expected a uint8 RGB image of shape (H, W, 3), got {array.dtype} {array.shape}")
    return array


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise BadInputError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")
    return value


def grid_subsample(rgb: np.ndarray, max_pixels: int = ANALYSIS_PIXELS) -> np.ndarray:
    """Pixels on a regular grid over the image, at most about ``max_pixels`` of them, shape (m, 3).

    Every pixel when the image is small enough; otherwise every s-th pixel of every
    s-th row. Taking pixels rather than averaging keeps the image's own colors.
    """
    height, width = rgb.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(height * width / max_pixels))))
    return np.ascontiguousarray(rgb[::step, ::step]).reshape(-1, 3)


def _unpack(packed: np.ndarray) -> np.ndarray:
    packed = packed.astype(np.int64)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)


def _fit_centers(
    distinct_lab: np.ndarray,
    counts: np.ndarray,
    inverse: np.ndarray,
    *,
    k: int,
    method: str,
    seed: int,
) -> np.ndarray:
    """Cluster centers (k, 3) in Lab for colors ``distinct_lab`` seen ``counts`` times (more than k of them)."""
    rng = np.random.default_rng(seed)
    if method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        n = min(len(inverse), AGGLOMERATIVE_SAMPLE)
        codes = inverse[rng.choice(len(inverse), size=n, replace=False)] if n < len(inverse) else inverse
        seen = len(np.unique(codes))
        if seen < k:  # fewer colors in the sample than clusters: rare colors it missed join once each
            missing = np.setdiff1d(np.arange(len(distinct_lab)), codes)
            codes = np.concatenate([codes, missing[: k - seen]])
        points = distinct_lab[codes]
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points)
        sums = np.zeros((k, 3))
        np.add.at(sums, labels, points)
        return sums / np.bincount(labels, minlength=k)[:, None]

    if len(distinct_lab) <= CLUSTER_SAMPLE:
        points, weights = distinct_lab, counts.astype(np.float64)
    else:
        sample = inverse[rng.choice(len(inverse), size=min(len(inverse), CLUSTER_SAMPLE), replace=False)]
        codes, sample_counts = np.unique(sample, return_counts=True)
        if len(codes) < k:  # the sample missed colors k-means needs: take them all
            points, weights = distinct_lab, counts.astype(np.float64)
        else:
            points, weights = distinct_lab[codes], sample_counts.astype(np.float64)
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if method == "kmeans":
        model: KMeans | MiniBatchKMeans = KMeans(n_clusters=k, n_init=4, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=4096, random_state=seed)
    model.fit(points, sample_weight=weights)
    if len(np.unique(model.labels_)) < k:
        # Mini-batch k-means can leave clusters empty when a few colors carry nearly all the
        # weight; Lloyd iterations from its centers move empty clusters to unserved colors.
        model = KMeans(n_clusters=k, init=model.cluster_centers_, n_init=1, random_state=seed)
        model.fit(points, sample_weight=weights)
    return np.asarray(model.cluster_centers_, dtype=np.float64)


def extract_palette(
    rgb: np.ndarray,
    *,
    k: int = DEFAULT_K,
    method: str = DEFAULT_METHOD,
    sort: str = DEFAULT_SORT,
    seed: int = 0,
) -> Palette:
    """The ``k`` dominant colors of an image, clustered in L*a*b*, with their shares.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        The image, at any resolution (the work is bounded, see the module docstring).
    k : int
        Number of colors, 1..256.
    method : {"minibatch", "kmeans", "agglomerative"}
        Mini-batch k-means, k-means (Lloyd), or ward agglomerative clustering.
    sort : str
        One of :data:`cbir.palette.order.SORT_ORDERS`.
    seed : int
        Seeds sampling and clustering; the same image and seed give the same palette.

    Returns
    -------
    Palette
        At most ``k`` colors (clusters that received no pixel are dropped), proportions
        summing to 1. When the image has ``k`` or fewer distinct colors, the palette is
        exactly those colors, and ``note`` says so if there are fewer than ``k``.

    Raises
    ------
    BadInputError
        If the image is not uint8 (H, W, 3), or ``k``, ``method`` or ``sort`` is invalid.
    """
    rgb = check_rgb(rgb)
    k = check_k(k)
    _check_choice(method, METHODS, "clustering method")
    check_sort(sort)
    pixels = grid_subsample(rgb)
    distinct, inverse, counts = np.unique(pack_rgb(pixels), return_inverse=True, return_counts=True)
    distinct_lab = rgb_to_lab(_unpack(distinct))
    note = None
    if len(distinct) <= k:
        centers, shares = distinct_lab, counts.astype(np.float64)
        if len(distinct) < k:
            note = (
                f"the image has only {len(distinct)} distinct color{'s' if len(distinct) != 1 else ''}; "
                f"the palette has {len(distinct)} instead of {k}"
            )
    else:
        centers = _fit_centers(distinct_lab, counts, inverse.reshape(-1), k=k, method=method, seed=seed)
        labels = nearest_codewords(distinct_lab, centers)
        shares = np.bincount(labels, weights=counts, minlength=len(centers)).astype(np.float64)
        kept = shares > 0
        centers, shares = centers[kept], shares[kept]
    shares = shares / shares.sum()
    order = palette_order(centers, shares, sort)
    rgb_centers = lab_to_rgb(centers)
    colors = tuple(
        PaletteColor(
            lab=(float(centers[i, 0]), float(centers[i, 1]), float(centers[i, 2])),
            rgb=(int(rgb_centers[i, 0]), int(rgb_centers[i, 1]), int(rgb_centers[i, 2])),
            proportion=float(shares[i]),
        )
        for i in order
    )
    return Palette(colors=colors, note=note)


def sort_palette(palette: Palette, order: str) -> Palette:
    """The same colors in another order (see :data:`cbir.palette.order.SORT_ORDERS`).

    Raises
    ------
    BadInputError
        If ``order`` is unknown.
    """
    check_sort(order)
    if not len(palette):
        return palette
    indices = palette_order(palette.lab, palette.proportions, order)
    return Palette(colors=tuple(palette.colors[i] for i in indices), note=palette.note)
