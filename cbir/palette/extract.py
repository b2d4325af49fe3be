"""Dominant colors of an image (its palette), and the orders a palette can be shown in.

:func:`extract_palette` clusters an image's colors in L*a*b* and reports every
cluster's center and share of the image. The work is bounded whatever the image
size: proportions are measured on a regular-grid subsample of at most
:data:`ANALYSIS_PIXELS` pixels (nearest-neighbour, so no blended colors appear),
k-means runs on at most :data:`CLUSTER_SAMPLE` of those pixels (merged into
distinct colors with counts as weights), and ward agglomerative clustering, whose
memory is quadratic in its input, on at most :data:`AGGLOMERATIVE_SAMPLE`.

:func:`palette_from_histogram` and :func:`indexed_palette` give the palette of an
indexed image from its stored histogram, without decoding the file again.

A palette color as a dict (what ``cbir palette --json`` prints and what the
histogram functions return)::

    {"hex": "#dc1e1e", "rgb": [220, 30, 30], "lab": [48.2, 68.9, 50.1], "proportion": 0.42}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cbir.codebook import Codebook
from cbir.color import lab_to_rgb, nearest_codewords, pack_rgb, rgb_to_lab
from cbir.errors import BadInputError, CodebookMismatchError, StoreError
from cbir.histogram import dominant_colors

if TYPE_CHECKING:
    from cbir.store import Store

METHODS = ("minibatch", "kmeans", "agglomerative")
DEFAULT_METHOD = "minibatch"
#: ``proportion`` largest share first; ``lightness`` dark to light (L*); ``hue`` by hue angle
#: (grays last, dark to light); ``red``/``green``/``blue`` by an sRGB channel and ``a``/``b`` by
#: a* (green -> red) or b* (blue -> yellow), ascending; ``spread`` along the Lab axis of largest
#: spread, dark end first; ``perceptual`` a shortest path through the colors in Lab, so similar
#: colors sit side by side.
SORT_ORDERS = ("proportion", "lightness", "hue", "red", "green", "blue", "a", "b", "spread", "perceptual")
DEFAULT_SORT = "proportion"
DEFAULT_K = 10
MAX_K = 256
#: Pixels (a regular grid over the image) whose colors are assigned to measure the proportions.
ANALYSIS_PIXELS = 262_144
#: Pixels clustered by k-means / mini-batch k-means.
CLUSTER_SAMPLE = 20_000
#: Pixels clustered by ward agglomerative clustering (its memory grows with the square of this).
AGGLOMERATIVE_SAMPLE = 2_000
#: Below this chroma (C*) a color counts as gray in the hue order.
ACHROMATIC_CHROMA = 8.0
#: Up to this many colors the perceptual order is the exact shortest path.
EXACT_PATH_COLORS = 10


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
        One of :data:`SORT_ORDERS`.
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
    _check_choice(sort, SORT_ORDERS, "sort order")
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
    """The same colors in another order (see :data:`SORT_ORDERS`).

    Raises
    ------
    BadInputError
        If ``order`` is unknown.
    """
    _check_choice(order, SORT_ORDERS, "sort order")
    if not len(palette):
        return palette
    indices = palette_order(palette.lab, palette.proportions, order)
    return Palette(colors=tuple(palette.colors[i] for i in indices), note=palette.note)


# --- orders -----------------------------------------------------------------------


def path_length(lab: np.ndarray) -> float:
    """Total Euclidean length of the path through Lab colors in the given order."""
    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    return float(np.linalg.norm(np.diff(lab, axis=0), axis=1).sum())


def palette_order(lab: np.ndarray, proportions: np.ndarray, order: str) -> np.ndarray:
    """Display order of palette colors.

    Parameters
    ----------
    lab : ndarray, shape (n, 3)
        Colors in L*a*b*.
    proportions : ndarray, shape (n,)
        Their shares.
    order : str
        One of :data:`SORT_ORDERS`; ties are broken by L*, then by input position.

    Returns
    -------
    ndarray, shape (n,), int64
        A permutation of ``range(n)``: ``lab[result]`` is in the requested order.

    Raises
    ------
    BadInputError
        If the shapes disagree or ``order`` is unknown.
    """
    lab = np.asarray(lab, dtype=np.float64)
    proportions = np.asarray(proportions, dtype=np.float64)
    if lab.ndim != 2 or lab.shape[1] != 3 or proportions.shape != (len(lab),):
        raise BadInputError(f"expected lab (n, 3) and proportions (n,), got {lab.shape} and {proportions.shape}")
    _check_choice(order, SORT_ORDERS, "sort order")
    n = len(lab)
    position = np.arange(n)
    lightness = lab[:, 0]
    if n <= 1:
        return position.astype(np.int64)
    if order == "proportion":
        keys: tuple[np.ndarray, ...] = (-proportions,)
    elif order == "lightness":
        keys = (lightness,)
    elif order == "hue":
        hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360.0
        gray = np.hypot(lab[:, 1], lab[:, 2]) < ACHROMATIC_CHROMA
        keys = (gray, np.where(gray, 0.0, hue))
    elif order in ("red", "green", "blue"):
        keys = (lab_to_rgb(lab)[:, ("red", "green", "blue").index(order)].astype(np.float64),)
    elif order in ("a", "b"):
        keys = (lab[:, 1 if order == "a" else 2],)
    elif order == "spread":
        keys = (_spread_projection(lab),)
    else:
        return _shortest_path(lab)
    # np.lexsort sorts by the last key first.
    return np.lexsort((position, lightness, *reversed(keys))).astype(np.int64)


def _spread_projection(lab: np.ndarray) -> np.ndarray:
    """Coordinates along the first principal axis of the colors, oriented dark to light."""
    centered = lab - lab.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    axis = vt[0]
    # A fixed orientation: L* increasing along the axis (or a*, then b*, when L* is flat).
    for component in axis:
        if abs(component) > 1e-9:
            if component < 0:
                axis = -axis
            break
    return np.round(centered @ axis, 9)


def _distances(lab: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=-1)


def _exact_path(dist: np.ndarray) -> list[int]:
    """Shortest open path visiting every node once (Held-Karp dynamic programming, n <= ~12)."""
    n = len(dist)
    full = 1 << n
    cost = np.full((full, n), np.inf)
    parent = np.full((full, n), -1, dtype=np.int64)
    for j in range(n):
        cost[1 << j, j] = 0.0
    for mask in range(1, full):
        row = cost[mask]
        if not np.isfinite(row).any():
            continue
        # best[i] = min over ends j in mask of row[j] + dist[j, i]
        through = row[:, None] + dist
        best_end = np.argmin(through, axis=0)
        best = through[best_end, np.arange(n)]
        for i in range(n):
            if mask >> i & 1:
                continue
            target = mask | 1 << i
            if best[i] < cost[target, i] - 1e-12:
                cost[target, i] = best[i]
                parent[target, i] = best_end[i]
    mask = full - 1
    end = int(np.argmin(cost[mask]))
    path = []
    while end >= 0:
        path.append(end)
        previous = int(parent[mask, end])
        mask &= ~(1 << end)
        end = previous
    return path[::-1]


def _two_opt(path: list[int], dist: np.ndarray) -> list[int]:
    """Improve an open path by segment reversals until none shortens it."""
    route = np.array(path, dtype=np.int64)
    n = len(route)
    improved = True
    while improved:
        improved = False
        for i in range(n - 1):
            # Reverse route[i..j]: edges (i-1, i) and (j, j+1) become (i-1, j) and (i, j+1).
            j = np.arange(i + 1, n)
            before = np.zeros(len(j))
            after = np.zeros(len(j))
            if i > 0:
                before += dist[route[i - 1], route[i]]
                after += dist[route[i - 1], route[j]]
            inner = j < n - 1
            nxt = route[np.minimum(j + 1, n - 1)]
            before += np.where(inner, dist[route[j], nxt], 0.0)
            after += np.where(inner, dist[route[i], nxt], 0.0)
            gain = before - after
            best = int(np.argmax(gain))
            if gain[best] > 1e-9:
                route[i : j[best] + 1] = route[i : j[best] + 1][::-1]
                improved = True
    return route.tolist()


def _shortest_path(lab: np.ndarray) -> np.ndarray:
    """A shortest (exact for few colors, else 2-opt) open path through the colors, dark end first."""
    n = len(lab)
    dist = _distances(lab)
    if n <= EXACT_PATH_COLORS:
        path = _exact_path(dist)
    else:
        # Start from the orders people would otherwise use, plus greedy nearest-neighbour
        # walks from the darkest and lightest colors; keep the shortest after 2-opt. It is
        # never longer than the lightness order.
        starts = [np.argsort(lab[:, 0], kind="stable").tolist()]
        for first in (int(np.argmin(lab[:, 0])), int(np.argmax(lab[:, 0]))):
            walk, left = [first], set(range(n)) - {first}
            while left:
                candidates = sorted(left)
                nearest = candidates[int(np.argmin(dist[walk[-1], candidates]))]
                walk.append(nearest)
                left.remove(nearest)
            starts.append(walk)
        routes = [_two_opt(start, dist) for start in starts]
        path = min(routes, key=lambda route: float(dist[route[:-1], route[1:]].sum()))
    if lab[path[0], 0] > lab[path[-1], 0]:
        path = path[::-1]
    return np.array(path, dtype=np.int64)


# --- palettes of indexed images -----------------------------------------------------


def palette_from_histogram(
    histogram: np.ndarray,
    codebook: Codebook,
    *,
    k: int = 8,
    sort: str = DEFAULT_SORT,
    layout: str | None = None,
) -> list[dict]:
    """The palette of an indexed image, from its stored histogram (no decoding).

    Spatial blocks are summed into one global distribution, the ``k`` codewords with
    the largest shares are kept and their shares renormalized to sum to 1.

    Parameters
    ----------
    histogram : ndarray, shape (n_regions * n_colors,)
        A histogram made with ``codebook`` (any spatial layout).
    codebook : Codebook
        The index's codebook.
    k : int
        Most colors to return, 1..256.
    sort : str
        One of :data:`SORT_ORDERS`.
    layout : str, optional
        The histogram's spatial layout; with it, pixel-class blocks (``bic``) are not
        mistaken for shares of the image (see :func:`cbir.histogram.global_distribution`).

    Returns
    -------
    list of dict
        ``{"hex": "#rrggbb", "rgb": [r, g, b], "lab": [L, a, b], "proportion": p}`` per color,
        the shape ``cbir palette --json`` prints; fewer than ``k`` when fewer codewords occur.

    Raises
    ------
    CodebookMismatchError
        If the histogram's length is not a multiple of the codebook size.
    BadInputError
        If ``k`` or ``sort`` is invalid, or the histogram is empty.
    """
    k = check_k(k)
    _check_choice(sort, SORT_ORDERS, "sort order")
    values = np.asarray(histogram, dtype=np.float64).reshape(-1)
    n_colors = codebook.n_colors
    if values.size == 0 or values.size % n_colors:
        raise CodebookMismatchError(
            f"a histogram of length {values.size} was not made with this {n_colors}-color codebook"
        )
    top = dominant_colors(values, n_colors, top=k, layout=layout)
    if not top:
        raise BadInputError("the histogram is empty (all zeros)")
    codes = np.array([code for code, _ in top], dtype=np.int64)
    shares = np.array([share for _, share in top], dtype=np.float64)
    shares /= shares.sum()
    centers = codebook.centers[codes].astype(np.float64)
    rgb = lab_to_rgb(centers)
    colors = [
        PaletteColor(
            lab=(float(centers[i, 0]), float(centers[i, 1]), float(centers[i, 2])),
            rgb=(int(rgb[i, 0]), int(rgb[i, 1]), int(rgb[i, 2])),
            proportion=float(shares[i]),
        )
        for i in palette_order(centers, shares, sort)
    ]
    return [color.to_dict() for color in colors]


def indexed_palette(store: Store, image_id: int, *, k: int = 8, sort: str = DEFAULT_SORT) -> list[dict]:
    """The palette of the image stored under ``image_id`` (see :func:`palette_from_histogram`).

    Parameters
    ----------
    store : cbir.store.Store
        An open index.
    image_id : int
        The image's row id (``Result.id`` of a search).

    Raises
    ------
    StoreError
        If the index has no codebook or no image with that id.
    """
    found = store.codebook()
    if found is None:
        raise StoreError(f"{store.display} has no images indexed yet")
    row = store.image(int(image_id))
    if row is None:
        raise StoreError(f"{store.display} has no image with id {image_id}")
    shares = area_shares(row.path, found[1], found[2])
    if shares is not None:
        return palette_from_histogram(shares, found[1], k=k, sort=sort)
    from cbir.store import histogram_from_bytes

    return palette_from_histogram(histogram_from_bytes(row.histogram), found[1], k=k, sort=sort, layout=found[2])


def area_shares(path: str, codebook: Codebook, layout: str) -> np.ndarray | None:
    """Every codeword's share of an indexed image's pixels, read again from its file, when the index's
    layout does not keep them (pixel-class blocks only, as the default); None when it does, or when the
    file can no longer be read (then the stored blocks give an estimate)."""
    from cbir.descriptor import Descriptor
    from cbir.errors import BadImageError
    from cbir.histogram import keeps_areas
    from cbir.images import DEFAULT_MAX_SIDE

    if keeps_areas(layout):
        return None
    descriptor = Descriptor(codebook, layout=layout, max_side=int(codebook.params.get("max_side", DEFAULT_MAX_SIDE)))
    try:
        return descriptor.shares_of_file(path)
    except BadImageError:
        return None
