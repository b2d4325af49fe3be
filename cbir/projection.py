"""The compact search space: a histogram's learned projection to about 128 numbers.

A histogram ``x`` (the default layout: 3,840 bins) becomes

    v = normalize(W (sqrt(soften(x)) - mean))

where ``soften`` is chi2-soft's cross-bin smoothing (:func:`cbir.distances.soften`),
``mean`` and the rows of ``W`` (the top principal components, each divided by its
singular value to the power ``whiten``) are learned from a bounded, seeded sample
of the collection itself, and ``normalize`` scales to unit L2 length. Ranking by L2
between such vectors is the compact search: measured on Wang and two
near-duplicate sets it is at least as accurate as exact chi2-soft on the full
histograms (README, "Retrieval accuracy"), at 1/30 of the numbers.

A projection is data, like the codebook: it is stored in the index with its
parameters and a fingerprint, and :func:`project` is a pure function of
(histograms, projection) so any process that writes rows can compute their vectors.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from cbir.distances import SOFT_POWER, SOFT_SIGMA, soft_similarity, soften
from cbir.errors import BadInputError
from cbir.store import Store

#: Dimensions of the compact vectors (64 and 256 measured about the same; README).
DEFAULT_COMPONENTS = 128
#: Whitening power: each component is divided by (its singular value / the first one) ** WHITEN.
DEFAULT_WHITEN = 0.0
#: At most this many stored histograms are used to fit a projection (a seeded sample of them).
MAX_FIT_SAMPLE = 5_000


@dataclass(frozen=True)
class Projection:
    """A learned histogram -> compact vector map.

    Attributes
    ----------
    mean : ndarray, shape (d,), float32
        Mean of the softened, square-rooted sample.
    components : ndarray, shape (m, d), float32
        Principal axes, already divided by the whitening scale.
    spread : ndarray, shape (k, k), float64
        chi2-soft's smoothing matrix for the codebook (:func:`cbir.distances.soft_similarity`).
    params : dict
        How it was fitted: ``n_components``, ``whiten``, ``soft_sigma``, ``soft_power``,
        ``fitted_on`` (sample size), ``collection`` (images in the index then), ``seed``.
    """

    mean: np.ndarray
    components: np.ndarray
    spread: np.ndarray
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # float64 copies made once: converting per call cost more than projecting one query.
        object.__setattr__(self, "_axes64", np.ascontiguousarray(self.components.T, dtype=np.float64))
        object.__setattr__(self, "_mean64", self.mean.astype(np.float64))

    @property
    def dim(self) -> int:
        """Length m of the compact vectors."""
        return int(self.components.shape[0])

    @property
    def input_dim(self) -> int:
        """Length d of the histograms it takes."""
        return int(self.components.shape[1])

    @property
    def fingerprint(self) -> str:
        """A digest of the parameters and arrays: two projections with the same one give the same vectors."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.params, sort_keys=True).encode())
        for array in (self.mean, self.components, self.spread):
            digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
        return digest.hexdigest()[:16]


def _root_softened(histograms: np.ndarray, spread: np.ndarray, power: float) -> np.ndarray:
    return np.sqrt(soften(np.asarray(histograms, dtype=np.float64), spread, power=power))


#: Rows softened at a time while fitting: float64 temporaries stay a few MB whatever the sample size.
_FIT_CHUNK = 256


def _rooted_sample(chunks: Iterable[np.ndarray], n: int, d: int, spread: np.ndarray) -> np.ndarray:
    """The softened, square-rooted rows of ``chunks`` (n rows in all) in one float32 (n, d) array.

    Memory-lean: the sample is held once, in float32 (77 MB for 5,000 default rows), and the
    float64 work of :func:`soften` is done ``_FIT_CHUNK`` rows at a time. Softening the whole
    sample in float64 at once pushed a first index run of 5,000 photos to ~790 MB peak RSS.
    """
    Z = np.empty((n, d), dtype=np.float32)
    done = 0
    for chunk in chunks:
        for start in range(0, len(chunk), _FIT_CHUNK):
            part = chunk[start : start + _FIT_CHUNK]
            Z[done : done + len(part)] = _root_softened(part, spread, SOFT_POWER)
            done += len(part)
    if done != n:
        raise BadInputError(f"expected {n} histograms to fit a projection on, got {done}")
    return Z


def fit_projection(
    histograms: np.ndarray,
    centers: np.ndarray,
    *,
    n_components: int = DEFAULT_COMPONENTS,
    whiten: float = DEFAULT_WHITEN,
    seed: int = 0,
    collection: int | None = None,
) -> Projection:
    """Learn a projection from a sample of a collection's histograms.

    Parameters
    ----------
    histograms : ndarray, shape (n, d)
        Stored histograms (a sample of at most :data:`MAX_FIT_SAMPLE` is plenty). Fewer
        rows than ``n_components`` give a projection of ``max(1, n - 1)`` dimensions.
    centers : ndarray, shape (k, 3)
        The codebook's Lab centers; d must be a multiple of k.
    n_components : int
        Dimensions m of the compact vectors.
    whiten : float
        Each component is divided by ``(s_i / s_0) ** whiten`` (s: singular values); 0: none.
    seed : int
        Seeds the randomized SVD.
    collection : int, optional
        Images in the index when fitted (recorded, so a grown collection can be noticed).

    Returns
    -------
    Projection

    Raises
    ------
    BadInputError
        For an empty sample, d not a multiple of k, n_components < 1 or a negative whiten.
    """
    X = np.atleast_2d(np.asarray(histograms, dtype=np.float32))
    return _fit([X], len(X), X.shape[1], centers, n_components=n_components, whiten=whiten, seed=seed,
                collection=collection)


def fit_projection_from_store(
    store: Store, centers: np.ndarray, *, sample: int = MAX_FIT_SAMPLE, seed: int = 0, collection: int | None = None,
    n_components: int = DEFAULT_COMPONENTS, whiten: float = DEFAULT_WHITEN,
) -> Projection:
    """:func:`fit_projection` on a seeded sample of at most ``sample`` stored rows, read 500 at a time.

    Peak memory is the float32 sample once plus a few MB (no dense float64 copy of it).
    """
    ids = store.sample_ids(sample, seed=seed)
    if not len(ids):
        raise BadInputError("cannot fit a projection on no histograms")
    first = store.histograms(ids[:500])
    rest = (store.histograms(ids[start : start + 500]) for start in range(500, len(ids), 500))
    return _fit(itertools.chain([first], rest), len(ids), first.shape[1], centers, n_components=n_components,
                whiten=whiten, seed=seed, collection=collection)


def _fit(
    chunks: Iterable[np.ndarray], n: int, d: int, centers: np.ndarray, *,
    n_components: int, whiten: float, seed: int, collection: int | None,
) -> Projection:
    centers = np.asarray(centers, dtype=np.float64)
    if not n:
        raise BadInputError("cannot fit a projection on no histograms")
    if d % len(centers):
        raise BadInputError(f"histograms of {d} bins do not fit a {len(centers)}-color codebook")
    if int(n_components) < 1:
        raise BadInputError(f"n_components must be at least 1, got {n_components}")
    if whiten < 0:
        raise BadInputError(f"whiten must be non-negative, got {whiten}")
    spread = soft_similarity(centers)
    Z = _rooted_sample(chunks, n, d, spread)
    mean = Z.mean(axis=0, dtype=np.float64)
    Z -= mean.astype(np.float32)
    m = int(min(n_components, max(1, n - 1), d))
    if n <= 2 * m + 10 or m >= d // 2:
        _, singular, axes = np.linalg.svd(Z.astype(np.float64), full_matrices=False)
        singular, axes = singular[:m], axes[:m]
    else:
        # Imported here: scikit-learn takes ~1 s to import. One BLAS thread: on a busy machine
        # two threads made this ten times slower. In float32 (scikit-learn keeps the dtype).
        from sklearn.utils.extmath import randomized_svd
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            _, singular, axes = randomized_svd(Z, m, n_iter=4, random_state=seed)
    del Z
    if whiten and singular[0] > 0:
        scale = np.maximum(singular / singular[0], 1e-6) ** whiten
        axes = axes / scale[:, None]
    params = {
        "n_components": int(n_components), "whiten": float(whiten), "soft_sigma": SOFT_SIGMA, "soft_power": SOFT_POWER,
        "fitted_on": int(n), "collection": int(collection if collection is not None else n), "seed": int(seed),
    }
    return Projection(mean.astype(np.float32), np.ascontiguousarray(axes, dtype=np.float32), spread, params)


def project(histograms: np.ndarray, projection: Projection) -> np.ndarray:
    """Compact vectors of histograms: softened, square-rooted, centred, projected, L2-normalized.

    Parameters
    ----------
    histograms : ndarray, shape (n, d) or (d,)
    projection : Projection

    Returns
    -------
    ndarray, shape (n, m), float32, C-contiguous; rows of unit length (a row that
    projects to zero stays zero).

    Raises
    ------
    BadInputError
        If d is not the projection's input length.
    """
    X = np.atleast_2d(np.asarray(histograms))
    if X.shape[1] != projection.input_dim:
        raise BadInputError(f"histograms of {X.shape[1]} bins do not fit a projection of {projection.input_dim}")
    power = float(projection.params.get("soft_power", SOFT_POWER))
    out = np.empty((len(X), projection.dim), dtype=np.float32)
    # _FIT_CHUNK rows at a time: the float64 temporaries of a 2,000-row batch took ~250 MB at once.
    for start in range(0, len(X), _FIT_CHUNK):
        Z = _root_softened(X[start : start + _FIT_CHUNK], projection.spread, power)
        Z -= projection._mean64  # type: ignore[attr-defined]
        # In float64, rounded once at the end: a row then gets the same float32 vector whatever batch it is
        # projected in (BLAS sums in an order that depends on the shapes), so an indexed image is at distance 0.
        V = Z @ projection._axes64  # type: ignore[attr-defined]
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        V /= np.where(norms > 0, norms, 1.0)
        out[start : start + len(V)] = V
    return out


def projection_to_bytes(projection: Projection) -> tuple[bytes, bytes]:
    """(mean, components) as little-endian float32 bytes, for the store."""
    return (np.ascontiguousarray(projection.mean, dtype="<f4").tobytes(),
            np.ascontiguousarray(projection.components, dtype="<f4").tobytes())


def projection_from_bytes(mean: bytes, components: bytes, params: dict, centers: np.ndarray) -> Projection:
    """The inverse of :func:`projection_to_bytes`; the smoothing matrix is rebuilt from the codebook centers."""
    mean_array = np.frombuffer(mean, dtype="<f4").astype(np.float32)
    axes = np.frombuffer(components, dtype="<f4").astype(np.float32).reshape(-1, len(mean_array))
    spread = soft_similarity(np.asarray(centers, dtype=np.float64), sigma=float(params.get("soft_sigma", SOFT_SIGMA)))
    return Projection(mean_array, axes, spread, dict(params))


def stored_projection(store: Store, centers: np.ndarray) -> tuple[int, Projection] | None:
    """The store's active projection as (id, projection), or None before one is fitted."""
    found = store.projection_row()
    if found is None:
        return None
    projection_id, mean, components, params, _ = found
    return projection_id, projection_from_bytes(mean, components, params, centers)
