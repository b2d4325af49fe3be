import numpy as np
import pytest

from cbir.color import (
    QuantizationTable,
    build_lut,
    distinct,
    lab_to_rgb,
    nearest_codewords,
    pack_rgb,
    quantize,
    rgb_to_lab,
)
from cbir.errors import BadInputError
from cbir.images import load_image
from tests.conftest import gradient, noisy, write_image


def test_lab_of_reference_colors():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)  # published sRGB red
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.02)


def test_uint8_and_float_inputs_agree():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (500, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_lab(rgb), rgb_to_lab(rgb / 255.0), atol=1e-9)


def test_lab_round_trip_is_exact_for_8_bit_colors():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (2000, 3), dtype=np.uint8)
    np.testing.assert_array_equal(lab_to_rgb(rgb_to_lab(rgb)), rgb)


def test_bad_shape_is_named():
    with pytest.raises(BadInputError, match=r"\(5, 5\)"):
        rgb_to_lab(np.zeros((5, 5)))


def _brute_nearest(lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d = ((lab[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1)


@pytest.fixture(scope="module")
def centers() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rgb_to_lab(rng.integers(0, 256, (40, 3), dtype=np.uint8)).astype(np.float32)


@pytest.fixture(scope="module")
def lut(centers: np.ndarray) -> np.ndarray:
    return build_lut(centers)


def test_lut_equals_nearest_centroid_on_random_pixels(centers, lut):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (200_000, 3), dtype=np.uint8)
    expected = _brute_nearest(rgb_to_lab(rgb), centers.astype(np.float64))
    np.testing.assert_array_equal(lut[pack_rgb(rgb)], expected)
    np.testing.assert_array_equal(nearest_codewords(rgb_to_lab(rgb), centers), expected)


def test_lut_equals_nearest_centroid_on_real_image_files(tmp_path, centers, lut):
    path = write_image(tmp_path / "g.jpg", noisy(gradient((250, 10, 40), (10, 90, 240), size=(60, 90)), 12, seed=5))
    rgb = load_image(path)
    codes = quantize(rgb, lut)
    assert codes.shape == rgb.shape[:2]
    expected = _brute_nearest(rgb_to_lab(rgb.reshape(-1, 3)), centers.astype(np.float64))
    np.testing.assert_array_equal(codes.reshape(-1), expected)


def test_lut_dtype_follows_codebook_size():
    assert build_lut(np.array([[50.0, 0, 0], [60.0, 10, 10]])).dtype == np.uint8
    with pytest.raises(BadInputError):
        build_lut(np.zeros((3, 2)))


def test_lazily_filled_table_equals_the_full_table(tmp_path, centers, lut):
    table = QuantizationTable(centers)
    rng = np.random.default_rng(6)
    for _ in range(3):  # later images reuse entries filled by earlier ones
        rgb = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
        np.testing.assert_array_equal(table.quantize(rgb), quantize(rgb, lut))
    path = write_image(tmp_path / "n.jpg", noisy(gradient((0, 200, 40), (250, 250, 10), size=(50, 70)), 20, seed=7))
    rgb = load_image(path)
    np.testing.assert_array_equal(table.quantize(rgb), quantize(rgb, lut))


def test_lazy_table_sizes():
    assert QuantizationTable(np.zeros((254, 3))).quantize(np.zeros((1, 1, 3), np.uint8)).dtype == np.uint8
    assert QuantizationTable(np.zeros((255, 3))).quantize(np.zeros((1, 1, 3), np.uint8)).dtype == np.uint16


def test_nearest_codeword_decides_near_ties_as_float64_does():
    """Colors almost equidistant from two codewords: the float32 pass must hand them to float64."""
    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    lab = rgb_to_lab(rgb)
    x = lab[0]
    direction = np.array([0.6, 0.0, 0.8])
    base = rng.uniform([0, -60, -60], [100, 60, 60], (30, 3))
    for tiny in (1e-9, 1e-6, 1e-3, -1e-9, -1e-6):
        centers = np.vstack([base, x + 7 * direction, x - 7 * direction * (1 + tiny)])
        probe = np.vstack([lab, x, x + 1e-4 * direction])
        expected = _brute_nearest(probe, centers)
        np.testing.assert_array_equal(nearest_codewords(probe, centers), expected)
    # An exact tie (to float64 rounding) may go to either of the two tied codewords, never elsewhere.
    centers = np.vstack([base, x + 7 * direction, x - 7 * direction])
    assert nearest_codewords(x[None, :], centers)[0] in (30, 31)


def test_table_decides_near_ties_of_24_bit_colors_as_float64_does():
    """The lazy table converts new colors in float32 too: near-ties must still go to float64."""
    rng = np.random.default_rng(9)
    rgb = rng.choice(np.arange(0, 256, 17, dtype=np.uint8), size=(60, 3))  # colors far apart in Lab
    rgb = np.unique(rgb, axis=0)
    lab = rgb_to_lab(rgb)
    direction = rng.normal(size=(len(lab), 3))
    direction *= 0.4 / np.linalg.norm(direction, axis=1, keepdims=True)
    image = np.concatenate([rgb, rng.integers(0, 256, (3000, 3), dtype=np.uint8)])[None, :, :]
    for tiny in (1e-9, 1e-7, 1e-5, -1e-9, -1e-7):
        # Every sampled color sits almost on the bisector of its own pair of codewords.
        centers = np.concatenate([lab + direction, lab - direction * (1 + tiny)])
        expected = _brute_nearest(rgb_to_lab(image[0]), centers)
        np.testing.assert_array_equal(QuantizationTable(centers).quantize(image)[0], expected)


def test_quantize_many_equals_one_at_a_time(centers, lut):
    rng = np.random.default_rng(10)
    base = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    images = [base, base[::2, ::3].copy(), rng.integers(0, 256, (7, 9, 3), dtype=np.uint8), np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)]
    table = QuantizationTable(centers)
    for rgb, codes in zip(images, table.quantize_many(images)):
        np.testing.assert_array_equal(codes, quantize(rgb, lut))


def test_distinct_is_sorted_unique():
    values = np.random.default_rng(11).integers(0, 1000, 5000).astype(np.uint32)
    np.testing.assert_array_equal(distinct(values), np.unique(values))
    assert len(distinct(np.array([], dtype=np.uint32))) == 0
