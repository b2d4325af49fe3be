"""DBA and alpha-QE on the compact vectors: the formula, the FAISS self-join, the store's search vectors."""

import json

import numpy as np
import pytest

from cbir.augment import augment, expand, self_join, weighted_mean
from cbir.errors import BadInputError
from cbir.store import Store, as_stored, as_stored_vectors
from indexer import index_folder
from indexer.neighbours import update_augmented
from search import Searcher
from tests.conftest import make_color_folder, noisy, solid, write_image


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url")


def _unit(rows):
    V = np.asarray(rows, dtype=np.float64)
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def test_weighted_mean_by_hand():
    v = np.array([[1.0, 0.0]])
    # Similarities 0.6 and -0.8: weights 0.6 ** 2 = 0.36 and 0 (a negative similarity weighs nothing).
    N = np.array([[[0.6, 0.8], [-0.8, 0.6]]])
    got = weighted_mean(v, N, alpha=2.0)
    want = np.array([1 + 0.36 * 0.6, 0.36 * 0.8])
    np.testing.assert_allclose(got[0], want / np.linalg.norm(want), rtol=1e-6)
    assert got.dtype == np.float32
    with pytest.raises(BadInputError, match="alpha"):
        weighted_mean(v, N, alpha=-1.0)
    with pytest.raises(BadInputError, match="shape"):
        weighted_mean(v, N[:, :, :1])


def test_augment_tiny_case_and_self_join_in_batches():
    V = _unit([[1, 0], [0.8, 0.6], [0, 1]]).astype(np.float32)
    # Row 0's nearest other row is 1 (cos 0.8), row 1's is 0 (0.8 > 0.6), row 2's is 1 (0.6).
    assert self_join(V, 1).tolist() == [[1], [0], [1]]
    got = augment(V, 1, alpha=1.0)
    by_hand = [V[0] + 0.8 * V[1], V[1] + 0.8 * V[0], V[2] + 0.6 * V[1]]
    np.testing.assert_allclose(got, _unit(by_hand), rtol=1e-6)
    np.testing.assert_array_equal(augment(V, 0), V)
    # Batches of 7 rows give the lists of a brute-force all-pairs ranking (ties by row number).
    R = _unit(np.random.default_rng(0).normal(size=(50, 8))).astype(np.float32)
    sims = R @ R.T
    np.fill_diagonal(sims, -np.inf)
    brute = np.array([np.lexsort((np.arange(50), -s))[:3] for s in sims])
    np.testing.assert_array_equal(self_join(R, 3, batch=7), brute)
    # Fewer rows than neighbours: every other row, padded with -1.
    assert self_join(V, 4).tolist() == [[1, 2, -1, -1], [0, 2, -1, -1], [1, 0, -1, -1]]


def test_expand_is_the_weighted_mean_of_the_query_and_its_top_results():
    q = np.array([1.0, 0.0], dtype=np.float32)
    top = _unit([[0.8, 0.6], [0.6, -0.8]]).astype(np.float32)
    want = q + 0.8**3 * top[0] + 0.6**3 * top[1]
    np.testing.assert_allclose(expand(q, top, alpha=3.0)[0], want / np.linalg.norm(want), rtol=1e-6)
    np.testing.assert_allclose(expand(q, np.zeros((0, 2)))[0], q)


def _l2(V, q):
    """L2 distances as the searcher sums them (float64), ties then broken by id."""
    return np.sqrt(((V.astype(np.float64) - q) ** 2).sum(axis=1))


def _folder(root):
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220), (220, 40, 220),
              (120, 120, 120), (250, 150, 50), (90, 40, 10), (10, 90, 40)]
    for n, c in enumerate(colors):
        write_image(root / f"c{n}.png", solid(c))
        write_image(root / f"c{n}_noisy.jpg", noisy(solid(c), 12, seed=n))
    return root


def _vectors(store, augmented):
    pid = store.projection_row()[0]
    parts = list(store.iter_vectors(pid, augmented=augmented))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_index_stores_augmented_vectors_and_an_insert_updates_the_lists_it_enters(tmp_path, db):
    folder = _folder(tmp_path / "photos")
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        pid = store.projection_row()[0]
        assert update_augmented(store, pid, neighbours=2, alpha=3.0) == 20
        assert json.loads(store.meta("augment")) == {"neighbours": 2, "alpha": 3.0, "projection": pid}
        ids, plain = _vectors(store, False)
        _, searched = _vectors(store, True)
        np.testing.assert_array_equal(searched, as_stored_vectors(augment(plain, 2, alpha=3.0)))  # stored float16
        assert not np.allclose(searched, plain)
        # The searcher ranks by the augmented vectors; the query itself is not augmented.
        searcher = Searcher(store)
        results = searcher.search_image(folder / "c3.png", k=20, method="brute")
        assert searcher._augmented and results[0].distance == 0.0
        assert any(r.path.endswith("c3.png") and r.distance == 0.0 for r in results)

        before = dict(zip(ids.tolist(), searched))
        write_image(folder / "new" / "c3_copy.png", noisy(solid((220, 220, 40)), 4, seed=99))
        write_image(folder / "new" / "c7_copy.png", noisy(solid((250, 150, 50)), 4, seed=98))
        report = index_folder(folder, store, workers=1)
        assert report.added == 2 and store.unaugmented_ids(pid).size == 0
        ids, plain = _vectors(store, False)
        _, searched = _vectors(store, True)
        new = set(ids.tolist()) - set(before)
        lists = self_join(plain, 2)
        updated = 0
        for row, i in enumerate(ids.tolist()):
            entered = i in new or any(int(ids[j]) in new for j in lists[row])
            if entered:
                # Its own vector from its current neighbours: the weighted mean formula.
                want = weighted_mean(plain[row : row + 1], plain[lists[row]][None], alpha=3.0)[0]
                np.testing.assert_allclose(searched[row], as_stored_vectors(want), atol=1e-6)
                updated += 1
            else:
                np.testing.assert_array_equal(searched[row], before[i])
        assert updated > 2  # the copies entered some stored images' lists
        # A full pass (--refit) gives the same vectors here: every list the copies entered was found.
        refit = index_folder(folder, store, workers=1, refit=True)
        assert refit.vectors["augmented"] == 22


def test_expand_ranks_by_the_expanded_query(tmp_path):
    from click.testing import CliRunner

    from cbir.cli import main
    from cbir.projection import project

    folder = make_color_folder(tmp_path / "photos")
    db = str(tmp_path / "index.db")
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        searcher = Searcher(store)
        searcher.rerank = 0  # the compact L2 order alone, to check it by hand
        ids, V = searcher.compact_vectors()
        projection = searcher.compact_state()[1]
        changed = 0
        for query in sorted(folder.glob("*.*")):
            q = project(as_stored(searcher.descriptor.of_file(query).histogram), projection)[0].astype(np.float64)
            first = np.lexsort((ids, _l2(V, q)))[:3]
            q2 = expand(q, V[first], alpha=1.0)[0].astype(np.float64)
            want = ids[np.lexsort((ids, _l2(V, q2)))].tolist()
            searcher.expand = 3
            got = [r.id for r in searcher.search_image(query, k=len(ids), method="brute")]
            assert got == want
            searcher.expand = 0
            plain = [r.id for r in searcher.search_image(query, k=len(ids), method="brute")]
            changed += plain != got
        assert changed  # expansion moved some ranking
    runner = CliRunner()
    out = runner.invoke(main, ["search", str(folder / "red.png"), "--db", db, "--expand", "3", "--json", "-k", "5"])
    assert out.exit_code == 0, out.output
    with Store(db) as store:
        searcher = Searcher(store)
        searcher.expand = 3
        want = [r.path for r in searcher.search_image(folder / "red.png", k=5)]
    assert [r["path"] for r in json.loads(out.stdout)["results"]] == want
    bad = runner.invoke(main, ["search", str(folder / "red.png"), "--db", db, "--expand", "2", "--metric", "chi2"])
    assert bad.exit_code == 2 and "--expand 2" in bad.output and "Traceback" not in bad.output


def test_cli_index_augment_is_kept_and_can_be_turned_off(tmp_path):
    from click.testing import CliRunner

    from cbir.cli import main

    folder = make_color_folder(tmp_path / "photos")
    db = str(tmp_path / "index.db")
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(folder), "--db", db, "--colors", "16", "-q", "--augment", "2"]).exit_code == 0
    with Store(db) as store:
        assert json.loads(store.meta("augment"))["neighbours"] == 2
        _, plain = _vectors(store, False)
        np.testing.assert_array_equal(_vectors(store, True)[1], as_stored_vectors(augment(plain, 2)))
    write_image(folder / "more" / "violet.png", solid((140, 60, 220)))
    assert runner.invoke(main, ["index", str(folder), "--db", db, "-q"]).exit_code == 0
    with Store(db) as store:
        assert json.loads(store.meta("augment"))["neighbours"] == 2 and store.count() == 25
        assert store.unaugmented_ids(store.projection_row()[0]).size == 0
    assert runner.invoke(main, ["index", str(folder), "--db", db, "-q", "--augment", "0"]).exit_code == 0
    with Store(db) as store:
        np.testing.assert_array_equal(_vectors(store, True)[1], _vectors(store, False)[1])
        assert not Searcher(store).compact_state()[2].name.count("dba")
    bad = runner.invoke(main, ["index", str(folder), "--db", db, "--augment", "-1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_large_self_join_goes_through_ivf_and_finds_most_true_neighbours(monkeypatch):
    import cbir.augment as module

    rng = np.random.default_rng(1)
    centers = _unit(rng.normal(size=(40, 16)))
    R = _unit(centers[rng.integers(0, 40, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(np.float32)
    exact = self_join(R, 3)
    monkeypatch.setattr(module, "JOIN_EXACT_MAX", 1000)
    assert type(module.knn_index(R)).__name__ == "IndexIVFFlat"
    approx = self_join(R, 3)
    recall = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(approx, exact, strict=True)])
    assert 0.9 <= recall < 1.0 or np.array_equal(approx, exact)
