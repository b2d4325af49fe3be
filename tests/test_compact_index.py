"""The saved compact index: its kind by size and memory budget, and new images added without a rebuild."""

from types import SimpleNamespace

import numpy as np
import pytest

import cbir.index_kind
from cbir.codebook import Codebook
from cbir.compact_index import RETRAIN_GROWTH, digests, load_compact
from cbir.errors import BadInputError
from cbir.index_kind import compact_kind, parse_bytes
from cbir.store import ImageRecord, Store, as_stored_vectors
from cbir.vectors import VectorIndex
from indexer.project import update_vectors
from search import Searcher
from tests.test_compact import _sparse_histograms

CENTERS = np.random.default_rng(2).uniform([0, -60, -60], [100, 60, 60], size=(32, 3)).astype(np.float32)


@pytest.fixture
def counted(monkeypatch):
    """Real index builds (``VectorIndex.empty``) and rows added to an index, counted."""
    counts = SimpleNamespace(builds=0, added=0)
    empty, add = VectorIndex.empty.__func__, VectorIndex.add

    def counted_empty(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts.builds += 1
        return empty(cls, *args, **kwargs)

    def counted_add(self, ids, vectors):  # type: ignore[no-untyped-def]
        counts.added += len(ids)
        return add(self, ids, vectors)

    monkeypatch.setattr(VectorIndex, "empty", classmethod(counted_empty))
    monkeypatch.setattr(VectorIndex, "add", counted_add)
    return counts


def _write(store: Store, X: np.ndarray, start: int, *, augment: int | None = None) -> None:
    cid = store.codebook()[0] if store.count() else store.save_codebook(Codebook(CENTERS), "grid3-classes+classes")
    store.write_batch(codebook_id=cid, added=[
        ImageRecord(f"/x/{start + i}.png", 1, 1.0, str(start + i), 1, 1, h) for i, h in enumerate(X)])
    update_vectors(store, cid, store.codebook()[1], augment=augment)


def _saved_matches_store(store: Store, searcher: Searcher) -> None:
    """The saved index holds exactly the store's searched vectors (ids and digests)."""
    projection_id, _, embedding = searcher.compact_state()
    kind = compact_kind(store.count())
    path = store.derived_path(f"{embedding.name}.{kind}.faiss")
    index, ids, hashes, _ = load_compact(path)
    stored = list(store.iter_vectors(projection_id, augmented=True))
    stored_ids = np.concatenate([p[0] for p in stored])
    order = np.argsort(ids)
    assert index.size == store.count() == len(ids)
    assert np.array_equal(ids[order], stored_ids)
    assert np.array_equal(hashes[order], digests(np.concatenate([p[1] for p in stored])))


def _finds_itself(searcher: Searcher, X: np.ndarray, ids: list[int]) -> None:
    searcher.rerank = 0
    for h, i in zip(X, ids):
        assert searcher.search_histogram(h, k=1)[0].id == i


def test_kind_follows_size_and_memory_budget(monkeypatch):
    from search.searcher import APPROX_MIN_SIZE

    # cbir search says "approximate" exactly when the compact index is.
    assert APPROX_MIN_SIZE == cbir.index_kind.COMPACT_ANN_MIN_SIZE
    assert compact_kind(APPROX_MIN_SIZE - 1) == "flat" and compact_kind(APPROX_MIN_SIZE) == "ivf"
    assert compact_kind(5_000) == "flat"
    assert compact_kind(1_000_000) == "ivf"  # 512 MB of vectors: inside the 2 GB default budget
    assert compact_kind(5_000_000) == "ivfpq"  # 2.4 GB
    assert compact_kind(1_000_000, budget=parse_bytes("400M")) == "ivfpq"  # 488 MiB over 400
    monkeypatch.setenv("CBIR_INDEX_MEMORY", "100K")
    assert compact_kind(150) == "flat" and compact_kind(3_000) == "ivfpq"
    assert parse_bytes("2G") == 2 * 1024**3 and parse_bytes("1048576") == 1024**2 and parse_bytes("1.5kb") == 1536
    for bad in ("lots", "-1M", "0"):
        with pytest.raises(BadInputError, match="memory budget"):
            parse_bytes(bad)


def test_ivf_index_grows_by_adding_and_is_retrained_past_its_growth_limit(tmp_path, monkeypatch, counted):
    monkeypatch.setattr(cbir.index_kind, "COMPACT_ANN_MIN_SIZE", 1000)
    X = _sparse_histograms(6000, seed=7)
    with Store(tmp_path / "grow.db", create=True) as store:
        _write(store, X[:1200], 0)
        Searcher(store).search_histogram(X[0], k=5)
        assert counted.builds == 1 and counted.added == 1200
        # 300 new images (DBA also changes the search vectors of some old ones): added, not rebuilt.
        _write(store, X[1200:1500], 1200)
        counted.added = 0
        searcher = Searcher(store)  # a new process: opens the saved index from disk
        searcher.search_histogram(X[0], k=5)
        assert counted.builds == 1 and 300 <= counted.added < 1500
        _saved_matches_store(store, searcher)
        _finds_itself(searcher, X[1200:1500:10], [store.count() - 300 + i + 1 for i in range(0, 300, 10)])
        # Removed images leave the saved index without a rebuild and are never found.
        gone = [int(i) for i in range(1, 40)]
        store.write_batch(codebook_id=store.codebook()[0], removed=gone)
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert counted.builds == 1
        _saved_matches_store(store, searcher)
        assert not {r.id for q in X[:39] for r in searcher.search_histogram(q, k=20)} & set(gone)
        # Past RETRAIN_GROWTH x the 1,200 vectors it was trained on: rebuilt (and retrained) once.
        _write(store, X[1500:6000], 1500)
        assert store.count() > RETRAIN_GROWTH * 1200
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert counted.builds == 2
        _saved_matches_store(store, searcher)


def test_ivfpq_over_the_memory_budget_reranks_exactly_and_appends(tmp_path, monkeypatch, counted):
    monkeypatch.setenv("CBIR_INDEX_MEMORY", "500K")  # 3,000 x 128 float32 = 1.5 MB: over it
    X = _sparse_histograms(3300, seed=8)
    with Store(tmp_path / "pq.db", create=True) as store:
        _write(store, X[:3000], 0, augment=0)
        searcher = Searcher(store)
        searcher.rerank = 0
        exact = [[r.id for r in searcher.search_histogram(q, k=10, method="exact")] for q in X[:30]]
        approx = searcher.search_histogram(X[0], k=10)
        assert searcher._indexes[searcher._compact_key()].stamp.kind == "ivfpq" and counted.builds == 1
        # Distances are the exact ones of the full vectors (re-ranked), not PQ estimates.
        brute = {r.id: r.distance for r in searcher.search_histogram(X[0], k=3000, method="brute")}
        assert all(r.distance == pytest.approx(brute[r.id], abs=1e-5) for r in approx)
        found = [[r.id for r in searcher.search_histogram(q, k=10)] for q in X[:30]]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
        assert recall >= 0.7  # structureless rows are IVF's worst case; exact re-ranking keeps most
        path = store.derived_path(f"{searcher.compact_state()[2].name}.ivfpq.faiss")
        assert path.with_name(path.name + ".vectors").stat().st_size == 3000 * 128 * 4
        # New images only (DBA off: no old search vector changes): appended to the codes and the vectors file.
        _write(store, X[3000:3150], 3000, augment=0)
        builds, counted.added = counted.builds, 0
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert counted.builds == builds and counted.added == 150
        assert path.with_name(path.name + ".vectors").stat().st_size == 3150 * 128 * 4
        _saved_matches_store(store, searcher)
        _finds_itself(searcher, X[3000:3150:15], [3001 + i for i in range(0, 150, 15)])
        # Old rows changed (DBA on again recomputes search vectors): the append-only vectors file means a rebuild.
        _write(store, X[3150:3300], 3150, augment=5)
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert counted.builds == builds + 1
        _saved_matches_store(store, searcher)
        _finds_itself(searcher, X[3150:3300:15], [3151 + i for i in range(0, 150, 15)])


def test_refit_rewrites_dense_histograms_sparse_and_keeps_rankings(tmp_path):
    import sqlite3

    from cbir.store import as_stored

    X = _sparse_histograms(300, seed=9)
    path = tmp_path / "dense.db"
    with Store(path, create=True) as store:
        _write(store, X, 0)
    with sqlite3.connect(path) as conn:  # 200 rows as schema 1 wrote them: dense float32
        for i in range(1, 201):
            conn.execute("update images set histogram = ? where id = ?", (X[i - 1].astype("<f4").tobytes(), i))
    with Store(path) as store:
        searcher = Searcher(store)
        before = [[(r.id, r.distance) for r in searcher.search_histogram(q, k=10, metric="chi2-soft", method="brute")]
                  for q in as_stored(X[:20])]
        report = update_vectors(store, store.codebook()[0], store.codebook()[1], refit=True)
        assert report.repacked == 200 and report.fitted
        assert update_vectors(store, store.codebook()[0], store.codebook()[1], refit=True).repacked == 0
        np.testing.assert_array_equal(store.all_histograms()[1], as_stored(X))
        searcher = Searcher(store)
        after = [[(r.id, r.distance) for r in searcher.search_histogram(q, k=10, metric="chi2-soft", method="brute")]
                 for q in as_stored(X[:20])]
    with sqlite3.connect(path) as conn:
        assert {n % 4 for (n,) in conn.execute("select length(histogram) from images")} == {3}  # all sparse
    for old, new in zip(before, after):
        assert old[0][0] == new[0][0] and new[0][1] == 0.0  # its own row first; at 0 once stored rounded alike
        # The same rankings up to near-ties: float16 moves distances by about 1e-4 relative.
        assert [d for _, d in new] == pytest.approx([d for _, d in old], rel=2e-3, abs=1e-6)


def test_dba_takes_one_full_pass_when_most_images_are_new(tmp_path):
    from cbir.augment import augment, augment_setting
    from indexer.neighbours import update_augmented

    X = _sparse_histograms(200, seed=10)
    with Store(tmp_path / "dba.db", create=True) as store:
        _write(store, X, 0)
        pid = store.projection_row()[0]
        ids = np.concatenate([p[0] for p in store.iter_vectors(pid)])
        plain = np.concatenate([p[1] for p in store.iter_vectors(pid)])
        k, alpha = augment_setting(store)["neighbours"], augment_setting(store)["alpha"]
        store.set_search_vectors(ids[:40], None)  # a few new: only they and the lists they enter are redone
        assert 40 <= update_augmented(store, pid) < 200
        store.set_search_vectors(ids[:120], None)  # most new: one self-join over everything
        assert update_augmented(store, pid) == 200
        searched = np.concatenate([p[1] for p in store.iter_vectors(pid, augmented=True)])
        np.testing.assert_allclose(searched, as_stored_vectors(augment(plain, k, alpha=alpha)), atol=1e-6)


def test_a_new_index_kind_deletes_the_old_kinds_files(tmp_path, monkeypatch):
    monkeypatch.setattr(cbir.index_kind, "COMPACT_ANN_MIN_SIZE", 1000)
    X = _sparse_histograms(1500, seed=5)

    def files(store: Store, searcher: Searcher) -> dict[str, list[str]]:
        name = searcher.compact_state()[2].name
        return {kind: sorted(p.name.removeprefix(f"{store.path.name}.{name}.{kind}.faiss")
                             for p in tmp_path.glob(f"*.{name}.{kind}.faiss*")) for kind in ("flat", "ivf", "ivfpq")}

    with Store(tmp_path / "kinds.db", create=True) as store:
        _write(store, X[:600], 0, augment=0)
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert files(store, searcher) == {"flat": ["", ".json", ".rows.npz"], "ivf": [], "ivfpq": []}
        _write(store, X[600:1200], 600, augment=0)  # past the (lowered) IVF threshold
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert files(store, searcher) == {"flat": [], "ivf": ["", ".json", ".rows.npz"], "ivfpq": []}
        monkeypatch.setenv("CBIR_INDEX_MEMORY", "300K")  # 1,200 x 512 B of vectors: over it
        searcher = Searcher(store)
        searcher.search_histogram(X[0], k=5)
        assert files(store, searcher) == {"flat": [], "ivf": [], "ivfpq": ["", ".json", ".rows.npz", ".vectors"]}
        _finds_itself(searcher, X[:50:10], [1 + i for i in range(0, 50, 10)])
