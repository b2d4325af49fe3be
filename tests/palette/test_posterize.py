"""Posterized images (cbir.palette.posterize) and `cbir quantize` without an index, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.color import rgb_to_lab
from cbir.errors import BadInputError
from cbir.images import load_image
from cbir.palette.posterize import assign_to_centers, posterize
from tests.conftest import PALETTE, gradient, noisy, write_image


def photo_like(size: tuple[int, int] = (72, 96), seed: int = 0) -> np.ndarray:
    """Two gradients stacked, with noise: thousands of distinct colors."""
    top = gradient(PALETTE["navy"], PALETTE["sand"], (size[0] // 2, size[1]))
    bottom = gradient(PALETTE["green"], PALETTE["red"], (size[0] - size[0] // 2, size[1]))
    return noisy(np.concatenate([top, bottom]), 8, seed=seed)


def distinct_colors(rgb: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(c) for c in np.unique(rgb.reshape(-1, 3), axis=0).tolist()}


def test_assignment_is_the_nearest_center_in_lab() -> None:
    image = photo_like()
    rng = np.random.default_rng(1)
    centers = np.column_stack([rng.uniform(10, 90, 12), rng.uniform(-50, 50, 12), rng.uniform(-50, 50, 12)])
    codes = assign_to_centers(image, centers)
    lab = rgb_to_lab(image.reshape(-1, 3))
    brute = np.argmin(((lab[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    assert codes.shape == image.shape[:2] and codes.dtype == np.uint8
    assert (codes.reshape(-1) == brute).all()


def test_posterize_keeps_the_size_and_at_most_k_palette_colors() -> None:
    image = photo_like()
    result = posterize(image, k=6, seed=3)
    assert result.rgb.shape == image.shape and result.rgb.dtype == np.uint8
    assert distinct_colors(result.rgb) <= {tuple(c) for c in result.palette.rgb.tolist()}
    assert len(distinct_colors(result.rgb)) <= 6
    # Each pixel took its own cluster's color: nearest palette center in Lab.
    codes = assign_to_centers(image, result.palette.lab)
    assert (result.rgb == result.palette.rgb[codes]).all()


def test_posterize_refuses_bad_k() -> None:
    with pytest.raises(BadInputError, match="k must be"):
        posterize(photo_like(), k=0)


def test_cli_quantize_writes_a_lossless_posterized_image(tmp_path: Path) -> None:
    path = write_image(tmp_path / "photo.jpg", photo_like((90, 120)))
    out = tmp_path / "poster.png"
    result = CliRunner().invoke(main, ["quantize", str(path), "-k", "5", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    original, poster = load_image(path, max_side=None), load_image(out, max_side=None)
    assert poster.shape == original.shape
    assert 2 <= len(distinct_colors(poster)) <= 5
    assert "wrote" in result.stderr and result.stdout == ""


def test_cli_quantize_default_k_is_16_and_side_by_side_doubles_the_width(tmp_path: Path) -> None:
    path = write_image(tmp_path / "photo.png", photo_like((40, 60)))
    out = tmp_path / "pair.png"
    result = CliRunner().invoke(main, ["quantize", str(path), "--out", str(out), "--side-by-side"])
    assert result.exit_code == 0, result.stderr
    pair = load_image(out, max_side=None)
    original = load_image(path, max_side=None)
    assert pair.shape[0] == 40 and pair.shape[1] > 120
    assert (pair[:, :60] == original).all()
    assert len(distinct_colors(pair[:, -60:])) <= 16 < len(distinct_colors(original))


def test_cli_quantize_notes_few_colors_and_lossy_output(tmp_path: Path) -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, 15:] = PALETTE["yellow"]
    path = write_image(tmp_path / "two.png", image)
    result = CliRunner().invoke(main, ["quantize", str(path), "-k", "8", "--out", str(tmp_path / "out.jpg")])
    assert result.exit_code == 0, result.stderr
    assert "2 distinct colors" in result.stderr and "not lossless" in result.stderr


def test_cli_quantize_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = CliRunner().invoke(main, ["quantize", str(broken), "--out", str(tmp_path / "o.png")])
    assert result.exit_code == 2 and result.stderr.strip().count("\n") == 0 and "broken.png" in result.stderr
    good = write_image(tmp_path / "good.png", photo_like((10, 10)))
    assert CliRunner().invoke(main, ["quantize", str(good), "-k", "0", "--out", str(tmp_path / "o.png")]).exit_code == 2
    missing_out = CliRunner().invoke(main, ["quantize", str(good)])
    assert missing_out.exit_code == 2 and "--out" in missing_out.stderr
    bad_format = CliRunner().invoke(main, ["quantize", str(good), "--out", str(tmp_path / "o.unknown")])
    assert bad_format.exit_code == 2 and "o.unknown" in bad_format.stderr
