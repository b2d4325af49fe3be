"""The HTTP API (search/http.py) against a real SQLite index, in-process and under a real uvicorn."""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install -e '.[web]'")
from fastapi.testclient import TestClient
from PIL import Image

from cbir.distances import COMPACT
from cbir.histogram import DEFAULT_LAYOUT
from cbir.store import Store
from indexer import index_folder
from search import Searcher
from search.http import create_app
from tests.conftest import PALETTE, make_color_folder, two_tone, write_image

LIMIT = 20_000_000


# --- helpers shared with test_web.py --------------------------------------------------
def make_folder(folder: Path) -> Path:
    """For every palette color a solid PNG and a noisy JPEG, and two-tones of neighbouring colors."""
    return make_color_folder(folder)


@contextmanager
def running_server(app, *, log_level: str = "warning") -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Run ``app`` under a real uvicorn on a free localhost port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path]:
    folder = make_folder(tmp_path_factory.mktemp("images"))
    # A larger picture (thumbnails are bounded) and two files deleted after indexing.
    rng = np.random.default_rng(0)
    write_image(folder / "large.png", np.repeat(np.repeat(rng.integers(0, 255, (30, 45, 3), dtype=np.uint8), 20, 0), 20, 1))
    write_image(folder / "gone.png", two_tone(PALETTE["white"], PALETTE["blue"], 0.5))
    write_image(folder / "gone_too.jpg", two_tone(PALETTE["navy"], PALETTE["sand"], 0.5))
    (folder / "not_indexed.txt").write_text("secret")
    db = tmp_path_factory.mktemp("db") / "index.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
    (folder / "gone.png").unlink()
    (folder / "gone_too.jpg").unlink()
    return folder, db


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


def upload(client: TestClient, data: bytes, name: str = "query.png", mime: str = "image/png", **params):  # type: ignore[no-untyped-def]
    return client.post("/api/search", params=params, files={"image": (name, data, mime)})


def names(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [result["name"] for result in response.json()["results"]]


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


# --- under a real uvicorn -------------------------------------------------------------
@pytest.fixture(scope="module")
def live(indexed) -> Iterator[str]:
    with running_server(create_app(indexed[1])) as url:
        yield url


def _raw_request(url: str, head: bytes, body_chunks: Iterator[bytes] | None = None) -> tuple[int, bytes, int]:
    """Send a raw request, streaming ``body_chunks`` until the server answers; return (status, body, bytes sent)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        body_chunks = body_chunks or iter(())
        sent = 0
        pending = b""
        while True:
            readable, _, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if not pending:
                pending = next(body_chunks, b"")
                if not pending:
                    break
            try:
                count = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += count
            pending = pending[count:]
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read(), sent


def test_declared_too_large_upload_is_refused_before_its_body(live):
    head = (
        b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode()
    )
    status, _, sent = _raw_request(live, head)
    assert status == 413 and sent == 0
    assert get_json(f"{live}/api/info")[0] == 200


def test_streamed_too_large_upload_is_cut_off_at_the_limit(live):
    head = (
        b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    total = 3 * LIMIT
    piece = b"\x00" * 65536

    def chunks() -> Iterator[bytes]:
        first = b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        yield b"%x\r\n%s\r\n" % (len(first), first)
        for _ in range(total // len(piece)):
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"

    status, body, sent = _raw_request(live, head, chunks())
    assert status == 413 and "error" in json.loads(body)
    # The server answered long before the client was done: the body was never read whole.
    assert LIMIT <= sent < 2 * LIMIT
    status, info = get_json(f"{live}/api/info")
    assert status == 200 and info["images"] == 27


@pytest.mark.parametrize("path", ["/api/images/../../etc/passwd", "/api/images/../../../etc/passwd/thumbnail",
                                  "/api/images//etc/passwd", "/static/../http.py"])
def test_dot_dot_paths_get_404_on_the_wire(live, path):
    status, body, _ = _raw_request(live, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status == 404 and b"root:" not in body


def test_parallel_requests_get_the_same_answers_as_one_at_a_time(live, client, indexed):
    """uvicorn runs handlers in a thread pool; the shared Searcher must give every thread the right answer."""
    from concurrent.futures import ThreadPoolExecutor

    files = ["red_green.png", "navy_white.png", "noisy/sand_noisy.jpg", "black_red.png"]
    metrics = ["chi2", "qfd", "l1", "qfd-gauss", "hellinger"]
    jobs = [(name, metric) for name in files for metric in metrics]
    expected = {job: [(r["id"], r["distance"]) for r in upload(client, (indexed[0] / job[0]).read_bytes(), k=6,
                                                                metric=job[1]).json()["results"]] for job in jobs}

    def over_the_wire(job: tuple[str, str]) -> list[tuple[int, float]]:
        data = (indexed[0] / job[0]).read_bytes()
        boundary = "cbirtestboundary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{live}/api/search?k=6&metric={job[1]}", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return [(r["id"], r["distance"]) for r in json.loads(response.read())["results"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(over_the_wire, jobs * 3))
    assert answers == [expected[job] for job in jobs * 3]


# --- searches while an index run writes -----------------------------------------------
def test_searches_are_served_while_an_index_run_writes(tmp_path):
    root = tmp_path / "photos"
    make_folder(root / "a")
    rng = np.random.default_rng(7)
    new = [two_tone(tuple(rng.integers(0, 256, 3)), tuple(rng.integers(0, 256, 3)), float(rng.uniform(0.2, 0.8)))
           for _ in range(40)]
    for i, image in enumerate(new):
        write_image(root / "b" / f"new_{i:02d}.png", image)
    db = tmp_path / "index.db"
    with Store(db, create=True) as store:
        index_folder(root / "a", store, n_colors=16, workers=1)
    before = 24

    midway, resume = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def progress(done: int, total: int) -> None:
        if done == 20:  # 20 rows committed (batches of 5); hold the run here until the server has been asked
            midway.set()
            resume.wait(60)

    def index_more() -> None:
        try:
            # The folder holds a/ (already indexed, unchanged) and b/ (new).
            with Store(db) as writer:
                index_folder(root, writer, workers=1, batch_size=5, progress=progress)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            midway.set()

    query = {"colors": [{"hex": "#808080"}]}
    with TestClient(create_app(db)) as client:
        assert len(client.post("/api/search/colors", params={"k": 200}, json=query).json()["results"]) == before
        writer = threading.Thread(target=index_more)
        writer.start()
        assert midway.wait(60) and not errors
        mid = client.post("/api/search/colors", params={"k": 200}, json=query)
        assert mid.status_code == 200 and len(mid.json()["results"]) == before + 20
        assert client.get("/api/info").json()["images"] == before + 20
        resume.set()
        statuses = []
        while writer.is_alive():
            statuses.append(upload(client, (root / "a" / "red.png").read_bytes(), k=3).status_code)
        writer.join()
        assert not errors, errors
        assert statuses and set(statuses) == {200}
        last = (root / "b" / "new_39.png").read_bytes()
        after = upload(client, last, k=200)
        assert len(after.json()["results"]) == before + 40 and names(after)[0] == "new_39.png"


# --- the command ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cbir_serve_answers_and_stops(indexed):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cbir", "serve", "--db", str(indexed[1]), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, info = get_json(f"http://127.0.0.1:{port}/api/info")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stderr.read().decode() if process.stderr else "serve died") from None
                time.sleep(0.2)
        assert status == 200 and info["images"] == 27
        # cbir serve hands the indexer's sync to the app (search does not import the indexer).
        assert "/api/sync" in get_json(f"http://127.0.0.1:{port}/openapi.json")[1]["paths"]
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert out == b""  # logs go to stderr
    assert f"127.0.0.1:{port}".encode() in err


def test_cbir_serve_without_an_index_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cbir", "serve", "--db", str(tmp_path / "none.db")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Error: no index at") and len(result.stderr.strip().splitlines()) == 1


def test_cbir_serve_without_the_web_extra_says_how_to_install(tmp_path):
    # The web packages are made unimportable in a child interpreter, as if they were not installed.
    code = "import sys; sys.modules['fastapi'] = None; from cbir.cli import main; main(['serve', '--db', sys.argv[1]])"
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: install the web extra: pip install -e '.[web]'"


# --- re-syncing the roots -------------------------------------------------------------
def test_sync_refuses_a_mass_removal_then_prunes_when_confirmed(tmp_path):
    folder = make_folder(tmp_path / "photos")
    db = tmp_path / "sync.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
    root = str(folder.resolve())
    with TestClient(create_app(db)) as read_only:  # no sync given: no write route
        assert read_only.post("/api/sync").status_code in (404, 405)
        assert "/api/sync" not in read_only.get("/openapi.json").json()["paths"]
    with TestClient(create_app(db, sync=index_folder)) as sync_client:
        write_image(folder / "new.png", two_tone(PALETTE["red"], PALETTE["sand"], 0.3))
        added = sync_client.post("/api/sync")
        assert added.status_code == 200, added.text
        assert [(r["root"], r["added"], r["removed"]) for r in added.json()["synced"]] == [(root, 1, 0)]
        for path in sorted(folder.rglob("*.*"))[:20]:  # 20 of 25 files gone
            path.unlink()
        refused = sync_client.post("/api/sync")
        assert refused.status_code == 409 and "would remove 20 of the 25" in refused.json()["error"]
        assert sync_client.get("/api/info").json()["images"] == 25  # nothing written
        unknown = sync_client.post("/api/sync", params={"root": str(tmp_path)})
        assert unknown.status_code == 422 and "is not a root" in unknown.json()["error"]
        pruned = sync_client.post("/api/sync", params={"root": root, "prune": "true"})
        assert pruned.status_code == 200 and pruned.json()["synced"][0]["removed"] == 20
        assert sync_client.get("/api/info").json()["images"] == 5
        # Searches see the synced index at once.
        assert len(sync_client.post("/api/search/colors", json={"colors": [{"hex": "#dc1e1e"}]}).json()["results"]) == 5
        # The request's max_removal_share reaches the indexer: 3 of 5 gone is refused at the default, not at 0.7.
        for path in sorted(folder.rglob("*.*"))[:3]:
            path.unlink()
        assert sync_client.post("/api/sync").status_code == 409
        assert sync_client.post("/api/sync", params={"max_removal_share": 1.5}).status_code == 422
        shared = sync_client.post("/api/sync", params={"max_removal_share": 0.7})
        assert shared.status_code == 200 and shared.json()["synced"][0]["removed"] == 3
