"""The HTTP API under a real uvicorn and `cbir serve`: limits on the wire, parallel requests, searches during an index run, sync."""

from __future__ import annotations

import http.client
import json
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install -e '.[web]'")
from fastapi.testclient import TestClient

from cbir.store import Store
from indexer import index_folder
from search.http import create_app
from tests.conftest import PALETTE, two_tone, write_image
from tests.http_helpers import get_json, make_folder, make_indexed, names, running_server, upload

LIMIT = 20_000_000


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path]:
    return make_indexed(tmp_path_factory)


@pytest.fixture(scope="module")
def client(indexed) -> Iterator[TestClient]:
    with TestClient(create_app(indexed[1])) as test_client:
        yield test_client


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
