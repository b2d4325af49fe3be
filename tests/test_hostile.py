"""A folder of hostile and odd files, indexed by the real ``cbir`` command: a summary, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cbir.store import Store
from tests.conftest import PALETTE, gradient, noisy, solid, write_image


def _bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A real zlib stream of the first rows: a few KB that claim 30000x30000 RGB.
    rows = zlib.compress(b"\0" * (3 * width + 1) * 64, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def build_hostile_folder(root: Path) -> tuple[set[str], dict[str, str]]:
    """Returns (names expected to be indexed, name -> expected reason fragment for the skipped)."""
    good: set[str] = set()
    bad: dict[str, str] = {}
    base = noisy(gradient(PALETTE["sand"], PALETTE["blue"], size=(64, 96)), 5, 0)
    jpeg = write_image(root / "ok.jpg", base).read_bytes()
    good.add("ok.jpg")
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 3, 20, 200, len(jpeg) // 3):
        (root / f"truncated_{n}.jpg").write_bytes(jpeg[:n])
        bad[f"truncated_{n}.jpg"] = "empty file" if n == 0 else ""
    for i in range(5):
        flipped = bytearray(jpeg)
        for j in rng.integers(0, len(jpeg), 40):
            flipped[j] ^= 0xFF
        (root / f"flipped_{i}.jpg").write_bytes(bytes(flipped))  # may or may not decode: either is fine
    (root / "zero.png").write_bytes(b"")
    bad["zero.png"] = "empty file"
    (root / "text.jpg").write_text("Dear diary, this is not a JPEG.")
    bad["text.jpg"] = "not a recognised image format"
    (root / "bomb.png").write_bytes(_bomb_png(30000, 30000))
    bad["bomb.png"] = "30000x30000 = 900,000,000 pixels is over the limit of 90,000,000 pixels"
    cv2.imwrite(str(root / "deep16.png"), (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))
    Image.fromarray(np.full((10, 12), 90, np.uint8)).save(root / "gray.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[:8, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    Image.new("CMYK", (20, 20), (200, 0, 0, 0)).save(root / "cmyk.jpg")
    write_image(root / "one.png", solid((5, 6, 7), size=(1, 1)))
    for ext in (".bmp", ".tif", ".webp"):
        write_image(root / f"format{ext}", base)
    Image.fromarray(base).save(root / "anim.gif", save_all=True, append_images=[Image.fromarray(base[::-1])])
    write_image(root / "sub dir" / "naïve café 写真.png", solid(PALETTE["red"]))
    os.symlink(root, root / "sub dir" / "loop")
    good |= {"deep16.png", "gray.png", "alpha.png", "cmyk.jpg", "one.png", "format.bmp", "format.tif", "format.webp",
             "anim.gif", "naïve café 写真.png"}
    return good, bad


def run_cbir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbir", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_hostile_folder_is_indexed_with_a_summary(tmp_path, backend, request):
    root = tmp_path / "hostile"
    root.mkdir()
    good, bad = build_hostile_folder(root)
    db = str(tmp_path / "h.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    result = run_cbir("index", str(root), "--db", db, "--colors", "16", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    for name, reason in bad.items():
        assert name in failed, name
        assert reason in failed[name]
    with Store(db) as store:
        indexed = {Path(p).name for p in store.file_states()}
        assert good <= indexed
        assert not indexed & set(bad)
        assert store.count() + store.failure_count() == len(indexed) + len(failed)
    # The summary without --json names files and reasons on stderr.
    text = run_cbir("index", str(root), "--db", db, "-q")
    assert text.returncode == 0 and "skipped" in text.stderr and "bomb.png: " in text.stderr
    # Every odd-but-valid file is searchable, and finds itself first.
    for name in ("naïve café 写真.png", "cmyk.jpg", "deep16.png"):
        path = next(root.rglob(name))
        found = run_cbir("search", str(path), "--db", db, "--json", "-k", "1")
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["results"][0]["distance"] == 0.0


NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root without setpriv cannot lose read access")
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_unreadable_file_and_folder(tmp_path, backend, request):
    db = str(tmp_path / "p.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    root = tmp_path / "photos"
    write_image(root / "fine.png", solid(PALETTE["green"]))
    write_image(root / "secret.png", solid(PALETTE["red"]))
    write_image(root / "locked" / "inside.png", solid(PALETTE["blue"]))
    os.chmod(root / "secret.png", 0)
    os.chmod(root / "locked", 0)
    try:
        # Root reads everything; without the DAC-override capabilities it obeys permission bits like anyone.
        prefix = NO_OVERRIDE if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, sys.executable, "-m", "cbir", "index", str(root), "--db", db,
                                 "--colors", "16", "--json", "-q"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
        assert failed.get("secret.png") == "permission denied"
        assert "cannot list folder" in failed.get("locked", "")
        assert report["added"] == 1
    finally:
        os.chmod(root / "secret.png", 0o644)
        os.chmod(root / "locked", 0o755)
