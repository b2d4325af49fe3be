"""Neighbourhood-aware compact vectors: database-side augmentation (DBA) and alpha-query expansion (aQE).

Both replace a unit vector by the normalized, weighted mean of itself and its nearest
neighbours in the collection, each neighbour weighted by its cosine similarity to the
vector raised to the power ``alpha`` (negative similarities weigh 0); the vector itself
weighs 1 (Arandjelovic & Zisserman 2012, Radenovic et al. 2018):

    a = normalize(v + sum_j max(v . n_j, 0) ** alpha * n_j)

DBA does it to every stored vector once, with neighbours from a FAISS k-NN self-join
in batches (:func:`self_join`); aQE does it to a query with its top results, then
searches again. On unit vectors, L2 order and cosine order are the same.
"""

from __future__ import annotations

import json

import numpy as np

from cbir.errors import BadInputError
from cbir.store import Store

#: Neighbours averaged into each stored vector (0: augmentation off); chosen by measurement (README).
DEFAULT_NEIGHBOURS = 3
#: Power of the similarity weights (measured: 1 above 3 on Wang, about the same on the near-duplicate sets).
DEFAULT_ALPHA = 1.0
#: Rows searched per batch in the self-join: memory is (batch, k) plus FAISS's scratch.
JOIN_BATCH = 4_096
#: Up to this many rows the neighbours are exact (a flat index); above, an IVF index visits
#: :data:`JOIN_NPROBE` of its lists, so the join does not compare all pairs.
JOIN_EXACT_MAX = 50_000
JOIN_NPROBE = 16


def augment_setting(store: Store) -> dict | None:
    """The setting the store's search vectors were made with: {"neighbours", "alpha", "projection"}, or None."""
    raw = store.meta("augment")
    return json.loads(raw) if raw else None


def _check(k: int, alpha: float) -> None:
    if k < 0:
        raise BadInputError(f"the number of neighbours must be 0 or more, got {k}")
    if not np.isfinite(alpha) or alpha < 0:
        raise BadInputError(f"alpha must be a non-negative number, got {alpha}")


def weighted_mean(vectors: np.ndarray, neighbours: np.ndarray, *, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Augmented vectors: each row plus its neighbours weighted by similarity ** alpha, L2-normalized.

    Parameters
    ----------
    vectors : ndarray, shape (n, m)
        Unit vectors (the plain compact vectors or queries).
    neighbours : ndarray, shape (n, k, m)
        Each row's k neighbours (unit vectors; the row itself excluded).
    alpha : float
        Power of the weights (keyword-only).

    Returns
    -------
    ndarray, shape (n, m), float32; rows of unit length (a row that sums to zero stays zero).

    Raises
    ------
    BadInputError
        If the shapes do not agree or alpha is negative.
    """
    V = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    N = np.asarray(neighbours, dtype=np.float64)
    if N.ndim != 3 or N.shape[0] != V.shape[0] or N.shape[2] != V.shape[1]:
        raise BadInputError(f"neighbours of shape {N.shape} do not fit vectors of shape {V.shape}")
    _check(N.shape[1], alpha)
    weights = np.maximum(np.einsum("nm,nkm->nk", V, N), 0.0) ** alpha
    A = V + np.einsum("nk,nkm->nm", weights, N)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    A /= np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(A, dtype=np.float32)


def knn_index(vectors: np.ndarray, *, seed: int = 0):  # type: ignore[no-untyped-def]
    """A FAISS inner-product index of unit vectors (n, m): flat up to :data:`JOIN_EXACT_MAX` rows, else IVF.

    The IVF index has about 4 sqrt(n) lists, trained on a seeded sample of at most 64 rows per list,
    and searches :data:`JOIN_NPROBE` of them (approximate neighbours).
    """
    import faiss

    V = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if len(V) <= JOIN_EXACT_MAX:
        index = faiss.IndexFlatIP(V.shape[1])
    else:
        nlist = int(4 * np.sqrt(len(V)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(V.shape[1]), V.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(len(V), size=min(len(V), 64 * nlist), replace=False)
        index.train(V[np.sort(sample)])
        index.nprobe = JOIN_NPROBE
    index.add(V)
    return index


def self_join(vectors: np.ndarray, k: int, *, batch: int = JOIN_BATCH) -> np.ndarray:
    """Row numbers of each row's k nearest other rows: a FAISS search (:func:`knn_index`), in batches.

    Parameters
    ----------
    vectors : ndarray, shape (n, m)
        Unit vectors.
    k : int
        Neighbours per row (fewer rows than k + 1: every other row, padded with -1).
    batch : int
        Query rows per FAISS call (keyword-only); never an (n, n) matrix.

    Returns
    -------
    ndarray, shape (n, k), int64; nearest first, ties by row number, -1 where there is none.

    Raises
    ------
    BadInputError
        If k is negative.
    """
    _check(k, 0.0)
    V = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    n = len(V)
    out = np.full((n, k), -1, dtype=np.int64)
    if k == 0 or n < 2:
        return out
    index = knn_index(V)
    want = min(k + 1, n)
    for start in range(0, n, batch):
        sims, found = index.search(V[start : start + batch], want)
        me = np.arange(start, start + len(found))[:, None]
        gone = (found < 0) | (found == me)  # no neighbour, or the row itself: sorted last, then dropped
        ids = np.where(gone, np.iinfo(np.int64).max, found)
        order = np.lexsort((ids, -np.where(gone, -np.inf, sims)), axis=1)[:, :k]  # by similarity, ties by row number
        picked = np.take_along_axis(ids, order, axis=1)
        out[start : start + len(found), : picked.shape[1]] = np.where(np.take_along_axis(gone, order, axis=1), -1, picked)
    return out


def augment(vectors: np.ndarray, k: int, *, alpha: float = DEFAULT_ALPHA, batch: int = JOIN_BATCH) -> np.ndarray:
    """DBA: every row replaced by the weighted mean of itself and its k nearest other rows.

    Parameters
    ----------
    vectors : ndarray, shape (n, m)
        Unit vectors (the plain compact vectors of a whole collection).
    k : int
        Neighbours (0: the vectors unchanged, as float32).
    alpha : float
        Power of the similarity weights (keyword-only).
    batch : int
        Rows per self-join batch (keyword-only).

    Returns
    -------
    ndarray, shape (n, m), float32.

    Raises
    ------
    BadInputError
        If k or alpha is negative.
    """
    V = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    _check(k, alpha)
    if k == 0 or len(V) < 2:
        return V.copy()
    found = self_join(V, k, batch=batch)
    out = np.empty_like(V)
    for start in range(0, len(V), batch):
        rows = found[start : start + batch]
        N = np.where((rows >= 0)[..., None], V[np.maximum(rows, 0)], 0.0)
        out[start : start + batch] = weighted_mean(V[start : start + batch], N, alpha=alpha)
    return out


def expand(query: np.ndarray, top: np.ndarray, *, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """aQE: a query vector replaced by the weighted mean of itself and its top results' vectors.

    Parameters
    ----------
    query : ndarray, shape (m,) or (1, m)
        The query's unit vector.
    top : ndarray, shape (n, m)
        Vectors of its first n results (as searched: augmented when the index is).
    alpha : float
        Power of the similarity weights (keyword-only).

    Returns
    -------
    ndarray, shape (1, m), float32.

    Raises
    ------
    BadInputError
        If the shapes do not agree or alpha is negative.
    """
    q = np.atleast_2d(np.asarray(query, dtype=np.float32))
    T = np.atleast_2d(np.asarray(top, dtype=np.float32)).reshape(1, -1, q.shape[1]) if len(top) else np.zeros((1, 0, q.shape[1]))
    return weighted_mean(q, T, alpha=alpha)
