import numpy as np
import pytest

from cbir.codebook import Codebook
from cbir.distances import DEFAULT_METRIC, METRICS
from cbir.embedding import embedding_for
from cbir.errors import BadImageError, BadInputError, CodebookMismatchError, StoreError
from cbir.store import ImageRecord, Store
from indexer import index_folder
from search import Searcher
from tests.conftest import PALETTE, solid, two_tone, write_image


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    from tests.conftest import gradient, noisy

    folder = tmp_path_factory.mktemp("imgs")
    names = list(PALETTE)
    for i, name in enumerate(names):
        write_image(folder / f"{name}.png", solid(PALETTE[name]))
        write_image(folder / f"{name}_noisy.jpg", noisy(solid(PALETTE[name]), 8, seed=i))
        write_image(folder / f"{name}_grad.png", gradient(PALETTE[name], PALETTE[names[(i + 2) % 8]]))
    db = tmp_path_factory.mktemp("db") / "index.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=24, layout="global+grid2", workers=1)
    return folder, db


@pytest.fixture
def searcher(indexed):
    searcher = Searcher.open(indexed[1])
    yield searcher
    searcher.store.close()


@pytest.mark.parametrize("metric", METRICS)
def test_index_path_ranks_exactly_like_brute_force(searcher, indexed, metric, index_path):
    for name in ("red_noisy.jpg", "sand_grad.png", "navy.png"):
        query = indexed[0] / name
        faiss_before, brute_before = index_path.faiss, index_path.brute
        fast = searcher.search_image(query, k=7, metric=metric)
        assert index_path.faiss > faiss_before and index_path.brute == brute_before  # ranked through FAISS
        brute = searcher.search_image(query, k=7, metric=metric, method="brute")
        assert index_path.brute == brute_before + 1
        assert [(r.id, r.distance) for r in fast] == [(r.id, r.distance) for r in brute]


@pytest.mark.parametrize("metric", METRICS)
def test_query_in_the_index_is_its_own_first_result(searcher, indexed, metric):
    results = searcher.search_image(indexed[0] / "green_grad.png", k=3, metric=metric)
    assert results[0].path.endswith("green_grad.png") and results[0].distance == 0.0
    assert [r.rank for r in results] == [1, 2, 3]
    assert results[1].distance <= results[2].distance


def test_similar_colors_rank_first(searcher, indexed):
    results = searcher.search_image(indexed[0] / "blue_noisy.jpg", k=2)
    assert {r.path.rsplit("/", 1)[1] for r in results} == {"blue_noisy.jpg", "blue.png"}


def test_search_by_array_equals_search_by_file(searcher, indexed):
    from cbir.images import load_image

    rgb = load_image(indexed[0] / "yellow_grad.png")
    assert searcher.search_image(rgb, k=5) == searcher.search_image(indexed[0] / "yellow_grad.png", k=5)


def test_k_larger_than_the_index(searcher):
    results = searcher.search_image(solid(PALETTE["red"]), k=1000)
    assert len(results) == 24 and len({r.id for r in results}) == 24


def test_bad_queries(searcher, indexed, tmp_path):
    with pytest.raises(CodebookMismatchError, match="24 colors"):
        searcher.search_histogram(np.ones(10) / 10)
    with pytest.raises(BadInputError, match="k must be at least 1"):
        searcher.search_histogram(np.ones(120) / 120, k=0)
    with pytest.raises(BadInputError, match="cosine"):
        searcher.search_histogram(np.ones(120) / 120, metric="cosine")
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(BadImageError, match="bad.jpg"):
        searcher.search_image(tmp_path / "bad.jpg")


def test_ties_are_broken_by_id(tmp_path, index_path):
    # Codewords over 100 L*a*b* units apart: chi2-soft's Gaussian spreading between them underflows to
    # exactly 0 (30 units apart it leaves ~1e-16 after the power 0.35, and the ties become rounding noise).
    codebook = Codebook(np.array([[0.0, -100, 0], [50.0, 0, 0], [100.0, 100, 0]]))
    histograms = [np.array([1, 0, 0]), np.array([0, 1, 0]), np.array([1, 0, 0]), np.array([0, 0, 1]), np.array([1, 0, 0])]
    with Store(tmp_path / "t.db", create=True) as store:
        cid = store.save_codebook(codebook, "global")
        store.write_batch(codebook_id=cid, added=[
            ImageRecord(f"/x/{i}.png", 1, 1.0, str(i), 1, 1, h.astype(np.float32)) for i, h in enumerate(histograms)
        ])
        searcher = Searcher(store)
        for method in ("exact", "brute"):
            results = searcher.search_histogram(np.array([0.5, 0.5, 0]), k=5, method=method)
            # ids 1..5 at 1/3 (four-way tie, in id order), then the one at 1
            assert [r.path for r in results] == ["/x/0.png", "/x/1.png", "/x/2.png", "/x/4.png", "/x/3.png"]
            assert results[0].distance == results[3].distance < results[4].distance
        assert index_path.faiss >= 1 and index_path.brute == 1


@pytest.mark.parametrize("fallback", [False, True], ids=["index-only", "as-shipped"])
def test_many_exact_searches_on_random_histograms(tmp_path, index_path, fallback):
    """The proven stopping rule on 3000 random histograms: identical to brute force for every metric.

    Index-only: the brute-force fallback off, every query ranked by FAISS candidates and the bound.
    As shipped: a query may end in the fallback, but only after FAISS searches found the bound too loose.
    """
    rng = np.random.default_rng(21)
    centers = np.column_stack([rng.uniform(0, 100, 32), rng.uniform(-60, 60, (32, 2))])
    X = rng.dirichlet(np.full(32, 0.15), size=3000).astype(np.float32)
    with Store(tmp_path / "r.db", create=True) as store:
        cid = store.save_codebook(Codebook(centers), "global")
        store.write_batch(codebook_id=cid, added=[ImageRecord(f"/r/{i}", 1, 1.0, str(i), 1, 1, h) for i, h in enumerate(X)])
        searcher = Searcher(store)
        searcher.brute_fallback = fallback
        proven = 0
        for metric in METRICS:
            for q in rng.dirichlet(np.full(32, 0.15), size=5):
                faiss_before, brute_before = index_path.faiss, index_path.brute
                fast = searcher.search_histogram(q, k=10, metric=metric)
                assert index_path.faiss > faiss_before
                proven += index_path.brute == brute_before
                brute = searcher.search_histogram(q, k=10, metric=metric, method="brute")
                assert [r.id for r in fast] == [r.id for r in brute]
        if not fallback:
            assert proven == 5 * len(METRICS)


def test_stale_vector_index_is_rebuilt(tmp_path):
    folder = tmp_path / "f"
    write_image(folder / "a.png", solid(PALETTE["red"]))
    write_image(folder / "b.png", two_tone(PALETTE["red"], PALETTE["white"]))
    db = tmp_path / "s.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        searcher = Searcher(store)
        assert len(searcher.search_image(folder / "a.png", k=10)) == 2
        write_image(folder / "c.png", solid(PALETTE["red"]))
        index_folder(folder, store, workers=1)
        results = searcher.search_image(folder / "a.png", k=10)  # same searcher, store changed underneath
        assert len(results) == 3 and results[1].path.endswith("c.png") and results[1].distance == 0.0
    # A corrupt saved index is ignored and rebuilt.
    for path in tmp_path.glob("s.db.*.faiss"):
        path.write_bytes(b"garbage")
    with Store(db) as store:
        assert len(Searcher(store).search_image(folder / "a.png", k=10)) == 3


def test_empty_store_is_an_error(tmp_path):
    with Store(tmp_path / "e.db", create=True) as store, pytest.raises(StoreError, match="no images indexed"):
        Searcher(store)


def test_approximate_mode_reranks_exactly_and_finds_most_neighbours(tmp_path):
    rng = np.random.default_rng(31)
    centers = np.column_stack([rng.uniform(0, 100, 32), rng.uniform(-60, 60, (32, 2))])
    prototypes = rng.dirichlet(np.full(32, 0.1), size=40)
    X = np.concatenate([rng.dirichlet(p * 200 + 0.01, size=100) for p in prototypes]).astype(np.float32)
    with Store(tmp_path / "a.db", create=True) as store:
        cid = store.save_codebook(Codebook(centers), "global")
        store.write_batch(codebook_id=cid, added=[ImageRecord(f"/a/{i}", 1, 1.0, str(i), 1, 1, h) for i, h in enumerate(X)])
        searcher = Searcher(store)
        searcher.ann_candidates = 200
        hits = 0
        for q in X[rng.choice(len(X), 20, replace=False)]:
            approx = searcher.search_histogram(q, k=10, method="ann")
            exact = searcher.search_histogram(q, k=10, method="exact")
            brute = {r.id: r.distance for r in searcher.search_histogram(q, k=len(X), method="brute")}
            assert all(brute[r.id] == r.distance for r in approx)  # distances are exact, only recall may drop
            hits += len({r.id for r in approx} & {r.id for r in exact})
        assert hits / 200 >= 0.9
        assert store.derived_path(f"{embedding_for(DEFAULT_METRIC, searcher.codebook.centers).name}.ivf.faiss").exists()
