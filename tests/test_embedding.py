import numpy as np
import pytest

from cbir.distances import METRICS, distance_function, qbic_similarity
from cbir.embedding import embedding_for, quadratic_form_transform


def _histograms(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(d, 0.2), size=n)


@pytest.fixture(scope="module")
def centers() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.column_stack([rng.uniform(0, 100, 24), rng.uniform(-80, 80, (24, 2))])


def test_qfd_embedding_ranks_exactly_like_the_quadratic_form(centers):
    A = qbic_similarity(centers)
    T = quadratic_form_transform(A)
    X = _histograms(300, 24, 12)
    for q in X[:10]:
        brute = np.einsum("ni,ij,nj->n", X - q, A, X - q)
        embedded = ((X - q) @ T.T) ** 2
        np.testing.assert_allclose(embedded.sum(axis=1), brute, atol=1e-12)
        np.testing.assert_array_equal(np.argsort(embedded.sum(axis=1), kind="stable"), np.argsort(brute, kind="stable"))


def test_qbic_form_is_nonnegative_on_zero_sum_vectors(centers):
    # Conditional positive definiteness of 1 - d/dmax: clipping removes only rounding noise.
    A = qbic_similarity(centers)
    P = np.eye(24) - 1.0 / 24
    assert np.linalg.eigvalsh(P @ A @ P).min() > -1e-9


@pytest.mark.parametrize("metric", METRICS)
def test_embedding_bound_never_exceeds_the_metric(metric, centers):
    embedding = embedding_for(metric, centers)
    distance = distance_function(metric, centers)
    X = _histograms(400, 24 * 4, 13).reshape(400, 4, 24)
    X = (X / X.sum(axis=2, keepdims=True) / 4).reshape(400, -1)  # a 4-region layout, equal mass per region
    E = embedding.transform(X)
    for i in range(8):
        h = ((E - E[i]) ** 2).sum(axis=1)
        exact = distance(X[i], X)
        assert (embedding.bound(h) <= exact + 1e-12).all()
