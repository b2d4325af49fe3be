import numpy as np
import pytest

from cbir.codebook import Codebook
from cbir.errors import CodebookMismatchError, StoreError
from cbir.store import Failure, ImageRecord, Store, as_stored


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "test.db")
    return request.getfixturevalue("postgres_url")


def _codebook(seed: int = 0) -> Codebook:
    return Codebook(np.random.default_rng(seed).uniform(0, 100, (16, 3)))


def _record(path: str, seed: int) -> ImageRecord:
    h = np.random.default_rng(seed).dirichlet(np.ones(16)).astype(np.float32)
    return ImageRecord(path, 100 + seed, 1.5 + seed, f"hash{seed}", 10, 20, h)


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no index at .*nope.db.*cbir index"):
        Store(tmp_path / "nope.db")


def test_not_a_cbir_database(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("create table x (a)").connection.commit()
    with pytest.raises(StoreError, match="not a cbir index"):
        Store(path)
    with pytest.raises(StoreError, match="database of something else"):
        Store(path, create=True)
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("select name from sqlite_master")] == ["x"]  # untouched


def test_round_trip(db):
    with Store(db, create=True) as store:
        assert store.codebook() is None and store.count() == 0 and store.generation() == 0
        codebook = _codebook()
        cid = store.save_codebook(codebook, "grid2")
        assert store.save_codebook(codebook, "grid2") == cid  # idempotent
        records = [_record(f"/img/{i}.jpg", i) for i in range(5)]
        store.write_batch(codebook_id=cid, added=records, failed=[Failure("/img/bad.jpg", 3, 1.0, "empty file")])
        assert store.count() == 5 and store.failure_count() == 1 and store.generation() == 1
    with Store(db) as store:
        cid2, loaded, layout = store.codebook()
        assert cid2 == cid and layout == "grid2" and loaded.fingerprint == codebook.fingerprint
        ids, X = store.all_histograms()
        assert list(ids) == sorted(ids) and X.dtype == np.float32
        np.testing.assert_allclose(X[2], records[2].histogram, rtol=2**-11)  # stored as float16: 11 significant bits
        np.testing.assert_array_equal(store.histograms([ids[3], ids[1]]), X[[3, 1]])
        assert store.paths(ids[:2]) == {int(ids[0]): "/img/0.jpg", int(ids[1]): "/img/1.jpg"}
        states = store.file_states()
        assert states["/img/4.jpg"].content_hash == "hash4" and states["/img/4.jpg"].size == 104
        assert store.failures()[0].reason == "empty file"


def test_updates_moves_removals_bump_the_generation(db):
    with Store(db, create=True) as store:
        cid = store.save_codebook(_codebook(), "global")
        store.write_batch(codebook_id=cid, added=[_record(f"/a/{i}.jpg", i) for i in range(3)])
        ids = {s.path: s.id for s in store.file_states().values()}
        store.write_batch(codebook_id=cid, moved=[(ids["/a/0.jpg"], "/b/0.jpg", 9.0)], removed=[ids["/a/1.jpg"]],
                          updated=[(ids["/a/2.jpg"], _record("/a/2.jpg", 7))])
        states = store.file_states()
        assert set(states) == {"/b/0.jpg", "/a/2.jpg"}
        assert states["/b/0.jpg"].id == ids["/a/0.jpg"] and states["/a/2.jpg"].content_hash == "hash7"
        assert store.generation() == 2
        store.write_batch(codebook_id=cid, touched=[(ids["/a/2.jpg"], 42.0)])
        assert store.generation() == 2  # mtime-only changes leave derived data valid


def test_a_second_codebook_is_refused(db):
    with Store(db, create=True) as store:
        store.save_codebook(_codebook(0), "global")
        with pytest.raises(CodebookMismatchError, match="already has a 16-color codebook"):
            store.save_codebook(_codebook(1), "global")


def test_writer_lock_is_exclusive(db):
    with Store(db, create=True) as first, Store(db) as second:
        with first.writer_lock(), pytest.raises(StoreError, match="database is busy"), second.writer_lock():
            pass
        with second.writer_lock():
            pass


def test_bad_url():
    with pytest.raises(StoreError, match="cannot open database"):
        Store("postgresql://nobody@127.0.0.1:1/none")


@pytest.mark.postgres
def test_postgres_adds_rows_by_copy_into_lz4_histograms(postgres_url):
    from sqlalchemy import event, text

    with Store(postgres_url, create=True) as store:
        cid = store.save_codebook(_codebook(), "global")
        inserts = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *args: inserts.append(statement) if "INSERT INTO images" in statement else None)
        records = [_record(f"/img/été {i}.jpg", i) for i in range(700)]
        store.write_batch(codebook_id=cid, added=records)
        assert inserts == []  # written by COPY, not by INSERT statements
        ids, X = store.all_histograms()
        paths = store.paths(ids)
        assert sorted(paths.values()) == sorted(r.path for r in records)
        by_path = {r.path: r for r in records}
        for image_id, histogram in zip(ids, X):
            record = by_path[paths[int(image_id)]]
            np.testing.assert_array_equal(histogram, as_stored(record.histogram))  # float16 values, as stored
            row = store.image(int(image_id))
            assert (row.size, row.mtime, row.content_hash, row.width, row.height) == (
                record.size, record.mtime, record.content_hash, record.width, record.height)
        with store.engine.connect() as conn:
            method = conn.execute(text("SELECT attcompression FROM pg_attribute "
                                       "WHERE attrelid = 'images'::regclass AND attname = 'histogram'")).scalar()
        assert method == "l"  # lz4, not the default pglz


def test_image_page_is_keyset_paged_newest_first(db):
    with Store(db, create=True) as store:
        codebook_id = store.save_codebook(_codebook(), "global")
        store.write_batch(codebook_id=codebook_id, added=[_record(f"/p/{i:02d}.jpg", i) for i in range(23)])
        by_path = {state.path: state.id for state in store.file_states().values()}
        store.write_batch(codebook_id=codebook_id, removed=[by_path["/p/05.jpg"], by_path["/p/17.jpg"]])
        statements: list[tuple[str, object]] = []
        from sqlalchemy import event

        event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append((args[2], args[3])))
        pages, before = [], None
        while True:
            page = store.image_page(before=before, limit=5)
            if not page:
                break
            pages.append(page)
            before = page[-1].id
        seen = [facts.id for page in pages for facts in page]
        assert seen == sorted((i for p, i in by_path.items() if p not in ("/p/05.jpg", "/p/17.jpg")), reverse=True)
        assert [len(p) for p in pages] == [5, 5, 5, 5, 1]
        first = pages[0][0]
        assert (first.path, first.size, first.width, first.height) == ("/p/22.jpg", 122, 10, 20)
        # Each page is a range read on the key: never an OFFSET that scans the rows before it.
        # (SQLAlchemy writes SQLite's LIMIT as "LIMIT ? OFFSET ?" with an offset of 0.)
        assert len(statements) == 6 and all("images.id <" in s for s, _ in statements[1:])  # 5 pages and the empty one
        assert all(list(p.values() if isinstance(p, dict) else p)[-1] == 0 for s, p in statements if "OFFSET" in s)
        if store.path is not None:
            with store.engine.connect() as conn:
                from sqlalchemy import text

                plan = " ".join(str(row[-1]) for row in conn.execute(
                    text("EXPLAIN QUERY PLAN SELECT id FROM images WHERE id < 10 ORDER BY id DESC LIMIT 5")))
            assert "SEARCH images USING INTEGER PRIMARY KEY" in plan
