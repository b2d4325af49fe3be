"""How compact vectors are stored: tagged float16, a search vector slot DBA rewrites in place, older float32 rows."""

import sqlite3

import numpy as np

from cbir.codebook import Codebook
from cbir.projection import DEFAULT_COMPONENTS, project, stored_projection
from cbir.store import (
    RESERVED_DIMENSIONS,
    ImageRecord,
    Store,
    as_stored,
    as_stored_vectors,
    pending_search_vector,
    vector_to_bytes,
    vectors_from_bytes,
)
from indexer.neighbours import update_augmented
from indexer.project import update_vectors
from search import Searcher
from tests.test_compact import _sparse_histograms

CENTERS = np.random.default_rng(2).uniform([0, -60, -60], [100, 60, 60], size=(32, 3)).astype(np.float32)


def _pages(path) -> int:  # type: ignore[no-untyped-def]
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]


def _image_pages(path) -> int:  # type: ignore[no-untyped-def]
    """Pages of the images table alone (the projection's own row grows the file too)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return conn.execute("select count(*) from dbstat where name = 'images'").fetchone()[0]


def _fill(store: Store, n: int) -> tuple[int, Codebook]:
    """n rows as an index run writes them: a first batch projected after, the rest written with their vectors."""
    codebook = Codebook(CENTERS)
    cid = store.save_codebook(codebook, "grid3-classes+classes")
    X = _sparse_histograms(n, seed=4)
    store.write_batch(codebook_id=cid, added=[ImageRecord(f"/x/{i}.png", 1, 1.0, str(i), 1, 1, h)
                                               for i, h in enumerate(X[:300])])
    update_vectors(store, cid, codebook, augment=0)  # no DBA yet: every slot stays pending
    pid, projection = stored_projection(store, codebook.centers)
    V = project(as_stored(X[300:]), projection)
    store.write_batch(codebook_id=cid, projection_id=pid, added=[
        ImageRecord(f"/x/{300 + i}.png", 1, 1.0, str(300 + i), 1, 1, h, v) for i, (h, v) in enumerate(zip(X[300:], V))])
    return pid, codebook


def test_a_vector_is_float16_behind_a_tag_and_decodes_exactly_as_rounded():
    v = np.random.default_rng(0).normal(size=(5, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    blobs = [vector_to_bytes(x) for x in v]
    assert {len(b) for b in blobs} == {257} and len(pending_search_vector(128)) == 257
    np.testing.assert_array_equal(vectors_from_bytes(blobs), as_stored_vectors(v))
    np.testing.assert_allclose(vectors_from_bytes(blobs), v, rtol=2**-11, atol=2**-24)
    # A float32 blob (as stores before wrote them) and float16 ones in one batch.
    mixed = vectors_from_bytes([v[0].astype("<f4").tobytes(), blobs[1]])
    np.testing.assert_array_equal(mixed, np.stack([v[0], as_stored_vectors(v[1])]))


def test_dba_rewrites_the_search_vector_slots_in_place(tmp_path):
    path = tmp_path / "index.db"
    with Store(path, create=True) as store:
        pid, _ = _fill(store, 1500)
        assert store.unaugmented_ids(pid).size == 1500  # the slots are written, and mean "not augmented"
        plain = np.concatenate([p[1] for p in store.iter_vectors(pid)])
        np.testing.assert_array_equal(np.concatenate([p[1] for p in store.iter_vectors(pid, augmented=True)]), plain)
        before = _pages(path)
        assert update_augmented(store, pid, neighbours=3, alpha=3.0) == 1500
        assert store.unaugmented_ids(pid).size == 0
        searched = np.concatenate([p[1] for p in store.iter_vectors(pid, augmented=True)])
        assert not np.array_equal(searched, plain)
        # Same size written over the same size: not one page more (a NULL slot filled later grew every row).
        assert _pages(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from images where length(search_vector) != length(vector)").fetchone() == (0,)


def test_a_store_with_float32_vectors_is_read_and_its_unaugmented_rows_found(tmp_path):
    """An index written before (float32 vectors, NULL for "not augmented") opened by this code."""
    path = tmp_path / "index.db"
    with Store(path, create=True) as store:
        pid, codebook = _fill(store, 400)
        update_augmented(store, pid, neighbours=3, alpha=3.0)
        plain = np.concatenate([p[1] for p in store.iter_vectors(pid)])
        ids, searched = (np.concatenate(p) for p in zip(*store.iter_vectors(pid, augmented=True)))
    searched[0, 0] = 0.0  # its float32 blob starts with a 0 byte, as the pending slot does: still augmented
    with sqlite3.connect(path) as conn:
        for i, row_id in enumerate(ids.tolist()):
            conn.execute("update images set vector = ?, search_vector = ? where id = ?",
                         (plain[i].astype("<f4").tobytes(),
                          None if i % 10 == 3 else searched[i].astype("<f4").tobytes(), row_id))
        assert conn.execute("select count(distinct length(vector)) from images").fetchone() == (1,)
    with Store(path) as store:
        np.testing.assert_array_equal(np.concatenate([p[1] for p in store.iter_vectors(pid)]), plain)
        old_searched = np.concatenate([p[1] for p in store.iter_vectors(pid, augmented=True)])
        unaugmented = np.arange(len(ids)) % 10 == 3
        np.testing.assert_array_equal(old_searched[~unaugmented], searched[~unaugmented])
        np.testing.assert_array_equal(old_searched[unaugmented], plain[unaugmented])
        np.testing.assert_array_equal(store.unaugmented_ids(pid), ids[unaugmented])
        # A search over the old rows finds a stored image first.
        results = Searcher(store).search_histogram(store.histograms([int(ids[5])])[0], k=3)
        assert results[0].id == ids[5] and results[0].distance == 0.0
        # The next index run's DBA pass fills the NULL ones (float16), the others are read as they were.
        assert update_augmented(store, pid) >= unaugmented.sum()
        assert store.unaugmented_ids(pid).size == 0
        X = _sparse_histograms(20, seed=8)
        V = project(as_stored(X), stored_projection(store, codebook.centers)[1])
        store.write_batch(codebook_id=store.codebook()[0], projection_id=pid, added=[
            ImageRecord(f"/y/{i}.png", 1, 1.0, f"y{i}", 1, 1, h, v) for i, (h, v) in enumerate(zip(X, V))])
        mixed_ids, mixed = (np.concatenate(p) for p in zip(*store.iter_vectors(pid)))
        np.testing.assert_array_equal(mixed[: len(ids)], plain)
        np.testing.assert_array_equal(mixed[len(ids):], as_stored_vectors(V))
    with sqlite3.connect(path) as conn:
        lengths = dict(conn.execute("select length(vector), count(*) from images group by 1").fetchall())
    assert lengths == {512: 400, 257: 20}


def test_rows_written_before_the_fit_are_projected_and_augmented_in_place(tmp_path):
    """A first index run writes every row, then fits and projects them all: the rows must not grow."""
    assert RESERVED_DIMENSIONS == DEFAULT_COMPONENTS
    path = tmp_path / "first.db"
    with Store(path, create=True) as store:
        codebook = Codebook(CENTERS)
        cid = store.save_codebook(codebook, "grid3-classes+classes")
        X = _sparse_histograms(1200, seed=6)
        store.write_batch(codebook_id=cid, added=[ImageRecord(f"/x/{i}.png", 1, 1.0, str(i), 1, 1, h)
                                                   for i, h in enumerate(X)])
        before = _image_pages(path)
        report = update_vectors(store, cid, codebook)  # fit, project every row, DBA (3 neighbours)
        pid = store.projection_row()[0]
        assert report.projected == 1200 and store.projected_count(pid) == 1200
        assert store.unaugmented_ids(pid).size == 0
        V = np.concatenate([p[1] for p in store.iter_vectors(pid)])
        np.testing.assert_array_equal(V, as_stored_vectors(project(as_stored(X), stored_projection(store, CENTERS)[1])))
        assert _image_pages(path) == before
