"""The peer baselines: their histograms on hand-made images, and brute-force ranking over files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cbir.distances import chi2, l1
from cbir.errors import BadImageError, BadInputError
from cbir.evaluation.peers import PeerIndex, hsv_region_histogram, peer, rgb_grid_histogram
from tests.conftest import PALETTE, noisy, solid, two_tone, write_image


def test_rgb_grid_histogram_bins_and_cells() -> None:
    image = solid((0, 0, 0), size=(30, 30))
    image[:10, :10] = (255, 255, 255)  # the top-left cell is white
    hist = rgb_grid_histogram(image)
    assert hist.shape == (9 * 12**3,)
    assert hist.sum() == pytest.approx(1.0)
    blocks = hist.reshape(9, 12**3)
    white = (11 * 12 + 11) * 12 + 11
    assert blocks[0, white] == pytest.approx(1 / 9)
    assert blocks[1:, 0] == pytest.approx(np.full(8, 1 / 9))
    # Bin edges at multiples of 256/12: 21 is in bin 0, 22 in bin 1 (22 * 12 // 256 = 1).
    assert rgb_grid_histogram(solid((21, 0, 0), size=(3, 3)))[0] == pytest.approx(1 / 9)
    assert rgb_grid_histogram(solid((22, 0, 0), size=(3, 3)))[144] == pytest.approx(1 / 9)


def test_hsv_region_histogram_regions() -> None:
    image = solid(PALETTE["blue"], size=(80, 80))
    image[30:50, 30:50] = PALETTE["red"]  # inside the centre ellipse
    hist = hsv_region_histogram(image)
    assert hist.shape == (5 * 8 * 12 * 3,)
    blocks = hist.reshape(5, -1)
    assert np.linalg.norm(blocks, axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    # Corners see only blue (one bin), the ellipse both colors (two bins).
    assert [(block > 0).sum() for block in blocks] == [1, 1, 1, 1, 2]


def test_peer_functions_refuse_bad_arrays() -> None:
    with pytest.raises(BadInputError, match="uint8 RGB"):
        rgb_grid_histogram(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(BadInputError, match="uint8 RGB"):
        hsv_region_histogram(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(BadInputError, match="unknown peer descriptor 'sift'"):
        peer("sift")


def test_peers_use_the_project_distances() -> None:
    assert peer("rgb-grid3").distance is l1
    assert peer("hsv-regions").distance is chi2


@pytest.mark.parametrize("name", ["rgb-grid3", "hsv-regions"])
def test_peer_index_ranks_near_copies_first(tmp_path: Path, name: str) -> None:
    paths = []
    for i, color in enumerate(["red", "green", "blue", "yellow"]):
        base = two_tone(PALETTE[color], PALETTE["white"], 0.6)
        paths.append(str(write_image(tmp_path / f"{color}.png", base)))
        paths.append(str(write_image(tmp_path / f"{color}_copy.jpg", noisy(base, 4, seed=i))))
    index = PeerIndex.build(peer(name), paths)
    rankings = index.rank_paths(paths)
    for query, ranking in zip(paths, rankings):
        assert ranking[0] == query
        partner = query.replace("_copy.jpg", ".png") if query.endswith("_copy.jpg") else query.replace(".png", "_copy.jpg")
        assert ranking[1] == partner
        assert sorted(ranking) == sorted(paths)
    with pytest.raises(BadInputError, match="not in the collection"):
        index.rank_paths([str(tmp_path / "other.png")])


def test_peer_index_ties_follow_collection_order(tmp_path: Path) -> None:
    a = write_image(tmp_path / "a.png", solid(PALETTE["sand"]))
    b = write_image(tmp_path / "b.png", solid(PALETTE["sand"]))
    c = write_image(tmp_path / "c.png", solid(PALETTE["navy"]))
    index = PeerIndex.build(peer("rgb-grid3"), [c, b, a])
    assert index.rank_paths([str(a)])[0] == [str(b), str(a), str(c)]  # b and a tie at 0: b comes first


def test_peer_index_reports_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError, match="bad.jpg"):
        PeerIndex.build(peer("hsv-regions"), [bad])
    with pytest.raises(BadInputError, match="no images"):
        PeerIndex.build(peer("hsv-regions"), [])
