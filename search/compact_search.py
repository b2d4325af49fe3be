"""The default search: L2 between compact vectors (:mod:`cbir.projection`), its head re-ranked by exact chi2-soft.

Below :data:`cbir.index_kind.COMPACT_ANN_MIN_SIZE` images a flat FAISS scan (exact), IVF lists
(or IVF-PQ, by memory budget) from there; ``exact`` and ``brute`` scan every stored vector.
The index is kept up to date by :func:`cbir.compact_index.ensure_compact_index`. A part of
:class:`search.searcher.Searcher`, not used alone.
"""

from __future__ import annotations

import numpy as np

from cbir.augment import augment_setting, expand
from cbir.compact_index import ensure_compact_index
from cbir.distances import DEFAULT_METRIC
from cbir.embedding import Embedding
from cbir.errors import StoreError
from cbir.projection import Projection, project, stored_projection
from cbir.store import Store, as_stored_vectors
from cbir.vectors import VectorIndex, compact_kind
from search.ranking import rank_order

# Compact candidates asked beyond k, so images tied at the k-th distance are ordered by id, not by FAISS.
_TIE_MARGIN = 32


class CompactSearch:
    """The compact paths of :class:`search.searcher.Searcher`: its state, cached vectors and index.

    The Searcher provides the attributes below (set in its ``__init__``) and ``codebook``,
    ``_snapshot()``, ``_metric()``, ``histograms()`` and ``_stored()``.
    """

    store: Store
    rerank: int
    expand: int
    _state: tuple[int, int]  # (generation, count) as last read from the store
    _indexes: dict[str, VectorIndex]
    _compact: tuple[int, tuple[int, Projection, Embedding] | None] | None  # (generation, state)
    _vectors: tuple[int, np.ndarray, np.ndarray] | None
    _augmented: bool  # the compact vectors searched are the augmented ones (DBA)

    def _required_compact(self) -> tuple[int, Projection, Embedding]:
        """:meth:`compact_state`, for the compact paths, which run only when it exists.

        Raises
        ------
        StoreError
            If the index has no compact vector on every row (it changed under this searcher).
        """
        state = self.compact_state()
        if state is None:
            raise StoreError(f"{self.store.display} has images without compact vectors; run cbir index on its folder")
        return state

    def compact_state(self) -> tuple[int, Projection, Embedding] | None:
        """(projection id, projection, its embedding) when every stored image has a vector of it, else None."""
        if self._state[0] < 0:
            self._snapshot()
        generation, count = self._state
        if self._compact is None or self._compact[0] != generation:
            state = None
            found = stored_projection(self.store, self.codebook.centers)
            if found is not None and count and self.store.projected_count(found[0]) == count:
                projection_id, projection = found
                setting = augment_setting(self.store)
                self._augmented = bool(setting and setting["neighbours"] and setting["projection"] == projection_id)
                suffix = f"-dba{setting['neighbours']}a{setting['alpha']:g}" if self._augmented else ""  # type: ignore[index]
                embedding = Embedding(f"compact-{projection.fingerprint}{suffix}",
                                      lambda X, p=projection: project(X, p), np.sqrt)
                state = (projection_id, projection, embedding)
            self._compact = (generation, state)
        return self._compact[1]

    def compact_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors (n, m)) of every image, as stored, cached until the store changes."""
        state = self.compact_state()
        if state is None:
            raise StoreError(f"{self.store.display} has no compact vectors for every image; run 'cbir index FOLDER'")
        generation = self._state[0]
        if self._vectors is None or self._vectors[0] != generation:
            parts = list(self.store.iter_vectors(state[0], augmented=self._augmented))
            self._vectors = (generation, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return self._vectors[1], self._vectors[2]

    def _compact_ranked(self, query: np.ndarray, k: int, method: str) -> tuple[np.ndarray, np.ndarray]:
        """The default ranking: compact candidates in L2 order, the first :attr:`rerank` re-ranked by exact chi2-soft.

        Distances are chi2-soft for every result (so they compare with ``--metric chi2-soft``); past the
        re-ranked head the order is the compact one, so they need not increase there.
        """
        wanted = max(k, self.rerank)
        ids, distances = self._compact_search(query, wanted, method)
        order = rank_order(ids, distances, wanted)
        ids, distances = ids[order], distances[order]
        if not self.rerank:
            return ids[:k], distances[:k]  # L2 between compact vectors
        distance = self._metric(DEFAULT_METRIC)[1]
        if len(ids) * 4 > self._state[1]:
            # Most of the collection asked for (an evaluation ranks it all): against the whole matrix,
            # whose softened copy chi2-soft keeps between queries.
            all_ids, X = self.histograms(generation=self._state[0])
            exact = distance(query, X)[np.searchsorted(all_ids, ids)]
        else:
            exact = distance(query, self._stored(ids))
        head = min(self.rerank, len(ids))
        order = np.concatenate([rank_order(ids[:head], exact[:head], head), np.arange(head, len(ids))])[:k]
        return ids[order], exact[order]

    def _compact_search(self, query: np.ndarray, k: int, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Ids and L2 distances between compact vectors: the top candidates (all of them for exact/brute)."""
        vector = as_stored_vectors(project(query, self._required_compact()[1]))  # a stored image's own: distance 0
        if self.expand:
            ids, distances = self._compact_vector_search(vector, int(self.expand), method)
            top = ids[rank_order(ids, distances, int(self.expand))]
            vector = expand(vector, self._search_vectors(top, method))
        return self._compact_vector_search(vector, k, method)

    def _search_vectors(self, ids: np.ndarray, method: str) -> np.ndarray:
        """The searched (augmented when DBA is on) compact vectors of ``ids``."""
        index = self._indexes.get(self._compact_key())
        if method not in ("exact", "brute") and index is not None and index.stamp.kind != "ivf":
            return index.vectors_of(ids)  # a flat index's own vectors, or IVF-PQ's memory-mapped ones
        all_ids, V = self.compact_vectors()
        return V[np.searchsorted(all_ids, ids)]

    def _compact_key(self) -> str:
        return f"{self._required_compact()[2].name}.{compact_kind(self._state[1])}"

    def _compact_vector_search(self, vector: np.ndarray, k: int, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Ids and L2 distances from a compact query vector (1, m), ranked by :meth:`_compact_search`'s rules."""
        projection_id, _, embedding = self._required_compact()
        if method in ("exact", "brute"):
            ids, V = self.compact_vectors()
            return ids, np.concatenate([_l2(V[s : s + 20_000], vector[0]) for s in range(0, len(V), 20_000)])
        key = self._compact_key()
        index = self._indexes.get(key)
        if index is None or (index.stamp.generation, index.stamp.count) != self._state:
            index = ensure_compact_index(self.store, self.codebook, projection_id, embedding, augmented=self._augmented)
            self._indexes[key] = index
        if index.size == 0:
            return np.empty(0, np.int64), np.empty(0)
        squared, found = index.search(vector, min(k + _TIE_MARGIN, index.size))
        ids = found[0][found[0] >= 0]
        if index.stamp.kind == "flat":
            # FAISS's |x|^2 + |y|^2 - 2xy leaves ~1e-7 between equal vectors: recompute the few found exactly.
            return ids, _l2(index.index.reconstruct_batch(ids), vector[0])
        return ids, np.sqrt(np.maximum(squared[0][: len(ids)].astype(np.float64), 0.0))


def _l2(V: np.ndarray, v: np.ndarray) -> np.ndarray:
    """L2 distances (n,) in float64 between rows of V (n, m) and v (m,): the same sums on every path.

    Below :data:`_SAME` a distance is 0: the vector of a stored image and of the same image
    as a query differ by float rounding only (~1e-16; BLAS sums depend on batch shapes), while
    two histograms one pixel apart are ~1e-5 apart.
    """
    distances = np.sqrt(((V.astype(np.float64) - v.astype(np.float64)) ** 2).sum(axis=1))
    distances[distances < _SAME] = 0.0
    return distances


_SAME = 1e-9
