"""Maps histograms into a space where FAISS's L2 ranks like the chosen distance.

For every metric an :class:`Embedding` gives a transform ``E`` and a lower bound
``bound(h) <= d(x, y)`` where ``h = ||E x - E y||^2``. The search path takes
candidates in increasing ``h`` and stops once the bound at the last candidate
exceeds the k-th exact distance, which makes FAISS search exact, not approximate:

* chi2, l1, intersection, hellinger: ``E = sqrt`` (the Hellinger map). With
  ``h = sum((sqrt x - sqrt y)^2)``: ``chi2 >= h/2``, ``l1 >= h``,
  ``intersection = l1/2 >= h/2`` and ``hellinger = sqrt(h/2)`` exactly.
* l2: ``E = identity``, ``l2 = sqrt(h)``.
* chi2-soft: ``E = sqrt(soften(x))`` (the Hellinger map of the softened histogram,
  see :func:`cbir.distances.soften`); ``chi2-soft >= h/2`` as for chi2.
* qfd: ``E = T`` with ``T^T T = P A P`` (P centres each region block): for
  histograms of equal mass ``(x-y)^T A (x-y) = ||T x - T y||^2``, so
  ``qfd = sqrt(h)``. T comes from the eigendecomposition of the centred A with
  negative eigenvalues (rounding noise; QBIC's A is conditionally positive
  definite) clipped to zero, never from a Cholesky factor of A.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cbir.distances import (
    SOFT_POWER,
    SOFT_SIGMA,
    check_metric,
    gaussian_similarity,
    qbic_similarity,
    soft_similarity,
    soften,
)

# FAISS computes h in float32; bounds are loosened by this much so rounding never prunes a true neighbour.
_SLACK = 1e-5
#: Embedded entries smaller than this are stored as 0 (see Embedding.transform).
_FLUSH = 1e-15


def quadratic_form_transform(similarity: np.ndarray) -> np.ndarray:
    """T (k, k) with ``||T z||^2 == z^T A z`` for every z that sums to zero.

    Parameters
    ----------
    similarity : ndarray, shape (k, k), symmetric

    Returns
    -------
    ndarray, shape (k, k), float64
    """
    A = np.asarray(similarity, dtype=np.float64)
    k = A.shape[0]
    P = np.eye(k) - np.full((k, k), 1.0 / k)
    values, vectors = np.linalg.eigh(P @ A @ P)
    values = np.clip(values, 0.0, None)
    return (vectors * np.sqrt(values)).T


@dataclass(frozen=True)
class Embedding:
    """A histogram -> vector map and the lower bound it gives on a metric."""

    name: str
    transform_fn: Callable[[np.ndarray], np.ndarray]
    bound_fn: Callable[[np.ndarray], np.ndarray]

    def transform(self, histograms: np.ndarray) -> np.ndarray:
        """Embed histograms (n, d) or (d,) into C-contiguous float32 vectors (n, m)."""
        X = np.atleast_2d(np.asarray(histograms, dtype=np.float64))
        vectors = np.ascontiguousarray(self.transform_fn(X), dtype=np.float32)
        # chi2-soft's spreading leaves tails down to 1e-56; products of entries under ~1e-19 are
        # subnormal floats, which made FAISS's matrix products ~80x slower (a 2000-image self-join took
        # 111 s). Zeroing entries under _FLUSH moves a squared distance by < d * 1e-15, far inside _SLACK.
        vectors[np.abs(vectors) < _FLUSH] = 0.0
        return vectors

    def bound(self, squared_l2: np.ndarray) -> np.ndarray:
        """Lower bound on the metric given squared L2 distances in the embedded space."""
        h = np.maximum(np.asarray(squared_l2, dtype=np.float64) - _SLACK, 0.0)
        return self.bound_fn(h) - _SLACK


def _digest(matrix: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(matrix).tobytes()).hexdigest()[:8]


def _blockwise(T: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    k = T.shape[0]

    def apply(X: np.ndarray) -> np.ndarray:
        blocks = X.reshape(len(X), -1, k)
        return (blocks @ T.T).reshape(len(X), -1)

    return apply


def embedding_for(metric: str, centers: np.ndarray) -> Embedding:
    """The embedding used to search ``metric`` with FAISS.

    Parameters
    ----------
    metric : str
        One of :data:`cbir.distances.METRICS`.
    centers : ndarray, shape (k, 3)
        Codebook centers in Lab (used by the QFD metrics).
    """
    check_metric(metric)
    if metric in ("chi2", "intersection"):
        return Embedding("sqrt", np.sqrt, lambda h: 0.5 * h)
    if metric == "l1":
        return Embedding("sqrt", np.sqrt, lambda h: h)
    if metric == "hellinger":
        return Embedding("sqrt", np.sqrt, lambda h: np.sqrt(0.5 * h))
    if metric == "l2":
        return Embedding("identity", lambda X: X, np.sqrt)
    if metric == "chi2-soft":
        spread = soft_similarity(centers)
        # chi2(u, v) >= h/2 with h = ||sqrt u - sqrt v||^2 holds for any non-negative u, v.
        return Embedding(
            f"soft-s{SOFT_SIGMA:g}-p{SOFT_POWER:g}-{_digest(spread)}",
            lambda X: np.sqrt(soften(X, spread)),
            lambda h: 0.5 * h,
        )
    similarity = qbic_similarity(centers) if metric == "qfd" else gaussian_similarity(centers)
    return Embedding(metric, _blockwise(quadratic_form_transform(similarity)), np.sqrt)
