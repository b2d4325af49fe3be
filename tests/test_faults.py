"""Crash safety and concurrency against real subprocesses: kill -9 mid-run, search while indexing, a second writer."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cbir.errors import StoreError
from cbir.store import Store
from search import Searcher
from tests.conftest import gradient, noisy, write_image

N_IMAGES = 400


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        write_image(folder / f"d{i % 7}" / f"img_{i:04d}.jpg", noisy(gradient(tuple(a), tuple(b), size=(40, 56)), 6, i))
    return folder


def start_index(folder: Path, db: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "--colors", "16", "--workers", "2",
         "--batch-size", "25", "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def count_rows(db: str) -> int:
    try:
        with Store(db) as store:
            return store.count()
    except Exception:
        return 0


def kill_when(process: subprocess.Popen, db: str, *, rows_at_least: int | None, after: float) -> None:
    """SIGKILL the run once ``after`` seconds passed and ``rows_at_least`` rows are committed; assert it died of it."""
    deadline = time.monotonic() + 60
    started = time.monotonic()
    while time.monotonic() < deadline and process.poll() is None:
        if time.monotonic() - started >= after and (rows_at_least is None or count_rows(db) >= rows_at_least):
            break
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended (exit {process.returncode}) before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the whole group: main process and extraction workers
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished


def check_consistent(db: str) -> int:
    if not db.startswith("postgresql"):
        if not os.path.exists(db):
            return 0
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'meta'").fetchone()[0]:
                return 0  # killed before the tables were made: the next run makes them
    try:
        store = Store(db)
    except StoreError as exc:
        assert "no cbir tables" in str(exc)  # killed before the tables were made: the next run makes them
        return 0
    with store:
        paths = list(store.file_states())
        assert len(paths) == len(set(paths)) == store.count()
        if store.codebook() is not None and store.count():
            searcher = Searcher(store)
            ids, X = store.all_histograms()
            fast = searcher.search_histogram(X[0], k=5, method="exact")
            brute = searcher.search_histogram(X[0], k=5, method="brute")
            assert [r.id for r in fast] == [r.id for r in brute]
        return store.count()


def reference_histograms(folder: Path, db: str) -> dict[str, bytes]:
    result = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "--colors", "16", "-q"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        ids, X = store.all_histograms()
        paths = store.paths(ids)
        return {paths[int(i)]: x.tobytes() for i, x in zip(ids, X)}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_at_any_moment_then_resume(big_folder, tmp_path, backend, request):
    db = str(tmp_path / "crash.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    seen_counts = []
    # Early (start-up, scan, codebook), as soon as rows appear, and mid-run.
    for rows_at_least, after in [(None, 0.5), (1, 0.0), (200, 0.0)]:
        process = start_index(big_folder, db)
        kill_when(process, db, rows_at_least=rows_at_least, after=after)
        assert "Traceback" not in process.stderr.read()
        seen_counts.append(check_consistent(db))
    assert seen_counts == sorted(seen_counts)  # every run resumed: nothing committed was lost
    assert 0 < seen_counts[-1]
    final = start_index(big_folder, db, "--json")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    report = json.loads(out)
    assert report["added"] == N_IMAGES - seen_counts[-1] and report["removed"] == 0
    assert check_consistent(db) == N_IMAGES
    # Exactly what an uninterrupted run produces.
    with Store(db) as store:
        ids, X = store.all_histograms()
        paths = store.paths(ids)
        got = {paths[int(i)]: x.tobytes() for i, x in zip(ids, X)}
    assert got == reference_histograms(big_folder, str(tmp_path / "reference.db"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_search_answers_while_an_index_run_writes(big_folder, tmp_path, backend, request):
    db = str(tmp_path / "busy.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    first = sorted(big_folder.rglob("*.jpg"))[:40]
    seed_folder = tmp_path / "seed"
    for path in first:
        (seed_folder / path.name).parent.mkdir(parents=True, exist_ok=True)
        (seed_folder / path.name).write_bytes(path.read_bytes())
    subprocess.run([sys.executable, "-m", "cbir", "index", str(seed_folder), "--db", db, "--colors", "16", "-q"],
                   check=True, timeout=300, capture_output=True)
    # A second process: adds a second root of 400 in small batches.
    writer = start_index(big_folder, db, "--workers", "1", "--batch-size", "5")
    command = subprocess.Popen([sys.executable, "-m", "cbir", "search", str(first[0]), "--db", db, "--json", "-k", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    searches_during, sizes = 0, set()
    try:
        with Store(db) as store:
            searcher = Searcher(store)
            while writer.poll() is None:
                results = searcher.search_image(first[1], k=3)
                assert results and results[0].distance >= 0
                sizes.add(store.count())
                searches_during += writer.poll() is None
        out, err = command.communicate(timeout=120)
        assert command.returncode == 0, err  # the command-line search, started while the writer ran
        assert json.loads(out)["results"]
    finally:
        _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert searches_during >= 1 and len(sizes) >= 2  # answered while rows were being added
    assert check_consistent(db) == N_IMAGES + len(first)  # the seed folder stays: it is another root


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_second_writer_is_told_the_database_is_busy(tmp_path, backend, request):
    folder = tmp_path / "f"
    write_image(folder / "a.jpg", gradient((0, 0, 0), (255, 0, 0)))
    db = str(tmp_path / "lock.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "--colors", "16", "-q"],
                   check=True, timeout=300, capture_output=True)
    with Store(db) as store, store.writer_lock():  # what a running 'cbir index' holds
        second = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "-q"],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "database is busy" in second.stderr and "Traceback" not in second.stderr
        search = subprocess.run([sys.executable, "-m", "cbir", "search", str(folder / "a.jpg"), "--db", db, "--json"],
                                capture_output=True, text=True, timeout=120)
        assert search.returncode == 0 and json.loads(search.stdout)["results"][0]["distance"] == 0.0
    again = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "-q"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
