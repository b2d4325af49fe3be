"""Query by colors: parsing (cbir/color_query.py), Descriptor.of_colors, Searcher.search_colors, `cbir search --colors`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.codebook import Codebook
from cbir.color import rgb_to_lab
from cbir.color_query import MAX_QUERY_COLORS, check_colors, format_colors, parse_colors, parse_hex, to_hex
from cbir.descriptor import Descriptor
from cbir.distances import COMPACT, METRICS
from cbir.errors import BadInputError
from cbir.histogram import region_weights
from cbir.store import Store
from indexer import index_folder
from search import Searcher
from tests.conftest import PALETTE, noisy, solid, two_tone, write_image

SAND, NAVY = PALETTE["sand"], PALETTE["navy"]


# --- parsing --------------------------------------------------------------------------
def test_parse_hex():
    assert parse_hex("#e0c080") == (224, 192, 128)
    assert parse_hex("E0C080") == (224, 192, 128)
    assert parse_hex(" #000000 ") == (0, 0, 0)
    assert to_hex((224, 192, 128)) == "#e0c080"


def test_parse_colors_reads_the_cli_form():
    assert parse_colors("#e0c080:0.6,#3060c0:0.4") == [((224, 192, 128), 0.6), ((48, 96, 192), 0.4)]
    assert parse_colors(" #e0c080 : 3 , 3060c0") == [((224, 192, 128), 3.0), ((48, 96, 192), 1.0)]
    colors = parse_colors("#e0c080:0.6,#3060c0:0.4")
    assert parse_colors(format_colors(colors)) == colors
    assert format_colors(colors) == "#e0c080:0.6,#3060c0:0.4"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("#e0c08:1", "'#e0c08'"),
        ("#e0c080:0.5,#zz0000:0.5", "'#zz0000'"),
        ("#e0c080:0", "'0'"),
        ("#e0c080:-0.2", "'-0.2'"),
        ("#e0c080:heavy", "'heavy'"),
        ("#e0c080:nan", "'nan'"),
        ("#e0c080:inf", "'inf'"),
        ("#e0c080:0.5,", "''"),
        ("", "at least one color"),
        (",".join(["#101010:1"] * (MAX_QUERY_COLORS + 1)), f"at most {MAX_QUERY_COLORS} colors, got 6"),
    ],
)
def test_parse_colors_names_the_bad_item(text, named):
    with pytest.raises(BadInputError) as error:
        parse_colors(text)
    assert named in str(error.value)


@pytest.mark.parametrize(
    "colors",
    [
        [((256, 0, 0), 1.0)],
        [((-1, 0, 0), 1.0)],
        [((1.5, 0, 0), 1.0)],
        [((1, 2), 1.0)],
        [((1, 2, 3), 0)],
        [((1, 2, 3), True)],
        [((1, 2, 3), float("nan"))],
        [((1, 2, 3),)],
        [],
    ],
)
def test_check_colors_refuses(colors):
    with pytest.raises(BadInputError):
        check_colors(colors)


def test_check_colors_accepts_numpy_free_sequences():
    assert check_colors([([1, 2, 3], 2)]) == [((1, 2, 3), 2.0)]


# --- the histogram of a color query ---------------------------------------------------
@pytest.fixture(scope="module")
def codebook() -> Codebook:
    centers = rgb_to_lab(np.array(list(PALETTE.values()), dtype=np.uint8))
    return Codebook(centers=centers)


@pytest.mark.parametrize("layout", ["global", "global+grid2", "center"])
def test_one_color_is_the_histogram_of_a_solid_image(codebook, layout):
    descriptor = Descriptor(codebook, layout=layout)
    query = descriptor.of_colors([(SAND, 1.0)])
    assert query.dtype == np.float32 and query.shape == (descriptor.dim,)
    np.testing.assert_allclose(query, descriptor.of_rgb(solid(SAND)), atol=1e-7)


@pytest.mark.parametrize("layout", ["global", "grid3+center"])
def test_weights_are_normalized_and_every_region_gets_them(codebook, layout):
    descriptor = Descriptor(codebook, layout=layout)
    query = descriptor.of_colors([(SAND, 3.0), (NAVY, 1.0)])
    assert np.isclose(query.sum(), 1.0)
    np.testing.assert_allclose(query, descriptor.of_colors([(SAND, 0.75), (NAVY, 0.25)]))
    blocks = query.reshape(-1, codebook.n_colors)
    weights = region_weights(layout)
    sand, navy = list(PALETTE).index("sand"), list(PALETTE).index("navy")
    np.testing.assert_allclose(blocks[:, sand], 0.75 * weights, rtol=1e-6)
    np.testing.assert_allclose(blocks[:, navy], 0.25 * weights, rtol=1e-6)


def test_colors_of_one_codeword_add_up(codebook):
    descriptor = Descriptor(codebook)
    near_sand = tuple(c + 3 for c in SAND)
    query = descriptor.of_colors([(SAND, 1.0), (near_sand, 1.0), (NAVY, 2.0)])
    assert query[list(PALETTE).index("sand")] == pytest.approx(0.5)
    assert query[list(PALETTE).index("navy")] == pytest.approx(0.5)


def test_of_colors_checks_its_input(codebook):
    with pytest.raises(BadInputError, match="at most 5"):
        Descriptor(codebook).of_colors([(SAND, 1.0)] * 6)


# --- searching ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    names = list(PALETTE)
    for i, name in enumerate(names):
        write_image(folder / f"{name}.png", solid(PALETTE[name]))
        write_image(folder / f"{name}_noisy.jpg", noisy(solid(PALETTE[name]), 6, seed=i))
        other = names[(i + 3) % len(names)]
        write_image(folder / f"{name}_{other}.png", two_tone(PALETTE[name], PALETTE[other], 0.7))
    db = tmp_path_factory.mktemp("db") / "index.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
    return folder, db


@pytest.mark.parametrize("metric", METRICS)
def test_search_colors_finds_the_two_tone(indexed, metric, index_path):
    searcher = Searcher.open(indexed[1])
    try:
        results = searcher.search_colors([(SAND, 0.7), (PALETTE["black"], 0.3)], k=3, metric=metric)
        assert index_path.faiss >= 1 and index_path.brute == 0  # ranked through FAISS, not the fallback
        brute = searcher.search_colors([(SAND, 0.7), (PALETTE["black"], 0.3)], k=3, metric=metric, method="brute")
    finally:
        searcher.store.close()
    assert results[0].path.endswith("sand_black.png")
    assert [(r.id, r.distance) for r in results] == [(r.id, r.distance) for r in brute]


def test_cli_search_by_colors_prints_json(indexed):
    result = CliRunner().invoke(
        main, ["search", "--db", str(indexed[1]), "--colors", "#E0C080:0.7, #0a0a0a:0.3", "-k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["query"] == "colors:#e0c080:0.7,#0a0a0a:0.3"
    assert document["metric"] == COMPACT and len(document["results"]) == 2
    assert document["results"][0]["path"].endswith("sand_black.png") and document["results"][0]["rank"] == 1


def test_cli_search_by_colors_prints_lines(indexed):
    result = CliRunner().invoke(main, ["search", "--db", str(indexed[1]), "--colors", "#1e3cd2", "-k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("1  ") and "blue" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--colors", "#e0c080:0.6,#3060zz:0.4"], "'#3060zz'"),
        (["--colors", "#e0c080:-1"], "'-1'"),
        (["--colors", ",".join(["#e0c080"] * 6)], "at most 5 colors"),
        (["query.png", "--colors", "#e0c080"], "exactly one of IMAGE or --colors"),
        ([], "exactly one of IMAGE or --colors"),
    ],
)
def test_cli_search_refuses_bad_color_queries(indexed, args, message):
    result = CliRunner().invoke(main, ["search", "--db", str(indexed[1]), *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
