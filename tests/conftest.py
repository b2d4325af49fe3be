"""Shared fixtures: images made in tmp_path, a PostgreSQL database when a server is reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

POSTGRES_URL = os.environ.get("CBIR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write a uint8 RGB array to ``path`` (format from the extension; JPEG at quality 95)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"could not write {path}")
    return path


def solid(color: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """An (H, W, 3) image of one color."""
    return np.full((*size, 3), color, dtype=np.uint8)


def two_tone(a: tuple[int, int, int], b: tuple[int, int, int], share: float = 0.5, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Left ``share`` of the width in color a, the rest in b."""
    image = solid(b, size)
    image[:, : int(round(size[1] * share))] = a
    return image


def gradient(a: tuple[int, int, int], b: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A horizontal gradient from a to b."""
    t = np.linspace(0.0, 1.0, size[1])[None, :, None]
    row = (1 - t) * np.array(a, float) + t * np.array(b, float)
    return np.repeat(np.round(row), size[0], axis=0).astype(np.uint8)


def noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """A copy of ``image`` with Gaussian noise of the given sigma (fixed seed)."""
    rng = np.random.default_rng(seed)
    return np.clip(image.astype(float) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


# Eight well-separated colors used across tests.
PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 210),
    "yellow": (240, 220, 40),
    "sand": (224, 192, 128),
    "navy": (20, 30, 90),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}


@pytest.fixture
def color_folder(tmp_path: Path) -> Path:
    """A folder of small images: for each palette color a solid image and a noisy copy, plus two-tones."""
    return make_color_folder(tmp_path / "images")


def make_color_folder(folder: Path) -> Path:
    """Write the :func:`color_folder` images (24 files) into ``folder`` and return it."""
    names = list(PALETTE)
    for i, name in enumerate(names):
        write_image(folder / f"{name}.png", solid(PALETTE[name]))
        write_image(folder / "noisy" / f"{name}_noisy.jpg", noisy(solid(PALETTE[name]), 6, seed=i))
        other = names[(i + 1) % len(names)]
        write_image(folder / f"{name}_{other}.png", two_tone(PALETTE[name], PALETTE[other], 0.7))
    return folder


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("postgresql://", "postgresql://", 1), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test.

    Skipped when no server is reachable, except under CI (``CI=true``), where that fails the
    run: a CI whose server did not start must not pass with the PostgreSQL half left out.
    """
    if not postgres_available():
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(f"CI is set and no PostgreSQL server is reachable at {POSTGRES_URL}", pytrace=False)
        pytest.skip(f"no PostgreSQL server reachable at {POSTGRES_URL}")
    import psycopg

    name = f"cbir_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def index_path(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Exact search kept on the FAISS path however small the index (brute-force fallback off).

    Returns a counter of the real calls made meanwhile: ``faiss`` (FAISS index searches) and
    ``brute`` (passes over every stored histogram), so a test proves which path ranked.
    """
    from cbir.vectors import VectorIndex
    from search.searcher import Searcher

    counts = SimpleNamespace(faiss=0, brute=0)
    search, brute = VectorIndex.search, Searcher._brute

    def counted_search(self, queries, k):  # type: ignore[no-untyped-def]
        counts.faiss += 1
        return search(self, queries, k)

    def counted_brute(self, query, metric):  # type: ignore[no-untyped-def]
        counts.brute += 1
        return brute(self, query, metric)

    monkeypatch.setattr(VectorIndex, "search", counted_search)
    monkeypatch.setattr(Searcher, "_brute", counted_brute)
    monkeypatch.setattr(Searcher, "brute_fallback", False)
    return counts


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Quantization tables go to a cache shared by this test session only."""
    old = os.environ.get("CBIR_CACHE")
    os.environ["CBIR_CACHE"] = str(tmp_path_factory.mktemp("cbir-cache"))
    yield
    if old is None:
        os.environ.pop("CBIR_CACHE", None)
    else:
        os.environ["CBIR_CACHE"] = old
