"""The collection routes (search/http_collection.py): the keyset-paged listing and the duplicate groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
from fastapi.testclient import TestClient

from cbir.store import Store
from indexer import index_folder
from search.duplicates import DEFAULT_HAMMING, DEFAULT_THRESHOLD, DEFAULT_VETO
from search.http import create_app
from tests.test_duplicates import make_duplicates_folder, make_flipped_folder


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[TestClient, dict[str, list[str]], Path]]:
    folder = tmp_path_factory.mktemp("photos")
    expected = make_duplicates_folder(folder)
    db = tmp_path_factory.mktemp("db") / "index.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, workers=1)
    with TestClient(create_app(db)) as client:
        yield client, expected, db


def test_listing_pages_through_the_whole_collection_newest_first(site):
    client, _, db = site
    seen, before, pages = [], None, 0
    while True:
        params = {"limit": 7} | ({"before": before} if before is not None else {})
        body = client.get("/api/images", params=params).json()
        assert body["total"] == 26
        seen += [image["id"] for image in body["images"]]
        pages += 1
        if body["next"] is None:
            break
        before = body["next"]
    assert pages == 4 and len(seen) == 26 == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    first = client.get("/api/images", params={"limit": 1}).json()["images"][0]
    with Store(db) as store:
        row = store.image(first["id"])
    assert first["path"] == row.path and (first["width"], first["height"], first["size"]) == (row.width, row.height, row.size)
    assert client.get(first["thumbnail"]).headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"before": -1}, {"before": "x"}])
def test_listing_bounds(site, params):
    response = site[0].get("/api/images", params=params)
    assert response.status_code == 422
    assert response.json()["error"].startswith("query.")


def test_duplicates_lists_the_groups_and_pages_them(site):
    client, expected, _ = site
    body = client.get("/api/duplicates").json()
    assert body["threshold"] == DEFAULT_THRESHOLD and body["total_groups"] == 5 and body["pairs"] == 30
    names = sorted(sorted(image["name"] for image in group["images"]) for group in body["groups"])
    assert names == sorted(expected.values())
    image = body["groups"][0]["images"][0]
    assert image["distance"] == 0.0 and image["thumbnail"] == f"/api/images/{image['id']}/thumbnail"
    second = client.get("/api/duplicates", params={"offset": 2, "limit": 2}).json()
    assert second["groups"] == body["groups"][2:4] and second["offset"] == 2
    assert client.get("/api/duplicates", params={"threshold": 0, "hamming": -1}).json()["groups"] == []
    assert client.get("/api/duplicates", params={"threshold": 0}).json()["hamming"] == DEFAULT_HAMMING


@pytest.mark.parametrize("params", [{"threshold": -0.1}, {"threshold": 1.5}, {"threshold": "nan"}, {"k": 0}, {"limit": 201}])
def test_duplicates_bounds(site, params):
    response = site[0].get("/api/duplicates", params=params)
    assert response.status_code == 422, response.text
    assert "error" in response.json()


@pytest.mark.parametrize("veto", ["65", "-2", "some"])
def test_a_bad_hash_veto_is_named(site, veto):
    response = site[0].get("/api/duplicates", params={"veto": veto})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith("hash veto must be 'off' or an integer between 0 and 64, got ") and veto in error


def test_veto_off_groups_a_flipped_copy(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    pair = sorted(make_flipped_folder(folder))  # 0.299 apart in colour: within 0.31 the veto decides
    with Store(tmp_path / "index.db", create=True) as store:
        index_folder(folder, store, workers=1)
    with TestClient(create_app(tmp_path / "index.db")) as client:
        default = client.get("/api/duplicates", params={"threshold": 0.31}).json()
        assert default["veto"] == DEFAULT_VETO and default["groups"] == []
        off = client.get("/api/duplicates", params={"threshold": 0.31, "veto": "off"}).json()
        assert off["veto"] is None
        assert [sorted(image["name"] for image in group["images"]) for group in off["groups"]] == [pair]
        assert client.get("/api/duplicates", params={"threshold": 0.31, "veto": -1}).json()["groups"] == off["groups"]
        assert client.get("/api/duplicates", params={"threshold": 0.31, "veto": DEFAULT_VETO}).json()["groups"] == []
