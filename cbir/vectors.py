"""The derived vector index, and k-means for the codebook: the only module that imports faiss.

The store is the truth; this index is a cache of embedded histograms that can
always be rebuilt from it. It is saved with a stamp (codebook fingerprint,
embedding, store generation, row count) and a stale one is never used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from cbir.codebook import Codebook
from cbir.embedding import Embedding
from cbir.errors import BadInputError
from cbir.store import Store

#: Below this many rows an IVF index has nothing to gain: a flat one stands in for it.
IVF_MIN_SIZE = 1000


def use_threads(n: int) -> None:
    """Threads FAISS may use (process-wide). One query at a time gains nothing from more, and on a
    busy machine spinning OpenMP threads made a flat scan four times slower: the CLI sets 1."""
    faiss.omp_set_num_threads(max(1, int(n)))


def kmeans(points: np.ndarray, k: int, *, seed: int, iterations: int, points_per_center: int) -> np.ndarray:
    """k-means (Lloyd) centers of ``points`` (n, d) with FAISS, float32 (k, d), one thread, deterministic.

    FAISS starts from k points drawn with ``seed`` and iterates over at most
    ``k * points_per_center`` of the points (drawn with the seed too). It imports in a
    tenth of a second where scikit-learn's clustering takes a whole one, which counts in
    every ``cbir index`` run.
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # deterministic sums, and no OpenMP threads left spinning beside the workers
    try:
        clustering = faiss.Kmeans(
            points.shape[1], k, niter=iterations, seed=seed, max_points_per_centroid=points_per_center,
            min_points_per_centroid=1, verbose=False,
        )
        clustering.train(points)
    finally:
        faiss.omp_set_num_threads(before)
    return np.asarray(clustering.centroids, dtype=np.float32)


@dataclass(frozen=True)
class Stamp:
    """What a saved index was built from."""

    fingerprint: str
    embedding: str
    generation: int
    count: int
    kind: str = "flat"


class VectorIndex:
    """A FAISS L2 index over embedded histograms whose ids are store row ids.

    Parameters
    ----------
    index : faiss.Index
        An index wrapped in ``IndexIDMap2`` (ids = store row ids).
    stamp : Stamp
    """

    def __init__(self, index: faiss.Index, stamp: Stamp) -> None:
        self.index = index
        self.stamp = stamp

    @classmethod
    def empty(cls, dim: int, stamp: Stamp, *, train: np.ndarray | None = None, seed: int = 0) -> VectorIndex:
        """A new index of ``stamp.kind`` for vectors of ``dim``; an IVF index is trained on ``train`` (t, dim).

        ``"flat"`` is an exact L2 scan; ``"ivf"`` an IndexIVFFlat with about sqrt(n) lists for
        n = ``stamp.count`` (trained on at most 64 vectors a list: seconds at a million).
        """
        if stamp.kind == "flat":
            base: faiss.Index = faiss.IndexFlatL2(dim)
        elif stamp.kind == "ivf":
            if train is None or not len(train):
                raise BadInputError("an IVF index needs training vectors")
            n_lists = int(max(1, min(np.sqrt(stamp.count), len(train) // 39)))
            base = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, n_lists, faiss.METRIC_L2)
            base.cp.seed = seed
            base.cp.niter = 10
            base.train(np.ascontiguousarray(train[: 64 * n_lists], dtype=np.float32))
            base.nprobe = 16
        else:
            raise BadInputError(f"unknown index kind {stamp.kind!r}; choose flat or ivf")
        return cls(faiss.IndexIDMap2(base), stamp)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, dim) under store row ids (n,)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise BadInputError(f"expected ids (n,) and vectors (n, m), got {ids.shape} and {vectors.shape}")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def set_nprobe(self, nprobe: int) -> None:
        """How many IVF lists to visit (no effect on a flat index)."""
        base = faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]
        if hasattr(base, "nprobe"):
            base.nprobe = int(nprobe)

    @property
    def n_lists(self) -> int:
        base = faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]
        return int(getattr(base, "nlist", 1))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances and ids of the ``k`` nearest, shapes (q, k); missing slots have id -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), self.size)) if self.size else 1
        return self.index.search(queries, k)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index with its stamp to one file, atomically (a reader sees old or new, whole)."""
        path = Path(path)
        header = json.dumps(asdict(self.stamp)).encode()
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            handle.write(_MAGIC + len(header).to_bytes(4, "little") + header)
            handle.write(faiss.serialize_index(self.index).tobytes())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VectorIndex | None:
        """Read a saved index, or None when it is missing, unreadable or inconsistent."""
        try:
            data = Path(path).read_bytes()
            if not data.startswith(_MAGIC):
                return None
            size = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 4], "little")
            start = len(_MAGIC) + 4
            stamp = Stamp(**json.loads(data[start : start + size]))
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8, offset=start + size))
        except (OSError, ValueError, TypeError, RuntimeError):
            return None
        if index.ntotal != stamp.count:
            return None
        return cls(index, stamp)


_MAGIC = b"CBIRVEC1"


def current_stamp(store: Store, codebook: Codebook, embedding: Embedding, *, kind: str = "flat") -> Stamp:
    """The stamp an up-to-date index of ``embedding`` over ``store`` must carry."""
    return Stamp(codebook.fingerprint, embedding.name, store.generation(), store.count(), kind)


def compact_kind(count: int) -> str:
    """The index kind for ``count`` compact vectors: exact flat below :data:`COMPACT_ANN_MIN_SIZE`, IVF from there."""
    return "ivf" if count >= COMPACT_ANN_MIN_SIZE else "flat"


#: From this many images the compact vectors are searched through IVF lists (approximate); below, a flat
#: scan is exact and already fast (README, "Scale": 100,000 x 128 floats take ~10 ms to scan on one core).
COMPACT_ANN_MIN_SIZE = 100_000
#: IVF lists visited per compact query: measured recall@10 >= 0.95 at 1M (bench_search.py).
COMPACT_NPROBE = 24


def save_mapped(index: VectorIndex, path: str | os.PathLike[str]) -> None:
    """Write ``index`` as a plain FAISS file (so it can be memory-mapped) and its stamp beside it, atomically each."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    faiss.write_index(index.index, str(tmp))
    os.replace(tmp, path)
    stamp_tmp = path.with_name(path.name + f".json.tmp{os.getpid()}")
    stamp_tmp.write_text(json.dumps(asdict(index.stamp)))
    os.replace(stamp_tmp, path.with_name(path.name + ".json"))


def load_mapped(path: str | os.PathLike[str]) -> VectorIndex | None:
    """Open a file of :func:`save_mapped` memory-mapped (processes share its pages), or None when missing or inconsistent."""
    path = Path(path)
    try:
        stamp = Stamp(**json.loads(path.with_name(path.name + ".json").read_text()))
        # Flat codes map with MMAP_IFC, IVF lists with MMAP (FAISS refuses the two together on IVF).
        mapped = faiss.IO_FLAG_MMAP_IFC if stamp.kind == "flat" else faiss.IO_FLAG_MMAP
        index = faiss.read_index(str(path), mapped | faiss.IO_FLAG_READ_ONLY)
    except (OSError, ValueError, TypeError, RuntimeError):
        return None
    if index.ntotal != stamp.count:
        return None
    return VectorIndex(index, stamp)


def ensure_compact_index(
    store: Store, codebook: Codebook, projection_id: int, embedding: Embedding, *, augmented: bool = False,
) -> VectorIndex:
    """The saved index of the stored compact vectors if up to date, else one built from them (and saved).

    The kind follows the size (:func:`compact_kind`); vectors are read from the store, not recomputed.
    ``augmented``: index the augmented search vectors (DBA) where stored (the embedding's name must say so).
    """
    stamp = current_stamp(store, codebook, embedding, kind=compact_kind(store.count()))
    path = store.derived_path(f"{embedding.name}.{stamp.kind}.faiss")
    loaded = load_mapped(path)
    if loaded is not None and loaded.stamp == stamp:
        loaded.set_nprobe(COMPACT_NPROBE)
        return loaded
    built = build_vector_index(store, embedding, stamp, batches=lambda: store.iter_vectors(projection_id, augmented=augmented))
    built.set_nprobe(COMPACT_NPROBE)
    try:
        save_mapped(built, path)
    except (OSError, RuntimeError):
        pass  # a read-only location costs only a rebuild next time
    return built


def build_vector_index(
    store: Store, embedding: Embedding, stamp: Stamp, *, batch: int = 10_000,
    batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None,
) -> VectorIndex:
    """Embed every stored histogram and build an index of ``stamp.kind``, streaming from the store.

    Memory beyond the index itself is one batch of rows (plus, for IVF, a training
    sample taken in a first pass over evenly spaced rows). ``batches``, when given,
    yields (ids, vectors) already embedded (the stored compact vectors) instead.
    """
    if batches is None:
        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for ids, histograms in store.iter_histograms(batch=batch):
                yield ids, embedding.transform(histograms)

    # The stamp keeps the kind asked for, whatever stands in for it.
    kind = stamp.kind if stamp.kind == "flat" or stamp.count >= IVF_MIN_SIZE else "flat"
    train = None
    if kind == "ivf":
        step = max(1, stamp.count // (64 * int(np.sqrt(stamp.count))))
        train = np.concatenate([V[::step] for _, V in batches()])
    as_built = Stamp(stamp.fingerprint, stamp.embedding, stamp.generation, stamp.count, kind)
    index: VectorIndex | None = None
    for ids, vectors in batches():
        if index is None:
            index = VectorIndex.empty(vectors.shape[1], as_built, train=train)
        index.add(ids, vectors)
    if index is None:
        index = VectorIndex.empty(1, Stamp(stamp.fingerprint, stamp.embedding, stamp.generation, 0, "flat"))
    # Rows written while we read make the count differ: the stamp then marks it stale, never fresh.
    index.stamp = Stamp(stamp.fingerprint, stamp.embedding, stamp.generation, index.size, stamp.kind)
    return index


def ensure_vector_index(store: Store, codebook: Codebook, embedding: Embedding, *, kind: str = "flat") -> VectorIndex:
    """The saved index of ``embedding`` if it is up to date, else one rebuilt (and saved) from the store.

    ``kind`` is ``"flat"`` (exact) or ``"ivf"`` (approximate; a flat index stands in below :data:`IVF_MIN_SIZE` images).
    """
    # Read the stamp before the rows: a concurrent write can only make the result look stale.
    stamp = current_stamp(store, codebook, embedding, kind=kind)
    path = store.derived_path(f"{embedding.name}.{kind}.faiss")
    loaded = VectorIndex.load(path)
    if loaded is not None and loaded.stamp == stamp:
        return loaded
    built = build_vector_index(store, embedding, stamp)
    try:
        built.save(path)
    except OSError:
        pass  # a read-only location costs only a rebuild next time
    return built
