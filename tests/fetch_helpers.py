"""Real servers on loopback and archives in each set's real layout, for the `cbir datasets` tests.

``http_server`` is an ``http.server`` in a thread that serves bytes with Range support, can
drop the connection halfway through a body (once per path), and records the Range headers
it was sent. ``ftp_server`` is pyftpdlib serving a folder anonymously, recording REST offsets.
"""

from __future__ import annotations

import io
import tarfile
import threading
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

#: One color per Wang class (10 classes), far apart in L*a*b*.
CLASS_COLORS = [(200, 30, 30), (30, 160, 40), (30, 60, 200), (230, 210, 40), (140, 40, 160),
                (30, 200, 200), (250, 140, 20), (110, 70, 30), (240, 240, 240), (20, 20, 20)]


def jpeg_bytes(color: tuple[int, int, int], seed: int, size: int = 24) -> bytes:
    """A small JPEG of one color with seeded noise (so no two files are byte-identical)."""
    rng = np.random.default_rng(seed)
    rgb = np.clip(np.array(color, np.int16) + rng.integers(-12, 13, (size, size, 3)), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def wang_members(n: int = 1000) -> dict[str, bytes]:
    """test1.tar's layout: image.orig/0.jpg ... image.orig/999.jpg, class = N // 100."""
    return {f"image.orig/{i}.jpg": jpeg_bytes(CLASS_COLORS[(i // 100) % 10], i) for i in range(n)}


def holidays_members(ids: range) -> dict[str, bytes]:
    """jpgN.tar.gz's layout: jpg/NNNNNN.jpg."""
    return {f"jpg/{100000 + i:06d}.jpg": jpeg_bytes(CLASS_COLORS[i % 10], i) for i in ids}


def ukbench_members(n: int) -> dict[str, bytes]:
    """ukbench.zip's layout: full/ukbenchNNNNN.jpg, plus thumbnails and a page that are not the set."""
    members = {f"full/ukbench{i:05d}.jpg": jpeg_bytes(CLASS_COLORS[(i // 4) % 10], i) for i in range(n)}
    members |= {f"thumbnails/ukbench{i:05d}.jpg": jpeg_bytes((0, 0, 0), i, 8) for i in range(4)}
    members["index.html"] = b"<html></html>"
    return members


@dataclass
class HttpServer:
    url: str
    files: dict[str, bytes]
    drop_once: set[str] = field(default_factory=set)
    ignore_range: bool = False
    ranges: list[tuple[str, str | None]] = field(default_factory=list)


@contextmanager
def http_server(files: dict[str, bytes]) -> Iterator[HttpServer]:
    """Serve ``files`` (path without the leading / -> bytes) on 127.0.0.1 at a free port."""
    state = HttpServer("", files)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest's output clean
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            state.ranges.append((name, self.headers.get("Range")))
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                return
            start = 0
            header = self.headers.get("Range")
            if header and not state.ignore_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if name in state.drop_once:
                state.drop_once.discard(name)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the client sees the body end early
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class FtpServer:
    url: str
    rest_offsets: list[int] = field(default_factory=list)


@contextmanager
def ftp_server(folder: Path) -> Iterator[FtpServer]:
    """Serve ``folder`` over FTP to anonymous users on 127.0.0.1 (pyftpdlib)."""
    with warnings.catch_warnings():  # pyftpdlib still imports asyncore/asynchat on Python < 3.12
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

    state = FtpServer("")

    class Handler(FTPHandler):
        def ftp_REST(self, line: str) -> None:
            state.rest_offsets.append(int(line))
            super().ftp_REST(line)

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(folder))
    Handler.authorizer = authorizer
    Handler.passive_ports = None
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    state.url = f"ftp://127.0.0.1:{server.address[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2, "blocking": True}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.close_all()
        thread.join(timeout=5)
