import numpy as np
import pytest

from cbir.distances import soft_similarity, soften
from cbir.errors import BadInputError
from cbir.projection import fit_projection, project, projection_from_bytes, projection_to_bytes


@pytest.fixture(scope="module")
def centers() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.column_stack([rng.uniform(0, 100, 16), rng.uniform(-60, 60, (16, 2))])


def _histograms(n: int, *, seed: int, blocks: int = 3, k: int = 16, labels: np.ndarray | None = None) -> np.ndarray:
    """n histograms of ``blocks`` regions, each region's mass 1/blocks, drawn around 6 prototypes (``labels``)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.dirichlet(np.full(k, 0.3), size=(6, blocks))
    labels = rng.integers(0, 6, n) if labels is None else labels
    X = np.stack([rng.dirichlet(prototypes[c, b] * 60 + 0.05) for c in labels for b in range(blocks)])
    return (X.reshape(n, blocks * k) / blocks).astype(np.float32)


def test_vectors_are_the_normalized_pca_of_the_root_softened_histograms(centers):
    X = _histograms(300, seed=1)
    projection = fit_projection(X, centers, n_components=8, seed=0)
    V = project(X, projection)
    assert V.shape == (300, 8) and V.dtype == np.float32 and V.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, atol=1e-5)
    # The same numbers by hand: sqrt(soften), centred, on the top principal axes (up to sign), normalized.
    Z = np.sqrt(soften(X.astype(np.float64), soft_similarity(centers)))
    Z -= Z.mean(axis=0)
    singular, axes = np.linalg.svd(Z, full_matrices=False)[1:]
    # The randomized SVD finds the leading axes (up to sign) and nearly all the variance of the top 8.
    fitted = projection.components.astype(np.float64)
    cosines = np.abs((fitted[:3] * axes[:3]).sum(axis=1)) / np.linalg.norm(fitted[:3], axis=1)
    assert (cosines > 0.999).all()
    captured = (np.linalg.norm(Z @ fitted.T, axis=0) ** 2).sum()
    assert captured >= 0.995 * (singular[:8] ** 2).sum()
    # And the vectors are exactly those axes applied to the centred rows, normalized.
    by_hand = Z @ fitted.T
    np.testing.assert_allclose(V, by_hand / np.linalg.norm(by_hand, axis=1, keepdims=True), atol=1e-5)


def test_projection_keeps_neighbours_of_the_same_prototype_together(centers):
    labels = np.random.default_rng(20).integers(0, 6, 400)
    X = _histograms(400, seed=2, labels=labels)
    V = project(X, fit_projection(X, centers, n_components=16, seed=0))
    nearest = [np.argsort(((V - V[i]) ** 2).sum(axis=1))[1] for i in range(100)]
    assert np.mean(labels[nearest] == labels[:100]) >= 0.9


def test_a_row_gets_the_same_vector_alone_or_in_a_batch(centers):
    X = _histograms(200, seed=3)
    projection = fit_projection(X, centers, n_components=12, seed=0)
    batch = project(X, projection)
    for i in (0, 17, 199):
        np.testing.assert_allclose(project(X[i], projection)[0], batch[i], rtol=0, atol=1e-7)


def test_small_collections_get_fewer_dimensions(centers):
    X = _histograms(5, seed=4)
    projection = fit_projection(X, centers, n_components=128)
    assert projection.dim == 4 and project(X, projection).shape == (5, 4)
    single = fit_projection(X[:1], centers, n_components=128)
    assert single.dim == 1 and np.isfinite(project(X, single)).all()


def test_fit_is_seeded_and_the_fingerprint_follows_the_parameters(centers):
    X = _histograms(600, seed=5)
    a = fit_projection(X, centers, n_components=8, seed=3)
    b = fit_projection(X, centers, n_components=8, seed=3)
    assert a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.components, b.components)
    assert fit_projection(X, centers, n_components=8, seed=3, whiten=0.3).fingerprint != a.fingerprint


def test_whitening_divides_by_the_singular_values(centers):
    X = _histograms(300, seed=6)
    plain = fit_projection(X, centers, n_components=6, whiten=0.0)
    white = fit_projection(X, centers, n_components=6, whiten=1.0)
    lengths = np.linalg.norm(white.components, axis=1) / np.linalg.norm(plain.components, axis=1)
    assert lengths[0] == pytest.approx(1.0, rel=1e-4) and (np.diff(lengths) > 0).all()


def test_round_trip_through_bytes(centers):
    X = _histograms(100, seed=7)
    projection = fit_projection(X, centers, n_components=8)
    mean, components = projection_to_bytes(projection)
    loaded = projection_from_bytes(mean, components, projection.params, centers)
    assert loaded.fingerprint == projection.fingerprint
    np.testing.assert_array_equal(project(X, loaded), project(X, projection))


def test_bad_input_is_named(centers):
    with pytest.raises(BadInputError, match="no histograms"):
        fit_projection(np.empty((0, 48)), centers)
    with pytest.raises(BadInputError, match="50 bins"):
        fit_projection(np.ones((3, 50)), centers)
    projection = fit_projection(_histograms(20, seed=8), centers, n_components=4)
    with pytest.raises(BadInputError, match="32 bins do not fit a projection of 48"):
        project(np.ones(32), projection)
