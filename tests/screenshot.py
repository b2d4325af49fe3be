"""Regenerate the README's screenshot: a real search on the web page, in the browser the web test drives.

    python -m tests.screenshot FOLDER QUERY [--out docs/screenshot.png] [--db DB]

FOLDER is indexed with today's defaults (into a temporary database unless ``--db`` is
given), served by the real app under uvicorn, and QUERY is uploaded in headless Chromium
exactly as ``tests/test_web.py`` does; the page is saved once the results' thumbnails have
loaded. The README's picture is ``python -m tests.screenshot datasets/wang datasets/wang/600.jpg``
(after ``cbir datasets fetch wang``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from cbir.store import Store
from indexer import index_folder
from search.http import create_app
from tests.http_helpers import running_server
from tests.test_web import ARGS, CHROMIUM, TIMEOUT_MS


def take(folder: Path, query: Path, out: Path, db: Path) -> None:
    """Index ``folder`` into ``db`` (sync if present), search by ``query`` on the page, save a PNG at ``out``."""
    with Store(db, create=True) as store:
        index_folder(folder, store)
    with running_server(create_app(db)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url + "/")
        # Twice: the first search of a server builds its vector index, and the status line shows the time.
        for _ in range(2):
            page.set_input_files("#file", str(query))
            expect(page.locator("#results .result").first).to_be_visible()
            page.wait_for_function(
                "() => [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("query", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshot.png"))
    parser.add_argument("--db", type=Path, help="index database to use or build (default: a temporary one)")
    args = parser.parse_args()
    if args.db is not None:
        take(args.folder, args.query, args.out, args.db)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            take(args.folder, args.query, args.out, Path(tmp) / "screenshot.db")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
