"""The web page in a real headless Chromium (Playwright) against a real uvicorn server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")

CHROMIUM = os.environ.get("CBIR_TEST_CHROMIUM", "/usr/bin/chromium")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

from cbir.distances import COMPACT
from cbir.store import Store
from indexer import index_folder
from search.http import create_app
from tests.conftest import PALETTE
from tests.http_helpers import make_folder, running_server

ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = make_folder(tmp_path_factory.mktemp("images"))
    db = tmp_path_factory.mktemp("db") / "index.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
    with running_server(create_app(db)) as url:
        yield url, folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site[0] + "/")
    sync_api.expect(page.locator("#info")).to_contain_text("24 images")
    yield page
    context.close()


def result_names(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator("#results .result .name").all_inner_texts()


def test_upload_shows_the_expected_first_result(page, site, tmp_path):
    page.set_input_files("#file", str(site[1] / "red_green.png"))
    first = page.locator("#results .result").first
    sync_api.expect(first.locator(".name")).to_have_text("red_green.png")
    sync_api.expect(first.locator(".distance")).to_have_text("0.0000")
    sync_api.expect(page.locator("#status")).to_have_text(re.compile(rf"^20 results by {re.escape(COMPACT)} in \d+ ms$"))
    assert len(result_names(page)) == 20
    # The query's palette strip: red (70 %) then green (30 %); every result has its own strip.
    swatches = page.locator("#query-palette span")
    sync_api.expect(swatches).to_have_count(2)
    # 70.3 % red; the default layout has no global block, so the share is summed from 3x3 grid cells
    # (equal areas up to a pixel): within half a point.
    assert abs(float(swatches.nth(0).get_attribute("title").split()[-1].rstrip("%")) - 70.3) <= 0.5
    assert page.locator("#results .result .palette").count() == 20
    # Thumbnails came from the server and decoded.
    thumb = first.locator("img")
    sync_api.expect(thumb).to_have_attribute("src", re.compile(r"^/api/images/\d+/thumbnail$"))
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].slice(0, 8).every(i => i.complete && i.naturalWidth > 0)")
    shot = tmp_path / "search.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_clicking_a_result_searches_by_it(page, site):
    page.set_input_files("#file", str(site[1] / "red.png"))
    sync_api.expect(page.locator("#results .result").first).to_be_visible()
    target = page.locator("#results .result", has=page.locator(".name", has_text="black_red.png"))
    target.click()
    sync_api.expect(page.locator("#query-label")).to_have_text("black_red.png")
    sync_api.expect(page.locator("#results .result .name").first).to_have_text("black_red.png")


def test_metric_and_k_rerun_the_query(page, site):
    page.set_input_files("#file", str(site[1] / "sand_navy.png"))
    sync_api.expect(page.locator("#status")).to_contain_text(f"by {COMPACT}")
    page.fill("#k", "5")
    page.dispatch_event("#k", "change")
    page.select_option("#metric", "qfd")
    sync_api.expect(page.locator("#status")).to_have_text(re.compile(r"^5 results by qfd"))
    assert result_names(page)[0] == "sand_navy.png"


def test_search_by_colors(page):
    page.click("#tab-colors")
    rows = page.locator("#color-rows li")
    sync_api.expect(rows).to_have_count(2)
    set_value = "(element, value) => { element.value = value; element.dispatchEvent(new Event('input', {bubbles: true})); }"
    for row, (name, weight) in zip(rows.all(), [("yellow", "70"), ("sand", "30")], strict=True):
        row.locator("input[type=color]").evaluate(set_value, "#{:02x}{:02x}{:02x}".format(*PALETTE[name]))
        row.locator("input[type=range]").evaluate(set_value, weight)
    sync_api.expect(rows.nth(0).locator("output")).to_have_text("70%")
    page.click("#search-colors")
    sync_api.expect(page.locator("#results .result .name").first).to_have_text("yellow_sand.png")
    sync_api.expect(page.locator("#query-palette span")).to_have_count(2)
    # Up to five colors; the add button gives up at the limit.
    for _ in range(5):
        if page.locator("#add-color").is_enabled():
            page.click("#add-color")
    sync_api.expect(rows).to_have_count(5)
    sync_api.expect(page.locator("#add-color")).to_be_disabled()


def test_a_file_that_is_not_an_image_shows_an_error(page, tmp_path, site):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    page.set_input_files("#file", str(notes))
    sync_api.expect(page.locator("#status")).to_have_class(re.compile(r"\berror\b"))
    sync_api.expect(page.locator("#status")).to_contain_text("not a recognised image format")
    # The page and the server go on.
    page.set_input_files("#file", str(site[1] / "blue.png"))
    sync_api.expect(page.locator("#results .result .name").first).to_have_text(re.compile(r"^blue(\.png|_noisy\.jpg)$"))
    sync_api.expect(page.locator("#status")).not_to_have_class(re.compile(r"\berror\b"))


def test_the_collection_shows_on_load_and_a_click_searches(page):
    # Before any search: the collection as a grid, with its size.
    sync_api.expect(page.locator("#pane-collection")).to_be_visible()
    sync_api.expect(page.locator("#collection-count")).to_contain_text("24 images, newest first")
    tiles = page.locator("#grid .tile")
    sync_api.expect(tiles).to_have_count(24)
    sync_api.expect(page.locator("#more-images")).to_be_hidden()
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].slice(0, 6).every(i => i.complete && i.naturalWidth > 0)")
    tiles.filter(has_text="black_red.png").click()
    sync_api.expect(page.locator("#pane-results")).to_be_visible()
    sync_api.expect(page.locator("#query-label")).to_have_text("black_red.png")
    sync_api.expect(page.locator("#results .result .name").first).to_have_text("black_red.png")
    # The collection is one click away.
    page.click("#view-collection")
    sync_api.expect(tiles).to_have_count(24)


def test_the_duplicates_view_lists_a_known_group(page):
    page.click("#view-duplicates")
    groups = page.locator("#groups .group")
    sync_api.expect(page.locator("#dup-status")).to_contain_text(re.compile(r"^\d+ groups? \(\d+ pairs\) within"))
    red = groups.filter(has=page.locator(".name", has_text=re.compile(r"^red\.png$")))
    sync_api.expect(red).to_have_count(1)
    # (At the default threshold the 70 % red two-tone may join them: 16 colors, a coarse codebook.)
    assert {"red.png", "red_noisy.jpg"} <= set(red.locator(".name").all_inner_texts())
    # Each image with its size and path.
    sync_api.expect(red.locator(".dims").first).to_contain_text("64×48")
    assert any(path.endswith("/noisy/red_noisy.jpg") for path in red.locator(".path").all_inner_texts())
    # A threshold of 0 leaves only exact copies; clicking an image searches by it.
    page.fill("#dup-threshold", "0")
    page.click("#dup-run")
    sync_api.expect(page.locator("#dup-status")).to_contain_text("within 0 by")
    page.fill("#dup-threshold", "")
    page.click("#dup-run")
    red.locator(".dup", has=page.locator(".name", has_text="red_noisy.jpg")).click()
    sync_api.expect(page.locator("#query-label")).to_have_text("red_noisy.jpg")
