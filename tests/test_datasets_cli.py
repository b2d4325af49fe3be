"""`cbir datasets list|fetch` and `cbir evaluate NAME` through the real command, against a loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cbir.cli import main
from tests.fetch_helpers import http_server, tar_bytes, wang_members


@pytest.fixture()
def sets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "sets"
    monkeypatch.setenv("CBIR_DATASETS", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.mark.slow
def test_fetch_list_and_evaluate_wang_by_name(sets_dir: Path) -> None:
    runner = CliRunner()
    before = json.loads(runner.invoke(main, ["datasets", "list", "--json"]).output)
    wang = next(row for row in before["datasets"] if row["name"] == "wang")
    assert wang["present"] is False and wang["images"] == 1000 and wang["protocol"] == "wang"
    assert wang["source"] == "http://wang.ist.psu.edu/~jwang/test1.tar"

    missing = runner.invoke(main, ["evaluate", "wang", "--db", "w.db"])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == ["Error: dataset 'wang' is not fetched yet; run: cbir datasets fetch wang"]
    assert not Path("w.db").exists()

    archive = tar_bytes(wang_members())
    with http_server({"test1.tar": archive}) as server:
        fetched = runner.invoke(main, ["datasets", "fetch", "wang", "--from", server.url + "test1.tar", "-q"])
    assert fetched.exit_code == 0, fetched.output
    assert f"wang: 1,000 images in {sets_dir / 'wang'}" in fetched.output
    assert "no published checksum to check" in fetched.output

    after = json.loads(runner.invoke(main, ["datasets", "list", "--json"]).output)
    wang = next(row for row in after["datasets"] if row["name"] == "wang")
    assert wang["present"] is True and wang["path"] == str((sets_dir / "wang").resolve())
    assert len(wang["sha256"]["test1.tar"]) == 64

    again = runner.invoke(main, ["datasets", "fetch", "wang", "--from", "http://127.0.0.1:9/unused.tar"])
    assert again.exit_code == 0 and "already fetched" in again.output

    result = runner.invoke(main, ["evaluate", "wang", "--db", "w.db", "--colors", "16", "--workers", "1", "--json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["protocol"] == "wang" and report["queries"] == 1000
    assert report["mAP"] > 0.9  # ten classes of one noisy color each (chance: 0.1)


def test_fetch_errors_are_one_line_with_exit_code_2(sets_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["datasets", "fetch", "corel-10k"])
    assert unknown.exit_code == 2 and "unknown dataset 'corel-10k'; known: wang, holidays, ukbench, skimage-dup" in unknown.output
    with http_server({}) as server:
        gone = runner.invoke(main, ["datasets", "fetch", "wang", "--from", server.url + "test1.tar", "--retries", "0"])
    assert gone.exit_code == 2 and len(gone.output.strip().splitlines()) == 1 and "HTTP 404" in gone.output
    assert not (sets_dir / "wang").exists()
