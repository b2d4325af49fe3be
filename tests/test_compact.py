"""The compact search end to end: vectors written by index runs, refit, old indexes, the sparse store."""

import sqlite3

import numpy as np
import pytest

from cbir.distances import distance_function
from cbir.store import SCHEMA_VERSION, ImageRecord, Store, as_stored, histogram_from_bytes, histogram_to_bytes
from indexer import index_folder
from indexer.project import refit_advice, update_vectors
from search import Searcher
from tests.conftest import make_color_folder, noisy, solid, write_image


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url")


def _unprojected(store: Store) -> int:
    found = store.projection_row()
    return store.count() - (store.projected_count(found[0]) if found else 0)


def test_every_row_gets_a_vector_and_search_is_compact(color_folder, db):
    with Store(db, create=True) as store:
        report = index_folder(color_folder, store, n_colors=16, workers=2)
        assert report.vectors["fitted"] and report.vectors["projected"] == 24 and _unprojected(store) == 0
        searcher = Searcher(store)
        assert searcher.compact_state() is not None
        results = searcher.search_image(color_folder / "red.png", k=3)
        assert searcher.note is None and results[0].path.endswith("red.png") and results[0].distance == 0.0
        # The flat FAISS path and a scan of every stored vector rank the same.
        brute = searcher.search_image(color_folder / "red.png", k=24, method="brute")
        fast = searcher.search_image(color_folder / "red.png", k=24)
        assert [(r.id, round(r.distance, 12)) for r in brute] == [(r.id, round(r.distance, 12)) for r in fast]
        # Images added later are projected by the writer with the same projection (no refit below 2x growth).
        write_image(color_folder / "more" / "violet.png", solid((140, 60, 220)))
        write_image(color_folder / "more" / "violet_noisy.jpg", noisy(solid((140, 60, 220)), 6, seed=9))
        again = index_folder(color_folder, store, workers=2)
        assert again.added == 2 and not again.vectors["fitted"] and again.vectors["projected"] == 0
        assert _unprojected(store) == 0
        top = Searcher(store).search_image(color_folder / "more" / "violet.png", k=2)
        assert [r.path.rsplit("/", 1)[1] for r in top] == ["violet.png", "violet_noisy.jpg"]


def test_refit_reprojects_everything_and_a_grown_collection_is_noticed(tmp_path):
    small = make_color_folder(tmp_path / "a")
    with Store(tmp_path / "i.db", create=True) as store:
        index_folder(small, store, n_colors=16, workers=1)
        first = store.projection_row()
        assert refit_advice(store, store.codebook()[1]) is None
        refit = index_folder(small, store, workers=1, refit=True)
        second = store.projection_row()
        assert refit.vectors["fitted"] and refit.vectors["projected"] == 24 and second[0] != first[0]
        assert store.projected_count(second[0]) == 24
        # Below the fitting sample's size a collection that doubled is refitted by the next run by itself.
        params = dict(second[3], collection=5)
        store.save_projection(store.codebook()[0], second[1], second[2], params, "grown")
        automatic = update_vectors(store, store.codebook()[0], store.codebook()[1])
        assert automatic.fitted and automatic.projected == 24 and store.projection_row()[3]["collection"] == 24
        # Past it, the projection stays; info advises a refit once the collection is GROWTH_ADVICE times larger.
        row = store.projection_row()
        grown_id = store.save_projection(store.codebook()[0], row[1], row[2], dict(row[3], collection=5), "big")
        for ids, X in store.iter_unprojected(grown_id):
            store.set_vectors(grown_id, ids, np.zeros((len(ids), 3), np.float32))
        assert "--refit" in refit_advice(store, store.codebook()[1])


def test_a_crash_between_batches_resumes_where_it_stopped(tmp_path, color_folder):
    with Store(tmp_path / "i.db", create=True) as store:
        index_folder(color_folder, store, n_colors=16, workers=1)
        projection_id = store.projection_row()[0]
        codebook_id, codebook, _ = store.codebook()
        # A refit that died after its first batch: new projection active, 10 rows re-projected.
        row = store.projection_row()
        new_id = store.save_projection(codebook_id, row[1], row[2], dict(row[3], seed=1), "refit")
        ids, X = next(store.iter_unprojected(new_id, batch=10))
        from cbir.projection import project, stored_projection

        store.set_vectors(new_id, ids, project(X, stored_projection(store, codebook.centers)[1]))
        assert store.projected_count(new_id) == 10 and store.projected_count(projection_id) == 14
        searcher = Searcher(store)
        searcher.search_image(color_folder / "red.png", k=3)
        assert searcher.note is not None and "no compact vectors" in searcher.note  # exact fallback, said so
        assert "no compact vector yet" in refit_advice(store, codebook)
        report = update_vectors(store, codebook_id, codebook)
        assert not report.fitted and report.projected == 14 and store.projected_count(new_id) == 24


def test_old_index_is_upgraded_and_searches_exactly_until_reindexed(tmp_path, color_folder):
    path = tmp_path / "old.db"
    with Store(path, create=True) as store:
        index_folder(color_folder, store, n_colors=16, workers=1)
        ids, X = store.all_histograms()
    # Make it what schema 1 wrote: dense float32 blobs, no vector columns, no projections table.
    with sqlite3.connect(path) as conn:
        for i, h in zip(ids.tolist(), X):
            conn.execute("update images set histogram = ? where id = ?", (h.astype("<f4").tobytes(), i))
        conn.execute("drop index ix_images_projection_id")
        conn.execute("alter table images drop column vector")
        conn.execute("alter table images drop column projection_id")
        conn.execute("drop table projections")
        conn.execute("delete from meta where key = 'projection'")
        conn.execute("update meta set value = '1' where key = 'schema'")
    with Store(path) as store:  # upgraded in place
        assert store.meta("schema") == str(SCHEMA_VERSION) and store.projection_row() is None
        np.testing.assert_array_equal(store.all_histograms()[1], X)  # dense rows are still read
        searcher = Searcher(store)
        exact = searcher.search_image(color_folder / "red.png", k=5)
        assert "ranked by exact chi2-soft" in searcher.note
        assert exact == searcher.search_image(color_folder / "red.png", k=5, metric="chi2-soft")
        assert "older cbir" in refit_advice(store, store.codebook()[1])
    with Store(path, create=True) as store:
        report = index_folder(color_folder, store, workers=1)
        assert report.vectors["fitted"] and report.vectors["projected"] == 24
        searcher = Searcher(store)
        assert searcher.search_image(color_folder / "red.png", k=1)[0].distance == 0.0 and searcher.note is None


def _sparse_histograms(n: int, *, seed: int) -> np.ndarray:
    """Histograms shaped like the default layout's: 30 blocks of 32 bins, most bins empty, pixel-count values."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(0.08, 40, size=(n, 30 * 32)))
    blocks = counts.reshape(n, 30, 32).astype(np.float64)
    blocks /= np.maximum(blocks.sum(axis=2, keepdims=True), 1) * 30
    return blocks.reshape(n, -1).astype(np.float32)


def test_sparse_float16_rows_round_trip_and_keep_rankings_up_to_ties():
    X = _sparse_histograms(400, seed=1)
    for h in X[:20]:
        blob = histogram_to_bytes(h)
        assert len(blob) == 3 + 4 * np.count_nonzero(h) < 4 * len(h)
        np.testing.assert_array_equal(histogram_from_bytes(blob), as_stored(h))
        np.testing.assert_allclose(histogram_from_bytes(blob), h, rtol=2**-11)
    stored = np.stack([histogram_from_bytes(histogram_to_bytes(h)) for h in X])
    centers = np.random.default_rng(2).uniform([0, -60, -60], [100, 60, 60], size=(32, 3))
    for metric in ("chi2-soft", "chi2", "qfd", "l1"):
        distance = distance_function(metric, centers)
        for q in range(0, 400, 40):
            full, rounded = distance(X[q], X), distance(stored[q], stored)
            order = np.argsort(full, kind="stable")
            # Wherever float32 distances differ by more than float16 rounding can move them, the order holds.
            gaps = np.diff(full[order]) > 2e-3 * full[order][1:]
            assert (np.diff(rounded[order])[gaps] > 0).all(), metric


def test_a_dense_blob_of_schema_1_is_still_read(tmp_path):
    h = _sparse_histograms(1, seed=3)[0]
    assert np.array_equal(histogram_from_bytes(h.astype("<f4").tobytes()), h)
    with Store(tmp_path / "s.db", create=True) as store:
        from cbir.codebook import Codebook

        cid = store.save_codebook(Codebook(np.zeros((32, 3), np.float32) + np.arange(32)[:, None]), "global")
        store.write_batch(codebook_id=cid, added=[ImageRecord("/x.png", 1, 1.0, "h", 1, 1, h)])
        assert np.array_equal(store.all_histograms()[1][0], as_stored(h))


def test_the_default_reranks_the_compact_top_by_exact_chi2_soft(color_folder, tmp_path):
    with Store(tmp_path / "r.db", create=True) as store:
        index_folder(color_folder, store, n_colors=16, workers=1)
        searcher = Searcher(store)
        query = searcher.descriptor.of_file(color_folder / "navy_white.png").histogram
        searcher.rerank = 0
        compact = searcher.search_histogram(query, k=24)
        searcher.rerank = 8
        default = searcher.search_histogram(query, k=24)
        chi2_soft = {r.id: r.distance for r in searcher.search_histogram(query, k=24, metric="chi2-soft", method="brute")}
        # The first 8 are the compact top 8 ordered by chi2-soft; the rest keep the compact order.
        assert {r.id for r in default[:8]} == {r.id for r in compact[:8]}
        assert [r.id for r in default[:8]] == sorted((r.id for r in compact[:8]), key=lambda i: (chi2_soft[i], i))
        assert [r.id for r in default[8:]] == [r.id for r in compact[8:]]
        assert all(r.distance == chi2_soft[r.id] for r in default)
        assert [r.distance for r in compact] == sorted(r.distance for r in compact)  # L2 between vectors


def test_large_collections_use_a_memory_mapped_ivf_index(tmp_path, monkeypatch):
    import cbir.index_kind
    import cbir.vectors
    from cbir.codebook import Codebook
    from cbir.projection import stored_projection

    monkeypatch.setattr(cbir.index_kind, "COMPACT_ANN_MIN_SIZE", 1500)  # the IVF path without 100,000 rows
    X = _sparse_histograms(3000, seed=4)
    centers = np.random.default_rng(2).uniform([0, -60, -60], [100, 60, 60], size=(32, 3)).astype(np.float32)
    with Store(tmp_path / "big.db", create=True) as store:
        cid = store.save_codebook(Codebook(centers), "grid3-classes+classes")
        store.write_batch(codebook_id=cid, added=[ImageRecord(f"/x/{i}.png", 1, 1.0, str(i), 1, 1, h) for i, h in enumerate(X)])
        update_vectors(store, cid, store.codebook()[1])
        searcher = Searcher(store)
        searcher.rerank = 0
        hits = 0
        for q in X[:40]:
            approximate = searcher.search_histogram(q, k=10)
            exact = searcher.search_histogram(q, k=10, method="exact")
            hits += len({r.id for r in approximate} & {r.id for r in exact})
        # Approximate (structureless rows are IVF's worst case: 0.80 here), yet most neighbours are found.
        assert 0.7 <= hits / 400 < 1.0
        fingerprint = stored_projection(store, centers)[1].fingerprint
        name = searcher.compact_state()[2].name  # the augmented vectors' index (DBA on by default)
        assert name.startswith(f"compact-{fingerprint}")
        saved = store.derived_path(f"{name}.ivf.faiss")
        assert saved.exists() and saved.with_name(saved.name + ".json").exists()
        reopened = cbir.vectors.load_mapped(saved)
        assert reopened is not None and reopened.size == 3000 and reopened.n_lists > 1
