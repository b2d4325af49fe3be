"""Histogram distances as pure functions ``(q (d,), X (n, d)) -> (n,)`` in float64.

All assume L1-normalized histograms of equal total mass (what :mod:`cbir.histogram`
makes). Smaller is more similar; ``d(x, x) == 0`` for every metric.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from cbir.errors import BadInputError

Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _shaped(q: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q as float64 (d,) and X as a 2-D (n, d) array of its own dtype (not copied), or a named error."""
    q = np.asarray(q, dtype=np.float64)
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[None, :]
    if q.ndim != 1 or X.ndim != 2 or X.shape[1] != q.shape[0]:
        raise BadInputError(f"expected q of shape (d,) and X of shape (n, d), got {q.shape} and {X.shape}")
    return q, X


def _prepare(q: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, X = _shaped(q, X)
    return q, X.astype(np.float64, copy=False)


def chi2(q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Chi-squared distance ``0.5 * sum((x - y)**2 / (x + y))``, with 0/0 taken as 0."""
    q, X = _prepare(q, X)
    total = q + X
    diff = (q - X) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(total > 0, diff / np.where(total > 0, total, 1.0), 0.0)
    return 0.5 * terms.sum(axis=1)


def l1(q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Manhattan distance ``sum(|x - y|)``."""
    q, X = _prepare(q, X)
    return np.abs(q - X).sum(axis=1)


def l2(q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Euclidean distance ``sqrt(sum((x - y)**2))``."""
    q, X = _prepare(q, X)
    return np.sqrt(((q - X) ** 2).sum(axis=1))


def intersection(q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Histogram-intersection distance ``1 - sum(min(x, y))`` (Swain & Ballard), clipped at 0."""
    q, X = _prepare(q, X)
    return np.maximum(1.0 - np.minimum(q, X).sum(axis=1), 0.0)


def hellinger(q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Hellinger distance ``sqrt(0.5 * sum((sqrt(x) - sqrt(y))**2))``, in 0..1."""
    q, X = _prepare(q, X)
    return np.sqrt(0.5 * ((np.sqrt(q) - np.sqrt(X)) ** 2).sum(axis=1))


def qfd(q: np.ndarray, X: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Quadratic-form distance ``sqrt((x - y)^T A (x - y))`` (QBIC).

    Parameters
    ----------
    similarity : ndarray, shape (k, k)
        Bin similarity A. When d is a multiple of k (spatial layouts) A applies to
        each k-bin region block separately (block-diagonal).
    """
    q, X = _prepare(q, X)
    A = np.asarray(similarity, dtype=np.float64)
    k = A.shape[0]
    if A.shape != (k, k) or q.shape[0] % k:
        raise BadInputError(f"similarity of shape {A.shape} does not fit histograms of length {q.shape[0]}")
    diff = (q - X).reshape(len(X), -1, k)
    quad = np.einsum("nri,ij,nrj->n", diff, A, diff)
    return np.sqrt(np.maximum(quad, 0.0))


def _pairwise_lab(centers: np.ndarray) -> np.ndarray:
    centers = np.asarray(centers, dtype=np.float64)
    return np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))


def qbic_similarity(centers: np.ndarray) -> np.ndarray:
    """QBIC's bin similarity ``a_ij = 1 - d_ij / d_max`` over codeword Lab distances, shape (k, k)."""
    dist = _pairwise_lab(centers)
    top = dist.max()
    return 1.0 - dist / top if top > 0 else np.ones_like(dist)


def gaussian_similarity(centers: np.ndarray, *, sigma: float = 20.0) -> np.ndarray:
    """Gaussian bin similarity ``a_ij = exp(-(d_ij / sigma)**2)``, shape (k, k)."""
    if sigma <= 0:
        raise BadInputError(f"sigma must be positive, got {sigma}")
    return np.exp(-((_pairwise_lab(centers) / sigma) ** 2))


#: Lab scale (sigma) of the cross-bin smoothing of ``chi2-soft``, and its root-normalization exponent
#: (0.35 rather than a square root: with the 30 small blocks of the default layout it raised mAP on
#: Wang and on both near-duplicate sets; README, "Retrieval accuracy").
SOFT_SIGMA = 3.0
SOFT_POWER = 0.35
#: chi2-soft values below this are rounding noise, returned as 0. Softening one query and a
#: batch of rows are matrix products of different shapes, which BLAS may sum in different
#: orders (it depends on the CPU's kernels): an image identical to a stored one then lands
#: around 1e-35 instead of 0. Two histograms that differ by one float16 step in any bin are
#: many orders of magnitude further apart (the root normalization lifts small bins).
SOFT_NOISE = 1e-20


def soft_similarity(centers: np.ndarray, *, sigma: float = SOFT_SIGMA) -> np.ndarray:
    """Column-stochastic Gaussian spreading matrix S (k, k): bin j sends ``S[i, j]`` of its mass to bin i.

    Entries below the smallest normal float64 (far-apart codewords) are exactly 0: as
    subnormal numbers they made every product with S four times slower, and they change
    no softened value.
    """
    spread = gaussian_similarity(centers, sigma=sigma)
    spread /= spread.sum(axis=0, keepdims=True)
    spread[spread < np.finfo(np.float64).tiny] = 0.0
    return spread


def soften(X: np.ndarray, spread: np.ndarray, *, power: float = SOFT_POWER) -> np.ndarray:
    """Smooth every k-bin block across similar colors, then root-normalize it (mass of each block kept).

    Parameters
    ----------
    X : ndarray, shape (n, d) or (d,)
        Histograms whose length d is a multiple of k (one block per layout region).
    spread : ndarray, shape (k, k)
        From :func:`soft_similarity`.
    power : float
        Each block becomes ``v**power`` rescaled to the block's original mass
        (0.5: square-root normalization, which damps dominant colors).

    Returns
    -------
    ndarray, same shape as X, float64

    Raises
    ------
    BadInputError
        If d is not a multiple of k.
    """
    X = np.asarray(X, dtype=np.float64)
    k = spread.shape[0]
    if X.shape[-1] % k:
        raise BadInputError(f"histograms of length {X.shape[-1]} do not split into blocks of {k} colors")
    blocks = X.reshape(-1, k)  # every block of every histogram: one matrix product
    mass = blocks.sum(axis=1, keepdims=True)
    smooth = blocks @ spread.T
    np.maximum(smooth, 0.0, out=smooth)
    np.power(smooth, power, out=smooth)
    total = smooth.sum(axis=1, keepdims=True)
    smooth *= np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)
    return smooth.reshape(X.shape)


_SOFTENED: list[tuple[object, tuple, np.ndarray]] = []


def _softened_rows(X: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """:func:`soften` of a stored matrix, remembered while the same memory is passed again.

    A search ranks many queries against the same (read-only) matrix of stored
    histograms, often as fresh slices of it: the key is the memory the rows live
    in (owner object, address, shape, strides) plus the spreading matrix.
    """
    X = np.asarray(X)
    owner = X.base if X.base is not None else X
    key = (X.__array_interface__["data"][0], X.shape, X.strides, X.dtype.str, spread.tobytes())
    for ref, cached_key, value in _SOFTENED:
        if ref() is owner and cached_key == key:
            return value
    value = soften(X, spread)
    if X.ndim == 2 and len(X) > 256:
        try:
            _SOFTENED[:] = [(weakref.ref(owner), key, value)] + _SOFTENED[:1]
        except TypeError:  # an owner that takes no weak reference: not cached
            pass
    return value


def chi2_soft(q: np.ndarray, X: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Chi-squared distance between softened histograms (see :func:`soften`): ``chi2(soften(q), soften(X))``.

    Cross-bin smoothing makes a slightly shifted color (brightness, white balance,
    JPEG) land in the same bins; the root normalization keeps one dominant color from
    outweighing the rest.
    """
    q, X = _shaped(q, X)
    soft_q = soften(q, spread)
    soft_rows = _softened_rows(X, spread)
    # chi2 with few temporaries, in row chunks that stay in cache (it runs against the whole
    # collection per query when the index cannot prove the top k sooner).
    out = np.empty(len(soft_rows))
    for start in range(0, len(soft_rows), 256):
        rows = soft_rows[start : start + 256]
        terms = rows - soft_q
        np.square(terms, out=terms)
        total = rows + soft_q
        # Where both are 0 the term is (0 - 0)**2 / tiny = 0 (a where= mask would be slower).
        np.maximum(total, np.finfo(np.float64).tiny, out=total)
        np.divide(terms, total, out=terms)
        out[start : start + 256] = 0.5 * terms.sum(axis=1)
    out[out < SOFT_NOISE] = 0.0
    return out


#: Metrics that need only the two histograms.
SIMPLE_METRICS: dict[str, Distance] = {
    "chi2": chi2,
    "l1": l1,
    "l2": l2,
    "intersection": intersection,
    "hellinger": hellinger,
}
#: Every metric name the search path accepts.
METRICS = ("chi2", "qfd", "qfd-gauss", "l1", "l2", "intersection", "hellinger", "chi2-soft")
#: Measured on Wang and on a near-duplicate set (README, "Retrieval accuracy").
DEFAULT_METRIC = "chi2-soft"
#: The compact search (L2 between learned projections, :mod:`cbir.projection`): what a search ranks by
#: unless a full-histogram metric above is asked for.
COMPACT = "compact"
SEARCH_METRICS = (COMPACT, *METRICS)


def check_metric(metric: str) -> str:
    """Return ``metric`` if known, else raise a :class:`BadInputError` listing the choices."""
    if metric not in METRICS:
        raise BadInputError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    return metric


def distance_function(metric: str, centers: np.ndarray | None = None) -> Distance:
    """The distance function of a metric name; QFD metrics need the codebook centers."""
    check_metric(metric)
    if metric in SIMPLE_METRICS:
        return SIMPLE_METRICS[metric]
    if centers is None:
        raise BadInputError(f"metric {metric!r} needs the codebook centers")
    if metric == "chi2-soft":
        spread = soft_similarity(centers)
        return lambda q, X: chi2_soft(q, X, spread)
    similarity = qbic_similarity(centers) if metric == "qfd" else gaussian_similarity(centers)
    return lambda q, X: qfd(q, X, similarity)


def paired_parts(metric: str, centers: np.ndarray | None = None) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                                       Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """:func:`paired_distance_function` in two steps, ``(prepare, compare)``: ``compare(prepare(A), prepare(B))``
    gives the same values, so rows met in many pairs (a group's distance matrix) are prepared (softened) once.

    Raises
    ------
    BadInputError
        For an unknown metric, or a QFD or chi2-soft metric without centers.
    """
    if metric == "chi2-soft":
        spread = soft_similarity(np.asarray(centers))
        return (lambda X: soften(np.atleast_2d(X), spread)), _chi2_rows
    if metric == "chi2":
        return (lambda X: np.atleast_2d(np.asarray(X, np.float64))), _chi2_rows
    return (lambda X: X), paired_distance_function(metric, centers)


def _chi2_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    terms = (A - B) ** 2
    total = A + B
    np.maximum(total, np.finfo(np.float64).tiny, out=total)  # 0/0 -> 0, as in chi2
    return 0.5 * (terms / total).sum(axis=1)


def paired_distance_function(metric: str, centers: np.ndarray | None = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``d(A[i], B[i])`` for every row pair, ``(A (m, d), B (m, d)) -> (m,)``: the values of
    :func:`distance_function`, batched (chi2 and chi2-soft soften and compare whole blocks of rows at once).

    Raises
    ------
    BadInputError
        For an unknown metric, or a QFD or chi2-soft metric without centers.
    """
    single = distance_function(metric, centers)
    if metric == "chi2-soft":
        spread = soft_similarity(np.asarray(centers))

        def soft_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
            out = _chi2_rows(soften(np.atleast_2d(A), spread), soften(np.atleast_2d(B), spread))
            out[out < SOFT_NOISE] = 0.0
            return out

        return soft_rows
    if metric == "chi2":
        return lambda A, B: _chi2_rows(np.atleast_2d(np.asarray(A, np.float64)), np.atleast_2d(np.asarray(B, np.float64)))
    return lambda A, B: np.array([single(a, b[None, :])[0] for a, b in zip(np.atleast_2d(A), np.atleast_2d(B))])
