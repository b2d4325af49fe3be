"""Dominant colors (cbir.palette) and the `cbir palette` command, on real files in tmp_path."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.color import lab_to_rgb, rgb_to_lab
from cbir.errors import BadInputError
from cbir.images import load_image
from cbir.palette import (
    METHODS,
    SORT_ORDERS,
    extract_palette,
    palette_order,
    path_length,
    sort_palette,
)
from cbir.palette.order import EXACT_PATH_COLORS
from tests.conftest import PALETTE, noisy, write_image

THREE = {"red": (PALETTE["red"], 0.5), "green": (PALETTE["green"], 0.3), "blue": (PALETTE["blue"], 0.2)}


def three_colors(size: tuple[int, int] = (60, 100)) -> np.ndarray:
    """Vertical bands: red 50%, green 30%, blue 20% of the width."""
    image = np.empty((*size, 3), dtype=np.uint8)
    start = 0
    for color, share in THREE.values():
        stop = start + round(share * size[1])
        image[:, start:stop] = color
        start = stop
    return image


def blocks(colors: list[tuple[int, int, int]], shares: list[float], size: tuple[int, int] = (40, 200)) -> np.ndarray:
    image = np.empty((*size, 3), dtype=np.uint8)
    edges = np.round(np.concatenate([[0], np.cumsum(shares)]) * size[1]).astype(int)
    for color, left, right in zip(colors, edges[:-1], edges[1:]):
        image[:, left:right] = color
    return image


def lab_distance(a: tuple[int, int, int], lab: tuple[float, float, float]) -> float:
    return float(np.linalg.norm(rgb_to_lab(np.array(a, dtype=np.uint8)) - np.array(lab)))


@pytest.mark.parametrize("method", METHODS)
def test_three_known_colors_come_back_with_their_shares(tmp_path: Path, method: str) -> None:
    path = write_image(tmp_path / "three.jpg", noisy(three_colors(), 5, seed=1))
    palette = extract_palette(load_image(path, max_side=None), k=3, method=method)
    assert len(palette) == 3 and palette.note is None
    for (color, share), found in zip(THREE.values(), palette.colors):  # largest share first
        assert lab_distance(color, found.lab) < 3.0
        assert found.proportion == pytest.approx(share, abs=0.02)
    assert palette.proportions.sum() == pytest.approx(1.0, abs=1e-9)


def test_proportions_sum_to_one_and_rgb_hex_lab_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    path = write_image(tmp_path / "photo.png", photo)
    palette = extract_palette(load_image(path), k=7, seed=2)
    assert 1 <= len(palette) <= 7
    assert palette.proportions.sum() == pytest.approx(1.0, abs=1e-9)
    assert (palette.proportions > 0).all()
    for color in palette.colors:
        assert tuple(lab_to_rgb(np.array(color.lab))) == color.rgb
        assert color.hex == "#{:02x}{:02x}{:02x}".format(*color.rgb)
        assert set(color.to_dict()) == {"hex", "rgb", "lab", "proportion"}


def test_same_seed_same_palette_and_large_images_are_bounded(tmp_path: Path) -> None:
    image = noisy(three_colors((900, 1500)), 20, seed=4)  # 1.35 MP: subsampled, still right
    first = extract_palette(image, k=3, seed=5)
    assert first == extract_palette(image, k=3, seed=5)
    assert [round(c.proportion, 2) for c in first.colors] == [0.5, 0.3, 0.2]


def test_fewer_distinct_colors_than_k_gives_those_colors_and_a_note(tmp_path: Path) -> None:
    path = write_image(tmp_path / "three.png", three_colors())
    palette = extract_palette(load_image(path), k=10)
    assert sorted(c.rgb for c in palette.colors) == sorted(color for color, _ in THREE.values())
    assert [c.proportion for c in palette.colors] == pytest.approx([0.5, 0.3, 0.2])
    assert palette.note is not None and "3 distinct colors" in palette.note


@pytest.mark.parametrize("method", METHODS)
def test_rare_colors_still_fill_the_palette(method: str) -> None:
    # 13 distinct colors, one of them on all but 12 pixels: k=10 must still give 10 colors.
    image = np.full((300, 300, 3), PALETTE["red"], dtype=np.uint8)
    image.reshape(-1, 3)[:12] = np.random.default_rng(0).integers(0, 256, (12, 3))
    palette = extract_palette(image, k=10, method=method)
    assert len(palette) == 10 and palette.note is None
    assert palette.colors[0].rgb == PALETTE["red"] and palette.colors[0].proportion > 0.999


@pytest.mark.parametrize("bad", [0, -1, 257, 2.5, True])
def test_bad_k_is_refused(bad: object) -> None:
    with pytest.raises(BadInputError, match="between 1 and 256"):
        extract_palette(three_colors(), k=bad)  # type: ignore[arg-type]


def test_bad_image_method_or_sort_is_refused() -> None:
    with pytest.raises(BadInputError, match=r"\(H, W, 3\)"):
        extract_palette(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(BadInputError, match="'dbscan'"):
        extract_palette(three_colors(), method="dbscan")
    with pytest.raises(BadInputError, match="'random'"):
        extract_palette(three_colors(), sort="random")


# --- sort orders ---------------------------------------------------------------


@pytest.fixture(scope="module")
def eight() -> tuple[np.ndarray, np.ndarray]:
    """Lab colors and shares of the eight test colors in mixed-up shares."""
    names = list(PALETTE)
    lab = rgb_to_lab(np.array([PALETTE[n] for n in names], dtype=np.uint8))
    shares = np.array([0.05, 0.2, 0.1, 0.15, 0.08, 0.12, 0.18, 0.12])
    return lab, shares


def _sorted(lab: np.ndarray, shares: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    index = palette_order(lab, shares, order)
    assert sorted(index.tolist()) == list(range(len(lab)))
    return lab[index], shares[index]


def test_proportion_order_is_largest_first(eight: tuple[np.ndarray, np.ndarray]) -> None:
    _, shares = _sorted(*eight, "proportion")
    assert (np.diff(shares) <= 0).all()


@pytest.mark.parametrize("order, channel", [("lightness", 0), ("a", 1), ("b", 2)])
def test_lab_channel_orders_are_ascending(eight: tuple[np.ndarray, np.ndarray], order: str, channel: int) -> None:
    lab, _ = _sorted(*eight, order)
    assert (np.diff(lab[:, channel]) >= 0).all()


@pytest.mark.parametrize("order, channel", [("red", 0), ("green", 1), ("blue", 2)])
def test_rgb_channel_orders_are_ascending(eight: tuple[np.ndarray, np.ndarray], order: str, channel: int) -> None:
    lab, _ = _sorted(*eight, order)
    assert (np.diff(lab_to_rgb(lab)[:, channel].astype(int)) >= 0).all()


def test_hue_order_goes_round_the_hue_circle_with_grays_last(eight: tuple[np.ndarray, np.ndarray]) -> None:
    lab, _ = _sorted(*eight, "hue")
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    gray = chroma < 8
    assert gray.sum() == 2 and not gray[:-2].any()  # white and black come last
    hue = np.degrees(np.arctan2(lab[~gray, 2], lab[~gray, 1])) % 360
    assert (np.diff(hue) >= 0).all()
    assert lab[-2, 0] < lab[-1, 0]  # grays dark to light


def test_spread_order_follows_the_principal_axis(eight: tuple[np.ndarray, np.ndarray]) -> None:
    lab, _ = _sorted(*eight, "spread")
    centered = lab - lab.mean(axis=0)
    _, vectors = np.linalg.eigh(centered.T @ centered)
    projection = centered @ vectors[:, -1]  # the axis of largest spread
    steps = np.diff(projection)
    assert (steps >= -1e-9).all() or (steps <= 1e-9).all()
    assert lab[0, 0] <= lab[-1, 0]  # dark end first


def test_perceptual_order_is_the_shortest_path_for_few_colors(eight: tuple[np.ndarray, np.ndarray]) -> None:
    lab, shares = eight
    index = palette_order(lab, shares, "perceptual")
    best = min(path_length(lab[list(p)]) for p in itertools.permutations(range(len(lab))))
    assert len(lab) <= EXACT_PATH_COLORS
    assert path_length(lab[index]) == pytest.approx(best)


def test_perceptual_order_is_shorter_than_the_proportion_order() -> None:
    # Shares make the proportion order zig-zag between dark and light.
    lab = np.array([[10.0, 0, 0], [90, 0, 0], [20, 0, 0], [80, 0, 0], [30, 0, 0], [70, 0, 0]])
    shares = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    by_share = path_length(lab[palette_order(lab, shares, "proportion")])
    perceptual = lab[palette_order(lab, shares, "perceptual")]
    assert path_length(perceptual) == pytest.approx(80.0)
    assert by_share > 200.0
    assert (np.diff(perceptual[:, 0]) > 0).all()


def test_perceptual_order_of_many_colors_beats_the_other_orders() -> None:
    rng = np.random.default_rng(7)
    lab = np.column_stack([rng.uniform(0, 100, 40), rng.uniform(-60, 60, 40), rng.uniform(-60, 60, 40)])
    shares = rng.dirichlet(np.ones(40))
    assert len(lab) > EXACT_PATH_COLORS  # the heuristic path
    perceptual = path_length(lab[palette_order(lab, shares, "perceptual")])
    for order in ("proportion", "lightness", "hue", "spread"):
        assert perceptual < path_length(lab[palette_order(lab, shares, order)])


def test_sort_palette_reorders_without_changing_colors(tmp_path: Path) -> None:
    image = blocks([PALETTE[n] for n in ("white", "black", "red", "navy")], [0.4, 0.3, 0.2, 0.1])
    palette = extract_palette(image, k=4)
    lightest_last = sort_palette(palette, "lightness")
    assert [c.rgb for c in lightest_last.colors] == [PALETTE[n] for n in ("black", "navy", "red", "white")]
    assert set(lightest_last.colors) == set(palette.colors)
    assert set(SORT_ORDERS) >= {"proportion", "lightness", "hue", "spread", "perceptual"}


# --- the command ---------------------------------------------------------------


def test_cli_json_prints_one_document_with_the_colors(tmp_path: Path) -> None:
    path = write_image(tmp_path / "three.jpg", noisy(three_colors(), 4, seed=2))
    result = CliRunner().invoke(main, ["palette", str(path), "-k", "3", "--json", "--sort", "lightness"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    colors = document["colors"]
    assert list(document) == ["colors"] and len(colors) == 3
    assert set(colors[0]) == {"hex", "rgb", "lab", "proportion"}
    assert [c["lab"][0] for c in colors] == sorted(c["lab"][0] for c in colors)
    assert sum(c["proportion"] for c in colors) == pytest.approx(1.0)
    assert {c["hex"] for c in colors} == {"#{:02x}{:02x}{:02x}".format(*c["rgb"]) for c in colors}


def test_cli_text_lists_one_line_per_color(tmp_path: Path) -> None:
    path = write_image(tmp_path / "three.png", three_colors())
    result = CliRunner().invoke(main, ["palette", str(path), "-k", "3"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("#dc1e1e") and lines[0].endswith("50.00%")


def test_cli_more_colors_than_the_image_has_notes_it_on_stderr(tmp_path: Path) -> None:
    path = write_image(tmp_path / "three.png", three_colors())
    result = CliRunner().invoke(main, ["palette", str(path), "-k", "10", "--json"])
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["colors"]) == 3
    assert "note:" in result.stderr and "3 distinct colors" in result.stderr


def test_cli_unreadable_file_is_one_line_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    for target in (broken, tmp_path / "missing.png"):
        result = CliRunner().invoke(main, ["palette", str(target), "--json"])
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.strip().count("\n") == 0 and str(target) in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["-k", "0"], ["-k", "-3"], ["--sort", "random"], ["--method", "dbscan"], ["--strip-only"]])
def test_cli_bad_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    path = write_image(tmp_path / "three.png", three_colors())
    result = CliRunner().invoke(main, ["palette", str(path), *args])
    assert result.exit_code == 2 and "(see 'main palette --help')" in result.stderr
    assert result.stderr.strip().count("\n") == 0
