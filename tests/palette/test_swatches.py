"""Palette strips and composites (cbir.palette.swatches), and `cbir palette --out`, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.errors import BadInputError
from cbir.images import load_image
from cbir.palette.swatches import palette_strip, save_image, side_by_side, strip_margin, with_strip
from tests.conftest import PALETTE, noisy, write_image

WHITE = np.array([255, 255, 255], dtype=np.uint8)
COLORS = np.array([PALETTE[n] for n in ("red", "green", "blue", "navy")], dtype=np.uint8)


def runs(row: np.ndarray) -> list[tuple[tuple[int, ...], int]]:
    """Run-length encoding of a row of pixels: [(color, length), ...]."""
    out: list[tuple[tuple[int, ...], int]] = []
    for pixel in row:
        color = tuple(int(v) for v in pixel)
        if out and out[-1][0] == color:
            out[-1] = (color, out[-1][1] + 1)
        else:
            out.append((color, 1))
    return out


def test_swatches_are_equal_with_white_margins() -> None:
    strip = palette_strip(COLORS, width=203)
    margin = strip_margin(203)
    assert strip.shape[1] == 203 and margin == 2
    assert (strip[:margin] == WHITE).all() and (strip[-margin:] == WHITE).all()
    middle = runs(strip[strip.shape[0] // 2])
    colored = [(c, n) for c, n in middle if c != (255, 255, 255)]
    gaps = [n for c, n in middle if c == (255, 255, 255)]
    assert [c for c, _ in colored] == [tuple(c) for c in COLORS.tolist()]
    widths = [n for _, n in colored]
    assert max(widths) - min(widths) <= 1
    assert gaps == [margin] * 5  # before, between and after the swatches


def test_bar_segments_are_proportional_to_the_shares() -> None:
    shares = np.array([0.5, 0.3, 0.15, 0.05])
    strip = palette_strip(COLORS, shares, width=400, style="bar")
    middle = runs(strip[strip.shape[0] // 2])
    assert [c for c, _ in middle] == [tuple(c) for c in COLORS.tolist()]
    assert [n for _, n in middle] == [200, 120, 60, 20]


def test_narrow_strips_drop_the_margins_but_keep_the_width() -> None:
    strip = palette_strip(COLORS, width=6)
    assert strip.shape[1] == 6
    assert {c for c, _ in runs(strip[strip.shape[0] // 2])} <= {tuple(c) for c in COLORS.tolist()}


def test_strip_goes_under_the_image_and_images_side_by_side() -> None:
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    strip = palette_strip(COLORS, width=50)
    both = with_strip(image, strip)
    assert both.shape == (30 + strip.shape[0], 50, 3)
    assert (both[:30] == image).all() and (both[30:] == strip).all()
    with pytest.raises(BadInputError, match="51 pixels wide"):
        with_strip(image, palette_strip(COLORS, width=51))
    pair = side_by_side(image, np.ones((20, 40, 3), dtype=np.uint8), gap=3)
    assert pair.shape == (30, 93, 3)
    assert (pair[:, 50:53] == WHITE).all() and (pair[:20, 53:] == 1).all() and (pair[20:, 53:] == WHITE).all()


def test_bad_strip_arguments_are_refused() -> None:
    with pytest.raises(BadInputError, match="style"):
        palette_strip(COLORS, width=10, style="dots")
    with pytest.raises(BadInputError, match="width"):
        palette_strip(COLORS, width=0)
    with pytest.raises(BadInputError, match="proportions"):
        palette_strip(COLORS, np.array([1.0, 2.0]), width=10)
    with pytest.raises(BadInputError, match="uint8 colors"):
        palette_strip(COLORS.astype(float), width=10)


def test_save_image_is_lossless_in_png_and_reports_bad_targets(tmp_path: Path) -> None:
    image = noisy(np.full((9, 11, 3), 120, dtype=np.uint8), 30, seed=0)
    save_image(tmp_path / "x.png", image)
    assert (load_image(tmp_path / "x.png") == image).all()
    with pytest.raises(BadInputError, match="format"):
        save_image(tmp_path / "x.nope", image)
    with pytest.raises(BadInputError, match="cannot write"):
        save_image(tmp_path / "missing" / "x.png", image)


def _three_bands(tmp_path: Path) -> Path:
    image = np.empty((60, 120, 3), dtype=np.uint8)
    image[:, :60], image[:, 60:96], image[:, 96:] = PALETTE["red"], PALETTE["green"], PALETTE["blue"]
    return write_image(tmp_path / "bands.png", image)


def test_cli_out_writes_the_image_with_the_strip_under_it(tmp_path: Path) -> None:
    path = _three_bands(tmp_path)
    out = tmp_path / "with_palette.png"
    result = CliRunner().invoke(main, ["palette", str(path), "-k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    original, picture = load_image(path), load_image(out, max_side=None)
    assert picture.shape[1] == original.shape[1] and picture.shape[0] > original.shape[0]
    assert (picture[:60] == original).all()
    strip = picture[60:]
    assert (strip == palette_strip(np.array([PALETTE[n] for n in ("red", "green", "blue")], np.uint8), width=120)).all()


def test_cli_bar_style_segments_follow_the_json_shares(tmp_path: Path) -> None:
    path = _three_bands(tmp_path)
    out = tmp_path / "bar.png"
    result = CliRunner().invoke(main, ["palette", str(path), "-k", "3", "--out", str(out), "--style", "bar", "--json"])
    assert result.exit_code == 0, result.stderr
    shares = [c["proportion"] for c in json.loads(result.stdout)["colors"]]
    picture = load_image(out, max_side=None)
    bar = picture[60:]
    widths = [n for _, n in runs(bar[bar.shape[0] // 2])]
    assert widths == [round(s * 120) for s in shares] == [60, 36, 24]


def test_cli_strip_only_writes_the_strip_alone(tmp_path: Path) -> None:
    path = _three_bands(tmp_path)
    out = tmp_path / "strip.png"
    result = CliRunner().invoke(main, ["palette", str(path), "-k", "3", "--out", str(out), "--strip-only"])
    assert result.exit_code == 0, result.stderr
    strip = load_image(out, max_side=None)
    assert strip.shape == palette_strip(COLORS[:3], width=120).shape
    assert (strip[: strip_margin(120)] == WHITE).all()
