"""The saved index of the compact vectors: built once, then kept up to date by adding, not rebuilding.

Beside the FAISS file (:func:`cbir.vectors.save_mapped`: memory-mapped when opened) lie

* ``.rows.npz``: the ids it holds, a 64-bit digest of each one's vector, and how many vectors
  its IVF lists were trained on;
* for the ``ivfpq`` kind, ``.vectors``: the full float32 vectors in the order of those ids
  (memory-mapped; the candidates of a query are re-ranked exactly from them).

When the store changed since the index was saved (its stamp's generation or count differ) but
the projection, the search vectors' kind and the index kind are the same, the stored vectors are
read and compared by digest: new rows are added to the IVF lists (IVF needs no retraining for
that), removed or changed ones (a changed photo, or DBA's search vectors of the neighbours of new
ones) are removed and added again. It is rebuilt (and retrained) instead when the collection has
grown past :data:`RETRAIN_GROWTH` x the vectors it was trained on, for a new projection or kind,
and for ``ivfpq`` when rows were removed or changed (its full vectors file is append-only).
A flat index is always rebuilt: reading the vectors, which any update needs, is all its build does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cbir.codebook import Codebook
from cbir.embedding import Embedding
from cbir.index_kind import COMPACT_NPROBE, compact_kind
from cbir.store import Store
from cbir.vectors import (
    Stamp, VectorIndex, build_vector_index, current_stamp, load_mapped, load_writable, save_mapped,
)

#: An IVF index is retrained (rebuilt) once the collection is this many times the vectors it was trained on.
RETRAIN_GROWTH = 4.0

_MIX = np.random.default_rng(0x5EED).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def digests(vectors: np.ndarray) -> np.ndarray:
    """A 64-bit digest of each row of ``vectors`` (n, m) float32: equal rows, equal digests."""
    bits = np.ascontiguousarray(vectors, dtype="<f4").view(np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        return (bits * _MIX[: bits.shape[1]]).sum(axis=1, dtype=np.uint64)


class _Recorder:
    """Wraps the (ids, vectors) batches of a build: keeps ids and digests of the last pass, and for
    ``ivfpq`` writes the full vectors to ``refine`` in that order (or keeps them, if it cannot be written)."""

    def __init__(self, batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], refine: Path | None) -> None:
        self.batches, self.refine = batches, refine
        self.ids: list[np.ndarray] = []
        self.digests: list[np.ndarray] = []
        self.kept: list[np.ndarray] | None = None

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.ids, self.digests = [], []
        handle = None
        if self.refine is not None:
            try:
                handle = open(self.refine, "wb")
            except OSError:
                self.kept = []
        try:
            for ids, vectors in self.batches():
                self.ids.append(ids)
                self.digests.append(digests(vectors))
                if handle is not None:
                    handle.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
                elif self.kept is not None:
                    self.kept.append(vectors)
                yield ids, vectors
        finally:
            if handle is not None:
                handle.close()

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.ids:
            return np.empty(0, np.int64), np.empty(0, np.uint64)
        return np.concatenate(self.ids), np.concatenate(self.digests)


#: Every kind :func:`cbir.index_kind.compact_kind` chooses; each has its own file name.
_KINDS = ("flat", "ivf", "ivfpq")


def _drop_other_kinds(path: Path, kind: str) -> None:
    """Delete the saved index of this embedding under any other kind (its stamp and sidecars too): a collection that
    crossed a size or memory boundary would otherwise keep its old index on disk for good."""
    suffix = f".{kind}.faiss"
    if not path.name.endswith(suffix):
        return
    for other in _KINDS:
        if other == kind:
            continue
        stale = path.with_name(path.name[: -len(suffix)] + f".{other}.faiss")
        for file in (stale, stale.with_name(stale.name + ".json"), *_sidecars(stale)):
            try:
                file.unlink(missing_ok=True)
            except OSError:
                pass  # read-only location: it only costs space


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".rows.npz"), path.with_name(path.name + ".vectors")


def _save_rows(path: Path, ids: np.ndarray, hashes: np.ndarray, trained: int) -> None:
    rows, _ = _sidecars(path)
    tmp = rows.with_name(rows.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, ids=ids, digests=hashes, trained=np.int64(trained))
    os.replace(tmp, rows)


def load_compact(path: Path) -> tuple[VectorIndex, np.ndarray, np.ndarray, int] | None:
    """(index, ids, digests, trained-on count) of a saved compact index, or None when missing or inconsistent."""
    index = load_mapped(path)
    rows, refine = _sidecars(path)
    if index is None:
        return None
    try:
        with np.load(rows) as saved:
            ids, hashes, trained = saved["ids"], saved["digests"], int(saved["trained"])
        if len(ids) != index.size:
            return None
        if index.stamp.kind == "ivfpq":
            dim = index.index.d
            if refine.stat().st_size != len(ids) * dim * 4:
                return None
            index.attach_refine(ids, np.memmap(refine, dtype="<f4", mode="r", shape=(len(ids), dim)))
    except (OSError, ValueError, KeyError):
        return None
    return index, ids, hashes, trained


def ensure_compact_index(
    store: Store, codebook: Codebook, projection_id: int, embedding: Embedding, *, augmented: bool = False,
) -> VectorIndex:
    """The saved index of the stored compact vectors if up to date, else updated in place or rebuilt (and saved).

    The kind follows the size and the memory budget (:func:`cbir.index_kind.compact_kind`); vectors are read
    from the store, not recomputed. ``augmented``: index the augmented search vectors (DBA) where stored (the
    embedding's name must say so).
    """
    stamp = current_stamp(store, codebook, embedding, kind=compact_kind(store.count()))
    path = store.derived_path(f"{embedding.name}.{stamp.kind}.faiss")

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return store.iter_vectors(projection_id, augmented=augmented)

    loaded = load_compact(path)
    if loaded is not None and loaded[0].stamp == stamp:
        loaded[0].set_nprobe(COMPACT_NPROBE)
        return loaded[0]
    if loaded is not None and stamp.kind != "flat" and stamp.count <= RETRAIN_GROWTH * max(1, loaded[3]):
        updated = _update(path, loaded, stamp, batches)
        if updated is not None:
            updated.set_nprobe(COMPACT_NPROBE)
            return updated
    return _build(path, store, embedding, stamp, batches)


def _build(path: Path, store: Store, embedding: Embedding, stamp: Stamp,
           batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> VectorIndex:
    _, refine = _sidecars(path)
    tmp_refine = refine.with_name(refine.name + f".tmp{os.getpid()}") if stamp.kind == "ivfpq" else None
    recorder = _Recorder(batches, tmp_refine)
    built = build_vector_index(store, embedding, stamp, batches=recorder)
    built.set_nprobe(COMPACT_NPROBE)
    ids, hashes = recorder.rows()
    try:
        if built.stamp.kind == "ivfpq" and built.base.ntotal and recorder.kept is None:
            os.replace(tmp_refine, refine)  # type: ignore[arg-type]
            built.attach_refine(ids, np.memmap(refine, dtype="<f4", mode="r", shape=(len(ids), built.index.d)))
        save_mapped(built, path)
        _save_rows(path, ids, hashes, built.size)
        _drop_other_kinds(path, built.stamp.kind)
    except (OSError, RuntimeError):
        pass  # a read-only location costs only a rebuild next time
    if built.stamp.kind == "ivfpq" and built.refine is None and built.size:
        built.attach_refine(ids, np.concatenate(recorder.kept) if recorder.kept else
                            np.fromfile(tmp_refine, dtype="<f4").reshape(len(ids), -1))  # type: ignore[arg-type]
    if tmp_refine is not None and tmp_refine.exists():
        tmp_refine.unlink()
    return built


def _update(path: Path, loaded: tuple[VectorIndex, np.ndarray, np.ndarray, int], stamp: Stamp,
            batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> VectorIndex | None:
    """Bring a saved IVF index to the store's vectors by adding and removing; None when it must be rebuilt."""
    old, old_ids, old_hashes, trained = loaded
    order = np.argsort(old_ids)
    known_ids, known_hashes = old_ids[order], old_hashes[order]
    new_ids, new_vectors, gone_or_changed, seen = [], [], [], []
    for ids, vectors in batches():
        hashes = digests(vectors)
        where = np.minimum(np.searchsorted(known_ids, ids), max(0, len(known_ids) - 1))
        present = (known_ids[where] == ids) if len(known_ids) else np.zeros(len(ids), bool)
        changed = present & (known_hashes[where] != hashes)
        fresh = ~present | changed
        gone_or_changed.append(ids[changed])
        new_ids.append(ids[fresh])
        new_vectors.append(vectors[fresh])
        seen.append(ids[present])
    seen_ids = np.concatenate(seen) if seen else np.empty(0, np.int64)
    removed = np.setdiff1d(known_ids, seen_ids, assume_unique=True)
    drop = np.concatenate([removed, *gone_or_changed])
    add_ids = np.concatenate(new_ids) if new_ids else np.empty(0, np.int64)
    add_vectors = np.concatenate(new_vectors) if new_vectors else np.empty((0, old.index.d), np.float32)
    if len(drop) and (stamp.kind == "ivfpq" or old.index is not old.base):
        return None  # ivfpq: its full vectors file is append-only; an IVF inside an id map cannot remove
    _, refine = _sidecars(path)
    index = load_writable(path, old.stamp)  # the saved one is memory-mapped, read-only
    index.remove(drop)
    index.add(add_ids, add_vectors)
    kept = np.isin(old_ids, drop, invert=True)
    ids = np.concatenate([old_ids[kept], add_ids])
    hashes = np.concatenate([old_hashes[kept], digests(add_vectors)])
    index.stamp = Stamp(stamp.fingerprint, stamp.embedding, stamp.generation, index.size, stamp.kind)
    try:
        if stamp.kind == "ivfpq":
            with open(refine, "ab") as handle:
                handle.write(np.ascontiguousarray(add_vectors, dtype="<f4").tobytes())
            index.attach_refine(ids, np.memmap(refine, dtype="<f4", mode="r", shape=(len(ids), index.index.d)))
        save_mapped(index, path)
        _save_rows(path, ids, hashes, trained)
    except (OSError, RuntimeError):
        return None
    return index
