"""The tuned default's parts: the BIC layout component and the chi2-soft metric (softening, bound, exact index search)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cbir.distances import chi2, distance_function, soft_similarity, soften
from cbir.embedding import embedding_for
from cbir.errors import BadInputError
from cbir.histogram import border_labels, histogram
from cbir.store import Store
from indexer import index_folder
from search import Searcher
from tests.conftest import PALETTE, gradient, noisy, solid, two_tone, write_image


@pytest.fixture(scope="module")
def centers() -> np.ndarray:
    return np.random.default_rng(3).uniform([0, -60, -60], [100, 60, 60], size=(16, 3)).astype(np.float32)


def _random_histograms(n: int, blocks: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.full(k, 0.2), size=(n, blocks)) / blocks
    X[rng.random((n, blocks, k)) < 0.4] = 0.0  # sparse, like real histograms
    X /= X.sum(axis=2, keepdims=True) * blocks
    return X.reshape(n, blocks * k).astype(np.float32)


def test_border_labels_by_hand() -> None:
    codes = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    assert border_labels(codes).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
    hist = histogram(codes, 2, layout="bic")
    # Interior pixels: six 0s; border pixels: three 0s and three 1s; each block weighs 1/2.
    assert hist.tolist() == pytest.approx([0.5, 0.0, 0.25, 0.25])
    flat = histogram(np.zeros((5, 5), dtype=np.int64), 2, layout="global+bic")
    # A flat image has no border pixels: the empty block takes the whole image's histogram.
    assert flat.tolist() == pytest.approx([1 / 2, 0, 1 / 4, 0, 1 / 4, 0])


def test_soften_keeps_block_mass_and_damps_dominant_colors(centers: np.ndarray) -> None:
    spread = soft_similarity(centers)
    assert spread.sum(axis=0) == pytest.approx(np.ones(16))
    X = _random_histograms(20, 3, 16, seed=1)
    soft = soften(X, spread)
    assert soft.reshape(20, 3, 16).sum(axis=2) == pytest.approx(X.reshape(20, 3, 16).sum(axis=2), abs=1e-6)
    assert (soft >= 0).all()
    # Square-root normalization without spreading (identity): a 0.9/0.1 block becomes 0.75/0.25.
    block = np.zeros(16)
    block[:2] = [0.9, 0.1]
    assert soften(block, np.eye(16), power=0.5)[:2] == pytest.approx([0.75, 0.25])
    with pytest.raises(BadInputError, match="blocks of 16"):
        soften(np.ones(10), spread)


def test_chi2_soft_is_chi2_of_softened_histograms(centers: np.ndarray) -> None:
    distance = distance_function("chi2-soft", centers)
    X = _random_histograms(300, 2, 16, seed=2)  # > 256 rows: the softened matrix is cached
    spread = soft_similarity(centers)
    for row in (0, 7, 299):
        expected = chi2(soften(X[row], spread), soften(X, spread))
        assert distance(X[row], X) == pytest.approx(expected, abs=1e-12)
        assert distance(X[row], X)[row] == pytest.approx(0.0, abs=1e-12)
    X2 = X.copy()
    X2[0] = X[1]  # a different matrix object: never served from the cache of X
    assert distance(X[1], X2)[0] == pytest.approx(0.0, abs=1e-12)


def test_chi2_soft_bound_and_exact_ranking_through_the_embedding(centers: np.ndarray) -> None:
    embedding = embedding_for("chi2-soft", centers)
    distance = distance_function("chi2-soft", centers)
    X = _random_histograms(400, 2, 16, seed=4)
    E = embedding.transform(X)
    for row in range(0, 400, 37):
        exact = distance(X[row], X)
        squared = ((E - E[row]) ** 2).sum(axis=1)
        assert (embedding.bound(squared) <= exact + 1e-12).all()


def test_index_search_ranks_like_brute_force_on_random_histograms_and_a_real_index(tmp_path: Path, index_path) -> None:
    folder = tmp_path / "images"
    names = list(PALETTE)
    for i, name in enumerate(names):
        other = PALETTE[names[(i + 3) % 8]]
        write_image(folder / f"{name}.png", solid(PALETTE[name]))
        write_image(folder / f"{name}_two.jpg", noisy(two_tone(PALETTE[name], other, 0.6), 12, seed=i))
        write_image(folder / f"{name}_grad.png", gradient(PALETTE[name], other))
    with Store(tmp_path / "real.db", create=True) as store:
        index_folder(folder, store, n_colors=16, layout="global+bic", workers=1)
        searcher = Searcher(store)
        for query in sorted(folder.iterdir())[::3]:
            faiss_before, brute_before = index_path.faiss, index_path.brute
            fast = searcher.search_image(query, k=6, metric="chi2-soft", method="exact")
            assert index_path.faiss > faiss_before and index_path.brute == brute_before  # the FAISS path ranked
            brute = searcher.search_image(query, k=6, metric="chi2-soft", method="brute")
            assert [(r.id, r.distance) for r in fast] == [(r.id, r.distance) for r in brute]
            assert fast[0].path == str(query) and fast[0].distance == pytest.approx(0.0, abs=1e-9)
        # Random histograms of the same shape, searched against the real index.
        rng = np.random.default_rng(9)
        for seed in range(5):
            hist = _random_histograms(1, 3, 16, seed=100 + seed)[0]
            k = int(rng.integers(1, 20))
            faiss_before, brute_before = index_path.faiss, index_path.brute
            fast = searcher.search_histogram(hist, k=k, metric="chi2-soft", method="exact")
            assert index_path.faiss > faiss_before and index_path.brute == brute_before
            brute = searcher.search_histogram(hist, k=k, metric="chi2-soft", method="brute")
            assert [(r.id, r.distance) for r in fast] == [(r.id, r.distance) for r in brute]


def test_global_distribution_ignores_pixel_class_blocks() -> None:
    from cbir.histogram import dominant_colors, global_distribution

    codes = np.zeros((6, 6), dtype=np.int64)
    codes[:, 4:] = 1  # a third of the image, all of it next to the border
    hist = histogram(codes, 2, layout="bic+grid3")
    assert global_distribution(hist, 2, layout="bic+grid3") == pytest.approx([2 / 3, 1 / 3])
    # Summing every block instead: interior 1/4 of color 1, border 1/2, grid cells 1/3 (weights 1/4, 1/4, 1/2).
    assert global_distribution(hist, 2)[1] == pytest.approx(0.25 * 0.25 + 0.25 * 0.5 + 0.5 / 3)
    assert dominant_colors(hist, 2, layout="bic+grid3") == [(0, pytest.approx(2 / 3)), (1, pytest.approx(1 / 3))]
    with pytest.raises(BadInputError, match="11 blocks"):
        global_distribution(hist[:4], 2, layout="bic+grid3")


def test_spreading_matrix_has_no_subnormal_entries() -> None:
    """Codewords ~80 Lab units apart give Gaussian weights in the subnormal range (e^-720), which made
    every product with the matrix four times slower: they are flushed to exact zeros."""
    centers = np.array([[0.0, 0, 0], [80.5, 0, 0], [40.0, 0, 0], [41.0, 0, 0]])
    spread = soft_similarity(centers)
    tiny = np.finfo(np.float64).tiny
    assert not ((spread > 0) & (spread < tiny)).any()
    assert spread[1, 0] == 0.0 and spread[3, 2] > 0.1
    np.testing.assert_allclose(spread.sum(axis=0), 1.0, rtol=1e-12)


def test_a_stored_row_is_at_exactly_zero_from_itself_whatever_the_batch_shape() -> None:
    # One query and a 300-row batch are softened by matrix products of different shapes; the
    # rounding of those may differ by CPU, but a row's distance to itself must be 0, and a
    # one-step float16 change in a single bin must not be swallowed as noise.
    wide = np.random.default_rng(3).uniform([0, -60, -60], [100, 60, 60], size=(128, 3)).astype(np.float32)
    X = _random_histograms(300, 4, 128, seed=11).astype(np.float16).astype(np.float32)
    d = distance_function("chi2-soft", wide)
    for i in (0, 137, 299):
        distances = d(X[i], X)
        assert distances[i] == 0.0
        assert np.sum(distances == 0.0) == 1
    changed = X[5].copy()
    j = int(np.flatnonzero(changed)[0])
    changed[j] = np.nextafter(np.float16(changed[j]), np.float16(1)).astype(np.float32)
    assert d(changed, X)[5] > 0.0
