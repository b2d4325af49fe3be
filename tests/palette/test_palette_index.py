"""Palettes and posterized images that use an index: the stored histograms and the global codebook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.codebook import Codebook
from cbir.errors import CodebookMismatchError, StoreError
from cbir.histogram import dominant_colors
from cbir.images import load_image
from cbir.palette import indexed_palette, palette_from_histogram
from cbir.palette.posterize import index_codebook, posterize_with_codebook
from cbir.store import Store
from indexer import index_folder
from tests.conftest import PALETTE, gradient, noisy, solid, two_tone, write_image

LAYOUT = "global+grid2"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A 16-color index (global+grid2 layout) of solid, two-tone and gradient images."""
    folder = tmp_path_factory.mktemp("palette_index") / "images"
    names = list(PALETTE)
    for i, name in enumerate(names):
        write_image(folder / f"{name}.png", solid(PALETTE[name]))
        other = names[(i + 3) % len(names)]
        write_image(folder / f"{name}_{other}.png", two_tone(PALETTE[name], PALETTE[other], 0.7))
    write_image(folder / "sunset.jpg", noisy(gradient(PALETTE["navy"], PALETTE["yellow"], (60, 90)), 5, seed=0))
    db = folder.parent / "index.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, layout=LAYOUT, workers=1)
    yield db, folder


def test_palette_from_histogram_agrees_with_the_index(indexed: tuple[Path, Path]) -> None:
    db, folder = indexed
    with Store(db) as store:
        _, codebook, layout = store.codebook()  # type: ignore[misc]
        assert layout == LAYOUT
        image_id = store.id_of_path(str(folder / "red_yellow.png"))
        assert image_id is not None
        histogram = store.histograms([image_id])[0]
        colors = palette_from_histogram(histogram, codebook, k=8)
        assert indexed_palette(store, image_id, k=8) == colors
    top = dominant_colors(histogram, codebook.n_colors, top=8)
    rgb = codebook.rgb_centers()
    assert [c["rgb"] for c in colors] == [rgb[code].tolist() for code, _ in top]
    assert [c["proportion"] for c in colors] == pytest.approx([share / sum(s for _, s in top) for _, share in top])
    assert sum(c["proportion"] for c in colors) == pytest.approx(1.0)
    # A 70/30 two-tone image: the codewords of red and yellow, in those shares.
    assert [round(c["proportion"], 2) for c in colors] == [0.7, 0.3]
    lab = np.array([c["lab"] for c in colors])
    assert np.abs(lab - codebook.centers[[code for code, _ in top]]).max() < 0.01
    assert set(colors[0]) == {"hex", "rgb", "lab", "proportion"}


def test_palette_from_histogram_sums_spatial_blocks_and_limits_k(indexed: tuple[Path, Path]) -> None:
    db, folder = indexed
    with Store(db) as store:
        image_id = store.id_of_path(str(folder / "sunset.jpg"))
        many = indexed_palette(store, image_id, k=16)  # type: ignore[arg-type]
        few = indexed_palette(store, image_id, k=2, sort="lightness")  # type: ignore[arg-type]
        with pytest.raises(StoreError, match="99999"):
            indexed_palette(store, 99999)
    assert len(many) > 2 and len(few) == 2
    assert sum(c["proportion"] for c in few) == pytest.approx(1.0)
    assert few[0]["lab"][0] <= few[1]["lab"][0]
    assert {c["hex"] for c in few} == {c["hex"] for c in many[:2]}


def test_palette_from_histogram_refuses_another_codebooks_histogram() -> None:
    codebook = Codebook(np.array([[50.0, 0, 0], [20, 10, 10], [80, -10, 5]]))
    with pytest.raises(CodebookMismatchError, match="length 4"):
        palette_from_histogram(np.full(4, 0.25), codebook)


def test_quantize_with_the_index_codebook_uses_only_codebook_colors(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = indexed
    photo = write_image(tmp_path / "photo.jpg", noisy(gradient(PALETTE["green"], PALETTE["sand"], (50, 70)), 10, seed=3))
    out = tmp_path / "seen.png"
    result = CliRunner().invoke(main, ["quantize", str(photo), "--codebook", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    with Store(db) as store:
        codebook = index_codebook(store)
    seen = load_image(out, max_side=None)
    original = load_image(photo, max_side=None)
    assert seen.shape == original.shape
    colors = {tuple(c) for c in np.unique(seen.reshape(-1, 3), axis=0).tolist()}
    assert colors <= {tuple(c) for c in codebook.rgb_centers().tolist()}
    assert (seen == posterize_with_codebook(original, codebook)).all()
    assert "16-color codebook" in result.stderr


def test_quantize_codebook_errors(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    db, folder = indexed
    image = str(folder / "red.png")
    both = CliRunner().invoke(main, ["quantize", image, "--codebook", str(db), "-k", "4", "--out", str(tmp_path / "o.png")])
    assert both.exit_code == 2 and "-k and --codebook exclude each other" in both.stderr
    assert both.stderr.strip().count("\n") == 0
    missing = CliRunner().invoke(main, ["quantize", image, "--codebook", str(tmp_path / "none.db"), "--out", str(tmp_path / "o.png")])
    assert missing.exit_code == 2 and "no index at" in missing.stderr and missing.stderr.strip().count("\n") == 0


def test_indexed_palette_of_the_default_layout_reads_the_shares_from_the_file(tmp_path: Path) -> None:
    """The default layout keeps pixel-class blocks only, which weigh each class alike: the palette of an
    indexed image takes its shares from the file; if the file is gone, from the blocks (an estimate)."""
    from cbir.histogram import DEFAULT_LAYOUT, keeps_areas

    assert not keeps_areas(DEFAULT_LAYOUT) and keeps_areas("bic+grid3")
    folder = tmp_path / "images"
    for name, other in (("red", "yellow"), ("navy", "white"), ("green", "black")):
        write_image(folder / f"{name}.png", two_tone(PALETTE[name], PALETTE[other], 0.7))
    with Store(tmp_path / "d.db", create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        _, codebook, layout = store.codebook()  # type: ignore[misc]
        assert layout == DEFAULT_LAYOUT
        image_id = store.id_of_path(str(folder / "red.png"))
        assert image_id is not None
        exact = indexed_palette(store, image_id, k=4)
        assert [round(c["proportion"], 2) for c in exact] == [0.7, 0.3]
        estimate = palette_from_histogram(store.histograms([image_id])[0], codebook, k=4, layout=layout)
        assert [c["hex"] for c in estimate] == [c["hex"] for c in exact]
        assert abs(estimate[0]["proportion"] - 0.7) > 0.02  # the blocks alone are off
        (folder / "red.png").unlink()
        assert indexed_palette(store, image_id, k=4) == estimate
