import numpy as np
import pytest

from cbir import distances as D
from cbir.errors import BadInputError

x = np.array([0.5, 0.5, 0.0, 0.0])
y = np.array([0.25, 0.25, 0.5, 0.0])


def test_chi2_by_hand():
    # 0.5 * ((0.25^2 / 0.75) * 2 + 0.5^2 / 0.5 + 0/0 -> 0)
    expected = 0.5 * (2 * 0.0625 / 0.75 + 0.25 / 0.5)
    assert D.chi2(x, y[None])[0] == pytest.approx(expected)


def test_l1_l2_intersection_hellinger_by_hand():
    assert D.l1(x, y[None])[0] == pytest.approx(1.0)
    assert D.l2(x, y[None])[0] == pytest.approx(np.sqrt(2 * 0.0625 + 0.25))
    assert D.intersection(x, y[None])[0] == pytest.approx(1 - 0.5)
    bc = np.sqrt(0.5 * 0.25) * 2
    assert D.hellinger(x, y[None])[0] == pytest.approx(np.sqrt(1 - bc))


def test_qfd_by_hand():
    A = np.array([[1.0, 0.5, 0, 0], [0.5, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    z = x - y
    assert D.qfd(x, y[None], A)[0] == pytest.approx(np.sqrt(z @ A @ z))


def test_qfd_is_blockwise_for_spatial_layouts():
    A = np.array([[1.0, 0.3], [0.3, 1.0]])
    q = np.array([0.5, 0.0, 0.1, 0.4])
    r = np.array([0.0, 0.5, 0.3, 0.2])
    z = (q - r).reshape(2, 2)
    expected = np.sqrt(sum(block @ A @ block for block in z))
    assert D.qfd(q, r[None], A)[0] == pytest.approx(expected)


def test_qbic_and_gaussian_similarity():
    centers = np.array([[0.0, 0, 0], [3.0, 4, 0], [6.0, 8, 0]])
    np.testing.assert_allclose(D.qbic_similarity(centers), [[1, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 1]])
    g = D.gaussian_similarity(centers, sigma=5.0)
    assert g[0, 1] == pytest.approx(np.exp(-1.0))
    with pytest.raises(BadInputError):
        D.gaussian_similarity(centers, sigma=0)


@pytest.mark.parametrize("metric", D.METRICS)
def test_metric_axioms(metric):
    rng = np.random.default_rng(7)
    centers = rng.uniform(-50, 50, (8, 3)) + [50, 0, 0]
    X = rng.dirichlet(np.full(8, 0.3), size=30)
    distance = D.distance_function(metric, centers)
    for i in range(5):
        row = distance(X[i], X)
        assert row[i] == pytest.approx(0.0, abs=1e-7)
        assert (row >= 0).all()
        np.testing.assert_allclose(row, [distance(X[j], X[i : i + 1])[0] for j in range(len(X))], atol=1e-12)


def test_unknown_metric_and_bad_shapes_are_named():
    with pytest.raises(BadInputError, match="cosine"):
        D.check_metric("cosine")
    with pytest.raises(BadInputError, match=r"\(3,\)"):
        D.chi2(np.ones(3), np.ones((2, 4)))


@pytest.mark.parametrize("metric", D.METRICS)
def test_paired_distances_equal_the_single_query_ones(metric):
    from cbir.distances import distance_function, paired_distance_function

    rng = np.random.default_rng(3)
    centers = rng.uniform(0, 100, (8, 3))
    A = rng.dirichlet(np.full(16, 0.3), size=6)  # two 8-color blocks per histogram, sparse
    B = rng.dirichlet(np.full(16, 0.3), size=6)
    A[0, :5] = 0.0
    B[0, :5] = 0.0  # bins empty in both
    single = distance_function(metric, centers)
    expected = [single(a, b[None, :])[0] for a, b in zip(A, B)]
    np.testing.assert_allclose(paired_distance_function(metric, centers)(A, B), expected, rtol=1e-12, atol=1e-15)
