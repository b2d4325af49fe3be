"""Helpers shared by the HTTP, server and browser tests: a small indexed folder and a real uvicorn in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cbir.store import Store
from indexer import index_folder
from tests.conftest import PALETTE, make_color_folder, two_tone, write_image


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
    import uvicorn

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


def make_indexed(tmp_path_factory) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A small indexed folder (palette images, a large picture, two files deleted after indexing): (folder, db)."""
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


def upload(client, data: bytes, name: str = "query.png", mime: str = "image/png", **params):  # type: ignore[no-untyped-def]
    return client.post("/api/search", params=params, files={"image": (name, data, mime)})


def names(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [result["name"] for result in response.json()["results"]]
