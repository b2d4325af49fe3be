"""The derived vector index: FAISS flat, IVF and IVF-PQ indexes over embedded histograms or compact vectors.

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
from typing import TYPE_CHECKING

import faiss
import numpy as np

from cbir.embedding import Embedding
from cbir.errors import BadInputError
from cbir.index_kind import COMPACT_ANN_MIN_SIZE, COMPACT_NPROBE, PQ_BYTES, PQ_CANDIDATES, compact_kind  # noqa: F401

if TYPE_CHECKING:  # only annotations: importing this module does not open the store (SQLAlchemy)
    from cbir.codebook import Codebook
    from cbir.store import Store

#: Below this many rows an IVF index has nothing to gain: a flat one stands in for it.
IVF_MIN_SIZE = 1000


def use_threads(n: int) -> None:
    """Threads FAISS and BLAS may use (process-wide). One query at a time gains nothing from more, and on a
    busy machine spinning OpenMP threads made a flat scan four times slower, and BLAS threads the small
    products of projecting a query (5,000 images: default search 18-32 ms against 6 ms): the CLI sets 1."""
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(max(1, int(n)))
    threadpool_limits(limits=max(1, int(n)), user_api="blas")


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
        A flat index wrapped in ``IndexIDMap2``, or an IVF one holding its ids (ids = store row ids).
    stamp : Stamp
    """

    def __init__(self, index: faiss.Index, stamp: Stamp) -> None:
        self.index = index
        self.stamp = stamp
        #: ``ivfpq``: (ids sorted, positions, full vectors (n, dim)) its candidates are re-ranked with.
        self.refine: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def empty(cls, dim: int, stamp: Stamp, *, train: np.ndarray | None = None, seed: int = 0) -> VectorIndex:
        """A new index of ``stamp.kind`` for vectors of ``dim``; an IVF index is trained on ``train`` (t, dim).

        ``"flat"`` is an exact L2 scan; ``"ivf"`` an IndexIVFFlat with about sqrt(n) lists for
        n = ``stamp.count`` (trained on at most 64 vectors a list: seconds at a million); ``"ivfpq"``
        the same lists of :data:`PQ_BYTES`-byte product-quantized codes (give it full vectors to
        re-rank with: :meth:`attach_refine`).
        """
        if stamp.kind == "flat":
            base: faiss.Index = faiss.IndexFlatL2(dim)
        elif stamp.kind in ("ivf", "ivfpq"):
            if train is None or not len(train):
                raise BadInputError("an IVF index needs training vectors")
            n_lists = int(max(1, min(np.sqrt(stamp.count), len(train) // 39)))
            if stamp.kind == "ivf":
                base = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, n_lists, faiss.METRIC_L2)
            else:
                sub = PQ_BYTES if dim % PQ_BYTES == 0 else 1
                bits = 8 if len(train) >= 256 * 4 else 4  # FAISS needs a few points per codeword
                base = faiss.IndexIVFPQ(faiss.IndexFlatL2(dim), dim, n_lists, sub, bits)
            base.cp.seed = seed
            base.cp.niter = 10
            base.train(np.ascontiguousarray(train[: 64 * n_lists] if stamp.kind == "ivf" else train, dtype=np.float32))
            base.nprobe = 16
        else:
            raise BadInputError(f"unknown index kind {stamp.kind!r}; choose flat, ivf or ivfpq")
        # IVF keeps ids itself (and can remove some, which an IndexIDMap2 around it would get wrong).
        return cls(faiss.IndexIDMap2(base) if stamp.kind == "flat" else base, stamp)

    @property
    def base(self) -> faiss.Index:
        """The index proper (inside its id map, if it has one)."""
        inner = getattr(self.index, "index", None)
        return faiss.downcast_index(inner) if inner is not None else self.index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, dim) under store row ids (n,)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise BadInputError(f"expected ids (n,) and vectors (n, m), got {ids.shape} and {vectors.shape}")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove store row ids from an IVF index (not one inside an id map: it would renumber wrongly)."""
        if self.index is not self.base:
            raise BadInputError("only an IVF index holding its own ids can remove vectors")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return int(self.index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids)))) if len(ids) else 0

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def set_nprobe(self, nprobe: int) -> None:
        """How many IVF lists to visit (no effect on a flat index)."""
        base = self.base
        if hasattr(base, "nprobe"):
            base.nprobe = int(nprobe)

    @property
    def n_lists(self) -> int:
        return int(getattr(self.base, "nlist", 1))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances and ids of the ``k`` nearest, shapes (q, k); missing slots have id -1.

        With full vectors attached (``ivfpq``), :data:`PQ_CANDIDATES` x k candidates are re-ranked by
        their exact distances, so the distances are exact (the ranking still approximate).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), self.size)) if self.size else 1
        if self.refine is None:
            return self.index.search(queries, k)
        squared, found = self.index.search(queries, min(self.size, PQ_CANDIDATES * k))
        out_d = np.full((len(queries), k), np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (query, ids) in enumerate(zip(queries, found)):
            ids = ids[ids >= 0]
            exact = ((self.vectors_of(ids) - query) ** 2).sum(axis=1)
            order = np.lexsort((ids, exact))[:k]
            out_d[row, : len(order)], out_i[row, : len(order)] = exact[order], ids[order]
        return out_d, out_i

    def attach_refine(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Full vectors (n, dim) of ``ids`` (any order; may be a memory map) to re-rank candidates with."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(vectors):
            raise BadInputError(f"{len(ids)} ids for {len(vectors)} vectors")
        order = np.argsort(ids, kind="stable")
        self.refine = (ids[order], order, vectors)

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """The full vectors of stored ``ids`` (a flat index's own, or the attached ones), float32 (n, dim)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.refine is None:
            return self.index.reconstruct_batch(ids)
        sorted_ids, order, vectors = self.refine
        where = np.searchsorted(sorted_ids, ids)
        if len(ids) and (where.max() >= len(sorted_ids) or (sorted_ids[where] != ids).any()):
            raise BadInputError("ids not in the index asked for their vectors")
        positions = order[where]
        # Read in position order (a memory map pages in forward), then put back in the order asked.
        back = np.argsort(positions)
        out = np.empty((len(ids), vectors.shape[1]), dtype=np.float32)
        out[back] = vectors[positions[back]]
        return out

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


def load_writable(path: str | os.PathLike[str], stamp: Stamp) -> VectorIndex:
    """A file of :func:`save_mapped` read whole into memory (so vectors can be added or removed)."""
    return VectorIndex(faiss.read_index(str(path)), stamp)


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
    if kind != "flat":
        # 64 vectors a list; PQ's 256 codewords a sub-quantizer want ~10,000 (FAISS warns below 9,984).
        wanted = 64 * int(np.sqrt(stamp.count)) if kind == "ivf" else max(64 * int(np.sqrt(stamp.count)), 10_000)
        step = max(1, stamp.count // wanted)
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
