import numpy as np
import pytest

from cbir.codebook import Codebook, learn_codebook
from cbir.color import rgb_to_lab
from cbir.errors import BadInputError
from tests.conftest import PALETTE, gradient, noisy, solid


def _corpus(seed: int = 0) -> list[np.ndarray]:
    colors = list(PALETTE.values())
    return [noisy(gradient(colors[i], colors[(i + 3) % 8], size=(40, 60)), 10, seed + i) for i in range(8)]


def test_same_seed_same_codebook_and_fingerprint():
    a, _ = learn_codebook(_corpus(), n_colors=16, seed=5)
    b, _ = learn_codebook(_corpus(), n_colors=16, seed=5)
    c, _ = learn_codebook(_corpus(), n_colors=16, seed=6)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.n_colors == 16 and a.centers.dtype == np.float32
    assert a.params["seed"] == 5 and a.params["requested_colors"] == 16


def test_codewords_cover_the_corpus_colors():
    images = [solid(c, size=(30, 30)) for c in PALETTE.values()] + _corpus()
    codebook, note = learn_codebook(images, n_colors=32, seed=0)
    assert note is None
    lab = rgb_to_lab(np.array(list(PALETTE.values()), dtype=np.uint8))
    nearest = np.sqrt(((lab[:, None] - codebook.centers[None]) ** 2).sum(axis=2)).min(axis=1)
    assert nearest.max() < 5.0  # every pure color of the corpus has a codeword within 5 Lab units


def test_fewer_distinct_colors_than_requested():
    images = [solid(PALETTE["red"]), solid(PALETTE["blue"]), solid(PALETTE["white"])]
    codebook, note = learn_codebook(images, n_colors=64, seed=0)
    assert codebook.n_colors == 3
    assert note is not None and "3 distinct colors" in note
    np.testing.assert_allclose(np.sort(codebook.rgb_centers(), axis=0),
                               np.sort(np.array([PALETTE["red"], PALETTE["blue"], PALETTE["white"]]), axis=0))


@pytest.mark.parametrize("n_colors", [8, 2000])
def test_size_out_of_range(n_colors):
    with pytest.raises(BadInputError, match=str(n_colors)):
        learn_codebook(_corpus(), n_colors=n_colors)


def test_no_images():
    with pytest.raises(BadInputError, match="no readable images"):
        learn_codebook([], n_colors=16)


def test_codebook_quantizes_to_its_nearest_codewords():
    codebook, _ = learn_codebook(_corpus(), n_colors=16, seed=0)
    rgb = _corpus(seed=9)[0]
    lab = rgb_to_lab(rgb.reshape(-1, 3))
    expected = ((lab[:, None] - codebook.centers[None].astype(np.float64)) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(codebook.quantize(rgb).reshape(-1), expected)


def test_bad_centers():
    with pytest.raises(BadInputError, match=r"\(4, 2\)"):
        Codebook(np.zeros((4, 2)))


def test_learning_a_codebook_needs_neither_the_store_nor_the_vector_index():
    """k-means lives in cbir.kmeans: learning a codebook in a fresh process imports no SQL and no index code."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from cbir.codebook import learn_codebook\n"
        "rng = np.random.default_rng(0)\n"
        "images = [rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8) for _ in range(4)]\n"
        "codebook, note = learn_codebook(images, n_colors=16, seed=0)\n"
        "assert note is None and codebook.n_colors == 16 and 'cbir.kmeans' in sys.modules\n"
        "print(sorted(m for m in ('cbir.store', 'cbir.vectors', 'cbir.compact_index', 'sqlalchemy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
