"""The HTTP API (search/http.py) against a real SQLite index, in process (the wire and `cbir serve`: test_http_server.py)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install -e '.[web]'")
from fastapi.testclient import TestClient
from PIL import Image

from cbir.distances import COMPACT
from cbir.histogram import DEFAULT_LAYOUT
from cbir.store import Store
from search import Searcher
from search.http import create_app
from tests.conftest import PALETTE
from tests.http_helpers import make_indexed, names, upload

LIMIT = 20_000_000


# --- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path]:
    return make_indexed(tmp_path_factory)


@pytest.fixture(scope="module")
def client(indexed) -> Iterator[TestClient]:
    with TestClient(create_app(indexed[1])) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ids(indexed) -> dict[str, int]:
    """File name -> store id."""
    with Store(indexed[1]) as store:
        return {os.path.basename(path): image_id for path, image_id in
                ((state.path, state.id) for state in store.file_states().values())}


# --- the page -------------------------------------------------------------------------
def test_page_and_its_scripts_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text and 'href="/static/style.css"' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/api/search/colors" in script.text
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    for path in ("/static/http.py", "/static/index.html/../../http.py", "/static/%2e%2e/http.py", "/search/http.py"):
        assert client.get(path).status_code == 404


def test_openapi_schema_lists_the_api(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/search", "/api/search/colors", "/api/info", "/api/images/{image_id}", "/api/images/{image_id}/thumbnail"):
        assert path in paths


def test_info_reports_the_index(client, ids):
    info = client.get("/api/info").json()
    assert info["images"] == len(ids) == 27
    assert info["codebook_size"] <= 16 and info["layout"] == DEFAULT_LAYOUT
    assert "qfd" in info["metrics"] and info["default_metric"] == COMPACT
    assert info["max_upload_bytes"] == LIMIT and info["max_colors"] == 5


# --- search by upload -----------------------------------------------------------------
@pytest.mark.parametrize("metric", ["chi2", "qfd", "l1", "hellinger"])
def test_upload_finds_the_same_image_first(client, indexed, metric):
    data = (indexed[0] / "sand_navy.png").read_bytes()
    response = upload(client, data, k=5, metric=metric)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metric"] == metric and body["k"] == 5 and body["query"]["kind"] == "image"
    results = body["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    first = results[0]
    assert first["name"] == "sand_navy.png" and first["distance"] == pytest.approx(0.0, abs=1e-9)
    assert first["path"] == str(indexed[0] / "sand_navy.png")
    assert results[1]["distance"] > 0
    assert first["thumbnail"] == f"/api/images/{first['id']}/thumbnail" and first["image"] == f"/api/images/{first['id']}"
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances)


def test_upload_ranks_like_the_library(client, indexed):
    query = indexed[0] / "noisy" / "blue_noisy.jpg"
    response = upload(client, query.read_bytes(), name="q.jpg", mime="image/jpeg", k=6, metric="qfd")
    searcher = Searcher.open(indexed[1])
    try:
        expected = searcher.search_image(query, k=6, metric="qfd")
    finally:
        searcher.store.close()
    got = response.json()["results"]
    assert [(r["id"], r["distance"]) for r in got] == [(r.id, pytest.approx(r.distance)) for r in expected]
    assert set(names(response)[:2]) == {"blue_noisy.jpg", "blue.png"}


def test_palettes_describe_query_and_results(client, indexed):
    body = upload(client, (indexed[0] / "red_green.png").read_bytes(), k=2).json()
    query_palette = body["query"]["palette"]
    assert [round(color["proportion"], 1) for color in query_palette] == [0.7, 0.3]
    assert query_palette[0]["rgb"][0] > 150 > query_palette[0]["rgb"][1]  # red dominates
    assert query_palette[1]["rgb"][1] > 150 > query_palette[1]["rgb"][0]  # then green
    first = body["results"][0]
    assert first["name"] == "red_green.png" and first["palette"] == query_palette
    for color in query_palette:
        assert color["hex"] == "#{:02x}{:02x}{:02x}".format(*color["rgb"]) and len(color["lab"]) == 3


def test_similar_searches_by_an_indexed_image(client, indexed, ids):
    image_id = ids["navy_white.png"]
    by_id = client.get(f"/api/images/{image_id}/similar", params={"k": 4, "metric": "qfd"}).json()
    by_upload = upload(client, (indexed[0] / "navy_white.png").read_bytes(), k=4, metric="qfd").json()
    assert by_id["query"]["kind"] == "similar" and by_id["query"]["label"] == "navy_white.png"
    assert by_id["results"][0]["id"] == image_id
    assert [(r["id"], r["distance"]) for r in by_id["results"]] == [(r["id"], r["distance"]) for r in by_upload["results"]]


# --- search by colors -----------------------------------------------------------------
def test_colors_find_the_matching_two_tone(client):
    red, green = ("#{:02x}{:02x}{:02x}".format(*PALETTE[name]) for name in ("red", "green"))
    response = client.post("/api/search/colors", params={"k": 3, "metric": "qfd"},
                           json={"colors": [{"hex": red, "weight": 0.7}, {"hex": green, "weight": 0.3}]})
    assert response.status_code == 200, response.text
    assert names(response)[0] == "red_green.png"
    body = response.json()
    assert body["query"]["kind"] == "colors" and [round(c["proportion"], 2) for c in body["query"]["palette"]] == [0.7, 0.3]
    # Weights are normalized: 7 and 3 are the same query as 0.7 and 0.3.
    again = client.post("/api/search/colors", params={"k": 3, "metric": "qfd"},
                        json={"colors": [{"hex": red, "weight": 7}, {"hex": green, "weight": 3}]})
    assert again.json()["results"] == body["results"]


def test_one_color_finds_its_solid_image(client):
    response = client.post("/api/search/colors", params={"k": 3}, json={"colors": [{"hex": "e0c080"}]})
    results = response.json()["results"]
    assert {r["name"] for r in results[:2]} == {"sand.png", "sand_noisy.jpg"}
    assert results[0]["distance"] == pytest.approx(0.0, abs=1e-9) and results[2]["distance"] > 0


@pytest.mark.parametrize(
    "body",
    [
        {"colors": [{"hex": "#12345", "weight": 1}]},
        {"colors": [{"hex": "#gg0000", "weight": 1}]},
        {"colors": [{"hex": "red", "weight": 1}]},
        {"colors": [{"hex": "#ff0000", "weight": 0}]},
        {"colors": [{"hex": "#ff0000", "weight": -0.5}]},
        {"colors": [{"hex": "#ff0000", "weight": "heavy"}]},
        {"colors": [{"hex": "#ff0000", "weight": 1}] * 6},
        {"colors": []},
        {"colours": [{"hex": "#ff0000"}]},
        [],
    ],
)
def test_malformed_colors_get_422(client, body):
    response = client.post("/api/search/colors", json=body)
    assert response.status_code == 422
    assert response.json()["error"]
    assert client.get("/api/info").status_code == 200


def test_colors_body_that_is_not_json_gets_422(client):
    response = client.post("/api/search/colors", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


# --- bad requests ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"hello, I am text", "notes.txt", "not a recognised image format"),
        (b"", "empty.png", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "broken.png", ""),
    ],
)
def test_upload_that_is_not_an_image_gets_400(client, data, name, words):
    response = upload(client, data, name=name)
    assert response.status_code == 400
    error = response.json()["error"]
    assert name in error and words in error
    assert client.get("/api/info").status_code == 200


def test_truncated_image_upload_gets_400(client, indexed):
    data = (indexed[0] / "noisy" / "red_noisy.jpg").read_bytes()
    response = upload(client, data[: len(data) // 3], name="cut.jpg", mime="image/jpeg")
    # A JPEG cut short still decodes in part with some decoders; a hard failure must be a 400, never a 500.
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert "cut.jpg" in response.json()["error"]


def test_missing_image_field_gets_422(client):
    response = client.post("/api/search", files={"picture": ("a.png", b"123", "image/png")})
    assert response.status_code == 422 and "image" in response.json()["error"]


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 100000}, {"k": "ten"}, {"metric": "cosine"}])
def test_bad_parameters_get_422(client, indexed, params):
    response = upload(client, (indexed[0] / "red.png").read_bytes(), **params)
    assert response.status_code == 422 and response.json()["error"]


def test_oversized_upload_with_content_length_gets_413(indexed):
    limit = 50_000
    with TestClient(create_app(indexed[1], max_upload_bytes=limit)) as small:
        ok = upload(small, (indexed[0] / "red.png").read_bytes())
        assert ok.status_code == 200
        response = upload(small, bytes(limit + 1000))
        assert response.status_code == 413  # refused on its Content-Length, before the body is read
        assert small.get("/api/info").status_code == 200


# --- images by id ---------------------------------------------------------------------
def test_thumbnail_is_a_bounded_cached_jpeg(client, ids):
    service = client.app.state.service
    hits = service.thumbnails.hits
    response = client.get(f"/api/images/{ids['large.png']}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "JPEG" and max(image.size) == 256 and image.size == (256, 171)
    again = client.get(f"/api/images/{ids['large.png']}/thumbnail")
    assert again.content == response.content and service.thumbnails.hits == hits + 1
    etag = response.headers["etag"]
    assert client.get(f"/api/images/{ids['large.png']}/thumbnail", headers={"If-None-Match": etag}).status_code == 304


def test_small_image_keeps_its_size_in_thumbnail(client, ids):
    with Image.open(io.BytesIO(client.get(f"/api/images/{ids['red.png']}/thumbnail").content)) as image:
        assert image.size == (64, 48)
        assert image.convert("RGB").getpixel((10, 10)) == pytest.approx(PALETTE["red"], abs=4)


def test_original_is_the_indexed_file(client, indexed, ids):
    response = client.get(f"/api/images/{ids['sand_navy.png']}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == (indexed[0] / "sand_navy.png").read_bytes()


@pytest.mark.parametrize("suffix", ["", "/thumbnail"])
def test_indexed_file_that_disappeared_gets_404(client, ids, suffix):
    for name in ("gone.png", "gone_too.jpg"):
        response = client.get(f"/api/images/{ids[name]}{suffix}")
        assert response.status_code == 404 and str(ids[name]) in response.json()["error"]
    assert client.get("/api/info").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/abc",
        "/api/images/-1",
        "/api/images/1.0",
        "/api/images/99999",
        "/api/images/99999/thumbnail",
        "/api/images/abc/thumbnail",
        "/api/images/abc/similar",
        "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/images/..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/api/images/not_indexed.txt",
        "/api/images/%2Fetc%2Fpasswd",
    ],
)
def test_anything_but_an_indexed_id_gets_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "error" in response.json()
    assert b"root:" not in response.content
