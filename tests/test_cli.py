"""End to end through the ``cbir`` command: a generated folder with broken files, index, search, info."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.distances import COMPACT
from cbir.histogram import DEFAULT_LAYOUT
from tests.conftest import PALETTE, gradient, noisy, solid, two_tone, write_image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i, (name, color) in enumerate(PALETTE.items()):
        write_image(root / f"{name}.jpg", noisy(solid(color, size=(60, 80)), 4, seed=i))
        write_image(root / "more" / f"{name}_mix.png", two_tone(color, PALETTE["white"], 0.8, size=(60, 80)))
    write_image(root / "sky.png", gradient((30, 60, 210), (250, 250, 250), size=(60, 80)))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "empty.png").write_bytes(b"")
    (root / "readme.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def db(folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "cli.db"
    result = CliRunner().invoke(main, ["index", str(folder), "--db", str(path), "--colors", "16", "--workers", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "19 images found: 17 added" in result.stderr and "2 skipped" in result.stderr
    assert "broken.jpg" in result.stderr and "empty.png: empty file" in result.stderr
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbir", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def test_search_ranks_the_matching_colors_first(folder, db):
    result = run("search", str(folder / "blue.jpg"), "--db", str(db), "-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert document["query"] == str(folder / "blue.jpg") and document["metric"] == COMPACT
    top = document["results"]
    assert [r["rank"] for r in top] == [1, 2, 3]
    assert top[0] == {"rank": 1, "path": str((folder / "blue.jpg").resolve()), "distance": 0.0, "id": top[0]["id"]}
    assert top[1]["path"].endswith("blue_mix.png")  # 80% blue: the next closest
    assert top[1]["distance"] <= top[2]["distance"]


def test_search_text_output_and_metrics(folder, db, index_path):
    runner = CliRunner()
    for metric in ("qfd", "l1", "hellinger"):
        result = runner.invoke(main, ["search", str(folder / "sand.jpg"), "--db", str(db), "-k", "2", "--metric", metric])
        assert result.exit_code == 0, result.output
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 2 and lines[0].split()[1] == "0.000000" and lines[0].endswith("sand.jpg")
    assert index_path.faiss >= 3 and index_path.brute == 0  # every search above went through FAISS
    # A full-histogram metric (the compact default's --brute scans stored vectors: tests/test_compact.py).
    brute = runner.invoke(main, ["search", str(folder / "sky.png"), "--db", str(db), "-k", "5", "--brute", "--json",
                                 "--metric", "chi2-soft"])
    assert index_path.brute == 1
    fast = runner.invoke(main, ["search", str(folder / "sky.png"), "--db", str(db), "-k", "5", "--json",
                                "--metric", "chi2-soft"])
    assert index_path.faiss >= 4 and index_path.brute == 1
    assert json.loads(brute.stdout)["results"] == json.loads(fast.stdout)["results"]


def test_info(db):
    result = run("info", "--db", str(db), "--json", "--failures")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["images"] == 17 and info["codebook_size"] == 16 and info["layout"] == DEFAULT_LAYOUT and info["failures"] == 2
    assert sorted(os.path.basename(f["path"]) for f in info["failed"]) == ["broken.jpg", "empty.png"]


def test_unreadable_query_is_one_line_exit_2(folder, db):
    result = run("search", str(folder / "broken.jpg"), "--db", str(db))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "broken.jpg" in result.stderr and "Traceback" not in result.stderr


def test_missing_database_is_one_line_exit_2(folder, tmp_path):
    result = run("search", str(folder / "red.jpg"), "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "no index at" in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "none.db").exists()
    result = run("info", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "no index at" in result.stderr


def test_db_from_environment(folder, db):
    result = subprocess.run([sys.executable, "-m", "cbir", "info", "--json"], capture_output=True, text=True,
                            env={**os.environ, "CBIR_DB": str(db)}, timeout=60)
    assert json.loads(result.stdout)["images"] == 17


def test_reindex_is_a_no_op_and_json_report(folder, db):
    result = CliRunner().invoke(main, ["index", str(folder), "--db", str(db), "--json", "-q"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["added"] == 0 and report["unchanged"] == 17 + 2 and len(report["failed"]) == 2


def test_usage_errors(folder, db):
    runner = CliRunner()
    assert runner.invoke(main, ["search", str(folder / "red.jpg"), "--db", str(db), "-k", "0"]).exit_code == 2
    assert runner.invoke(main, ["search", str(folder / "red.jpg"), "--db", str(db), "--metric", "cosine"]).exit_code == 2
    result = runner.invoke(main, ["index", str(folder), "--db", str(db), "--colors", "32"])
    assert result.exit_code == 2 and "16 colors, not 32" in result.stderr
    result = runner.invoke(main, ["index", str(folder / "nope"), "--db", str(db)])
    assert result.exit_code == 2 and "not a folder" in result.stderr


def test_usage_errors_are_one_line_too(folder, db):
    for args, words in [
        (["search", str(folder / "red.jpg"), "--db", str(db), "-k", "0"], "Invalid value for '-k'"),
        (["search", "--db", str(db)], "exactly one of IMAGE or --colors"),
        (["index", "--bogus"], "No such option '--bogus'"),
        (["serach", "x"], "No such command 'serach'"),
        (["--bogus"], "No such option '--bogus'"),
    ]:
        result = run(*args)
        assert result.returncode == 2 and result.stdout == "", args
        assert result.stderr.strip().count("\n") == 0 and words in result.stderr, result.stderr
        assert result.stderr.startswith("Error: ") and "--help')" in result.stderr


def test_progress_bars_start_no_thread():
    """A thread alive in `cbir index` would make its workers start from a fork server (fresh
    interpreters, one color table each) instead of being forked: tqdm's monitor must stay off."""
    import threading

    from cbir.cli.common import progress_bar

    before = threading.active_count()
    for quiet in (True, False):
        with progress_bar("indexing", quiet=quiet) as progress:
            progress(1, 2)
            assert threading.active_count() == before


def test_an_unexpected_error_is_one_line_exit_2(db, monkeypatch):
    """A bug (here: a library call raising RuntimeError) leaves with one line, exit 2, and asks for a report."""
    import click

    from cbir.store import Store

    def broken(self):
        raise RuntimeError("disk on fire\nand a second line")

    monkeypatch.setattr(Store, "failure_count", broken)
    result = CliRunner().invoke(main, ["info", "--db", str(db)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "internal error" in result.stderr and "please report it" in result.stderr
    assert "RuntimeError: disk on fire and a second line" in result.stderr
    # The group's boundary catches it too, for a command that does not wrap its own errors.
    monkeypatch.setitem(main.commands, "explode", click.Command("explode", callback=lambda: {}["missing"]))
    result = CliRunner().invoke(main, ["explode"])
    assert result.exit_code == 2 and result.stderr.strip().count("\n") == 0 and "internal error" in result.stderr
    assert "KeyError" in result.stderr
    monkeypatch.setenv("CBIR_DEBUG", "1")
    assert isinstance(CliRunner().invoke(main, ["explode"]).exception, KeyError)  # the traceback, when asked for


def test_help_does_not_import_the_store():
    # SQLAlchemy took most of 'cbir --help'; cbir/cli/common.py spells the default database out instead of importing it.
    import subprocess
    import sys

    from cbir import store
    from cbir.cli import common

    assert common.DEFAULT_DB == store.DEFAULT_DB
    code = "import sys, cbir.cli; print(sorted(m for m in ('sqlalchemy', 'faiss', 'sklearn', 'matplotlib') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
