import os
import re
import shutil

import numpy as np
import pytest

from cbir.errors import BadInputError, CodebookMismatchError
from cbir.histogram import DEFAULT_LAYOUT
from cbir.store import Store
from indexer import index_folder
from indexer.scan import scan
from search import Searcher
from tests.conftest import PALETTE, gradient, noisy, solid, write_image


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url")


def _rows(store: Store) -> dict[str, tuple[int, str]]:
    return {path: (state.id, state.content_hash) for path, state in store.file_states().items()}


def test_index_then_sync_add_change_move_delete(color_folder, db):
    with Store(db, create=True) as store:
        first = index_folder(color_folder, store, n_colors=16, workers=2)
        assert first.added == 24 and first.failed == [] and first.n_colors == 16
        assert store.count() == 24
        before = _rows(store)

        again = index_folder(color_folder, store, workers=2)
        assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 24)
        assert _rows(store) == before

        write_image(color_folder / "new.png", solid((120, 40, 200)))
        write_image(color_folder / "red.png", gradient((0, 0, 0), (255, 255, 255)))  # content changed in place
        os.utime(color_folder / "red.png", (1, 1_000_000))
        os.rename(color_folder / "blue.png", color_folder / "noisy" / "renamed_blue.png")
        (color_folder / "green.png").unlink()
        os.utime(color_folder / "white.png", (1, 2_000_000))  # touched, same bytes
        synced = index_folder(color_folder, store, workers=1)
        assert (synced.added, synced.updated, synced.moved, synced.removed, synced.touched) == (1, 1, 1, 1, 1)
        after = _rows(store)
        root = str(color_folder.resolve())
        assert after[f"{root}/noisy/renamed_blue.png"] == before[f"{root}/blue.png"]  # same row, no re-extraction
        assert f"{root}/green.png" not in after and f"{root}/blue.png" not in after
        assert after[f"{root}/red.png"][0] == before[f"{root}/red.png"][0]
        assert after[f"{root}/red.png"][1] != before[f"{root}/red.png"][1]
        assert store.count() == 24


def test_broken_files_are_recorded_and_skipped(tmp_path, db):
    folder = tmp_path / "mixed"
    write_image(folder / "good.png", solid(PALETTE["red"]))
    write_image(folder / "good2.jpg", noisy(solid(PALETTE["blue"]), 5, 0))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("hello, not an image")
    (folder / "truncated.jpg").write_bytes((folder / "good2.jpg").read_bytes()[:30])
    (folder / "notes.txt").write_text("ignored: not an image extension")
    with Store(db, create=True) as store:
        report = index_folder(folder, store, n_colors=16, workers=1)
        reasons = {os.path.basename(f.path): f.reason for f in report.failed}
        assert set(reasons) == {"empty.jpg", "text.png", "truncated.jpg"}
        assert reasons["empty.jpg"] == "empty file"
        assert store.count() == 2 and store.failure_count() == 3
        # A second run does not retry unchanged bad files, and keeps reporting them.
        again = index_folder(folder, store, workers=1)
        assert again.added == 0 and len(again.failed) == 3
        # Fixing a file indexes it and clears its failure; deleting one forgets it.
        write_image(folder / "empty.jpg", solid(PALETTE["green"]))
        (folder / "text.png").unlink()
        index_folder(folder, store, workers=1)
        assert store.count() == 3
        assert [os.path.basename(f.path) for f in store.failures()] == ["truncated.jpg"]


def test_a_file_that_breaks_loses_its_row(tmp_path, db):
    folder = tmp_path / "f"
    write_image(folder / "a.png", solid(PALETTE["red"]))
    write_image(folder / "b.png", solid(PALETTE["blue"]))
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        (folder / "a.png").write_bytes(b"garbage")
        report = index_folder(folder, store, workers=1)
        assert report.removed == 1 and store.count() == 1 and store.failure_count() == 1


def test_parallel_and_serial_extraction_agree(color_folder, tmp_path):
    with Store(tmp_path / "serial.db", create=True) as a, Store(tmp_path / "parallel.db", create=True) as b:
        index_folder(color_folder, a, n_colors=16, workers=1)
        index_folder(color_folder, b, n_colors=16, workers=2)
        ids_a, X_a = a.all_histograms()
        ids_b, X_b = b.all_histograms()
        np.testing.assert_array_equal(X_a, X_b)
        assert a.paths(ids_a) == b.paths(ids_b)


def test_config_mismatch_and_bad_folder(color_folder, tmp_path, db):
    with Store(db, create=True) as store:
        index_folder(color_folder, store, n_colors=16, workers=1)
        with pytest.raises(CodebookMismatchError, match="16 colors, not 32"):
            index_folder(color_folder, store, n_colors=32)
        with pytest.raises(CodebookMismatchError, match=re.escape(f"'{DEFAULT_LAYOUT}' layout, not 'grid2'")):
            index_folder(color_folder, store, layout="grid2")
        with pytest.raises(BadInputError, match="not a folder"):
            index_folder(tmp_path / "missing", store)
    empty = tmp_path / "empty"
    empty.mkdir()
    with Store(tmp_path / "y.db", create=True) as store, pytest.raises(BadInputError, match="no image files"):
        index_folder(empty, store)


def test_scan_survives_symlink_loops_and_odd_names(tmp_path):
    folder = tmp_path / "odd"
    write_image(folder / "ünïcode name.png", solid(PALETTE["red"]))
    write_image(folder / "sub" / "with space.JPG", solid(PALETTE["blue"]))
    os.symlink(folder, folder / "sub" / "loop")
    os.symlink(folder / "does-not-exist.png", folder / "dangling.png")
    files, problems = scan(folder)
    names = sorted(os.path.basename(f.path) for f in files)
    assert names == ["with space.JPG", "ünïcode name.png"]
    assert [os.path.basename(p.path) for p in problems] == ["dangling.png"]


def test_postgres_and_sqlite_rank_identically(color_folder, tmp_path, postgres_url):
    rankings = []
    for db in (str(tmp_path / "s.db"), postgres_url):
        with Store(db, create=True) as store:
            index_folder(color_folder, store, n_colors=16, workers=2)
            searcher = Searcher(store)
            query = color_folder / "noisy" / "sand_noisy.jpg"
            rankings.append([(r.path, r.distance) for r in searcher.search_image(query, k=24, metric="qfd")])
    assert rankings[0] == rankings[1]


def test_copied_folder_is_found_as_moved(color_folder, db):
    with Store(db, create=True) as store:
        index_folder(color_folder, store, n_colors=16, workers=1)
        ids = sorted(s.id for s in store.file_states().values())
        shutil.move(str(color_folder / "noisy"), str(color_folder / "renamed"))
        report = index_folder(color_folder, store, workers=1)
        assert report.moved == 8 and report.added == 0 and report.removed == 0
        assert sorted(s.id for s in store.file_states().values()) == ids


def test_a_threaded_process_indexes_through_a_fork_server_with_the_same_results(color_folder, tmp_path):
    """With another thread alive, workers are not forked from this process; moves are still recognized."""
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        with Store(tmp_path / "t.db", create=True) as threaded, Store(tmp_path / "u.db", create=True) as plain:
            index_folder(color_folder, threaded, n_colors=16, workers=2)
            stop.set()
            other.join()
            index_folder(color_folder, plain, n_colors=16, workers=1)
            np.testing.assert_array_equal(threaded.all_histograms()[1], plain.all_histograms()[1])
            shutil.move(str(color_folder / "noisy"), str(color_folder / "moved"))
            stop.clear()
            other = threading.Thread(target=stop.wait, daemon=True)
            other.start()
            report = index_folder(color_folder, threaded, workers=2)
            assert (report.moved, report.added, report.removed) == (8, 0, 0)
    finally:
        stop.set()


def test_workers_fork_cleanly_after_this_process_ran_opencv_threads(color_folder, tmp_path):
    """OpenCV's thread pool does not survive a fork: a worker forked from a process that ran a
    multi-threaded OpenCV call and then reconfigured the pool hung. In a child process, with a timeout."""
    script = f"""
import cv2, numpy as np
from cbir.histogram import histogram
from cbir.store import Store
from indexer import index_folder
cv2.setNumThreads(2)
codes = np.random.default_rng(0).integers(0, 128, (3000, 4000)).astype(np.uint8)
histogram(codes, 128)  # OpenCV calls on a large image: its thread pool is running now
with Store({str(tmp_path / "cv.db")!r}, create=True) as store:
    report = index_folder({str(color_folder)!r}, store, n_colors=16, workers=2)
print(report.added, cv2.getNumThreads())
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    added, threads = map(int, done.stdout.split())
    assert added == len(scan(color_folder)[0])
    assert threads == 2  # restored after the run
