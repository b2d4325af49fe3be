"""Searcher: ranks the indexed images against a query histogram, image or array.

The default metric, ``compact``, ranks by L2 between compact vectors (the learned
projection of :mod:`cbir.projection`, stored for every row): a flat FAISS scan below
:data:`cbir.vectors.COMPACT_ANN_MIN_SIZE` images (exact), IVF lists from there
(approximate): :mod:`search.compact_search`. An index whose rows have no vectors yet (made by an older cbir, or
an interrupted run) is searched with exact chi2-soft instead, and :attr:`Searcher.note` says so.

For a full-histogram metric (chi2-soft, qfd, ...) two paths give the same ranking:

* ``method="exact"`` (the default below :data:`APPROX_MIN_SIZE` images): FAISS over
  the metric's embedding (see :mod:`cbir.embedding`) yields candidates in order of a
  lower bound on the metric; exact distances are computed on the stored histograms,
  and the candidate set grows until the bound proves no unseen image can enter the
  top k. Exact, and fast because the bound is tight.
* ``method="brute"``: exact distance to every stored histogram.

``method="ann"`` (the default from :data:`APPROX_MIN_SIZE` images) takes the compact
search's candidates (IVF candidates of the metric's own embedding on an index without
compact vectors) and re-ranks them exactly: fast, but a true neighbour can be missed.

Results are sorted by (distance, id), so equal distances always come out in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from cbir.descriptor import Descriptor
from cbir.distances import COMPACT, DEFAULT_METRIC, Distance, check_metric, distance_function
from cbir.embedding import Embedding, embedding_for
from cbir.errors import BadInputError, CodebookMismatchError, StoreError
from cbir.images import DEFAULT_MAX_SIDE
from cbir.projection import Projection
from cbir.store import Store, as_stored
from cbir.vectors import VectorIndex, ensure_vector_index
from search.compact_search import CompactSearch
from search.ranking import Result, rank_order

_FIRST_CANDIDATES = 64
# Fetching more candidate rows than this one by one costs more than loading the whole matrix once.
_LOAD_ALL_ABOVE = 2000
#: Collections at least this large are searched approximately (IVF + exact re-ranking) unless asked otherwise.
APPROX_MIN_SIZE = 50_000  # = cbir.index_kind.COMPACT_ANN_MIN_SIZE (measured there)
DEFAULT_SEARCH_METRIC = COMPACT
#: The default search re-ranks this many compact candidates by exact chi2-soft: measured, the compact
#: order alone is better on Wang but slightly worse on a near-duplicate set (README, "Retrieval accuracy").
COMPACT_RERANK = 20
#: Results the default search expands its query with (alpha-QE; 0: off). Chosen by measurement (README).
DEFAULT_EXPAND = 0


class Searcher(CompactSearch):
    """Search one index.

    Parameters
    ----------
    store : Store
        An index made by ``cbir index``.

    Raises
    ------
    StoreError
        If the store has no codebook yet (nothing indexed).
    """

    #: Test-only switch. True (always, in the product): the exact path hands over to one brute-force
    #: pass once proving the top k would need a quarter of the index, which on small test indexes is
    #: every query. False keeps exact search on the FAISS path however small the index, so tests of
    #: that path test it rather than the fallback.
    brute_fallback: bool = True

    def __init__(self, store: Store) -> None:
        found = store.codebook()
        if found is None:
            raise StoreError(f"{store.display} has no images indexed yet; run 'cbir index FOLDER' first")
        self.store = store
        _, codebook, layout = found
        # Queries are analysed at the resolution the index was made with.
        self.descriptor = Descriptor(codebook, layout=layout, max_side=int(codebook.params.get("max_side", DEFAULT_MAX_SIDE)))
        self._indexes: dict[str, VectorIndex] = {}
        self._matrix: tuple[int, np.ndarray, np.ndarray] | None = None
        self._state: tuple[int, int] = (-1, 0)  # (generation, count) as last read from the store
        self._metrics: dict[str, tuple[Embedding, Distance]] = {}
        #: Approximate mode: IVF lists visited, and candidates re-ranked exactly.
        self.nprobe = 16
        self.ann_candidates = 500
        self._compact: tuple[int, tuple[int, Projection, Embedding] | None] | None = None  # (generation, state)
        self._vectors: tuple[int, np.ndarray, np.ndarray] | None = None
        self._augmented = False  # the compact vectors searched are the augmented ones (DBA)
        #: Compact candidates re-ranked by exact chi2-soft in the default search (0: compact L2 order alone).
        self.rerank = COMPACT_RERANK
        #: alpha-query expansion (:func:`cbir.augment.expand`): the compact query is averaged with the vectors
        #: of its first ``expand`` results and searched again before re-ranking (0: off).
        self.expand = DEFAULT_EXPAND
        #: Why the last search did not rank as asked (compact vectors missing), or None.
        self.note: str | None = None

    @classmethod
    def open(cls, db: str | os.PathLike[str]) -> Searcher:
        """Open the index at ``db`` (a SQLite path or a database URL)."""
        return cls(Store(db))

    @property
    def codebook(self):  # type: ignore[no-untyped-def]
        return self.descriptor.codebook

    # --- queries ------------------------------------------------------------------
    def search_image(self, image: str | os.PathLike[str] | np.ndarray, **options) -> list[Result]:  # type: ignore[no-untyped-def]
        """Rank the index against an image file or a uint8 RGB array (H, W, 3).

        Options are those of :meth:`search_histogram`.

        Raises
        ------
        BadImageError
            If the file cannot be read as an image.
        """
        if isinstance(image, np.ndarray):
            query = self.descriptor.of_rgb(image)
        else:
            query = self.descriptor.of_file(image).histogram
        return self.search_histogram(query, **options)

    def search_colors(
        self,
        colors: Iterable[tuple[Sequence[int], float]],
        *,
        k: int = 10,
        metric: str = DEFAULT_SEARCH_METRIC,
        method: str = "auto",
    ) -> list[Result]:
        """Rank the index against a query by colors: ((r, g, b), weight) pairs (QBIC-style).

        See :meth:`cbir.descriptor.Descriptor.of_colors`; options are those of
        :meth:`search_histogram`.

        Raises
        ------
        BadInputError
            If the query is empty, has more than five colors, or a bad color or weight.
        """
        return self.search_histogram(self.descriptor.of_colors(colors), k=k, metric=metric, method=method)

    def search_histogram(
        self,
        histogram: np.ndarray,
        *,
        k: int = 10,
        metric: str = DEFAULT_SEARCH_METRIC,
        method: str = "auto",
    ) -> list[Result]:
        """Rank the index against a histogram made with this index's descriptor.

        Parameters
        ----------
        histogram : ndarray, shape (dim,)
        k : int
            Number of results (fewer if the index is smaller).
        metric : str
            ``"compact"`` (default) or one of :data:`cbir.distances.METRICS`.
        method : {"auto", "exact", "ann", "brute"}
            ``exact``: through the flat FAISS index with a proven stopping rule;
            ``ann``: through an IVF index, the top candidates re-ranked exactly
            (approximate: a true neighbour can be missed); ``brute``: exact
            distance to every image; ``auto`` (default): ``exact`` below
            :data:`APPROX_MIN_SIZE` images, ``ann`` from there on. For ``compact``:
            ``exact`` and ``brute`` scan every stored vector; ``auto`` and ``ann``
            use the index kind that fits the size (flat, then IVF).

        Raises
        ------
        BadInputError
            For k < 1, an unknown metric or method.
        CodebookMismatchError
            If the histogram's length does not fit this index's codebook and layout.
        """
        _check_search_metric(metric)
        if int(k) < 1:
            raise BadInputError(f"k must be at least 1, got {k}")
        query = np.asarray(histogram, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.descriptor.dim:
            raise CodebookMismatchError(
                f"query histogram has {query.shape[0]} bins; this index uses {self.descriptor.dim} "
                f"({self.codebook.n_colors} colors, {self.descriptor.layout} layout)"
            )
        ids, distances = self._ranked(query, int(k), metric, method)
        return self._results(ids, distances, self.store.paths(ids))

    def search_images(self, images: Sequence[str | os.PathLike[str] | np.ndarray], **options) -> list[list[Result]]:  # type: ignore[no-untyped-def]
        """Rank the index against several images: exactly :meth:`search_image` on each, paths looked up once.

        Options are those of :meth:`search_histogram`; made for evaluation runs that rank
        the whole collection for every query.

        Raises
        ------
        BadImageError
            If a file cannot be read as an image.
        """
        k, metric, method = options.pop("k", 10), options.pop("metric", DEFAULT_SEARCH_METRIC), options.pop("method", "auto")
        if options:
            raise BadInputError(f"unknown search options: {', '.join(options)}")
        _check_search_metric(metric)
        if int(k) < 1:
            raise BadInputError(f"k must be at least 1, got {k}")
        ranked = []
        for image in images:
            query = self.descriptor.of_rgb(image) if isinstance(image, np.ndarray) else self.descriptor.of_file(image).histogram
            self._check_dim(np.asarray(query).reshape(-1))
            ranked.append(self._ranked(np.asarray(query, dtype=np.float32).reshape(-1), int(k), metric, method))
        paths = self.store.paths(np.unique(np.concatenate([ids for ids, _ in ranked]))) if ranked else {}
        return [self._results(ids, distances, paths) for ids, distances in ranked]

    def _check_dim(self, query: np.ndarray) -> None:
        if query.shape[0] != self.descriptor.dim:
            raise CodebookMismatchError(
                f"query histogram has {query.shape[0]} bins; this index uses {self.descriptor.dim} "
                f"({self.codebook.n_colors} colors, {self.descriptor.layout} layout)"
            )

    def _ranked(self, query: np.ndarray, k: int, metric: str, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Ids and distances of the top ``k``, in rank order (distance, then id)."""
        self._snapshot()  # one look at the store per search; the steps below use self._state
        self.note = None
        query = as_stored(query)  # rounded as stored rows are: an indexed image finds itself at distance 0
        if method not in ("auto", "exact", "ann", "brute"):
            raise BadInputError(f"unknown search method {method!r}; choose auto, exact, ann or brute")
        if metric == COMPACT:
            if self.compact_state() is not None:
                return self._compact_ranked(query, k, method)
            self.note = (f"{self.store.display} has no compact vectors for every image (an index made by an older "
                         f"cbir, or an interrupted run): ranked by exact {DEFAULT_METRIC}; run 'cbir index FOLDER' to add them")
            metric = DEFAULT_METRIC
        if method == "auto":
            method = "ann" if self._state[1] >= APPROX_MIN_SIZE else "exact"
        if method == "brute":
            ids, distances = self._brute(query, metric)
        elif method == "exact":
            ids, distances = self._through_index(query, k, metric)
        elif method == "ann":
            ids, distances = self._approximate(query, k, metric)
        else:
            raise BadInputError(f"unknown search method {method!r}; choose auto, exact, ann or brute")
        order = rank_order(ids, distances, k)
        return ids[order], distances[order]

    @staticmethod
    def _results(ids: np.ndarray, distances: np.ndarray, paths: dict[int, str]) -> list[Result]:
        """Ranked ids -> Results (ids removed from the store meanwhile are left out)."""
        return [
            Result(rank=r + 1, id=i, path=paths[i], distance=float(distance))
            for r, (i, distance) in enumerate(zip(ids.tolist(), distances.tolist()))
            if i in paths
        ]

    # --- near-duplicates ----------------------------------------------------------
    def duplicates(self, *, threshold: float | None = None, k: int | None = None, metric: str | None = None,  # type: ignore[no-untyped-def]
                   hamming: int | None = None, veto: int | str | None = None):
        """Every group of near-duplicates: see :func:`search.duplicates.find_duplicates` (defaults there; ``hamming=-1``:
        colour only; ``veto="off"`` or -1: no hash veto, so flipped and cropped copies whose hashes differ are kept).

        Raises
        ------
        BadInputError
            For a negative or non-finite threshold, k, hamming or veto out of range or an unknown metric.
        """
        from search import duplicates

        options = {"threshold": threshold, "k": k, "metric": None if metric is None else check_metric(metric), "hamming": hamming,
                   "veto": veto}
        return duplicates.find_duplicates(self, **{key: value for key, value in options.items() if value is not None})

    def metric(self, metric: str) -> tuple[Embedding, Distance]:
        """The embedding (FAISS search space) and exact distance function of ``metric``."""
        return self._metric(check_metric(metric))

    @staticmethod
    def approximate_at(count: int) -> bool:
        """Whether a collection of ``count`` images is searched through IVF rather than exactly."""
        return count >= APPROX_MIN_SIZE

    # --- exact brute force --------------------------------------------------------
    def histograms(self, *, generation: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, histograms) of the whole index, cached until the store changes."""
        if generation is None:
            generation = self._snapshot()[0]
        if self._matrix is None or self._matrix[0] != generation:
            ids, X = self.store.all_histograms()
            self._matrix = (generation, ids, X)
        return self._matrix[1], self._matrix[2]

    def _brute(self, query: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
        ids, X = self.histograms(generation=self._state[0])
        if not len(ids):
            return ids, np.empty(0)
        distance = self._metric(metric)[1]
        chunk = 20_000
        return ids, np.concatenate([distance(query, X[s : s + chunk]) for s in range(0, len(X), chunk)])

    # --- exact through FAISS ------------------------------------------------------
    def _metric(self, metric: str) -> tuple[Embedding, Distance]:
        """Embedding and distance function of a metric, made once per searcher (QFD's need an eigendecomposition)."""
        if metric not in self._metrics:
            centers = self.codebook.centers
            self._metrics[metric] = (embedding_for(metric, centers), distance_function(metric, centers))
        return self._metrics[metric]

    def _through_index(self, query: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
        embedding, distance = self._metric(metric)
        index = self._current_index(embedding, "flat")
        if index.size == 0:
            return np.empty(0, np.int64), np.empty(0)
        embedded = embedding.transform(query)
        k = min(k, index.size)
        # A scan for 256 candidates costs ~6% more than for 10 (4096: ~20%); large collections start
        # at 256, which proved the top 10 in one scan for every query of the 1M-image benchmark.
        wanted = max(_FIRST_CANDIDATES, 4 * k, min(256, index.size // 256))
        while True:
            if wanted * 4 > index.size and self.brute_fallback:
                # Proving the top k would take a quarter of the collection: one exact pass is cheaper.
                return self._brute(query, metric)
            squared, found = index.search(embedded, wanted)
            keep = found[0] >= 0
            ids, squared = found[0][keep], squared[0][keep]
            distances = distance(query, self._stored(ids))
            kth = distances[rank_order(ids, distances, k)[-1]]
            # Every image not yet seen is at least bound(squared[-1]) away (or none is left unseen).
            if len(ids) >= index.size or embedding.bound(squared[-1:])[0] > kth:
                return ids, distances
            wanted *= 4

    # --- approximate through IVF -----------------------------------------------------
    def _approximate(self, query: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
        embedding, distance = self._metric(metric)
        if self.compact_state() is not None:
            ids, _ = self._compact_search(query, max(self.ann_candidates, 4 * k), "ann")
            return ids, distance(query, self._stored(ids))
        index = self._current_index(embedding, "ivf")
        if index.size == 0:
            return np.empty(0, np.int64), np.empty(0)
        index.set_nprobe(self.nprobe)
        _, found = index.search(embedding.transform(query), max(self.ann_candidates, 4 * k))
        ids = found[0][found[0] >= 0]
        return ids, distance(query, self._stored(ids))

    def vector_index(self, embedding: Embedding, *, kind: str = "flat") -> VectorIndex:
        """The FAISS index of an embedding, kept in memory while it matches the store."""
        self._snapshot()
        return self._current_index(embedding, kind)

    def _current_index(self, embedding: Embedding, kind: str) -> VectorIndex:
        cached = self._indexes.get(f"{embedding.name}.{kind}")
        if cached is not None and (cached.stamp.generation, cached.stamp.count) == self._state:
            return cached
        index = ensure_vector_index(self.store, self.codebook, embedding, kind=kind)
        self._indexes[f"{embedding.name}.{kind}"] = index
        return index

    def _snapshot(self) -> tuple[int, int]:
        """(generation, image count) of the store; counting (a scan) only when the generation moved."""
        generation = self.store.generation()
        if self._state[0] != generation:
            self._state = (generation, self.store.count())
        return self._state

    def _stored(self, ids: np.ndarray) -> np.ndarray:
        """Stored histograms of ``ids``: from memory when the whole index is loaded (or worth loading)."""
        generation = self._state[0]
        if len(ids) > _LOAD_ALL_ABOVE or (self._matrix is not None and self._matrix[0] == generation):
            all_ids, X = self.histograms(generation=generation)
            return X[np.searchsorted(all_ids, ids)]
        return self.store.histograms(ids)


def _check_search_metric(metric: str) -> None:
    if metric != COMPACT:
        check_metric(metric)


__all__ = ["APPROX_MIN_SIZE", "COMPACT_RERANK", "DEFAULT_SEARCH_METRIC", "Result", "Searcher"]
