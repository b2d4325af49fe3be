import numpy as np
import pytest

from cbir.errors import BadInputError
from cbir.histogram import DEFAULT_LAYOUT, dominant_colors, histogram, n_regions, pixel_classes, region_weights


def test_global_histogram_counts_and_normalizes():
    codes = np.array([[0, 0, 1], [2, 2, 2]])
    h = histogram(codes, 4, layout="global")
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, [2 / 6, 1 / 6, 3 / 6, 0])


def test_grid2_blocks_are_per_cell_and_weighted():
    codes = np.zeros((4, 4), dtype=np.int64)
    codes[:2, 2:] = 1  # top-right cell
    codes[2:, :2] = 2  # bottom-left cell
    h = histogram(codes, 3, layout="grid2").reshape(4, 3)
    np.testing.assert_allclose(h, [[0.25, 0, 0], [0, 0.25, 0], [0, 0, 0.25], [0.25, 0, 0]])
    assert h.sum() == pytest.approx(1.0)


def test_combined_layout_gives_each_component_an_equal_share():
    codes = np.random.default_rng(0).integers(0, 5, (30, 40))
    h = histogram(codes, 5, layout="global+grid2").reshape(-1, 5)
    assert len(h) == n_regions("global+grid2") == 5
    np.testing.assert_allclose(h.sum(axis=1), [0.5, 0.125, 0.125, 0.125, 0.125], atol=1e-6)
    np.testing.assert_allclose(h[0] * 2, np.bincount(codes.ravel(), minlength=5) / codes.size, atol=1e-6)


def test_center_layout_puts_the_middle_in_the_ellipse():
    codes = np.zeros((40, 40), dtype=np.int64)
    codes[15:25, 15:25] = 1
    h = histogram(codes, 2, layout="center").reshape(5, 2)
    assert h[4, 1] > 0 and (h[:4, 1] == 0).all()
    np.testing.assert_allclose(h.sum(axis=1), region_weights("center"), atol=1e-6)


def test_tiny_image_regions_take_the_global_histogram():
    h = histogram(np.array([[3]]), 4, layout="grid3").reshape(9, 4)
    np.testing.assert_allclose(h[:, 3], np.full(9, 1 / 9), atol=1e-7)


def test_bad_inputs_are_named():
    with pytest.raises(BadInputError, match="hexagon"):
        histogram(np.zeros((2, 2), int), 4, layout="global+hexagon")
    with pytest.raises(BadInputError, match=r"\(0, 3\)"):
        histogram(np.zeros((0, 3), int), 4)


def test_dominant_colors_sums_blocks():
    h = np.array([0.1, 0.3, 0.1, 0.0, 0.5, 0.0], dtype=np.float32)  # two blocks of 3
    assert dominant_colors(h, 3, top=2) == [(1, pytest.approx(0.8)), (0, pytest.approx(0.1))]


def _reference_histogram(codes: np.ndarray, n_colors: int, layout: str) -> np.ndarray:
    """Straight from the definition: one bincount per region, each block normalized and weighted."""
    h, w = codes.shape
    rows, cols = np.mgrid[0:h, 0:w]
    blocks = []
    for part in layout.split("+"):
        if part == "global":
            regions = [np.ones((h, w), bool)]
        elif part in ("bic", "classes", "grid3-classes"):
            padded = np.pad(codes, 1, mode="edge")  # outside the image counts as the same code
            same = sum((codes == padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]).astype(int) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)))
            if part == "bic":
                regions = [same == 4, same < 4]
            else:
                classes = [same == 4, same == 3, same <= 2]
                if part == "classes":
                    regions = classes
                else:
                    cell = np.minimum(rows * 3 // h, 2) * 3 + np.minimum(cols * 3 // w, 2)
                    regions = [(cell == i) & c for i in range(9) for c in classes]
        elif part.startswith("grid"):
            n = int(part[-1])
            cell = np.minimum(rows * n // h, n - 1) * n + np.minimum(cols * n // w, n - 1)
            regions = [cell == i for i in range(n * n)]
        else:
            pytest.skip(part)
        for region in regions:
            counts = np.bincount(codes[region], minlength=n_colors).astype(np.float64)
            if counts.sum() == 0:
                counts = np.bincount(codes.ravel(), minlength=n_colors).astype(np.float64)
            blocks.append(counts / counts.sum() / len(regions) / len(layout.split("+")))
    return np.concatenate(blocks)


@pytest.mark.parametrize(
    "layout",
    [DEFAULT_LAYOUT, "bic+grid3", "global", "grid2+bic", "global+grid2+grid3+bic", "bic", "classes+grid3-classes", "grid2+bic+classes"],
)
@pytest.mark.parametrize("n_colors, dtype", [(7, np.uint8), (128, np.uint8), (300, np.uint16), (40, np.int64)])
def test_histogram_equals_its_definition(layout, n_colors, dtype):
    rng = np.random.default_rng(n_colors)
    for shape in [(37, 53), (1, 1), (2, 5), (192, 128)]:
        # Blocky codes, so that interior pixels exist.
        small = rng.integers(0, n_colors, (max(1, shape[0] // 3), max(1, shape[1] // 3)))
        codes = np.repeat(np.repeat(small, 3, axis=0), 3, axis=1)[: shape[0], : shape[1]]
        codes = np.pad(codes, ((0, shape[0] - codes.shape[0]), (0, shape[1] - codes.shape[1])), mode="edge").astype(dtype)
        np.testing.assert_allclose(histogram(codes, n_colors, layout=layout), _reference_histogram(codes, n_colors, layout), rtol=1e-6, atol=1e-9)


def test_pixel_classes_by_hand():
    codes = np.array(
        [
            [0, 0, 0, 1],
            [0, 0, 0, 1],
            [0, 0, 2, 1],
        ]
    )
    # Same-code neighbours (outside counts as same): interior 4, edge 3, detail <= 2.
    assert pixel_classes(codes).tolist() == [[0, 0, 1, 1], [0, 0, 2, 1], [0, 1, 2, 1]]
    assert DEFAULT_LAYOUT == "grid3-classes+classes" and n_regions(DEFAULT_LAYOUT) == 30
    h = histogram(codes, 3, layout="classes").reshape(3, 3)
    # interior: five 0s; edge: two 0s and three 1s; detail: one 0 and the 2.
    np.testing.assert_allclose(h * 3, [[1, 0, 0], [2 / 5, 3 / 5, 0], [1 / 2, 0, 1 / 2]], atol=1e-6)
